//! `cargo +nightly fuzz run weights_file`: see `fuzz/src/targets.rs`.
#![no_main]

#[path = "../src/targets.rs"]
#[allow(dead_code)]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::weights_file(data));

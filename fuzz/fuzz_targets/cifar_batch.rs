//! `cargo +nightly fuzz run cifar_batch`: see `fuzz/src/targets.rs`.
#![no_main]

#[path = "../src/targets.rs"]
#[allow(dead_code)]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::cifar_batch(data));

//! The fuzz smoke run of every CI: each target of `fuzz/src/targets.rs` (one per reader of user
//! files) runs over its committed corpus (`fuzz/corpus/<target>/`, the regression inputs
//! included) and seeds made here, then over seeded mutations of them (bit flips, interesting
//! bytes and integers, truncation, repeats, splices) for a few seconds per target. Any panic
//! fails the test and leaves the input in `target/fuzz-failures/`; an allocation abort or a hang
//! stops the test process, which fails it too.
//!
//! `LRNN_FUZZ_SECONDS` sets the seconds per target (default 6); `LRNN_WRITE_CORPUS=1` writes
//! the seeds made here into `fuzz/corpus/`; `LRNN_FUZZ_REPLAY=<target>:<file>` runs one input
//! with its panic shown. Longer runs: `cargo +nightly fuzz run <target>` in
//! `fuzz/` (see fuzz/README.md).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use lrnn_core::data::voc::{write_label_png, LabelMap};
use lrnn_core::io::onnx::{write_minimal_onnx, ConvNode};
use lrnn_core::rng::Rng;

#[path = "../fuzz/src/targets.rs"]
mod targets;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn safetensors(tensors: &[(&str, Tensor)]) -> Vec<u8> {
    let map: BTreeMap<String, Tensor> = tensors.iter().map(|(n, t)| (n.to_string(), t.clone())).collect();
    let p = std::env::temp_dir().join(format!("lrnn-fuzz-seed-{}.safetensors", std::process::id()));
    lrnn_core::io::write_tensors(&map, &p).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let _ = std::fs::remove_file(&p);
    bytes
}

fn encoded(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), format).unwrap();
    bytes
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend(data);
    out
}

/// Seeds made from the real formats, per target.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dev = Device::Cpu;
    let model = root().join("assets/models/context-lrnn");
    let fixtures = root().join("tests/fixtures");
    match target {
        "safetensors_weights" => vec![std::fs::read(model.join("weights.safetensors")).unwrap()],
        "safetensors_input" => vec![
            std::fs::read(fixtures.join("lrnn_vanilla_sum.io.safetensors")).unwrap(),
            safetensors(&[("input", Tensor::ones((1, 2, 3, 2), DType::F16, &dev).unwrap())]),
        ],
        "model_json" => vec![
            std::fs::read(model.join("model.json")).unwrap(),
            std::fs::read(fixtures.join("lrnn_gru_concat.json")).unwrap(),
            br#"{"kind": "lrnn", "in_channels": 3, "hidden": 4, "cell": "vanilla_ln", "merge": "sum"}"#
                .to_vec(),
            br#"{"kind": "fcn", "variant": "fcn8s", "lrnn": true, "heads": 4, "classes": 3}"#.to_vec(),
            br#"{"kind": "cifar", "name": "E-RNN-Max", "classes": 10, "in_channels": 3, "dropout": 0.1}"#
                .to_vec(),
        ],
        "image" => {
            let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(8, 6, |x, y| {
                image::Rgb([x as u8 * 30, y as u8 * 40, 90])
            }));
            vec![encoded(&img, image::ImageFormat::Png), encoded(&img, image::ImageFormat::Jpeg)]
        }
        "cifar_batch" => {
            let mut b = Vec::new();
            for i in 0..2u8 {
                b.push(i);
                b.extend((0..3072).map(|j| (j % 251) as u8));
            }
            vec![b]
        }
        "idx" => {
            let images = idx(&[2, 4, 4], &[7; 32]);
            let labels = idx(&[2], &[1, 9]);
            let mut b = (images.len() as u32).to_le_bytes().to_vec();
            b.extend(images);
            b.extend(labels);
            vec![b]
        }
        "label_png" => {
            let p = std::env::temp_dir().join(format!("lrnn-fuzz-seed-{}.png", std::process::id()));
            write_label_png(
                &p,
                &LabelMap {
                    width: 5,
                    height: 3,
                    labels: vec![0, 1, 2, 255, 20, 0, 0, 3, 3, 3, 4, 5, 6, 7, 8],
                },
            )
            .unwrap();
            let bytes = std::fs::read(&p).unwrap();
            let _ = std::fs::remove_file(&p);
            vec![bytes]
        }
        "voc_split" => vec![b"a\n".to_vec(), b"a\nb\n\n".to_vec()],
        "checkpoint_state" => vec![std::fs::read(model.join("state.json")).unwrap()],
        "run_latest" => vec![br#"{"checkpoint": "step-00000001"}"#.to_vec()],
        "onnx" => {
            let w = (String::from("conv.weight"), vec![2, 1, 3, 3], vec![0.5f32; 18]);
            let b = (String::from("conv.bias"), vec![2], vec![0.1f32; 2]);
            let conv = ConvNode { weight: "conv.weight".into(), bias: Some("conv.bias".into()) };
            vec![write_minimal_onnx(&[w, b], &[conv])]
        }
        // Written by torch (fuzz/make_pth_seeds.py): the committed corpus holds them.
        "pth_trunk" => vec![],
        // Written by tests/fixtures/gen_fcn_caffe.py.
        "weights_file" => [
            "fcn8s_caffe.legacy.pth",
            "fcn8s_caffe.zip.pth",
            "fcn8s_caffe.caffemodel",
            "fcn8s_caffe.v1.caffemodel",
        ]
        .iter()
        .map(|f| std::fs::read(fixtures.join(f)).unwrap())
        .collect(),
        other => panic!("no seeds for target `{other}`"),
    }
}

/// The committed corpus of a target (seeds written earlier and regression inputs).
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = root().join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

/// One seeded mutation of `input` (sometimes spliced with `other`).
fn mutate(input: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    let pick = |rng: &mut Rng, n: usize| (rng.next_u64() % n.max(1) as u64) as usize;
    for _ in 0..1 + pick(rng, 4) {
        match pick(rng, 8) {
            // Flip a bit.
            0 if !out.is_empty() => {
                let i = pick(rng, out.len());
                out[i] ^= 1 << pick(rng, 8);
            }
            // An interesting byte.
            1 if !out.is_empty() => {
                let i = pick(rng, out.len());
                out[i] = [0, 1, 0x7f, 0x80, 0xff, b'9', b'-', b'"'][pick(rng, 8)];
            }
            // An interesting integer (sizes, lengths, offsets).
            2 if out.len() >= 8 => {
                let i = pick(rng, out.len() - 7);
                let v: u64 = [0, 1, u64::from(u32::MAX), u64::MAX, 1 << 31, 1 << 40, 65_537][pick(rng, 7)];
                let bytes = if pick(rng, 2) == 0 { v.to_le_bytes() } else { v.to_be_bytes() };
                let n = [1, 2, 4, 8][pick(rng, 4)];
                out[i..i + n].copy_from_slice(&bytes[..n]);
            }
            // Truncate.
            3 if !out.is_empty() => out.truncate(pick(rng, out.len())),
            // Repeat a chunk.
            4 if !out.is_empty() => {
                let (a, n) = (pick(rng, out.len()), 1 + pick(rng, 64));
                let chunk: Vec<u8> = out[a..(a + n).min(out.len())].to_vec();
                let at = pick(rng, out.len());
                out.splice(at..at, chunk);
            }
            // Splice with another input.
            5 if !other.is_empty() => {
                let at = pick(rng, out.len());
                out.truncate(at);
                out.extend_from_slice(&other[pick(rng, other.len())..]);
            }
            // A long digit run (JSON numbers past every integer type).
            6 => {
                let at = pick(rng, out.len() + 1);
                let digits = vec![b'9'; 1 + pick(rng, 30)];
                out.splice(at..at, digits);
            }
            // Random bytes.
            _ => {
                let at = pick(rng, out.len() + 1);
                let extra: Vec<u8> = (0..1 + pick(rng, 16)).map(|_| rng.next_u64() as u8).collect();
                out.splice(at..at, extra);
            }
        }
    }
    out
}

/// Runs `body` on `input`; a panic is recorded with the input kept on disk.
fn check(target: &str, body: fn(&[u8]), input: &[u8], failures: &mut Vec<String>) {
    let started = Instant::now();
    let result = std::panic::catch_unwind(|| body(input));
    let slow = started.elapsed() > Duration::from_secs(20);
    if result.is_err() || slow {
        let dir = root().join("target/fuzz-failures");
        std::fs::create_dir_all(&dir).unwrap();
        let hash = input
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let path = dir.join(format!("{target}-{hash:016x}"));
        std::fs::write(&path, input).unwrap();
        let what = if slow { "took over 20 s" } else { "panicked" };
        failures.push(format!("{target}: {what} on {} (copy it into fuzz/corpus/{target}/)", path.display()));
    }
}

#[test]
fn every_reader_survives_its_corpus_and_mutations_of_it() {
    // `LRNN_FUZZ_REPLAY=<target>:<file>` runs one input with its panic message shown.
    if let Some((target, file)) = std::env::var("LRNN_FUZZ_REPLAY").ok().and_then(|r| {
        let (t, f) = r.split_once(':')?;
        Some((t.to_string(), PathBuf::from(f)))
    }) {
        let body = targets::TARGETS.iter().find(|(n, _)| *n == target).expect("a known target").1;
        body(&std::fs::read(&file).unwrap());
        return;
    }
    let seconds: u64 = std::env::var("LRNN_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    let write = std::env::var_os("LRNN_WRITE_CORPUS").is_some();
    // Panics are expected to be caught here; keep their messages out of the log.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for &(target, body) in targets::TARGETS {
        let mut inputs: Vec<Vec<u8>> = seeds(target);
        if write {
            let dir = root().join("fuzz/corpus").join(target);
            std::fs::create_dir_all(&dir).unwrap();
            for (i, s) in inputs.iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{i}")), s).unwrap();
            }
        }
        inputs.extend(corpus(target).into_iter().map(|(_, b)| b));
        for input in &inputs {
            check(target, body, input, &mut failures);
        }
        let mut rng = Rng(0x5eed ^ target.len() as u64);
        let started = Instant::now();
        let mut runs = 0usize;
        while started.elapsed() < Duration::from_secs(seconds) {
            let a = &inputs[(rng.next_u64() % inputs.len() as u64) as usize];
            let b = &inputs[(rng.next_u64() % inputs.len() as u64) as usize];
            let input = mutate(a, b, &mut rng);
            check(target, body, &input, &mut failures);
            runs += 1;
        }
        report.push(format!("{target}: {} corpus inputs, {runs} mutations", inputs.len()));
    }
    std::panic::set_hook(hook);
    println!("{}", report.join("\n"));
    assert!(failures.is_empty(), "readers failed:\n{}", failures.join("\n"));
}

#[test]
fn the_mutator_changes_inputs_and_is_repeatable() {
    let seed = b"{\"kind\": \"lrnn\", \"hidden\": 4}".to_vec();
    let run = || {
        let mut rng = Rng(7);
        (0..50).map(|_| mutate(&seed, b"xyz", &mut rng)).collect::<Vec<_>>()
    };
    let a = run();
    assert_eq!(a, run());
    assert!(a.iter().filter(|m| **m != seed).count() > 40);
    assert!(Path::new(&root().join("fuzz/src/targets.rs")).exists());
}

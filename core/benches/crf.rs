//! The dense CRF against the reference (Krähenbühl's densecrf, the code behind pydensecrf):
//! the same photo, unaries and settings through both, in one run: time (median of 9 rounds that
//! alternate the two, lattice building included, as a pydensecrf call does), peak memory, identical labels and the largest
//! difference of Q. Problems: VOC-sized photos (500x375 and 375x500, 21 classes) with noisy
//! scores around a segmentation of the photo by colour.
//!
//! ```sh
//! tests/crf_reference/build.sh                      # once: target/crf_reference
//! cargo bench -p lrnn-core --bench crf -- --reference target/crf_reference
//! # the committed test fixture (a small photo and the reference's Q):
//! cargo bench -p lrnn-core --bench crf -- --reference target/crf_reference --write-fixture tests/fixtures/crf_small.safetensors
//! ```

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use common::median;
use lrnn_core::crf::{argmax_labels, CrfParams, DenseCrf};
use lrnn_core::rng::Rng;

/// A photo and network-like scores: each pixel's class follows its colour (a coarse colour
/// quantisation of the photo), scored 3 above the rest, plus Gaussian noise of deviation 1.5.
struct Problem {
    width: usize,
    height: usize,
    classes: usize,
    rgb: Vec<u8>,
    scores: Vec<f32>,
    truth: Vec<u8>,
}

fn problem(photo: &Path, width: usize, height: usize, classes: usize, seed: u64) -> Problem {
    let img = image::open(photo).expect("photo").to_rgb8();
    let img =
        image::imageops::resize(&img, width as u32, height as u32, image::imageops::FilterType::Triangle);
    let rgb = img.into_raw();
    let n = width * height;
    let truth: Vec<u8> = rgb
        .chunks(3)
        .map(|p| {
            let q = |v: u8| usize::from(v) * 3 / 256;
            ((q(p[0]) * 9 + q(p[1]) * 3 + q(p[2])) % classes) as u8
        })
        .collect();
    let mut rng = Rng(seed);
    let mut scores = vec![0f32; classes * n];
    for l in 0..classes {
        for i in 0..n {
            scores[l * n + i] = if truth[i] as usize == l { 3.0 } else { 0.0 } + 1.5 * rng.normal();
        }
    }
    Problem { width, height, classes, rgb, scores, truth }
}

fn write_problem(p: &Problem, path: &Path) {
    let mut bytes = Vec::new();
    for v in [p.width, p.height, p.classes] {
        bytes.extend((v as i32).to_le_bytes());
    }
    bytes.extend(&p.rgb);
    for s in &p.scores {
        bytes.extend(s.to_le_bytes());
    }
    std::fs::write(path, bytes).expect("write the problem");
}

/// Runs the reference: its Q, its time in ms (as it measured it) and its peak resident size.
fn reference(bin: &Path, p: &Problem, params: &CrfParams, dir: &Path) -> (Vec<f32>, f64, u64) {
    let input = dir.join("crf-in.bin");
    let output = dir.join("crf-out.bin");
    write_problem(p, &input);
    let o = Command::new(bin)
        .arg(&input)
        .arg(&output)
        .args(
            [
                params.iterations as f32,
                params.gaussian_sxy,
                params.gaussian_weight,
                params.bilateral_sxy,
                params.bilateral_srgb,
                params.bilateral_weight,
            ]
            .map(|v| v.to_string()),
        )
        .output()
        .expect("run the reference");
    assert!(o.status.success(), "reference: {}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout).to_string();
    let mut words = said.split_whitespace();
    let ms: f64 = words.next().and_then(|w| w.parse().ok()).expect("reference time");
    let peak: u64 = words.next().and_then(|w| w.parse().ok()).expect("reference peak");
    let bytes = std::fs::read(&output).expect("reference output");
    let q = bytes[12..].chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    (q, ms, peak)
}

/// Our peak resident size for one problem, measured in a fresh process (this bench, run as
/// `--ours PHOTO WIDTH HEIGHT`): the problem's arrays and one CRF, as the reference's process.
fn ours_peak(photo: &Path, w: usize, h: usize) -> u64 {
    let o = Command::new(std::env::current_exe().expect("bench path"))
        .arg("--ours")
        .arg(photo)
        .args([w.to_string(), h.to_string()])
        .output()
        .expect("run ours");
    assert!(o.status.success(), "ours: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().parse().expect("our peak")
}

/// This process's peak resident size (`VmHWM`).
fn own_peak_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        })
        .map_or(0, |kb| kb * 1024)
}

fn ours(p: &Problem, params: &CrfParams) -> lrnn_core::crf::CrfOutput {
    let crf = DenseCrf::new(&p.rgb, p.width, p.height, params).expect("crf");
    crf.infer(&p.scores, p.classes, &mut |_, _| true).expect("inference").expect("not cancelled")
}

/// Rounds of each measurement.
const ROUNDS: usize = 9;

/// One timed run of ours on `threads` threads (after an untimed one in the same pool).
fn time_ours(p: &Problem, params: &CrfParams, threads: usize) -> f64 {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
    pool.install(|| {
        ours(p, params);
        let t = std::time::Instant::now();
        ours(p, params);
        t.elapsed().as_secs_f64() * 1e3
    })
}

fn agreement(a: &[u8], b: &[u8]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

fn main() {
    lrnn_core::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let Some(bin) = value("--reference")
        .map(PathBuf::from)
        .or_else(|| value("--ours").or(value("--phases")).map(|_| PathBuf::new()))
    else {
        eprintln!("crf bench: give --reference PATH (tests/crf_reference/build.sh builds it)");
        std::process::exit(2);
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir();
    let params = CrfParams::default();
    if let Some(photo) = value("--phases") {
        let p = problem(Path::new(&photo), 500, 375, 21, 3);
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let crf = DenseCrf::new(&p.rgb, p.width, p.height, &params).expect("crf");
            let built = t.elapsed().as_secs_f64() * 1e3;
            let t = std::time::Instant::now();
            crf.infer(&p.scores, p.classes, &mut |_, _| true).expect("inference");
            println!("build {built:.1} ms, inference {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
        }
        return;
    }
    if let Some(photo) = value("--ours") {
        let size = |i: usize| {
            args.iter()
                .position(|a| a == "--ours")
                .and_then(|p| args.get(p + i))
                .and_then(|v| v.parse().ok())
                .expect("size")
        };
        let p = problem(Path::new(&photo), size(2), size(3), 21, 3);
        ours(&p, &params);
        println!("{}", own_peak_bytes());
        return;
    }
    if let Some(out) = value("--write-fixture") {
        // A small problem and the reference's answer, for the CI test (no C++ there).
        let p = problem(&repo.join("assets/photos/chelsea.png"), 64, 48, 5, 7);
        let (q, _, _) = reference(&bin, &p, &params, &dir);
        let mut t = BTreeMap::new();
        let dev = Device::Cpu;
        let rgb: Vec<f32> = p.rgb.iter().map(|&v| f32::from(v)).collect();
        t.insert("rgb".to_string(), Tensor::from_vec(rgb, (p.height, p.width, 3), &dev).expect("rgb"));
        t.insert(
            "scores".to_string(),
            Tensor::from_vec(p.scores.clone(), (p.classes, p.height, p.width), &dev).expect("scores"),
        );
        t.insert(
            "reference_q".to_string(),
            Tensor::from_vec(q, (p.classes, p.height, p.width), &dev).expect("q"),
        );
        lrnn_core::io::write_tensors(&t, Path::new(&out)).expect("write the fixture");
        println!("wrote {out}");
        return;
    }
    let threads = rayon::current_num_threads();
    println!(
        "Dense CRF, {} iterations, Potts, smoothness sxy {} w {}, appearance sxy {} srgb {} w {}; median of {ROUNDS} alternated rounds",
        params.iterations,
        params.gaussian_sxy,
        params.gaussian_weight,
        params.bilateral_sxy,
        params.bilateral_srgb,
        params.bilateral_weight
    );
    println!(
        "| photo | size | classes | reference (ms) | ours, 1 thread (ms) | ours, {threads} threads (ms) | ratio | identical labels | max |ΔQ| | labels = truth: before / after | peak RSS reference / ours (MiB) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for (photo, w, h) in [("chelsea.png", 500, 375), ("astronaut.png", 375, 500), ("coffee.png", 500, 375)] {
        let p = problem(&repo.join("assets/photos").join(photo), w, h, 21, 3);
        let (rq, _, ref_peak) = reference(&bin, &p, &params, &dir);
        let our_peak = ours_peak(&repo.join("assets/photos").join(photo), w, h);
        let out = ours(&p, &params);
        // Rounds alternating the three, so that a slower spell of the machine hits all alike.
        let (mut r, mut o1, mut o2) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            r.push(reference(&bin, &p, &params, &dir).1);
            o1.push(time_ours(&p, &params, 1));
            o2.push(time_ours(&p, &params, threads));
        }
        let (ref_ms, one, many) = (median(r), median(o1), median(o2));
        let n = w * h;
        let ref_labels = argmax_labels(&rq, p.classes, n);
        let dq = out.q.iter().zip(&rq).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let before = argmax_labels(&p.scores, p.classes, n);
        println!(
            "| {photo} | {w}x{h} | {} | {ref_ms:.1} | {one:.1} | {many:.1} | {:.2}x | {:.3}% | {dq:.1e} | {:.1}% / {:.1}% | {:.0} / {:.0} |",
            p.classes,
            many / ref_ms,
            100.0 * agreement(&out.labels, &ref_labels),
            100.0 * agreement(&before, &p.truth),
            100.0 * agreement(&out.labels, &p.truth),
            ref_peak as f64 / f64::from(1 << 20),
            our_peak as f64 / f64::from(1 << 20),
        );
    }
}

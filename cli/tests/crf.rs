//! `lrnn crf`, `lrnn predict --crf` and `lrnn eval --crf`: the dense CRF from the command line.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{Device, Tensor};
use lrnn_core::data::voc::read_label_png;

#[path = "../../core/tests/common/scratch.rs"]
mod scratch;

fn lrnn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lrnn")).args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A 48x32 photo, red on the left and blue on the right, and noisy two-class scores that
/// favour the side's class: about one pixel in six is wrong before the CRF.
fn problem(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>, Vec<u8>) {
    let (w, h) = (48usize, 32usize);
    let photo = image::RgbImage::from_fn(w as u32, h as u32, |x, _| {
        if (x as usize) < w / 2 {
            image::Rgb([200, 30, 30])
        } else {
            image::Rgb([30, 30, 200])
        }
    });
    let image = dir.join("halves.png");
    photo.save(&image).unwrap();
    let truth: Vec<u8> = (0..h * w).map(|i| u8::from(i % w >= w / 2)).collect();
    let mut rng = lrnn_core::rng::Rng(4);
    let mut scores = vec![0f32; 2 * h * w];
    for i in 0..h * w {
        scores[usize::from(truth[i]) * h * w + i] = 1.0;
        scores[i] += 1.0 * rng.normal();
    }
    let before = lrnn_core::crf::argmax_labels(&scores, 2, h * w);
    let path = dir.join("scores.safetensors");
    let t =
        BTreeMap::from([("scores".to_string(), Tensor::from_vec(scores, (2, h, w), &Device::Cpu).unwrap())]);
    lrnn_core::io::write_tensors(&t, &path).unwrap();
    (image, path, truth, before)
}

#[test]
fn lrnn_crf_cleans_noisy_labels_along_colour_edges() {
    let dir = scratch::scratch_dir("crf");
    let (image, scores, truth, before) = problem(&dir);
    let out = dir.join("labels.png");
    let o = lrnn(&["crf", "--image", s(&image), "--scores", s(&scores), "--out", s(&out)]);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(said.contains("labels changed"), "{said}");
    let map = read_label_png(&out).unwrap();
    assert_eq!((map.width, map.height), (48, 32));
    let right = |l: &[u8]| l.iter().zip(&truth).filter(|(a, b)| a == b).count();
    assert!(right(&before) < 29 * 48 * 32 / 30, "the noise is too weak: {}", right(&before));
    assert!(right(&map.labels) > 99 * 48 * 32 / 100, "after the CRF: {} right", right(&map.labels));
    // No pairwise weight: the CRF keeps the scores' own labels.
    let plain = dir.join("plain.png");
    let o = lrnn(&[
        "crf",
        "--image",
        s(&image),
        "--scores",
        s(&scores),
        "--out",
        s(&plain),
        "--gaussian-weight",
        "0",
        "--bilateral-weight",
        "0",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read_label_png(&plain).unwrap().labels, before);
}

#[test]
fn lrnn_crf_refuses_bad_scores_and_settings_with_the_reason() {
    let dir = scratch::scratch_dir("crf-bad");
    let (image, scores, _, _) = problem(&dir);
    let out = dir.join("labels.png");
    let write = |name: &str, t: Tensor, key: &str| {
        let p = dir.join(name);
        lrnn_core::io::write_tensors(&BTreeMap::from([(key.to_string(), t)]), &p).unwrap();
        p
    };
    let small = write(
        "small.safetensors",
        Tensor::zeros((2, 16, 16), candle_core::DType::F32, &Device::Cpu).unwrap(),
        "scores",
    );
    let flat = write(
        "flat.safetensors",
        Tensor::zeros((2, 48), candle_core::DType::F32, &Device::Cpu).unwrap(),
        "scores",
    );
    let mut nan = vec![0f32; 2 * 32 * 48];
    nan[100] = f32::NAN;
    let nan = write("nan.safetensors", Tensor::from_vec(nan, (2, 32, 48), &Device::Cpu).unwrap(), "scores");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--scores", s(&small), "--out", s(&out)], "16x16 (W x H), the photo"),
        (vec!["--scores", s(&flat), "--out", s(&out)], "expected [C, H, W]"),
        (vec!["--scores", s(&nan), "--out", s(&out)], "NaN or infinite"),
        (vec!["--scores", s(&scores), "--out", s(&image)], "refusing to overwrite"),
        (vec!["--scores", s(&scores), "--out", s(&out), "--bilateral-srgb", "0"], "must be above 0"),
        (vec!["--scores", s(&scores), "--out", s(&out), "--iterations", "100000"], "above 1000"),
    ];
    for (args, expect) in cases {
        let mut all = vec!["crf", "--image", s(&image)];
        all.extend(&args);
        let o = lrnn(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!out.exists(), "a refused run wrote its output");
    // The photo is untouched.
    assert!(image::open(&image).is_ok());
}

#[test]
fn predict_and_eval_apply_the_crf_to_an_fcn() {
    let dir = scratch::scratch_dir("crf-fcn");
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/models/scenes-fcn8s-lrnn");
    let voc = dir.join("voc");
    let o = lrnn(&["dataset", "--format", "scenes", "--count", "3", "--size", "64", "--voc-out", s(&voc)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (plain, refined) = (dir.join("plain"), dir.join("refined"));
    let (desc, weights) = (model.join("model.json"), model.join("weights.safetensors"));
    for (out, crf) in [(&plain, false), (&refined, true)] {
        let mut args = vec![
            "predict",
            "--model",
            s(&desc),
            "--weights",
            s(&weights),
            "--voc",
            s(&voc),
            "--size",
            "64",
            "--device",
            "cpu",
            "--out",
            s(out),
        ];
        if crf {
            args.push("--crf");
        }
        let o = lrnn(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for e in std::fs::read_dir(&plain).unwrap().flatten() {
        let a = read_label_png(&e.path()).unwrap();
        let b = read_label_png(&refined.join(e.file_name())).unwrap();
        assert_eq!((a.width, a.height), (b.width, b.height));
        // The scenes' objects are flat colours: the CRF keeps nearly all labels.
        let same = a.labels.iter().zip(&b.labels).filter(|(x, y)| x == y).count();
        assert!(same * 100 >= 95 * a.labels.len(), "{}: {same} of {}", e.path().display(), a.labels.len());
    }
    let o = lrnn(&["score", "--pred", s(&refined), "--voc", s(&voc)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // eval --crf prints the scores without and with it.
    let o =
        lrnn(&["eval", "--run", s(&model), "--data", "voc", "--path", s(&voc), "--crf", "--iterations", "2"]);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(said.contains("without the CRF:") && said.contains("with the CRF (2 updates):"), "{said}");
    assert_eq!(said.matches("mean IoU").count(), 2, "{said}");
    // A classifier has nothing to refine.
    let cnn = model.join("../context-cnn");
    let o = lrnn(&["eval", "--run", s(&cnn), "--crf"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("refines segmentations"));
}

//! The dense CRF against the reference implementation (Krähenbühl's densecrf, the C++ code behind
//! pydensecrf): `tests/fixtures/crf_small.safetensors` holds a 64x48 photo, noisy scores of 5
//! classes and the reference's Q after 5 mean-field updates with the default settings, written
//! by `cargo bench -p lrnn-core --bench crf -- --reference target/crf_reference
//! --write-fixture tests/fixtures/crf_small.safetensors` (the reference built by
//! `tests/crf_reference/build.sh`). No C++ or Python is needed here.

use std::path::PathBuf;

use candle_core::Device;
use lrnn_core::crf::{argmax_labels, CrfParams, DenseCrf};

#[test]
fn labels_and_marginals_match_the_reference_implementation() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/crf_small.safetensors");
    let t = lrnn_core::io::read_tensors(&path, &Device::Cpu).expect("the committed fixture");
    let vec = |name: &str| t[name].flatten_all().and_then(|x| x.to_vec1::<f32>()).expect(name);
    let (c, h, w) = t["scores"].dims3().expect("scores [C, H, W]");
    let rgb: Vec<u8> = vec("rgb").iter().map(|&v| v as u8).collect();
    let scores = vec("scores");
    let reference = vec("reference_q");
    let crf = DenseCrf::new(&rgb, w, h, &CrfParams::default()).expect("crf");
    let out = crf.infer(&scores, c, &mut |_, _| true).expect("inference").expect("not stopped");
    let n = w * h;
    let same = out.labels.iter().zip(argmax_labels(&reference, c, n)).filter(|(a, b)| **a == *b).count();
    let dq = out.q.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    println!("{same} of {n} labels as the reference's; max |ΔQ| {dq:e}");
    assert!(same as f64 >= 0.99 * n as f64, "only {same} of {n} labels agree");
    assert!(dq < 1e-3, "Q differs from the reference's by {dq}");
    // The CRF changed the labels (the fixture exercises the pairwise terms).
    let before = argmax_labels(&scores, c, n);
    let changed = before.iter().zip(&out.labels).filter(|(a, b)| a != b).count();
    assert!(changed > n / 20, "only {changed} labels changed");
}

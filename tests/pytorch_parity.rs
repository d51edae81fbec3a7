//! Parity of the L-RNN module with PyTorch, for every cell x merge and every direction: outputs,
//! captured per-direction maps, and gradients of the input and of every weight (U, b, V, LN
//! gain and bias, GRU gates). The fixtures were written by `fixtures/gen_fixtures.py` with plain
//! torch ops from the equations, in float64; both scan backends must agree to 1e-5.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use candle_core::{Device, Var};
use lrnn_core::io::{read_tensors, ModelDesc};
use lrnn_core::models::Model;
use lrnn_core::nn::{Forward, ScanBackend};
use lrnn_tests::{assert_close, fixtures_dir, MODULE_FIXTURES};

const TOL: f32 = 1e-5;

fn check_fixture(stem: &str, backend: ScanBackend, capture: bool) {
    let dir = fixtures_dir();
    let dev = Device::Cpu;
    let desc = ModelDesc::load(&dir.join(format!("{stem}.json"))).expect("description");
    let model = Model::load(desc, &dir.join(format!("{stem}.weights.safetensors")), &dev).expect("weights");
    let io = read_tensors(&dir.join(format!("{stem}.io.safetensors")), &dev).expect("io");
    let x = Var::from_tensor(&io["input"]).expect("var");
    let mut fwd = Forward::eval().with_backend(backend);
    if capture {
        fwd = fwd.capturing();
    }
    let out = model.forward(x.as_tensor(), &mut fwd).expect("forward");
    let maps = fwd.take_captured();
    let tag = format!("{stem} ({backend:?}, capture {capture})");
    assert_close(&format!("{tag}: output"), &out, &io["output"], TOL);
    let expected: &[&str] = if capture { &["bt", "lr", "rl", "tb"] } else { &[] };
    assert_eq!(maps.keys().map(String::as_str).collect::<Vec<_>>(), expected, "{tag}: captured maps");
    for (name, map) in &maps {
        assert_close(&format!("{tag}: map {name}"), map, &io[name.as_str()], TOL);
    }
    let loss = (out * &io["grad_seed"]).expect("mul").sum_all().expect("sum");
    let grads = loss.backward().expect("backward");
    assert_close(&format!("{tag}: grad input"), grads.get(&x).expect("input grad"), &io["grad.input"], TOL);
    let weights = model.weights().expect("weights");
    assert!(!weights.is_empty());
    for (name, w) in &weights {
        let g = grads.get(w).unwrap_or_else(|| panic!("{tag}: no gradient for {name}"));
        assert_close(&format!("{tag}: grad {name}"), g, &io[&format!("grad.{name}")], TOL);
    }
}

#[test]
fn fused_scan_should_match_pytorch_for_every_cell_and_merge() {
    for stem in MODULE_FIXTURES {
        check_fixture(stem, ScanBackend::Fused, false);
        check_fixture(stem, ScanBackend::Fused, true);
    }
}

#[test]
fn reference_scan_should_match_pytorch_for_every_cell_and_merge() {
    for stem in MODULE_FIXTURES {
        check_fixture(stem, ScanBackend::Reference, false);
        check_fixture(stem, ScanBackend::Reference, true);
    }
}

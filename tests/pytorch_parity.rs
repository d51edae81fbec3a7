//! Parity of the L-RNN module with PyTorch, for every cell x merge and every direction: outputs,
//! captured per-direction maps, and gradients of the input and of every weight (U, b, V, LN
//! gain and bias, GRU gates). The fixtures were written by `fixtures/gen_fixtures.py` with plain
//! torch ops from the equations, in float64; both scan backends must agree to 1e-5.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use candle_core::{Device, Var};
use lrnn_core::io::read_tensors;
use lrnn_core::models::Model;
use lrnn_core::models::ModelDesc;
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

/// The CNN module's batch normalisation + ReLU (the fused CPU op) against PyTorch, in training
/// mode (output, input/weight/bias gradients, running statistics after the step) and in
/// inference mode (output and gradients with the running statistics).
#[test]
fn batch_norm_relu_should_match_pytorch() {
    use candle_nn::{VarBuilder, VarMap};
    use lrnn_core::nn::batch_norm::BatchNormRelu;
    let dev = Device::Cpu;
    let io = read_tensors(&fixtures_dir().join("batch_norm_relu.io.safetensors"), &dev).expect("fixture");
    for (mode, train) in [("train", true), ("eval", false)] {
        let mut map = VarMap::new();
        let bn = BatchNormRelu::new(3, 1e-5, &VarBuilder::from_varmap(&map, candle_core::DType::F32, &dev))
            .expect("layer");
        for name in ["weight", "bias", "running_mean", "running_var"] {
            map.set_one(name, &io[name]).expect("set");
        }
        let x = Var::from_tensor(&io["input"]).expect("var");
        let out = bn.forward(x.as_tensor(), train).expect("forward");
        assert_close(&format!("{mode}: output"), &out, &io[&format!("{mode}.output")], TOL);
        let grads =
            (out * &io["grad_seed"]).expect("mul").sum_all().expect("sum").backward().expect("backward");
        assert_close(
            &format!("{mode}: grad input"),
            grads.get(&x).expect("grad"),
            &io[&format!("{mode}.grad.input")],
            TOL,
        );
        let vars = map.data().lock().expect("vars").clone();
        for name in ["weight", "bias"] {
            let g = grads.get(&vars[name]).unwrap_or_else(|| panic!("{mode}: no gradient for {name}"));
            assert_close(&format!("{mode}: grad {name}"), g, &io[&format!("{mode}.grad.{name}")], TOL);
        }
        let (mean, var) = if train {
            (&io["running_mean_after"], &io["running_var_after"])
        } else {
            (&io["running_mean"], &io["running_var"])
        };
        assert_close(&format!("{mode}: running mean"), bn.running_mean(), mean, TOL);
        assert_close(&format!("{mode}: running variance"), bn.running_var(), var, TOL);
        assert!(grads.get(&vars["running_mean"]).is_none(), "{mode}: running statistics get no gradient");
    }
}

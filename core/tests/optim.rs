//! Optimisers follow PyTorch's update rules: two steps of each on a hand-computed case.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use candle_core::{Device, Tensor, Var};
use lrnn_core::train::{Optimizer, OptimizerConfig};

/// Two steps on L = sum(g ⊙ θ) (constant gradient g) from θ = [1, -2].
fn two_steps(config: OptimizerConfig, lr: f64) -> Vec<f64> {
    let theta = Var::new(&[1f64, -2.0], &Device::Cpu).unwrap();
    let g = Tensor::new(&[0.5f64, -4.0], &Device::Cpu).unwrap();
    let mut opt = Optimizer::new(config, vec![theta.clone()], lr).unwrap();
    for _ in 0..2 {
        let grads = (theta.as_tensor() * &g).unwrap().sum_all().unwrap().backward().unwrap();
        opt.step(&grads).unwrap();
    }
    theta.as_tensor().to_vec1().unwrap()
}

fn close(got: &[f64], want: &[f64]) {
    for (a, b) in got.iter().zip(want) {
        assert!((a - b).abs() < 1e-9, "got {got:?}, want {want:?}");
    }
}

#[test]
fn rmsprop_two_steps_by_hand() {
    // v1 = 0.1 g², step1 = lr g / (sqrt(v1) + eps) = lr sign(g) / sqrt(0.1) (eps 0);
    // v2 = 0.9 v1 + 0.1 g² = 0.19 g², step2 = lr sign(g) / sqrt(0.19).
    let lr = 0.01;
    let s = lr * (1.0 / 0.1f64.sqrt() + 1.0 / 0.19f64.sqrt());
    close(&two_steps(OptimizerConfig::Rmsprop { alpha: 0.9, eps: 0.0 }, lr), &[1.0 - s, -2.0 + s]);
}

#[test]
fn sgd_momentum_two_steps_by_hand() {
    // b1 = g, b2 = 0.9 g + g = 1.9 g; θ2 = θ0 - lr (g + 1.9 g) = θ0 - 2.9 lr g.
    close(&two_steps(OptimizerConfig::Sgd { momentum: 0.9 }, 0.1), &[1.0 - 0.145, -2.0 + 1.16]);
}

#[test]
fn adam_two_steps_by_hand() {
    // With a constant gradient, bias-corrected m̂ = g and v̂ = g² at every step, so each step
    // moves lr · g / (|g| + eps) = lr · sign(g) (eps 0).
    let got = two_steps(OptimizerConfig::Adam { beta1: 0.9, beta2: 0.999, eps: 0.0 }, 0.05);
    close(&got, &[1.0 - 0.1, -2.0 + 0.1]);
}

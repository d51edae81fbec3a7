//! Gradient checks of the L-RNN module for every cell and merge: of the input and of every
//! weight (U, b, V, LayerNorm gain and bias, GRU gate blocks), against central finite
//! differences (directional derivatives along random directions), for both backends; and the
//! fused op against the composed reference on odd shapes.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use candle_core::{DType, Tensor, Var};
use common::{builder, flat, rand_tensor};
use lrnn_core::nn::{Cell, Forward, Layer, LayerRnn, LayerRnnConfig, Merge, ScanBackend};

const CELLS: [Cell; 3] = [Cell::Vanilla, Cell::VanillaLn, Cell::Gru];

struct Setup {
    vm: candle_nn::VarMap,
    net: LayerRnn,
    x: Var,
    seed: Tensor,
}

/// How the weights and the input are drawn.
#[derive(Clone, Copy, PartialEq)]
enum Draw {
    /// Signed values: ReLUs switch on and off everywhere.
    Signed,
    /// Positive input and weights (LayerNorm: bias 2 and gain 0.5): every ReLU stays on, so the
    /// loss is smooth and finite differences in f32 are not spoilt by kinks.
    KinkFree,
}

fn setup(cell: Cell, merge: Merge, dtype: DType, shape: [usize; 4], hidden: usize, salt: u64) -> Setup {
    setup_drawn(cell, merge, dtype, shape, hidden, salt, Draw::Signed)
}

fn setup_drawn(
    cell: Cell,
    merge: Merge,
    dtype: DType,
    shape: [usize; 4],
    hidden: usize,
    salt: u64,
    draw: Draw,
) -> Setup {
    let (vm, vb) = builder(dtype);
    let cfg = LayerRnnConfig { in_channels: shape[1], hidden, cell, merge };
    let net = LayerRnn::new(cfg, &vb).unwrap();
    // Recurrences scaled up so that they matter, and LN parameters moved off 1 and 0.
    let mut vars: Vec<(String, Var)> =
        vm.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0)); // deterministic values whatever the map's order
    for (i, (name, var)) in vars.iter().enumerate() {
        let scale = if name.ends_with("v.weight") { 0.6 } else { 0.5 };
        let mut t = rand_tensor(var.dims(), scale, salt + i as u64, dtype);
        t = match (draw, name.as_str()) {
            (Draw::Signed, n) if n.ends_with("ln.weight") => (t + 1.0).unwrap(),
            (Draw::Signed, _) => t,
            (Draw::KinkFree, n) if n.ends_with("ln.weight") => (t.ones_like().unwrap() * 0.5).unwrap(),
            (Draw::KinkFree, n) if n.ends_with("ln.bias") => (t.ones_like().unwrap() * 2.0).unwrap(),
            // LayerNorm output 0.5 n + 2 > 0 for any pre-activation: keep those signed, so the
            // normalised units are well spread.
            (Draw::KinkFree, _) if cell == Cell::VanillaLn => t,
            (Draw::KinkFree, _) => ((t.abs().unwrap() * 0.5).unwrap() + 0.05).unwrap(),
        };
        var.set(&t).unwrap();
    }
    let mut x = rand_tensor(&shape, 1.0, salt + 100, dtype);
    if draw == Draw::KinkFree && cell != Cell::VanillaLn {
        x = (x.abs().unwrap() + 0.5).unwrap();
    }
    let x = Var::from_tensor(&x).unwrap();
    let out_c = cfg.out_channels();
    let seed = rand_tensor(&[shape[0], out_c, shape[2], shape[3]], 1.0, salt + 200, dtype);
    Setup { vm, net, x, seed }
}

impl Setup {
    fn loss(&self, backend: ScanBackend) -> Tensor {
        let out = self.net.forward(self.x.as_tensor(), &mut Forward::eval().with_backend(backend)).unwrap();
        (out * &self.seed).unwrap().sum_all().unwrap()
    }

    fn loss_value(&self, backend: ScanBackend) -> f64 {
        self.loss(backend).to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
    }

    /// Every variable by name, the input as `input`.
    fn vars(&self) -> Vec<(String, Var)> {
        let mut v: Vec<(String, Var)> =
            self.vm.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.push(("input".into(), self.x.clone()));
        v
    }

    /// Compares `<grad, δ>` with the central difference of the loss along `δ`, for every
    /// variable and two random directions each.
    fn check_fd(&self, backend: ScanBackend, eps: f64, rtol: f64, atol: f64, tag: &str) {
        let grads = self.loss(backend).backward().unwrap();
        let dtype = self.x.dtype();
        let mut checked = 0;
        for (i, (name, var)) in self.vars().into_iter().enumerate() {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{tag}: no gradient for {name}"));
            let orig = var.as_tensor().copy().unwrap();
            for j in 0..2 {
                let delta = rand_tensor(var.dims(), 1.0, 1000 + 10 * i as u64 + j, dtype);
                let analytic: f64 = flat(g).iter().zip(flat(&delta)).map(|(a, b)| a * b).sum();
                var.set(&(&orig + (&delta * eps).unwrap()).unwrap()).unwrap();
                let plus = self.loss_value(backend);
                var.set(&(&orig - (&delta * eps).unwrap()).unwrap()).unwrap();
                let minus = self.loss_value(backend);
                var.set(&orig).unwrap();
                let numeric = (plus - minus) / (2.0 * eps);
                let err = (analytic - numeric).abs();
                assert!(
                    err <= atol + rtol * numeric.abs(),
                    "{tag}: {name}: analytic {analytic}, finite difference {numeric} (err {err:e})"
                );
                checked += 1;
            }
        }
        assert!(checked >= 2 * 7, "{tag}: only {checked} checks");
    }
}

#[test]
fn reference_gradients_match_finite_differences_in_f64() {
    for cell in CELLS {
        for merge in [Merge::Sum, Merge::Concat] {
            let s = setup(cell, merge, DType::F64, [2, 3, 4, 5], 3, 11);
            s.check_fd(ScanBackend::Reference, 1e-6, 1e-6, 1e-8, &format!("{cell:?} {merge:?} f64"));
        }
    }
}

#[test]
fn fused_gradients_match_finite_differences_in_f32() {
    // The fused op computes in f32 only; finite differences in f32 need a smooth loss (see
    // `Draw::KinkFree`). Its handling of ReLU masks is checked against the reference (below) and
    // against PyTorch (tests/pytorch_parity.rs).
    for cell in CELLS {
        for merge in [Merge::Sum, Merge::Concat] {
            let s = setup_drawn(cell, merge, DType::F32, [2, 3, 4, 5], 3, 21, Draw::KinkFree);
            s.check_fd(ScanBackend::Fused, 3e-3, 1e-2, 1e-2, &format!("{cell:?} {merge:?} f32"));
        }
    }
}

#[test]
fn fused_should_match_reference_backend_on_odd_shapes() {
    // Odd sizes: H != W, nothing a multiple of a block size; batch 3.
    for cell in CELLS {
        for merge in [Merge::Sum, Merge::Concat] {
            let s = setup(cell, merge, DType::F32, [3, 5, 7, 9], 6, 31);
            let tag = format!("{cell:?} {merge:?}");
            let lf = s.loss(ScanBackend::Fused);
            let lr = s.loss(ScanBackend::Reference);
            let (gf, gr) = (lf.backward().unwrap(), lr.backward().unwrap());
            let (a, b) = (flat(&lf)[0], flat(&lr)[0]);
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{tag}: loss {a} vs {b}");
            for (name, var) in s.vars() {
                let (f, r) = (flat(gf.get(var.as_tensor()).unwrap()), flat(gr.get(var.as_tensor()).unwrap()));
                let scale = r.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-6);
                let err = f.iter().zip(&r).fold(0f64, |m, (x, y)| m.max((x - y).abs()));
                assert!(err / scale < 1e-4, "{tag}: grad {name}: relative error {:e}", err / scale);
            }
        }
    }
}

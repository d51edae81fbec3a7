//! Inserting spatial RNNs into pre-trained convolutions (SPEC §4): with `V = 0` the network's
//! output is bit-for-bit the CNN's, and the first gradient of `V` is the one of App. B
//! (eq. 20-21), checked against a direct computation and against finite differences.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Conv2d, Conv2dConfig, Optimizer, VarBuilder, VarMap};
use lrnn_core::nn::{Axis, Conv, ConvWithRnn, Forward, Layer, ScanBackend};

const BACKENDS: [ScanBackend; 2] = [ScanBackend::Fused, ScanBackend::Reference];

fn randn(shape: &[usize], dtype: DType, seed: u64) -> Tensor {
    // Deterministic values without a random-number crate.
    let n: usize = shape.iter().product();
    let mut s = seed;
    let v: Vec<f64> = (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

struct Net {
    vm: VarMap,
    fc1: Conv2d,
    fc2: Conv2d,
}

/// Two "pre-trained" layers: fc1 3x3 (3 -> 6), fc2 1x1 (6 -> 6), with ReLUs.
fn pretrained(dtype: DType) -> Net {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, dtype, &Device::Cpu);
    let fc1 =
        candle_nn::conv2d(3, 6, 3, Conv2dConfig { padding: 1, ..Default::default() }, vb.pp("fc1")).unwrap();
    let fc2 = candle_nn::conv2d(6, 6, 1, Conv2dConfig::default(), vb.pp("fc2")).unwrap();
    Net { vm, fc1, fc2 }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn inserted_pair_with_zero_recurrence_equals_the_convolution_exactly() {
    let net = pretrained(DType::F32);
    let vb = VarBuilder::from_varmap(&net.vm, DType::F32, &Device::Cpu);
    let x = randn(&[2, 3, 7, 9], DType::F32, 1);
    // The CNN runs the same convolution the inserted layers use (the project's own).
    let (c1, c2) = (Conv::from_candle(&net.fc1).unwrap(), Conv::from_candle(&net.fc2).unwrap());
    let plain1 = x.apply(&c1).unwrap().relu().unwrap();
    let plain2 = plain1.apply(&c2).unwrap().relu().unwrap();
    // A horizontal pair in fc1 and a vertical pair in fc2: a whole L-RNN module.
    let l1 =
        ConvWithRnn::insert(Conv::from_candle(&net.fc1).unwrap(), Axis::Horizontal, &vb.pp("fc1")).unwrap();
    let l2 =
        ConvWithRnn::insert(Conv::from_candle(&net.fc2).unwrap(), Axis::Vertical, &vb.pp("fc2")).unwrap();
    for backend in BACKENDS {
        for capture in [false, true] {
            let mut fwd = Forward::eval().with_backend(backend);
            if capture {
                fwd = fwd.capturing();
            }
            let y1 = l1.forward(&x, &mut fwd).unwrap();
            let y2 = l2.forward(&y1, &mut fwd).unwrap();
            assert_eq!(max_abs_diff(&y1, &plain1), 0.0, "{backend:?}: fc1 differs");
            assert_eq!(max_abs_diff(&y2, &plain2), 0.0, "{backend:?}: fc2 differs");
            let maps = fwd.take_captured();
            if capture {
                let names: Vec<&str> = maps.keys().map(String::as_str).collect();
                assert_eq!(names, ["fc1.lr", "fc1.rl", "fc2.bt", "fc2.tb"]);
            }
        }
    }
    let names: Vec<String> = net.vm.data().lock().unwrap().keys().cloned().collect();
    for v in ["fc1.v_lr.weight", "fc1.v_rl.weight", "fc2.v_tb.weight", "fc2.v_bt.weight"] {
        assert!(names.iter().any(|n| n == v), "no variable {v}");
    }
}

/// App. B: with V = 0, h_t = f(a_t) with a_t = U x_t + b, and
/// ∂E/∂V = Σ_t (f'(a_t) ⊙ ∂E/∂h_t) h_{t-1}^T. The pair is merged by the mean, so
/// ∂E/∂h_t = R_t / 2 for the loss E = Σ R ⊙ output.
fn app_b_gradient(xi: &Tensor, r: &Tensor, reverse: bool) -> Vec<f64> {
    let (b, d, h, w) = xi.dims4().unwrap();
    let a: Vec<f64> = xi.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let rr: Vec<f64> = r.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let at = |bi: usize, c: usize, y: usize, x: usize| ((bi * d + c) * h + y) * w + x;
    let mut g = vec![0f64; d * d];
    for bi in 0..b {
        for y in 0..h {
            for x in 0..w {
                let prev = if reverse { x + 1 } else { x.wrapping_sub(1) };
                if prev >= w {
                    continue; // first step of the scan: no h_{t-1}
                }
                for i in 0..d {
                    let da = if a[at(bi, i, y, x)] > 0.0 { 0.5 * rr[at(bi, i, y, x)] } else { 0.0 };
                    for j in 0..d {
                        g[i * d + j] += da * a[at(bi, j, y, prev)].max(0.0);
                    }
                }
            }
        }
    }
    g
}

#[test]
fn first_gradient_of_v_is_the_one_of_appendix_b() {
    let net = pretrained(DType::F32);
    let vb = VarBuilder::from_varmap(&net.vm, DType::F32, &Device::Cpu);
    let l1 =
        ConvWithRnn::insert(Conv::from_candle(&net.fc1).unwrap(), Axis::Horizontal, &vb.pp("fc1")).unwrap();
    let x = randn(&[2, 3, 5, 6], DType::F32, 2);
    let r = randn(&[2, 6, 5, 6], DType::F32, 3);
    let xi = x.apply(&Conv::from_candle(&net.fc1).unwrap()).unwrap();
    let want_lr = app_b_gradient(&xi, &r, false);
    let want_rl = app_b_gradient(&xi, &r, true);
    assert!(want_lr.iter().any(|v| v.abs() > 1e-3), "degenerate case");
    let vars = net.vm.data().lock().unwrap().clone();
    for backend in BACKENDS {
        let out = l1.forward(&x, &mut Forward::train().with_backend(backend)).unwrap();
        let grads = (out * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, want) in [("fc1.v_lr.weight", &want_lr), ("fc1.v_rl.weight", &want_rl)] {
            let g: Vec<f64> = grads
                .get(&vars[name])
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
            for (k, (a, b)) in g.iter().zip(want.iter()).enumerate() {
                assert!((a - b).abs() <= 1e-5 * scale, "{backend:?} {name}[{k}]: autograd {a}, App. B {b}");
            }
        }
    }
    // One gradient step from V = 0 gives V_1 = -α ∂E/∂V (eq. 20).
    let v = vars["fc1.v_lr.weight"].clone();
    let mut sgd = candle_nn::SGD::new(vec![v.clone()], 0.1).unwrap();
    let out = l1.forward(&x, &mut Forward::train()).unwrap();
    sgd.backward_step(&(out * &r).unwrap().sum_all().unwrap()).unwrap();
    let v1: Vec<f64> = v.as_tensor().to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    for (a, b) in v1.iter().zip(&want_lr) {
        assert!((a + 0.1 * b).abs() <= 1e-6, "V_1 = {a}, -α ∂E/∂V = {}", -0.1 * b);
    }
}

#[test]
fn first_gradient_of_v_matches_finite_differences() {
    // In f64 through the composed reference (the fused op's gradient equals App. B above).
    let net = pretrained(DType::F64);
    let vb = VarBuilder::from_varmap(&net.vm, DType::F64, &Device::Cpu);
    let l1 =
        ConvWithRnn::insert(Conv::from_candle(&net.fc1).unwrap(), Axis::Horizontal, &vb.pp("fc1")).unwrap();
    let x = randn(&[1, 3, 4, 5], DType::F64, 4);
    let r = randn(&[1, 6, 4, 5], DType::F64, 5);
    let v: Var = net.vm.data().lock().unwrap()["fc1.v_lr.weight"].clone();
    let loss = |fwd: &mut Forward| -> f64 {
        (l1.forward(&x, fwd).unwrap() * &r).unwrap().sum_all().unwrap().to_scalar().unwrap()
    };
    let grads =
        (l1.forward(&x, &mut Forward::train()).unwrap() * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let g: Vec<f64> = grads.get(&v).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let eps = 1e-6;
    for k in 0..g.len() {
        let mut e = vec![0f64; g.len()];
        e[k] = eps;
        let delta = Tensor::from_vec(e, v.dims(), &Device::Cpu).unwrap();
        let zero = v.as_tensor().zeros_like().unwrap();
        v.set(&delta).unwrap();
        let plus = loss(&mut Forward::eval().with_backend(ScanBackend::Reference));
        v.set(&delta.neg().unwrap()).unwrap();
        let minus = loss(&mut Forward::eval().with_backend(ScanBackend::Reference));
        v.set(&zero).unwrap();
        let numeric = (plus - minus) / (2.0 * eps);
        assert!(
            (numeric - g[k]).abs() <= 1e-6 + 1e-5 * g[k].abs(),
            "V[{k}]: autograd {}, finite difference {numeric}",
            g[k]
        );
    }
}

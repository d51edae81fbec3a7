//! Helpers shared by the core's tests.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

/// A varmap and a builder over it.
pub fn builder(dtype: DType) -> (VarMap, VarBuilder<'static>) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, dtype, &Device::Cpu);
    (vm, vb)
}

/// Sets variable `name` of `vm` to `values` with the variable's shape.
pub fn set(vm: &VarMap, name: &str, values: &[f64]) {
    let data = vm.data().lock().unwrap();
    let var = data.get(name).unwrap_or_else(|| panic!("no variable {name}"));
    let t = Tensor::new(values, &Device::Cpu)
        .unwrap()
        .reshape(var.dims())
        .unwrap()
        .to_dtype(var.dtype())
        .unwrap();
    var.set(&t).unwrap();
}

/// The tensor as a flat `Vec<f64>`.
pub fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// Asserts element-wise `|got - want| <= tol`.
pub fn assert_all_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}: [{i}] got {g}, want {w} (tol {tol})");
    }
}

/// Deterministic pseudo-random values in [-1, 1) (a small LCG, so tests need no RNG crate).
pub fn rand_vec(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// A random tensor of `shape` scaled by `scale`.
pub fn rand_tensor(shape: &[usize], scale: f64, seed: u64, dtype: DType) -> Tensor {
    let n = shape.iter().product();
    let v: Vec<f64> = rand_vec(n, seed).into_iter().map(|x| x * scale).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

//! Shared helpers of the cross-crate tests: fixture paths and tolerant comparisons that print
//! the first mismatches (llm.c style).

use std::path::PathBuf;

use candle_core::Tensor;

/// The directory of the committed fixtures.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Names of the lone-module fixtures written by `fixtures/gen_fixtures.py`.
pub const MODULE_FIXTURES: [&str; 6] = [
    "lrnn_vanilla_sum",
    "lrnn_vanilla_concat",
    "lrnn_vanilla_ln_sum",
    "lrnn_vanilla_ln_concat",
    "lrnn_gru_sum",
    "lrnn_gru_concat",
];

/// `max |got - want| / max |want|` (or the absolute error when `want` is all zeros).
///
/// # Panics
/// When shapes differ or the tensors cannot be read.
pub fn rel_err(got: &Tensor, want: &Tensor) -> f32 {
    assert_eq!(got.dims(), want.dims(), "shapes differ");
    let g: Vec<f32> = got.flatten_all().and_then(|t| t.to_vec1()).expect("readable tensor");
    let w: Vec<f32> = want.flatten_all().and_then(|t| t.to_vec1()).expect("readable tensor");
    let scale = w.iter().fold(0f32, |m, x| m.max(x.abs()));
    let err = g.iter().zip(&w).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    if scale > 0.0 {
        err / scale
    } else {
        err
    }
}

/// Asserts `rel_err(got, want) < tol`, printing the first mismatching elements otherwise.
///
/// # Panics
/// When the error is too large.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f32) {
    let e = rel_err(got, want);
    if e >= tol {
        let g: Vec<f32> = got.flatten_all().and_then(|t| t.to_vec1()).expect("readable tensor");
        let w: Vec<f32> = want.flatten_all().and_then(|t| t.to_vec1()).expect("readable tensor");
        let shown: Vec<String> = g
            .iter()
            .zip(&w)
            .enumerate()
            .filter(|(_, (a, b))| (*a - *b).abs() > tol * b.abs().max(1e-6))
            .take(5)
            .map(|(i, (a, b))| format!("[{i}] got {a} want {b}"))
            .collect();
        panic!("{what}: relative error {e:e} >= {tol:e}; first mismatches: {}", shown.join("; "));
    }
}

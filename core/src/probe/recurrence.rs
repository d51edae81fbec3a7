//! Analysis of a recurrence matrix `V` (SPEC §7): singular values, complex eigenvalues, spectral
//! radius and the memory length it implies. With `h_t ≈ V h_{t-1}` (ReLU aside), a component
//! along an eigenvector decays like `|λ|^t`; the memory length is the number of steps for the
//! slowest one to fall to `1/e`, `-1 / ln ρ` for a spectral radius `ρ < 1` (infinite otherwise).

use nalgebra::DMatrix;

/// The analysis of one square matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrum {
    /// Eigenvalues `(re, im)`, by decreasing modulus.
    pub eigenvalues: Vec<(f64, f64)>,
    /// Singular values, decreasing.
    pub singular_values: Vec<f64>,
    /// Largest eigenvalue modulus.
    pub spectral_radius: f64,
    /// Steps for the slowest mode to decay by `1/e`; `None` when it does not decay (`ρ ≥ 1`).
    pub memory_length: Option<f64>,
}

impl Spectrum {
    /// The spectrum of the matrix times `s ≥ 0`: eigenvalues and singular values scale with it,
    /// the memory length follows the new radius (no new decomposition).
    pub fn scaled(&self, s: f64) -> Spectrum {
        let s = s.max(0.0);
        let spectral_radius = self.spectral_radius * s;
        Spectrum {
            eigenvalues: self.eigenvalues.iter().map(|(re, im)| (re * s, im * s)).collect(),
            singular_values: self.singular_values.iter().map(|v| v * s).collect(),
            spectral_radius,
            memory_length: memory_length(spectral_radius),
        }
    }
}

fn memory_length(spectral_radius: f64) -> Option<f64> {
    (spectral_radius < 1.0).then(|| if spectral_radius > 0.0 { -1.0 / spectral_radius.ln() } else { 0.0 })
}

/// Analyses a square matrix given row-major.
///
/// The decompositions are bounded: nalgebra's unbounded ones (`complex_eigenvalues`,
/// `singular_values`) can loop forever on some matrices (a fine-tuned `V` once hung the app's
/// worker). Each is tried at a tight tolerance, then looser ones; if none converges the
/// eigenvalues (or singular values) are empty and the spectral radius is NaN.
///
/// # Panics
/// When `values.len() != n * n`.
pub fn analyse(values: &[f32], n: usize) -> Spectrum {
    analyse_within(values, n, 200 * n.max(10))
}

/// [`analyse`] with at most `max_iter` iterations per decomposition attempt.
fn analyse_within(values: &[f32], n: usize, max_iter: usize) -> Spectrum {
    assert_eq!(values.len(), n * n, "a square matrix");
    let m = DMatrix::from_row_iterator(n, n, values.iter().map(|&v| f64::from(v)));
    // Relative to neighbouring diagonal entries; the matrices hold f32 values, so 1e-12 is far
    // below their precision (f64::EPSILON only made the decomposition ~20% slower).
    const TOLERANCES: [f64; 3] = [1e-12, 1e-9, 1e-6];
    let mut eigenvalues: Vec<(f64, f64)> = TOLERANCES
        .iter()
        .find_map(|&eps| nalgebra::Schur::try_new(m.clone(), eps, max_iter))
        .map(|s| s.complex_eigenvalues().iter().map(|c| (c.re, c.im)).collect())
        .unwrap_or_default();
    eigenvalues.sort_by(|a, b| (b.0.hypot(b.1)).total_cmp(&a.0.hypot(a.1)));
    let mut singular_values: Vec<f64> = TOLERANCES
        .iter()
        .find_map(|&eps| nalgebra::SVD::try_new(m.clone(), false, false, eps, max_iter))
        .map(|s| s.singular_values.iter().copied().collect())
        .unwrap_or_default();
    singular_values.sort_by(|a, b| b.total_cmp(a));
    let spectral_radius = match eigenvalues.first() {
        Some(e) => e.0.hypot(e.1),
        None if n == 0 => 0.0,
        None => f64::NAN,
    };
    Spectrum { eigenvalues, singular_values, spectral_radius, memory_length: memory_length(spectral_radius) }
}

/// The per-gate blocks of a GRU recurrence `[3D, D]` (`W_z`, `W_r`, `W_h`), or the whole matrix
/// of a vanilla cell `[D, D]`, each with its name.
pub fn gate_blocks(values: &[f32], rows: usize, d: usize) -> Vec<(&'static str, &[f32])> {
    if rows == 3 * d {
        vec![("z", &values[..d * d]), ("r", &values[d * d..2 * d * d]), ("h", &values[2 * d * d..])]
    } else {
        vec![("v", values)]
    }
}

#[cfg(test)]
mod scaled_tests {
    use super::*;

    #[test]
    fn a_scaled_spectrum_is_the_spectrum_of_the_scaled_matrix() {
        let v = [0.5f32, -0.3, 0.2, 0.4, 0.1, 0.0, -0.2, 0.3, 0.6];
        let half: Vec<f32> = v.iter().map(|x| x * 0.5).collect();
        let (a, b) = (analyse(&v, 3).scaled(0.5), analyse(&half, 3));
        assert!((a.spectral_radius - b.spectral_radius).abs() < 1e-6);
        assert!((a.memory_length.unwrap() - b.memory_length.unwrap()).abs() < 1e-6);
        for (x, y) in a.singular_values.iter().zip(&b.singular_values) {
            assert!((x - y).abs() < 1e-6);
        }
        assert_eq!(analyse(&v, 3).scaled(0.0).spectral_radius, 0.0);
    }

    #[test]
    fn a_decomposition_that_does_not_converge_ends_with_nan_not_a_hang() {
        // A matrix with complex eigenvalues needs several iterations; one is not enough.
        let n = 6;
        let values: Vec<f32> = (0..n * n).map(|i| ((i * 7919 % 13) as f32 - 6.0) / 6.0).collect();
        let s = analyse_within(&values, n, 1);
        assert!(s.eigenvalues.is_empty() && s.spectral_radius.is_nan(), "{s:?}");
        assert_eq!(s.memory_length, None);
        let full = analyse(&values, n);
        assert_eq!(full.eigenvalues.len(), n);
        assert!(full.spectral_radius.is_finite());
    }
}

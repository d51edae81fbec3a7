//! The project's one seedable random-number generator (initialisation, dropout masks, epoch
//! orders, augmentation, generated data): small, fast, and its whole state fits in a checkpoint.

use serde::{Deserialize, Serialize};

/// SplitMix64: tiny, fast, seedable; its whole state is one `u64` (saved with checkpoints so a
/// resumed run draws the same numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[-a, a)`.
    pub fn symmetric(&mut self, a: f32) -> f32 {
        (2.0 * self.uniform() - 1.0) * a
    }

    /// Standard normal (Box-Muller), mean 0 and deviation 1.
    pub fn normal(&mut self) -> f32 {
        // `1 - uniform` is in (0, 1]: the logarithm is finite.
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }

    /// Uniform integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Shuffles a slice in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn normal_draws_are_finite_with_mean_zero_and_deviation_one() {
        let mut rng = Rng(11);
        let n = 200_000;
        let draws: Vec<f64> = (0..n).map(|_| f64::from(rng.normal())).collect();
        assert!(draws.iter().all(|d| d.is_finite()));
        let mean = draws.iter().sum::<f64>() / f64::from(n);
        let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / f64::from(n);
        // Standard errors: 1/sqrt(n) = 0.0022 for the mean, sqrt(2/n) = 0.0032 for the variance.
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.015, "variance {var}");
        // The tails: about 4.55% beyond two deviations.
        let tail = draws.iter().filter(|d| d.abs() > 2.0).count() as f64 / f64::from(n);
        assert!((tail - 0.0455).abs() < 0.003, "tail {tail}");
    }
}

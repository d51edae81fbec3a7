//! Parsers of the command line's numbers: each refuses, at parse time and with the limit in
//! the message, a value that would later allocate without bound, divide by zero or spread NaN
//! (`--size 0`, `--batch 0`, `--size 100000`, `--decay nan`, …). The limits are the core's
//! (`lrnn_core::limits`).

use lrnn_core::limits::{MAX_CHANNELS, MAX_COUNT, MAX_SIDE};

fn in_range(s: &str, min: usize, max: usize) -> Result<usize, String> {
    let v: usize = s.trim().parse().map_err(|_| format!("`{s}` is not a whole number"))?;
    if v < min || v > max {
        return Err(format!("{v} is outside {min}..={max}"));
    }
    Ok(v)
}

/// A side in pixels (`--size`, `--width`): 1 to [`MAX_SIDE`].
pub fn side(s: &str) -> Result<usize, String> {
    in_range(s, 1, MAX_SIDE)
}

/// A side in pixels as `u32` (`lrnn demo --width`).
pub fn side_u32(s: &str) -> Result<u32, String> {
    side(s).map(|v| v as u32)
}

/// A count (`--batch`, `--count`, `--epochs`, `--steps`, …): 1 to [`MAX_COUNT`].
pub fn count(s: &str) -> Result<usize, String> {
    in_range(s, 1, MAX_COUNT)
}

/// A channel count (`--heads`, `--max-channels`): 1 to [`MAX_CHANNELS`].
pub fn channels(s: &str) -> Result<usize, String> {
    in_range(s, 1, MAX_CHANNELS)
}

/// A finite number (no NaN or infinity).
pub fn finite(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number"))?;
    if !v.is_finite() {
        return Err(format!("{v} is not a finite number"));
    }
    Ok(v)
}

/// `v` as an `f32`, refused beyond its range.
fn to_f32(v: f64) -> Result<f32, String> {
    if v.abs() > f64::from(f32::MAX) {
        return Err(format!("{v} is beyond f32"));
    }
    Ok(v as f32)
}

/// A finite `f32`.
pub fn finite_f32(s: &str) -> Result<f32, String> {
    to_f32(finite(s)?)
}

/// A finite positive number (learning rates, time budgets).
pub fn positive(s: &str) -> Result<f64, String> {
    let v = finite(s)?;
    if v <= 0.0 {
        return Err(format!("{v} must be above 0"));
    }
    Ok(v)
}

/// A finite number at least 0 (a schedule's lowest learning rate).
pub fn non_negative(s: &str) -> Result<f64, String> {
    let v = finite(s)?;
    if v < 0.0 {
        return Err(format!("{v} must not be negative"));
    }
    Ok(v)
}

/// A finite positive `f32` (a CRF kernel's width).
pub fn positive_f32(s: &str) -> Result<f32, String> {
    to_f32(positive(s)?)
}

/// A finite `f32` at least 0 (a CRF kernel's weight).
pub fn non_negative_f32(s: &str) -> Result<f32, String> {
    to_f32(non_negative(s)?)
}

/// A number of mean-field updates: 0 to 1000.
pub fn iterations(s: &str) -> Result<usize, String> {
    let v: usize = s.trim().parse().map_err(|_| format!("`{s}` is not a whole number"))?;
    if v > lrnn_core::crf::MAX_ITERATIONS {
        return Err(format!("{v} is above {}", lrnn_core::crf::MAX_ITERATIONS));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_values_are_refused_with_the_range() {
        assert_eq!(side("32"), Ok(32));
        assert!(side("0").unwrap_err().contains("1..=16384"));
        assert!(side("100000").is_err());
        assert!(count("0").is_err());
        assert!(count("-3").unwrap_err().contains("not a whole number"));
        assert!(finite_f32("nan").is_err());
        assert!(finite_f32("inf").is_err());
        assert!(finite_f32("1e300").is_err());
        assert_eq!(finite_f32("0.5"), Ok(0.5));
        assert!(positive("0").is_err());
    }
}

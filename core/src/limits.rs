//! The limits every boundary checks before it allocates: sizes in model descriptions, the sides
//! of inputs and photos, tensors read from files, and the memory one forward pass may need. They
//! are stated here once (the README lists them) and each refusal names the limit and how to
//! raise it, so a hostile or mistaken file gives a clear line instead of an allocation abort.

/// Channels, hidden units, classes or features of any one layer.
pub const MAX_CHANNELS: usize = 65_536;

/// Layers (or insertions) in one description.
pub const MAX_LAYERS: usize = 4_096;

/// A side of an input, a photo after resizing, `--size` or `--width`.
pub const MAX_SIDE: usize = 16_384;

/// Pixels of a photo as decoded (before resizing): 256 megapixels.
pub const MAX_PHOTO_PIXELS: u64 = 1 << 28;

/// Images in one batch or one dataset read (`--batch`, `--count`).
pub const MAX_COUNT: usize = 1 << 24;

/// The environment variable that sets the memory budget of one model (weights) or one forward
/// pass (activations), in GiB.
pub const MEMORY_ENV: &str = "LRNN_MEMORY_LIMIT_GB";

/// The budget when [`MEMORY_ENV`] is not set: 16 GiB.
pub const DEFAULT_MEMORY_GIB: f64 = 16.0;

/// The memory budget in bytes ([`MEMORY_ENV`], else [`DEFAULT_MEMORY_GIB`]; an unreadable or
/// non-positive value counts as unset).
pub fn memory_budget() -> u64 {
    let gib = std::env::var(MEMORY_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .unwrap_or(DEFAULT_MEMORY_GIB);
    (gib * (1u64 << 30) as f64).min(u64::MAX as f64) as u64
}

/// Checks that `bytes` of `what` fit the memory budget.
///
/// # Errors
/// The need and the budget in GiB, and how to raise it.
pub fn check_memory(bytes: u64, what: &str) -> std::result::Result<(), String> {
    let budget = memory_budget();
    if bytes > budget {
        return Err(format!(
            "{what} needs about {:.1} GiB, over the memory limit of {:.1} GiB (set {MEMORY_ENV} to raise it)",
            gib(bytes),
            gib(budget)
        ));
    }
    Ok(())
}

/// Checks one size against its limit.
///
/// # Errors
/// `what` with its value and the limit.
pub fn check_size(value: usize, max: usize, what: &str) -> std::result::Result<(), String> {
    if value > max {
        return Err(format!("{what} {value} is over the limit of {max}"));
    }
    Ok(())
}

/// The product of `dims` (elements of a tensor of that shape), `None` on overflow.
pub fn elements(dims: &[usize]) -> Option<u64> {
    dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_over_their_limit_are_named() {
        assert!(check_size(MAX_CHANNELS, MAX_CHANNELS, "hidden").is_ok());
        let e = check_size(MAX_CHANNELS + 1, MAX_CHANNELS, "hidden").unwrap_err();
        assert!(e.contains("hidden 65537") && e.contains("65536"), "{e}");
        assert_eq!(elements(&[2, 3, 4]), Some(24));
        assert_eq!(elements(&[usize::MAX, 3]), None);
        assert!(check_memory(1 << 20, "a pass").is_ok());
        let e = check_memory(u64::MAX, "a pass").unwrap_err();
        assert!(e.contains(MEMORY_ENV), "{e}");
    }
}

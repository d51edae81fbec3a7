//! Borrowing the f32 elements of CPU tensors, for the fused ops' hand-written CPU code (the
//! pair, scan, convolution, BatchNorm and pooling ops).

use candle_core::{backend::BackendStorage, CpuStorage, Layout, Result, Tensor};

/// Runs `f` on the f32 elements of `t` (a CPU tensor) without copying them when `t` is
/// contiguous, on a contiguous copy otherwise; `what` names the tensor in errors.
pub(crate) fn with_f32<R>(t: &Tensor, what: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(s) => f(cpu_f32(s, layout, what)?),
        _ => candle_core::bail!("{what} must be on the CPU"),
    }
}

/// The f32 elements of a contiguous CPU storage (the fused ops' inputs); `what` names the
/// input in errors.
pub(crate) fn cpu_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        other => candle_core::bail!("{what} must be f32, got {:?}", other.dtype()),
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}

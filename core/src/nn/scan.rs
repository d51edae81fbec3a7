//! The spatial scan composed of candle ops (the reference implementation), and the choice
//! between it and the fused ops.
//!
//! Three implementations compute the same thing:
//! - the fused pair op ([`super::kernels::pair_op`], [`super::kernels::scan_cpu`]): a whole pair (projection, both
//!   scans, merge) as one candle custom op with a hand-written backward; f32 CPU tensors; what
//!   the networks run on the CPU;
//! - the fused scan op ([`super::kernels::scan_op`]): the scan alone, hand-written forward and backward on
//!   the CPU and, with the crate's `cuda` feature, on NVIDIA GPUs (`kernels/scan_cuda.rs`); what
//!   the networks run on CUDA, around candle's own projection and permutes;
//! - [`scan_reference`]: candle ops composed step by step (any device and dtype; slower, and its
//!   backward is quadratic in the sequence length because each step slices its input).
//!
//! [`ScanBackend::Auto`] picks a fused op where one applies. Tests check all against PyTorch or
//! against each other.

use candle_core::{DType, Device, Result, Tensor, D};

use super::Cell;

pub use super::cell::LN_EPS;

/// Which implementation runs a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanBackend {
    /// The fused ops for f32 CPU tensors (and f32 CUDA tensors with the `cuda` feature), the
    /// reference elsewhere.
    #[default]
    Auto,
    /// The fused ops (f32 CPU tensors; f32 CUDA tensors with the `cuda` feature).
    Fused,
    /// Composed candle ops, step by step.
    Reference,
}

impl ScanBackend {
    /// Whether a pair on `x` runs the fused pair op (f32 CPU tensors).
    ///
    /// # Errors
    /// [`ScanBackend::Fused`] asked for on a tensor no fused op can take.
    pub fn fused_for(self, x: &Tensor) -> Result<bool> {
        let ok = matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32;
        match self {
            ScanBackend::Auto => Ok(ok),
            ScanBackend::Fused if !ok && !fused_scan_runs_on(x) => candle_core::bail!(
                "the fused scan runs on f32 CPU tensors{}, got {:?} on {:?}",
                if cfg!(feature = "cuda") {
                    " and f32 CUDA tensors"
                } else {
                    " (CUDA: build with the `cuda` feature)"
                },
                x.dtype(),
                x.device()
            ),
            ScanBackend::Fused => Ok(ok),
            ScanBackend::Reference => Ok(false),
        }
    }

    /// Whether a scan on `xi` (outside the fused pair op) runs the fused scan op.
    pub fn fused_scan_for(self, xi: &Tensor) -> bool {
        self != ScanBackend::Reference && fused_scan_runs_on(xi)
    }
}

/// Whether the fused scan op has an implementation for `t`'s device and dtype.
fn fused_scan_runs_on(t: &Tensor) -> bool {
    t.dtype() == DType::F32 && (t.device().is_cpu() || (cfg!(feature = "cuda") && t.device().is_cuda()))
}

/// The scan through the implementation `backend` picks: [`super::scan_fused`] where it applies,
/// [`scan_reference`] elsewhere. Same arguments and result as [`scan_reference`].
///
/// # Errors
/// Shape errors.
pub fn scan(
    backend: ScanBackend,
    cell: Cell,
    xi: &Tensor,
    v: &Tensor,
    ln: Option<&Tensor>,
    reverse: &[bool],
) -> Result<Tensor> {
    if backend.fused_scan_for(xi) {
        super::scan_fused(cell, xi, v, ln, reverse)
    } else {
        scan_reference(cell, xi, v, ln, reverse)
    }
}

/// Checks the shapes of a reference scan; returns `(directions, sequence length, hidden)`.
fn check_shapes(
    cell: Cell,
    xi: &Tensor,
    v: &Tensor,
    ln: Option<&Tensor>,
    reverse: &[bool],
) -> Result<(usize, usize, usize)> {
    let (k_in, _seqs, len, gd) = xi.dims4()?;
    let (dirs, v_rows, hidden) = v.dims3()?;
    if gd != cell.gates() * hidden || v_rows != gd {
        candle_core::bail!(
            "scan ({}): xi {:?} and v {:?} do not fit a hidden size of {hidden}",
            cell.name(),
            xi.dims(),
            v.dims()
        );
    }
    if k_in != dirs && k_in != 1 {
        candle_core::bail!("scan: xi has {k_in} directions, v has {dirs}");
    }
    if reverse.len() != dirs {
        candle_core::bail!("scan: {} reverse flags for {dirs} directions", reverse.len());
    }
    match (cell, ln) {
        (Cell::VanillaLn, Some(ln)) if ln.dims() == [dirs, 2, hidden] => {}
        (Cell::VanillaLn, Some(ln)) => {
            candle_core::bail!("scan: ln is {:?}, expected [{dirs}, 2, {hidden}]", ln.dims())
        }
        (Cell::VanillaLn, None) => candle_core::bail!("scan: the vanilla_ln cell needs LayerNorm parameters"),
        _ => {}
    }
    Ok((dirs, len, hidden))
}

/// The scan composed of candle ops, one step at a time.
///
/// Shapes: `xi` `[K_in, N, T, G·D]` (`K_in` is `K`, or 1 when all directions share one input
/// projection), `v` `[K, G·D, D]`, `ln` `[K, 2, D]` (gain, bias; vanilla + LN only); result
/// `h` `[K, N, T, D]`. `reverse[k]` says whether direction `k` runs from the last position to
/// the first.
///
/// # Errors
/// Shape errors from candle.
pub fn scan_reference(
    cell: Cell,
    xi: &Tensor,
    v: &Tensor,
    ln: Option<&Tensor>,
    reverse: &[bool],
) -> Result<Tensor> {
    let (dirs, len, d) = check_shapes(cell, xi, v, ln, reverse)?;
    let mut per_dir = Vec::with_capacity(dirs);
    for (k, &rev) in reverse.iter().enumerate() {
        let xk = xi.get(if xi.dim(0)? == 1 { 0 } else { k })?; // [N, T, G·D]
        let vk = v.get(k)?; // [G·D, D]
        let mut states: Vec<Option<Tensor>> = vec![None; len];
        let mut prev: Option<Tensor> = None;
        for i in 0..len {
            let t = if rev { len - 1 - i } else { i };
            let x = xk.narrow(1, t, 1)?.squeeze(1)?; // [N, G·D]
            let h = match cell {
                Cell::Vanilla => {
                    let a = match &prev {
                        Some(p) => (x + p.matmul(&vk.t()?)?)?,
                        None => x,
                    };
                    a.relu()?
                }
                Cell::VanillaLn => {
                    let a = match &prev {
                        Some(p) => (x + p.matmul(&vk.t()?)?)?,
                        None => x,
                    };
                    let Some(lnk) = ln.map(|l| l.get(k)).transpose()? else {
                        candle_core::bail!("scan: the vanilla_ln cell needs LayerNorm parameters")
                    };
                    let mean = a.mean_keepdim(D::Minus1)?;
                    let c = a.broadcast_sub(&mean)?;
                    let var = c.sqr()?.mean_keepdim(D::Minus1)?;
                    let n = c.broadcast_div(&(var + f64::from(LN_EPS))?.sqrt()?)?;
                    n.broadcast_mul(&lnk.get(0)?)?.broadcast_add(&lnk.get(1)?)?.relu()?
                }
                Cell::Gru => {
                    let (xz, xr, xh) = (x.narrow(1, 0, d)?, x.narrow(1, d, d)?, x.narrow(1, 2 * d, d)?);
                    let (wz, wr, wh) = (vk.narrow(0, 0, d)?, vk.narrow(0, d, d)?, vk.narrow(0, 2 * d, d)?);
                    match &prev {
                        Some(s) => {
                            let z = candle_nn::ops::sigmoid(&(xz + s.matmul(&wz.t()?)?)?)?;
                            let r = candle_nn::ops::sigmoid(&(xr + s.matmul(&wr.t()?)?)?)?;
                            let hc = (xh + (s * r)?.matmul(&wh.t()?)?)?.relu()?;
                            ((z.ones_like()? - &z)? * hc + (z * s)?)?
                        }
                        None => {
                            let z = candle_nn::ops::sigmoid(&xz)?;
                            ((z.ones_like()? - z)? * xh.relu()?)?
                        }
                    }
                }
            };
            states[t] = Some(h.clone());
            prev = Some(h);
        }
        let states: Vec<Tensor> = states.into_iter().flatten().collect();
        per_dir.push(Tensor::stack(&states, 1)?); // [N, T, D]
    }
    Tensor::stack(&per_dir, 0)
}

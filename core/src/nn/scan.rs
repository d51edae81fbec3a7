//! The spatial scan as a candle operation: the recurrence of eq. 8-9 run over every sequence of
//! every direction of a pair, with autograd.
//!
//! Two implementations compute the same thing:
//! - [`ScanBackend::Fused`]: a candle custom op whose forward and backward are the hand-written
//!   CPU kernels of [`super::scan_cpu`] (f32, CPU tensors);
//! - [`ScanBackend::Reference`]: candle ops composed step by step (any device and dtype; slower;
//!   its backward is quadratic in the sequence length because each step slices its input).
//!
//! [`ScanBackend::Auto`] picks the fused op where it applies. Tests check both against PyTorch.
//!
//! Shapes: `xi` `[K_in, N, T, G·D]` (`K_in` is `K`, or 1 when all directions share one input
//! projection), `v` `[K, G·D, D]`, `ln` `[K, 2, D]` (gain, bias; vanilla + LN only), result
//! `h` `[K, N, T, D]`.

use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor, D,
};

use super::scan_cpu::{self, ScanArgs, ScanDims};
use super::Cell;

/// LayerNorm epsilon, added to the variance inside the square root (PyTorch's default).
pub const LN_EPS: f32 = 1e-5;

/// Which implementation runs a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanBackend {
    /// The fused op for f32 CPU tensors, the reference elsewhere.
    #[default]
    Auto,
    /// The fused custom op (f32 CPU tensors only).
    Fused,
    /// Composed candle ops, step by step.
    Reference,
}

/// Runs the scan of one or more directions.
///
/// `reverse[k]` says whether direction `k` runs from the last position to the first.
///
/// # Errors
/// Inconsistent shapes, an `ln` missing for the LayerNorm cell, or the fused backend asked for
/// on a non-CPU or non-f32 tensor.
pub fn scan(
    cell: Cell,
    xi: &Tensor,
    v: &Tensor,
    ln: Option<&Tensor>,
    reverse: &[bool],
    backend: ScanBackend,
) -> Result<Tensor> {
    let dims = check_shapes(cell, xi, v, ln, reverse)?;
    let fused_ok = matches!(xi.device(), Device::Cpu) && xi.dtype() == DType::F32;
    let use_fused = match backend {
        ScanBackend::Auto => fused_ok,
        ScanBackend::Fused if !fused_ok => {
            candle_core::bail!(
                "the fused scan runs on f32 CPU tensors only, got {:?} on {:?}",
                xi.dtype(),
                xi.device()
            )
        }
        ScanBackend::Fused => true,
        ScanBackend::Reference => false,
    };
    if use_fused {
        let ln = match ln {
            Some(t) => t.clone(),
            None => Tensor::zeros((dims.dirs, 2, dims.hidden), DType::F32, xi.device())?,
        };
        let op = ScanOp { cell, dims, reverse: reverse.to_vec() };
        xi.contiguous()?.apply_op3(&v.contiguous()?, &ln.contiguous()?, op)
    } else {
        scan_reference(cell, xi, v, ln, reverse)
    }
}

fn check_shapes(
    cell: Cell,
    xi: &Tensor,
    v: &Tensor,
    ln: Option<&Tensor>,
    reverse: &[bool],
) -> Result<ScanDims> {
    let (k_in, seqs, len, gd) = xi.dims4()?;
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
    Ok(ScanDims { dirs, seqs, len, hidden, shared_input: k_in == 1 && dirs > 1 })
}

/// The scan composed of candle ops, one step at a time.
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
    let dims = check_shapes(cell, xi, v, ln, reverse)?;
    let (d, len) = (dims.hidden, dims.len);
    let mut per_dir = Vec::with_capacity(dims.dirs);
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
                    let lnk = ln.map(|l| l.get(k)).transpose()?.expect("checked above");
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

/// The fused scan as a candle custom op over `(xi, v, ln)`.
struct ScanOp {
    cell: Cell,
    dims: ScanDims,
    reverse: Vec<bool>,
}

fn cpu_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        other => candle_core::bail!("scan: {what} must be f32, got {:?}", other.dtype()),
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("scan: {what} must be contiguous"),
    }
}

fn tensor_f32(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

impl ScanOp {
    fn args<'a>(&'a self, xi: &'a [f32], v: &'a [f32], ln: &'a [f32]) -> ScanArgs<'a> {
        ScanArgs { cell: self.cell, dims: self.dims, reverse: &self.reverse, xi, v, ln, eps: LN_EPS }
    }
}

impl CustomOp3 for ScanOp {
    fn name(&self) -> &'static str {
        "lrnn-spatial-scan"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (xi, v, ln) = (cpu_f32(s1, l1, "xi")?, cpu_f32(s2, l2, "v")?, cpu_f32(s3, l3, "ln")?);
        let mut h = vec![0f32; self.dims.h_len()];
        scan_cpu::forward(&self.args(xi, v, ln), &mut h);
        let d = self.dims;
        Ok((CpuStorage::F32(h), Shape::from((d.dirs, d.seqs, d.len, d.hidden))))
    }

    fn bwd(
        &self,
        xi: &Tensor,
        v: &Tensor,
        ln: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (xi_d, v_d, ln_d) = (tensor_f32(xi)?, tensor_f32(v)?, tensor_f32(ln)?);
        let (h, gh) = (tensor_f32(res)?, tensor_f32(grad_res)?);
        let g = scan_cpu::backward(&self.args(&xi_d, &v_d, &ln_d), &h, &gh);
        let d = self.dims;
        let gd = self.cell.gates() * d.hidden;
        let dev = xi.device();
        let mut dxi = Tensor::from_vec(g.dxi, (d.dirs, d.seqs, d.len, gd), dev)?;
        if xi.dim(0)? == 1 && d.dirs > 1 {
            dxi = dxi.sum_keepdim(0)?;
        }
        let dv = Tensor::from_vec(g.dv, (d.dirs, gd, d.hidden), dev)?;
        let dln = if self.cell == Cell::VanillaLn {
            Some(Tensor::from_vec(g.dln, (d.dirs, 2, d.hidden), dev)?)
        } else {
            None
        };
        Ok((Some(dxi), Some(dv), dln))
    }
}

//! The spatial scan alone as one candle custom op, in the sequence layout of
//! [`crate::nn::scan_reference`]: forward and backward written by hand, on the CPU
//! ([`super::scan_cpu`]) and, with the crate's `cuda` feature, on NVIDIA GPUs
//! ([`super::scan_cuda`]).
//!
//! On the CPU the whole pair (projection, scan, merge) is one op ([`super::pair_op`]), which is
//! what the networks run; this op is what they run on CUDA, where candle's own products and
//! copies do the projection and the permutes well, and the step loop is what needs fusing. Its
//! output is the states themselves, so its backward needs nothing saved from the forward.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::cpu::cpu_f32;
use super::scan_cpu::{self, ScanArgs, ScanDims};
use crate::nn::cell::LN_EPS;
use crate::nn::cell::{Axis, Cell};

/// The scan of `K` directions as one op: inputs `xi` `[K_in, N, T, G·D]` and the parameters
/// packed flat (`V` `[K, G·D, D]`, then LayerNorm `[K, 2, D]` for vanilla + LN); output the
/// states `[K, N, T, D]`.
#[derive(Debug, Clone)]
pub struct ScanOp {
    cell: Cell,
    hidden: usize,
    reverse: Vec<bool>,
}

impl ScanOp {
    /// A scan of `reverse.len()` directions.
    pub fn new(cell: Cell, hidden: usize, reverse: &[bool]) -> Self {
        Self { cell, hidden, reverse: reverse.to_vec() }
    }

    fn dirs(&self) -> usize {
        self.reverse.len()
    }

    fn gd(&self) -> usize {
        self.cell.gates() * self.hidden
    }

    fn packed_len(&self) -> usize {
        let (k, d) = (self.dirs(), self.hidden);
        k * self.gd() * d + if self.cell == Cell::VanillaLn { k * 2 * d } else { 0 }
    }

    /// `(K_in, N, T)` of `xi`, checked against the op and the parameter count.
    fn check(&self, xi: &Shape, params: usize) -> Result<(usize, usize, usize)> {
        let (k_in, n, t, gd) = xi.dims4()?;
        if !(1..=32).contains(&self.dirs()) {
            candle_core::bail!("scan op: {} directions (1 to 32 are supported)", self.dirs());
        }
        if gd != self.gd() || (k_in != 1 && k_in != self.dirs()) || params != self.packed_len() {
            candle_core::bail!(
                "scan op ({}, D = {}, {} directions): xi {:?} and {params} parameters do not fit",
                self.cell.name(),
                self.hidden,
                self.dirs(),
                xi.dims()
            );
        }
        Ok((k_in, n, t))
    }

    fn cpu_dims(&self, k_in: usize, n: usize, t: usize) -> ScanDims {
        // The sequence layout is a horizontal scan of one image of N rows and T columns.
        ScanDims {
            dirs: self.dirs(),
            batch: 1,
            height: n,
            width: t,
            hidden: self.hidden,
            axis: Axis::Horizontal,
            shared_input: k_in == 1,
        }
    }

    fn cpu_args<'a>(&'a self, dims: ScanDims, xi: &'a [f32], p: &'a [f32]) -> ScanArgs<'a> {
        let v_end = self.dirs() * self.gd() * self.hidden;
        ScanArgs {
            cell: self.cell,
            dims,
            reverse: &self.reverse,
            xi,
            v: &p[..v_end],
            ln: &p[v_end..],
            eps: LN_EPS,
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda_dims(&self, k_in: usize, n: usize, t: usize) -> super::scan_cuda::Dims {
        let rev = self.reverse.iter().enumerate().fold(0u32, |m, (k, &r)| m | (u32::from(r) << k));
        super::scan_cuda::Dims {
            cell: self.cell,
            dirs: self.dirs(),
            shared_input: k_in == 1,
            seqs: n,
            len: t,
            hidden: self.hidden,
            rev,
            eps: LN_EPS,
        }
    }

    /// The packed parameter gradient from `dV` and the LayerNorm gradient.
    fn packed_grad(&self, dv: &Tensor, dln: Option<Tensor>) -> Result<Tensor> {
        match dln {
            Some(dln) => Tensor::cat(&[dv.flatten_all()?, dln.flatten_all()?], 0),
            None => dv.flatten_all(),
        }
    }

    /// A shared input receives the sum of every direction's gradient.
    fn input_grad(dxi: Tensor, k_in: usize) -> Result<Tensor> {
        if k_in == 1 {
            dxi.sum_keepdim(0)
        } else {
            Ok(dxi)
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda_bwd(&self, xi: &Tensor, params: &Tensor, h: &Tensor, grad: &Tensor) -> Result<(Tensor, Tensor)> {
        use candle_core::cuda_backend::CudaStorage;
        use candle_core::op::BackpropOp;
        use candle_core::Storage;

        let (k_in, n, t) = self.check(xi.shape(), params.elem_count())?;
        let (xi, params, h, grad) =
            (xi.contiguous()?, params.contiguous()?, h.contiguous()?, grad.contiguous()?);
        let guards = [&xi, &params, &h, &grad].map(|t| t.storage_and_layout());
        let mut views = Vec::with_capacity(4);
        let mut dev = None;
        for (storage, layout) in &guards {
            let Storage::Cuda(cs) = &**storage else {
                candle_core::bail!("scan op: mixed devices in backward")
            };
            views.push(cs.as_cuda_slice::<f32>()?.slice(layout.start_offset()..));
            dev = Some(cs.device.clone());
        }
        let Some(dev) = dev else { candle_core::bail!("scan op: no device") };
        let dims = self.cuda_dims(k_in, n, t);
        let g = super::scan_cuda::backward(&dev, dims, &views[0], &views[1], &views[2], &views[3])?;
        drop(views);
        drop(guards);
        let wrap = |s, shape: Shape| {
            Tensor::from_storage(
                Storage::Cuda(CudaStorage::wrap_cuda_slice(s, dev.clone())),
                shape,
                BackpropOp::none(),
                false,
            )
        };
        let (k, d, gd) = (self.dirs(), self.hidden, self.gd());
        let dxi = wrap(g.dxi, Shape::from((k, n, t, gd)));
        let dv = wrap(g.dv, Shape::from((k, gd, d)));
        let dln = g.dln_rows.map(|rows| wrap(rows, Shape::from((k, n, 2 * d))).sum(1)).transpose()?;
        Ok((Self::input_grad(dxi, k_in)?, self.packed_grad(&dv, dln)?))
    }
}

impl CustomOp2 for ScanOp {
    fn name(&self) -> &'static str {
        "lrnn-scan"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (xi, p) = (cpu_f32(s1, l1, "scan op: xi")?, cpu_f32(s2, l2, "scan op: parameters")?);
        let (k_in, n, t) = self.check(l1.shape(), p.len())?;
        let dims = self.cpu_dims(k_in, n, t);
        let mut h = vec![0f32; dims.h_len()];
        scan_cpu::forward(&self.cpu_args(dims, xi, p), &mut h);
        Ok((CpuStorage::F32(h), Shape::from((self.dirs(), n, t, self.hidden))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (k_in, n, t) = self.check(l1.shape(), l2.shape().elem_count())?;
        if !l1.is_contiguous() || !l2.is_contiguous() {
            candle_core::bail!("scan op: inputs must be contiguous");
        }
        if n * t * self.hidden == 0 {
            candle_core::bail!("scan op: nothing to scan on CUDA (xi {:?})", l1.dims());
        }
        let xi = s1.as_cuda_slice::<f32>()?.slice(l1.start_offset()..);
        let p = s2.as_cuda_slice::<f32>()?.slice(l2.start_offset()..);
        let h = super::scan_cuda::forward(&s1.device, self.cuda_dims(k_in, n, t), &xi, &p)?;
        Ok((
            candle_core::CudaStorage::wrap_cuda_slice(h, s1.device.clone()),
            Shape::from((self.dirs(), n, t, self.hidden)),
        ))
    }

    fn bwd(
        &self,
        xi: &Tensor,
        params: &Tensor,
        h: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        #[cfg(feature = "cuda")]
        if xi.device().is_cuda() {
            let (dxi, dp) = self.cuda_bwd(xi, params, h, grad)?;
            return Ok((Some(dxi), Some(dp)));
        }
        let (k_in, n, t) = self.check(xi.shape(), params.elem_count())?;
        let xd = xi.flatten_all()?.to_vec1::<f32>()?;
        let p = params.flatten_all()?.to_vec1::<f32>()?;
        let hd = h.flatten_all()?.to_vec1::<f32>()?;
        let g = grad.flatten_all()?.to_vec1::<f32>()?;
        let dims = self.cpu_dims(k_in, n, t);
        let sg = scan_cpu::backward(&self.cpu_args(dims, &xd, &p), &hd, &g);
        let (k, d, gd) = (self.dirs(), self.hidden, self.gd());
        let dev = xi.device();
        let dxi = Tensor::from_vec(sg.dxi, (k, n, t, gd), dev)?;
        let dv = Tensor::from_vec(sg.dv, (k, gd, d), dev)?;
        let dln =
            (self.cell == Cell::VanillaLn).then(|| Tensor::from_vec(sg.dln, (k, 2 * d), dev)).transpose()?;
        Ok((Some(Self::input_grad(dxi, k_in)?), Some(self.packed_grad(&dv, dln)?)))
    }
}

/// The scan through [`ScanOp`]: same arguments and result as [`crate::nn::scan_reference`]
/// (`xi` `[K_in, N, T, G·D]`, `v` `[K, G·D, D]`, `ln` `[K, 2, D]`; result `[K, N, T, D]`), for
/// f32 tensors on the CPU or (with the `cuda` feature) on an NVIDIA GPU.
///
/// # Errors
/// Shape mismatches, another dtype, or a device without an implementation.
pub fn scan_fused(
    cell: Cell,
    xi: &Tensor,
    v: &Tensor,
    ln: Option<&Tensor>,
    reverse: &[bool],
) -> Result<Tensor> {
    let (_, _, hidden) = v.dims3()?;
    let params = match (cell, ln) {
        (Cell::VanillaLn, Some(ln)) => Tensor::cat(&[v.flatten_all()?, ln.flatten_all()?], 0)?,
        (Cell::VanillaLn, None) => candle_core::bail!("scan: the vanilla_ln cell needs LayerNorm parameters"),
        _ => v.flatten_all()?,
    };
    xi.contiguous()?.apply_op2(&params.contiguous()?, ScanOp::new(cell, hidden, reverse))
}

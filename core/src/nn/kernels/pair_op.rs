//! A whole bidirectional pair as one candle custom op on the CPU: input projection, the scans of
//! both directions ([`super::scan_cpu`]) and the merge, with a hand-written backward.
//!
//! Composing candle ops costs several passes over every large tensor in the backward (zero
//! init, strided accumulation, permutes); this op touches each tensor a few times in all. It
//! takes the feature map in candle's NCHW layout and the pair's parameters packed in one flat
//! tensor, and keeps what its backward needs (`xi` and the states `h`) from the forward.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::buffers;
use super::cpu::{cpu_f32, with_f32};
use super::scan_cpu::{self, ScanArgs, ScanDims};
use crate::nn::cell::LN_EPS;
use crate::nn::cell::{Axis, Cell, Merge};

/// What the op returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairOpOutput {
    /// The merged map `[B, D or 2D, H, W]`.
    Merged(Merge),
    /// Both directions' maps, `[2, B, D, H, W]` (for capture).
    Directions,
}

/// The fused pair operation.
pub struct PairOp {
    /// The cell of both directions.
    pub cell: Cell,
    /// The axis of the pair.
    pub axis: Axis,
    /// Hidden size `D`.
    pub hidden: usize,
    /// `Some(C)` when the pair owns `U` (`[2, G·D, C]`) and `b`; `None` when the input already is
    /// the shared projection (`[B, G·D, H, W]`).
    pub own_input: Option<usize>,
    /// What to return.
    pub output: PairOpOutput,
    saved: Mutex<Option<Saved>>,
}

/// What the backward needs from the forward; its buffers go back to the pool when dropped.
struct Saved {
    xi: Vec<f32>,
    h: Vec<f32>,
}

impl Drop for Saved {
    fn drop(&mut self) {
        buffers::give(std::mem::take(&mut self.xi));
        buffers::give(std::mem::take(&mut self.h));
    }
}

/// Offsets of each parameter inside the packed parameter tensor.
#[derive(Debug, Clone, Copy)]
struct Packed {
    u: usize,
    b: usize,
    v: usize,
    ln: usize,
    end: usize,
}

impl PairOp {
    /// A new op.
    pub fn new(
        cell: Cell,
        axis: Axis,
        hidden: usize,
        own_input: Option<usize>,
        output: PairOpOutput,
    ) -> Self {
        Self { cell, axis, hidden, own_input, output, saved: Mutex::new(None) }
    }

    fn gd(&self) -> usize {
        self.cell.gates() * self.hidden
    }

    /// Layout of the packed parameters: `U [2, G·D, C]`, `b [2, G·D]` (own input only),
    /// `V [2, G·D, D]`, LayerNorm `[2, 2, D]` (vanilla + LN only).
    fn packed(&self) -> Packed {
        let (gd, d) = (self.gd(), self.hidden);
        let c = self.own_input.unwrap_or(0);
        let u = 0;
        let b = u + 2 * gd * c;
        let v = b + if self.own_input.is_some() { 2 * gd } else { 0 };
        let ln = v + 2 * gd * d;
        let end = ln + if self.cell == Cell::VanillaLn { 4 * d } else { 0 };
        Packed { u, b, v, ln, end }
    }

    /// The number of packed parameters.
    pub fn packed_len(&self) -> usize {
        self.packed().end
    }

    fn dims(&self, b: usize, h: usize, w: usize) -> ScanDims {
        ScanDims {
            dirs: 2,
            batch: b,
            height: h,
            width: w,
            hidden: self.hidden,
            axis: self.axis,
            shared_input: self.own_input.is_none(),
        }
    }

    fn args<'a>(&self, dims: ScanDims, xi: &'a [f32], p: &'a [f32], at: Packed) -> ScanArgs<'a> {
        const REVERSE: [bool; 2] = [false, true];
        ScanArgs {
            cell: self.cell,
            dims,
            reverse: &REVERSE,
            xi,
            v: &p[at.v..at.ln],
            ln: &p[at.ln..at.end],
            eps: LN_EPS,
        }
    }

    /// The input projection, `[K_in, B, H, W, G·D]`.
    fn project(&self, x: &[f32], p: &[f32], (b, h, w): (usize, usize, usize)) -> Vec<f32> {
        let (gd, hw) = (self.gd(), h * w);
        match self.own_input {
            None => {
                let mut xi = buffers::take(b * hw * gd);
                nchw_to_nhwc(x, gd, hw, &mut xi);
                xi
            }
            Some(c) => {
                let at = self.packed();
                let mut xi = buffers::take(2 * b * hw * gd);
                xi.par_chunks_mut(hw * gd).enumerate().for_each(|(i, dst)| {
                    let (k, img) = (i / b, i % b);
                    let bias = &p[at.b + k * gd..at.b + (k + 1) * gd];
                    for row in dst.chunks_exact_mut(gd) {
                        row.copy_from_slice(bias);
                    }
                    // xi[k, img] += X_img^T U_k^T  ([HW, C] x [C, G·D])
                    matmul(
                        (hw, gd, c),
                        dst,
                        true,
                        (&x[img * c * hw..(img + 1) * c * hw], 1, hw),
                        (&p[at.u + k * gd * c..at.u + (k + 1) * gd * c], 1, c),
                    );
                });
                xi
            }
        }
    }

    fn forward_states(&self, x: &[f32], p: &[f32], bhw: (usize, usize, usize)) -> Saved {
        let dims = self.dims(bhw.0, bhw.1, bhw.2);
        let xi = self.project(x, p, bhw);
        let mut h = buffers::take(dims.h_len());
        scan_cpu::forward(&self.args(dims, &xi, p, self.packed()), &mut h);
        Saved { xi, h }
    }
}

/// Side of the square tiles the transposes work in (fits L1 for both source and destination).
const TILE: usize = 32;

/// `[C, HW]` planes of each image to `[HW, C]` rows (`src` and `dst` hold whole images).
fn nchw_to_nhwc(src: &[f32], c: usize, hw: usize, dst: &mut [f32]) {
    if c * hw == 0 {
        return;
    }
    dst.par_chunks_mut(c * hw).zip(src.par_chunks(c * hw)).for_each(|(d, s)| {
        for c0 in (0..c).step_by(TILE) {
            for p0 in (0..hw).step_by(TILE) {
                for p in p0..(p0 + TILE).min(hw) {
                    for ch in c0..(c0 + TILE).min(c) {
                        d[p * c + ch] = s[ch * hw + p];
                    }
                }
            }
        }
    });
}

/// `[HW, C]` rows of each image to `[C, HW]` planes: `dst = alpha · (src + also)` (`also`, when
/// given, has `src`'s layout: a merge of two directions in the one pass over `dst`).
fn nhwc_to_nchw(src: &[f32], also: Option<&[f32]>, c: usize, hw: usize, alpha: f32, dst: &mut [f32]) {
    if c * hw == 0 {
        return;
    }
    let planes = dst.par_chunks_mut(c * hw).zip(src.par_chunks(c * hw));
    let tile = |d: &mut [f32], s: &[f32], s2: Option<&[f32]>| {
        for c0 in (0..c).step_by(TILE) {
            for p0 in (0..hw).step_by(TILE) {
                for ch in c0..(c0 + TILE).min(c) {
                    for p in p0..(p0 + TILE).min(hw) {
                        let v = s[p * c + ch] + s2.map_or(0.0, |s2| s2[p * c + ch]);
                        d[ch * hw + p] = alpha * v;
                    }
                }
            }
        }
    };
    match also {
        None => planes.for_each(|(d, s)| tile(d, s, None)),
        Some(also) => planes.zip(also.par_chunks(c * hw)).for_each(|((d, s), s2)| tile(d, s, Some(s2))),
    }
}

/// `dst[m×n] (contiguous) = (acc ? dst : 0) + lhs[m×k] · rhs[k×n]`, `lhs` and `rhs` given as
/// (slice, row stride, column stride).
fn matmul(
    mnk: (usize, usize, usize),
    dst: &mut [f32],
    acc: bool,
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
) {
    scan_cpu::matmul_strided(mnk, dst, mnk.1, acc, lhs, rhs);
}

impl CustomOp2 for PairOp {
    fn name(&self) -> &'static str {
        "lrnn-pair"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, p) = (cpu_f32(s1, l1, "L-RNN pair: input")?, cpu_f32(s2, l2, "L-RNN pair: parameters")?);
        let (b, c, h, w) = l1.shape().dims4()?;
        let expect_c = self.own_input.unwrap_or(self.gd());
        if c != expect_c || p.len() != self.packed_len() {
            candle_core::bail!(
                "L-RNN pair: input has {c} channels (expected {expect_c}), {} parameters (expected {})",
                p.len(),
                self.packed_len()
            );
        }
        let saved = self.forward_states(x, p, (b, h, w));
        let (d, hw) = (self.hidden, h * w);
        let per_dir = b * hw * d;
        let (h0, h1) = saved.h.split_at(per_dir);
        let (out, shape) = match self.output {
            PairOpOutput::Directions => {
                let mut out = buffers::take(2 * per_dir);
                let (o0, o1) = out.split_at_mut(per_dir);
                nhwc_to_nchw(h0, None, d, hw, 1.0, o0);
                nhwc_to_nchw(h1, None, d, hw, 1.0, o1);
                (out, Shape::from((2, b, d, h, w)))
            }
            PairOpOutput::Merged(Merge::Concat) => {
                // Interleave per image: channels [h0; h1].
                let mut out = buffers::take(2 * per_dir);
                out.par_chunks_mut(2 * d * hw).enumerate().for_each(|(img, o)| {
                    let (o0, o1) = o.split_at_mut(d * hw);
                    let span = img * hw * d..(img + 1) * hw * d;
                    nhwc_to_nchw(&h0[span.clone()], None, d, hw, 1.0, o0);
                    nhwc_to_nchw(&h1[span], None, d, hw, 1.0, o1);
                });
                (out, Shape::from((b, 2 * d, h, w)))
            }
            PairOpOutput::Merged(merge) => {
                let alpha = if merge == Merge::Mean { 0.5 } else { 1.0 };
                let mut out = buffers::take(per_dir);
                nhwc_to_nchw(h0, Some(h1), d, hw, alpha, &mut out);
                (out, Shape::from((b, d, h, w)))
            }
        };
        if let Ok(mut slot) = self.saved.lock() {
            *slot = Some(saved);
        }
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dims4 = x.dims4()?;
        // The inputs' storage is read where it lies (the op runs on f32 CPU tensors only).
        let (dx, dp) = with_f32(x, "L-RNN pair: input", |xd| {
            with_f32(params, "L-RNN pair: parameters", |p| {
                with_f32(grad, "L-RNN pair: output gradient", |g| Ok(self.backward_cpu(xd, p, g, dims4)))
            })
        })?;
        let dx = Tensor::from_vec(dx, dims4, x.device())?;
        let dp = Tensor::from_vec(dp, self.packed().end, params.device())?;
        Ok((Some(dx), Some(dp)))
    }
}

impl PairOp {
    /// The gradients of the input and of the packed parameters, given the output's gradient `g`.
    fn backward_cpu(
        &self,
        xd: &[f32],
        p: &[f32],
        g: &[f32],
        (b, c, h, w): (usize, usize, usize, usize),
    ) -> (Vec<f32>, Vec<f32>) {
        let saved = self.saved.lock().ok().and_then(|mut s| s.take());
        let saved = saved.unwrap_or_else(|| self.forward_states(xd, p, (b, h, w)));
        let (d, hw, gd) = (self.hidden, h * w, self.gd());
        let per_dir = b * hw * d;
        // The gradient of each direction's states, channels-last; one block shared by both
        // directions when the output is their sum or mean.
        let gh = match self.output {
            PairOpOutput::Directions => {
                let mut gh = buffers::take(2 * per_dir);
                let (g0, g1) = gh.split_at_mut(per_dir);
                nchw_to_nhwc(&g[..per_dir], d, hw, g0);
                nchw_to_nhwc(&g[per_dir..], d, hw, g1);
                gh
            }
            PairOpOutput::Merged(Merge::Concat) => {
                let mut gh = buffers::take(2 * per_dir);
                let (g0, g1) = gh.split_at_mut(per_dir);
                g0.par_chunks_mut(hw * d).zip(g1.par_chunks_mut(hw * d)).enumerate().for_each(
                    |(img, (a, bb))| {
                        let src = &g[img * 2 * d * hw..(img + 1) * 2 * d * hw];
                        nchw_to_nhwc(&src[..d * hw], d, hw, a);
                        nchw_to_nhwc(&src[d * hw..], d, hw, bb);
                    },
                );
                gh
            }
            PairOpOutput::Merged(merge) => {
                let mut gh = buffers::take(per_dir);
                nchw_to_nhwc(g, d, hw, &mut gh);
                if merge == Merge::Mean {
                    gh.iter_mut().for_each(|v| *v *= 0.5);
                }
                gh
            }
        };
        let at = self.packed();
        let dims = self.dims(b, h, w);
        let sg = scan_cpu::backward(&self.args(dims, &saved.xi, p, at), &saved.h, &gh);
        drop(saved);
        buffers::give(gh);
        let mut dp = vec![0f32; at.end];
        dp[at.v..at.ln].copy_from_slice(&sg.dv);
        dp[at.ln..at.end].copy_from_slice(&sg.dln[..at.end - at.ln]);
        let per_dir_xi = b * hw * gd;
        let mut dx = buffers::take(b * c * hw);
        match self.own_input {
            None => {
                // Both directions read the same projection: their gradients add up.
                let (dxi0, dxi1) = sg.dxi.split_at(per_dir_xi);
                nhwc_to_nchw(dxi0, Some(dxi1), gd, hw, 1.0, &mut dx);
            }
            Some(c) => {
                let u = &p[at.u..at.b];
                // dx_img [C, HW] = Σ_k U_k^T dxi_k,img^T
                dx.par_chunks_mut(c * hw).enumerate().for_each(|(img, dst)| {
                    for k in 0..2 {
                        let dxi =
                            &sg.dxi[k * per_dir_xi + img * hw * gd..k * per_dir_xi + (img + 1) * hw * gd];
                        matmul(
                            (c, hw, gd),
                            dst,
                            k > 0,
                            (&u[k * gd * c..(k + 1) * gd * c], 1, c),
                            (dxi, 1, gd),
                        );
                    }
                });
                // dU_k [G·D, C] = Σ_img dxi_k,img^T X_img^T ; db_k = Σ rows of dxi_k
                // Images in a fixed number of groups, summed in order: the same sums at any
                // thread count.
                let per_group = b.div_ceil(super::REDUCTION_GROUPS).max(1);
                let partials: Vec<Vec<f32>> = (0..b.div_ceil(per_group))
                    .into_par_iter()
                    .map(|g| {
                        (g * per_group..((g + 1) * per_group).min(b)).fold(
                            vec![0f32; 2 * gd * c + 2 * gd],
                            |mut acc, img| {
                                let xs = &xd[img * c * hw..(img + 1) * c * hw];
                                for k in 0..2 {
                                    let dxi = &sg.dxi[k * per_dir_xi + img * hw * gd
                                        ..k * per_dir_xi + (img + 1) * hw * gd];
                                    matmul(
                                        (gd, c, hw),
                                        &mut acc[k * gd * c..(k + 1) * gd * c],
                                        true,
                                        (dxi, 1, gd),
                                        (xs, 1, hw),
                                    );
                                    let db = &mut acc[2 * gd * c + k * gd..2 * gd * c + (k + 1) * gd];
                                    for row in dxi.chunks_exact(gd) {
                                        for (a, v) in db.iter_mut().zip(row) {
                                            *a += v;
                                        }
                                    }
                                }
                                acc
                            },
                        )
                    })
                    .collect();
                let mut du_db = vec![0f32; 2 * gd * c + 2 * gd];
                for p in &partials {
                    du_db.iter_mut().zip(p).for_each(|(x, y)| *x += y);
                }
                dp[at.u..at.v].copy_from_slice(&du_db);
            }
        }
        buffers::give(sg.dxi);
        (dx, dp)
    }
}

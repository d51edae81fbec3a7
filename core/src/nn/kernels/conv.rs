//! 2D convolution (stride 1, zero padding, PyTorch's cross-correlation and weight layout
//! `[O, C, kh, kw]`) as a candle custom op on the CPU with a hand-written backward.
//!
//! candle's CPU convolution backward runs largely on one thread with a dot-product kernel and
//! allocates its large buffers afresh every call; it made a CIFAR training step 4-5x slower than
//! PyTorch's. Here 3x3 kernels (16+ channels, padding up to 2) run Winograd's algorithm
//! ([`super::winograd`]) for the output and the input gradient. Otherwise each image is one task
//! on the rayon pool: im2col of a block of output rows into a reused buffer, then one gemm; the
//! backward does one gemm for the weight gradient (accumulated per thread, every algorithm) and
//! one for the column gradient, folded back with col2im. Other devices and dtypes fall back to
//! candle's `conv2d`.

use std::ops::Range;

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::buffers;
use super::cpu::{cpu_f32, with_f32};
use super::scan_cpu::matmul_strided;
use super::winograd::{self, WinogradDims};

/// Sizes of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dims {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    pad: usize,
    oh: usize,
    ow: usize,
}

impl Dims {
    fn col_rows(&self) -> usize {
        self.c * self.kh * self.kw
    }
    fn out_hw(&self) -> usize {
        self.oh * self.ow
    }
}

impl Dims {
    /// The output columns `lo..hi` whose input column `ox + kx - pad` lies inside the image
    /// (the others read the zero padding), with the input column of `lo`; `None` when every
    /// column reads padding.
    fn valid_cols(&self, kx: usize) -> Option<(usize, usize, usize)> {
        let lo = self.pad.saturating_sub(kx);
        let hi = (self.w + self.pad).saturating_sub(kx).min(self.ow);
        (lo < hi).then(|| (lo, hi, lo + kx - self.pad))
    }

    /// The input row read by output row `oy` at kernel row `ky`, if inside the image.
    fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy + ky).checked_sub(self.pad).filter(|&iy| iy < self.h)
    }
}

/// The columns of output rows `oys` of one image `[C, H, W]`: `[C·kh·kw, |oys|·OW]`, each a
/// copy of the input row's valid span with zeros at the padded ends.
fn im2col(x: &[f32], d: &Dims, oys: Range<usize>, col: &mut [f32]) {
    let n = oys.len() * d.ow;
    for ch in 0..d.c {
        for ky in 0..d.kh {
            for kx in 0..d.kw {
                let row = &mut col[((ch * d.kh + ky) * d.kw + kx) * n..][..n];
                let cols = d.valid_cols(kx);
                for (oy, dst) in oys.clone().zip(row.chunks_exact_mut(d.ow)) {
                    let (Some(iy), Some((lo, hi, ix))) = (d.input_row(oy, ky), cols) else {
                        dst.fill(0.0);
                        continue;
                    };
                    let src = &x[(ch * d.h + iy) * d.w + ix..][..hi - lo];
                    dst[..lo].fill(0.0);
                    dst[lo..hi].copy_from_slice(src);
                    dst[hi..].fill(0.0);
                }
            }
        }
    }
}

/// Adds the columns of output rows `oys` (`[C·kh·kw, |oys|·OW]`) back into the image gradient
/// `[C, H, W]`.
fn col2im(col: &[f32], d: &Dims, oys: Range<usize>, dx: &mut [f32]) {
    let n = oys.len() * d.ow;
    for ch in 0..d.c {
        for ky in 0..d.kh {
            for kx in 0..d.kw {
                let row = &col[((ch * d.kh + ky) * d.kw + kx) * n..][..n];
                let Some((lo, hi, ix)) = d.valid_cols(kx) else { continue };
                for (oy, src) in oys.clone().zip(row.chunks_exact(d.ow)) {
                    let Some(iy) = d.input_row(oy, ky) else { continue };
                    let dst = &mut dx[(ch * d.h + iy) * d.w + ix..][..hi - lo];
                    for (o, v) in dst.iter_mut().zip(&src[lo..hi]) {
                        *o += v;
                    }
                }
            }
        }
    }
}

/// Column buffers hold at most this many floats (256 KiB): an image's output rows are
/// processed in blocks whose columns stay in the core's L2 cache between im2col and the
/// product (the whole image's columns, 2.4 MB at 64 channels on 32x32, did not).
const COL_BLOCK: usize = 1 << 16;
/// The same for the weight gradient alone (4 MiB).
const DW_BLOCK: usize = 1 << 20;

impl Dims {
    /// Output rows per block whose columns hold at most `budget` floats.
    fn block_rows(&self, budget: usize) -> usize {
        (budget / (self.col_rows() * self.ow).max(1)).clamp(1, self.oh.max(1))
    }

    /// The blocks of output rows of one image, each with at most `budget` floats of columns.
    fn blocks(&self, budget: usize) -> impl Iterator<Item = Range<usize>> + '_ {
        let step = self.block_rows(budget);
        (0..self.oh).step_by(step).map(move |y| y..(y + step).min(self.oh))
    }
}

/// How the CPU convolution computes its products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvAlgo {
    /// Winograd F(2x2, 3x3) for 3x3 kernels with padding up to 2 and 16+ channels in and out
    /// (forward and input gradient), im2col otherwise; the default. `LRNN_CONV=im2col` in the environment turns Winograd off.
    Auto,
    /// im2col and one matrix product per block of output rows, for every kernel.
    Im2col,
}

impl ConvAlgo {
    /// Whether a convolution of these sizes runs Winograd's algorithm: 3x3 kernels, padding up
    /// to 2, and at least 16 channels in and out (with fewer, e.g. an RGB stem, the transforms
    /// cost more than the products they save).
    fn winograd(self, d: &Dims) -> bool {
        static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let off = *OFF.get_or_init(|| std::env::var("LRNN_CONV").is_ok_and(|v| v == "im2col"));
        self == ConvAlgo::Auto && !off && d.kh == 3 && d.kw == 3 && d.pad <= 2 && d.c >= 16 && d.o >= 16
    }
}

struct ConvOp {
    pad: usize,
    algo: ConvAlgo,
}

impl ConvOp {
    fn dims(&self, x: &[usize], w: &[usize]) -> Result<Dims> {
        let (&[b, c, h, ww], &[o, wc, kh, kw]) = (x, w) else {
            candle_core::bail!("conv2d: expected 4D input and weight, got {x:?} and {w:?}")
        };
        if c != wc {
            candle_core::bail!("conv2d: input has {c} channels, the weight {wc}");
        }
        let (oh, ow) = ((h + 2 * self.pad + 1).checked_sub(kh), (ww + 2 * self.pad + 1).checked_sub(kw));
        let (Some(oh), Some(ow)) = (oh, ow) else {
            candle_core::bail!("conv2d: kernel {kh}x{kw} larger than the padded input {h}x{ww}")
        };
        Ok(Dims { b, c, h, w: ww, o, kh, kw, pad: self.pad, oh, ow })
    }

    /// `(dx, dW, db)` from the input `x`, the weight and the output gradient `g`. Per image and
    /// block of output rows: `dWᵀ += col_blk · g_blkᵀ`, `db += Σ g_blk`, and on the im2col path
    /// `dcol = Wᵀ · g_blk` added into `dx_img` by col2im; on the Winograd path `dx` comes after,
    /// from one Winograd convolution of `g`. Without `need_dx` (an input that is not tracked, such
    /// as the images at a network's stem) `dx` is empty and no buffer is taken for it.
    fn backward(
        &self,
        d: &Dims,
        xd: &[f32],
        wd: &[f32],
        g: &[f32],
        need_dx: bool,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (rows, ohw, img_len) = (d.col_rows(), d.out_hw(), d.c * d.h * d.w);
        // dx from the columns (im2col path), or after the loop from Winograd, or not at all.
        let dx_from_cols = need_dx && !self.algo.winograd(d);
        // Only an input that needs its gradient gets a buffer for it.
        let mut dx = if need_dx { buffers::take(d.b * img_len) } else { Vec::new() };
        // The weight gradient's products sum over the block's positions: when they are the only
        // products left in the loop, whole images give them a long inner dimension.
        let budget = if dx_from_cols { COL_BLOCK } else { DW_BLOCK };
        let block = rows * d.block_rows(budget) * d.ow;
        let init = || (vec![0f32; d.o * rows], vec![0f32; d.o], vec![0f32; block]);
        // One image: its share of dW and db, and (im2col path) its dx.
        let image = |(mut dw, mut db, mut col): (Vec<f32>, Vec<f32>, Vec<f32>),
                     (img, dxi): (usize, Option<&mut [f32]>)| {
            let gi = &g[img * d.o * ohw..][..d.o * ohw];
            for (b, row) in db.iter_mut().zip(gi.chunks_exact(ohw)) {
                *b += row.iter().sum::<f32>();
            }
            let mut dxi = dxi.filter(|_| dx_from_cols);
            if let Some(dxi) = dxi.as_deref_mut() {
                dxi.fill(0.0);
            }
            for oys in d.blocks(budget) {
                let (p, n) = (oys.start * d.ow, oys.len() * d.ow);
                im2col(&xd[img * img_len..][..img_len], d, oys.clone(), &mut col);
                // dWᵀ [C·kh·kw, O] += col · g_blkᵀ (this orientation ran 1.2-1.5x faster than
                // dW += g_blk · colᵀ).
                matmul_strided((rows, d.o, n), &mut dw, d.o, true, (&col, n, 1), (&gi[p..], 1, ohw));
                if let Some(dxi) = dxi.as_deref_mut() {
                    matmul_strided((rows, n, d.o), &mut col, n, false, (wd, 1, rows), (&gi[p..], ohw, 1));
                    col2im(&col, d, oys, dxi);
                }
            }
            (dw, db, col)
        };
        // The images in a fixed number of groups (not one per thread): each group sums its
        // images in order and the groups are summed in order, so dW and db are bit-identical at
        // any thread count (a training run repeats exactly).
        let per_group = d.b.div_ceil(super::REDUCTION_GROUPS).max(1);
        let partials: Vec<(Vec<f32>, Vec<f32>)> = if dx_from_cols {
            dx.par_chunks_mut(per_group * img_len)
                .enumerate()
                .map(|(g, chunk)| {
                    let images =
                        chunk.chunks_mut(img_len).enumerate().map(|(i, c)| (g * per_group + i, Some(c)));
                    let (dw, db, _) = images.fold(init(), image);
                    (dw, db)
                })
                .collect()
        } else {
            (0..d.b.div_ceil(per_group))
                .into_par_iter()
                .map(|g| {
                    let images = (g * per_group..((g + 1) * per_group).min(d.b)).map(|i| (i, None));
                    let (dw, db, _) = images.fold(init(), image);
                    (dw, db)
                })
                .collect()
        };
        let (mut dw, mut db) = (vec![0f32; d.o * rows], vec![0f32; d.o]);
        for (pw, pb) in &partials {
            dw.iter_mut().zip(pw).for_each(|(x, y)| *x += y);
            db.iter_mut().zip(pb).for_each(|(x, y)| *x += y);
        }
        if need_dx && !dx_from_cols {
            // dx = conv3x3(g, W rotated by 180° and transposed), padded by 2 - pad.
            let u = winograd::transform_kernels(wd, d.o, d.c, true);
            let wd_ = WinogradDims { b: d.b, c: d.o, h: d.oh, w: d.ow, o: d.c, pad: 2 - d.pad };
            winograd::conv3x3(g, wd_, &u, None, &mut dx);
        }
        let mut dw_t = vec![0f32; dw.len()];
        for (r, row) in dw.chunks_exact(d.o).enumerate() {
            for (oc, &v) in row.iter().enumerate() {
                dw_t[oc * rows + r] = v;
            }
        }
        (dx, dw_t, db)
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "lrnn-conv2d"
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
        let (x, w, bias) = (
            cpu_f32(s1, l1, "conv2d: input")?,
            cpu_f32(s2, l2, "conv2d: weight")?,
            cpu_f32(s3, l3, "conv2d: bias")?,
        );
        let d = self.dims(l1.dims(), l2.dims())?;
        let (rows, ohw) = (d.col_rows(), d.out_hw());
        let mut out = buffers::take(d.b * d.o * ohw);
        if self.algo.winograd(&d) {
            let u = winograd::transform_kernels(w, d.o, d.c, false);
            let wd = WinogradDims { b: d.b, c: d.c, h: d.h, w: d.w, o: d.o, pad: d.pad };
            winograd::conv3x3(x, wd, &u, Some(bias), &mut out);
            return Ok((CpuStorage::F32(out), Shape::from((d.b, d.o, d.oh, d.ow))));
        }
        let img_len = d.c * d.h * d.w;
        // Each image is a task; with fewer images than threads (a photo through an FCN) each
        // image's output channels are split into as many parts, each part forming its own
        // columns (cheap beside its product) and computing its channels.
        let threads = rayon::current_num_threads();
        let parts = if d.b < threads { (threads.div_ceil(d.b) * 2).min(d.o.div_ceil(8)).max(1) } else { 1 };
        let oc_len = d.o.div_ceil(parts);
        // Blocks of at least 256 output positions where the columns allow: a product only a
        // few positions wide (fc6's 7x7 over 512 channels on a small map) would read the whole
        // weight matrix again for each handful of positions.
        let budget = COL_BLOCK.max(rows * ohw.min(256));
        out.par_chunks_mut(d.o * ohw).enumerate().for_each(|(img, dst)| {
            dst.par_chunks_mut(oc_len * ohw).enumerate().for_each_init(
                || vec![0f32; rows * d.block_rows(budget) * d.ow],
                |col, (part, dst)| {
                    let oc0 = part * oc_len;
                    let len = dst.len() / ohw;
                    for (oc, row) in dst.chunks_exact_mut(ohw).enumerate() {
                        row.fill(bias[oc0 + oc]);
                    }
                    for oys in d.blocks(budget) {
                        let (p, n) = (oys.start * d.ow, oys.len() * d.ow);
                        im2col(&x[img * img_len..][..img_len], &d, oys, col);
                        // out_img[part, block] += W [part, C·kh·kw] · col [C·kh·kw, block]
                        let wp = &w[oc0 * rows..][..len * rows];
                        matmul_strided((len, n, rows), &mut dst[p..], ohw, true, (wp, rows, 1), (col, n, 1));
                    }
                },
            );
        });
        Ok((CpuStorage::F32(out), Shape::from((d.b, d.o, d.oh, d.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = self.dims(x.dims(), w.dims())?;
        let wd = w.flatten_all()?.to_vec1::<f32>()?;
        let (dx, dw, db) = with_f32(x, "conv2d: input", |xd| {
            with_f32(grad, "conv2d: gradient", |g| Ok(self.backward(&d, xd, &wd, g, x.track_op())))
        })?;
        let dev = x.device();
        Ok((
            x.track_op().then(|| Tensor::from_vec(dx, x.dims(), dev)).transpose()?,
            Some(Tensor::from_vec(dw, w.dims(), dev)?),
            Some(Tensor::from_vec(db, d.o, dev)?),
        ))
    }
}

/// `conv2d(x, w) + b` with stride 1 and `padding` zeros on each side: the fused op on f32 CPU
/// tensors, candle's convolution elsewhere.
///
/// # Errors
/// Shape mismatches.
pub fn conv2d(x: &Tensor, w: &Tensor, b: Option<&Tensor>, padding: usize) -> Result<Tensor> {
    conv2d_with(x, w, b, padding, ConvAlgo::Auto)
}

/// [`conv2d`] with the CPU algorithm chosen (tests and benchmarks compare them).
///
/// # Errors
/// Shape mismatches.
pub fn conv2d_with(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    padding: usize,
    algo: ConvAlgo,
) -> Result<Tensor> {
    if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 && w.dtype() == DType::F32 {
        let bias = match b {
            Some(b) => b.clone(),
            None => Tensor::zeros(w.dim(0)?, DType::F32, x.device())?,
        };
        x.contiguous()?.apply_op3(&w.contiguous()?, &bias.contiguous()?, ConvOp { pad: padding, algo })
    } else {
        let y = x.conv2d(w, padding, 1, 1, 1)?;
        match b {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
            None => Ok(y),
        }
    }
}

//! 2x2 max pooling as a candle custom op on f32 CPU tensors that keeps each window's winner for
//! the backward.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::buffers;
use super::cpu::{cpu_f32, with_f32};

/// 2x2 max pooling with stride 2 (odd trailing rows and columns dropped, as PyTorch's
/// `max_pool2d(x, 2)`); the gradient goes to the first maximum of each window, as in PyTorch.
///
/// On f32 CPU tensors a custom op that keeps each window's winner for the backward; elsewhere the
/// maximum over a reshaped window (ties then share the gradient). candle's own `max_pool2d`
/// is not used in training: its backward (candle 0.11) scales every gradient by 1/4.
///
/// # Errors
/// When `x` is not 4-dimensional.
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 {
        return x.contiguous()?.apply_op1(MaxPool2x2 { winners: Mutex::new(None) });
    }
    let (oh, ow) = (h / 2, w / 2);
    if oh * ow == 0 {
        return Tensor::zeros((b, c, oh, ow), x.dtype(), x.device());
    }
    x.narrow(2, 0, 2 * oh)?.narrow(3, 0, 2 * ow)?.reshape((b, c, oh, 2, ow, 2))?.max(5)?.max(3)
}

struct MaxPool2x2 {
    /// The position (0-3, row-major) of each output's maximum in its window.
    winners: Mutex<Option<Vec<u8>>>,
}

impl CustomOp1 for MaxPool2x2 {
    fn name(&self) -> &'static str {
        "lrnn-max-pool-2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_f32(s, l, "max pool: input")?;
        let (b, c, h, w) = l.shape().dims4()?;
        let (oh, ow) = (h / 2, w / 2);
        let mut out = buffers::take(b * c * oh * ow);
        let mut winners = vec![0u8; out.len()];
        if oh * ow > 0 {
            out.par_chunks_mut(oh * ow).zip(winners.par_chunks_mut(oh * ow)).enumerate().for_each(
                |(plane, (dst, win))| {
                    let src = &x[plane * h * w..][..h * w];
                    for oy in 0..oh {
                        let (r0, r1) = (&src[2 * oy * w..][..w], &src[(2 * oy + 1) * w..][..w]);
                        for ox in 0..ow {
                            let cand = [r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]];
                            let mut best = 0;
                            for k in 1..4 {
                                // NaN wins, as in PyTorch; otherwise the first maximum.
                                if cand[k] > cand[best] || (cand[k].is_nan() && !cand[best].is_nan()) {
                                    best = k;
                                }
                            }
                            dst[oy * ow + ox] = cand[best];
                            win[oy * ow + ox] = best as u8;
                        }
                    }
                },
            );
        }
        if let Ok(mut saved) = self.winners.lock() {
            *saved = Some(winners);
        }
        Ok((CpuStorage::F32(out), Shape::from((b, c, oh, ow))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        // Kept (not taken): a graph may be walked backwards more than once (one backward pass
        // per layer's unit in `probe::rf_depth`).
        let saved = self.winners.lock().map_err(|_| candle_core::Error::msg("max pool: poisoned"))?;
        let Some(winners) = saved.as_ref() else {
            candle_core::bail!("max pool: backward without a forward")
        };
        let (b, c, h, w) = x.dims4()?;
        let (oh, ow) = (h / 2, w / 2);
        let mut dx = buffers::take_zeroed(b * c * h * w);
        if oh * ow > 0 {
            with_f32(grad, "max pool: gradient", |g| {
                dx.par_chunks_mut(h * w).enumerate().for_each(|(plane, dst)| {
                    let (g, win) = (&g[plane * oh * ow..][..oh * ow], &winners[plane * oh * ow..][..oh * ow]);
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let k = usize::from(win[oy * ow + ox]);
                            dst[(2 * oy + k / 2) * w + 2 * ox + k % 2] = g[oy * ow + ox];
                        }
                    }
                });
                Ok(())
            })?;
        }
        Ok(Some(Tensor::from_vec(dx, (b, c, h, w), x.device())?))
    }
}

//! Pooling and dropout: 2x2 max pooling between stages, and the head of the CIFAR networks
//! (SPEC §5) — global pooling and dropout.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use super::forward::Forward;
pub use super::kernels::max_pool::max_pool2x2;

/// 2x2 max pooling with stride 2 in Caffe's ceil mode (PyTorch's `ceil_mode=True`): an odd last
/// row or column is a window of its own, so an `h x w` map becomes `ceil(h/2) x ceil(w/2)`.
/// Written as [`max_pool2x2`] over the map padded with `-inf`, so gradients are exact.
///
/// # Errors
/// When `x` is not 4-dimensional.
pub fn max_pool2x2_ceil(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let mut x = x.clone();
    if w % 2 == 1 {
        let col = Tensor::full(f32::NEG_INFINITY, (b, c, h, 1), x.device())?.to_dtype(x.dtype())?;
        x = Tensor::cat(&[&x, &col], 3)?;
    }
    if h % 2 == 1 {
        let row = Tensor::full(f32::NEG_INFINITY, (b, c, 1, x.dim(3)?), x.device())?.to_dtype(x.dtype())?;
        x = Tensor::cat(&[&x, &row], 2)?;
    }
    max_pool2x2(&x)
}

/// Global pooling over the whole feature map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GlobalPool {
    /// Maximum over positions (the paper's better choice).
    #[default]
    Max,
    /// Mean over positions.
    Avg,
}

impl GlobalPool {
    /// `[B, C, H, W]` to `[B, C]`.
    ///
    /// # Errors
    /// When `x` is not 4-dimensional.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let flat = x.reshape((b, c, h * w))?;
        match self {
            GlobalPool::Max => flat.max(2),
            GlobalPool::Avg => flat.mean(2),
        }
    }
}

/// Dropout with drop probability `p`, active only in training mode: kept units are scaled by
/// `1 / (1 - p)`. The mask comes from `fwd.rng` when set (reproducible), else from candle.
///
/// # Errors
/// When `p` is outside `[0, 1)`.
pub fn dropout(x: &Tensor, p: f32, fwd: &mut Forward) -> Result<Tensor> {
    if !fwd.train || p == 0.0 {
        return Ok(x.clone());
    }
    if !(0.0..1.0).contains(&p) {
        candle_core::bail!("dropout probability has to be in [0, 1), got {p}");
    }
    match fwd.rng.as_mut() {
        Some(rng) => {
            let scale = 1.0 / (1.0 - p);
            let mask: Vec<f32> =
                (0..x.elem_count()).map(|_| if rng.uniform() >= p { scale } else { 0.0 }).collect();
            let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
            x * mask
        }
        None => candle_nn::ops::dropout(x, p),
    }
}

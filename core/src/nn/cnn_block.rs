//! The CNN module of the hybrid networks (SPEC §3): a pre-activation block
//! BN-ReLU-conv3x3(in→w)-BN-ReLU-conv3x3(w→w), without convolution biases.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::batch_norm::BatchNormRelu;

use super::conv::Conv;

use super::forward::{Forward, Layer};

/// A pre-activation CNN module of width `w`.
#[derive(Debug, Clone)]
pub struct CnnBlock {
    bn1: BatchNormRelu,
    conv1: Conv,
    bn2: BatchNormRelu,
    conv2: Conv,
}

impl CnnBlock {
    /// Weights `bn1.*`, `conv1.weight` `[w, in, 3, 3]`, `bn2.*`, `conv2.weight` `[w, w, 3, 3]`
    /// under `vb`'s prefix (PyTorch names).
    ///
    /// # Errors
    /// When `vb` holds tensors of other shapes.
    pub fn new(in_channels: usize, width: usize, vb: &VarBuilder) -> Result<Self> {
        Ok(Self {
            bn1: BatchNormRelu::new(in_channels, 1e-5, &vb.pp("bn1"))?,
            conv1: Conv::new(in_channels, width, 3, 1, false, &vb.pp("conv1"))?,
            bn2: BatchNormRelu::new(width, 1e-5, &vb.pp("bn2"))?,
            conv2: Conv::new(width, width, 3, 1, false, &vb.pp("conv2"))?,
        })
    }
}

impl Layer for CnnBlock {
    fn forward(&self, x: &Tensor, fwd: &mut Forward) -> Result<Tensor> {
        let y = self.bn1.forward(x, fwd.train)?.apply(&self.conv1)?;
        self.bn2.forward(&y, fwd.train)?.apply(&self.conv2)
    }
}

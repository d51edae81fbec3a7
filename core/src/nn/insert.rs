//! Inserting spatial RNNs into a pre-trained convolution (SPEC §4, paper §4 and App. B).
//!
//! The layer `X' = ReLU(W * X + b)` becomes the two-step spatial RNN of eq. 7-9 with `U = W`
//! computed once and shared by a bidirectional pair, and recurrences `V` that start at exactly
//! zero. The pair is merged by the mean, so with `V = 0` the output is bit-for-bit the
//! convolution's (`(h + h) / 2 = h` in floating point). The first gradient of `V` is then
//! `∂E/∂V = Σ_t (f'(a_t) ⊙ ∂E/∂h_t) h_{t-1}^T` (App. B eq. 20-21): `V` learns from local
//! features first.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::conv::Conv;

use super::forward::{Forward, Layer};
use super::spatial_rnn::{Merge, RnnPair};
use super::Axis;

/// A convolution with an inserted bidirectional spatial RNN pair.
#[derive(Debug, Clone)]
pub struct ConvWithRnn {
    conv: Conv,
    pair: RnnPair,
}

impl ConvWithRnn {
    /// Inserts a pair scanning along `axis` after `conv` (which had a ReLU after it). `vb` is
    /// the convolution's own prefix (e.g. `fc1`): the recurrences are `fc1.v_lr.weight`, … and
    /// start at zero unless `vb` holds trained ones.
    ///
    /// # Errors
    /// When `vb` holds recurrences of another shape.
    pub fn insert(conv: Conv, axis: Axis, vb: &VarBuilder) -> Result<Self> {
        let hidden = conv.weight().dim(0)?;
        let pair = RnnPair::shared(axis, hidden, vb)?;
        Ok(Self { conv, pair })
    }

    /// The inserted pair.
    pub fn pair(&self) -> &RnnPair {
        &self.pair
    }

    /// The convolution (the pair's shared `U`).
    pub fn conv(&self) -> &Conv {
        &self.conv
    }
}

impl Layer for ConvWithRnn {
    fn forward(&self, x: &Tensor, fwd: &mut Forward) -> Result<Tensor> {
        let xi = x.apply(&self.conv)?;
        self.pair.forward(&xi, Merge::Mean, fwd)
    }
}

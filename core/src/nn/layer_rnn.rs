//! The L-RNN module (SPEC §2, paper Fig. 1): a horizontal bidirectional pair, then a vertical
//! pair on its merged output, so every output unit sees the whole feature map.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::forward::{Forward, Layer};
use super::spatial_rnn::{Merge, RnnPair};
use super::{Axis, Cell};

/// Configuration of an L-RNN module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerRnnConfig {
    /// Input channels `C`.
    pub in_channels: usize,
    /// Hidden size `D` of every direction.
    pub hidden: usize,
    /// The recurrent cell of all four directions.
    #[serde(default)]
    pub cell: Cell,
    /// How each pair's two maps are merged (sum in the paper; concat doubles the channels).
    #[serde(default)]
    pub merge: Merge,
}

impl LayerRnnConfig {
    /// Output channels of the module.
    pub fn out_channels(&self) -> usize {
        self.merge.channels(self.hidden)
    }
}

/// An L-RNN module whose four directions each own `U`, `V`, `b` (CIFAR reading of SPEC §2).
#[derive(Debug, Clone)]
pub struct LayerRnn {
    config: LayerRnnConfig,
    horizontal: RnnPair,
    vertical: RnnPair,
}

impl LayerRnn {
    /// Builds the module under `vb`'s prefix: weights `<prefix>.lr.u.weight`, … (SPEC §8).
    ///
    /// # Errors
    /// When `vb` holds tensors of other shapes.
    pub fn new(config: LayerRnnConfig, vb: &VarBuilder) -> Result<Self> {
        let horizontal = RnnPair::new(Axis::Horizontal, config.cell, config.in_channels, config.hidden, vb)?;
        let mid = config.merge.channels(config.hidden);
        let vertical = RnnPair::new(Axis::Vertical, config.cell, mid, config.hidden, vb)?;
        Ok(Self { config, horizontal, vertical })
    }

    /// The configuration.
    pub fn config(&self) -> &LayerRnnConfig {
        &self.config
    }

    /// The horizontal (left↔right) pair.
    pub fn horizontal(&self) -> &RnnPair {
        &self.horizontal
    }

    /// The vertical (top↔bottom) pair.
    pub fn vertical(&self) -> &RnnPair {
        &self.vertical
    }
}

impl Layer for LayerRnn {
    fn forward(&self, x: &Tensor, fwd: &mut Forward) -> Result<Tensor> {
        let c = x.dim(1)?;
        if c != self.config.in_channels {
            candle_core::bail!("L-RNN module: input has {c} channels, expected {}", self.config.in_channels);
        }
        let mid = self.horizontal.forward(x, self.config.merge, fwd)?;
        self.vertical.forward(&mid, self.config.merge, fwd)
    }
}

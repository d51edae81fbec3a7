//! Fusing a module's output `F(X)` with its input `X` (SPEC §3, paper Fig. 2): forward, sum (with a
//! 1x1 projection when channel counts differ) or concat.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::conv::Conv;
use serde::{Deserialize, Serialize};

use super::forward::{Forward, Layer};

/// How a module's output is fused with its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fusion {
    /// `X' = F(X)`.
    Forward,
    /// `X' = X + F(X)` (`X` through a bias-free 1x1 convolution when channels differ).
    Sum,
    /// `X' = [X; F(X)]`.
    Concat,
}

impl Fusion {
    /// Output channels when a module maps `in_channels` to `module_channels`.
    pub fn out_channels(self, in_channels: usize, module_channels: usize) -> usize {
        match self {
            Fusion::Forward | Fusion::Sum => module_channels,
            Fusion::Concat => in_channels + module_channels,
        }
    }
}

/// A module together with its fusion.
pub struct Fused {
    inner: Box<dyn Layer + Send + Sync>,
    fusion: Fusion,
    proj: Option<Conv>,
    out_channels: usize,
}

impl std::fmt::Debug for Fused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fused")
            .field("fusion", &self.fusion)
            .field("out_channels", &self.out_channels)
            .finish_non_exhaustive()
    }
}

impl Fused {
    /// Wraps `inner`, which maps `in_channels` to `module_channels`. A sum with differing
    /// channels adds `<prefix>.proj.weight` `[module_channels, in_channels, 1, 1]`.
    ///
    /// # Errors
    /// When `vb` holds tensors of other shapes.
    pub fn new(
        inner: Box<dyn Layer + Send + Sync>,
        fusion: Fusion,
        in_channels: usize,
        module_channels: usize,
        vb: &VarBuilder,
    ) -> Result<Self> {
        let proj = if fusion == Fusion::Sum && in_channels != module_channels {
            Some(Conv::new(in_channels, module_channels, 1, 0, false, &vb.pp("proj"))?)
        } else {
            None
        };
        Ok(Self { inner, fusion, proj, out_channels: fusion.out_channels(in_channels, module_channels) })
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }
}

impl Layer for Fused {
    fn forward(&self, x: &Tensor, fwd: &mut Forward) -> Result<Tensor> {
        let y = self.inner.forward(x, fwd)?;
        match self.fusion {
            Fusion::Forward => Ok(y),
            Fusion::Sum => match &self.proj {
                Some(p) => x.apply(p)? + y,
                None => x + y,
            },
            Fusion::Concat => Tensor::cat(&[x, &y], 1),
        }
    }
}

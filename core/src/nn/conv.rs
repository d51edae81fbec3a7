//! The convolution layer with PyTorch's names; it runs through the fused convolution op of
//! [`super::kernels::conv`].

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::kernels::conv::conv2d;

/// A convolution layer with PyTorch's names (`weight` `[O, C, k, k]`, `bias` `[O]`) and
/// candle's default initialisation (Kaiming normal weight, uniform `±1/sqrt(fan_in)` bias).
#[derive(Debug, Clone)]
pub struct Conv {
    weight: Tensor,
    bias: Option<Tensor>,
    padding: usize,
}

impl Conv {
    /// A `k x k` convolution from `c` to `o` channels with `padding`, with or without a bias.
    ///
    /// # Errors
    /// When `vb` holds tensors of other shapes.
    pub fn new(c: usize, o: usize, k: usize, padding: usize, bias: bool, vb: &VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints((o, c, k, k), "weight", candle_nn::init::DEFAULT_KAIMING_NORMAL)?;
        let bound = 1.0 / ((c * k * k) as f64).sqrt();
        let bias = if bias {
            Some(vb.get_with_hints(o, "bias", Init::Uniform { lo: -bound, up: bound })?)
        } else {
            None
        };
        Ok(Self { weight, bias, padding })
    }

    /// The same layer as a candle `Conv2d` (stride 1, no dilation or groups).
    ///
    /// # Errors
    /// When the candle layer has a stride, dilation or groups.
    pub fn from_candle(conv: &candle_nn::Conv2d) -> Result<Self> {
        let cfg = conv.config();
        if cfg.stride != 1 || cfg.dilation != 1 || cfg.groups != 1 {
            candle_core::bail!("only stride-1, undilated, ungrouped convolutions are supported, got {cfg:?}");
        }
        Ok(Self::from_tensors(conv.weight().clone(), conv.bias().cloned(), cfg.padding))
    }

    /// Wraps existing tensors (e.g. a pre-trained layer).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>, padding: usize) -> Self {
        Self { weight, bias, padding }
    }

    /// The weight `[O, C, kh, kw]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[O]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The zero padding on each side.
    pub fn padding(&self) -> usize {
        self.padding
    }
}

impl candle_core::Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv2d(x, &self.weight, self.bias.as_ref(), self.padding)
    }
}

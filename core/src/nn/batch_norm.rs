//! Batch normalisation followed by ReLU (the pre-activation of the CNN modules, SPEC §3): the
//! layer with PyTorch's names and running statistics (momentum 0.1, the running variance from the
//! unbiased batch variance). On f32 CPU tensors it runs the fused op of
//! [`super::kernels::batch_norm`]; other devices and dtypes use candle-nn's `BatchNorm` and
//! `relu`, which compute the same thing.

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{Init, ModuleT, VarBuilder};

use super::kernels::batch_norm::bn_relu;

/// PyTorch's default: `running = (1 - momentum) * running + momentum * batch statistic`.
const MOMENTUM: f64 = 0.1;

/// A 2D batch normalisation with an affine transform, applied with a ReLU after it. Weights
/// under PyTorch's names: `weight`, `bias`, `running_mean`, `running_var` (all `[C]`).
#[derive(Debug, Clone)]
pub struct BatchNormRelu {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    /// candle-nn's layer over the same tensors, for devices and dtypes the fused op does not take.
    fallback: candle_nn::BatchNorm,
}

impl BatchNormRelu {
    /// A layer over `channels` channels (weight 1, bias 0, running mean 0 and variance 1 when
    /// `vb` creates them).
    ///
    /// # Errors
    /// When `vb` holds tensors of other shapes.
    pub fn new(channels: usize, eps: f64, vb: &VarBuilder) -> Result<Self> {
        let running_mean =
            Var::from_tensor(&vb.get_with_hints(channels, "running_mean", Init::Const(0.))?)?;
        let running_var = Var::from_tensor(&vb.get_with_hints(channels, "running_var", Init::Const(1.))?)?;
        let weight = vb.get_with_hints(channels, "weight", Init::Const(1.))?;
        let bias = vb.get_with_hints(channels, "bias", Init::Const(0.))?;
        let fallback = candle_nn::BatchNorm::new(
            channels,
            running_mean.as_tensor().clone(),
            running_var.as_tensor().clone(),
            weight.clone(),
            bias.clone(),
            eps,
        )?;
        Ok(Self { weight, bias, running_mean, running_var, eps, fallback })
    }

    /// The running mean `[C]`.
    pub fn running_mean(&self) -> &Tensor {
        self.running_mean.as_tensor()
    }

    /// The running variance `[C]`.
    pub fn running_var(&self) -> &Tensor {
        self.running_var.as_tensor()
    }

    /// `relu(BN(x))` for `x` `[B, C, H, W]`: with the batch's statistics when `train` (and the
    /// running statistics updated), with the running statistics otherwise.
    ///
    /// # Errors
    /// Shape mismatches.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let fused = matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 && x.rank() == 4;
        if !fused {
            return self.fallback.forward_t(x, train)?.relu();
        }
        let c = x.dim(1)?;
        if self.weight.dims() != [c] {
            candle_core::bail!("batch norm: input has {c} channels, the layer {:?}", self.weight.dims());
        }
        let stats = if train {
            None
        } else {
            Some((
                self.running_mean.as_tensor().to_vec1::<f32>()?,
                self.running_var.as_tensor().to_vec1::<f32>()?,
            ))
        };
        let (y, batch) = bn_relu(x, &self.weight, &self.bias, stats, self.eps as f32)?;
        if train {
            if let Some((mean, var, n)) = batch {
                let dev = x.device();
                let mean = Tensor::from_vec(mean, c, dev)?;
                let unbiased = (Tensor::from_vec(var, c, dev)? * (n as f64 / (n as f64 - 1.0).max(1.0)))?;
                let rm = ((self.running_mean.as_tensor() * (1.0 - MOMENTUM))? + (mean * MOMENTUM)?)?;
                let rv = ((self.running_var.as_tensor() * (1.0 - MOMENTUM))? + (unbiased * MOMENTUM)?)?;
                self.running_mean.set(&rm.detach())?;
                self.running_var.set(&rv.detach())?;
            }
        }
        Ok(y)
    }
}

//! The candle path (CPU, and CUDA in a `cuda` build) through a model's op graph: each op is
//! bound once to the paper's layer that computes it (`crate::nn`: the convolution, BatchNorm +
//! ReLU, the scan pair, …), creating or reading its variables under the op's names, and a forward
//! pass walks the ops in order, capturing what the graph names and dropping each value after its
//! last use. Autograd through candle gives the backward pass.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::fcn::upsample_bilinear;
use super::graph::{Graph, Op, Projection};
use crate::nn::batch_norm::BatchNormRelu;
use crate::nn::{dropout, max_pool2x2, max_pool2x2_ceil, Conv, Forward, RnnPair};

/// An op bound to its layer and weights.
enum Bound {
    Conv(Conv),
    Relu,
    BatchNormRelu(BatchNormRelu),
    MaxPool,
    Pair(RnnPair, crate::nn::Merge),
    Add,
    Concat,
    GlobalPool(crate::nn::GlobalPool),
    Dropout(f32),
    Linear(candle_nn::Linear),
    Upsample,
    MaxPoolCeil,
    ConvTranspose { weight: Tensor, stride: usize },
    Crop(usize),
}

/// A graph with its ops bound to candle layers.
pub(crate) struct Executable {
    graph: Graph,
    bound: Vec<Bound>,
    last_use: Vec<Option<usize>>,
}

impl Executable {
    /// Binds every op of `graph` to its layer, its variables created (or read) through `vb`
    /// under the op's names, with the layers' own initialisation.
    ///
    /// # Errors
    /// When `vb` holds tensors of other shapes.
    pub(crate) fn bind(graph: Graph, vb: &VarBuilder) -> Result<Self> {
        let mut bound = Vec::with_capacity(graph.nodes.len());
        for node in &graph.nodes {
            bound.push(match &node.op {
                Op::Conv { name, in_channels, out_channels, kernel, pad, bias } => {
                    Bound::Conv(Conv::new(*in_channels, *out_channels, *kernel, *pad, *bias, &vb.pp(name))?)
                }
                Op::Relu => Bound::Relu,
                Op::BatchNormRelu { name, channels } => {
                    Bound::BatchNormRelu(BatchNormRelu::new(*channels, 1e-5, &vb.pp(name))?)
                }
                Op::MaxPool2x2 => Bound::MaxPool,
                Op::ScanPair { prefix, axis, cell, hidden, projection, merge } => {
                    let pvb = if prefix.is_empty() { vb.clone() } else { vb.pp(prefix) };
                    let pair = match projection {
                        Projection::Own { in_channels } => {
                            RnnPair::new(*axis, *cell, *in_channels, *hidden, &pvb)?
                        }
                        Projection::Shared => RnnPair::shared(*axis, *hidden, &pvb)?,
                    };
                    Bound::Pair(pair, *merge)
                }
                Op::Add => Bound::Add,
                Op::Concat => Bound::Concat,
                Op::GlobalPool(p) => Bound::GlobalPool(*p),
                Op::Dropout(p) => Bound::Dropout(*p),
                Op::Linear { name, in_features, out_features } => {
                    Bound::Linear(candle_nn::linear(*in_features, *out_features, vb.pp(name))?)
                }
                Op::Upsample => Bound::Upsample,
                Op::MaxPoolCeil => Bound::MaxPoolCeil,
                Op::ConvTranspose { name, in_channels, out_channels, kernel, stride } => {
                    let (k, fan) = (*kernel, in_channels * kernel * kernel);
                    let bound = 1.0 / (fan as f64).sqrt();
                    let init = candle_nn::Init::Uniform { lo: -bound, up: bound };
                    let weight =
                        vb.pp(name).get_with_hints((*in_channels, *out_channels, k, k), "weight", init)?;
                    Bound::ConvTranspose { weight, stride: *stride }
                }
                Op::Crop { offset } => Bound::Crop(*offset),
            });
        }
        let last_use = graph.last_use();
        Ok(Self { graph, bound, last_use })
    }

    /// The graph.
    pub(crate) fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Runs the graph on `x` (`[B, C, H, W]`), capturing the named values into `fwd`.
    ///
    /// # Errors
    /// An input that does not fit the graph; shape mismatches.
    pub(crate) fn forward(&self, x: &Tensor, fwd: &mut Forward) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if c != self.graph.in_channels {
            candle_core::bail!("the input has {c} channels, the model takes {}", self.graph.in_channels);
        }
        self.graph.check_input(b, h, w).map_err(candle_core::Error::msg)?;
        let mut values: Vec<Option<Tensor>> = Vec::with_capacity(self.bound.len() + 1);
        values.push(Some(x.clone()));
        for (i, (node, op)) in self.graph.nodes.iter().zip(&self.bound).enumerate() {
            let arg = |k: usize| -> Result<&Tensor> {
                node.inputs.get(k).and_then(|&v| values.get(v)).and_then(Option::as_ref).ok_or_else(|| {
                    candle_core::Error::msg(format!("op graph: node {i} reads a missing value"))
                })
            };
            let y = match op {
                Bound::Conv(conv) => conv.forward(arg(0)?)?,
                Bound::Relu => arg(0)?.relu()?,
                Bound::BatchNormRelu(bn) => bn.forward(arg(0)?, fwd.train)?,
                Bound::MaxPool => max_pool2x2(arg(0)?)?,
                Bound::Pair(pair, merge) => pair.forward(arg(0)?, *merge, fwd)?,
                Bound::Add => (arg(0)? + arg(1)?)?,
                Bound::Concat => Tensor::cat(&[arg(0)?, arg(1)?], 1)?,
                Bound::GlobalPool(p) => p.apply(arg(0)?)?,
                Bound::Dropout(p) => dropout(arg(0)?, *p, fwd)?,
                Bound::Linear(l) => l.forward(arg(0)?)?,
                Bound::Upsample => {
                    let (_, _, th, tw) = arg(1)?.dims4()?;
                    upsample_bilinear(arg(0)?, th, tw)?
                }
                Bound::MaxPoolCeil => max_pool2x2_ceil(arg(0)?)?,
                Bound::ConvTranspose { weight, stride } => {
                    arg(0)?.contiguous()?.conv_transpose2d(weight, 0, 0, *stride, 1)?
                }
                Bound::Crop(offset) => {
                    let (_, _, th, tw) = arg(1)?.dims4()?;
                    arg(0)?.narrow(2, *offset, th)?.narrow(3, *offset, tw)?.contiguous()?
                }
            };
            if let Some(name) = &node.capture {
                fwd.record(name, || Ok(y.clone()))?;
            }
            // Values no later node reads are dropped (the output is read after the loop).
            for &v in &node.inputs {
                if self.last_use[v] == Some(i) && v != self.graph.output() {
                    values[v] = None;
                }
            }
            values.push(Some(y));
        }
        values.pop().flatten().ok_or_else(|| candle_core::Error::msg("op graph: the model has no operation"))
    }
}

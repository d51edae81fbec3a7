//! Training steps on the GPU through wgpu: a model's trainable weights uploaded once (nothing
//! folded) and kept there between steps with their gradients and the optimiser's state; one
//! step records the forward pass in training mode (dropout's masks drawn on the CPU from the
//! generator the CPU path uses, so both draw the same masks), softmax cross-entropy and its
//! gradient (per image, or per pixel with label 255 ignored), the backward pass with every
//! weight's gradient, and the optimiser's update, all in one command buffer; only the per-row
//! losses and predictions come back. The weights and the state come back on request (for a
//! checkpoint or a validation).
//!
//! What trains here: every operation of the networks the CPU trains — convolutions (and the
//! transposed ones), linear layers, ReLU, BatchNorm in training mode, max and global pooling,
//! dropout, pairs of all three cells (own or shared projections), sums, concatenations, crops,
//! bilinear upsampling. What cannot (a pair wider than the scan kernel holds, a buffer larger
//! than the adapter allows) is refused by name at upload, and the caller falls back to the CPU.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};

use super::context::GpuContext;
use super::executor::{backward, floats_to_bytes, u, values, Capture, GpuModel, Layout, Slot};
use super::kernels::{groups_for, submit_and_read};
use super::params::{OptimizerParams, SoftmaxXentParams};
use crate::error::{Error, Result};
use crate::models::Model;
use crate::rng::Rng;

/// The label of a pixel that counts for nothing (VOC's border and "difficult" pixels).
const IGNORE: u32 = crate::data::voc::IGNORE as u32;

/// The optimiser's update rule, as `torch.optim` defines it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UpdateRule {
    /// RMSprop with smoothing `alpha`.
    Rmsprop {
        /// Smoothing constant.
        alpha: f64,
        /// Added to the denominator.
        eps: f64,
    },
    /// SGD with momentum (no dampening).
    Sgd {
        /// Momentum.
        momentum: f64,
    },
    /// Adam (no weight decay).
    Adam {
        /// First moment's decay.
        beta1: f64,
        /// Second moment's decay.
        beta2: f64,
        /// Added to the denominator.
        eps: f64,
    },
}

impl UpdateRule {
    /// State buffers per weight (RMSprop and SGD one, Adam two).
    pub fn states(self) -> usize {
        match self {
            Self::Adam { .. } => 2,
            _ => 1,
        }
    }
}

/// What one training step gives back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Mean cross-entropy over the rows counted (images, or pixels not ignored).
    pub loss: f32,
    /// Rows whose highest score is not their label.
    pub wrong: usize,
    /// Rows counted.
    pub counted: usize,
}

/// A model being trained on the GPU.
pub struct GpuTrainer {
    model: GpuModel,
    slots: Vec<Slot>,
    grads: Vec<wgpu::Buffer>,
    /// Per slot, the optimiser's state buffers (the second only for Adam).
    states: Vec<[wgpu::Buffer; 2]>,
    rule: UpdateRule,
    /// Steps taken (Adam's bias correction).
    steps: usize,
    /// Every trainable tensor's shape, by name.
    shapes: BTreeMap<String, Vec<usize>>,
}

impl std::fmt::Debug for GpuTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuTrainer")
            .field("rule", &self.rule)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

/// A zeroed storage buffer of `len` floats.
fn zeros(ctx: &GpuContext, name: &str, len: usize) -> Result<wgpu::Buffer> {
    super::executor::upload_floats(ctx, name, &vec![0.0; len])
}

impl GpuTrainer {
    /// Uploads `model`'s weights for training with `rule`, the optimiser's state at zero (a
    /// fresh run; [`Self::set_state`] restores a saved one).
    ///
    /// # Errors
    /// [`Error::Gpu`] naming an operation that does not train on the GPU yet, a weight larger
    /// than one buffer may be, or a device error.
    pub fn upload(ctx: &GpuContext, model: &Model, rule: UpdateRule) -> Result<Self> {
        let (gpu, slots) = GpuModel::upload_for_training(ctx, model)?;
        let weights = model.weights()?;
        let mut shapes = BTreeMap::new();
        for slot in &slots {
            for name in slot_names(&slot.layout) {
                let t = weights
                    .get(name)
                    .ok_or_else(|| Error::Invalid(format!("the model has no weight `{name}`")))?;
                shapes.insert(name.clone(), t.dims().to_vec());
            }
        }
        let mut grads = Vec::with_capacity(slots.len());
        let mut states = Vec::with_capacity(slots.len());
        for slot in &slots {
            // (running statistics have neither gradient nor state)
            let len = if slot.trainable { slot.len } else { 1 };
            grads.push(zeros(ctx, "gradient", len)?);
            let second = if rule.states() == 2 { len } else { 1 };
            states.push([zeros(ctx, "optimiser state", len)?, zeros(ctx, "optimiser state", second)?]);
        }
        Ok(Self { model: gpu, slots, grads, states, rule, steps: 0, shapes })
    }

    /// Trainable tensors on the GPU (running statistics not counted).
    pub fn tensors(&self) -> usize {
        self.slots.iter().filter(|s| s.trainable).map(|s| slot_names(&s.layout).len()).sum()
    }

    /// Restores the optimiser's state after `steps` steps: per tensor name, its state (RMSprop's
    /// square average, SGD's momentum buffer, Adam's first moment) and Adam's second moment.
    /// Tensors without a state keep zeros (they had no step yet).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a state of another shape than its tensor.
    pub fn set_state(
        &mut self,
        ctx: &GpuContext,
        state: &BTreeMap<String, [Option<Tensor>; 2]>,
        steps: usize,
    ) -> Result<()> {
        for (slot, bufs) in self.slots.iter().zip(&self.states).filter(|(s, _)| s.trainable) {
            for (k, buf) in bufs.iter().enumerate().take(self.rule.states()) {
                let parts: Vec<Option<&Tensor>> = slot_names(&slot.layout)
                    .iter()
                    .map(|n| state.get(*n).and_then(|s| s[k].as_ref()))
                    .collect();
                if parts.iter().all(Option::is_none) {
                    continue;
                }
                let mut named = BTreeMap::new();
                for (name, t) in slot_names(&slot.layout).into_iter().zip(parts) {
                    let shape = &self.shapes[name];
                    let t = match t {
                        Some(t) if t.dims() != shape.as_slice() => {
                            return Err(Error::Invalid(format!(
                                "the optimiser state of `{name}` has shape {:?}, the weight {shape:?}",
                                t.dims()
                            )))
                        }
                        Some(t) => t.clone(),
                        None => Tensor::zeros(shape.as_slice(), candle_core::DType::F32, &Device::Cpu)?,
                    };
                    named.insert(name.clone(), t);
                }
                let flat = gather(&slot.layout, &named)?;
                ctx.queue.write_buffer(buf, 0, &floats_to_bytes(&flat));
            }
        }
        self.steps = steps;
        Ok(())
    }

    /// One training step on `x` (`[B, C, H, W]`) with `labels` (one per image of a classifier,
    /// one per pixel of a map's output, 255 ignored there) at learning rate `lr`;
    /// `dropout`: the generator of dropout's masks (the CPU path's).
    ///
    /// # Errors
    /// [`Error::Gpu`] for labels that do not fit the output, an input the model cannot take, or a
    /// device error.
    pub fn step(
        &mut self,
        ctx: &GpuContext,
        x: &Tensor,
        labels: &[u32],
        lr: f64,
        dropout: Rng,
    ) -> Result<StepStats> {
        let scopes = ctx.error_scopes();
        // Per pixel (a map's output) 255 is ignored; per image every label is a class.
        let ignore = if self.model.classifies() { u32::MAX } else { IGNORE };
        let (mut pass, maps, steps) = self.model.record(ctx, x, Capture::Nothing, None, Some(dropout))?;
        let last =
            steps.len().checked_sub(1).ok_or_else(|| Error::Gpu("the model has no operation".into()))?;
        let scores = maps[steps[last].out]
            .clone()
            .ok_or_else(|| Error::Gpu("the model's output was not computed".into()))?;
        let [b, k, h, w] = scores.shape;
        let rows = b * h * w;
        if labels.len() != rows {
            return Err(Error::Gpu(format!(
                "{} labels for an output of {rows} rows ({b}x{k}x{h}x{w} scores)",
                labels.len()
            )));
        }
        if let Some(bad) = labels.iter().find(|&&l| l != ignore && l as usize >= k) {
            return Err(Error::Gpu(format!("label {bad} is outside the {k} classes")));
        }
        let counted = labels.iter().filter(|&&l| l != ignore).count();
        let label_buf = pass.buffer("labels", rows)?;
        let bytes: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
        ctx.queue.write_buffer(&label_buf, 0, &bytes);
        let grad = pass.map("loss gradient", scores.shape)?;
        let loss = pass.buffer("losses", rows)?;
        let pred = pass.buffer("predictions", rows)?;
        let params = SoftmaxXentParams {
            rows: u(rows),
            classes: u(k),
            plane: u(h * w),
            scale: 1.0 / counted.max(1) as f32,
            ignore,
            ..Default::default()
        };
        pass.dispatch(&params, &[&scores.buf, &label_buf, &grad.buf, &loss, &pred], groups_for(rows));
        backward(&mut pass, steps, &maps, (last, grad), Some(&self.grads))?;
        let t = self.steps as i32 + 1;
        let (mode, a, b2, eps, c1, c2) = match self.rule {
            UpdateRule::Rmsprop { alpha, eps } => (0, alpha, 0.0, eps, 1.0, 1.0),
            UpdateRule::Sgd { momentum } => (1, momentum, 0.0, 0.0, 1.0, 1.0),
            UpdateRule::Adam { beta1, beta2, eps } => {
                (2, beta1, beta2, eps, 1.0 - beta1.powi(t), 1.0 - beta2.powi(t))
            }
        };
        for ((slot, grad), [s, t]) in self.slots.iter().zip(&self.grads).zip(&self.states) {
            if !slot.trainable {
                continue;
            }
            let params = OptimizerParams {
                n: u(slot.len),
                mode,
                lr: lr as f32,
                a: a as f32,
                b: b2 as f32,
                eps: eps as f32,
                c1: c1 as f32,
                c2: c2 as f32,
            };
            pass.dispatch(&params, &[&slot.buf, grad, s, t], groups_for(slot.len));
        }
        // With `LRNN_GPU_PROFILE=1`: the step's per-kernel table, printed.
        let profiler = pass.profiler_take();
        let stamps = profiler.as_ref().map(|p| p.resolve(ctx, &mut pass.encoder));
        let mut wanted = vec![&loss, &pred];
        wanted.extend(stamps.as_ref());
        let bytes = submit_and_read(ctx, pass.encoder, &wanted, scopes)?;
        if let (Some(p), Some(s)) = (profiler, &stamps) {
            let report = p.report(&bytes[bytes.len() - s.size() as usize..]);
            eprintln!("GPU kernels of one training step on {}:\n{report}", ctx.describe());
        }
        self.steps += 1;
        let word = |i: usize| [bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]];
        let pred_at = loss.size() as usize / 4;
        let (mut total, mut wrong) = (0f64, 0usize);
        for (i, &l) in labels.iter().enumerate() {
            if l == ignore {
                continue;
            }
            total += f64::from(f32::from_le_bytes(word(i)));
            wrong += usize::from(u32::from_le_bytes(word(pred_at + i)) != l);
        }
        Ok(StepStats { loss: (total / counted.max(1) as f64) as f32, wrong, counted })
    }

    /// Steps taken (restored ones included).
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The current weights and running statistics, by tensor name (the model's names and
    /// shapes).
    ///
    /// # Errors
    /// [`Error::Gpu`] for a device error.
    pub fn weights(&self, ctx: &GpuContext) -> Result<BTreeMap<String, Tensor>> {
        let bufs: Vec<&wgpu::Buffer> = self.slots.iter().map(|s| &s.buf).collect();
        self.read(ctx, &bufs)
    }

    /// The gradients of the last step, by tensor name.
    ///
    /// # Errors
    /// [`Error::Gpu`] for a device error.
    pub fn gradients(&self, ctx: &GpuContext) -> Result<BTreeMap<String, Tensor>> {
        let bufs: Vec<&wgpu::Buffer> = self.grads.iter().collect();
        self.read_trainable(ctx, &bufs)
    }

    /// The optimiser's state by tensor name: its first buffer and, for Adam, its second.
    ///
    /// # Errors
    /// [`Error::Gpu`] for a device error.
    pub fn state(&self, ctx: &GpuContext) -> Result<BTreeMap<String, [Option<Tensor>; 2]>> {
        let first: Vec<&wgpu::Buffer> = self.states.iter().map(|s| &s[0]).collect();
        let mut out: BTreeMap<String, [Option<Tensor>; 2]> =
            self.read_trainable(ctx, &first)?.into_iter().map(|(n, t)| (n, [Some(t), None])).collect();
        if self.rule.states() == 2 {
            let second: Vec<&wgpu::Buffer> = self.states.iter().map(|s| &s[1]).collect();
            for (n, t) in self.read_trainable(ctx, &second)? {
                if let Some(e) = out.get_mut(&n) {
                    e[1] = Some(t);
                }
            }
        }
        Ok(out)
    }

    /// [`Self::read`] of the trainable slots' buffers among `bufs` (one per slot).
    fn read_trainable(&self, ctx: &GpuContext, bufs: &[&wgpu::Buffer]) -> Result<BTreeMap<String, Tensor>> {
        let keep: Vec<usize> = (0..self.slots.len()).filter(|&i| self.slots[i].trainable).collect();
        let slots: Vec<&Slot> = keep.iter().map(|&i| &self.slots[i]).collect();
        let bufs: Vec<&wgpu::Buffer> = keep.iter().map(|&i| bufs[i]).collect();
        self.read_slots(ctx, &slots, &bufs)
    }

    /// `bufs` (one per slot, each at least the slot's length) read back and split into the
    /// slots' tensors.
    fn read(&self, ctx: &GpuContext, bufs: &[&wgpu::Buffer]) -> Result<BTreeMap<String, Tensor>> {
        let slots: Vec<&Slot> = self.slots.iter().collect();
        self.read_slots(ctx, &slots, bufs)
    }

    fn read_slots(
        &self,
        ctx: &GpuContext,
        slots: &[&Slot],
        bufs: &[&wgpu::Buffer],
    ) -> Result<BTreeMap<String, Tensor>> {
        let scopes = ctx.error_scopes();
        let encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("read weights") });
        let bytes = submit_and_read(ctx, encoder, bufs, scopes)?;
        let mut out = BTreeMap::new();
        let mut at = 0;
        for (slot, buf) in slots.iter().zip(bufs) {
            let floats: Vec<f32> = bytes[at..at + 4 * slot.len]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            at += buf.size() as usize;
            out.extend(scatter(&slot.layout, &floats, &self.shapes)?);
        }
        Ok(out)
    }
}

/// The tensor names a slot holds.
fn slot_names(layout: &Layout) -> Vec<&String> {
    match layout {
        Layout::Stacked(n) | Layout::Transposed(n) => n.iter().collect(),
    }
}

/// A slot's values from its named tensors.
fn gather(layout: &Layout, named: &BTreeMap<String, Tensor>) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for name in slot_names(layout) {
        let t = named.get(name).ok_or_else(|| Error::Invalid(format!("no tensor `{name}`")))?;
        match layout {
            Layout::Stacked(_) => out.extend(values(t)?),
            Layout::Transposed(_) => out.extend(values(&t.t()?.contiguous()?)?),
        }
    }
    Ok(out)
}

/// A slot's values split into its named tensors.
fn scatter(
    layout: &Layout,
    floats: &[f32],
    shapes: &BTreeMap<String, Vec<usize>>,
) -> Result<Vec<(String, Tensor)>> {
    let mut out = Vec::new();
    let mut at = 0;
    for name in slot_names(layout) {
        let shape = shapes.get(name).ok_or_else(|| Error::Invalid(format!("no shape for `{name}`")))?;
        let n: usize = shape.iter().product();
        let part =
            floats.get(at..at + n).ok_or_else(|| Error::Gpu(format!("`{name}`: slot too short")))?.to_vec();
        at += n;
        let t = match layout {
            Layout::Stacked(_) => Tensor::from_vec(part, shape.as_slice(), &Device::Cpu)?,
            Layout::Transposed(_) => {
                let &[r, c] = shape.as_slice() else {
                    return Err(Error::Invalid(format!("`{name}` has shape {shape:?}, not a matrix")));
                };
                Tensor::from_vec(part, (c, r), &Device::Cpu)?.t()?.contiguous()?
            }
        };
        out.push((name.clone(), t));
    }
    Ok(out)
}

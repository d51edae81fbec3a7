//! Running any model description on a wgpu device: weights uploaded once (BatchNorm folded at
//! load), intermediate buffers kept and reused between calls of the same size, every map the
//! CPU path captures (layers, and each scan direction) captured on request, and only what is
//! asked for read back.
//!
//! The executor walks the model's op graph ([`crate::models::graph`]), the same list the candle
//! path walks, so every model kind runs: a lone L-RNN module, the context-task convnets (with or
//! without inserted pairs), the CIFAR networks, the VGG-16 FCNs. At upload each op becomes one
//! step with its weights in storage buffers; neighbouring ops fuse where one kernel does both (a
//! convolution and its ReLU, a convolution and the BatchNorm + ReLU after it, an upsampling and
//! the sum it feeds). A forward pass records one dispatch per step into one command buffer: see
//! `shaders/README.md` for the kernels.

use std::cell::RefCell;
use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};

use super::context::GpuContext;
use super::kernels::{fold, groups_for, submit_and_read, MAX_HIDDEN};
use super::params::{
    AffineParams, BatchNormParams, CombineParams, Conv2dParams, ConvTransposeParams, CropParams,
    GlobalPoolBackwardParams, GlobalPoolParams, GruPairBackwardParams, KernelParams, LabelColourParams,
    Pool2dBackwardParams, Pool2dParams, ScanPairBackwardParams, ScanPairParams, ScanStepParams,
    UpsampleBackwardParams, UpsampleParams, WeightGradParams,
};
use super::profile::{Profiler, Report};
use crate::error::{Error, Result};
use crate::models::capture::{Activation, MapKind};
use crate::models::graph::{Graph, Op, Projection, Value};
use crate::models::Model;
use crate::nn::forward::join_name;
use crate::nn::{Axis, Cell, GlobalPool, Merge};
use crate::rng::Rng;

/// A map on the GPU: its buffer and shape `[B, C, H, W]`.
#[derive(Clone)]
pub(super) struct Map {
    pub(super) buf: wgpu::Buffer,
    pub(super) shape: [usize; 4],
}

impl Map {
    fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A convolution's weights (`[O, I, k, k]`, bias `[O]`, zero when the layer has none).
struct ConvW {
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
    cin: usize,
    cout: usize,
    kernel: usize,
    pad: usize,
    stride: usize,
    /// The trainable slots of the weight and of the bias (a model uploaded for training; a
    /// layer without bias has none).
    weight_slot: Option<usize>,
    bias_slot: Option<usize>,
}

/// A trainable weight buffer of a model uploaded for training, and the model's tensors it holds.
#[derive(Clone)]
pub(super) struct Slot {
    pub(super) buf: wgpu::Buffer,
    pub(super) len: usize,
    pub(super) layout: Layout,
    /// Whether the optimiser updates it (else a running statistic the forward updates).
    pub(super) trainable: bool,
}

/// How a slot's values are laid out from the model's named tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Layout {
    /// The tensors flattened, one after the other.
    Stacked(Vec<String>),
    /// Each `[R, C]` tensor transposed, one after the other (a pair's recurrences).
    Transposed(Vec<String>),
}

/// A bidirectional pair: its own input projection (both directions' `U` stacked, as a 1x1
/// convolution) or none (it reads a projection shared by both directions).
struct PairW {
    proj: Option<ConvW>,
    /// `[2, D, G·D]`: both directions' `V`, transposed.
    vt: wgpu::Buffer,
    /// `[2, 2, D]`: LayerNorm gain and bias per direction (a placeholder for the other cells).
    ln: wgpu::Buffer,
    cell: Cell,
    axis: Axis,
    hidden: usize,
    /// The trainable slot of `vt` (a model uploaded for training).
    vt_slot: Option<usize>,
    /// The trainable slot of `ln` (vanilla + LayerNorm pairs uploaded for training).
    ln_slot: Option<usize>,
}

/// What one step of a forward pass runs: one op of the graph, or a few neighbouring ones fused.
enum Kind {
    /// A convolution (or a linear layer on `[B, C, 1, 1]`), with a ReLU after it when `relu`
    /// (and a BatchNorm folded into its weights when the graph had one after it).
    Conv { conv: ConvW, relu: bool },
    /// A per-channel `scale · x + shift`, then a ReLU (a BatchNorm + ReLU in inference mode, or
    /// a lone ReLU with scale 1 and shift 0 over one channel).
    Affine { scale: wgpu::Buffer, shift: wgpu::Buffer, channels: Option<usize> },
    /// 2x2 max pooling.
    MaxPool,
    /// A scan pair, its maps merged.
    Pair { pair: PairW, merge: Merge, prefix: String },
    /// Two values summed, or joined along channels.
    Combine(Combine),
    /// Global pooling to `[B, C, 1, 1]`.
    GlobalPool(GlobalPool),
    /// BatchNorm + ReLU in training mode (batch statistics; a model uploaded for training):
    /// gains then biases in `wb`, the running mean then variance in `running`.
    BatchNorm { wb: wgpu::Buffer, running: wgpu::Buffer, channels: usize, wb_slot: Option<usize> },
    /// Dropout with this drop probability: nothing to run in inference (the output is the
    /// input); in training the forward's mask, drawn on the CPU as the CPU path draws it.
    Dropout(f32),
    /// Bilinear upsampling of the first input to the second's size, plus the value `add`.
    Upsample { add: Option<Value> },
    /// 2x2 max pooling in Caffe's ceil mode.
    MaxPoolCeil,
    /// A bias-free transposed convolution (`[in, out, k, k]` weights); `back` is the
    /// convolution its input's gradient is (the same weights read as `[out, in]` = `[cin, cout]`,
    /// the same stride, a zero bias), holding the weights' trainable slot.
    ConvTranspose { weight: wgpu::Buffer, cin: usize, cout: usize, kernel: usize, stride: usize, back: ConvW },
    /// The first input cropped to the second's height and width at `offset`.
    Crop(usize),
}

/// One step: what runs, on which values, giving which value, captured as what.
pub(super) struct Step {
    kind: Kind,
    inputs: Vec<Value>,
    pub(super) out: Value,
    capture: Option<String>,
    /// A unique name for the step's buffers.
    label: String,
}

/// A model's weights on the GPU, ready to run.
pub struct GpuModel {
    steps: Vec<Step>,
    graph: Graph,
    name: String,
    /// Whether the model segments (an FCN: `segment` applies).
    segments: bool,
    /// Intermediate buffers by name, reused while their size fits.
    scratch: BTreeMap<String, wgpu::Buffer>,
    /// A small zero buffer bound where a kernel's optional input is unused.
    placeholder: wgpu::Buffer,
    /// The VOC palette as RGBA8, uploaded with the first segmentation.
    palette: Option<wgpu::Buffer>,
    /// Whether forward passes time each kernel (`LRNN_GPU_PROFILE=1`, or [`Self::set_profiling`]).
    profiling: bool,
    /// The last profiled forward pass's table.
    profile: Option<Report>,
    /// How pairs' scans run (`LRNN_GPU_SCAN`, or [`Self::set_scan_mode`]).
    scan: ScanMode,
}

/// How the wgpu path runs a pair's scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanMode {
    /// Per step for vanilla pairs of at least [`STEP_SCAN_HIDDEN`] units over at least
    /// [`STEP_SCAN_SEQUENCES`] sequences, else per sequence.
    #[default]
    Auto,
    /// One workgroup per sequence and direction walks every step (`scan_pair.wgsl`).
    Sequences,
    /// One matrix product per step over every sequence (`scan_step.wgsl`), for vanilla pairs
    /// (the other cells run per sequence).
    Steps,
}

impl ScanMode {
    /// The mode `LRNN_GPU_SCAN` asks for (`auto`, `sequences` or `steps`; unset or anything
    /// else: auto).
    pub fn from_env() -> Self {
        match std::env::var("LRNN_GPU_SCAN").as_deref() {
            Ok("sequences") => Self::Sequences,
            Ok("steps") => Self::Steps,
            _ => Self::Auto,
        }
    }

    /// Whether a pair of `cell` with `d` hidden units over `sequences` sequences (per
    /// direction) runs per step.
    fn per_step(self, cell: Cell, d: usize, sequences: usize) -> bool {
        cell == Cell::Vanilla
            && match self {
                Self::Auto => d >= STEP_SCAN_HIDDEN && sequences >= STEP_SCAN_SEQUENCES,
                Self::Sequences => false,
                Self::Steps => true,
            }
    }
}

/// The narrowest vanilla pair [`ScanMode::Auto`] runs per step: below it a workgroup per
/// sequence finishes its matrix-vector products quickly, and one dispatch beats one per step.
pub const STEP_SCAN_HIDDEN: usize = 256;

/// The fewest sequences [`ScanMode::Auto`] runs per step: a step's product is tiled 64
/// sequences at a time, and with few sequences most of a tile is padding (on lavapipe, 1,024
/// units: 12 sequences 1.4x slower per step, 48 sequences 2.4x faster; BENCHMARKS.md).
pub const STEP_SCAN_SEQUENCES: usize = 32;

/// What one GPU forward pass gives back.
#[derive(Debug)]
pub struct GpuOutput {
    /// The model's output: class scores `[B, classes]`, an FCN's score maps `[B, classes, H, W]`
    /// or a lone module's map `[B, C, H, W]`.
    pub output: Tensor,
    /// Captured maps in forward order (the names of the CPU path: `stem`, `stage3.0`,
    /// `stage2.0.lrnn.lr`, `conv1_1`, `fc1.lr`, `score`, …), each `[B, C, H, W]`; empty unless
    /// asked for.
    pub captured: Vec<(String, Tensor)>,
}

impl GpuOutput {
    /// The captured maps in forward order, then the output: what
    /// [`crate::probe::activations::activations`] gives on the CPU.
    pub fn into_activations(self) -> Vec<Activation> {
        let mut out: Vec<Activation> =
            self.captured.into_iter().map(|(name, t)| Activation::captured(name, t)).collect();
        out.push(Activation { name: "output".into(), kind: MapKind::Output, tensor: self.output });
        out
    }
}

/// One image's segmentation computed and coloured on the GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuSegmentation {
    /// Width and height of the label map (the input's).
    pub size: (usize, usize),
    /// The label of every pixel, row by row.
    pub labels: Vec<u8>,
    /// The labels in the VOC palette over the photo, RGBA8 (when a photo was given).
    pub picture: Option<Vec<u8>>,
}

/// A count as a kernel parameter: every buffer passed [`fits`] first, so counts stay within u32.
pub(super) fn u(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

pub(super) fn floats_to_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub(super) fn upload_floats(ctx: &GpuContext, name: &str, values: &[f32]) -> Result<wgpu::Buffer> {
    let bytes = (values.len().max(1) * 4) as u64;
    fits(ctx, name, bytes)?;
    let mut contents = floats_to_bytes(values);
    contents.resize(bytes as usize, 0);
    Ok(ctx.buffer_with(name, &contents, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC))
}

/// An error naming `name` when a buffer of `bytes` is larger than one binding may hold on this
/// adapter.
fn fits(ctx: &GpuContext, name: &str, bytes: u64) -> Result<()> {
    if bytes <= ctx.max_binding() {
        return Ok(());
    }
    Err(Error::Gpu(format!(
        "{name} needs {}, more than the {} one buffer may hold on {}",
        in_words(bytes),
        in_words(ctx.max_binding()),
        ctx.describe()
    )))
}

/// A size in KiB under 1 MiB, else in MiB.
fn in_words(bytes: u64) -> String {
    if bytes < 1 << 20 {
        format!("{} KiB", bytes.div_ceil(1 << 10))
    } else {
        format!("{} MiB", bytes.div_ceil(1 << 20))
    }
}

pub(super) fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?)
}

/// The model's weights, each read by name with a message naming a missing one.
struct Weights<'a> {
    ctx: &'a GpuContext,
    map: BTreeMap<String, Tensor>,
    /// For training: every trainable buffer uploaded, in upload order (`None`: inference, where
    /// BatchNorm is folded into the convolutions).
    slots: Option<RefCell<Vec<Slot>>>,
}

impl Weights<'_> {
    /// Registers `buf` (holding `layout`'s tensors, `len` values) as a trainable slot when
    /// uploading for training.
    fn slot(&self, buf: &wgpu::Buffer, len: usize, layout: Layout) -> Option<usize> {
        let slots = self.slots.as_ref()?;
        let mut slots = slots.borrow_mut();
        slots.push(Slot { buf: buf.clone(), len, layout, trainable: true });
        Some(slots.len() - 1)
    }

    /// Registers `buf` as running statistics (brought back with the weights, never optimised).
    fn statistics(&self, buf: &wgpu::Buffer, len: usize, names: Vec<String>) {
        if let Some(slots) = &self.slots {
            slots.borrow_mut().push(Slot {
                buf: buf.clone(),
                len,
                layout: Layout::Stacked(names),
                trainable: false,
            });
        }
    }

    /// BatchNorm `<prefix>.*` for training: its gains and biases as one trainable slot, its
    /// running mean and variance as one buffer of statistics.
    fn batch_norm_training(&self, prefix: &str, channels: usize) -> Result<Kind> {
        let names = |a: &str, b: &str| vec![format!("{prefix}.{a}"), format!("{prefix}.{b}")];
        let [wb_names, run_names] = [names("weight", "bias"), names("running_mean", "running_var")];
        let mut wb = Vec::new();
        let mut running = Vec::new();
        for (into, list) in [(&mut wb, &wb_names), (&mut running, &run_names)] {
            for n in list {
                let v = self.floats(n)?;
                if v.len() != channels {
                    return Err(Error::Invalid(format!(
                        "`{n}` has {} values for {channels} channels",
                        v.len()
                    )));
                }
                into.extend(v);
            }
        }
        let wb_buf = upload_floats(self.ctx, prefix, &wb)?;
        let running_buf = upload_floats(self.ctx, prefix, &running)?;
        let wb_slot = self.slot(&wb_buf, wb.len(), Layout::Stacked(wb_names));
        self.statistics(&running_buf, running.len(), run_names);
        Ok(Kind::BatchNorm { wb: wb_buf, running: running_buf, channels, wb_slot })
    }

    /// Whether the weights are uploaded for training.
    fn training(&self) -> bool {
        self.slots.is_some()
    }

    fn get(&self, name: &str) -> Result<&Tensor> {
        self.map.get(name).ok_or_else(|| Error::Invalid(format!("the model has no weight `{name}`")))
    }

    fn floats(&self, name: &str) -> Result<Vec<f32>> {
        values(self.get(name)?)
    }

    /// The convolution `<prefix>.weight` (`[O, I, k, k]`) with `<prefix>.bias` when it exists,
    /// its outputs scaled by `scale` and shifted by `shift` when given (a BatchNorm folded in).
    fn conv(&self, prefix: &str, pad: usize, fold: Option<(&[f32], &[f32])>) -> Result<ConvW> {
        let w = self.get(&format!("{prefix}.weight"))?;
        let dims = w.dims().to_vec();
        let [cout, cin, kernel] = match dims.as_slice() {
            [o, i, k, _] => [*o, *i, *k],
            [o, i] => [*o, *i, 1],
            _ => return Err(Error::Invalid(format!("`{prefix}.weight` has shape {dims:?}"))),
        };
        let mut weight = values(w)?;
        let has_bias = self.map.contains_key(&format!("{prefix}.bias"));
        let mut bias = match self.map.get(&format!("{prefix}.bias")) {
            Some(b) => values(b)?,
            None => vec![0.0; cout],
        };
        if let Some((scale, shift)) = fold {
            let per_out = weight.len() / cout;
            for (o, chunk) in weight.chunks_mut(per_out).enumerate() {
                chunk.iter_mut().for_each(|v| *v *= scale[o]);
                bias[o] = bias[o] * scale[o] + shift[o];
            }
        }
        let (weight_buf, bias_buf) =
            (upload_floats(self.ctx, prefix, &weight)?, upload_floats(self.ctx, prefix, &bias)?);
        let weight_slot =
            self.slot(&weight_buf, weight.len(), Layout::Stacked(vec![format!("{prefix}.weight")]));
        let bias_slot = if has_bias {
            self.slot(&bias_buf, bias.len(), Layout::Stacked(vec![format!("{prefix}.bias")]))
        } else {
            None
        };
        Ok(ConvW {
            weight: weight_buf,
            bias: bias_buf,
            cin,
            cout,
            kernel,
            pad,
            stride: 1,
            weight_slot,
            bias_slot,
        })
    }

    /// BatchNorm `<prefix>.*` in inference mode as a per-channel `(scale, shift)`.
    fn batch_norm(&self, prefix: &str) -> Result<(Vec<f32>, Vec<f32>)> {
        let gamma = self.floats(&format!("{prefix}.weight"))?;
        let beta = self.floats(&format!("{prefix}.bias"))?;
        let mean = self.floats(&format!("{prefix}.running_mean"))?;
        let var = self.floats(&format!("{prefix}.running_var"))?;
        let scale: Vec<f32> = gamma.iter().zip(&var).map(|(g, v)| g / (v + 1e-5).sqrt()).collect();
        let shift = beta.iter().zip(&mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
        Ok((scale, shift))
    }

    /// A pair's recurrences (`names` per direction, `[G·D, D]` each), transposed and stacked.
    fn recurrences(&self, names: &[String; 2], prefix: &str) -> Result<(wgpu::Buffer, usize, Option<usize>)> {
        let mut stacked = Vec::new();
        let mut hidden = 0;
        for name in names {
            let v = self.get(name)?;
            hidden = v.dims2()?.1;
            stacked.extend(values(&v.t()?.contiguous()?)?);
        }
        if hidden > MAX_HIDDEN {
            return Err(Error::Gpu(format!(
                "{prefix}: {hidden} hidden units, the scan kernel holds at most {MAX_HIDDEN}"
            )));
        }
        let buf = upload_floats(self.ctx, prefix, &stacked)?;
        let slot = self.slot(&buf, stacked.len(), Layout::Transposed(names.to_vec()));
        Ok((buf, hidden, slot))
    }

    /// A pair with its own projection (`<prefix>.<dir>.u.*`, `.v.weight`, `.ln.*`).
    fn own_pair(&self, prefix: &str, axis: Axis, cell: Cell) -> Result<PairW> {
        let dirs = axis.directions().map(|d| join_name(prefix, d.name()));
        let (mut u, mut b, mut ln) = (Vec::new(), Vec::new(), Vec::new());
        for dir in &dirs {
            u.extend(self.floats(&format!("{dir}.u.weight"))?);
            b.extend(self.floats(&format!("{dir}.u.bias"))?);
            if cell == Cell::VanillaLn {
                ln.extend(self.floats(&format!("{dir}.ln.weight"))?);
                ln.extend(self.floats(&format!("{dir}.ln.bias"))?);
            }
        }
        let (vt, hidden, vt_slot) =
            self.recurrences(&dirs.clone().map(|d| format!("{d}.v.weight")), prefix)?;
        let cout = b.len();
        let name = format!("{prefix} U");
        let (weight, bias) = (upload_floats(self.ctx, &name, &u)?, upload_floats(self.ctx, &name, &b)?);
        let stacked = |what: &str| Layout::Stacked(dirs.iter().map(|d| format!("{d}.u.{what}")).collect());
        let proj = ConvW {
            weight_slot: self.slot(&weight, u.len(), stacked("weight")),
            bias_slot: self.slot(&bias, b.len(), stacked("bias")),
            weight,
            bias,
            cin: u.len() / cout,
            cout,
            kernel: 1,
            pad: 0,
            stride: 1,
        };
        let ln_len = ln.len();
        let ln = upload_floats(self.ctx, prefix, &ln)?;
        let ln_slot = if cell == Cell::VanillaLn {
            let names =
                dirs.iter().flat_map(|d| [format!("{d}.ln.weight"), format!("{d}.ln.bias")]).collect();
            self.slot(&ln, ln_len, Layout::Stacked(names))
        } else {
            None
        };
        Ok(PairW { proj: Some(proj), vt, ln, cell, axis, hidden, vt_slot, ln_slot })
    }

    /// A pair inserted after the convolution `prefix` (vanilla, `<prefix>.v_<dir>.weight`).
    fn inserted_pair(&self, prefix: &str, axis: Axis) -> Result<PairW> {
        let names = axis.directions().map(|d| format!("{prefix}.v_{}.weight", d.name()));
        let (vt, hidden, vt_slot) = self.recurrences(&names, prefix)?;
        let ln = upload_floats(self.ctx, prefix, &[])?;
        Ok(PairW { proj: None, vt, ln, cell: Cell::Vanilla, axis, hidden, vt_slot, ln_slot: None })
    }
}

/// The steps of `graph` with their weights uploaded: one per op, fusing a convolution with the
/// ReLU or BatchNorm + ReLU that alone reads it, and an upsampling with the sum that alone reads
/// it (when the fused-away value is not captured).
fn build(w: &Weights, graph: &Graph) -> Result<Vec<Step>> {
    let uses = graph.uses();
    let nodes = &graph.nodes;
    // Whether node `i + 1` may absorb node `i`: it reads node i's value first, nothing else
    // does, and node i's value is not captured.
    let absorbs = |i: usize| {
        let v = i + 1;
        nodes.get(i + 1).is_some_and(|next| next.inputs.first() == Some(&v))
            && uses[v] == 1
            && nodes[i].capture.is_none()
    };
    let mut steps = Vec::with_capacity(nodes.len());
    let mut i = 0;
    while i < nodes.len() {
        let node = &nodes[i];
        let next = nodes.get(i + 1).map(|n| &n.op);
        let mut last = i;
        let kind = match &node.op {
            Op::Conv { name, pad, .. } => match next {
                Some(Op::Relu) if absorbs(i) => {
                    last = i + 1;
                    Kind::Conv { conv: w.conv(name, *pad, None)?, relu: true }
                }
                Some(Op::BatchNormRelu { name: bn, .. }) if absorbs(i) && !w.training() => {
                    last = i + 1;
                    let (scale, shift) = w.batch_norm(bn)?;
                    Kind::Conv { conv: w.conv(name, *pad, Some((&scale, &shift)))?, relu: true }
                }
                _ => Kind::Conv { conv: w.conv(name, *pad, None)?, relu: false },
            },
            Op::Relu => Kind::Affine {
                scale: upload_floats(w.ctx, "ReLU", &[1.0])?,
                shift: upload_floats(w.ctx, "ReLU", &[0.0])?,
                channels: Some(1),
            },
            Op::BatchNormRelu { name, channels } if w.training() => w.batch_norm_training(name, *channels)?,
            Op::BatchNormRelu { name, .. } => {
                let (scale, shift) = w.batch_norm(name)?;
                Kind::Affine {
                    scale: upload_floats(w.ctx, name, &scale)?,
                    shift: upload_floats(w.ctx, name, &shift)?,
                    channels: None,
                }
            }
            Op::MaxPool2x2 => Kind::MaxPool,
            Op::ScanPair { prefix, axis, cell, hidden, projection, merge } => {
                let pair = match projection {
                    Projection::Own { .. } => w.own_pair(prefix, *axis, *cell)?,
                    Projection::Shared => w.inserted_pair(prefix, *axis)?,
                };
                if pair.hidden != *hidden {
                    return Err(Error::Invalid(format!(
                        "{prefix}: the recurrences have {} hidden units, the model {hidden}",
                        pair.hidden
                    )));
                }
                Kind::Pair { pair, merge: *merge, prefix: prefix.clone() }
            }
            Op::Add => Kind::Combine(Combine::Sum),
            Op::Concat => Kind::Combine(Combine::Concat),
            Op::GlobalPool(p) => Kind::GlobalPool(*p),
            Op::Dropout(p) => Kind::Dropout(*p),
            Op::Linear { name, .. } => Kind::Conv { conv: w.conv(name, 0, None)?, relu: false },
            Op::Upsample => match (next, nodes.get(i + 1)) {
                (Some(Op::Add), Some(add)) if absorbs(i) => {
                    last = i + 1;
                    Kind::Upsample { add: add.inputs.get(1).copied() }
                }
                _ => Kind::Upsample { add: None },
            },
            Op::MaxPoolCeil => Kind::MaxPoolCeil,
            Op::ConvTranspose { name, in_channels, out_channels, kernel, stride } => {
                let values = w.floats(&format!("{name}.weight"))?;
                let weight = upload_floats(w.ctx, name, &values)?;
                let weight_slot =
                    w.slot(&weight, values.len(), Layout::Stacked(vec![format!("{name}.weight")]));
                let back = ConvW {
                    weight: weight.clone(),
                    bias: upload_floats(w.ctx, name, &vec![0.0; *in_channels])?,
                    cin: *out_channels,
                    cout: *in_channels,
                    kernel: *kernel,
                    pad: 0,
                    stride: *stride,
                    weight_slot,
                    bias_slot: None,
                };
                Kind::ConvTranspose {
                    weight,
                    cin: *in_channels,
                    cout: *out_channels,
                    kernel: *kernel,
                    stride: *stride,
                    back,
                }
            }
            Op::Crop { offset } => Kind::Crop(*offset),
        };
        steps.push(Step {
            kind,
            inputs: node.inputs.clone(),
            out: last + 1,
            capture: nodes[last].capture.clone(),
            label: format!("{i} {}", nodes[last].capture.as_deref().unwrap_or("")),
        });
        i = last + 1;
    }
    Ok(steps)
}

/// Which captured maps a forward pass reads back besides the output.
#[derive(Debug, Clone, Copy, Default)]
pub enum Capture<'a> {
    /// None: only the output.
    #[default]
    Nothing,
    /// Every map the CPU path captures.
    All,
    /// These maps only (capture names).
    Only(&'a [&'a str]),
}

impl Capture<'_> {
    fn wants(&self, name: &str) -> bool {
        match self {
            Capture::Nothing => false,
            Capture::All => true,
            Capture::Only(names) => names.contains(&name),
        }
    }
}

/// A recorded forward pass: the pass, every value's map (value 0 the input), the steps.
pub(super) type Recorded<'a> = (Pass<'a>, Vec<Option<Map>>, &'a [Step]);

/// One forward pass being recorded: the command encoder, the kept buffers and what is captured.
pub(super) struct Pass<'a> {
    pub(super) ctx: &'a GpuContext,
    pub(super) encoder: wgpu::CommandEncoder,
    kept: &'a mut BTreeMap<String, wgpu::Buffer>,
    placeholder: &'a wgpu::Buffer,
    capture: Capture<'a>,
    captured: Vec<(String, Map)>,
    /// Timestamps around each dispatch, when profiling.
    profiler: Option<Profiler>,
    /// How pairs' scans run.
    scan: ScanMode,
    /// Each pair's projection and hidden states by prefix (for a backward pass).
    pairs: BTreeMap<String, [Map; 3]>,
    /// The shape of the map a backward pass started from.
    seed_shape: Option<[usize; 4]>,
    /// Training: the random numbers of dropout's masks (drawn in the CPU path's order).
    dropout: Option<Rng>,
    /// Training: each dropout step's mask (already scaled by `1 / (1 - p)`), by step label.
    masks: BTreeMap<String, Map>,
    /// Training: each BatchNorm step's batch statistics (mean, 1 / std), by step label.
    bn_stats: BTreeMap<String, wgpu::Buffer>,
}

impl Pass<'_> {
    /// The buffer `name` of `floats` values: the kept one when its size matches.
    pub(super) fn buffer(&mut self, name: &str, floats: usize) -> Result<wgpu::Buffer> {
        let bytes = (floats.max(1) * 4) as u64;
        fits(self.ctx, name, bytes)?;
        if let Some(b) = self.kept.get(name).filter(|b| b.size() == bytes) {
            return Ok(b.clone());
        }
        let b = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.kept.insert(name.to_string(), b.clone());
        Ok(b)
    }

    pub(super) fn map(&mut self, name: &str, shape: [usize; 4]) -> Result<Map> {
        Ok(Map { buf: self.buffer(name, shape.iter().product())?, shape })
    }

    pub(super) fn dispatch<P: KernelParams>(
        &mut self,
        params: &P,
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32, u32),
    ) {
        let bytes: u64 = buffers.iter().map(|b| b.size()).sum();
        let name = super::kernels::kernel_name(P::KERNEL);
        let writes = self.profiler.as_mut().and_then(|p| p.next(params, name, bytes));
        self.ctx.kernels.dispatch(self.ctx, &mut self.encoder, params, buffers, groups, writes);
    }

    /// Takes the pass's profiler (a training step is not profiled).
    pub(super) fn profiler_take(&mut self) -> Option<Profiler> {
        self.profiler.take()
    }

    fn record(&mut self, name: &str, map: &Map) {
        if self.capture.wants(name) {
            self.captured.push((name.to_string(), map.clone()));
        }
    }

    /// Dropout of `x` with drop probability `p`: in training its mask drawn on the CPU (as the
    /// CPU path draws it, value by value from the same generator) and applied; else `x`.
    fn dropout(&mut self, name: &str, x: &Map, p: f32) -> Result<Map> {
        let Some(rng) = self.dropout.as_mut().filter(|_| p != 0.0) else { return Ok(x.clone()) };
        if !(0.0..1.0).contains(&p) {
            return Err(Error::Gpu(format!("{name}: dropout probability {p} is outside [0, 1)")));
        }
        let scale = 1.0 / (1.0 - p);
        let mask: Vec<f32> = (0..x.len()).map(|_| if rng.uniform() >= p { scale } else { 0.0 }).collect();
        let m = self.map(&format!("{name} mask"), x.shape)?;
        self.ctx.queue.write_buffer(&m.buf, 0, &floats_to_bytes(&mask));
        self.masks.insert(name.to_string(), m.clone());
        self.combine(name, x, &m, Combine::Product)
    }

    fn conv(&mut self, name: &str, x: &Map, c: &ConvW, relu: bool) -> Result<Map> {
        let [b, cin, h, w] = x.shape;
        if cin != c.cin {
            return Err(Error::Gpu(format!("{name}: input has {cin} channels, the layer takes {}", c.cin)));
        }
        if h + 2 * c.pad < c.kernel || w + 2 * c.pad < c.kernel || c.stride == 0 {
            let k = c.kernel;
            return Err(Error::Gpu(format!("{name}: a {h}x{w} map is smaller than the {k}x{k} kernel")));
        }
        let oh = (h + 2 * c.pad - c.kernel) / c.stride + 1;
        let ow = (w + 2 * c.pad - c.kernel) / c.stride + 1;
        let out = self.map(name, [b, c.cout, oh, ow])?;
        let (gx, gy) = fold((b * oh * ow).div_ceil(64));
        let params = Conv2dParams {
            batch: u(b),
            in_channels: u(cin),
            height: u(h),
            width: u(w),
            out_channels: u(c.cout),
            kernel: u(c.kernel),
            pad: u(c.pad),
            stride: u(c.stride),
            out_height: u(oh),
            out_width: u(ow),
            relu: u32::from(relu),
            n_groups_x: gx,
            ..Default::default()
        };
        let groups = (gx, gy, u(c.cout.div_ceil(64)));
        self.dispatch(&params, &[&x.buf, &c.weight, &c.bias, &out.buf], groups);
        Ok(out)
    }

    fn pool(&mut self, name: &str, x: &Map, kernel: usize, avg: bool) -> Result<Map> {
        self.pool_strided(name, x, (kernel, kernel), avg, false)
    }

    /// Max- or average-pooling over `kernel`-wide windows every `stride` positions; with `ceil`
    /// (maximum only), Caffe's ceil mode: a last window that does not fit is clipped, not dropped.
    fn pool_strided(
        &mut self,
        name: &str,
        x: &Map,
        (kernel, stride): (usize, usize),
        avg: bool,
        ceil: bool,
    ) -> Result<Map> {
        let [b, c, h, w] = x.shape;
        // The room a clipped last window may take past the map.
        let reach = if ceil { stride.saturating_sub(1) } else { 0 };
        if h + reach < kernel || w + reach < kernel || kernel == 0 || stride == 0 || (ceil && avg) {
            return Err(Error::Gpu(format!(
                "{name}: a {h}x{w} map is smaller than the {kernel}x{kernel} pool"
            )));
        }
        let side = |n: usize| (n + reach - kernel) / stride + 1;
        let out = self.map(name, [b, c, side(h), side(w)])?;
        let params = Pool2dParams {
            planes: u(b * c),
            height: u(h),
            width: u(w),
            kernel: u(kernel),
            stride: u(stride),
            mode: u32::from(avg),
            ceil: u32::from(ceil),
            ..Default::default()
        };
        self.dispatch(&params, &[&x.buf, &out.buf], groups_for(out.len()));
        Ok(out)
    }

    /// A bias-free transposed convolution without padding.
    fn conv_transpose(
        &mut self,
        name: &str,
        x: &Map,
        weight: &wgpu::Buffer,
        (cin, cout, kernel, stride): (usize, usize, usize, usize),
    ) -> Result<Map> {
        let [b, c, h, w] = x.shape;
        if c != cin || h == 0 || w == 0 {
            return Err(Error::Gpu(format!("{name}: cannot upsample a map of shape {:?}", x.shape)));
        }
        let (oh, ow) = ((h - 1) * stride + kernel, (w - 1) * stride + kernel);
        let out = self.map(name, [b, cout, oh, ow])?;
        let params = ConvTransposeParams {
            batch: u(b),
            in_channels: u(cin),
            height: u(h),
            width: u(w),
            out_channels: u(cout),
            kernel: u(kernel),
            stride: u(stride),
            out_height: u(oh),
            out_width: u(ow),
            ..Default::default()
        };
        self.dispatch(&params, &[&x.buf, weight, &out.buf], groups_for(out.len()));
        Ok(out)
    }

    /// `x` cropped to `oh x ow` from row and column `offset`.
    fn crop(&mut self, name: &str, x: &Map, (oh, ow): (usize, usize), offset: usize) -> Result<Map> {
        let [b, c, h, w] = x.shape;
        if offset + oh > h || offset + ow > w {
            return Err(Error::Gpu(format!("{name}: cannot crop {h}x{w} to {oh}x{ow} at {offset}")));
        }
        let out = self.map(name, [b, c, oh, ow])?;
        let params = CropParams {
            planes: u(b * c),
            height: u(h),
            width: u(w),
            out_height: u(oh),
            out_width: u(ow),
            offset: u(offset),
            ..Default::default()
        };
        self.dispatch(&params, &[&x.buf, &out.buf], groups_for(out.len()));
        Ok(out)
    }

    /// The gradient of a crop's input (of shape `input`) from its output's `g`.
    fn uncrop(&mut self, name: &str, g: &Map, input: [usize; 4], offset: usize) -> Result<Map> {
        let [b, c, oh, ow] = g.shape;
        if input[..2] != [b, c] || offset + oh > input[2] || offset + ow > input[3] {
            return Err(Error::Gpu(format!("{name}: a {oh}x{ow} crop at {offset} of {input:?}")));
        }
        let out = self.map(name, input)?;
        let params = CropParams {
            planes: u(b * c),
            height: u(input[2]),
            width: u(input[3]),
            out_height: u(oh),
            out_width: u(ow),
            offset: u(offset),
            mode: 1,
            ..Default::default()
        };
        self.dispatch(&params, &[&g.buf, &out.buf], groups_for(out.len()));
        Ok(out)
    }

    fn combine(&mut self, name: &str, a: &Map, b: &Map, mode: Combine) -> Result<Map> {
        let [n, ca, h, w] = a.shape;
        let cb = b.shape[1];
        if b.shape[0] != n || b.shape[2..] != a.shape[2..] || (mode != Combine::Concat && ca != cb) {
            return Err(Error::Gpu(format!("{name}: cannot join maps {:?} and {:?}", a.shape, b.shape)));
        }
        let channels = if mode == Combine::Concat { ca + cb } else { ca };
        let out = self.map(name, [n, channels, h, w])?;
        let params = CombineParams {
            batch: u(n),
            a_channels: u(ca),
            b_channels: u(cb),
            plane: u(h * w),
            mode: mode as u32,
            ..Default::default()
        };
        self.dispatch(&params, &[&a.buf, &b.buf, &out.buf], groups_for(out.len()));
        Ok(out)
    }

    /// `max(scale[c] · x + shift[c], 0)` per channel (over `channels` channels: the map's, or 1
    /// for one scale and shift everywhere).
    fn affine(
        &mut self,
        name: &str,
        x: &Map,
        (scale, shift): (&wgpu::Buffer, &wgpu::Buffer),
        channels: Option<usize>,
    ) -> Result<Map> {
        let out = self.map(name, x.shape)?;
        let [_, c, h, w] = x.shape;
        let (c, plane) = match channels {
            Some(k) => (k, 1),
            None => (c, h * w),
        };
        let params = AffineParams { n: u(x.len()), channels: u(c), plane: u(plane), relu: 1 };
        self.dispatch(&params, &[&x.buf, scale, shift, &out.buf], groups_for(out.len()));
        Ok(out)
    }

    fn upsample(&mut self, name: &str, x: &Map, (oh, ow): (usize, usize), add: Option<&Map>) -> Result<Map> {
        let [b, c, h, w] = x.shape;
        let out = self.map(name, [b, c, oh, ow])?;
        if let Some(a) = add.filter(|a| a.shape != out.shape) {
            return Err(Error::Gpu(format!("{name}: cannot add {:?} to {:?}", a.shape, out.shape)));
        }
        let params = UpsampleParams {
            planes: u(b * c),
            in_height: u(h),
            in_width: u(w),
            out_height: u(oh),
            out_width: u(ow),
            add: u32::from(add.is_some()),
            ..Default::default()
        };
        let addend = add.map_or(self.placeholder, |a| &a.buf).clone();
        self.dispatch(&params, &[&x.buf, &addend, &out.buf], groups_for(out.len()));
        Ok(out)
    }

    /// Global max or average pooling to `[B, C, 1, 1]`.
    fn global_pool(&mut self, name: &str, x: &Map, pool: GlobalPool) -> Result<Map> {
        let [b, c, h, w] = x.shape;
        let pooled = self.map(name, [b, c, 1, 1])?;
        let (gx, gy) = fold(b * c);
        let params = GlobalPoolParams {
            planes: u(b * c),
            size: u(h * w),
            mode: u32::from(pool == GlobalPool::Avg),
            groups_x: gx,
        };
        self.dispatch(&params, &[&x.buf, &pooled.buf], (gx, gy, 1));
        Ok(pooled)
    }

    /// A pair on `x` (the layer input with an own projection, else the shared projection
    /// itself), its directions recorded as `<prefix>.<dir>`, merged by `merge`.
    fn pair(&mut self, prefix: &str, x: &Map, pair: &PairW, merge: Merge) -> Result<Map> {
        let d = pair.hidden;
        let gd = pair.cell.gates() * d;
        let tag = axis_tag(pair.axis);
        let (xi, dir_offset) = match &pair.proj {
            Some(u) => (self.conv(&format!("{prefix} {tag} U"), x, u, false)?, gd),
            None => (x.clone(), 0),
        };
        let [b, xc, h, w] = xi.shape;
        if xc != gd + dir_offset {
            return Err(Error::Gpu(format!(
                "{prefix}: the projection has {xc} channels, expected {}",
                gd + dir_offset
            )));
        }
        let [da, db] = pair.axis.directions().map(|dir| join_name(prefix, dir.name()));
        let ha = self.map(&da, [b, d, h, w])?;
        let hb = self.map(&db, [b, d, h, w])?;
        let vertical = pair.axis == Axis::Vertical;
        let cell = match pair.cell {
            Cell::Vanilla => 0,
            Cell::VanillaLn => 1,
            Cell::Gru => 2,
        };
        let (sequences, steps) = if vertical { (b * w, h) } else { (b * h, w) };
        if self.scan.per_step(pair.cell, d, sequences) {
            // One product per step over every sequence of both directions.
            // (the gradient's buffers are unused forward: the states stand in for them)
            let template = ScanStepParams {
                batch: u(b),
                hidden: u(d),
                height: u(h),
                width: u(w),
                axis: u32::from(vertical),
                src_channels: u(xc),
                src_offset: u(dir_offset),
                ..Default::default()
            };
            self.scan_steps(prefix, template, &[&xi.buf, &pair.vt, &ha.buf, &hb.buf, &ha.buf, &hb.buf])?;
        } else {
            let chunk = match self.ctx.loop_budget() {
                Some(budget) => (budget / scan_step_iterations(pair.cell, d)).max(1),
                None => steps,
            };
            let bufs = [&xi.buf, &pair.vt, &pair.ln, &ha.buf, &hb.buf];
            for first in (0..steps).step_by(chunk) {
                let params = ScanPairParams {
                    batch: u(b),
                    hidden: u(d),
                    height: u(h),
                    width: u(w),
                    axis: u32::from(vertical),
                    cell,
                    xi_channels: u(xc),
                    dir_offset: u(dir_offset),
                    first_step: u(first),
                    step_count: u(chunk),
                    ..Default::default()
                };
                self.dispatch(&params, &bufs, (u(sequences), 2, 1));
            }
        }
        self.record(&da, &ha);
        self.record(&db, &hb);
        self.pairs.insert(format!("{prefix} {tag}"), [xi.clone(), ha.clone(), hb.clone()]);
        let mode = match merge {
            Merge::Sum => Combine::Sum,
            Merge::Mean => Combine::Mean,
            Merge::Concat => Combine::Concat,
        };
        self.combine(&format!("{prefix} {tag} merged"), &ha, &hb, mode)
    }
}

/// The unit whose gradient with respect to the input a backward pass computes: channel
/// `channel` at `(y, x)` of the map a step captures as `layer` (or of the model's `output`
/// map), in every image of the batch; or the mean over every channel there.
#[derive(Debug, Clone, Copy)]
pub struct GradientSeed<'s> {
    /// The captured map (a layer's name, as in [`Capture`]).
    pub layer: &'s str,
    /// Channel (`None`: the mean over every channel at `(y, x)`, one backward pass).
    pub channel: Option<usize>,
    /// Row.
    pub y: usize,
    /// Column.
    pub x: usize,
}

/// The gradient buffer of trainable slot `slot` in a training pass's `weights` (`None` outside
/// training, or for a weight without a slot); an error naming `at` for a slot without one.
fn gradient_buffer(
    weights: Option<&[wgpu::Buffer]>,
    slot: Option<usize>,
    at: &str,
) -> Result<Option<wgpu::Buffer>> {
    let (Some(weights), Some(slot)) = (weights, slot) else { return Ok(None) };
    weights
        .get(slot)
        .cloned()
        .map(Some)
        .ok_or_else(|| Error::Gpu(format!("{at}: no gradient buffer for slot {slot}")))
}

/// The seed's step and its one-hot gradient (the unit in every image of the batch).
fn seed_gradient(
    pass: &mut Pass<'_>,
    steps: &[Step],
    maps: &[Option<Map>],
    seed: &GradientSeed<'_>,
) -> Result<(usize, Map)> {
    let last = match seed.layer {
        "output" => steps.len().checked_sub(1),
        layer => steps.iter().position(|s| s.capture.as_deref() == Some(layer)),
    }
    .ok_or_else(|| Error::Gpu(format!("no layer named {} to take a gradient of", seed.layer)))?;
    let target =
        maps[steps[last].out].clone().ok_or_else(|| Error::Gpu(format!("{}: not computed", seed.layer)))?;
    let [b, c, h, w] = target.shape;
    pass.seed_shape = Some(target.shape);
    if seed.channel.is_some_and(|k| k >= c) || seed.y >= h || seed.x >= w {
        let channel = seed.channel.map_or("every channel".to_string(), |k| k.to_string());
        return Err(Error::Gpu(format!(
            "{}: unit ({channel}, {}, {}) is outside its {c}x{h}x{w} map",
            seed.layer, seed.y, seed.x
        )));
    }
    let (channels, value) = match seed.channel {
        Some(k) => (k..k + 1, 1.0),
        None => (0..c, 1.0 / c as f32),
    };
    let mut one_hot = vec![0f32; target.len()];
    for image in 0..b {
        for k in channels.clone() {
            one_hot[((image * c + k) * h + seed.y) * w + seed.x] = value;
        }
    }
    let start = pass.map("grad seed", target.shape)?;
    pass.ctx.queue.write_buffer(&start.buf, 0, &floats_to_bytes(&one_hot));
    Ok((last, start))
}

/// Walks the recorded steps backwards from step `last`, whose output's gradient is `start`, to
/// the input: each step's output gradient becomes its inputs' (summed where a value feeds several
/// steps). With `weights` (a gradient buffer per trainable slot: training), every trainable
/// weight's gradient is written into its slot's buffer as well, and the input's gradient is not
/// computed (`None`); else the input's gradient `[B, C, H, W]`.
pub(super) fn backward(
    pass: &mut Pass<'_>,
    steps: &[Step],
    maps: &[Option<Map>],
    (last, start): (usize, Map),
    weights: Option<&[wgpu::Buffer]>,
) -> Result<Option<Map>> {
    // Training needs no gradient of the input itself.
    let wanted = |v: Value| v != 0 || weights.is_none();
    let mut grads: Vec<Option<Map>> = vec![None; maps.len()];
    grads[steps[last].out] = Some(start);
    for step in steps[..=last].iter().rev() {
        let Some(g) = grads[step.out].take() else { continue };
        let name = format!("{} grad", step.label);
        let arg = |k: usize| -> Result<Map> {
            step.inputs
                .get(k)
                .and_then(|&v| maps.get(v).cloned().flatten())
                .ok_or_else(|| Error::Gpu(format!("{}: reads a value not computed", step.label)))
        };
        let out =
            || maps[step.out].clone().ok_or_else(|| Error::Gpu(format!("{}: not computed", step.label)));
        let at = |k: usize| step.inputs[k];
        let inputs: Vec<(Value, Map)> = match &step.kind {
            Kind::Conv { conv, relu } => {
                let g = if *relu {
                    pass.combine(&format!("{name} relu"), &g, &out()?, Combine::Mask)?
                } else {
                    g
                };
                if let Some(weights) = weights {
                    pass.conv_weight_grads(&name, &g, &arg(0)?, conv, weights)?;
                }
                if wanted(at(0)) {
                    vec![(at(0), pass.conv_backward(&name, &g, conv, arg(0)?.shape)?)]
                } else {
                    vec![]
                }
            }
            Kind::MaxPool => vec![(at(0), pass.pool_backward(&name, &arg(0)?, &g, false)?)],
            Kind::MaxPoolCeil => vec![(at(0), pass.pool_backward(&name, &arg(0)?, &g, true)?)],
            Kind::Pair { pair, merge, prefix } => {
                let input = arg(0)?;
                pass.pair_backward(prefix, &g, pair, *merge, &input, weights, wanted(at(0)))?
                    .map(|gi| (at(0), gi))
                    .into_iter()
                    .collect()
            }
            Kind::Combine(Combine::Sum) => vec![(at(0), g.clone()), (at(1), g)],
            Kind::Combine(Combine::Concat) => {
                let ca = arg(0)?.shape[1];
                let cb = arg(1)?.shape[1];
                vec![
                    (at(0), pass.channels(&format!("{name} a"), &g, 0, ca)?),
                    (at(1), pass.channels(&format!("{name} b"), &g, ca, cb)?),
                ]
            }
            Kind::Dropout(_) => match pass.masks.get(&step.label).cloned() {
                Some(mask) => vec![(at(0), pass.combine(&name, &g, &mask, Combine::Product)?)],
                None => vec![(at(0), g)],
            },
            Kind::GlobalPool(pool) => {
                vec![(at(0), pass.global_pool_backward(&name, &arg(0)?, &out()?, &g, *pool)?)]
            }
            Kind::BatchNorm { wb, wb_slot, .. } => {
                let gw = gradient_buffer(weights, *wb_slot, &step.label)?;
                let x = arg(0)?;
                let dx = pass.batch_norm_backward(&step.label, &x, &out()?, &g, wb, gw)?;
                vec![(at(0), dx)]
            }
            // The fused sum's addend receives the gradient as it is; the size reference none.
            Kind::Upsample { add } => {
                let mut v = vec![(at(0), pass.upsample_backward(&name, &g, arg(0)?.shape)?)];
                v.extend(add.map(|a| (a, g)));
                v
            }
            Kind::Affine { scale, channels, .. } => {
                let y = out()?;
                let dx = pass.map(&name, y.shape)?;
                let [_, c, h, w] = y.shape;
                let (c, plane) = match channels {
                    Some(k) => (*k, 1),
                    None => (c, h * w),
                };
                let params = AffineParams { n: u(dx.len()), channels: u(c), plane: u(plane), relu: 2 };
                pass.dispatch(&params, &[&g.buf, scale, &y.buf, &dx.buf], groups_for(dx.len()));
                vec![(at(0), dx)]
            }
            // The input's gradient is a convolution of `g` with the same weights; theirs, the
            // input against `g` unfolded at the stride.
            Kind::ConvTranspose { kernel, stride, back, .. } => {
                let x = arg(0)?;
                if let Some(buf) = gradient_buffer(weights, back.weight_slot, &step.label)? {
                    pass.weight_grad(&x, &g, (*kernel, *stride, Some((0, 0))), &buf, 0);
                }
                if wanted(at(0)) {
                    vec![(at(0), pass.conv(&name, &g, back, false)?)]
                } else {
                    vec![]
                }
            }
            // The crop's window put back in place (the size reference gets none).
            Kind::Crop(offset) => vec![(at(0), pass.uncrop(&name, &g, arg(0)?.shape, *offset)?)],
            other => {
                let what = match other {
                    Kind::Combine(_) => "a mean of two maps",
                    _ => "this operation",
                };
                let at = step.capture.as_deref().map_or(String::new(), |c| format!(" (at {c})"));
                return Err(Error::Gpu(format!(
                    "the gradient of {what}{at} is not on the GPU yet (convolutions and \
                     transposed ones, ReLU, BatchNorm, max and global pooling, dropout, pairs of \
                     every cell, sums, concatenations, crops and bilinear upsampling are)"
                )));
            }
        };
        for (k, (v, gi)) in inputs.into_iter().enumerate() {
            if !wanted(v) {
                continue;
            }
            grads[v] = Some(match grads[v].take() {
                Some(previous) => pass.combine(&format!("{name} sum {k}"), &previous, &gi, Combine::Sum)?,
                None => gi,
            });
        }
    }
    if weights.is_some() {
        return Ok(None);
    }
    let layer = steps[last].capture.as_deref().unwrap_or("output");
    grads[0].take().map(Some).ok_or_else(|| Error::Gpu(format!("{layer} does not depend on the input")))
}

impl Pass<'_> {
    /// BatchNorm + ReLU of `x` with the batch's statistics (kept for the backward), the running
    /// statistics updated.
    fn batch_norm(
        &mut self,
        name: &str,
        x: &Map,
        (wb, running): (&wgpu::Buffer, &wgpu::Buffer),
        channels: usize,
    ) -> Result<Map> {
        let [b, c, h, w] = x.shape;
        if c != channels {
            return Err(Error::Gpu(format!("{name}: input has {c} channels, the layer takes {channels}")));
        }
        if self.dropout.is_none() {
            return Err(Error::Gpu(format!(
                "{name}: a BatchNorm uploaded for training runs in training passes only"
            )));
        }
        let out = self.map(name, x.shape)?;
        let stats = self.buffer(&format!("{name} stats"), 2 * c)?;
        self.bn_stats.insert(name.to_string(), stats.clone());
        let (gx, gy) = fold(out.len().div_ceil(256));
        let params = BatchNormParams {
            batch: u(b),
            channels: u(c),
            plane: u(h * w),
            mode: 0,
            eps: 1e-5,
            groups_x: gx,
            ..Default::default()
        };
        let bufs = [&x.buf, &out.buf, &out.buf, &out.buf, wb, &stats, running, &stats];
        self.dispatch(&params, &bufs, (u(c), 1, 1));
        self.dispatch(&BatchNormParams { mode: 1, ..params }, &bufs, (gx, gy, 1));
        Ok(out)
    }

    /// The gradient of BatchNorm + ReLU's input `x` from its output `y`'s gradient `g` (the
    /// gains' and biases' gradients into `gw`, a scratch buffer without one).
    fn batch_norm_backward(
        &mut self,
        name: &str,
        x: &Map,
        y: &Map,
        g: &Map,
        wb: &wgpu::Buffer,
        gw: Option<wgpu::Buffer>,
    ) -> Result<Map> {
        let [b, c, h, w] = x.shape;
        let stats = self
            .bn_stats
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Gpu(format!("{name}: the forward's batch statistics are missing")))?;
        let gw = match gw {
            Some(buf) => buf,
            None => self.buffer(&format!("{name} grad wb"), 2 * c)?,
        };
        let dx = self.map(&format!("{name} grad"), x.shape)?;
        let (gx, gy) = fold(dx.len().div_ceil(256));
        let params = BatchNormParams {
            batch: u(b),
            channels: u(c),
            plane: u(h * w),
            mode: 2,
            eps: 1e-5,
            groups_x: gx,
            ..Default::default()
        };
        let bufs = [&x.buf, &y.buf, &g.buf, &dx.buf, wb, &stats, &stats, &gw];
        self.dispatch(&params, &bufs, (u(c), 1, 1));
        self.dispatch(&BatchNormParams { mode: 3, ..params }, &bufs, (gx, gy, 1));
        Ok(dx)
    }

    /// `weight_grad.wgsl` on `g` (`[B, O, h, w]`) and `src` into `out` from `out_offset` on:
    /// the weight gradient of a `kernel`-wide window at `off` (`Some`), or the bias gradient.
    fn weight_grad(
        &mut self,
        g: &Map,
        src: &Map,
        window: (usize, usize, Option<(i32, i32)>),
        out: &wgpu::Buffer,
        out_offset: usize,
    ) {
        self.weight_grad_rows(g, src, window, out, out_offset, 0);
    }

    /// [`Self::weight_grad`] with the result's rows `out_row` apart in `out` (0: back to back).
    fn weight_grad_rows(
        &mut self,
        g: &Map,
        src: &Map,
        (kernel, stride, off): (usize, usize, Option<(i32, i32)>),
        out: &wgpu::Buffer,
        out_offset: usize,
        out_row: usize,
    ) {
        let [b, o, gh, gw] = g.shape;
        let [_, i, sh, sw] = src.shape;
        let (off_y, off_x) = off.unwrap_or_default();
        let params = WeightGradParams {
            batch: u(b),
            out_channels: u(o),
            g_height: u(gh),
            g_width: u(gw),
            in_channels: u(i),
            src_height: u(sh),
            src_width: u(sw),
            kernel: u(kernel),
            stride: u(stride),
            off_y,
            off_x,
            out_offset: u(out_offset),
            mode: u32::from(off.is_none()),
            out_row: u(out_row),
            ..Default::default()
        };
        let groups = match off {
            Some(_) => (u((i * kernel * kernel).div_ceil(16)), u(o.div_ceil(16)), 1),
            None => (u(o), 1, 1),
        };
        self.dispatch(&params, &[&g.buf, &src.buf, out], groups);
    }

    /// A convolution's (or linear layer's) weight and bias gradients from its output's `g` and
    /// its input `x`, into their slots' buffers.
    fn conv_weight_grads(
        &mut self,
        name: &str,
        g: &Map,
        x: &Map,
        c: &ConvW,
        weights: &[wgpu::Buffer],
    ) -> Result<()> {
        let pad =
            i32::try_from(c.pad).map_err(|_| Error::Gpu(format!("{name}: padding {} too large", c.pad)))?;
        if let Some(buf) = gradient_buffer(Some(weights), c.weight_slot, name)? {
            self.weight_grad(g, x, (c.kernel, c.stride, Some((-pad, -pad))), &buf, 0);
        }
        if let Some(buf) = gradient_buffer(Some(weights), c.bias_slot, name)? {
            self.weight_grad(g, x, (c.kernel, c.stride, None), &buf, 0);
        }
        Ok(())
    }

    /// The gradient of global pooling's input `x` from its output `y`'s gradient `g`.
    fn global_pool_backward(
        &mut self,
        name: &str,
        x: &Map,
        y: &Map,
        g: &Map,
        pool: GlobalPool,
    ) -> Result<Map> {
        let [b, c, h, w] = x.shape;
        let out = self.map(name, x.shape)?;
        let params = GlobalPoolBackwardParams {
            planes: u(b * c),
            size: u(h * w),
            mode: u32::from(pool == GlobalPool::Avg),
            ..Default::default()
        };
        self.dispatch(&params, &[&x.buf, &y.buf, &g.buf, &out.buf], groups_for(out.len()));
        Ok(out)
    }

    /// `count` channels of `g` from `offset` on.
    fn channels(&mut self, name: &str, g: &Map, offset: usize, count: usize) -> Result<Map> {
        let [n, c, h, w] = g.shape;
        let out = self.map(name, [n, count, h, w])?;
        let params = CombineParams {
            batch: u(n),
            a_channels: u(c),
            b_channels: u(count),
            plane: u(h * w),
            mode: 4,
            offset: u(offset),
            ..Default::default()
        };
        self.dispatch(&params, &[&g.buf, &g.buf, &out.buf], groups_for(out.len()));
        Ok(out)
    }

    /// The gradient of a convolution's input (of shape `input`) from its output's `g`.
    fn conv_backward(&mut self, name: &str, g: &Map, c: &ConvW, input: [usize; 4]) -> Result<Map> {
        let [b, cout, oh, ow] = g.shape;
        let [_, cin, h, w] = input;
        if cout != c.cout || cin != c.cin {
            return Err(Error::Gpu(format!(
                "{name}: a gradient of {cout} channels for a {}-channel layer",
                c.cout
            )));
        }
        let out = self.map(name, input)?;
        let (gx, gy) = fold((b * h * w).div_ceil(64));
        let params = Conv2dParams {
            batch: u(b),
            in_channels: u(cout),
            height: u(oh),
            width: u(ow),
            out_channels: u(cin),
            kernel: u(c.kernel),
            pad: u(c.pad),
            stride: u(c.stride),
            out_height: u(h),
            out_width: u(w),
            relu: 0,
            n_groups_x: gx,
            backward: 1,
            ..Default::default()
        };
        self.dispatch(&params, &[&g.buf, &c.weight, &c.bias, &out.buf], (gx, gy, u(cin.div_ceil(64))));
        Ok(out)
    }

    /// The gradients of a GRU pair's projections (`[B, 3D, H, W]` per direction: the z, r and
    /// candidate blocks, xi's order) from its merged output's `g` (`gru_pair_backward.wgsl`, per
    /// sequence, in chunks of steps on a software adapter), and with `weights` its recurrences'.
    fn gru_scan_backward(
        &mut self,
        prefix: &str,
        g: &Map,
        pair: &PairW,
        [xi, ha, hb]: [&Map; 3],
        (scale, g_offset): (f32, usize),
        weights: Option<&[wgpu::Buffer]>,
    ) -> Result<[Map; 2]> {
        let d = pair.hidden;
        let [b, _, h, w] = ha.shape;
        let vertical = pair.axis == Axis::Vertical;
        let (chunks, sequences) =
            self.backward_chunks(pair, (xi, g, ha), (scale, g_offset), gru_backward_iterations(d));
        // [2B, 4D, H, W]: direction 0's images, then direction 1's; channels daz, dar, dah, s.
        let dd = self.map(&format!("{prefix} grad gru"), [2 * b, 4 * d, h, w])?;
        let carry = self.map(&format!("{prefix} grad gru carry"), [sequences, 2 * d, 1, 1])?;
        for params in chunks {
            let bufs = [&xi.buf, &pair.vt, &g.buf, &ha.buf, &hb.buf, &dd.buf, &carry.buf];
            self.dispatch(&GruPairBackwardParams::from(params), &bufs, (u(sequences), 2, 1));
        }
        // Each direction's half, contiguous after taking the first 3D channels.
        let halves = |pass: &mut Self, what: &str, from: &Map| -> Result<[Map; 2]> {
            let [_, c, h, w] = from.shape;
            let a = pass.map(&format!("{prefix} grad gru {what} a"), [b, c, h, w])?;
            let z = pass.map(&format!("{prefix} grad gru {what} b"), [b, c, h, w])?;
            let bytes = (a.len() * 4) as u64;
            pass.encoder.copy_buffer_to_buffer(&from.buf, 0, &a.buf, 0, bytes);
            pass.encoder.copy_buffer_to_buffer(&from.buf, bytes, &z.buf, 0, bytes);
            Ok([a, z])
        };
        let deltas = self.channels(&format!("{prefix} grad gru deltas"), &dd, 0, 3 * d)?;
        let [da, db] = halves(self, "xi", &deltas)?;
        if let Some(buf) = gradient_buffer(weights, pair.vt_slot, prefix)? {
            // V^T's rows are h_(t-1)'s units, its columns the z, r and candidate blocks:
            // Vz, Vr from the states against daz, dar one step later in the direction's order,
            // Vh from s = r ⊙ h_(t-1) against dah at the same step.
            let s = self.channels(&format!("{prefix} grad gru s"), &dd, 3 * d, d)?;
            let [sa, sb] = halves(self, "s", &s)?;
            for (dir, (states, s, delta)) in [(ha, &sa, &da), (hb, &sb, &db)].into_iter().enumerate() {
                let next = if dir == 0 { 1 } else { -1 };
                let off = if vertical { (next, 0) } else { (0, next) };
                let base = dir * d * 3 * d;
                let gates = self.channels(&format!("{prefix} grad gru zr {dir}"), delta, 0, 2 * d)?;
                self.weight_grad_rows(states, &gates, (1, 1, Some(off)), &buf, base, 3 * d);
                let dah = self.channels(&format!("{prefix} grad gru h {dir}"), delta, 2 * d, d)?;
                self.weight_grad_rows(s, &dah, (1, 1, Some((0, 0))), &buf, base + 2 * d, 3 * d);
            }
        }
        Ok([da, db])
    }

    /// The parameters of a per-sequence backward kernel's dispatches over a pair (the layout
    /// `scan_pair_backward.wgsl` and `gru_pair_backward.wgsl` share), one per chunk of steps:
    /// all of them in one on a hardware GPU, chunks of `iterations` loop iterations per step under
    /// a software adapter's loop budget (twice over: the backward's products). And the number of
    /// sequences (the dispatch's workgroups per direction).
    fn backward_chunks(
        &self,
        pair: &PairW,
        (xi, g, states): (&Map, &Map, &Map),
        (scale, g_offset): (f32, usize),
        iterations: usize,
    ) -> (Vec<ScanPairBackwardParams>, usize) {
        let [b, _, h, w] = states.shape;
        let vertical = pair.axis == Axis::Vertical;
        let (lines, steps) = if vertical { (w, h) } else { (h, w) };
        let chunk = match self.ctx.loop_budget() {
            Some(budget) => (budget / (2 * iterations)).max(1),
            None => steps,
        };
        // Direction 1's projection after direction 0's (all gate blocks) when the pair owns it.
        let xi_offset = if pair.proj.is_some() { pair.cell.gates() * pair.hidden } else { 0 };
        let chunks = (0..steps)
            .step_by(chunk)
            .map(|first| ScanPairBackwardParams {
                batch: u(b),
                hidden: u(pair.hidden),
                height: u(h),
                width: u(w),
                axis: u32::from(vertical),
                xi_channels: u(xi.shape[1]),
                dir_offset: u(xi_offset),
                g_channels: u(g.shape[1]),
                g_offset: u(g_offset),
                scale,
                first_step: u(first),
                step_count: u(chunk),
            })
            .collect();
        (chunks, b * lines)
    }

    /// The deltas of a vanilla + LayerNorm pair into `da` and `db` (`scan_pair_backward.wgsl`,
    /// per sequence, in chunks of steps on a software adapter), and with `weights` its
    /// LayerNorm gains' and biases' gradients.
    fn ln_scan_backward(
        &mut self,
        prefix: &str,
        g: &Map,
        pair: &PairW,
        [xi, ha, hb, da, db]: [&Map; 5],
        (scale, g_offset): (f32, usize),
        weights: Option<&[wgpu::Buffer]>,
    ) -> Result<()> {
        let d = pair.hidden;
        let (chunks, sequences) =
            self.backward_chunks(pair, (xi, g, ha), (scale, g_offset), scan_step_iterations(pair.cell, d));
        let dd = self.buffer(&format!("{prefix} grad both"), 2 * ha.len())?;
        let partial = self.map(&format!("{prefix} grad ln parts"), [sequences, 4 * d, 1, 1])?;
        for params in chunks {
            let bufs = [&xi.buf, &pair.vt, &pair.ln, &g.buf, &ha.buf, &hb.buf, &dd, &partial.buf];
            self.dispatch(&params, &bufs, (u(sequences), 2, 1));
        }
        let bytes = (ha.len() * 4) as u64;
        self.encoder.copy_buffer_to_buffer(&dd, 0, &da.buf, 0, bytes);
        self.encoder.copy_buffer_to_buffer(&dd, bytes, &db.buf, 0, bytes);
        if let Some(buf) = gradient_buffer(weights, pair.ln_slot, prefix)? {
            // The per-sequence sums summed over the sequences (a bias gradient's sum).
            self.weight_grad(&partial, &partial, (1, 1, None), &buf, 0);
        }
        Ok(())
    }

    /// Every step of `scan_step.wgsl` for one pair, `template` with each step set in turn: first
    /// to last forward, last to first backward; both directions, every sequence.
    fn scan_steps(
        &mut self,
        prefix: &str,
        template: ScanStepParams,
        bufs: &[&wgpu::Buffer; 6],
    ) -> Result<()> {
        let vertical = template.axis == 1;
        let (lines, steps) =
            if vertical { (template.width, template.height) } else { (template.height, template.width) };
        let sequences = template.batch as usize * lines as usize;
        let groups = (template.hidden.div_ceil(64), u(sequences.div_ceil(64)), 2);
        if groups.1 > self.ctx.device.limits().max_compute_workgroups_per_dimension {
            return Err(Error::Gpu(format!("{prefix}: {sequences} sequences are too many for one dispatch")));
        }
        for i in 0..steps {
            let step = if template.backward == 1 { steps - 1 - i } else { i };
            self.dispatch(&ScanStepParams { step, ..template }, bufs, groups);
        }
        Ok(())
    }

    /// The gradient of bilinear upsampling's input (of shape `input`) from its output's `g`.
    fn upsample_backward(&mut self, name: &str, g: &Map, input: [usize; 4]) -> Result<Map> {
        let [b, c, oh, ow] = g.shape;
        let out = self.map(name, input)?;
        let params = UpsampleBackwardParams {
            planes: u(b * c),
            in_height: u(input[2]),
            in_width: u(input[3]),
            out_height: u(oh),
            out_width: u(ow),
            ..Default::default()
        };
        self.dispatch(&params, &[&g.buf, &out.buf], groups_for(out.len()));
        Ok(out)
    }

    /// The gradient of 2x2 max pooling's input `x` from its output's `g`.
    fn pool_backward(&mut self, name: &str, x: &Map, g: &Map, ceil: bool) -> Result<Map> {
        let [b, c, h, w] = x.shape;
        let out = self.map(name, x.shape)?;
        let params = Pool2dBackwardParams {
            planes: u(b * c),
            height: u(h),
            width: u(w),
            kernel: 2,
            ceil: u32::from(ceil),
            ..Default::default()
        };
        self.dispatch(&params, &[&x.buf, &g.buf, &out.buf], groups_for(out.len()));
        Ok(out)
    }

    /// The gradient of a vanilla pair's input from its merged output's `g`: both directions
    /// walked back through time, then through the projection (its own) or summed (a shared one:
    /// the pair's input is the projection); `None` unless `want_input`. With `weights`, the
    /// recurrences' gradients (and an own projection's) into their slots' buffers too.
    #[allow(clippy::too_many_arguments)]
    fn pair_backward(
        &mut self,
        prefix: &str,
        g: &Map,
        pair: &PairW,
        merge: Merge,
        input: &Map,
        weights: Option<&[wgpu::Buffer]>,
        want_input: bool,
    ) -> Result<Option<Map>> {
        // (a lone module's two pairs share the empty prefix: the axis tells them apart, as in
        // the forward's names)
        let key = format!("{prefix} {}", axis_tag(pair.axis));
        let prefix = key.as_str();
        let [xi, ha, hb] = self
            .pairs
            .get(prefix)
            .cloned()
            .ok_or_else(|| Error::Gpu(format!("{prefix}: the pair's forward states are missing")))?;
        let d = pair.hidden;
        let [b, _, h, w] = ha.shape;
        let vertical = pair.axis == Axis::Vertical;
        let (scale, g_offset) = match merge {
            Merge::Sum => (1.0f32, 0),
            Merge::Mean => (0.5, 0),
            Merge::Concat => (1.0, d),
        };
        if pair.cell == Cell::Gru {
            let [da, db] =
                self.gru_scan_backward(prefix, g, pair, [&xi, &ha, &hb], (scale, g_offset), weights)?;
            return self.projection_backward(prefix, pair, [&xi, &da, &db], input, weights, want_input);
        }
        let da = self.map(&format!("{prefix} grad a"), ha.shape)?;
        let db = self.map(&format!("{prefix} grad b"), hb.shape)?;
        let template = ScanStepParams {
            batch: u(b),
            hidden: u(d),
            height: u(h),
            width: u(w),
            axis: u32::from(vertical),
            src_channels: u(g.shape[1]),
            src_offset: u(g_offset),
            backward: 1,
            scale_bits: scale.to_bits(),
            ..Default::default()
        };
        if pair.cell == Cell::Vanilla {
            self.scan_steps(prefix, template, &[&g.buf, &pair.vt, &ha.buf, &hb.buf, &da.buf, &db.buf])?;
        } else {
            self.ln_scan_backward(prefix, g, pair, [&xi, &ha, &hb, &da, &db], (scale, g_offset), weights)?;
        }
        if let Some(buf) = gradient_buffer(weights, pair.vt_slot, prefix)? {
            // dV^T[k][j] = sum over positions of h[k] at a step times delta[j] at the next one
            // (the step after it in the direction's own order: +1 forward, -1 in reverse).
            for (dir, (h_dir, d_dir)) in [(&ha, &da), (&hb, &db)].into_iter().enumerate() {
                let next = if dir == 0 { 1 } else { -1 };
                let off = if vertical { (next, 0) } else { (0, next) };
                self.weight_grad(h_dir, d_dir, (1, 1, Some(off)), &buf, dir * d * d);
            }
        }
        self.projection_backward(prefix, pair, [&xi, &da, &db], input, weights, want_input)
    }

    /// The gradient of a pair's input from its projections' `da` and `db` (both directions'):
    /// back through the projection (its own: both directions' stacked along channels) or their
    /// sum (a shared one: the pair's input is the projection); `None` unless `want_input`. With
    /// `weights`, an own projection's gradients into their slots' buffers.
    fn projection_backward(
        &mut self,
        prefix: &str,
        pair: &PairW,
        [xi, da, db]: [&Map; 3],
        input: &Map,
        weights: Option<&[wgpu::Buffer]>,
        want_input: bool,
    ) -> Result<Option<Map>> {
        match &pair.proj {
            // Both directions' projections stacked along channels: their gradients likewise.
            Some(u) => {
                let dxi = self.combine(&format!("{prefix} grad xi"), da, db, Combine::Concat)?;
                if dxi.shape != xi.shape {
                    return Err(Error::Gpu(format!(
                        "{prefix}: projection gradient {:?} for {:?}",
                        dxi.shape, xi.shape
                    )));
                }
                if let Some(weights) = weights {
                    self.conv_weight_grads(&format!("{prefix} grad U"), &dxi, input, u, weights)?;
                }
                if !want_input {
                    return Ok(None);
                }
                self.conv_backward(&format!("{prefix} grad U"), &dxi, u, input.shape).map(Some)
            }
            None if !want_input => Ok(None),
            None => self.combine(&format!("{prefix} grad xi"), da, db, Combine::Sum).map(Some),
        }
    }
}

/// Loop iterations one invocation of `scan_pair.wgsl` runs per step (256 invocations share `d`
/// units; each unit's product loops over `d`, twice for the GRU; LayerNorm adds two tree
/// reductions).
fn scan_step_iterations(cell: Cell, d: usize) -> usize {
    let loops = if cell == Cell::Gru { 2 } else { 1 };
    d.div_ceil(256) * (loops * (d + 1) + 4) + 2 * 8 + 8
}

/// Loop iterations one invocation of `gru_pair_backward.wgsl` runs per step (four products over
/// `d` for each of its units, the last with two terms).
fn gru_backward_iterations(d: usize) -> usize {
    d.div_ceil(256) * (5 * (d + 1) + 6) + 8
}

/// How a pair's buffers are named by its axis (`"<prefix> h"`, `"<prefix> v"`).
fn axis_tag(axis: Axis) -> &'static str {
    match axis {
        Axis::Horizontal => "h",
        Axis::Vertical => "v",
    }
}

/// The modes of `combine.wgsl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Combine {
    Sum = 0,
    Mean = 1,
    Concat = 2,
    /// `a` where `b > 0`, else 0: a ReLU's backward (`b` its output).
    Mask = 3,
    /// `a · b`: dropout's mask applied (forward and backward).
    Product = 5,
}

impl GpuModel {
    /// Uploads `model`'s weights (BatchNorm folded in).
    ///
    /// # Errors
    /// [`Error::Gpu`] for a pair wider than the scan kernel holds or a weight larger than one
    /// buffer may be on this adapter; [`Error::Invalid`] for a missing weight.
    pub fn upload(ctx: &GpuContext, model: &Model) -> Result<Self> {
        Ok(Self::upload_with(ctx, model, false)?.0)
    }

    /// Uploads `model`'s weights for training (nothing folded): the model and its trainable
    /// buffers. Refuses by name what does not train on the GPU yet.
    pub(super) fn upload_for_training(ctx: &GpuContext, model: &Model) -> Result<(Self, Vec<Slot>)> {
        Self::upload_with(ctx, model, true)
    }

    fn upload_with(ctx: &GpuContext, model: &Model, training: bool) -> Result<(Self, Vec<Slot>)> {
        ctx.check_alive()?;
        let desc = model.desc();
        let weights =
            Weights { ctx, map: model.weights()?, slots: training.then(|| RefCell::new(Vec::new())) };
        let graph = model.graph().clone();
        let steps = build(&weights, &graph)?;
        let slots = weights.slots.map(RefCell::into_inner).unwrap_or_default();
        let gpu = Self {
            steps,
            graph,
            name: desc.display_name(),
            segments: desc.is_segmentation(),
            scratch: BTreeMap::new(),
            placeholder: upload_floats(ctx, "placeholder", &[0.0; 4])?,
            palette: None,
            profiling: super::profile::wanted(),
            scan: ScanMode::from_env(),
            profile: None,
        };
        Ok((gpu, slots))
    }

    /// Whether the model ends in class scores per image (a linear layer or global pooling), not
    /// in maps.
    pub fn classifies(&self) -> bool {
        matches!(self.graph.nodes.last().map(|n| &n.op), Some(Op::Linear { .. } | Op::GlobalPool(_)))
    }

    /// Times every kernel of the following forward passes (GPU timestamps; nothing happens on
    /// an adapter without `TIMESTAMP_QUERY`). `LRNN_GPU_PROFILE=1` switches it on at upload.
    pub fn set_profiling(&mut self, on: bool) {
        self.profiling = on;
    }

    /// The gradient of `seed`'s unit (in every image) with respect to the input `x`
    /// (`[B, C, H, W]`, as `x`): one forward pass up to the seed's layer, then its backward, in
    /// one command buffer. Models of convolutions (with ReLU), max pooling, vanilla pairs, sums
    /// and concatenations; any other operation on the way is refused by name.
    ///
    /// # Errors
    /// [`Error::Gpu`] for a layer the model does not capture, a unit outside its map, an
    /// operation without a GPU gradient, or a device error.
    pub fn input_gradient(
        &mut self,
        ctx: &GpuContext,
        x: &Tensor,
        seed: &GradientSeed<'_>,
    ) -> Result<(Tensor, [usize; 4])> {
        let scopes = ctx.error_scopes();
        let stop_at = (seed.layer != "output").then_some(seed.layer);
        let (mut pass, maps, steps) = self.record(ctx, x, Capture::Nothing, stop_at, None)?;
        let start = seed_gradient(&mut pass, steps, &maps, seed)?;
        let gradient = backward(&mut pass, steps, &maps, start, None)?
            .ok_or_else(|| Error::Gpu("the backward pass gave no input gradient".into()))?;
        drop(pass.profiler.take());
        let shape = pass.seed_shape.take().unwrap_or_default();
        Ok((read_maps(ctx, pass.encoder, vec![("gradient".into(), gradient)], scopes)?.remove(0).1, shape))
    }

    /// The shape of every captured map and of the output (`"output"`) for an input `x`, from a
    /// forward pass recorded but never run (nothing is computed or read back).
    ///
    /// # Errors
    /// As [`Self::forward`]: an input the model cannot take.
    pub fn map_shapes(&mut self, ctx: &GpuContext, x: &Tensor) -> Result<Vec<(String, [usize; 4])>> {
        let (_pass, maps, steps) = self.record(ctx, x, Capture::Nothing, None, None)?;
        let shape = |v: usize| maps.get(v).cloned().flatten().map(|m| m.shape);
        let mut shapes: Vec<(String, [usize; 4])> =
            steps.iter().filter_map(|s| Some((s.capture.clone()?, shape(s.out)?))).collect();
        if let Some(out) = steps.last().and_then(|s| shape(s.out)) {
            shapes.push(("output".into(), out));
        }
        Ok(shapes)
    }

    /// How the following forward passes run pairs' scans (results agree within rounding).
    pub fn set_scan_mode(&mut self, mode: ScanMode) {
        self.scan = mode;
    }

    /// The per-kernel table of the last profiled forward pass.
    pub fn profile(&self) -> Option<&Report> {
        self.profile.as_ref()
    }

    /// Keeps a profiled pass's table, and prints it when `LRNN_GPU_PROFILE` asks.
    fn keep_profile(&mut self, ctx: &GpuContext, p: &Profiler, raw: &[u8]) {
        let report = p.report(raw);
        if super::profile::wanted() {
            eprintln!("GPU kernels of one forward pass of {} on {}:\n{report}", self.name, ctx.describe());
        }
        self.profile = Some(report);
    }

    /// Records the forward pass of `x` into a new pass, up to the step captured as `stop_at`
    /// (or every step): the pass, every value's map (value 0 the input) and the steps. With
    /// `dropout`, in training mode (dropout's masks drawn from it).
    pub(super) fn record<'a>(
        &'a mut self,
        ctx: &'a GpuContext,
        x: &Tensor,
        capture: Capture<'a>,
        stop_at: Option<&str>,
        dropout: Option<Rng>,
    ) -> Result<Recorded<'a>> {
        ctx.check_alive()?;
        let (b, c, h, w) = x.dims4()?;
        if c != self.graph.in_channels {
            return Err(Error::Gpu(format!(
                "the input has {c} channels, the model takes {}",
                self.graph.in_channels
            )));
        }
        self.graph.check_input(b, h, w).map_err(Error::Gpu)?;
        let encoder =
            ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        let mut pass = Pass {
            ctx,
            encoder,
            kept: &mut self.scratch,
            placeholder: &self.placeholder,
            capture,
            captured: Vec::new(),
            profiler: if self.profiling { Profiler::new(ctx) } else { None },
            scan: self.scan,
            pairs: BTreeMap::new(),
            seed_shape: None,
            dropout,
            masks: BTreeMap::new(),
            bn_stats: BTreeMap::new(),
        };
        let input = pass.map("input", [b, c, h, w])?;
        ctx.queue.write_buffer(&input.buf, 0, &floats_to_bytes(&values(x)?));
        let mut maps: Vec<Option<Map>> = vec![None; self.graph.nodes.len() + 1];
        maps[0] = Some(input);
        for step in &self.steps {
            let arg = |k: usize| -> Result<Map> {
                step.inputs
                    .get(k)
                    .and_then(|&v| maps.get(v).cloned().flatten())
                    .ok_or_else(|| Error::Gpu(format!("{}: reads a value not computed", step.label)))
            };
            let name = step.label.as_str();
            let y =
                match &step.kind {
                    Kind::Conv { conv, relu } => pass.conv(name, &arg(0)?, conv, *relu)?,
                    Kind::Affine { scale, shift, channels } => {
                        pass.affine(name, &arg(0)?, (scale, shift), *channels)?
                    }
                    Kind::MaxPool => pass.pool(name, &arg(0)?, 2, false)?,
                    Kind::MaxPoolCeil => pass.pool_strided(name, &arg(0)?, (2, 2), false, true)?,
                    Kind::ConvTranspose { weight, cin, cout, kernel, stride, .. } => {
                        pass.conv_transpose(name, &arg(0)?, weight, (*cin, *cout, *kernel, *stride))?
                    }
                    Kind::Crop(offset) => {
                        let target = arg(1)?;
                        pass.crop(name, &arg(0)?, (target.shape[2], target.shape[3]), *offset)?
                    }
                    Kind::Pair { pair, merge, prefix } => pass.pair(prefix, &arg(0)?, pair, *merge)?,
                    Kind::Combine(mode) => pass.combine(name, &arg(0)?, &arg(1)?, *mode)?,
                    Kind::GlobalPool(p) => pass.global_pool(name, &arg(0)?, *p)?,
                    Kind::Dropout(p) => pass.dropout(name, &arg(0)?, *p)?,
                    Kind::BatchNorm { wb, running, channels, .. } => {
                        pass.batch_norm(name, &arg(0)?, (wb, running), *channels)?
                    }
                    Kind::Upsample { add } => {
                        let target = arg(1)?;
                        let addend =
                            match add {
                                Some(v) => Some(maps.get(*v).cloned().flatten().ok_or_else(|| {
                                    Error::Gpu(format!("{name}: reads a value not computed"))
                                })?),
                                None => None,
                            };
                        pass.upsample(name, &arg(0)?, (target.shape[2], target.shape[3]), addend.as_ref())?
                    }
                };
            if let Some(c) = &step.capture {
                pass.record(c, &y);
            }
            maps[step.out] = Some(y);
            if stop_at.is_some() && step.capture.as_deref() == stop_at {
                break;
            }
        }
        Ok((pass, maps, &self.steps))
    }

    /// Runs the model on `x` (`[B, C, H, W]`) in inference mode, reading back the output and the
    /// maps `capture` asks for.
    ///
    /// # Errors
    /// [`Error::Gpu`] when the input does not fit, a buffer exceeds the adapter's limits, or the
    /// device reports an error or is lost.
    pub fn forward(&mut self, ctx: &GpuContext, x: &Tensor, capture: Capture) -> Result<GpuOutput> {
        let scopes = ctx.error_scopes();
        let name = self.name.clone();
        let (mut pass, mut maps, _) = self.record(ctx, x, capture, None, None)?;
        let out =
            maps.pop().flatten().ok_or_else(|| Error::Gpu(format!("{name}: the model has no operation")))?;
        let mut wanted: Vec<(String, Map)> = vec![("output".into(), out)];
        let profiler = pass.profiler.take();
        let stamps = profiler.as_ref().map(|p| p.resolve(ctx, &mut pass.encoder));
        wanted.extend(pass.captured);
        let (mut tensors, raw) = read_maps_and(ctx, pass.encoder, wanted, stamps.as_ref(), scopes)?;
        if let (Some(p), Some(raw)) = (profiler, raw) {
            self.keep_profile(ctx, &p, &raw);
        }
        let output = tensors.remove(0).1;
        // Classifiers end in pooled vectors: `[B, classes]`, as on the CPU.
        let output = match self.graph.nodes.last().map(|n| &n.op) {
            Some(Op::Linear { .. } | Op::GlobalPool(_)) => output.flatten_from(1)?,
            _ => output,
        };
        Ok(GpuOutput { output, captured: tensors })
    }

    /// Segments the first image of `x` with an FCN and, given `photo` (RGB8 at the input's size),
    /// colours the labels on the GPU over it at `opacity`: only the labels (and the picture) are
    /// read back, never the score maps. Without a photo none is uploaded and only the labels come
    /// back.
    ///
    /// # Errors
    /// [`Error::Gpu`] for a model that is not a segmentation network, a photo of another size,
    /// or a device error.
    pub fn segment(
        &mut self,
        ctx: &GpuContext,
        x: &Tensor,
        photo: Option<&[u8]>,
        opacity: f32,
    ) -> Result<GpuSegmentation> {
        if !self.segments {
            return Err(Error::Gpu(format!("{} is not a segmentation network", self.name)));
        }
        let (_, _, h, w) = x.dims4()?;
        if let Some(photo) = photo.filter(|p| p.len() != 3 * h * w) {
            return Err(Error::Gpu(format!(
                "the photo has {} bytes, a {w}x{h} RGB image has {}",
                photo.len(),
                3 * h * w
            )));
        }
        let palette = match &self.palette {
            Some(b) => b.clone(),
            None => {
                let colours: Vec<u8> =
                    crate::colour::palette().iter().flat_map(|c| [c[0], c[1], c[2], 255]).collect();
                self.palette.insert(ctx.buffer_with("palette", &colours, wgpu::BufferUsages::STORAGE)).clone()
            }
        };
        let scopes = ctx.error_scopes();
        let name = self.name.clone();
        let (mut pass, mut maps, _) = self.record(ctx, x, Capture::Nothing, None, None)?;
        let scores =
            maps.pop().flatten().ok_or_else(|| Error::Gpu(format!("{name}: the model has no operation")))?;
        let plane = h * w;
        let photo_buf = pass.buffer("photo", plane)?;
        if let Some(photo) = photo {
            let rgba: Vec<u8> = photo.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
            ctx.queue.write_buffer(&photo_buf, 0, &rgba);
        }
        let labels = pass.buffer("labels", plane)?;
        let picture = pass.buffer("picture", plane)?;
        let params = LabelColourParams { classes: u(scores.shape[1]), plane: u(plane), offset: 0, opacity };
        pass.dispatch(&params, &[&scores.buf, &photo_buf, &palette, &labels, &picture], groups_for(plane));
        let mut wanted = if photo.is_some() { vec![&labels, &picture] } else { vec![&labels] };
        let profiler = pass.profiler.take();
        let stamps = profiler.as_ref().map(|p| p.resolve(ctx, &mut pass.encoder));
        wanted.extend(stamps.as_ref());
        let bytes = submit_and_read(ctx, pass.encoder, &wanted, scopes)?;
        if let (Some(p), Some(s)) = (profiler, &stamps) {
            self.keep_profile(ctx, &p, &bytes[bytes.len() - s.size() as usize..]);
        }
        let labels = bytes[..4 * plane].chunks_exact(4).map(|c| c[0]).collect();
        let picture = photo.map(|_| bytes[4 * plane..8 * plane].to_vec());
        Ok(GpuSegmentation { size: (w, h), labels, picture })
    }
}

/// Submits `encoder`, reads the `maps` back and returns them as CPU tensors, by name.
fn read_maps(
    ctx: &GpuContext,
    encoder: wgpu::CommandEncoder,
    maps: Vec<(String, Map)>,
    scopes: super::context::Scopes,
) -> Result<Vec<(String, Tensor)>> {
    Ok(read_maps_and(ctx, encoder, maps, None, scopes)?.0)
}

/// Maps read back, by name.
type NamedTensors = Vec<(String, Tensor)>;

/// [`read_maps`], reading `extra` back too (its bytes; the profiler's timestamps).
fn read_maps_and(
    ctx: &GpuContext,
    encoder: wgpu::CommandEncoder,
    maps: Vec<(String, Map)>,
    extra: Option<&wgpu::Buffer>,
    scopes: super::context::Scopes,
) -> Result<(NamedTensors, Option<Vec<u8>>)> {
    let mut bufs: Vec<&wgpu::Buffer> = maps.iter().map(|(_, m)| &m.buf).collect();
    bufs.extend(extra);
    let bytes = submit_and_read(ctx, encoder, &bufs, scopes)?;
    let raw = extra.map(|e| {
        let end = bytes.len();
        bytes[end - e.size() as usize..].to_vec()
    });
    let mut at = 0;
    let mut tensors = Vec::with_capacity(maps.len());
    for (name, map) in maps {
        let n = map.len();
        let floats: Vec<f32> = bytes[at..at + 4 * n]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        at += map.buf.size() as usize;
        tensors.push((name, Tensor::from_vec(floats, map.shape.to_vec(), &Device::Cpu)?));
    }
    Ok((tensors, raw))
}

/// Runs one operation on `x` through the same kernels as the models (for checking a kernel
/// against candle on its own, or for a caller that needs just that operation).
fn run_one(ctx: &GpuContext, x: &Tensor, op: impl FnOnce(&mut Pass, &Map) -> Result<Map>) -> Result<Tensor> {
    ctx.check_alive()?;
    let (b, c, h, w) = x.dims4()?;
    let scopes = ctx.error_scopes();
    let mut kept = BTreeMap::new();
    let placeholder = upload_floats(ctx, "placeholder", &[0.0; 4])?;
    let encoder =
        ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("one op") });
    let mut pass = Pass {
        ctx,
        encoder,
        kept: &mut kept,
        placeholder: &placeholder,
        capture: Capture::Nothing,
        captured: Vec::new(),
        profiler: None,
        scan: ScanMode::Auto,
        pairs: BTreeMap::new(),
        seed_shape: None,
        dropout: None,
        masks: BTreeMap::new(),
        bn_stats: BTreeMap::new(),
    };
    let input = pass.map("input", [b, c, h, w])?;
    ctx.queue.write_buffer(&input.buf, 0, &floats_to_bytes(&values(x)?));
    let out = op(&mut pass, &input)?;
    let encoder = pass.encoder;
    Ok(read_maps(ctx, encoder, vec![("out".into(), out)], scopes)?.remove(0).1)
}

/// A 2D convolution on the GPU: `x` `[B, C, H, W]`, `weight` `[O, C, k, k]`, optional `bias`
/// `[O]`, any stride and zero padding, optionally followed by a ReLU.
///
/// # Errors
/// [`Error::Gpu`] for shapes that do not fit or a device error.
pub fn conv2d(
    ctx: &GpuContext,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    pad: usize,
    relu: bool,
) -> Result<Tensor> {
    let (cout, cin, kernel, _) = weight.dims4()?;
    let bias = match bias {
        Some(b) => values(b)?,
        None => vec![0.0; cout],
    };
    let conv = ConvW {
        weight: upload_floats(ctx, "weight", &values(weight)?)?,
        bias: upload_floats(ctx, "bias", &bias)?,
        cin,
        cout,
        kernel,
        pad,
        stride,
        weight_slot: None,
        bias_slot: None,
    };
    run_one(ctx, x, |pass, input| pass.conv("conv", input, &conv, relu))
}

/// Max- or average-pooling of `[B, C, H, W]` over `kernel`-wide windows every `stride`
/// positions, on the GPU.
///
/// # Errors
/// [`Error::Gpu`] for a map smaller than the window or a device error.
pub fn pool2d(ctx: &GpuContext, x: &Tensor, kernel: usize, stride: usize, avg: bool) -> Result<Tensor> {
    run_one(ctx, x, |pass, input| pass.pool_strided("pool", input, (kernel, stride), avg, false))
}

/// Bilinear upsampling (`align_corners = False`) of `[B, C, H, W]` to `(h, w)`, on the GPU.
///
/// # Errors
/// [`Error::Gpu`] for a device error.
pub fn upsample(ctx: &GpuContext, x: &Tensor, size: (usize, usize)) -> Result<Tensor> {
    run_one(ctx, x, |pass, input| pass.upsample("upsample", input, size, None))
}

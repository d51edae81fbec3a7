//! One op graph per model: every model kind lowers to a list of operations with named weights
//! (convolution, BatchNorm + ReLU, ReLU, pooling, scan pair, add, concatenation, global pooling,
//! dropout, linear layer, bilinear upsampling), each with its inputs and the name it is captured
//! under. Every backend walks this one list: the candle path (CPU and CUDA,
//! [`super::execute`]) binds each op to the paper's layers in `crate::nn`, and the wgpu executor
//! (`crate::gpu::executor`) uploads each op's weights and records one dispatch per op (fusing
//! neighbours such as a convolution and its ReLU). A backward pass is the same list walked in
//! reverse.
//!
//! Values are numbered: value 0 is the input, value `i + 1` is the output of node `i`. Nodes are
//! in forward order (every input is an earlier value), so walking them in order runs the model.

use crate::limits;
use crate::nn::{Axis, Cell, GlobalPool, Merge};

/// A value of the graph: 0 is the input, `i + 1` the output of node `i`.
pub type Value = usize;

/// Where a scan pair's input projection `U x + b` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    /// Each direction owns `<prefix>.<dir>.u.weight` `[G·D, in_channels]` and `.u.bias`; the
    /// pair's input is the layer input.
    Own {
        /// Channels of the pair's input.
        in_channels: usize,
    },
    /// Both directions read the pair's input as their projection (an inserted pair: the
    /// convolution before it is the shared `U`); recurrences `<prefix>.v_<dir>.weight`.
    Shared,
}

/// One operation. Weight names are full names (`stage1.0.cnn.conv1`, `fc1`, `features.0`); the
/// tensors are `<name>.weight`, `<name>.bias`, … as in PyTorch.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// 2D convolution with stride 1 and `pad` zeros on every side: `<name>.weight`
    /// `[out_channels, in_channels, kernel, kernel]`, `<name>.bias` `[out_channels]` when `bias`.
    Conv {
        /// Weight prefix.
        name: String,
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel side.
        kernel: usize,
        /// Zero padding on each side.
        pad: usize,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// `max(x, 0)`.
    Relu,
    /// BatchNorm then ReLU: `<name>.weight`, `.bias`, `.running_mean`, `.running_var` (`[C]`);
    /// batch statistics in training, running ones in inference.
    BatchNormRelu {
        /// Weight prefix.
        name: String,
        /// Channels.
        channels: usize,
    },
    /// 2x2 max pooling with stride 2.
    MaxPool2x2,
    /// A bidirectional spatial RNN pair along `axis`, its two maps merged; each direction's map
    /// is captured as `<prefix>.<dir>`.
    ScanPair {
        /// Weight prefix (`""` for a lone L-RNN module).
        prefix: String,
        /// The scanned axis.
        axis: Axis,
        /// The recurrent cell.
        cell: Cell,
        /// Hidden size `D` of each direction.
        hidden: usize,
        /// Where the projection comes from.
        projection: Projection,
        /// How the two maps are merged.
        merge: Merge,
    },
    /// The sum of two values of the same shape.
    Add,
    /// Two values joined along channels.
    Concat,
    /// `[B, C, H, W]` to `[B, C]`.
    GlobalPool(GlobalPool),
    /// Dropout with this drop probability (training only).
    Dropout(f32),
    /// A linear layer on `[B, in_features]`: `<name>.weight` `[out, in]`, `<name>.bias`.
    Linear {
        /// Weight prefix.
        name: String,
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
    },
    /// Bilinear upsampling (`align_corners = False`) of the first input to the height and width
    /// of the second.
    Upsample,
    /// 2x2 max pooling with stride 2 in Caffe's ceil mode: an odd side keeps its last row or
    /// column as a window of one (`ceil(h / 2) x ceil(w / 2)`), as Long et al.'s FCNs pool.
    MaxPoolCeil,
    /// A transposed convolution without bias (Caffe's `Deconvolution`, PyTorch's
    /// `ConvTranspose2d(bias=False)`), no padding: `<name>.weight` `[in_channels, out_channels,
    /// kernel, kernel]`; an `h x w` map becomes `((h - 1)·stride + kernel) x ((w - 1)·stride +
    /// kernel)`.
    ConvTranspose {
        /// Weight prefix.
        name: String,
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel side.
        kernel: usize,
        /// Stride (the upsampling factor).
        stride: usize,
    },
    /// The first input cropped to the height and width of the second, starting `offset` rows
    /// and columns in (Caffe's `Crop` layer with axis 2).
    Crop {
        /// Rows and columns skipped at the top and left.
        offset: usize,
    },
}

/// An operation with its inputs and its capture name.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What it computes.
    pub op: Op,
    /// Its inputs, earlier values.
    pub inputs: Vec<Value>,
    /// The name its output is captured under (`conv5`, `stage2.0`, `fc1`, `score`), if any.
    pub capture: Option<String>,
}

/// One row of a network's layer table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRow {
    /// Weight prefix.
    pub name: String,
    /// What it is, in words.
    pub kind: String,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Spatial size of its output for the network's nominal input (32x32 for the CIFAR
    /// networks, `input_size` for a convnet).
    pub size: usize,
}

/// A model as a list of operations.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// Input channels.
    pub in_channels: usize,
    /// Input sides must be multiples of this (32 for the FCNs, 1 otherwise).
    pub input_multiple: usize,
    /// The operations in forward order.
    pub nodes: Vec<Node>,
    /// The layer table for people (`lrnn info`).
    pub rows: Vec<LayerRow>,
}

impl Graph {
    /// An empty graph over an input of `in_channels` channels.
    pub fn new(in_channels: usize) -> Self {
        Self { in_channels, input_multiple: 1, nodes: Vec::new(), rows: Vec::new() }
    }

    /// The input value.
    pub const INPUT: Value = 0;

    /// Appends `op` on `inputs` and returns its value.
    pub fn push(&mut self, op: Op, inputs: &[Value]) -> Value {
        self.nodes.push(Node { op, inputs: inputs.to_vec(), capture: None });
        self.nodes.len()
    }

    /// Captures `value` (the output of a node) under `name`.
    ///
    /// # Panics
    /// When `value` is the input (it is never captured): a bug in a model's lowering.
    pub fn capture(&mut self, value: Value, name: impl Into<String>) {
        assert!(value > 0, "the input is not captured");
        self.nodes[value - 1].capture = Some(name.into());
    }

    /// The model's output: the last node's value.
    pub fn output(&self) -> Value {
        self.nodes.len()
    }

    /// A convolution (stride 1, padding `kernel / 2`).
    pub fn conv(
        &mut self,
        x: Value,
        name: &str,
        (cin, cout, kernel): (usize, usize, usize),
        bias: bool,
    ) -> Value {
        let op = Op::Conv {
            name: name.to_string(),
            in_channels: cin,
            out_channels: cout,
            kernel,
            pad: kernel / 2,
            bias,
        };
        self.push(op, &[x])
    }

    /// A convolution with an L-RNN pair inserted after it along `axis` (the convolution is the
    /// pair's shared projection; the pair's two maps are averaged, SPEC §4), or with a ReLU when
    /// `relu` and nothing is inserted.
    pub fn conv_layer(
        &mut self,
        x: Value,
        name: &str,
        shape: (usize, usize, usize),
        relu: bool,
        insert: Option<Axis>,
    ) -> Value {
        let y = self.conv(x, name, shape, true);
        match insert {
            Some(axis) => self.push(
                Op::ScanPair {
                    prefix: name.to_string(),
                    axis,
                    cell: Cell::Vanilla,
                    hidden: shape.1,
                    projection: Projection::Shared,
                    merge: Merge::Mean,
                },
                &[y],
            ),
            None if relu => self.push(Op::Relu, &[y]),
            None => y,
        }
    }

    /// An L-RNN module under `prefix` (its horizontal pair, then its vertical pair on the merged
    /// map), each direction with its own projection.
    pub fn lrnn(
        &mut self,
        x: Value,
        prefix: &str,
        (in_channels, hidden): (usize, usize),
        cell: Cell,
        merge: Merge,
    ) -> Value {
        let pair = |axis, in_channels| Op::ScanPair {
            prefix: prefix.to_string(),
            axis,
            cell,
            hidden,
            projection: Projection::Own { in_channels },
            merge,
        };
        let mid = self.push(pair(Axis::Horizontal, in_channels), &[x]);
        self.push(pair(Axis::Vertical, merge.channels(hidden)), &[mid])
    }

    /// The smallest input side: every 2x2 max-pool halves the map, and none may become empty.
    pub fn min_input(&self) -> usize {
        let pools = self.nodes.iter().filter(|n| n.op == Op::MaxPool2x2).count();
        1usize << pools.min(20)
    }

    /// Checks that a batch of `b` inputs of `h x w` fits: both sides multiples of
    /// `input_multiple` (an FCN's stride) and not smaller than [`Graph::min_input`], no map
    /// empty or smaller than its kernel on the way, and every value of the pass together within
    /// the memory limit ([`crate::limits`]); on every backend alike, before anything is
    /// allocated.
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn check_input(&self, b: usize, h: usize, w: usize) -> std::result::Result<(), String> {
        let m = self.input_multiple.max(1);
        if m > 1 && (h % m != 0 || w % m != 0 || h == 0 || w == 0) {
            return Err(format!(
                "input {h}x{w}: both sides must be non-zero multiples of {m} (the network's stride)"
            ));
        }
        let min = self.min_input();
        if h < min || w < min {
            return Err(if min == 1 {
                format!("input {h}x{w}: both sides must be at least 1")
            } else {
                format!(
                    "input {h}x{w}: the network halves its maps {} times, so both sides must be at least {min}",
                    min.trailing_zeros()
                )
            });
        }
        limits::check_size(h.max(w), limits::MAX_SIDE, &format!("input {h}x{w}: a side of"))?;
        limits::check_size(b, limits::MAX_COUNT, "a batch of")?;
        let shapes = self.shapes(h, w)?;
        let floats = shapes
            .iter()
            .try_fold(0u64, |acc, &(c, h, w)| acc.checked_add(limits::elements(&[b, c, h, w])?))
            .and_then(|f| f.checked_mul(4));
        limits::check_memory(
            floats.unwrap_or(u64::MAX),
            &format!("a forward pass of {b} input(s) of {h}x{w} (every map it computes)"),
        )
    }

    /// The shape `(channels, height, width)` of every value (the input first) for an `h x w`
    /// input.
    ///
    /// # Errors
    /// A map that becomes empty or smaller than a kernel, in words naming the op.
    pub fn shapes(&self, h: usize, w: usize) -> std::result::Result<Vec<(usize, usize, usize)>, String> {
        let mut shapes = Vec::with_capacity(self.nodes.len() + 1);
        shapes.push((self.in_channels, h, w));
        for (i, node) in self.nodes.iter().enumerate() {
            let arg = |k: usize| -> std::result::Result<(usize, usize, usize), String> {
                node.inputs
                    .get(k)
                    .and_then(|&v| shapes.get(v))
                    .copied()
                    .ok_or_else(|| format!("op graph: node {i} reads a missing value"))
            };
            let (c, h, w) = arg(0)?;
            let shape = match &node.op {
                Op::Conv { name, out_channels, kernel, pad, .. } => {
                    let (hp, wp) = (h + 2 * pad, w + 2 * pad);
                    if hp < *kernel || wp < *kernel || h == 0 || w == 0 {
                        return Err(format!(
                            "the map reaching `{name}` is {h}x{w}, smaller than its {kernel}x{kernel} kernel: \
                             the input is too small for this network"
                        ));
                    }
                    (*out_channels, hp - kernel + 1, wp - kernel + 1)
                }
                Op::Relu | Op::BatchNormRelu { .. } | Op::Dropout(_) => (c, h, w),
                Op::MaxPool2x2 => {
                    if h < 2 || w < 2 {
                        return Err(format!(
                            "a {h}x{w} map cannot be halved by 2x2 pooling: the input is too small for this network"
                        ));
                    }
                    (c, h / 2, w / 2)
                }
                Op::ScanPair { hidden, merge, .. } => (merge.channels(*hidden), h, w),
                Op::Add => (c, h, w),
                Op::Concat => (c + arg(1)?.0, h, w),
                Op::GlobalPool(_) => (c, 1, 1),
                Op::Linear { out_features, .. } => (*out_features, 1, 1),
                Op::Upsample => {
                    let (_, th, tw) = arg(1)?;
                    (c, th, tw)
                }
                Op::MaxPoolCeil => {
                    if h == 0 || w == 0 {
                        return Err("an empty map cannot be pooled".to_string());
                    }
                    (c, h.div_ceil(2), w.div_ceil(2))
                }
                Op::ConvTranspose { out_channels, kernel, stride, .. } => {
                    if h == 0 || w == 0 {
                        return Err("an empty map cannot be upsampled".to_string());
                    }
                    let side = |n: usize| (n - 1).checked_mul(*stride).and_then(|v| v.checked_add(*kernel));
                    match (side(h), side(w)) {
                        (Some(oh), Some(ow)) if oh.max(ow) <= limits::MAX_SIDE * 64 => {
                            (*out_channels, oh, ow)
                        }
                        _ => return Err(format!("a {h}x{w} map upsampled x{stride} is too large")),
                    }
                }
                Op::Crop { offset } => {
                    let (_, th, tw) = arg(1)?;
                    if offset + th > h || offset + tw > w {
                        return Err(format!(
                            "a {h}x{w} map cannot be cropped to {th}x{tw} at offset {offset}: \
                             the input is too small for this network"
                        ));
                    }
                    (c, th, tw)
                }
            };
            shapes.push(shape);
        }
        Ok(shapes)
    }

    /// Checks the graph's own sizes before any weight is allocated: channels, features and
    /// kernels of every op, the number of ops, and the weights' memory ([`crate::limits`]).
    ///
    /// # Errors
    /// The op and the size over its limit.
    pub fn check_sizes(&self) -> std::result::Result<(), String> {
        limits::check_size(self.nodes.len(), 8 * limits::MAX_LAYERS, "the number of ops,")?;
        limits::check_size(self.in_channels, limits::MAX_CHANNELS, "in_channels")?;
        for node in &self.nodes {
            let sizes: Vec<(&str, usize)> = match &node.op {
                Op::Conv { in_channels, out_channels, kernel, .. } => {
                    vec![("in_channels", *in_channels), ("out_channels", *out_channels), ("kernel", *kernel)]
                }
                Op::BatchNormRelu { channels, .. } => vec![("channels", *channels)],
                Op::ScanPair { hidden, projection, .. } => match projection {
                    Projection::Own { in_channels } => {
                        vec![("hidden", *hidden), ("in_channels", *in_channels)]
                    }
                    Projection::Shared => vec![("hidden", *hidden)],
                },
                Op::Linear { in_features, out_features, .. } => {
                    vec![("in_features", *in_features), ("out_features", *out_features)]
                }
                Op::ConvTranspose { in_channels, out_channels, kernel, stride, .. } => vec![
                    ("in_channels", *in_channels),
                    ("out_channels", *out_channels),
                    ("kernel", *kernel),
                    ("stride", *stride),
                ],
                _ => vec![],
            };
            for (what, v) in sizes {
                let max = if matches!(what, "kernel" | "stride") { 64 } else { limits::MAX_CHANNELS };
                if v == 0 || v > max {
                    return Err(format!("{}: {what} {v} is outside 1..={max}", node_name(&node.op)));
                }
            }
        }
        let floats = self
            .weights()
            .iter()
            .try_fold(0u64, |acc, (_, dims)| acc.checked_add(limits::elements(dims)?))
            .and_then(|f| f.checked_mul(4));
        limits::check_memory(floats.unwrap_or(u64::MAX), "the model's weights")
    }

    /// How many nodes read each value (index = value).
    pub fn uses(&self) -> Vec<usize> {
        let mut uses = vec![0; self.nodes.len() + 1];
        for node in &self.nodes {
            for &v in &node.inputs {
                uses[v] += 1;
            }
        }
        uses[self.output()] += 1;
        uses
    }

    /// The last node that reads each value (`None` for values no node reads).
    pub fn last_use(&self) -> Vec<Option<usize>> {
        let mut last = vec![None; self.nodes.len() + 1];
        for (i, node) in self.nodes.iter().enumerate() {
            for &v in &node.inputs {
                last[v] = Some(i);
            }
        }
        last
    }

    /// Every weight name the graph reads, with its shape, in node order: what a model of this
    /// graph must hold.
    pub fn weights(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for node in &self.nodes {
            match &node.op {
                Op::Conv { name, in_channels, out_channels, kernel, bias, .. } => {
                    out.push((format!("{name}.weight"), vec![*out_channels, *in_channels, *kernel, *kernel]));
                    if *bias {
                        out.push((format!("{name}.bias"), vec![*out_channels]));
                    }
                }
                Op::BatchNormRelu { name, channels } => {
                    for t in ["weight", "bias", "running_mean", "running_var"] {
                        out.push((format!("{name}.{t}"), vec![*channels]));
                    }
                }
                Op::ScanPair { prefix, axis, cell, hidden, projection, .. } => {
                    let gd = cell.gates() * hidden;
                    for dir in axis.directions() {
                        let d = crate::nn::forward::join_name(prefix, dir.name());
                        match projection {
                            Projection::Own { in_channels } => {
                                out.push((format!("{d}.u.weight"), vec![gd, *in_channels]));
                                out.push((format!("{d}.u.bias"), vec![gd]));
                                out.push((format!("{d}.v.weight"), vec![gd, *hidden]));
                                if *cell == Cell::VanillaLn {
                                    out.push((format!("{d}.ln.weight"), vec![*hidden]));
                                    out.push((format!("{d}.ln.bias"), vec![*hidden]));
                                }
                            }
                            Projection::Shared => {
                                let v = crate::nn::forward::join_name(prefix, &format!("v_{}", dir.name()));
                                out.push((format!("{v}.weight"), vec![*hidden, *hidden]));
                            }
                        }
                    }
                }
                Op::Linear { name, in_features, out_features } => {
                    out.push((format!("{name}.weight"), vec![*out_features, *in_features]));
                    out.push((format!("{name}.bias"), vec![*out_features]));
                }
                Op::ConvTranspose { name, in_channels, out_channels, kernel, .. } => {
                    out.push((format!("{name}.weight"), vec![*in_channels, *out_channels, *kernel, *kernel]));
                }
                Op::MaxPoolCeil | Op::Crop { .. } => {}
                Op::Relu
                | Op::MaxPool2x2
                | Op::Add
                | Op::Concat
                | Op::GlobalPool(_)
                | Op::Dropout(_)
                | Op::Upsample => {}
            }
        }
        out
    }
}

/// The name an op's weights go under, for messages.
fn node_name(op: &Op) -> String {
    match op {
        Op::Conv { name, .. }
        | Op::BatchNormRelu { name, .. }
        | Op::Linear { name, .. }
        | Op::ConvTranspose { name, .. } => {
            format!("`{name}`")
        }
        Op::ScanPair { prefix, .. } if !prefix.is_empty() => format!("`{prefix}`"),
        _ => "the L-RNN".to_string(),
    }
}

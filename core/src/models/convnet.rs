//! Plain convolutional networks described layer by layer, with L-RNN pairs inserted into chosen
//! convolutions (SPEC §4): the setting of the paper's insertion into pre-trained CNNs, small enough
//! to train in minutes. It is the teaching demo's network (`Context-CNN` and `Context-LRNN`, the
//! same network with a horizontal pair inserted into `conv5` and a vertical pair into `conv6`).
//!
//! JSON (`{"kind": "convnet", ...}`):
//! ```json
//! {"kind": "convnet", "name": "Context-CNN", "in_channels": 1, "classes": 2, "input_size": 64,
//!  "layers": [{"op": "conv", "name": "conv1", "out": 16}, {"op": "max_pool", "name": "pool1"}, ...],
//!  "pool": "max", "insert": [{"layer": "conv5", "axis": "horizontal"}]}
//! ```
//! A convolution is stride 1 with "same" padding (`kernel / 2`), a bias, and a ReLU unless
//! `"relu": false`; a max-pool is 2x2 with stride 2. The head is global pooling and a linear
//! classifier `head`. Weight names are the layers' (`conv1.weight`, `conv1.bias`, `head.weight`);
//! an inserted pair adds `<layer>.v_<dir>.weight` (SPEC §8). Captured maps: every layer's output
//! under its name and, for an inserted pair, `<layer>.<dir>`.

use serde::{Deserialize, Serialize};

use super::graph::{Graph, LayerRow, Op};
use crate::nn::geometry::Geom;
use crate::nn::{Axis, GlobalPool};

/// One layer of a [`ConvNetConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// A stride-1 convolution with "same" padding and a bias, then (by default) a ReLU.
    Conv {
        /// The layer's name (its weights' prefix).
        name: String,
        /// Output channels.
        out: usize,
        /// Kernel side (odd).
        #[serde(default = "default_kernel")]
        kernel: usize,
        /// Whether a ReLU follows.
        #[serde(default = "default_relu")]
        relu: bool,
    },
    /// A 2x2 max-pool with stride 2.
    MaxPool {
        /// The layer's name.
        name: String,
    },
}

fn default_kernel() -> usize {
    3
}
fn default_relu() -> bool {
    true
}

impl LayerSpec {
    /// The layer's name.
    pub fn name(&self) -> &str {
        match self {
            LayerSpec::Conv { name, .. } | LayerSpec::MaxPool { name } => name,
        }
    }
}

/// An L-RNN pair inserted into a convolution (its `U` is the convolution).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Insertion {
    /// The convolution's name.
    pub layer: String,
    /// The axis the pair scans along.
    pub axis: Axis,
    /// Each new `V` starts as this times the identity. 0 (the default) is the paper's insertion:
    /// the network's output is exactly the CNN's, and `V` first learns from neighbouring positions
    /// only (App. B), so long-range paths must grow from short ones. A value near 1 (an "IRNN"
    /// start, Le et al. 2015) carries every feature along the whole row or column from the first
    /// step, at the price of changing the output; on the context task it is what lets the pair
    /// learn within an epoch (RESULTS.md).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub v_init: f32,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(x: &f32) -> bool {
    *x == 0.0
}

/// A plain convolutional network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvNetConfig {
    /// A name for people (shown by `lrnn info` and the app).
    pub name: String,
    /// Input channels.
    pub in_channels: usize,
    /// Number of classes.
    pub classes: usize,
    /// The side of the images the network was made for (any size divisible by 2^pools runs).
    pub input_size: usize,
    /// The layers, in order.
    pub layers: Vec<LayerSpec>,
    /// The global pooling of the head.
    #[serde(default)]
    pub pool: GlobalPool,
    /// L-RNN pairs inserted into convolutions.
    #[serde(default)]
    pub insert: Vec<Insertion>,
}

/// The names of the built-in networks.
pub const PRESET_NAMES: [&str; 3] = ["Context-CNN", "Context-CNN-Wide", "Context-LRNN"];

impl ConvNetConfig {
    /// A built-in network by name: `Context-CNN` (3x3 convolutions of 8, 8, 16 and 16 channels with
    /// a 2x2 max-pool after every second one, then two 1x1 convolutions of 32 channels, as the FCN
    /// heads have; for 96x96 grey images and two classes; receptive field 16 pixels, less than the
    /// context task's mark distance and margin) or `Context-LRNN` (the same with a horizontal pair
    /// inserted into `conv5` and a vertical one into `conv6`, as the paper inserts them into fc1
    /// and fc2).
    pub fn preset(name: &str) -> Option<Self> {
        let conv = |name: &str, out| LayerSpec::Conv { name: name.into(), out, kernel: 3, relu: true };
        let fc = |name: &str, out| LayerSpec::Conv { name: name.into(), out, kernel: 1, relu: true };
        let pool = |name: &str| LayerSpec::MaxPool { name: name.into() };
        let mut config = Self {
            name: name.into(),
            in_channels: 1,
            classes: 2,
            input_size: 96,
            layers: vec![
                conv("conv1", 8),
                conv("conv2", 8),
                pool("pool1"),
                conv("conv3", 16),
                conv("conv4", 16),
                pool("pool2"),
                fc("conv5", 32),
                fc("conv6", 32),
            ],
            pool: GlobalPool::Max,
            insert: vec![],
        };
        match name {
            "Context-CNN" => {}
            "Context-CNN-Wide" => {
                config.layers[6] = fc("conv5", 66);
                config.layers[7] = fc("conv6", 66);
            }
            "Context-LRNN" => {
                config.insert = vec![
                    Insertion { layer: "conv5".into(), axis: Axis::Horizontal, v_init: 0.9 },
                    Insertion { layer: "conv6".into(), axis: Axis::Vertical, v_init: 0.9 },
                ];
            }
            _ => return None,
        }
        Some(config)
    }

    /// Checks names, sizes and insertions.
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.in_channels == 0 || self.classes == 0 || self.input_size == 0 {
            return Err("in_channels, classes and input_size must be at least 1".into());
        }
        if self.layers.is_empty() {
            return Err("a convnet needs at least one layer".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for layer in &self.layers {
            let name = layer.name();
            if name.is_empty() || name.contains('.') || name == "head" || name == "output" {
                return Err(format!("layer name `{name}` is empty, holds a dot or is reserved"));
            }
            if !seen.insert(name) {
                return Err(format!("two layers are named `{name}`"));
            }
            if let LayerSpec::Conv { out, kernel, .. } = layer {
                if *out == 0 || kernel % 2 == 0 {
                    return Err(format!("layer `{name}`: out must be at least 1 and kernel odd"));
                }
            }
        }
        let mut inserted = std::collections::BTreeSet::new();
        for ins in &self.insert {
            match self.layers.iter().find(|l| l.name() == ins.layer) {
                Some(LayerSpec::Conv { relu: true, .. }) => {}
                Some(_) => {
                    return Err(format!("cannot insert into `{}`: not a convolution with a ReLU", ins.layer))
                }
                None => return Err(format!("cannot insert into `{}`: no such layer", ins.layer)),
            }
            if !inserted.insert(&ins.layer) {
                return Err(format!("`{}` has two insertions", ins.layer));
            }
            if !ins.v_init.is_finite() || ins.v_init.abs() > 2.0 {
                return Err(format!("`{}`: v_init {} is outside [-2, 2]", ins.layer, ins.v_init));
            }
        }
        Ok(())
    }

    /// The axis of the pair inserted into `layer`, if any.
    pub fn inserted(&self, layer: &str) -> Option<Axis> {
        self.insert.iter().find(|i| i.layer == layer).map(|i| i.axis)
    }

    /// The geometry of every layer up to and including `layer` (for theoretical receptive
    /// fields); `None` when there is no such layer.
    pub fn geometry(&self, layer: &str) -> Option<Vec<Geom>> {
        let mut out = Vec::new();
        for spec in &self.layers {
            match spec {
                LayerSpec::Conv { name, kernel, .. } => {
                    out.push(Geom::Window { kernel: *kernel, stride: 1 });
                    match self.inserted(name) {
                        Some(Axis::Horizontal) => out.push(Geom::RowScan),
                        Some(Axis::Vertical) => out.push(Geom::ColumnScan),
                        None => {}
                    }
                }
                LayerSpec::MaxPool { .. } => out.push(Geom::Window { kernel: 2, stride: 2 }),
            }
            if spec.name() == layer {
                return Some(out);
            }
        }
        None
    }
}

fn axis_word(axis: Axis) -> &'static str {
    match axis {
        Axis::Horizontal => "horizontal",
        Axis::Vertical => "vertical",
    }
}

impl ConvNetConfig {
    /// The network as an op graph: its layers in order (a convolution with its ReLU, or with
    /// its inserted pair), each captured under its name, then global pooling and the linear
    /// classifier `head`.
    pub fn graph(&self) -> Graph {
        let mut g = Graph::new(self.in_channels);
        let (mut channels, mut size) = (self.in_channels, self.input_size);
        let mut x = Graph::INPUT;
        for spec in &self.layers {
            let name = spec.name().to_string();
            let (kind, out) = match spec {
                LayerSpec::Conv { out, kernel, relu, .. } => {
                    let insert = self.inserted(&name);
                    x = g.conv_layer(x, &name, (channels, *out, *kernel), *relu, insert);
                    let kind = match insert {
                        Some(axis) => format!("conv{kernel}x{kernel} + {} L-RNN pair", axis_word(axis)),
                        None if *relu => format!("conv{kernel}x{kernel} + ReLU"),
                        None => format!("conv{kernel}x{kernel}"),
                    };
                    (kind, *out)
                }
                LayerSpec::MaxPool { .. } => {
                    size /= 2;
                    x = g.push(Op::MaxPool2x2, &[x]);
                    ("max-pool 2x2".to_string(), channels)
                }
            };
            g.capture(x, &name);
            g.rows.push(LayerRow { name, kind, in_channels: channels, out_channels: out, size });
            channels = out;
        }
        let pooled = g.push(Op::GlobalPool(self.pool), &[x]);
        g.push(
            Op::Linear { name: "head".into(), in_features: channels, out_features: self.classes },
            &[pooled],
        );
        g.rows.push(LayerRow {
            name: "head".into(),
            kind: format!("global {:?} pool, linear", self.pool).to_lowercase(),
            in_channels: channels,
            out_channels: self.classes,
            size: 1,
        });
        g
    }
}

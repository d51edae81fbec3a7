//! The segmentation networks of the paper (SPEC §6): a VGG-16 trunk, FCN-32s or FCN-8s heads with
//! `n` channels, and, in the `-LRNN` variants, L-RNN pairs inserted into the heads (a horizontal
//! pair on fc1, fc4, fc7; a vertical pair on fc2, fc5, fc8), their `V` starting at zero.
//!
//! Names: `FCN-32s`, `FCN-8s`, `FCN-32s-LRNN`, `FCN-8s-LRNN` (n = 1024) or JSON
//! `{"kind": "fcn", "variant": "8s", "heads": 2048, "lrnn": true}`. Weights: the trunk under
//! torchvision's VGG-16 names (`features.0.weight` for conv1_1 … `features.28.bias` for conv5_3,
//! `[O, I, 3, 3]`, see [`VGG16`]), so that `lrnn fetch vgg16` and torchvision's own file load as
//! they are; the heads `fc1.weight` … `fc9.bias`, and for an inserted pair `fc1.v_lr.weight`, …
//! (SPEC §8). Captured maps: every trunk layer (`conv1_1` … `pool5`), every
//! head layer (`fc1` … `fc9`), each inserted direction (`fc1.lr`, …), and the scores before
//! upsampling (`score`, at 1/32 for FCN-32s and 1/8 for FCN-8s). The output is `[B, classes, H, W]`
//! at the input's size.
//!
//! Upsampling is bilinear (PyTorch's `align_corners = False`), written as two small matrix
//! products so that gradients flow through it (candle's own bilinear op has no backward).

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use super::graph::{Graph, Op};
use crate::nn::geometry::Geom;
use crate::nn::Axis;

/// FCN-32s or FCN-8s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Variant {
    /// Scores from pool5 only, upsampled x32.
    #[serde(rename = "32s")]
    Fcn32s,
    /// Scores from pool5, pool4 and pool3, fused coarse to fine.
    #[serde(rename = "8s")]
    Fcn8s,
}

/// A segmentation network (`{"kind": "fcn", ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcnConfig {
    /// FCN-32s or FCN-8s.
    pub variant: Variant,
    /// Channels `n` of fc1 and fc2 (the paper: 512, 1024, 2048 or 4096).
    #[serde(default = "default_heads")]
    pub heads: usize,
    /// Whether L-RNN pairs are inserted into the heads.
    #[serde(default)]
    pub lrnn: bool,
    /// Number of classes (21 for PASCAL VOC: background and 20 objects).
    #[serde(default = "default_classes")]
    pub classes: usize,
    /// The input side the network was trained at (`lrnn train-seg` records it; `None`: 384, the
    /// paper's). Any multiple of 32 runs; this is what photos are resized to by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_size: Option<usize>,
    /// Each inserted `V` starts at this times the identity in a fresh network (`0`, the paper's:
    /// the network is then exactly its FCN; `0.9`: an "IRNN" start that carries features along
    /// the whole row or column from the first step).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub v_init: f32,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

fn default_heads() -> usize {
    1024
}
fn default_classes() -> usize {
    21
}

/// The scoring layers (linear, one output per class), which start at zero in a fresh network.
pub const SCORE_LAYERS: [&str; 3] = ["fc3", "fc6", "fc9"];

/// The names of the built-in segmentation networks (n = 1024).
pub const FCN_NAMES: [&str; 4] = ["FCN-32s", "FCN-8s", "FCN-32s-LRNN", "FCN-8s-LRNN"];

/// The VGG-16 convolutions: (name, torchvision's weight prefix, input channels, output
/// channels); a 2x2 max-pool follows conv1_2, conv2_2, conv3_3, conv4_3 and conv5_3.
pub const VGG16: [(&str, &str, usize, usize); 13] = [
    ("conv1_1", "features.0", 3, 64),
    ("conv1_2", "features.2", 64, 64),
    ("conv2_1", "features.5", 64, 128),
    ("conv2_2", "features.7", 128, 128),
    ("conv3_1", "features.10", 128, 256),
    ("conv3_2", "features.12", 256, 256),
    ("conv3_3", "features.14", 256, 256),
    ("conv4_1", "features.17", 256, 512),
    ("conv4_2", "features.19", 512, 512),
    ("conv4_3", "features.21", 512, 512),
    ("conv5_1", "features.24", 512, 512),
    ("conv5_2", "features.26", 512, 512),
    ("conv5_3", "features.28", 512, 512),
];

impl FcnConfig {
    /// A built-in network by name (see [`FCN_NAMES`]).
    pub fn named(name: &str) -> Option<Self> {
        let (variant, lrnn) = match name {
            "FCN-32s" => (Variant::Fcn32s, false),
            "FCN-8s" => (Variant::Fcn8s, false),
            "FCN-32s-LRNN" => (Variant::Fcn32s, true),
            "FCN-8s-LRNN" => (Variant::Fcn8s, true),
            _ => return None,
        };
        Some(Self {
            variant,
            heads: default_heads(),
            lrnn,
            classes: default_classes(),
            input_size: None,
            v_init: 0.0,
        })
    }

    /// A name for people, e.g. `FCN-8s-LRNN (n = 1024)`.
    pub fn display_name(&self) -> String {
        let v = match self.variant {
            Variant::Fcn32s => "32s",
            Variant::Fcn8s => "8s",
        };
        format!("FCN-{v}{} (n = {})", if self.lrnn { "-LRNN" } else { "" }, self.heads)
    }

    /// Checks the sizes.
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.heads == 0 || self.classes == 0 {
            return Err("heads and classes must be at least 1".into());
        }
        if !self.v_init.is_finite() || self.v_init.abs() > 2.0 {
            return Err(format!("v_init {} is outside [-2, 2]", self.v_init));
        }
        if let Some(n) = self.input_size.filter(|n| *n == 0 || n % 32 != 0) {
            return Err(format!("input_size {n}: a multiple of 32 is needed"));
        }
        Ok(())
    }

    /// The geometry of every layer up to `layer` (`conv1_1` … `pool5`, `fc1` … `fc9`) for
    /// theoretical receptive fields; `None` for an unknown layer.
    pub fn geometry(&self, layer: &str) -> Option<Vec<Geom>> {
        if let Ok(trunk) = vgg16_trunk(layer) {
            return Some(trunk);
        }
        let (base, kernel, axis) = match layer {
            "fc1" => ("pool5", 7, Axis::Horizontal),
            "fc2" => ("fc1", 1, Axis::Vertical),
            "fc3" => ("fc2", 1, Axis::Vertical),
            "fc4" => ("pool4", 1, Axis::Horizontal),
            "fc5" => ("fc4", 1, Axis::Vertical),
            "fc6" => ("fc5", 1, Axis::Vertical),
            "fc7" => ("pool3", 1, Axis::Horizontal),
            "fc8" => ("fc7", 1, Axis::Vertical),
            "fc9" => ("fc8", 1, Axis::Vertical),
            _ => return None,
        };
        if self.variant == Variant::Fcn32s && !matches!(layer, "fc1" | "fc2" | "fc3") {
            return None;
        }
        let mut g = self.geometry(base)?;
        g.push(Geom::Window { kernel, stride: 1 });
        if self.lrnn && !matches!(layer, "fc3" | "fc6" | "fc9") {
            g.push(match axis {
                Axis::Horizontal => Geom::RowScan,
                Axis::Vertical => Geom::ColumnScan,
            });
        }
        Some(g)
    }
}

impl FcnConfig {
    /// The network as an op graph: the VGG-16 trunk (each convolution with its ReLU, captured as
    /// `conv1_1` …, each 2x2 max-pool as `pool1` …), the scoring branches on pool5 (and pool4,
    /// pool3 for FCN-8s), each fused coarse to fine by upsampling and adding (`score`), then
    /// the scores upsampled to the input's size.
    pub fn graph(&self) -> Graph {
        let mut g = Graph::new(3);
        g.input_multiple = 32;
        let mut x = Graph::INPUT;
        let mut pools = Vec::new();
        for (i, &(name, prefix, cin, cout)) in VGG16.iter().enumerate() {
            x = g.conv_layer(x, prefix, (cin, cout, 3), true, None);
            g.capture(x, name);
            if matches!(i, 1 | 3 | 6 | 9 | 12) {
                x = g.push(Op::MaxPool2x2, &[x]);
                g.capture(x, format!("pool{}", pools.len() + 1));
                pools.push(x);
            }
        }
        let (n, k) = (self.heads, self.classes);
        let pair = |axis| self.lrnn.then_some(axis);
        let branch = |g: &mut Graph, names: [&str; 3], x: usize, cin: usize, width: usize, kernel: usize| {
            let a = g.conv_layer(x, names[0], (cin, width, kernel), true, pair(Axis::Horizontal));
            g.capture(a, names[0]);
            let b = g.conv_layer(a, names[1], (width, width, 1), true, pair(Axis::Vertical));
            g.capture(b, names[1]);
            let c = g.conv_layer(b, names[2], (width, k, 1), false, None);
            g.capture(c, names[2]);
            c
        };
        let mut score = branch(&mut g, ["fc1", "fc2", "fc3"], pools[4], 512, n, 7);
        if self.variant == Variant::Fcn8s {
            for (names, pool, cin) in
                [(["fc4", "fc5", "fc6"], pools[3], 512), (["fc7", "fc8", "fc9"], pools[2], 256)]
            {
                let fine = branch(&mut g, names, pool, cin, 1024, 1);
                let up = g.push(Op::Upsample, &[score, pool]);
                score = g.push(Op::Add, &[up, fine]);
            }
        }
        g.capture(score, "score");
        g.push(Op::Upsample, &[score, Graph::INPUT]);
        g
    }
}

/// The `[n_out, n_in]` matrix of bilinear interpolation from `n_in` to `n_out` samples with
/// PyTorch's `align_corners = False` (source coordinate `(i + 0.5) · n_in / n_out − 0.5`,
/// clamped at 0).
pub fn bilinear_matrix(n_in: usize, n_out: usize) -> Vec<f32> {
    let mut m = vec![0f32; n_out * n_in];
    let scale = n_in as f64 / n_out as f64;
    for i in 0..n_out {
        let src = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(n_in - 1);
        let i1 = (i0 + 1).min(n_in - 1);
        let w1 = (src - i0 as f64) as f32;
        m[i * n_in + i0] += 1.0 - w1;
        m[i * n_in + i1] += w1;
    }
    m
}

/// Bilinear upsampling of `[B, C, H, W]` to `[B, C, h, w]`, differentiable.
///
/// # Errors
/// When `x` is not 4-dimensional.
pub fn upsample_bilinear(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (_, _, hi, wi) = x.dims4()?;
    let dev = x.device();
    let aw = Tensor::from_vec(bilinear_matrix(wi, w), (w, wi), dev)?.to_dtype(x.dtype())?;
    let ah = Tensor::from_vec(bilinear_matrix(hi, h), (h, hi), dev)?.to_dtype(x.dtype())?;
    let rows = x.contiguous()?.broadcast_matmul(&aw.t()?)?; // [B, C, hi, w]
    ah.broadcast_matmul(&rows) // [h, hi] x [B, C, hi, w] -> [B, C, h, w]
}

/// The geometry of the VGG-16 trunk up to and including `layer` (`conv1_1` … `conv5_3`, `pool1` … `pool5`).
///
/// # Errors
/// An unknown layer name.
pub fn vgg16_trunk(layer: &str) -> std::result::Result<Vec<Geom>, String> {
    let conv = Geom::Window { kernel: 3, stride: 1 };
    let pool = Geom::Window { kernel: 2, stride: 2 };
    let mut out = Vec::new();
    for (block, convs) in [(1, 2), (2, 2), (3, 3), (4, 3), (5, 3)] {
        for i in 1..=convs {
            out.push(conv);
            if layer == format!("conv{block}_{i}") {
                return Ok(out);
            }
        }
        out.push(pool);
        if layer == format!("pool{block}") {
            return Ok(out);
        }
    }
    Err(format!("unknown VGG-16 layer `{layer}` (conv1_1 … conv5_3, pool1 … pool5)"))
}

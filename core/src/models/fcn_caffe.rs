//! Long, Shelhamer & Darrell's FCNs exactly as they published them (the Caffe releases
//! `fcn32s-heavy-pascal`, `fcn16s-heavy-pascal`, `fcn8s-heavy-pascal`, and the PyTorch port of
//! them): a VGG-16 trunk whose first convolution pads by 100, 2x2 max pooling in ceil mode, fc6
//! (7x7, 4096) and fc7 (1x1, 4096) with ReLU and dropout, `score_fr`, and bias-free learned
//! transposed convolutions with the reference crops:
//!
//! | variant | fusion | crops |
//! |---|---|---|
//! | FCN-32s | `upscore` (64, stride 32) | output at 19 |
//! | FCN-16s | `upscore2` (4, 2) + `score_pool4`; `upscore16` (32, 16) | score_pool4 at 5, output at 27 |
//! | FCN-8s | `upscore2` + `score_pool4`; `upscore_pool4` (4, 2) + `score_pool3`; `upscore8` (16, 8) | 5, 9, output at 31 |
//!
//! Any input size runs, with no resizing: the output is the input's size. Photos go in as the
//! Caffe models expect them: BGR, 0-255, less the means ([`crate::io::vgg16::CAFFE_MEAN_BGR`]).
//!
//! Weights are under the Caffe layer names, which the PyTorch port keeps: `conv1_1.weight` …
//! `conv5_3.bias`, `fc6`, `fc7`, `score_fr`, `score_pool4`, `score_pool3`, `upscore2.weight`,
//! `upscore_pool4.weight`, `upscore8.weight`, `upscore16.weight`, `upscore.weight`. In the
//! `-LRNN` kinds a horizontal L-RNN pair follows fc6 and a vertical one fc7 (the paper's
//! placement), their recurrences `fc6.v_lr.weight`, … starting at zero, so the network first
//! computes exactly the FCN's scores.
//!
//! Names: `FCN-32s-Caffe`, `FCN-16s-Caffe`, `FCN-8s-Caffe`, each with `-LRNN`; or JSON
//! `{"kind": "fcn_caffe", "variant": "8s", "classes": 21, "lrnn": false, "fc": 4096,
//! "trunk": [64, 128, 256, 512, 512]}` (`fc` and `trunk` narrower only for tests).

use serde::{Deserialize, Serialize};

use super::graph::{Graph, Op};
use crate::nn::Axis;

/// FCN-32s, FCN-16s or FCN-8s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaffeVariant {
    /// Scores from pool5 only, upsampled x32.
    #[serde(rename = "32s")]
    Fcn32s,
    /// pool5 and pool4, upsampled x16.
    #[serde(rename = "16s")]
    Fcn16s,
    /// pool5, pool4 and pool3, upsampled x8.
    #[serde(rename = "8s")]
    Fcn8s,
}

impl CaffeVariant {
    /// `32s`, `16s` or `8s`.
    pub fn tag(self) -> &'static str {
        match self {
            CaffeVariant::Fcn32s => "32s",
            CaffeVariant::Fcn16s => "16s",
            CaffeVariant::Fcn8s => "8s",
        }
    }
}

/// One of Long et al.'s FCNs (`{"kind": "fcn_caffe", ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcnCaffeConfig {
    /// FCN-32s, FCN-16s or FCN-8s.
    pub variant: CaffeVariant,
    /// Classes (21 for PASCAL VOC: background and 20 objects).
    #[serde(default = "default_classes")]
    pub classes: usize,
    /// Whether L-RNN pairs follow fc6 (horizontal) and fc7 (vertical).
    #[serde(default)]
    pub lrnn: bool,
    /// Channels of fc6 and fc7 (4096 in the published networks).
    #[serde(default = "default_fc")]
    pub fc: usize,
    /// Channels of the five VGG-16 blocks (64, 128, 256, 512, 512 in the published networks).
    #[serde(default = "default_trunk")]
    pub trunk: [usize; 5],
}

fn default_classes() -> usize {
    21
}
fn default_fc() -> usize {
    4096
}
fn default_trunk() -> [usize; 5] {
    [64, 128, 256, 512, 512]
}

/// The names of the built-in networks.
pub const FCN_CAFFE_NAMES: [&str; 6] = [
    "FCN-32s-Caffe",
    "FCN-16s-Caffe",
    "FCN-8s-Caffe",
    "FCN-32s-Caffe-LRNN",
    "FCN-16s-Caffe-LRNN",
    "FCN-8s-Caffe-LRNN",
];

/// The VGG-16 layers under Caffe's names: (name, block 0-4); a pool follows the last of a block.
pub const CAFFE_TRUNK: [(&str, usize); 13] = [
    ("conv1_1", 0),
    ("conv1_2", 0),
    ("conv2_1", 1),
    ("conv2_2", 1),
    ("conv3_1", 2),
    ("conv3_2", 2),
    ("conv3_3", 2),
    ("conv4_1", 3),
    ("conv4_2", 3),
    ("conv4_3", 3),
    ("conv5_1", 4),
    ("conv5_2", 4),
    ("conv5_3", 4),
];

/// The padding of conv1_1 in the published networks: it makes every crop offset fixed for any
/// input size.
pub const CONV1_PAD: usize = 100;

impl FcnCaffeConfig {
    /// A built-in network by name (see [`FCN_CAFFE_NAMES`]).
    pub fn named(name: &str) -> Option<Self> {
        let (base, lrnn) = match name.strip_suffix("-LRNN") {
            Some(b) => (b, true),
            None => (name, false),
        };
        let variant = match base {
            "FCN-32s-Caffe" => CaffeVariant::Fcn32s,
            "FCN-16s-Caffe" => CaffeVariant::Fcn16s,
            "FCN-8s-Caffe" => CaffeVariant::Fcn8s,
            _ => return None,
        };
        Some(Self { variant, classes: default_classes(), lrnn, fc: default_fc(), trunk: default_trunk() })
    }

    /// The network a set of weights is for, from their names and shapes (`name → dims`): the
    /// variant from the last upsampling (`upscore8`, `upscore16`, `upscore`), the classes from
    /// `score_fr`, the widths from the convolutions, L-RNNs from `fc6.v_lr.weight`. `None` when
    /// the weights are not those of one of Long et al.'s FCNs.
    pub fn infer(dims: &std::collections::BTreeMap<String, Vec<usize>>) -> Option<Self> {
        let has = |n: &str| dims.contains_key(n);
        let variant = if has("upscore8.weight") {
            CaffeVariant::Fcn8s
        } else if has("upscore16.weight") {
            CaffeVariant::Fcn16s
        } else if has("upscore.weight") {
            CaffeVariant::Fcn32s
        } else {
            return None;
        };
        let out = |n: &str| dims.get(&format!("{n}.weight")).and_then(|d| d.first().copied());
        let classes = out("score_fr")?;
        let fc = out("fc6")?;
        let trunk = [out("conv1_2")?, out("conv2_2")?, out("conv3_3")?, out("conv4_3")?, out("conv5_3")?];
        Some(Self { variant, classes, lrnn: has("fc6.v_lr.weight"), fc, trunk })
    }

    /// A name for people, e.g. `FCN-8s-Caffe-LRNN`, with the widths when they are not the
    /// published ones.
    pub fn display_name(&self) -> String {
        let mut s = format!("FCN-{}-Caffe{}", self.variant.tag(), if self.lrnn { "-LRNN" } else { "" });
        if self.fc != default_fc() || self.trunk != default_trunk() {
            s.push_str(&format!(" (fc {}, trunk {:?})", self.fc, self.trunk));
        }
        s
    }

    /// Checks the sizes.
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.classes == 0 || self.fc == 0 || self.trunk.contains(&0) {
            return Err("classes, fc and every trunk width must be at least 1".into());
        }
        Ok(())
    }

    /// The network as an op graph. Captured: every trunk layer (`conv1_1` … `pool5`), `fc6`,
    /// `fc7` (and with L-RNNs `fc6.lr`, …), `score_fr`, the fused scores (`score`, before the
    /// last upsampling); the output is the cropped `upscore*` at the input's size.
    pub fn graph(&self) -> Graph {
        let mut g = Graph::new(3);
        let mut x = Graph::INPUT;
        let mut pools = Vec::new();
        let mut cin = 3;
        for (i, &(name, block)) in CAFFE_TRUNK.iter().enumerate() {
            let cout = self.trunk[block];
            let pad = if i == 0 { CONV1_PAD } else { 1 };
            let conv = Op::Conv {
                name: name.to_string(),
                in_channels: cin,
                out_channels: cout,
                kernel: 3,
                pad,
                bias: true,
            };
            let y = g.push(conv, &[x]);
            x = g.push(Op::Relu, &[y]);
            g.capture(x, name);
            cin = cout;
            if CAFFE_TRUNK.get(i + 1).is_none_or(|next| next.1 != block) {
                x = g.push(Op::MaxPoolCeil, &[x]);
                g.capture(x, format!("pool{}", block + 1));
                pools.push(x);
            }
        }
        let (fc, k) = (self.fc, self.classes);
        let pair = |axis| self.lrnn.then_some(axis);
        let head = |g: &mut Graph, x: usize, name: &str, shape: (usize, usize, usize), axis: Axis| {
            let conv = Op::Conv {
                name: name.to_string(),
                in_channels: shape.0,
                out_channels: shape.1,
                kernel: shape.2,
                pad: 0,
                bias: true,
            };
            let y = g.push(conv, &[x]);
            let y = match pair(axis) {
                Some(axis) => g.push(
                    Op::ScanPair {
                        prefix: name.to_string(),
                        axis,
                        cell: crate::nn::Cell::Vanilla,
                        hidden: shape.1,
                        projection: super::graph::Projection::Shared,
                        merge: crate::nn::Merge::Mean,
                    },
                    &[y],
                ),
                None => g.push(Op::Relu, &[y]),
            };
            let y = g.push(Op::Dropout(0.5), &[y]);
            g.capture(y, name);
            y
        };
        let fc6 = head(&mut g, pools[4], "fc6", (self.trunk[4], fc, 7), Axis::Horizontal);
        let fc7 = head(&mut g, fc6, "fc7", (fc, fc, 1), Axis::Vertical);
        let score_conv = |g: &mut Graph, x, name: &str, cin| {
            let op = Op::Conv {
                name: name.to_string(),
                in_channels: cin,
                out_channels: k,
                kernel: 1,
                pad: 0,
                bias: true,
            };
            let y = g.push(op, &[x]);
            g.capture(y, name);
            y
        };
        let up = |g: &mut Graph, x, name: &str, kernel, stride| {
            let op =
                Op::ConvTranspose { name: name.to_string(), in_channels: k, out_channels: k, kernel, stride };
            let y = g.push(op, &[x]);
            g.capture(y, name);
            y
        };
        let mut score = score_conv(&mut g, fc7, "score_fr", fc);
        let (last, kernel, stride, offset) = match self.variant {
            CaffeVariant::Fcn32s => ("upscore", 64, 32, 19),
            CaffeVariant::Fcn16s | CaffeVariant::Fcn8s => {
                let mut fuses = vec![("upscore2", "score_pool4", pools[3], self.trunk[3], 5)];
                if self.variant == CaffeVariant::Fcn8s {
                    fuses.push(("upscore_pool4", "score_pool3", pools[2], self.trunk[2], 9));
                }
                for (up_name, score_name, pool, cin, offset) in fuses {
                    let coarse = up(&mut g, score, up_name, 4, 2);
                    let fine = score_conv(&mut g, pool, score_name, cin);
                    let cropped = g.push(Op::Crop { offset }, &[fine, coarse]);
                    g.capture(cropped, format!("{score_name}c"));
                    score = g.push(Op::Add, &[coarse, cropped]);
                }
                match self.variant {
                    CaffeVariant::Fcn16s => ("upscore16", 32, 16, 27),
                    _ => ("upscore8", 16, 8, 31),
                }
            }
        };
        g.capture(score, "score");
        let upscored = up(&mut g, score, last, kernel, stride);
        g.push(Op::Crop { offset }, &[upscored, Graph::INPUT]);
        g
    }
}

/// The `[cin, cout, k, k]` weights of a transposed convolution that upsamples each channel onto
/// itself bilinearly (Long et al.'s `upsample_filt`), zero between different channels.
pub fn bilinear_kernel(cin: usize, cout: usize, k: usize) -> Vec<f32> {
    let factor = k.div_ceil(2) as f64;
    let centre = if k % 2 == 1 { factor - 1.0 } else { factor - 0.5 };
    let f = |i: usize| 1.0 - (i as f64 - centre).abs() / factor;
    let mut w = vec![0f32; cin * cout * k * k];
    for c in 0..cin.min(cout) {
        for y in 0..k {
            for x in 0..k {
                w[((c * cout + c) * k + y) * k + x] = (f(y) * f(x)) as f32;
            }
        }
    }
    w
}

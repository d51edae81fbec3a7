//! The CIFAR-10 networks of the paper (Table 1 and 2; SPEC §5): a 3x3 stem, three stages at
//! 32x32, 16x16 and 8x8 separated by 2x2 max-pools, global pooling, dropout 0.5 and a linear
//! classifier. Each stage is a list of modules (CNN or L-RNN), each fused with its input.
//!
//! Networks are named `net-fusion-cell-pool` as in the paper: `Baseline-CNN-Max`,
//! `A-Concat-RNN-Max`, `A-Forward-GRU-Max`, `A-Concat-GRU-Max`, `A-Sum-GRU-Max`, `B-GRU-Max`,
//! `B-RNN-Max`, `C-GRU-Max`, `D-GRU-Max`, `E-RNN-Max`, `F-RNN-Max`, and the same with `-Avg`.
//! "RNN" is the vanilla cell with LayerNorm.
//!
//! Weight names: `stem.weight`, `stem.bias`; `stage<s>.<i>.cnn.*` (PyTorch names of the CNN module)
//! or `stage<s>.<i>.lrnn.<dir>.*` (SPEC §8), `stage<s>.<i>.proj.weight` for a sum fusion that changes
//! channels; `head.weight`, `head.bias`. Captured maps: every unit's output `stage<s>.<i>` and every
//! L-RNN direction `stage<s>.<i>.lrnn.<dir>`.

use serde::{Deserialize, Serialize};

use super::graph::{Graph, LayerRow, Op};
use crate::nn::{Cell, Fusion, GlobalPool, Merge};

/// One module of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// CNN module of this width.
    Cnn(usize),
    /// L-RNN module of this hidden size.
    Lrnn(usize),
}

/// A module with its fusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    /// The module.
    pub block: Block,
    /// How its output joins its input.
    pub fusion: Fusion,
}

/// The architecture of a named network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CifarArch {
    /// The canonical name, e.g. `E-RNN-Max`.
    pub name: String,
    /// The units of the three stages.
    pub stages: [Vec<Unit>; 3],
    /// The cell of every L-RNN module.
    pub cell: Cell,
    /// The global pooling of the head.
    pub pool: GlobalPool,
}

/// A model description of a CIFAR network (`{"kind": "cifar", "name": "E-RNN-Max"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CifarConfig {
    /// The network's name (see the module docs).
    pub name: String,
    /// Number of classes.
    #[serde(default = "default_classes")]
    pub classes: usize,
    /// Input channels (3 for colour images, 1 for grey ones).
    #[serde(default = "default_in_channels")]
    pub in_channels: usize,
    /// Dropout before the classifier.
    #[serde(default = "default_dropout")]
    pub dropout: f32,
}

fn default_classes() -> usize {
    10
}
fn default_in_channels() -> usize {
    3
}
fn default_dropout() -> f32 {
    0.5
}

impl CifarConfig {
    /// The paper's configuration of the named network (10 classes, colour input, dropout 0.5).
    pub fn named(name: &str) -> Self {
        Self { name: name.to_string(), classes: 10, in_channels: 3, dropout: 0.5 }
    }
}

/// Every network name the paper uses (with `-Max`; `-Avg` works for each too).
pub const NETWORK_NAMES: [&str; 11] = [
    "Baseline-CNN-Max",
    "A-Concat-RNN-Max",
    "A-Forward-GRU-Max",
    "A-Concat-GRU-Max",
    "A-Sum-GRU-Max",
    "B-GRU-Max",
    "B-RNN-Max",
    "C-GRU-Max",
    "D-GRU-Max",
    "E-RNN-Max",
    "F-RNN-Max",
];

fn unit(block: Block, fusion: Fusion) -> Unit {
    Unit { block, fusion }
}

fn repeat(units: &[Unit], n: usize) -> Vec<Unit> {
    units.iter().copied().cycle().take(units.len() * n).collect()
}

impl CifarArch {
    /// Parses a network name.
    ///
    /// # Errors
    /// A message listing the known names when `name` is not one of them.
    pub fn from_name(name: &str) -> std::result::Result<Self, String> {
        use Block::{Cnn, Lrnn};
        use Fusion::{Concat, Forward as Fwd};
        let unknown = || format!("unknown network `{name}`; known: {} (or -Avg)", NETWORK_NAMES.join(", "));
        let parts: Vec<&str> = name.split('-').collect();
        let (pool, body) = match parts.split_last() {
            Some((&"Max", body)) => (GlobalPool::Max, body),
            Some((&"Avg", body)) => (GlobalPool::Avg, body),
            _ => return Err(unknown()),
        };
        let cell_of = |s: &str| match s {
            "RNN" => Some(Cell::VanillaLn),
            "GRU" => Some(Cell::Gru),
            _ => None,
        };
        let (net, fusion, cell) = match body {
            ["Baseline", "CNN"] => ("Baseline", Concat, Cell::VanillaLn),
            ["A", f, c] => {
                let fusion = match *f {
                    "Forward" => Fusion::Forward,
                    "Sum" => Fusion::Sum,
                    "Concat" => Concat,
                    _ => return Err(unknown()),
                };
                ("A", fusion, cell_of(c).ok_or_else(unknown)?)
            }
            [n @ ("B" | "C" | "D" | "E" | "F"), c] => (*n, Concat, cell_of(c).ok_or_else(unknown)?),
            _ => return Err(unknown()),
        };
        let c = |w, f| unit(Cnn(w), f);
        let l = |d, f| unit(Lrnn(d), f);
        let stages: [Vec<Unit>; 3] = match net {
            "Baseline" => [vec![c(64, Concat)], vec![c(128, Concat)], vec![c(256, Concat)]],
            "A" => [vec![c(64, fusion)], vec![c(128, fusion)], vec![l(256, fusion)]],
            "B" => [vec![c(64, Fwd), c(64, Concat)], vec![c(128, Fwd), c(128, Concat)], vec![l(256, Concat)]],
            "C" => [
                vec![c(64, Fwd), c(64, Fwd), c(64, Concat)],
                vec![c(128, Fwd), c(128, Fwd), c(128, Concat)],
                vec![l(256, Concat)],
            ],
            "D" => [
                vec![c(64, Fwd), c(64, Fwd), c(64, Concat), c(128, Fwd), c(128, Fwd), c(128, Concat)],
                vec![c(128, Fwd), c(128, Fwd), c(128, Concat)],
                vec![l(256, Concat)],
            ],
            "E" => {
                [vec![c(64, Concat)], vec![l(128, Fwd), c(128, Concat)], vec![l(128, Fwd), c(128, Concat)]]
            }
            _ => [
                repeat(&[c(64, Concat)], 3),
                repeat(&[l(128, Fwd), c(64, Concat)], 2),
                repeat(&[l(128, Fwd), c(64, Concat)], 2),
            ],
        };
        let canonical = name.to_string();
        Ok(Self { name: canonical, stages, cell, pool })
    }
}

impl CifarArch {
    /// The network as an op graph for `config`: the stem, the stages (a 2x2 max-pool before
    /// every stage but the first), each unit captured as `stage<s>.<i>`, then global pooling,
    /// dropout and the linear classifier `head`.
    pub fn graph(&self, config: &CifarConfig) -> Graph {
        let mut g = Graph::new(config.in_channels);
        let mut x = g.conv(Graph::INPUT, "stem", (config.in_channels, 64, 3), true);
        g.capture(x, "stem");
        g.rows.push(LayerRow {
            name: "stem".into(),
            kind: "conv3x3".into(),
            in_channels: config.in_channels,
            out_channels: 64,
            size: 32,
        });
        let mut channels = 64;
        for (s, units) in self.stages.iter().enumerate() {
            if s > 0 {
                x = g.push(Op::MaxPool2x2, &[x]);
            }
            for (i, u) in units.iter().enumerate() {
                let prefix = format!("stage{}.{i}", s + 1);
                let (y, module_channels, kind) = match u.block {
                    Block::Cnn(w) => {
                        let cnn = format!("{prefix}.cnn");
                        let a = g.push(Op::BatchNormRelu { name: format!("{cnn}.bn1"), channels }, &[x]);
                        let a = g.conv(a, &format!("{cnn}.conv1"), (channels, w, 3), false);
                        let a = g.push(Op::BatchNormRelu { name: format!("{cnn}.bn2"), channels: w }, &[a]);
                        (g.conv(a, &format!("{cnn}.conv2"), (w, w, 3), false), w, format!("CNN({w})"))
                    }
                    Block::Lrnn(d) => {
                        let y = g.lrnn(x, &format!("{prefix}.lrnn"), (channels, d), self.cell, Merge::Sum);
                        (y, d, format!("LRNN({d}, {})", self.cell.name()))
                    }
                };
                let out = match u.fusion {
                    Fusion::Forward => y,
                    Fusion::Sum if channels != module_channels => {
                        let p = g.conv(x, &format!("{prefix}.proj"), (channels, module_channels, 1), false);
                        g.push(Op::Add, &[p, y])
                    }
                    Fusion::Sum => g.push(Op::Add, &[x, y]),
                    Fusion::Concat => g.push(Op::Concat, &[x, y]),
                };
                g.capture(out, &prefix);
                let out_channels = u.fusion.out_channels(channels, module_channels);
                g.rows.push(LayerRow {
                    name: prefix,
                    kind: format!("{kind} {:?}", u.fusion).to_lowercase(),
                    in_channels: channels,
                    out_channels,
                    size: 32 >> s,
                });
                channels = out_channels;
                x = out;
            }
        }
        let pooled = g.push(Op::GlobalPool(self.pool), &[x]);
        let dropped = g.push(Op::Dropout(config.dropout), &[pooled]);
        let head = Op::Linear { name: "head".into(), in_features: channels, out_features: config.classes };
        g.push(head, &[dropped]);
        g.rows.push(LayerRow {
            name: "head".into(),
            kind: format!("global {:?} pool, dropout {}, linear", self.pool, config.dropout).to_lowercase(),
            in_channels: channels,
            out_channels: config.classes,
            size: 1,
        });
        g
    }
}

//! The maps a forward pass captures, on any device: each layer's output and each L-RNN
//! direction's hidden map, named as the model names them (`stage2.0.lrnn.lr`, `conv5`, `fc1.lr`),
//! and the model's output.

use candle_core::Tensor;

/// What a captured map is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    /// A layer's (or unit's) output.
    Layer,
    /// One scan direction's hidden states (`….lr`, `….rl`, `….tb`, `….bt`).
    Direction,
    /// The model's output (class scores).
    Output,
}

/// One map of a forward pass.
#[derive(Debug, Clone)]
pub struct Activation {
    /// Its capture name (`stage2.0.lrnn.lr`, `conv5`, `output`).
    pub name: String,
    /// What it is.
    pub kind: MapKind,
    /// The map, `[B, C, H, W]` (or `[B, classes]` for the output).
    pub tensor: Tensor,
}

/// Whether a capture name is a scan direction's hidden map.
pub fn is_direction(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    matches!(last, "lr" | "rl" | "tb" | "bt")
}

impl Activation {
    /// A captured map, its kind read from its name (a scan direction, else a layer).
    pub fn captured(name: String, tensor: Tensor) -> Self {
        let kind = if is_direction(&name) { MapKind::Direction } else { MapKind::Layer };
        Self { name, kind, tensor }
    }
}

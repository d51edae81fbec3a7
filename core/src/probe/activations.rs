//! Activations: every map one forward pass produces, in forward order, with names and shapes —
//! each layer's output and each L-RNN direction's hidden map (the core's capture mechanism) —
//! and a channel grid to look at them.

use candle_core::Tensor;

use crate::error::Result;
use crate::models::Model;
use crate::nn::{Forward, ScanBackend};

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

/// Runs `model` on `x` in inference mode and returns every captured map in forward order, then
/// the output.
///
/// # Errors
/// Shape mismatches between `x` and the model.
pub fn activations(model: &Model, x: &Tensor, backend: ScanBackend) -> Result<Vec<Activation>> {
    let mut fwd = Forward::eval().capturing().with_backend(backend);
    let y = model.forward(x, &mut fwd)?;
    let mut out: Vec<Activation> = fwd
        .take_captured_in_order()
        .into_iter()
        .map(|(name, tensor)| Activation::captured(name, tensor))
        .collect();
    out.push(Activation { name: "output".into(), kind: MapKind::Output, tensor: y });
    Ok(out)
}

impl Activation {
    /// A captured map, its kind read from its name (a scan direction, else a layer).
    pub fn captured(name: String, tensor: Tensor) -> Self {
        let kind = if is_direction(&name) { MapKind::Direction } else { MapKind::Layer };
        Self { name, kind, tensor }
    }
}

/// Channels of one image's map `[C, H, W]` (row-major `values`) laid out as a grid of
/// `cols` columns with a one-pixel gap, for a heatmap; gaps are NaN (white in
/// [`crate::probe::render::heatmap`]). Returns the grid and its height and width.
pub fn channel_grid(
    values: &[f32],
    (c, h, w): (usize, usize, usize),
    cols: usize,
) -> (Vec<f32>, usize, usize) {
    let cols = cols.clamp(1, c.max(1));
    let rows = c.div_ceil(cols);
    let (gh, gw) = (rows * (h + 1) - 1, cols * (w + 1) - 1);
    let mut grid = vec![f32::NAN; gh * gw];
    for ch in 0..c {
        let (oy, ox) = ((ch / cols) * (h + 1), (ch % cols) * (w + 1));
        for y in 0..h {
            let src = &values[(ch * h + y) * w..(ch * h + y + 1) * w];
            grid[(oy + y) * gw + ox..(oy + y) * gw + ox + w].copy_from_slice(src);
        }
    }
    (grid, gh, gw)
}

//! Activations: every map one forward pass produces, in forward order, with names and shapes —
//! each layer's output and each L-RNN direction's hidden map (the core's capture mechanism) —
//! and a channel grid to look at them.

use candle_core::Tensor;

use crate::error::Result;
use crate::models::capture::{Activation, MapKind};
use crate::models::Model;
use crate::nn::{Forward, ScanBackend};

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

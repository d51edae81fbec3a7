//! Effective receptive fields (Luo et al. 2016; SPEC §7): the gradient of one chosen output unit
//! with respect to the input image, summed over input channels, averaged over a set of inputs,
//! normalised; and the share of its mass inside centred squares, so that ERFs compare by numbers.

use candle_core::{DType, Result, Tensor, Var};

use crate::nn::Forward;

/// How the gradient becomes a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The signed gradient.
    Signed,
    /// Its magnitude `|g|` (Luo et al.).
    #[default]
    Abs,
    /// Only its positive part, `ReLU(g)`.
    Relu,
}

/// The unit whose receptive field is wanted: channel `channel` at `(y, x)` of a `[B, C, H, W]`
/// map (`y`, `x` ignored for a `[B, C]` output such as class scores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    /// Channel (or class).
    pub channel: usize,
    /// Row in the map.
    pub y: usize,
    /// Column in the map.
    pub x: usize,
}

/// An effective receptive field over the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Erf {
    /// `[H, W]` row-major, averaged over the inputs; divided by its largest magnitude, so the
    /// peak is ±1 (all zeros when the gradient vanishes).
    pub map: Vec<f32>,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// The unit's centre in input pixels `(y, x)`.
    pub centre: (f32, f32),
}

/// Computes the ERF of `unit` of the map that `target` returns for an input, averaged over
/// `inputs` (each `[B, C, H, W]`). `target` runs in inference mode.
///
/// # Errors
/// Shape errors, a unit outside the map.
pub fn erf<F>(target: F, inputs: &[Tensor], unit: Unit, mode: Mode) -> Result<Erf>
where
    F: Fn(&Tensor, &mut Forward) -> Result<Tensor>,
{
    erf_with(inputs, unit, mode, |input| {
        let x = Var::from_tensor(&input.to_dtype(DType::F32)?)?;
        let map = target(x.as_tensor(), &mut Forward::eval())?;
        let mask = one_hot(&map, unit)?;
        let dims = map.dims().to_vec();
        let grads = (map * mask)?.sum_all()?.backward()?;
        let Some(g) = grads.get(x.as_tensor()) else {
            candle_core::bail!("erf: the unit does not depend on the input")
        };
        Ok((g.clone(), dims))
    })
}

/// [`erf`] from any source of gradients: `gradient(input)` gives the gradient of the unit (in
/// every image) with respect to `input`, and the dimensions of the unit's map (`[B, C, H, W]`,
/// or `[B, C]`). The GPU's backward pass is one such source.
///
/// # Errors
/// What `gradient` returns; no inputs.
pub fn erf_with<G>(inputs: &[Tensor], unit: Unit, mode: Mode, mut gradient: G) -> Result<Erf>
where
    G: FnMut(&Tensor) -> Result<(Tensor, Vec<usize>)>,
{
    let Some(first) = inputs.first() else { candle_core::bail!("erf: no inputs") };
    let (_, _, h, w) = first.dims4()?;
    let mut acc = vec![0f64; h * w];
    let mut centre = (0.0, 0.0);
    for input in inputs {
        let (g, dims) = gradient(input)?;
        centre = match *dims.as_slice() {
            [_, _, mh, mw] => (
                (unit.y as f32 + 0.5) * h as f32 / mh as f32 - 0.5,
                (unit.x as f32 + 0.5) * w as f32 / mw as f32 - 0.5,
            ),
            _ => ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0),
        };
        let g = match mode {
            Mode::Signed => g,
            Mode::Abs => g.abs()?,
            Mode::Relu => g.relu()?,
        };
        let summed: Vec<f32> = g.sum(0)?.sum(0)?.flatten_all()?.to_vec1()?;
        for (a, v) in acc.iter_mut().zip(summed) {
            *a += f64::from(v);
        }
    }
    let peak = acc.iter().fold(0f64, |m, v| m.max(v.abs()));
    let map = acc.iter().map(|v| if peak > 0.0 { (v / peak) as f32 } else { 0.0 }).collect();
    Ok(Erf { map, height: h, width: w, centre })
}

fn one_hot(map: &Tensor, unit: Unit) -> Result<Tensor> {
    let dims = map.dims().to_vec();
    let mut m = vec![0f32; map.elem_count()];
    match *dims.as_slice() {
        [b, c, h, w] => {
            if unit.channel >= c || unit.y >= h || unit.x >= w {
                candle_core::bail!("erf: unit {unit:?} outside the map {dims:?}");
            }
            for bi in 0..b {
                m[((bi * c + unit.channel) * h + unit.y) * w + unit.x] = 1.0;
            }
        }
        [b, c] => {
            if unit.channel >= c {
                candle_core::bail!("erf: channel {} outside the output {dims:?}", unit.channel);
            }
            for bi in 0..b {
                m[bi * c + unit.channel] = 1.0;
            }
        }
        _ => candle_core::bail!("erf: a map of rank 2 or 4 is needed, got {dims:?}"),
    }
    Tensor::from_vec(m, dims, map.device())?.to_dtype(map.dtype())
}

impl Erf {
    /// The side (in pixels) of the smallest square centred on the unit that holds at least
    /// `fraction` of the ERF's total magnitude (`None` when even the whole image does not, i.e.
    /// the map is all zeros).
    pub fn side_holding(&self, fraction: f64) -> Option<usize> {
        let total: f64 = self.map.iter().map(|v| f64::from(v.abs())).sum();
        if total == 0.0 {
            return None;
        }
        let (cy, cx) = self.centre;
        for side in 1..=2 * self.height.max(self.width) {
            let half = side as f32 / 2.0;
            let mut inside = 0f64;
            for y in 0..self.height {
                for x in 0..self.width {
                    if (y as f32 - cy).abs() < half && (x as f32 - cx).abs() < half {
                        inside += f64::from(self.map[y * self.width + x].abs());
                    }
                }
            }
            if inside >= fraction * total - 1e-12 {
                return Some(side);
            }
        }
        None
    }

    /// Sides holding 20%, 50% and 99% of the mass.
    pub fn mass_sides(&self) -> [Option<usize>; 3] {
        [self.side_holding(0.2), self.side_holding(0.5), self.side_holding(0.99)]
    }

    /// The columns and rows where the ERF is non-zero: `(row range, column range)`.
    pub fn support(&self) -> Option<((usize, usize), (usize, usize))> {
        let mut rows = (usize::MAX, 0);
        let mut cols = (usize::MAX, 0);
        for y in 0..self.height {
            for x in 0..self.width {
                if self.map[y * self.width + x] != 0.0 {
                    rows = (rows.0.min(y), rows.1.max(y));
                    cols = (cols.0.min(x), cols.1.max(x));
                }
            }
        }
        (rows.0 != usize::MAX).then_some((rows, cols))
    }
}

//! Theoretical receptive fields from the architecture (SPEC §7): kernel sizes and strides give
//! `r_out = r_in + (k - 1) · j_in` and `j_out = j_in · s` (Araujo et al. 2019); an L-RNN scan
//! direction reaches the border of the map on its scanned side, a pair the whole row or column,
//! and a whole L-RNN module (both pairs) the whole map.

use crate::nn::geometry::Geom;
use crate::nn::Direction;

/// The receptive field of a unit, in input pixels, per axis; `None` means the whole image along
/// that axis. A side in `open` reaches the border: after a single scan direction the extent is
/// the local window on one side and the rest of the row or column on the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rf {
    /// Extent along rows (height), or `None` for the whole height.
    pub height: Option<usize>,
    /// Extent along columns (width), or `None` for the whole width.
    pub width: Option<usize>,
    /// Distance in input pixels between neighbouring units (the jump).
    pub jump: usize,
    /// Sides the field reaches the border on, `[left, right, top, bottom]` (both sides of an
    /// axis whose extent is `None`; one side after a single scan direction).
    pub open: [bool; 4],
}

impl Rf {
    /// The rows and columns (inclusive ranges) the field covers in an input of `height x width`
    /// pixels around a unit centred at `centre` (`(y, x)` in input pixels): the window, stretched
    /// to the border on every open side, clipped to the input.
    pub fn span(
        &self,
        centre: (f32, f32),
        (height, width): (usize, usize),
    ) -> ((usize, usize), (usize, usize)) {
        let along = |extent: Option<usize>, c: f32, n: usize, (low, high): (bool, bool)| match extent {
            Some(r) => {
                let lo = (c - r as f32 / 2.0 + 0.5).floor().max(0.0) as usize;
                let hi = (lo + r.max(1) - 1).min(n.max(1) - 1);
                (if low { 0 } else { lo.min(n.max(1) - 1) }, if high { n.max(1) - 1 } else { hi })
            }
            None => (0, n.max(1) - 1),
        };
        (
            along(self.height, centre.0, height, (self.open[2], self.open[3])),
            along(self.width, centre.1, width, (self.open[0], self.open[1])),
        )
    }
}

/// The receptive field after a stack of layers (a unit of the last layer).
pub fn receptive_field(layers: &[Geom]) -> Rf {
    let mut rf = Rf { height: Some(1), width: Some(1), jump: 1, open: [false; 4] };
    for g in layers {
        match *g {
            Geom::Window { kernel, stride } => {
                let grow = |r: Option<usize>| r.map(|r| r + (kernel - 1) * rf.jump);
                rf = Rf {
                    height: grow(rf.height),
                    width: grow(rf.width),
                    jump: rf.jump * stride,
                    open: rf.open,
                };
            }
            Geom::RowScan => rf.open[0..2].copy_from_slice(&[true, true]),
            Geom::ColumnScan => rf.open[2..4].copy_from_slice(&[true, true]),
            Geom::Scan(d) => {
                let side = match d {
                    Direction::LeftRight => 0,
                    Direction::RightLeft => 1,
                    Direction::TopBottom => 2,
                    Direction::BottomTop => 3,
                };
                rf.open[side] = true;
            }
        }
        if rf.open[0] && rf.open[1] {
            rf.width = None;
        }
        if rf.open[2] && rf.open[3] {
            rf.height = None;
        }
    }
    rf
}

//! Theoretical receptive fields from the architecture (SPEC §7): kernel sizes and strides give
//! `r_out = r_in + (k - 1) · j_in` and `j_out = j_in · s` (Araujo et al. 2019); an L-RNN scan
//! direction reaches the border of the map on its scanned side, and a whole L-RNN module (both
//! pairs) sees the whole map.

/// One layer's geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Geom {
    /// A convolution or pooling window of side `kernel` and `stride`.
    Window {
        /// Kernel side.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// A horizontal L-RNN pair: every unit sees its whole row of the map.
    RowScan,
    /// A vertical L-RNN pair: every unit sees its whole column.
    ColumnScan,
}

/// The receptive field of a unit, in input pixels, per axis; `None` means the whole image along
/// that axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rf {
    /// Extent along rows (height), or `None` for the whole height.
    pub height: Option<usize>,
    /// Extent along columns (width), or `None` for the whole width.
    pub width: Option<usize>,
    /// Distance in input pixels between neighbouring units (the jump).
    pub jump: usize,
}

/// The receptive field after a stack of layers (a unit of the last layer).
pub fn receptive_field(layers: &[Geom]) -> Rf {
    let mut rf = Rf { height: Some(1), width: Some(1), jump: 1 };
    for g in layers {
        match *g {
            Geom::Window { kernel, stride } => {
                let grow = |r: Option<usize>| r.map(|r| r + (kernel - 1) * rf.jump);
                rf = Rf { height: grow(rf.height), width: grow(rf.width), jump: rf.jump * stride };
            }
            Geom::RowScan => rf.width = None,
            Geom::ColumnScan => rf.height = None,
        }
    }
    rf
}

/// The VGG-16 trunk up to and including `layer` (`conv1_1` … `conv5_3`, `pool1` … `pool5`).
///
/// # Errors
/// An unknown layer name.
pub fn vgg16_trunk(layer: &str) -> Result<Vec<Geom>, String> {
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

//! Each layer's geometry as the receptive-field arithmetic sees it (SPEC §7): a window of some
//! side and stride, or a scan that reaches along its whole row, column or one side of it.
//! [`crate::probe::rf`] folds a stack of them into a receptive field.

use super::Direction;

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
    /// One scan direction alone (a captured direction map): every unit sees the rest of its row
    /// or column on the scanned side, up to the border (`LeftRight`: everything to its left).
    Scan(Direction),
}

//! The vocabulary of the spatial RNNs: the three recurrent cells of the paper (SPEC §1), the two
//! axes and four scan directions, and how a pair's two maps are merged.

use serde::{Deserialize, Serialize};

/// A recurrent cell of a 1D spatial RNN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    /// `h_t = ReLU(U x_t + V h_{t-1} + b)`: the form used when inserting into a pre-trained CNN.
    Vanilla,
    /// Vanilla with LayerNorm before the ReLU (paper App. A.2): what the paper's "RNN" means.
    #[default]
    VanillaLn,
    /// GRU with a ReLU candidate and the reset gate applied before `W_h` (paper App. A.1).
    Gru,
}

impl Cell {
    /// Number of `D`-wide blocks in `U` and `V` (3 for GRU: z, r, h).
    pub fn gates(self) -> usize {
        match self {
            Cell::Vanilla | Cell::VanillaLn => 1,
            Cell::Gru => 3,
        }
    }

    /// The name used in model descriptions.
    pub fn name(self) -> &'static str {
        match self {
            Cell::Vanilla => "vanilla",
            Cell::VanillaLn => "vanilla_ln",
            Cell::Gru => "gru",
        }
    }
}

/// The axis a bidirectional pair scans along (`"horizontal"` or `"vertical"` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    /// Along rows (left↔right): sequences are rows, time is the column index.
    Horizontal,
    /// Along columns (top↔bottom): sequences are columns, time is the row index.
    Vertical,
}

impl Axis {
    /// The pair's two directions: the forward one first, then the reversed one.
    pub fn directions(self) -> [Direction; 2] {
        match self {
            Axis::Horizontal => [Direction::LeftRight, Direction::RightLeft],
            Axis::Vertical => [Direction::TopBottom, Direction::BottomTop],
        }
    }
}

/// One of the four scan directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Left to right along each row.
    LeftRight,
    /// Right to left along each row.
    RightLeft,
    /// Top to bottom along each column.
    TopBottom,
    /// Bottom to top along each column.
    BottomTop,
}

impl Direction {
    /// All four, in the order a module runs them.
    pub const ALL: [Direction; 4] =
        [Direction::LeftRight, Direction::RightLeft, Direction::TopBottom, Direction::BottomTop];

    /// The short name used in weight names and captured maps (`lr`, `rl`, `tb`, `bt`).
    pub fn name(self) -> &'static str {
        match self {
            Direction::LeftRight => "lr",
            Direction::RightLeft => "rl",
            Direction::TopBottom => "tb",
            Direction::BottomTop => "bt",
        }
    }

    /// The direction named `lr`, `rl`, `tb` or `bt`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The axis this direction scans along.
    pub fn axis(self) -> Axis {
        match self {
            Direction::LeftRight | Direction::RightLeft => Axis::Horizontal,
            Direction::TopBottom | Direction::BottomTop => Axis::Vertical,
        }
    }

    /// Whether the scan runs from the last position to the first.
    pub fn reversed(self) -> bool {
        matches!(self, Direction::RightLeft | Direction::BottomTop)
    }
}

/// LayerNorm epsilon, added to the variance inside the square root (PyTorch's default).
pub const LN_EPS: f32 = 1e-5;

/// How the two maps of a pair are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Merge {
    /// `h_a + h_b` (the paper's choice).
    #[default]
    Sum,
    /// `[h_a; h_b]` along channels (doubles the channels).
    Concat,
    /// `(h_a + h_b) / 2`: the merge of an insertion into a pre-trained convolution, so that with
    /// `V = 0` the layer gives exactly the convolution's output (SPEC §4).
    Mean,
}

impl Merge {
    /// Output channels of a merged pair of hidden size `hidden`.
    pub fn channels(self, hidden: usize) -> usize {
        match self {
            Merge::Sum | Merge::Mean => hidden,
            Merge::Concat => 2 * hidden,
        }
    }
}

//! Neural-network building blocks: the spatial scan and its cells, the L-RNN module, the CNN
//! module, fusions, pooling and insertion into pre-trained convolutions.

pub mod batch_norm;
pub mod cell;
pub mod cnn_block;
pub mod conv;
pub mod forward;
pub mod fusion;
pub mod geometry;
pub mod insert;
pub mod kernels;
pub mod layer_rnn;
pub mod pool;
pub mod scan;
pub mod spatial_rnn;

pub use cell::{Axis, Cell, Direction};
pub use cnn_block::CnnBlock;
pub use conv::Conv;
pub use forward::{Forward, Layer};
pub use fusion::{Fused, Fusion};
pub use insert::ConvWithRnn;
pub use kernels::conv::{conv2d, conv2d_with, ConvAlgo};
pub use kernels::scan_op::{scan_fused, ScanOp};
pub use layer_rnn::{LayerRnn, LayerRnnConfig};
pub use pool::{dropout, max_pool2x2, max_pool2x2_ceil, GlobalPool};
pub use scan::{scan, scan_reference, ScanBackend};
pub use spatial_rnn::{merge_maps, Merge, RnnPair};

//! How the layers run fast: candle custom ops with hand-written forward and backward passes on
//! f32 CPU tensors (and the scan on CUDA), each beside the composed candle reference it must
//! match. The paper's layers (`crate::nn`) call these; nothing here knows a layer or a model.
//!
//! - [`pair_op`]: a whole bidirectional pair (projection, both scans, merge) as one op;
//! - [`scan_op`]: the scan alone (CPU and, with the `cuda` feature, CUDA);
//! - [`scan_cpu`]: the scan kernels on slices (three cells, forward and backward);
//! - [`conv`]: convolutions (im2col blocks or Winograd, [`winograd`]);
//! - [`batch_norm`]: BatchNorm + ReLU; [`max_pool`]: 2x2 max pooling;
//! - [`buffers`], [`cpu`]: recycled buffers, borrowing a CPU tensor's f32 data.

/// Sums over a batch (weight gradients) are split into this many fixed groups, each summed in
/// order and then added in order, instead of one part per thread: the result is bit-identical at
/// any thread count, so a seeded training run repeats exactly.
pub const REDUCTION_GROUPS: usize = 16;

pub mod batch_norm;
pub mod buffers;
pub mod conv;
pub(crate) mod cpu;
pub mod max_pool;
pub mod pair_op;
pub mod scan_cpu;
#[cfg(feature = "cuda")]
mod scan_cuda;
pub mod scan_op;
pub(crate) mod winograd;

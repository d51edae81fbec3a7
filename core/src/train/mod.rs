//! Training: optimisers with PyTorch's update rules. The training loop (background thread,
//! events over a channel, checkpoints) is not built yet (issue #3).

pub mod optim;

pub use optim::{Optimizer, OptimizerConfig};

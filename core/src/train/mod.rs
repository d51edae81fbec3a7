//! Training: optimisers with PyTorch's update rules, learning-rate schedules, and the training
//! loop (a named background thread reporting through an event channel, with exact resumption),
//! and checkpoints ([`Checkpoint::open`] opens every kind of model folder).

pub mod checkpoint;
pub mod confusion;
pub mod optim;
pub mod schedule;
pub mod seg;
pub mod trainer;

pub use checkpoint::Checkpoint;
pub use optim::{Optimizer, OptimizerConfig};
pub use schedule::Schedule;
pub use trainer::{spawn, DataSource, EpochStats, Event, RunEnd, TrainConfig, TrainDevice, TrainHandle};

//! `lrnn-core`: Layer Recurrent Neural Networks (Xie, Noble, Zisserman, "Layer Recurrent Neural
//! Networks", ICLR 2017 submission) on candle.
//!
//! - [`nn`]: the 1D spatial RNN in four directions with three cells, the L-RNN module, the CNN
//!   module, fusions, pooling, and insertion into pre-trained convolutions with `V = 0`.
//! - [`models`]: whole models built from a JSON description, with their weights.
//! - [`data`]: image sets and the readers of CIFAR-10, Fashion-MNIST and a generated context task.
//! - [`io`]: safetensors weights and tensors, model descriptions, atomic writes.
//! - [`probe`]: effective and theoretical receptive fields, recurrence spectra.
//! - [`train`]: optimisers, schedules, the training loop, checkpoints.
//! - [`gpu`]: inference through wgpu (WGSL kernels from `shaders/`).
//!
//! Any forward pass can capture every per-direction hidden map (see [`nn::Forward`]).

pub mod data;
pub mod error;
pub mod gpu;
pub mod io;
pub mod models;
pub mod nn;
pub mod probe;
pub mod train;

pub use error::{Error, Result};

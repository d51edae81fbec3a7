//! Inference, gradients and training steps on any GPU through wgpu: the WGSL kernels in `shaders/` (embedded at build time),
//! an adapter choice that prefers real GPUs and accepts a software one, and an executor that
//! runs a model with its weights uploaded once; `profile` times each kernel (`LRNN_GPU_PROFILE=1`). The candle CPU path stays the reference; the
//! tests hold the two to a relative error below 1e-4.

pub mod colour;
pub mod context;
pub mod executor;
pub mod kernels;
pub mod params;
pub mod profile;
pub mod train;

pub use colour::paint;
pub use context::GpuContext;
pub use executor::{
    conv2d, pool2d, upsample, Capture, GpuModel, GpuOutput, GpuSegmentation, GradientSeed, ScanMode,
    STEP_SCAN_HIDDEN,
};
pub use train::{GpuTrainer, StepStats, UpdateRule};

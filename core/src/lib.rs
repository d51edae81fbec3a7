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

/// Keeps freed memory in the process instead of returning it to the system after every large
/// tensor (glibc only; elsewhere nothing changes). Candle allocates a fresh buffer per operation:
/// with glibc's defaults every buffer above 128 KiB is a fresh `mmap`, page-faulted in and
/// unmapped again (with TLB shootdowns on every core), which cost about a fifth of a CIFAR
/// training step on the project's machine. Call once at the start of a program; the `lrnn` CLI,
/// the app and the benchmarks do.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; called before heavy allocation.
        unsafe {
            // Buffers up to 32 MiB (glibc's largest threshold) come from the heap, not mmap…
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            // …and the heap is not trimmed back to the system below 1 GiB of free space…
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            // …nor the other threads' arenas, which glibc trims down to this padding on every
            // large free (halved the page faults of a CIFAR training step).
            libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        }
    }
}

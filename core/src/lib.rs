//! `lrnn-core`: Layer Recurrent Neural Networks (Xie, Noble, Zisserman, "Layer Recurrent Neural
//! Networks", ICLR 2017 submission) on candle.
//!
//! The modules form layers; each may use only those below it (`tests/layers.rs` checks it):
//!
//! 1. [`error`], [`rng`], [`colour`], [`limits`]: the error type, the seeded generator, colour
//!    maps and the VOC palette, the size and memory limits every boundary checks.
//! 2. [`nn`]: the paper's layers (the 1D spatial RNN in four directions with three cells, the
//!    L-RNN module, the CNN module, fusions, pooling, insertion with `V = 0`, layer geometry)
//!    and, in `nn::kernels`, how they run fast (fused CPU ops, the CUDA scan). Beside it,
//!    [`crf`]: the fully connected CRF that post-processes segmentations (permutohedral lattice).
//! 3. [`models`]: descriptions of whole models, each lowered to one op graph
//!    ([`models::graph`]) that every backend walks; the candle walker; captured maps.
//! 4. [`io`]: files: safetensors, model folders, ONNX and `.pth` readers, atomic writes.
//! 5. [`data`]: datasets and their readers; a photo as a model's input ([`data::photo`]).
//! 6. [`gpu`]: the op graph through wgpu (WGSL kernels from `shaders/`).
//! 7. [`probe`] and [`train`]: receptive fields, spectra and pictures; optimisers, the training
//!    loop and checkpoints ([`train::Checkpoint`]).
//!
//! Any forward pass can capture every per-direction hidden map (see [`nn::Forward`]).

pub mod colour;
pub mod crf;
pub mod data;
pub mod error;
pub mod gpu;
pub mod io;
pub mod limits;
pub mod models;
pub mod nn;
pub mod probe;
pub mod rng;
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

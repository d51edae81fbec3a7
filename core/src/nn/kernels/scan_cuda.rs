//! The spatial scan on CUDA: the forward and backward of [`super::scan_op::ScanOp`] for f32 tensors
//! on an NVIDIA GPU (built with the crate's `cuda` feature).
//!
//! The algorithm is the CPU one ([`super::scan_cpu`]) step for step: each step runs one cuBLAS
//! product for all sequences of all directions at once (a strided batched `[N, D] x [D, G·D]`,
//! one batch entry per direction), then one kernel for the cell's elementwise or per-row work
//! (`scan_cuda.cu`, compiled once per process with NVRTC). Scratch rows are allocated once per
//! call, never per step; the backward recomputes each step's pre-activations from `xi`, `V` and
//! the stored states, so the forward keeps nothing but its output.

use std::sync::OnceLock;

use candle_core::cuda_backend::cudarc::cublas::sys::cublasOperation_t;
use candle_core::cuda_backend::cudarc::cublas::{CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDevice, WrapErr};
use candle_core::Result;

use crate::nn::cell::Cell;

/// The kernels' source, compiled at first use.
const SOURCE: &str = include_str!("scan_cuda.cu");
/// The module name under which candle's device caches the compiled kernels.
const MODULE: &str = "lrnn_scan";
/// Threads per block of the elementwise kernels.
const THREADS: u32 = 256;

/// The PTX of [`SOURCE`], compiled once per process.
fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| {
        candle_core::cuda_backend::cudarc::nvrtc::compile_ptx(SOURCE)
            .map(|p| p.to_src())
            .map_err(|e| format!("compiling the scan kernels with NVRTC: {e:?}"))
    })
    .as_deref()
    .map_err(|e| candle_core::Error::Cuda(e.clone().into()))
}

/// The sizes of one scan: `K` directions over `N` sequences of length `T`, hidden size `D`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub cell: Cell,
    pub dirs: usize,
    /// Whether all directions read one input projection (`K_in = 1`).
    pub shared_input: bool,
    pub seqs: usize,
    pub len: usize,
    pub hidden: usize,
    /// Bit `k` set: direction `k` runs from the last position to the first.
    pub rev: u32,
    pub eps: f32,
}

impl Dims {
    fn gd(&self) -> usize {
        self.cell.gates() * self.hidden
    }
    /// The rows of `V` each step first multiplies the previous state by: all of them, or GRU's
    /// `W_z` and `W_r`.
    fn lead(&self) -> usize {
        if self.cell == Cell::Gru {
            2 * self.hidden
        } else {
            self.hidden
        }
    }
    /// Elements of one scratch row block `[K, N, width]`.
    fn rows(&self, width: usize) -> usize {
        self.dirs * self.seqs * width
    }
}

/// Row-major `C[m×n] (rows ldc apart) = op(A)·op(B) + beta·C`, batched over the directions with
/// the given strides. Each operand is (buffer, rows apart, transposed, batch stride); a transposed
/// `A` is stored `[k×m]`, a transposed `B` `[n×k]`.
#[allow(clippy::too_many_arguments)]
fn gemm<A: DevicePtr<f32>, B: DevicePtr<f32>, C: DevicePtrMut<f32>>(
    blas: &CudaBlas,
    batch: usize,
    (m, n, k): (usize, usize, usize),
    (a, lda, ta, sa): (&A, usize, bool, usize),
    (b, ldb, tb, sb): (&B, usize, bool, usize),
    (c, ldc, sc): (&mut C, usize, usize),
    beta: f32,
) -> Result<()> {
    let op = |t: bool| if t { cublasOperation_t::CUBLAS_OP_T } else { cublasOperation_t::CUBLAS_OP_N };
    let int = |v: usize| i32::try_from(v).map_err(|_| candle_core::Error::Cuda("scan: size over i32".into()));
    let long =
        |v: usize| i64::try_from(v).map_err(|_| candle_core::Error::Cuda("scan: size over i64".into()));
    // Column-major cuBLAS sees each row-major matrix transposed: C^T = op(B)^T op(A)^T.
    let cfg = StridedBatchedConfig {
        gemm: GemmConfig {
            transa: op(tb),
            transb: op(ta),
            m: int(n)?,
            n: int(m)?,
            k: int(k)?,
            alpha: 1.0f32,
            lda: int(ldb)?,
            ldb: int(lda)?,
            beta,
            ldc: int(ldc)?,
        },
        batch_size: int(batch)?,
        stride_a: long(sb)?,
        stride_b: long(sa)?,
        stride_c: long(sc)?,
    };
    // SAFETY: callers size every buffer for `batch` entries of the given shapes and strides.
    unsafe { blas.gemm_strided_batched(cfg, b, a, c) }.w()
}

/// The recurrent product of one step for every direction at once: `out[k] = rows[k] · W[k]ᵀ`,
/// with `rows` `[K, N, D]`, `W[k]` the `width` rows `[width, D]` that start at `w` inside direction
/// `k`'s block of `V` (`[G·D, D]` apart), and `out` `[K, N, width]`.
fn times_vt<A: DevicePtr<f32>, B: DevicePtr<f32>, C: DevicePtrMut<f32>>(
    blas: &CudaBlas,
    dims: &Dims,
    rows: &A,
    w: &B,
    width: usize,
    out: &mut C,
) -> Result<()> {
    let (k, n, d) = (dims.dirs, dims.seqs, dims.hidden);
    gemm(
        blas,
        k,
        (n, width, d),
        (rows, d, false, n * d),
        (w, d, true, dims.gd() * d),
        (out, width, n * width),
        0.0,
    )
}

/// One elementwise kernel launch over `total` threads, or one block per row when `row_block`
/// gives the dynamic shared memory in floats.
macro_rules! launch {
    ($dev:expr, $name:expr, $cfg:expr; $($arg:expr),* $(,)?) => {{
        let func = $dev.get_or_load_custom_func($name, MODULE, ptx()?)?;
        let mut builder = func.builder();
        $( builder.arg($arg); )*
        // SAFETY: the kernels read and write within the sizes the caller allocated (see
        // scan_cuda.cu for each one's layout); the arguments match the kernel's signature.
        unsafe { builder.launch($cfg) }.w()?;
    }};
}

fn grid(total: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (total.div_ceil(THREADS as usize) as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One block per row, threads a multiple of 32 up to 256, `floats` of dynamic shared memory.
fn per_row(rows: usize, d: usize, floats: usize) -> LaunchConfig {
    let threads = (d.div_ceil(32) * 32).clamp(32, 256) as u32;
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: (floats * 4) as u32,
    }
}

fn int(v: usize) -> i32 {
    v as i32
}

/// Runs the scan forward: `xi` `[K_in, N, T, G·D]`, `params` = `V` `[K, G·D, D]` then (vanilla +
/// LN) LayerNorm `[K, 2, D]`; returns the states `[K, N, T, D]`.
pub(crate) fn forward(
    dev: &CudaDevice,
    dims: Dims,
    xi: &CudaView<f32>,
    params: &CudaView<f32>,
) -> Result<CudaSlice<f32>> {
    let (d, gd, k, n, t) = (dims.hidden, dims.gd(), dims.dirs, dims.seqs, dims.len);
    let blas = dev.cublas_handle();
    let mut h = dev.alloc_zeros::<f32>(dims.rows(t * d))?;
    let mut hp = dev.alloc_zeros::<f32>(dims.rows(d))?;
    let mut s = dev.alloc_zeros::<f32>(dims.rows(gd))?;
    let (mut zr_sig, mut e) = match dims.cell {
        Cell::Gru => (dev.alloc_zeros::<f32>(dims.rows(2 * d))?, dev.alloc_zeros::<f32>(dims.rows(d))?),
        _ => (dev.alloc_zeros::<f32>(1)?, dev.alloc_zeros::<f32>(1)?),
    };
    let ln = params.slice(k * gd * d..);
    let wh = params.slice((2 * d * d).min(params.len())..);
    let shared = i32::from(dims.shared_input);
    let (ki, ni, ti, di) = (int(k), int(n), int(t), int(d));
    let cfg = grid(dims.rows(d));
    for i in 0..t {
        let first = i == 0;
        let (ii, fi) = (int(i), i32::from(first));
        if !first {
            times_vt(&blas, &dims, &hp, params, dims.lead(), &mut s)?;
        }
        match dims.cell {
            Cell::Vanilla => {
                launch!(dev, "fwd_vanilla", cfg; xi, &shared, &s, &mut hp, &mut h, &ki, &ni, &ti, &di, &ii, &dims.rev, &fi);
            }
            Cell::VanillaLn => {
                launch!(dev, "fwd_ln", per_row(k * n, d, d + 33);
                    xi, &shared, &s, &ln, &mut hp, &mut h, &ki, &ni, &ti, &di, &ii, &dims.rev, &fi, &dims.eps);
            }
            Cell::Gru => {
                launch!(dev, "gru_gates", cfg; xi, &shared, &s, &hp, &mut zr_sig, &mut e, &ki, &ni, &ti, &di, &ii, &dims.rev, &fi);
                if !first {
                    // (s_{t-1} ⊙ r) W_h^T
                    times_vt(&blas, &dims, &e, &wh, d, &mut s)?;
                }
                launch!(dev, "gru_out", cfg; xi, &shared, &s, &zr_sig, &mut hp, &mut h, &ki, &ni, &ti, &di, &ii, &dims.rev, &fi);
            }
        }
    }
    Ok(h)
}

/// Gradients of a scan on the GPU.
pub(crate) struct Grads {
    /// `[K, N, T, G·D]`, one block per direction (the caller sums a shared input's).
    pub dxi: CudaSlice<f32>,
    /// `[K, G·D, D]`.
    pub dv: CudaSlice<f32>,
    /// `[K, N, 2, D]` per-sequence shares of the LayerNorm gradients (vanilla + LN only; the
    /// caller sums over `N`).
    pub dln_rows: Option<CudaSlice<f32>>,
}

/// The backward of [`forward`], given its states `h` and their gradient `grad` (`[K, N, T, D]`).
pub(crate) fn backward(
    dev: &CudaDevice,
    dims: Dims,
    xi: &CudaView<f32>,
    params: &CudaView<f32>,
    h: &CudaView<f32>,
    grad: &CudaView<f32>,
) -> Result<Grads> {
    let (d, gd, k, n, t) = (dims.hidden, dims.gd(), dims.dirs, dims.seqs, dims.len);
    let blas = dev.cublas_handle();
    let mut dxi = dev.alloc_zeros::<f32>(dims.rows(t * gd))?;
    let mut dv = dev.alloc_zeros::<f32>(k * gd * d)?;
    let mut carry = dev.alloc_zeros::<f32>(dims.rows(d))?;
    let mut hp = dev.alloc_zeros::<f32>(dims.rows(d))?;
    let mut g = dev.alloc_zeros::<f32>(dims.rows(d))?;
    let mut s = dev.alloc_zeros::<f32>(dims.rows(gd))?;
    let mut da = dev.alloc_zeros::<f32>(dims.rows(gd))?;
    let mut dln_rows = match dims.cell {
        Cell::VanillaLn => Some(dev.alloc_zeros::<f32>(dims.rows(2 * d))?),
        _ => None,
    };
    let (mut zr_sig, mut e) = match dims.cell {
        Cell::Gru => (dev.alloc_zeros::<f32>(dims.rows(2 * d))?, dev.alloc_zeros::<f32>(dims.rows(d))?),
        _ => (dev.alloc_zeros::<f32>(1)?, dev.alloc_zeros::<f32>(1)?),
    };
    let ln = params.slice(k * gd * d..);
    let wh = params.slice((2 * d * d).min(params.len())..);
    let shared = i32::from(dims.shared_input);
    let (ki, ni, ti, di, gdi) = (int(k), int(n), int(t), int(d), int(gd));
    let cfg = grid(dims.rows(d));
    for i in (0..t).rev() {
        let has_prev = i > 0;
        let (ii, fi) = (int(i), i32::from(!has_prev));
        launch!(dev, "bwd_prep", cfg; h, grad, &carry, &mut hp, &mut g, &ki, &ni, &ti, &di, &ii, &dims.rev);
        // The pre-activations are recomputed as in the forward (the vanilla cell's mask is h > 0).
        if has_prev && dims.cell != Cell::Vanilla {
            times_vt(&blas, &dims, &hp, params, dims.lead(), &mut s)?;
        }
        match dims.cell {
            Cell::Vanilla => {
                launch!(dev, "bwd_vanilla", cfg; h, &g, &mut da, &ki, &ni, &ti, &di, &ii, &dims.rev);
            }
            Cell::VanillaLn => {
                let Some(rows) = dln_rows.as_mut() else {
                    candle_core::bail!("scan: LayerNorm gradient rows missing")
                };
                launch!(dev, "bwd_ln", per_row(k * n, d, 2 * d + 33);
                    xi, &shared, &s, &ln, &g, &mut da, rows, &ki, &ni, &ti, &di, &ii, &dims.rev, &fi, &dims.eps);
            }
            Cell::Gru => {
                launch!(dev, "gru_gates", cfg; xi, &shared, &s, &hp, &mut zr_sig, &mut e, &ki, &ni, &ti, &di, &ii, &dims.rev, &fi);
                if has_prev {
                    times_vt(&blas, &dims, &e, &wh, d, &mut s)?;
                }
                launch!(dev, "gru_bwd1", cfg; xi, &shared, &s, &zr_sig, &hp, &g, &mut da, &ki, &ni, &ti, &di, &ii, &dims.rev, &fi);
                if has_prev {
                    {
                        // d(s ⊙ r) = da_h W_h
                        let da_h = da.slice(2 * d..);
                        gemm(
                            &blas,
                            k,
                            (n, d, d),
                            (&da_h, gd, false, n * gd),
                            (&wh, d, false, gd * d),
                            (&mut s, d, n * d),
                            0.0,
                        )?;
                    }
                    launch!(dev, "gru_bwd2", cfg; &zr_sig, &hp, &g, &s, &mut da, &mut carry, &ki, &ni, &ti, &di, &ii, &dims.rev);
                    // carry += [da_z, da_r] [W_z; W_r]
                    gemm(
                        &blas,
                        k,
                        (n, d, 2 * d),
                        (&da, gd, false, n * gd),
                        (params, d, false, gd * d),
                        (&mut carry, d, n * d),
                        1.0,
                    )?;
                }
            }
        }
        launch!(dev, "scatter_da", grid(dims.rows(gd)); &da, &mut dxi, &ki, &ni, &ti, &gdi, &ii, &dims.rev);
        if has_prev {
            match dims.cell {
                Cell::Vanilla | Cell::VanillaLn => {
                    // carry = da V ; dV += da^T h_{t-1}
                    gemm(
                        &blas,
                        k,
                        (n, d, d),
                        (&da, d, false, n * d),
                        (params, d, false, gd * d),
                        (&mut carry, d, n * d),
                        0.0,
                    )?;
                    gemm(
                        &blas,
                        k,
                        (d, d, n),
                        (&da, d, true, n * d),
                        (&hp, d, false, n * d),
                        (&mut dv, d, gd * d),
                        1.0,
                    )?;
                }
                Cell::Gru => {
                    // dW_zr += [da_z, da_r]^T s_{t-1} ; dW_h += da_h^T (s_{t-1} ⊙ r)
                    gemm(
                        &blas,
                        k,
                        (2 * d, d, n),
                        (&da, gd, true, n * gd),
                        (&hp, d, false, n * d),
                        (&mut dv, d, gd * d),
                        1.0,
                    )?;
                    let da_h = da.slice(2 * d..);
                    let mut dwh = dv.slice_mut(2 * d * d..);
                    gemm(
                        &blas,
                        k,
                        (d, d, n),
                        (&da_h, gd, true, n * gd),
                        (&e, d, false, n * d),
                        (&mut dwh, d, gd * d),
                        1.0,
                    )?;
                }
            }
        }
    }
    Ok(Grads { dxi, dv, dln_rows })
}

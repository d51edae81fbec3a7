//! The spatial scan on the CPU: hand-written forward and backward of the three cells on plain
//! `f32` slices, threaded across rows.
//!
//! Layout: every per-position tensor is channels-last, `[B, H, W, X]` (row-major, contiguous),
//! one block per direction:
//! - `xi`  `[K_in, B, H, W, G·D]`: the input projection `U x + b` of every position for each of
//!   the `K` directions (`K_in = K`), or one projection shared by all directions (`K_in = 1`,
//!   the FCN insertion). `G` is 1 for the vanilla cells and 3 for GRU (blocks z, r, h).
//! - `v`   `[K, G·D, D]`: the recurrence of each direction (GRU: `W_z`, `W_r`, `W_h` stacked).
//! - `ln`  `[K, 2, D]`: LayerNorm gain and bias of each direction (vanilla + LN only).
//! - `h`   `[K, B, H, W, D]`: the hidden state at every position (GRU: the state `s_t`).
//!
//! A horizontal scan runs along each row (`N = B·H` sequences of length `T = W`), a vertical one
//! along each column (`N = B·W` sequences of length `T = H`). A direction whose `reverse` flag is
//! set runs from `t = T-1` down to 0 but stores each state at its own position. Sequences are
//! independent, so the work is split into blocks of sequences, one task per (direction, block)
//! on the rayon pool; each task runs its whole scan with one `[rows, D] x [D, D]` product per
//! step: no synchronisation between steps, no allocation per step.
//!
//! The backward pass recomputes the pre-activations of each step from `xi`, `v` and the stored
//! states (one product per step, as in the forward), so only `xi` and `h` are kept.

use gemm::Parallelism;
use rayon::prelude::*;

use crate::nn::cell::{Axis, Cell};

/// The sizes of one scan call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanDims {
    /// Number of directions `K`.
    pub dirs: usize,
    /// Batch size `B`.
    pub batch: usize,
    /// Feature-map height `H`.
    pub height: usize,
    /// Feature-map width `W`.
    pub width: usize,
    /// Hidden size `D`.
    pub hidden: usize,
    /// The axis every direction scans along.
    pub axis: Axis,
    /// Whether all directions read one shared input projection (`K_in = 1`).
    pub shared_input: bool,
}

impl ScanDims {
    /// Positions per direction, `B·H·W`.
    pub fn positions(&self) -> usize {
        self.batch * self.height * self.width
    }
    /// Number of sequences `N`.
    pub fn seqs(&self) -> usize {
        self.batch * self.per_image()
    }
    /// Sequences per image.
    fn per_image(&self) -> usize {
        match self.axis {
            Axis::Horizontal => self.height,
            Axis::Vertical => self.width,
        }
    }
    /// Sequence length `T`.
    pub fn len(&self) -> usize {
        match self.axis {
            Axis::Horizontal => self.width,
            Axis::Vertical => self.height,
        }
    }
    /// Whether there is nothing to scan.
    pub fn is_empty(&self) -> bool {
        self.positions() == 0 || self.dirs == 0 || self.hidden == 0
    }
    /// Position index (`(b·H + y)·W + x`) of step `t` of sequence `n`.
    fn position(&self, n: usize, t: usize) -> usize {
        let (b, s) = (n / self.per_image(), n % self.per_image());
        match self.axis {
            Axis::Horizontal => (b * self.height + s) * self.width + t,
            Axis::Vertical => (b * self.height + t) * self.width + s,
        }
    }
    /// Elements of the input projection `xi`.
    pub fn xi_len(&self, cell: Cell) -> usize {
        let k_in = if self.shared_input { 1 } else { self.dirs };
        k_in * self.positions() * cell.gates() * self.hidden
    }
    /// Elements of the recurrence `v`.
    pub fn v_len(&self, cell: Cell) -> usize {
        self.dirs * cell.gates() * self.hidden * self.hidden
    }
    /// Elements of the LayerNorm parameters.
    pub fn ln_len(&self) -> usize {
        self.dirs * 2 * self.hidden
    }
    /// Elements of the hidden states `h`.
    pub fn h_len(&self) -> usize {
        self.dirs * self.positions() * self.hidden
    }
}

/// Gradients of a scan with respect to its inputs.
#[derive(Debug, Clone)]
pub struct ScanGrads {
    /// `[K, B, H, W, G·D]`: one block per direction, also when the input is shared (the caller
    /// sums).
    pub dxi: Vec<f32>,
    /// `[K, G·D, D]`.
    pub dv: Vec<f32>,
    /// `[K, 2, D]` (zeros unless the cell is vanilla + LN).
    pub dln: Vec<f32>,
}

/// Everything a forward or backward call reads, checked once.
#[derive(Clone, Copy)]
pub struct ScanArgs<'a> {
    /// The cell.
    pub cell: Cell,
    /// The sizes.
    pub dims: ScanDims,
    /// Per direction: scan from the end of the sequence to its start.
    pub reverse: &'a [bool],
    /// Input projection, see the module docs.
    pub xi: &'a [f32],
    /// Recurrences.
    pub v: &'a [f32],
    /// LayerNorm gain and bias (only read for vanilla + LN).
    pub ln: &'a [f32],
    /// LayerNorm epsilon, added to the variance inside the square root.
    pub eps: f32,
}

impl ScanArgs<'_> {
    fn check(&self) {
        let d = self.dims;
        assert_eq!(self.reverse.len(), d.dirs, "one reverse flag per direction");
        assert_eq!(self.xi.len(), d.xi_len(self.cell), "xi has the wrong length");
        assert_eq!(self.v.len(), d.v_len(self.cell), "v has the wrong length");
        if self.cell == Cell::VanillaLn {
            assert_eq!(self.ln.len(), d.ln_len(), "ln has the wrong length");
        }
    }

    /// The tasks: (direction, first sequence, number of sequences), enough to keep every
    /// thread busy with blocks large enough for an efficient product.
    /// The blocks of sequences the work is split into: `(direction, first sequence, count)`.
    /// Their number does not depend on the thread count, so the backward pass's per-block sums
    /// of dV (added in block order) are bit-identical however many threads run them.
    fn tasks(&self) -> Vec<(usize, usize, usize)> {
        let seqs = self.dims.seqs();
        let blocks_per_dir = super::REDUCTION_GROUPS.div_ceil(self.dims.dirs).max(1);
        let rows = seqs.div_ceil(blocks_per_dir).max(16).min(seqs.max(1));
        let mut out = Vec::new();
        for k in 0..self.dims.dirs {
            let mut n0 = 0;
            while n0 < seqs {
                out.push((k, n0, rows.min(seqs - n0)));
                n0 += rows;
            }
        }
        out
    }

    fn xi_dir(&self, k: usize) -> &[f32] {
        let per_dir = self.dims.positions() * self.cell.gates() * self.dims.hidden;
        let k_in = if self.dims.shared_input { 0 } else { k };
        &self.xi[k_in * per_dir..(k_in + 1) * per_dir]
    }

    fn v_dir(&self, k: usize) -> &[f32] {
        let per_dir = self.cell.gates() * self.dims.hidden * self.dims.hidden;
        &self.v[k * per_dir..(k + 1) * per_dir]
    }

    fn ln_dir(&self, k: usize) -> (&[f32], &[f32]) {
        let d = self.dims.hidden;
        if self.cell == Cell::VanillaLn {
            (&self.ln[2 * k * d..(2 * k + 1) * d], &self.ln[(2 * k + 1) * d..(2 * k + 2) * d])
        } else {
            (&[], &[])
        }
    }

    /// The time steps of direction `k` in scan order.
    fn steps(&self, k: usize) -> impl Iterator<Item = usize> {
        let len = self.dims.len();
        let rev = self.reverse[k];
        (0..len).map(move |i| if rev { len - 1 - i } else { i })
    }
}

/// A `[rows, width]` view of sequences `n0..n0+rows` at one step of a `[B, H, W, width]` tensor.
#[derive(Clone, Copy)]
struct Rows {
    dims: ScanDims,
    n0: usize,
    width: usize,
}

impl Rows {
    fn offsets(self, t: usize, rows: usize) -> impl Iterator<Item = usize> {
        (self.n0..self.n0 + rows).map(move |n| self.dims.position(n, t) * self.width)
    }

    /// The offset of row `r` (of this block) at step `t`.
    fn offset(self, r: usize, t: usize) -> usize {
        self.dims.position(self.n0 + r, t) * self.width
    }

    /// Copies step `t` of the rows out of `src` into the contiguous `dst` (`[rows, width]`).
    fn gather(self, src: &[f32], t: usize, dst: &mut [f32]) {
        let rows = dst.len() / self.width;
        for (o, row) in self.offsets(t, rows).zip(dst.chunks_exact_mut(self.width)) {
            row.copy_from_slice(&src[o..o + self.width]);
        }
    }

    /// Writes the contiguous `src` (`[rows, width]`) into step `t` of the rows of `dst`.
    fn scatter(self, src: &[f32], t: usize, dst: &SharedMut<'_>) {
        let rows = src.len() / self.width;
        for (o, row) in self.offsets(t, rows).zip(src.chunks_exact(self.width)) {
            dst.write(o, row);
        }
    }
}

/// A mutable slice written by several tasks at disjoint places: each task owns the positions of
/// its own sequences of its own direction, which no other task touches.
struct SharedMut<'a> {
    ptr: *mut f32,
    len: usize,
    _life: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: tasks write disjoint ranges (see `forward` and `backward`), and the slice outlives them.
unsafe impl Sync for SharedMut<'_> {}

impl<'a> SharedMut<'a> {
    fn new(s: &'a mut [f32]) -> Self {
        Self { ptr: s.as_mut_ptr(), len: s.len(), _life: std::marker::PhantomData }
    }

    /// The block of direction `k` when the slice holds `dirs` equal blocks.
    fn block(&self, k: usize, dirs: usize) -> SharedMut<'a> {
        let per = self.len / dirs;
        assert!(k < dirs);
        // SAFETY: in bounds by the assert; same provenance.
        SharedMut { ptr: unsafe { self.ptr.add(k * per) }, len: per, _life: std::marker::PhantomData }
    }

    /// Asks the cache for `len` elements from `offset` (see [`prefetch`]).
    fn prefetch(&self, offset: usize, len: usize) {
        if offset + len <= self.len {
            // SAFETY: in bounds by the test; a prefetch reads nothing.
            prefetch(unsafe { std::slice::from_raw_parts(self.ptr.add(offset), len) });
        }
    }

    fn write(&self, offset: usize, src: &[f32]) {
        assert!(offset + src.len() <= self.len, "write out of bounds");
        // SAFETY: in bounds by the assert; callers write disjoint ranges from different tasks.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(offset), src.len()) };
    }
}

/// Runs the scan forward and writes every hidden state into `h` (`[K, B, H, W, D]`).
///
/// # Panics
/// If a slice length does not match `args.dims` (callers check shapes first).
pub fn forward(args: &ScanArgs<'_>, h: &mut [f32]) {
    args.check();
    let dims = args.dims;
    assert_eq!(h.len(), dims.h_len(), "h has the wrong length");
    if dims.is_empty() {
        return;
    }
    let out = SharedMut::new(h);
    args.tasks().into_par_iter().for_each(|(k, n0, m)| {
        forward_block(args, k, n0, m, &out.block(k, dims.dirs));
    });
}

/// Computes the gradients of the scan given the states `h` of [`forward`] (`[K, B, H, W, D]`)
/// and the gradient of the loss with respect to them: `[K, B, H, W, D]`, or one `[B, H, W, D]`
/// block that every direction shares (the directions' maps summed into one output).
///
/// # Panics
/// If a slice length does not match `args.dims`.
pub fn backward(args: &ScanArgs<'_>, h: &[f32], grad_h: &[f32]) -> ScanGrads {
    args.check();
    let dims = args.dims;
    assert_eq!(h.len(), dims.h_len(), "h has the wrong length");
    let per_dir = dims.positions() * dims.hidden;
    let shared_grad = grad_h.len() != dims.h_len();
    assert!(!shared_grad || grad_h.len() == per_dir, "grad_h has the wrong length");
    let gd = args.cell.gates() * dims.hidden;
    // Every element is written by the tasks below (each writes all steps of its sequences).
    let mut dxi = super::buffers::take(dims.dirs * dims.positions() * gd);
    let mut dv = vec![0f32; dims.v_len(args.cell)];
    let mut dln = vec![0f32; dims.ln_len()];
    if dims.is_empty() {
        return ScanGrads { dxi, dv, dln };
    }
    let shared = SharedMut::new(&mut dxi);
    let partials: Vec<(usize, Vec<f32>, Vec<f32>)> = args
        .tasks()
        .into_par_iter()
        .map(|(k, n0, m)| {
            let span = k * per_dir..(k + 1) * per_dir;
            let gspan = if shared_grad { 0..per_dir } else { span.clone() };
            let (dvk, dlnk) =
                backward_block(args, k, n0, m, (&h[span], &grad_h[gspan]), &shared.block(k, dims.dirs));
            (k, dvk, dlnk)
        })
        .collect();
    let v_per_dir = gd * dims.hidden;
    for (k, dvk, dlnk) in partials {
        add_into(&mut dv[k * v_per_dir..(k + 1) * v_per_dir], &dvk);
        if !dlnk.is_empty() {
            add_into(&mut dln[k * 2 * dims.hidden..(k + 1) * 2 * dims.hidden], &dlnk);
        }
    }
    ScanGrads { dxi, dv, dln }
}

fn add_into(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// Scratch buffers of one task, allocated once per call.
struct Scratch {
    /// `[m, G·D]` pre-activations (or their gradients).
    a: Vec<f32>,
    /// `[m, D]` previous state.
    prev: Vec<f32>,
    /// `[m, D]` extra per-step buffer (GRU: `s ⊙ r`; LN: normalised pre-activation).
    extra: Vec<f32>,
    /// `[m]` per-row LayerNorm reciprocal standard deviation.
    rstd: Vec<f32>,
    /// `[m, 2D]` GRU: recurrent part of the gate pre-activations.
    zr: Vec<f32>,
}

impl Scratch {
    fn new(m: usize, d: usize, gates: usize) -> Self {
        Self {
            a: vec![0.0; m * gates * d],
            prev: vec![0.0; m * d],
            extra: vec![0.0; m * d],
            rstd: vec![0.0; m],
            zr: if gates == 3 { vec![0.0; m * 2 * d] } else { Vec::new() },
        }
    }
}

/// Rows a step's loops ask the cache for ahead of reading them. A horizontal scan's rows of one
/// step lie `W·width` floats apart, past what the hardware prefetchers follow (they stay inside
/// a 4 KiB page), so each row started with a miss: 40% of a horizontal forward at the issue's
/// shape.
const PREFETCH_AHEAD: usize = 4;

/// Asks the cache for the lines of `s` (a hint: no effect on results; nothing on other targets).
#[inline(always)]
fn prefetch(s: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in s.chunks(16) {
        // SAFETY: the pointer is inside `s`; a prefetch reads nothing and cannot fault.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast());
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = s;
}

/// `g` where `x > 0`, else 0: a ReLU's gradient without a branch. The sign of a ReLU's input is
/// data, as good as random to a branch predictor; a bit mask keeps the loops that call this
/// vectorised and free of mispredictions (a branch here cost a third of the vanilla backward on
/// random data).
#[inline(always)]
fn pass_if_positive(g: f32, x: f32) -> f32 {
    f32::from_bits(g.to_bits() & u32::from(x > 0.0).wrapping_neg())
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `dst[m×n] = (acc ? dst : 0) + lhs[m×k] · rhs[k×n]`, with `dst` contiguous (row stride `n`)
/// and `lhs`, `rhs` read through (row stride, column stride).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    acc: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    matmul_strided((m, n, k), dst, n, acc, (lhs, lhs_rs, lhs_cs), (rhs, rhs_rs, rhs_cs));
}

/// `dst[m×n] = (acc ? dst : 0) + lhs[m×k] · rhs[k×n]`, with `dst`'s rows `dst_rs` apart (its
/// columns adjacent) and `lhs`, `rhs` given as (slice, row stride, column stride). The one
/// place the crate calls `gemm` (single-threaded: callers parallelise over blocks).
///
/// # Panics
/// When an operand's slice is too short for its shape and strides.
pub(crate) fn matmul_strided(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    acc: bool,
    (lhs, lhs_rs, lhs_cs): (&[f32], usize, usize),
    (rhs, rhs_rs, rhs_cs): (&[f32], usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst_rs >= n && (m - 1) * dst_rs + n <= dst.len(), "matmul: dst too small");
    if k == 0 {
        if !acc {
            for row in dst.chunks_mut(dst_rs).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    assert!((m - 1) * lhs_rs + (k - 1) * lhs_cs < lhs.len(), "matmul: lhs out of bounds");
    assert!((k - 1) * rhs_rs + (n - 1) * rhs_cs < rhs.len(), "matmul: rhs out of bounds");
    // SAFETY: the asserts above keep every element gemm reads or writes inside the slices;
    // `dst` is borrowed mutably and does not alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            acc,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// Per-row LayerNorm of `a` (`[m, d]`): writes the normalised values into `norm` and the
/// reciprocal standard deviations into `rstd`.
fn layer_norm_rows(a: &[f32], d: usize, eps: f32, norm: &mut [f32], rstd: &mut [f32]) {
    for ((row, out), rs) in a.chunks_exact(d).zip(norm.chunks_exact_mut(d)).zip(rstd.iter_mut()) {
        let mean = row.iter().sum::<f32>() / d as f32;
        let var = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / d as f32;
        let r = 1.0 / (var + eps).sqrt();
        *rs = r;
        for (o, x) in out.iter_mut().zip(row) {
            *o = (x - mean) * r;
        }
    }
}

/// The forward scan of sequences `n0..n0+m` of direction `k`; `hk` is that direction's block of
/// `h`.
fn forward_block(args: &ScanArgs<'_>, k: usize, n0: usize, m: usize, hk: &SharedMut<'_>) {
    let dims = args.dims;
    let d = dims.hidden;
    let gd = args.cell.gates() * d;
    let (xrows, hrows) = (Rows { dims, n0, width: gd }, Rows { dims, n0, width: d });
    let xi = args.xi_dir(k);
    let v = args.v_dir(k);
    let (gain, bias) = args.ln_dir(k);
    let mut s = Scratch::new(m, d, args.cell.gates());
    let mut first = true;
    for t in args.steps(k) {
        if args.cell == Cell::Vanilla {
            // One pass per step besides the product: h_t = relu(xi_t + h_{t-1} V^T), read from
            // xi where it lies and written to the state and to h at once.
            if !first {
                matmul((m, d, d), &mut s.a, false, &s.prev, (d, 1), v, (1, d));
            }
            let offsets = xrows.offsets(t, m).zip(hrows.offsets(t, m));
            for (r, (ox, oh)) in offsets.enumerate() {
                if r + PREFETCH_AHEAD < m {
                    let o = xrows.offset(r + PREFETCH_AHEAD, t);
                    prefetch(&xi[o..o + d]);
                    hk.prefetch(hrows.offset(r + PREFETCH_AHEAD, t), d);
                }
                let (x, p) = (&xi[ox..ox + d], &mut s.prev[r * d..(r + 1) * d]);
                if first {
                    p.iter_mut().zip(x).for_each(|(p, x)| *p = x.max(0.0));
                } else {
                    let a = &s.a[r * d..(r + 1) * d];
                    p.iter_mut().zip(x).zip(a).for_each(|((p, x), a)| *p = (x + a).max(0.0));
                }
                hk.write(oh, p);
            }
            first = false;
            continue;
        }
        xrows.gather(xi, t, &mut s.a);
        match args.cell {
            Cell::Vanilla | Cell::VanillaLn => {
                if !first {
                    // a += h_{t-1} V^T
                    matmul((m, d, d), &mut s.a, true, &s.prev, (d, 1), v, (1, d));
                }
                layer_norm_rows(&s.a, d, args.eps, &mut s.extra, &mut s.rstd);
                for (row, nrow) in s.prev.chunks_exact_mut(d).zip(s.extra.chunks_exact(d)) {
                    for j in 0..d {
                        row[j] = (gain[j] * nrow[j] + bias[j]).max(0.0);
                    }
                }
            }
            Cell::Gru => gru_step_forward(&mut s, v, m, d, first),
        }
        hrows.scatter(&s.prev, t, hk);
        first = false;
    }
}

/// The GRU gates of one step: on entry `s.a` holds `xi_t` (`[m, 3D]`) and `s.prev` the state
/// `s_{t-1}` (ignored when `first`); on exit `s.a` holds `[z, r, ĥ]` and `s.extra` holds
/// `s_{t-1} ⊙ r`.
fn gru_gates(s: &mut Scratch, v: &[f32], m: usize, d: usize, first: bool) {
    let gd = 3 * d;
    if !first {
        // [a_z, a_r] += s_{t-1} [W_z; W_r]^T
        matmul((m, 2 * d, d), &mut s.zr, false, &s.prev, (d, 1), v, (1, d));
        for (arow, zrow) in s.a.chunks_exact_mut(gd).zip(s.zr.chunks_exact(2 * d)) {
            for (a, z) in arow[..2 * d].iter_mut().zip(zrow) {
                *a += z;
            }
        }
    }
    for row in s.a.chunks_exact_mut(gd) {
        for x in &mut row[..2 * d] {
            *x = sigmoid(*x);
        }
    }
    if first {
        s.extra.fill(0.0);
    } else {
        // s ⊙ r, then a_h += (s ⊙ r) W_h^T
        for ((e, p), arow) in
            s.extra.chunks_exact_mut(d).zip(s.prev.chunks_exact(d)).zip(s.a.chunks_exact(gd))
        {
            for j in 0..d {
                e[j] = p[j] * arow[d + j];
            }
        }
        matmul((m, d, d), &mut s.zr[..m * d], false, &s.extra, (d, 1), &v[2 * d * d..], (1, d));
        for (arow, hrow) in s.a.chunks_exact_mut(gd).zip(s.zr.chunks_exact(d)) {
            for (a, h) in arow[2 * d..].iter_mut().zip(hrow) {
                *a += h;
            }
        }
    }
    for arow in s.a.chunks_exact_mut(gd) {
        for x in &mut arow[2 * d..] {
            *x = x.max(0.0);
        }
    }
}

/// One GRU step forward: the gates, then `s_t = (1 - z) ⊙ ĥ + z ⊙ s_{t-1}` into `s.prev`.
fn gru_step_forward(s: &mut Scratch, v: &[f32], m: usize, d: usize, first: bool) {
    gru_gates(s, v, m, d, first);
    for (arow, p) in s.a.chunks_exact(3 * d).zip(s.prev.chunks_exact_mut(d)) {
        for j in 0..d {
            let (z, hc) = (arow[j], arow[2 * d + j]);
            let prev = if first { 0.0 } else { p[j] };
            p[j] = (1.0 - z) * hc + z * prev;
        }
    }
}

/// The backward scan of sequences `n0..n0+m` of direction `k`. `hb` and `gb` are that
/// direction's states and their gradients (`[B, H, W, D]`); the input gradient is written into
/// `dxi_k`, the direction's block of `dxi`. Returns this block's share of `dV` and of the
/// LayerNorm gradients.
fn backward_block(
    args: &ScanArgs<'_>,
    k: usize,
    n0: usize,
    m: usize,
    (hb, gb): (&[f32], &[f32]),
    dxi_k: &SharedMut<'_>,
) -> (Vec<f32>, Vec<f32>) {
    let dims = args.dims;
    let d = dims.hidden;
    let gd = args.cell.gates() * d;
    let (xrows, hrows) = (Rows { dims, n0, width: gd }, Rows { dims, n0, width: d });
    let xi = args.xi_dir(k);
    let v = args.v_dir(k);
    let (gain, bias) = args.ln_dir(k);
    let mut dv = vec![0f32; gd * d];
    let mut dln = if args.cell == Cell::VanillaLn { vec![0f32; 2 * d] } else { Vec::new() };
    let mut s = Scratch::new(m, d, args.cell.gates());
    // Gradient reaching h_t from step t+1 (in scan order), and dh_t itself (the vanilla cell
    // reads its gradient in place and needs neither dh nor GRU's `tmp`).
    let mut carry = vec![0f32; m * d];
    let mut dh = if args.cell == Cell::Vanilla { Vec::new() } else { vec![0f32; m * d] };
    let mut tmp = if args.cell == Cell::Gru { vec![0f32; m * 2 * d] } else { Vec::new() };
    let steps: Vec<usize> = args.steps(k).collect();
    for (i, &t) in steps.iter().enumerate().rev() {
        let prev_t = if i > 0 { Some(steps[i - 1]) } else { None };
        match prev_t {
            Some(p) => hrows.gather(hb, p, &mut s.prev),
            None => s.prev.fill(0.0),
        }
        if args.cell == Cell::Vanilla {
            // da = (grad_t + carry) ⊙ 1[h_t > 0] in one pass, reading the gradient and the state
            // where they lie and writing da to the product's operand and to dxi at once.
            for (r, o) in hrows.offsets(t, m).enumerate() {
                if r + PREFETCH_AHEAD < m {
                    let o = hrows.offset(r + PREFETCH_AHEAD, t);
                    prefetch(&gb[o..o + d]);
                    prefetch(&hb[o..o + d]);
                    dxi_k.prefetch(o, d);
                }
                let (g, h, c) = (&gb[o..o + d], &hb[o..o + d], &carry[r * d..(r + 1) * d]);
                let a = &mut s.a[r * d..(r + 1) * d];
                for j in 0..d {
                    a[j] = pass_if_positive(g[j] + c[j], h[j]);
                }
                dxi_k.write(o, a);
            }
        } else {
            hrows.gather(gb, t, &mut dh);
            for (g, c) in dh.iter_mut().zip(&carry) {
                *g += c;
            }
            // The pre-activations are recomputed from xi (the vanilla cell's mask is h > 0).
            xrows.gather(xi, t, &mut s.a);
        }
        match args.cell {
            Cell::Vanilla => {}
            Cell::VanillaLn => {
                if prev_t.is_some() {
                    matmul((m, d, d), &mut s.a, true, &s.prev, (d, 1), v, (1, d));
                }
                layer_norm_rows(&s.a, d, args.eps, &mut s.extra, &mut s.rstd);
                let (dg, db) = dln.split_at_mut(d);
                for r in 0..m {
                    let n = &s.extra[r * d..(r + 1) * d];
                    let g = &dh[r * d..(r + 1) * d];
                    let da = &mut s.a[r * d..(r + 1) * d];
                    let (mut mean_dn, mut mean_dn_n) = (0f32, 0f32);
                    for j in 0..d {
                        let y = gain[j] * n[j] + bias[j];
                        let dy = pass_if_positive(g[j], y);
                        dg[j] += dy * n[j];
                        db[j] += dy;
                        let dn = dy * gain[j];
                        da[j] = dn;
                        mean_dn += dn;
                        mean_dn_n += dn * n[j];
                    }
                    mean_dn /= d as f32;
                    mean_dn_n /= d as f32;
                    let rs = s.rstd[r];
                    for j in 0..d {
                        da[j] = rs * (da[j] - mean_dn - n[j] * mean_dn_n);
                    }
                }
            }
            Cell::Gru => {
                gru_gates(&mut s, v, m, d, prev_t.is_none());
                // s.a = [z, r, ĥ]; s.extra = s_{t-1} ⊙ r (when there is a previous state).
                gru_step_backward(&mut s, &dh, &mut carry, &mut tmp, v, m, d, prev_t.is_some());
            }
        }
        if args.cell != Cell::Vanilla {
            xrows.scatter(&s.a, t, dxi_k);
        }
        if let Some(_p) = prev_t {
            match args.cell {
                Cell::Vanilla | Cell::VanillaLn => {
                    // carry = da V ; dV += da^T h_{t-1}
                    matmul((m, d, d), &mut carry, false, &s.a, (d, 1), v, (d, 1));
                    matmul((d, d, m), &mut dv, true, &s.a, (1, d), &s.prev, (d, 1));
                }
                Cell::Gru => {
                    // dW_zr += [da_z, da_r]^T s_{t-1} ; dW_h += da_h^T (s_{t-1} ⊙ r)
                    matmul((2 * d, d, m), &mut dv[..2 * d * d], true, &s.a, (1, gd), &s.prev, (d, 1));
                    matmul((d, d, m), &mut dv[2 * d * d..], true, &s.a[2 * d..], (1, gd), &s.extra, (d, 1));
                }
            }
        }
    }
    (dv, dln)
}

/// GRU backward for one step. On entry `s.a = [z, r, ĥ]`, `s.prev = s_{t-1}`,
/// `s.extra = s_{t-1} ⊙ r`, `dh` the total gradient of `s_t`. On exit `s.a = [da_z, da_r, da_h]`
/// (gradients of the pre-activations) and `carry` the gradient of `s_{t-1}`.
#[allow(clippy::too_many_arguments)]
fn gru_step_backward(
    s: &mut Scratch,
    dh: &[f32],
    carry: &mut [f32],
    tmp: &mut [f32],
    v: &[f32],
    m: usize,
    d: usize,
    has_prev: bool,
) {
    let gd = 3 * d;
    // Gate gradients first (they need z, r, ĥ), keeping z and r for the carry in `tmp`.
    for r in 0..m {
        let arow = &mut s.a[r * gd..(r + 1) * gd];
        let p = &s.prev[r * d..(r + 1) * d];
        let g = &dh[r * d..(r + 1) * d];
        let keep = &mut tmp[r * 2 * d..(r + 1) * 2 * d];
        for j in 0..d {
            let (z, rg, hc) = (arow[j], arow[d + j], arow[2 * d + j]);
            keep[j] = z;
            keep[d + j] = rg;
            let dz = g[j] * (p[j] - hc);
            arow[j] = dz * z * (1.0 - z);
            arow[2 * d + j] = pass_if_positive(g[j] * (1.0 - z), hc);
        }
    }
    if !has_prev {
        // s_{t-1} = 0: the reset gate has no effect, and nothing flows further back.
        for row in s.a.chunks_exact_mut(gd) {
            row[d..2 * d].fill(0.0);
        }
        return;
    }
    // d(s ⊙ r) = da_h W_h, kept in `carry` for a moment.
    matmul((m, d, d), carry, false, &s.a[2 * d..], (gd, 1), &v[2 * d * d..], (d, 1));
    for r in 0..m {
        let arow = &mut s.a[r * gd..(r + 1) * gd];
        let p = &s.prev[r * d..(r + 1) * d];
        let g = &dh[r * d..(r + 1) * d];
        let keep = &tmp[r * 2 * d..(r + 1) * 2 * d];
        let c = &mut carry[r * d..(r + 1) * d];
        for j in 0..d {
            let (z, rg) = (keep[j], keep[d + j]);
            let dsr = c[j];
            arow[d + j] = dsr * p[j] * rg * (1.0 - rg);
            c[j] = g[j] * z + dsr * rg;
        }
    }
    // carry += [da_z, da_r] [W_z; W_r]
    matmul((m, d, 2 * d), carry, true, &s.a, (gd, 1), v, (d, 1));
}

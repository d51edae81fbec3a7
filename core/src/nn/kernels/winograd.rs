//! 3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, "Fast
//! Algorithms for Convolutional Neural Networks", 2016), on the CPU.
//!
//! Each 2x2 block of outputs is computed from the 4x4 block of inputs around it: the input block
//! and the 3x3 kernel are transformed (`V = Bᵀ d B`, `U = G g Gᵀ`), multiplied element by element
//! and summed over the input channels — which for all blocks at once is 16 matrix products
//! `M_ξ [O, tiles] = U_ξ [O, C] · V_ξ [C, tiles]` — and transformed back (`Y = Aᵀ M A`). That is
//! 16 multiplications per output block and channel pair instead of 36, and the transformed
//! input is 4x the map instead of im2col's 9x. The convolution layer uses it for the forward
//! pass and for the input gradient (a convolution of the output gradient with the kernels
//! rotated by 180° and transposed, padded by `2 - pad`).
//!
//! The transforms are exact in real arithmetic; in f32 the results differ from the direct sum
//! by rounding only (tests hold them to 1e-5 relative against candle's convolution).

use rayon::prelude::*;

use super::scan_cpu::matmul;

/// Output blocks of at least this many tiles go into one set of 16 products (small maps are
/// grouped several images at a time, so that the products are not too thin).
const MIN_TILES: usize = 256;

/// The kernels `[O, C, 3, 3]` transformed to `U [16, O, C]` (`rotated`: as the kernels of the
/// input gradient, `U [16, C, O]` from each kernel rotated by 180°).
pub(crate) fn transform_kernels(w: &[f32], o: usize, c: usize, rotated: bool) -> Vec<f32> {
    let (rows, cols) = if rotated { (c, o) } else { (o, c) };
    let mut u = vec![0f32; 16 * rows * cols];
    for oc in 0..o {
        for ic in 0..c {
            let k = &w[(oc * c + ic) * 9..][..9];
            let g = |y: usize, x: usize| if rotated { k[(2 - y) * 3 + (2 - x)] } else { k[y * 3 + x] };
            // G g: 4 rows of 3.
            let col_of = |x: usize| {
                let (a, b, cc) = (g(0, x), g(1, x), g(2, x));
                [a, 0.5 * (a + b + cc), 0.5 * (a - b + cc), cc]
            };
            let gcols = [col_of(0), col_of(1), col_of(2)];
            let gg: [[f32; 3]; 4] = std::array::from_fn(|y| [gcols[0][y], gcols[1][y], gcols[2][y]]);
            let (r, col) = if rotated { (ic, oc) } else { (oc, ic) };
            for (y, row) in gg.iter().enumerate() {
                let t = [row[0], 0.5 * (row[0] + row[1] + row[2]), 0.5 * (row[0] - row[1] + row[2]), row[2]];
                for (x, v) in t.into_iter().enumerate() {
                    u[((y * 4 + x) * rows + r) * cols + col] = v;
                }
            }
        }
    }
    u
}

/// Sizes of one Winograd convolution.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WinogradDims {
    /// Batch.
    pub b: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub o: usize,
    /// Zero padding on each side (at most 2).
    pub pad: usize,
}

impl WinogradDims {
    fn out(&self) -> (usize, usize) {
        ((self.h + 2 * self.pad).saturating_sub(2), (self.w + 2 * self.pad).saturating_sub(2))
    }
    fn tiles(&self) -> (usize, usize) {
        let (oh, ow) = self.out();
        (oh.div_ceil(2), ow.div_ceil(2))
    }
}

/// `out [B, O, OH, OW] = conv3x3(x [B, C, H, W])` (+ `bias`) with the transformed kernels `u`
/// (`[16, O, C]`, from [`transform_kernels`]).
pub(crate) fn conv3x3(x: &[f32], d: WinogradDims, u: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    let (oh, ow) = d.out();
    let (th, tw) = d.tiles();
    let per_img = th * tw;
    if d.b == 0 || per_img == 0 || d.o == 0 {
        return;
    }
    let (in_len, out_len) = (d.c * d.h * d.w, d.o * oh * ow);
    if d.b < rayon::current_num_threads().max(2) {
        // Fewer images than threads (a photo through an FCN): each image in bands of tile rows,
        // the bands in parallel.
        for img in 0..d.b {
            banded(&x[img * in_len..][..in_len], d, u, bias, &mut out[img * out_len..][..out_len]);
        }
        return;
    }
    let group = MIN_TILES.div_ceil(per_img).clamp(1, d.b);
    out.par_chunks_mut(group * out_len).enumerate().for_each_init(
        || (vec![0f32; 16 * d.c * group * per_img], vec![0f32; 16 * d.o * group * per_img]),
        |(v, m), (gi, dst)| {
            let imgs = dst.len() / out_len;
            let t = imgs * per_img;
            let x = &x[gi * group * in_len..][..imgs * in_len];
            transform_input(x, d, imgs, &mut v[..16 * d.c * t]);
            for xi in 0..16 {
                matmul(
                    (d.o, t, d.c),
                    &mut m[xi * d.o * t..][..d.o * t],
                    false,
                    &u[xi * d.o * d.c..][..d.o * d.c],
                    (d.c, 1),
                    &v[xi * d.c * t..][..d.c * t],
                    (t, 1),
                );
            }
            transform_output(&m[..16 * d.o * t], d, imgs, bias, dst);
        },
    );
}

/// The most tiles per band of [`banded`]: bands small enough that their transformed input and
/// products stay a few MiB (and at least 128, products wide enough to run at full speed).
const BAND_TILES: usize = 1024;

/// One image (`x` `[C, H, W]` → `out` `[O, OH, OW]`) as independent bands of tile rows, computed
/// in parallel: each band transforms the input rows it needs (zero outside the image), runs its
/// 16 products and transforms back its output rows, which are then copied into place.
fn banded(x: &[f32], d: WinogradDims, u: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    let (oh, ow) = d.out();
    let (th, tw) = d.tiles();
    // At least two bands per thread where the map allows, of 128 to BAND_TILES tiles.
    let target = (th * tw).div_ceil(2 * rayon::current_num_threads().max(1)).clamp(128, BAND_TILES);
    let step = (target / tw.max(1)).clamp(1, th);
    let bands: Vec<(usize, usize)> = (0..th).step_by(step).map(|t0| (t0, (t0 + step).min(th))).collect();
    let parts: Vec<Vec<f32>> = bands
        .par_iter()
        .map_init(
            || (Vec::new(), Vec::new()),
            |(v, m): &mut (Vec<f32>, Vec<f32>), &(t0, t1)| {
                let t = (t1 - t0) * tw;
                v.resize(16 * d.c * t, 0.0);
                m.resize(16 * d.o * t, 0.0);
                band_input(x, d, (t0, t1), v, (t, 0));
                for xi in 0..16 {
                    matmul(
                        (d.o, t, d.c),
                        &mut m[xi * d.o * t..][..d.o * t],
                        false,
                        &u[xi * d.o * d.c..][..d.o * d.c],
                        (d.c, 1),
                        &v[xi * d.c * t..][..d.c * t],
                        (t, 1),
                    );
                }
                let rows = (2 * t1).min(oh) - 2 * t0;
                let mut part = vec![0f32; d.o * rows * ow];
                band_output(m, d, (t0, t1), bias, &mut part, (t, 0));
                part
            },
        )
        .collect();
    for (&(t0, t1), part) in bands.iter().zip(parts) {
        let (y0, rows) = (2 * t0, (2 * t1).min(oh) - 2 * t0);
        for oc in 0..d.o {
            out[(oc * oh + y0) * ow..][..rows * ow].copy_from_slice(&part[oc * rows * ow..][..rows * ow]);
        }
    }
}

/// The tile rows `t0..t1` of one image (`x` `[C, H, W]`) into `V [16, C, t]`, from column
/// `col` on: each 4x4 input block (zero outside the image) transformed by `Bᵀ d B`. Works a
/// row of blocks at a time on a zero-padded copy of the rows it needs: `Bᵀ` combines four whole
/// padded rows, `B` then reads each block's four columns, and the blocks of a row are written
/// side by side.
fn band_input(x: &[f32], d: WinogradDims, (t0, t1): (usize, usize), v: &mut [f32], (t, col): (usize, usize)) {
    let tw = d.tiles().1;
    let (nt, pw) = (t1 - t0, 2 * tw + 2);
    let rows = 2 * nt + 2;
    let cols_in = d.w.min(pw - d.pad.min(pw));
    let mut padded = vec![0f32; rows * pw];
    let mut r = vec![0f32; 4 * pw];
    for ch in 0..d.c {
        let plane = &x[ch * d.h * d.w..][..d.h * d.w];
        for lr in 0..rows {
            let dst = &mut padded[lr * pw..][..pw];
            // Padded row `2·t0 + lr` is input row `2·t0 + lr − pad`.
            match (2 * t0 + lr).checked_sub(d.pad).filter(|&y| y < d.h) {
                Some(y) => {
                    dst.fill(0.0);
                    dst[d.pad..][..cols_in].copy_from_slice(&plane[y * d.w..][..cols_in]);
                }
                None => dst.fill(0.0),
            }
        }
        for lty in 0..nt {
            let row = |k: usize| &padded[(2 * lty + k) * pw..][..pw];
            let (d0, d1, d2, d3) = (row(0), row(1), row(2), row(3));
            let (r0, rest) = r.split_at_mut(pw);
            let (r1, rest) = rest.split_at_mut(pw);
            let (r2, r3) = rest.split_at_mut(pw);
            for q in 0..pw {
                r0[q] = d0[q] - d2[q];
                r1[q] = d1[q] + d2[q];
                r2[q] = d2[q] - d1[q];
                r3[q] = d1[q] - d3[q];
            }
            let col0 = col + lty * tw;
            for (i, ri) in r.chunks_exact(pw).enumerate() {
                let out = |j: usize| ((i * 4 + j) * d.c + ch) * t + col0;
                let blocks = ri.windows(4).step_by(2).take(tw);
                for (dst, a) in v[out(0)..][..tw].iter_mut().zip(blocks.clone()) {
                    *dst = a[0] - a[2];
                }
                for (dst, a) in v[out(1)..][..tw].iter_mut().zip(blocks.clone()) {
                    *dst = a[1] + a[2];
                }
                for (dst, a) in v[out(2)..][..tw].iter_mut().zip(blocks.clone()) {
                    *dst = a[2] - a[1];
                }
                for (dst, a) in v[out(3)..][..tw].iter_mut().zip(blocks) {
                    *dst = a[1] - a[3];
                }
            }
        }
    }
}

/// The output rows `2·t0 .. min(2·t1, OH)` of every channel (`part` `[O, rows, OW]`) from the
/// tile rows `t0..t1` of `M [16, O, t]`, held from column `col` on: `Aᵀ m A` per block, cropped
/// to the map, plus the bias. Works a row of blocks at a time: `Aᵀ` combines the 16 products'
/// rows of blocks (contiguous), `A` then gives each output row's pairs of values.
fn band_output(
    m: &[f32],
    d: WinogradDims,
    (t0, t1): (usize, usize),
    bias: Option<&[f32]>,
    part: &mut [f32],
    (t, col): (usize, usize),
) {
    let (oh, ow) = d.out();
    let tw = d.tiles().1;
    let nt = t1 - t0;
    let rows = (2 * t1).min(oh) - 2 * t0;
    let mut s = vec![0f32; 8 * tw];
    for oc in 0..d.o {
        let b = bias.map_or(0.0, |b| b[oc]);
        let plane = &mut part[oc * rows * ow..][..rows * ow];
        for lty in 0..nt {
            let col0 = col + lty * tw;
            let mrow = |xi: usize| &m[(xi * d.o + oc) * t + col0..][..tw];
            for j in 0..4 {
                let (a, bb, c, e) = (mrow(j), mrow(4 + j), mrow(8 + j), mrow(12 + j));
                let (s0, s1) = s.split_at_mut(4 * tw);
                for q in 0..tw {
                    s0[j * tw + q] = a[q] + bb[q] + c[q];
                    s1[j * tw + q] = bb[q] - c[q] - e[q];
                }
            }
            for i in 0..2 {
                let y = 2 * lty + i;
                if y >= rows {
                    continue;
                }
                let si = |j: usize| &s[(i * 4 + j) * tw..][..tw];
                let (a, bb, c, e) = (si(0), si(1), si(2), si(3));
                let dst = &mut plane[y * ow..][..ow];
                let (pairs, last) = dst.split_at_mut(ow / 2 * 2);
                for (q, p) in pairs.chunks_exact_mut(2).enumerate() {
                    p[0] = a[q] + bb[q] + c[q] + b;
                    p[1] = bb[q] - c[q] - e[q] + b;
                }
                if let Some(l) = last.first_mut() {
                    let q = ow / 2;
                    *l = a[q] + bb[q] + c[q] + b;
                }
            }
        }
    }
}

/// `V [16, C, imgs·tiles]` of `imgs` images, each image's tiles after the previous one's.
fn transform_input(x: &[f32], d: WinogradDims, imgs: usize, v: &mut [f32]) {
    let (th, tw) = d.tiles();
    let (in_len, per_img) = (d.c * d.h * d.w, th * tw);
    for img in 0..imgs {
        band_input(&x[img * in_len..][..in_len], d, (0, th), v, (imgs * per_img, img * per_img));
    }
}

/// The outputs of `imgs` images from `M [16, O, imgs·tiles]` (see [`band_output`]).
fn transform_output(m: &[f32], d: WinogradDims, imgs: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    let (oh, ow) = d.out();
    let (th, tw) = d.tiles();
    let (out_len, per_img) = (d.o * oh * ow, th * tw);
    for img in 0..imgs {
        let dst = &mut out[img * out_len..][..out_len];
        band_output(m, d, (0, th), bias, dst, (imgs * per_img, img * per_img));
    }
}

//! The fully connected CRF of Krähenbühl & Koltun ("Efficient Inference in Fully Connected CRFs
//! with Gaussian Edge Potentials", 2011), the post-processing the paper applies after
//! FCN-8s-LRNN on PASCAL VOC.
//!
//! The energy of a labelling is a unary term per pixel, `−log softmax(scores)`, plus a Potts
//! penalty between every pair of pixels with different labels, weighted by two Gaussian kernels:
//! a smoothness kernel over position (σ = 3 px, weight 3) and an appearance kernel over position
//! and colour (σ = 80 px and 13 levels of 0-255, weight 10). Mean-field inference updates
//! `Q(l | pixel)` a given number of times (5); each update filters Q with both kernels on the
//! permutohedral lattice ([`lattice`]), normalised symmetrically (`D^-1/2 K D^-1/2`), exactly as
//! the reference implementation behind pydensecrf does, so labels agree with it.
//!
//! [`DenseCrf::new`] builds the two lattices from the photo (the costly part that depends only
//! on the photo and the kernel widths); [`DenseCrf::infer`] runs the updates for any scores.

pub mod lattice;
mod simd;

use simd::{Simd, WithSimd};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::limits;
use lattice::{Lattice, GROUPS};

/// The CRF's settings (the usual post-processing defaults, as in DeepLab and the paper's code).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CrfParams {
    /// Mean-field updates.
    pub iterations: usize,
    /// Standard deviation of the smoothness kernel, in pixels.
    pub gaussian_sxy: f32,
    /// Weight of the smoothness kernel (its Potts penalty).
    pub gaussian_weight: f32,
    /// Standard deviation in position of the appearance kernel, in pixels.
    pub bilateral_sxy: f32,
    /// Standard deviation in colour of the appearance kernel, in levels of 0-255.
    pub bilateral_srgb: f32,
    /// Weight of the appearance kernel.
    pub bilateral_weight: f32,
}

impl Default for CrfParams {
    fn default() -> Self {
        Self {
            iterations: 5,
            gaussian_sxy: 3.0,
            gaussian_weight: 3.0,
            bilateral_sxy: 80.0,
            bilateral_srgb: 13.0,
            bilateral_weight: 10.0,
        }
    }
}

/// The most mean-field updates a run may ask for.
pub const MAX_ITERATIONS: usize = 1000;

impl CrfParams {
    /// Checks every setting: widths positive and finite, weights finite and not negative, at
    /// most [`MAX_ITERATIONS`] updates.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the setting.
    pub fn validate(&self) -> Result<()> {
        let widths = [
            ("gaussian-sxy", self.gaussian_sxy),
            ("bilateral-sxy", self.bilateral_sxy),
            ("bilateral-srgb", self.bilateral_srgb),
        ];
        for (name, v) in widths {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::Invalid(format!("CRF --{name} {v}: a width must be a positive number")));
            }
        }
        for (name, v) in
            [("gaussian-weight", self.gaussian_weight), ("bilateral-weight", self.bilateral_weight)]
        {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::Invalid(format!("CRF --{name} {v}: a weight must be a number >= 0")));
            }
        }
        if self.iterations > MAX_ITERATIONS {
            return Err(Error::Invalid(format!(
                "CRF --iterations {}: at most {MAX_ITERATIONS}",
                self.iterations
            )));
        }
        Ok(())
    }
}

/// One pairwise term: its lattice, the symmetric normalisation `1 / sqrt(K 1)` and its weight.
#[derive(Debug, Clone)]
struct Kernel {
    lattice: Lattice,
    norm: Vec<f32>,
    weight: f32,
}

impl Kernel {
    fn new(features: &[f32], d: usize, weight: f32) -> Self {
        let lattice = Lattice::new(features, d);
        let n = lattice.points();
        let mut norm = vec![0f32; n];
        lattice.filter(&vec![1f32; n], 1, &mut norm);
        // (in f64, as the reference)
        for v in &mut norm {
            *v = (1.0 / (f64::from(*v) + 1e-20).sqrt()) as f32;
        }
        Self { lattice, norm, weight }
    }
}

/// A CRF over one photo: the lattices of its two kernels, ready for any scores.
#[derive(Debug, Clone)]
pub struct DenseCrf {
    width: usize,
    height: usize,
    params: CrfParams,
    kernels: Vec<Kernel>,
}

/// What inference gives.
#[derive(Debug, Clone, PartialEq)]
pub struct CrfOutput {
    /// The final marginals `Q`, `[classes][height][width]`.
    pub q: Vec<f32>,
    /// The most probable label of every pixel (`[height][width]`).
    pub labels: Vec<u8>,
}

/// The most probable class of each pixel of `[classes][n]` scores (the first on ties).
pub fn argmax_labels(scores: &[f32], classes: usize, n: usize) -> Vec<u8> {
    (0..n)
        .into_par_iter()
        .map(|i| {
            let mut best = 0;
            for l in 1..classes {
                if scores[l * n + i] > scores[best * n + i] {
                    best = l;
                }
            }
            best as u8
        })
        .collect()
}

impl DenseCrf {
    /// Builds the CRF of a photo (`rgb`: `height x width x 3` bytes, row-major).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a photo whose size does not match, an empty or oversized photo,
    /// settings out of range, or a photo whose lattices would not fit the memory limit.
    pub fn new(rgb: &[u8], width: usize, height: usize, params: &CrfParams) -> Result<Self> {
        params.validate()?;
        let n = width
            .checked_mul(height)
            .filter(|&n| n > 0)
            .ok_or_else(|| Error::Invalid(format!("CRF: a photo of {width}x{height} pixels has no pixel")))?;
        if n as u64 > limits::MAX_PHOTO_PIXELS {
            return Err(Error::Invalid(format!(
                "CRF: a photo of {width}x{height} pixels is above the limit of {} pixels",
                limits::MAX_PHOTO_PIXELS
            )));
        }
        if rgb.len() != n * 3 {
            return Err(Error::Invalid(format!(
                "CRF: {} colour bytes for a {width}x{height} photo (expected {})",
                rgb.len(),
                n * 3
            )));
        }
        let bytes =
            Lattice::bytes_at_most(n as u64, 2) + Lattice::bytes_at_most(n as u64, 5) + n as u64 * 7 * 4;
        limits::check_memory(bytes, &format!("the CRF of a {width}x{height} photo"))
            .map_err(Error::Invalid)?;
        // Features divided by their widths, pixel-major, x before y (as the reference).
        let (g, b, c) = (params.gaussian_sxy, params.bilateral_sxy, params.bilateral_srgb);
        let mut position = Vec::with_capacity(n * 2);
        let mut appearance = Vec::with_capacity(n * 5);
        for y in 0..height {
            for x in 0..width {
                position.extend([x as f32 / g, y as f32 / g]);
                let p = &rgb[(y * width + x) * 3..(y * width + x) * 3 + 3];
                appearance.extend([
                    x as f32 / b,
                    y as f32 / b,
                    f32::from(p[0]) / c,
                    f32::from(p[1]) / c,
                    f32::from(p[2]) / c,
                ]);
            }
        }
        let kernels = vec![
            Kernel::new(&position, 2, params.gaussian_weight),
            Kernel::new(&appearance, 5, params.bilateral_weight),
        ];
        Ok(Self { width, height, params: *params, kernels })
    }

    /// The settings it was built with.
    pub fn params(&self) -> &CrfParams {
        &self.params
    }

    /// Mean-field inference from `scores` (`[classes][height][width]` logits of a network):
    /// `progress(done, total)` is called after every update and stops the run when it returns
    /// `false` (then `Ok(None)`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for scores of the wrong length, no class or more than 255, a
    /// non-finite score, or buffers above the memory limit.
    pub fn infer(
        &self,
        scores: &[f32],
        classes: usize,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Option<CrfOutput>> {
        let n = self.width * self.height;
        if classes == 0 || classes > 255 {
            return Err(Error::Invalid(format!("CRF: {classes} classes (1 to 255 are labelled)")));
        }
        if scores.len() != classes * n {
            return Err(Error::Invalid(format!(
                "CRF: {} scores for {classes} classes of a {}x{} photo (expected {})",
                scores.len(),
                self.width,
                self.height,
                classes * n
            )));
        }
        let cp = lattice::padded(classes);
        let buffers: u64 = self.kernels.iter().map(|k| k.lattice.filter_bytes(classes)).sum();
        let arrays = (n * cp + n * classes) as u64 * 4 + n as u64;
        limits::check_memory(buffers + arrays, "CRF inference").map_err(Error::Invalid)?;
        // Every pass runs over the same fixed groups of consecutive pixels (the splat's groups,
        // one task each): a pixel's new Q is splatted into its group's buffers for the next
        // update as soon as it is computed, so Q itself never makes a whole array (it is read
        // from the vertices, never from memory); the last update writes it out.
        let per = n.div_ceil(GROUPS);
        let mut splats: Vec<Vec<Vec<f32>>> = (0..GROUPS)
            .map(|g| self.kernels.iter().map(|k| k.lattice.group_buffer(g, cp)).collect())
            .collect();
        let mut out = vec![0f32; n * classes];
        let mut labels = vec![0u8; n];
        let total = self.params.iterations;
        // Pixel-major, each pixel's classes padded with zeros to a multiple of the filter's
        // blocks: the negated unaries, log softmax (the sum of exponentials in f64); the first
        // Q is their softmax (the reference's `expAndNormalize`).
        let mut neg_unary = vec![0f32; n * cp];
        let finite = {
            let mut sinks = Sink::groups(&mut out, &mut labels, n, classes, per, total == 0);
            neg_unary
                .par_chunks_mut(per * cp)
                .zip(splats.par_iter_mut())
                .zip(sinks.par_iter_mut())
                .enumerate()
                .map(|(g, ((unary, buffers), sink))| {
                    simd::dispatch(UnaryGroup {
                        crf: self,
                        g,
                        first: g * per,
                        scores,
                        classes,
                        unary,
                        buffers,
                        sink,
                    })
                })
                .reduce(|| true, |a, b| a && b)
        };
        if !finite {
            let i = scores.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(Error::Invalid(format!(
                "CRF: score {} of class {} at pixel ({}, {}) is not a finite number",
                scores[i],
                i / n,
                (i % n) % self.width,
                (i % n) / self.width
            )));
        }
        let mut values: Vec<(Vec<f32>, Vec<f32>)> =
            self.kernels.iter().map(|_| (Vec::new(), Vec::new())).collect();
        for it in 0..total {
            // Each kernel's vertex values: the groups' splats of the previous Q, merged and
            // blurred (the kernels side by side).
            self.kernels.par_iter().zip(values.par_iter_mut()).enumerate().for_each(
                |(k, (kernel, (v, next)))| {
                    let refs: Vec<&[f32]> = splats.iter().map(|b| b[k].as_slice()).collect();
                    kernel.lattice.blur(&refs, cp, v, next);
                },
            );
            // One pass over the pixels: the unaries plus both kernels' messages, normalised.
            let last = it + 1 == total;
            let mut sinks = Sink::groups(&mut out, &mut labels, n, classes, per, last);
            let neg_unary = &neg_unary;
            let values = &values;
            splats.par_iter_mut().zip(sinks.par_iter_mut()).enumerate().for_each(|(g, (buffers, sink))| {
                simd::dispatch(UpdateGroup { crf: self, g, neg_unary, values, classes, buffers, sink });
            });
            if !progress(it + 1, total) {
                return Ok(None);
            }
        }
        Ok(Some(CrfOutput { q: out, labels }))
    }
}

impl DenseCrf {
    /// Where pixel `i` (the `j`-th of group `g`) sends its new `q`: into the group's splat
    /// buffers for the next update, or into the output.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn emit<S: Simd>(
        &self,
        simd: S,
        g: usize,
        i: usize,
        q: &[f32],
        buffers: &mut [Vec<f32>],
        sink: &mut Sink<'_>,
        j: usize,
    ) {
        match sink {
            Sink::Splat => {
                for (k, b) in self.kernels.iter().zip(buffers) {
                    k.lattice.splat_point(simd, g, i, q, k.norm[i], b);
                }
            }
            Sink::Out { rows, labels } => {
                let mut best = 0;
                for (l, row) in rows.iter_mut().enumerate() {
                    row[j] = q[l];
                    if q[l] > q[best] {
                        best = l;
                    }
                }
                labels[j] = best as u8;
            }
        }
    }
}

/// The first pass over group `g`'s pixels (from `first` on): their negated unaries (log
/// softmax, the sum of exponentials in f64) and the first Q, their softmax (the reference's
/// `expAndNormalize`). Whether every score was finite.
struct UnaryGroup<'a, 's> {
    crf: &'a DenseCrf,
    g: usize,
    first: usize,
    scores: &'a [f32],
    classes: usize,
    unary: &'a mut [f32],
    buffers: &'a mut [Vec<f32>],
    sink: &'a mut Sink<'s>,
}

impl WithSimd for UnaryGroup<'_, '_> {
    type Output = bool;
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) -> bool {
        let (classes, n) = (self.classes, self.crf.width * self.crf.height);
        let cp = lattice::padded(classes);
        let (mut e, mut q) = (vec![0f32; cp], vec![0f32; cp]);
        let mut finite = true;
        // The scores, class-major, into the pixel-major rows a block of pixels at a time (each
        // class's run of the block read in order), then each pixel of the block.
        const BLOCK: usize = 64;
        for (b, rows) in self.unary.chunks_mut(BLOCK * cp).enumerate() {
            let first = self.first + b * BLOCK;
            for l in 0..classes {
                let run = &self.scores[l * n + first..l * n + first + rows.len() / cp];
                for (u, &v) in rows.chunks_mut(cp).zip(run) {
                    u[l] = v;
                }
            }
            for (k, u) in rows.chunks_mut(cp).enumerate() {
                let (i, j) = (first + k, b * BLOCK + k);
                finite &= u[..classes].iter().all(|v| v.is_finite());
                let max = u[..classes].iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
                simd.exp_shifted(&mut e, u, max);
                // (four running sums: a chain of 21 dependent additions was the pass's
                // slowest part)
                let mut sums = [0f64; 4];
                for (k, &v) in e[..classes].iter().enumerate() {
                    sums[k % 4] += f64::from(v);
                }
                let sum = (sums[0] + sums[1]) + (sums[2] + sums[3]);
                let lse = f64::from(max) + sum.ln();
                for u in &mut u[..classes] {
                    *u = (f64::from(*u) - lse) as f32;
                }
                simd.softmax(&mut q, u, classes);
                self.crf.emit(simd, self.g, i, &q, self.buffers, self.sink, j);
            }
        }
        finite
    }
}

/// One mean-field update over group `g`'s pixels: the unaries plus both kernels' messages
/// (sliced from their blurred vertex values), normalised.
struct UpdateGroup<'a, 's> {
    crf: &'a DenseCrf,
    g: usize,
    neg_unary: &'a [f32],
    values: &'a [(Vec<f32>, Vec<f32>)],
    classes: usize,
    buffers: &'a mut [Vec<f32>],
    sink: &'a mut Sink<'s>,
}

impl WithSimd for UpdateGroup<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) {
        let cp = lattice::padded(self.classes);
        for b in self.buffers.iter_mut() {
            b.fill(0.0);
        }
        let (mut energy, mut q) = (vec![0f32; cp], vec![0f32; cp]);
        for (j, i) in lattice::group_points(self.crf.width * self.crf.height, self.g).enumerate() {
            energy.copy_from_slice(&self.neg_unary[i * cp..(i + 1) * cp]);
            for (k, (v, _)) in self.crf.kernels.iter().zip(self.values) {
                // The Potts message: the reference's `tmp1 -= -w · (n ⊙ K (n ⊙ q))`.
                k.lattice.slice_point(simd, i, v, &mut energy, k.weight * k.norm[i]);
            }
            simd.softmax(&mut q, &energy, self.classes);
            self.crf.emit(simd, self.g, i, &q, self.buffers, self.sink, j);
        }
    }
}

/// What a pass does with the Q it computes, per group of pixels.
enum Sink<'a> {
    /// Splat it for the next update.
    Splat,
    /// Write it out: the group's part of every class's row, and its labels.
    Out { rows: Vec<&'a mut [f32]>, labels: &'a mut [u8] },
}

impl<'a> Sink<'a> {
    /// One sink per group: splats, or (`last`) the groups' parts of the class-major output.
    fn groups(
        out: &'a mut [f32],
        labels: &'a mut [u8],
        n: usize,
        classes: usize,
        per: usize,
        last: bool,
    ) -> Vec<Self> {
        if !last {
            return (0..GROUPS).map(|_| Sink::Splat).collect();
        }
        let mut rows: Vec<Vec<&'a mut [f32]>> = (0..GROUPS).map(|_| Vec::with_capacity(classes)).collect();
        for row in out.chunks_mut(n) {
            let mut parts = row.chunks_mut(per);
            for r in &mut rows {
                r.push(parts.next().unwrap_or_default());
            }
        }
        let mut parts = labels.chunks_mut(per);
        rows.into_iter().map(|rows| Sink::Out { rows, labels: parts.next().unwrap_or_default() }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        for (p, name) in [
            (CrfParams { gaussian_sxy: 0.0, ..CrfParams::default() }, "gaussian-sxy"),
            (CrfParams { bilateral_srgb: f32::NAN, ..CrfParams::default() }, "bilateral-srgb"),
            (CrfParams { bilateral_weight: -1.0, ..CrfParams::default() }, "bilateral-weight"),
            (CrfParams { iterations: 5000, ..CrfParams::default() }, "iterations"),
        ] {
            let e = p.validate().unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
        assert!(DenseCrf::new(&[0; 5], 1, 2, &CrfParams::default()).is_err());
        assert!(DenseCrf::new(&[], 0, 0, &CrfParams::default()).is_err());
    }

    #[test]
    fn no_pairwise_weight_leaves_the_softmax_and_a_smooth_region_takes_its_neighbours_label() {
        // A flat grey photo; class 1 wins everywhere except a 2x2 speck where class 0 wins by a
        // little: with weights 0 the labels are the scores' argmax, with the defaults the
        // speck (surrounded by the same colour) joins its neighbours.
        let (w, h) = (16, 12);
        let rgb = vec![128u8; w * h * 3];
        let n = w * h;
        let mut scores = vec![0f32; 2 * n];
        for i in 0..n {
            scores[n + i] = 1.0;
        }
        for (x, y) in [(7, 5), (8, 5), (7, 6), (8, 6)] {
            scores[y * w + x] = 1.3;
        }
        let none = CrfParams { gaussian_weight: 0.0, bilateral_weight: 0.0, ..CrfParams::default() };
        let crf = DenseCrf::new(&rgb, w, h, &none).unwrap();
        let out = crf.infer(&scores, 2, &mut |_, _| true).unwrap().unwrap();
        assert_eq!(out.labels, argmax_labels(&scores, 2, n));
        let e: f32 = (0.3f32).exp();
        assert!((out.q[5 * w + 7] - e / (e + 1.0)).abs() < 1e-6);
        let crf = DenseCrf::new(&rgb, w, h, &CrfParams::default()).unwrap();
        let out = crf.infer(&scores, 2, &mut |_, _| true).unwrap().unwrap();
        assert!(out.labels.iter().all(|&l| l == 1), "{:?}", out.labels);
        // Q sums to one at every pixel.
        for i in 0..n {
            assert!((out.q[i] + out.q[n + i] - 1.0).abs() < 1e-5);
        }
    }

    /// A photo and noisy scores of `c` classes: four coloured quadrants, each its own class.
    fn quadrants(w: usize, h: usize, c: usize, seed: u64) -> (Vec<u8>, Vec<f32>) {
        let mut rng = crate::rng::Rng(seed);
        let mut rgb = Vec::with_capacity(w * h * 3);
        let mut scores = vec![0f32; c * w * h];
        for y in 0..h {
            for x in 0..w {
                let q = usize::from(x >= w / 2) + 2 * usize::from(y >= h / 2);
                rgb.extend([[200, 30, 30], [30, 200, 30], [30, 30, 200], [220, 220, 40]][q]);
                for l in 0..c {
                    scores[l * w * h + y * w + x] = rng.symmetric(1.5) + if l == q % c { 2.0 } else { 0.0 };
                }
            }
        }
        (rgb, scores)
    }

    #[test]
    fn inference_gives_the_same_bits_at_any_thread_count_and_with_any_simd() {
        let (w, h, c) = (37, 23, 5);
        let (rgb, scores) = quadrants(w, h, c, 11);
        let crf = DenseCrf::new(&rgb, w, h, &CrfParams::default()).unwrap();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| crf.infer(&scores, c, &mut |_, _| true).unwrap().unwrap())
        };
        let one = run(1);
        assert_eq!(one, run(3));
        simd::tests::FORCE_SSE.store(true, std::sync::atomic::Ordering::Relaxed);
        let sse = run(2);
        simd::tests::FORCE_SSE.store(false, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(one, sse);
        // The CRF cleans the noise: most labels are their quadrant's class.
        let right = (0..w * h)
            .filter(|&i| {
                let (x, y) = (i % w, i / w);
                usize::from(one.labels[i]) == (usize::from(x >= w / 2) + 2 * usize::from(y >= h / 2)) % c
            })
            .count();
        assert!(right * 100 >= 95 * w * h, "{right} of {} right", w * h);
    }

    #[test]
    fn tiny_photos_and_no_update_work() {
        // Fewer pixels than splat groups (some groups empty), and zero updates (Q is the
        // softmax of the scores).
        for (w, h) in [(1, 1), (3, 1), (2, 5)] {
            let (rgb, scores) = quadrants(w, h, 3, 2);
            for iterations in [0, 1, 5] {
                let params = CrfParams { iterations, ..CrfParams::default() };
                let crf = DenseCrf::new(&rgb, w, h, &params).unwrap();
                let out = crf.infer(&scores, 3, &mut |_, _| true).unwrap().unwrap();
                let n = w * h;
                for i in 0..n {
                    let total: f32 = (0..3).map(|l| out.q[l * n + i]).sum();
                    assert!((total - 1.0).abs() < 1e-5, "{w}x{h}, {iterations} updates: {total}");
                }
                if iterations == 0 {
                    assert_eq!(out.labels, argmax_labels(&scores, 3, n));
                    let e: Vec<f32> = (0..3).map(|l| scores[l * n].exp()).collect();
                    let s: f32 = e.iter().sum();
                    assert!((out.q[0] - e[0] / s).abs() < 1e-6);
                }
            }
        }
    }

    #[test]
    fn inference_stops_when_asked_and_refuses_bad_scores() {
        let rgb = vec![0u8; 4 * 4 * 3];
        let crf = DenseCrf::new(&rgb, 4, 4, &CrfParams::default()).unwrap();
        let mut calls = 0;
        let stopped = crf
            .infer(&[0.5; 32], 2, &mut |done, total| {
                calls += 1;
                assert_eq!(total, 5);
                done < 2
            })
            .unwrap();
        assert!(stopped.is_none());
        assert_eq!(calls, 2);
        let mut bad = vec![0.5f32; 32];
        bad[17] = f32::NAN;
        let e = crf.infer(&bad, 2, &mut |_, _| true).unwrap_err().to_string();
        assert!(e.contains("class 1 at pixel (1, 0)"), "{e}");
        assert!(crf.infer(&[0.5; 31], 2, &mut |_, _| true).is_err());
        assert!(crf.infer(&[], 0, &mut |_, _| true).is_err());
    }
}

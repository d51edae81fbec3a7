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

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::limits;
use lattice::Lattice;

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
        if let Some(i) = scores.iter().position(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!(
                "CRF: score {} of class {} at pixel ({}, {}) is not a finite number",
                scores[i],
                i / n,
                (i % n) % self.width,
                (i % n) / self.width
            )));
        }
        let cp = lattice::padded(classes);
        let vertices = self.kernels.iter().map(|k| k.lattice.filter_bytes(classes)).max().unwrap_or(0);
        limits::check_memory(vertices + 3 * (n * cp) as u64 * 4, "CRF inference").map_err(Error::Invalid)?;
        // Pixel-major, each pixel's classes padded with zeros to a multiple of the filter's
        // blocks. The negated unaries: log softmax (the sum of exponentials in f64).
        let mut neg_unary = vec![0f32; n * cp];
        neg_unary.par_chunks_mut(cp).with_min_len(256).enumerate().for_each_init(
            || vec![0f32; cp],
            |e, (i, u)| {
                for (l, u) in u[..classes].iter_mut().enumerate() {
                    *u = scores[l * n + i];
                }
                let max = u[..classes].iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
                simd::exp_shifted(e, u, max);
                let sum: f64 = e[..classes].iter().map(|&v| f64::from(v)).sum();
                let lse = f64::from(max) + sum.ln();
                for u in &mut u[..classes] {
                    *u = (f64::from(*u) - lse) as f32;
                }
            },
        );
        let mut q = vec![0f32; n * cp];
        exp_and_normalise(&neg_unary, classes, cp, &mut q);
        let total = self.params.iterations;
        for it in 0..total {
            // Both kernels' vertex values from Q, then one pass over the pixels that adds the
            // messages to the unaries and normalises, writing the new Q in place (the energy
            // never makes a whole array: a third of the memory traffic).
            let values: Vec<Option<Vec<f32>>> =
                self.kernels.iter().map(|k| k.lattice.splat_blur(&q, Some(&k.norm), cp)).collect();
            q.par_chunks_mut(cp).with_min_len(256).enumerate().for_each_init(
                || vec![0f32; cp],
                |energy, (i, qrow)| {
                    energy.copy_from_slice(&neg_unary[i * cp..(i + 1) * cp]);
                    for (k, v) in self.kernels.iter().zip(&values) {
                        if let Some(v) = v {
                            // The Potts message: the reference's `tmp1 -= -w · (n ⊙ K (n ⊙ q))`.
                            k.lattice.slice_point(i, v, cp, energy, k.weight * k.norm[i]);
                        }
                    }
                    softmax_row(energy, classes, qrow);
                },
            );
            if !progress(it + 1, total) {
                return Ok(None);
            }
        }
        drop(neg_unary);
        // Q back to class-major, and its labels.
        let mut out = vec![0f32; n * classes];
        out.par_chunks_mut(n).enumerate().for_each(|(l, row)| {
            for (o, p) in row.iter_mut().zip(q.chunks(cp)) {
                *o = p[l];
            }
        });
        let labels = argmax_labels(&out, classes, n);
        Ok(Some(CrfOutput { q: out, labels }))
    }
}

/// `out = softmax(energy)` over the first `c` of every `cp` values (the reference's
/// `expAndNormalize`); the padding stays zero.
fn exp_and_normalise(energy: &[f32], c: usize, cp: usize, out: &mut [f32]) {
    out.par_chunks_mut(cp)
        .with_min_len(256)
        .zip(energy.par_chunks(cp))
        .for_each(|(o, e)| softmax_row(e, c, o));
}

/// One pixel's `softmax` over its first `c` values; the padding of `out` stays zero.
#[inline]
fn softmax_row(e: &[f32], c: usize, out: &mut [f32]) {
    let max = e[..c].iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    simd::exp_shifted(out, e, max);
    out[c..].fill(0.0);
    let sum: f32 = out[..c].iter().sum();
    for o in &mut out[..c] {
        *o /= sum;
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

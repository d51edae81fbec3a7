//! An in-memory labelled image set (`u8` pixels, NCHW) and its train / validation / test splits.

use candle_core::{Device, Tensor};
use image::{Rgb, RgbImage};

use super::augment::Augment;
use crate::rng::Rng;

/// Labelled images, `u8` pixels in NCHW order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// Pixels, `len · channels · height · width` bytes.
    pub pixels: Vec<u8>,
    /// One label per image.
    pub labels: Vec<u8>,
    /// Channels, height, width.
    pub shape: (usize, usize, usize),
    /// Class names, indexed by label.
    pub classes: Vec<String>,
}

/// The three splits of a dataset.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training images.
    pub train: ImageSet,
    /// Validation images (held out of training, for model selection).
    pub val: ImageSet,
    /// Test images.
    pub test: ImageSet,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.shape.0 * self.shape.1 * self.shape.2
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Images `range` as a new set.
    pub fn slice(&self, range: std::ops::Range<usize>) -> ImageSet {
        let n = self.image_len();
        ImageSet {
            pixels: self.pixels[range.start * n..range.end * n].to_vec(),
            labels: self.labels[range].to_vec(),
            shape: self.shape,
            classes: self.classes.clone(),
        }
    }

    /// Images per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(usize::from(l)) {
                *c += 1;
            }
        }
        counts
    }

    /// Zero-pads every image to `height x width` (centred), e.g. 28x28 to 32x32.
    pub fn pad_to(&self, height: usize, width: usize) -> ImageSet {
        let (c, h, w) = self.shape;
        let (top, left) = ((height.saturating_sub(h)) / 2, (width.saturating_sub(w)) / 2);
        let mut pixels = vec![0u8; self.len() * c * height * width];
        for i in 0..self.len() {
            let src = self.image(i);
            for ch in 0..c {
                for y in 0..h.min(height) {
                    let s = (ch * h + y) * w;
                    let d = ((i * c + ch) * height + y + top) * width + left;
                    pixels[d..d + w.min(width)].copy_from_slice(&src[s..s + w.min(width)]);
                }
            }
        }
        ImageSet {
            pixels,
            labels: self.labels.clone(),
            shape: (c, height, width),
            classes: self.classes.clone(),
        }
    }

    /// The mean image in [0, 1], `[C, H, W]` (subtracted from every input, SPEC §5).
    pub fn mean_image(&self) -> Vec<f32> {
        let n = self.image_len();
        let mut sum = vec![0f64; n];
        for i in 0..self.len() {
            for (s, &p) in sum.iter_mut().zip(self.image(i)) {
                *s += f64::from(p);
            }
        }
        let count = self.len().max(1) as f64 * 255.0;
        sum.into_iter().map(|s| (s / count) as f32).collect()
    }

    /// A batch as tensors: images `[B, C, H, W]` in [0, 1] minus `mean` (if given), augmented when
    /// `augment` is given, and labels `[B]` (u32).
    ///
    /// # Errors
    /// Candle errors.
    pub fn batch(
        &self,
        indices: &[usize],
        mean: Option<&[f32]>,
        augment: Option<(&Augment, &mut Rng)>,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (c, h, w) = self.shape;
        let n = self.image_len();
        let mut data = Vec::with_capacity(indices.len() * n);
        let mut aug = augment;
        for &i in indices {
            let mut img: Vec<f32> = self.image(i).iter().map(|&p| f32::from(p) / 255.0).collect();
            if let Some((a, rng)) = aug.as_mut() {
                img = a.apply(&img, (c, h, w), rng);
            }
            if let Some(m) = mean {
                for (v, m) in img.iter_mut().zip(m) {
                    *v -= m;
                }
            }
            data.extend_from_slice(&img);
        }
        let labels: Vec<u32> = indices.iter().map(|&i| u32::from(self.labels[i])).collect();
        Ok((Tensor::from_vec(data, (indices.len(), c, h, w), device)?, Tensor::new(labels, device)?))
    }

    /// A contact sheet: up to `per_class` images of each class in a row, classes top to bottom.
    pub fn contact_sheet(&self, per_class: usize) -> RgbImage {
        let (c, h, w) = self.shape;
        let gap = 2;
        let rows = self.classes.len().max(1);
        let mut sheet = RgbImage::from_pixel(
            (per_class * (w + gap) + gap) as u32,
            (rows * (h + gap) + gap) as u32,
            Rgb([255, 255, 255]),
        );
        let mut placed = vec![0usize; rows];
        for i in 0..self.len() {
            let class = usize::from(self.labels[i]);
            if class >= rows || placed[class] >= per_class {
                continue;
            }
            let (x0, y0) = (gap + placed[class] * (w + gap), gap + class * (h + gap));
            let img = self.image(i);
            for y in 0..h {
                for x in 0..w {
                    let px = |ch: usize| img[(ch.min(c - 1) * h + y) * w + x];
                    sheet.put_pixel((x0 + x) as u32, (y0 + y) as u32, Rgb([px(0), px(1), px(2)]));
                }
            }
            placed[class] += 1;
        }
        sheet
    }
}

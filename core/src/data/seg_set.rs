//! An in-memory segmentation set: RGB photos (`u8`, NCHW) with one label per pixel (255 means
//! "ignore"), and its train / validation splits. Batches are what the VGG-16 FCNs take: BGR,
//! 0-255 minus the Caffe means ([`crate::io::vgg16::CAFFE_MEAN_BGR`]), optionally flipped left to
//! right together with their labels.

use candle_core::{Device, Tensor};

use super::voc::LabelMap;
use crate::io::vgg16::CAFFE_MEAN_BGR;
use crate::rng::Rng;

/// Photos with per-pixel labels, all of one size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegSet {
    /// RGB pixels, `len · 3 · height · width` bytes (NCHW).
    pub pixels: Vec<u8>,
    /// Labels, `len · height · width` bytes (255: ignored).
    pub labels: Vec<u8>,
    /// Height and width of every image.
    pub size: (usize, usize),
    /// Class names, indexed by label.
    pub classes: Vec<String>,
    /// A name for each image (a VOC id, or `scene-<i>`).
    pub ids: Vec<String>,
}

/// The splits of a segmentation dataset.
#[derive(Debug, Clone)]
pub struct SegSplits {
    /// Training images.
    pub train: SegSet,
    /// Validation images.
    pub val: SegSet,
}

impl SegSet {
    /// An empty set of `height x width` images.
    pub fn new(size: (usize, usize), classes: Vec<String>) -> Self {
        Self { pixels: vec![], labels: vec![], size, classes, ids: vec![] }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Appends one image (`3 · h · w` RGB bytes, NCHW) and its labels (`h · w`).
    ///
    /// # Panics
    /// When the sizes do not match the set's (a programming error).
    pub fn push(&mut self, id: String, rgb: &[u8], labels: &[u8]) {
        let (h, w) = self.size;
        assert_eq!((rgb.len(), labels.len()), (3 * h * w, h * w), "image size differs from the set's");
        self.pixels.extend_from_slice(rgb);
        self.labels.extend_from_slice(labels);
        self.ids.push(id);
    }

    /// The RGB bytes of image `i` (NCHW).
    pub fn image(&self, i: usize) -> &[u8] {
        let n = 3 * self.size.0 * self.size.1;
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The label map of image `i`.
    pub fn label(&self, i: usize) -> LabelMap {
        let n = self.size.0 * self.size.1;
        LabelMap { width: self.size.1, height: self.size.0, labels: self.labels[i * n..(i + 1) * n].to_vec() }
    }

    /// Images `range` as a new set.
    pub fn slice(&self, range: std::ops::Range<usize>) -> SegSet {
        let (h, w) = self.size;
        SegSet {
            pixels: self.pixels[range.start * 3 * h * w..range.end * 3 * h * w].to_vec(),
            labels: self.labels[range.start * h * w..range.end * h * w].to_vec(),
            size: self.size,
            classes: self.classes.clone(),
            ids: self.ids[range].to_vec(),
        }
    }

    /// Image `i` as an RGB picture.
    pub fn rgb_image(&self, i: usize) -> image::RgbImage {
        let (h, w) = self.size;
        let img = self.image(i);
        image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let at = |c: usize| img[(c * h + y as usize) * w + x as usize];
            image::Rgb([at(0), at(1), at(2)])
        })
    }

    /// A batch as tensors: images `[B, 3, H, W]` (BGR minus the Caffe means) and labels
    /// `[B, H, W]` (u32, 255 kept); each image with its labels flipped left to right with
    /// probability 1/2 when `flip` gives a random-number generator.
    ///
    /// # Errors
    /// Candle errors.
    pub fn batch(
        &self,
        indices: &[usize],
        mut flip: Option<&mut Rng>,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (h, w) = self.size;
        let plane = h * w;
        let mut x = Vec::with_capacity(indices.len() * 3 * plane);
        let mut y = Vec::with_capacity(indices.len() * plane);
        for &i in indices {
            let flipped = flip.as_mut().is_some_and(|rng| rng.uniform() < 0.5);
            let col = |c: usize| if flipped { w - 1 - c } else { c };
            let img = self.image(i);
            for (c, rgb) in [2usize, 1, 0].into_iter().enumerate() {
                for r in 0..h {
                    for c2 in 0..w {
                        x.push(f32::from(img[rgb * plane + r * w + col(c2)]) - CAFFE_MEAN_BGR[c]);
                    }
                }
            }
            let labels = &self.labels[i * plane..(i + 1) * plane];
            for r in 0..h {
                for c2 in 0..w {
                    y.push(u32::from(labels[r * w + col(c2)]));
                }
            }
        }
        let b = indices.len();
        Ok((Tensor::from_vec(x, (b, 3, h, w), device)?, Tensor::from_vec(y, (b, h, w), device)?))
    }
}

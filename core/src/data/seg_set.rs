//! An in-memory segmentation set: RGB photos (`u8`, NCHW) with one label per pixel (255 means
//! "ignore"), and its train / validation splits. Batches are what the VGG-16 FCNs take: BGR,
//! 0-255 minus the Caffe means ([`crate::io::vgg16::CAFFE_MEAN_BGR`]), optionally flipped left to
//! right together with their labels, and, in a set stored larger than its batches
//! ([`SegSet::crop`]), cut at a random place (the centre without a random-number generator).

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
    /// The side of the square batches cut from the stored images, when smaller than them:
    /// training crops at random places (the centre for validation).
    pub crop: Option<usize>,
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
        Self { pixels: vec![], labels: vec![], size, classes, ids: vec![], crop: None }
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
            crop: self.crop,
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

    /// The set as evaluation sees it: itself, or (a set stored larger than its crop) every
    /// image and label map cut to its centre crop.
    pub fn centred(&self) -> std::borrow::Cow<'_, SegSet> {
        let (h, w) = self.batch_size();
        if (h, w) == self.size {
            return std::borrow::Cow::Borrowed(self);
        }
        let (sh, sw) = self.size;
        let (y0, x0) = ((sh - h) / 2, (sw - w) / 2);
        let mut out = SegSet::new((h, w), self.classes.clone());
        for i in 0..self.len() {
            let img = self.image(i);
            let rgb: Vec<u8> = (0..3)
                .flat_map(|c| (0..h).flat_map(move |r| (0..w).map(move |col| (c, r, col))))
                .map(|(c, r, col)| img[(c * sh + y0 + r) * sw + x0 + col])
                .collect();
            let labels = &self.labels[i * sh * sw..(i + 1) * sh * sw];
            let lab: Vec<u8> =
                (0..h).flat_map(|r| (0..w).map(move |col| labels[(y0 + r) * sw + x0 + col])).collect();
            out.push(self.ids[i].clone(), &rgb, &lab);
        }
        std::borrow::Cow::Owned(out)
    }

    /// The height and width of the batches: the stored size, or the crop.
    pub fn batch_size(&self) -> (usize, usize) {
        match self.crop {
            Some(c) => (c.min(self.size.0), c.min(self.size.1)),
            None => self.size,
        }
    }

    /// A batch as tensors: images `[B, 3, H, W]` (BGR minus the Caffe means) and labels
    /// `[B, H, W]` (u32, 255 kept), `H x W` being [`SegSet::batch_size`]. Given a random-number
    /// generator, each image is cut at a random place (when the set has a crop) and, with
    /// `flip`, flipped left to right with probability 1/2, its labels alike; without one, the
    /// centre is cut and nothing flipped.
    ///
    /// # Errors
    /// Candle errors.
    pub fn batch(
        &self,
        indices: &[usize],
        mut aug: Option<(bool, &mut Rng)>,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (sh, sw) = self.size;
        let (h, w) = self.batch_size();
        let plane = sh * sw;
        let mut x = Vec::with_capacity(indices.len() * 3 * h * w);
        let mut y = Vec::with_capacity(indices.len() * h * w);
        for &i in indices {
            let (y0, x0, flipped) = match aug.as_mut() {
                Some((flip, rng)) => {
                    let at = |rng: &mut Rng, room: usize| {
                        if room == 0 {
                            0
                        } else {
                            ((rng.uniform() * (room + 1) as f32) as usize).min(room)
                        }
                    };
                    let (y0, x0) = (at(rng, sh - h), at(rng, sw - w));
                    (y0, x0, *flip && rng.uniform() < 0.5)
                }
                None => ((sh - h) / 2, (sw - w) / 2, false),
            };
            let col = |c: usize| x0 + if flipped { w - 1 - c } else { c };
            let img = self.image(i);
            for (c, rgb) in [2usize, 1, 0].into_iter().enumerate() {
                for r in 0..h {
                    for c2 in 0..w {
                        x.push(f32::from(img[rgb * plane + (y0 + r) * sw + col(c2)]) - CAFFE_MEAN_BGR[c]);
                    }
                }
            }
            let labels = &self.labels[i * plane..(i + 1) * plane];
            for r in 0..h {
                for c2 in 0..w {
                    y.push(u32::from(labels[(y0 + r) * sw + col(c2)]));
                }
            }
        }
        let b = indices.len();
        Ok((Tensor::from_vec(x, (b, 3, h, w), device)?, Tensor::from_vec(y, (b, h, w), device)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 6x6 image whose red channel and label both encode the position (`6·y + x`).
    fn positional() -> SegSet {
        let mut set = SegSet::new((6, 6), vec!["a".into()]);
        let pos: Vec<u8> = (0..36).collect();
        let rgb: Vec<u8> = pos.iter().chain(&[0; 36]).chain(&[0; 36]).copied().collect();
        set.push("p".into(), &rgb, &pos);
        set.crop = Some(4);
        set
    }

    #[test]
    fn crops_are_random_in_training_centred_otherwise_and_keep_labels_on_their_pixels() {
        let set = positional();
        let (x, y) = set.batch(&[0], None, &Device::Cpu).unwrap();
        assert_eq!(x.dims(), &[1, 3, 4, 4]);
        let labels: Vec<u32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(labels[0], 7, "the centre 4x4 starts at (1, 1)");
        let mut rng = Rng(3);
        let mut corners = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let (x, y) = set.batch(&[0], Some((true, &mut rng)), &Device::Cpu).unwrap();
            // Red is channel 2 after the BGR reordering; it must equal the label everywhere.
            let red: Vec<f32> = x.get(0).unwrap().get(2).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let labels: Vec<u32> = y.flatten_all().unwrap().to_vec1().unwrap();
            for (r, l) in red.iter().zip(&labels) {
                assert_eq!((r + CAFFE_MEAN_BGR[2]).round() as u32, *l);
            }
            corners.insert(labels[0]);
        }
        // Every top-left corner of a 4x4 window in 6x6 (9 places; flips show others' corners).
        assert!(corners.len() >= 9, "{corners:?}");
        let centred = set.centred();
        assert_eq!(centred.size, (4, 4));
        assert_eq!(centred.label(0).labels[0], 7);
    }
}

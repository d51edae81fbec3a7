//! From a photo to a model's input: the one preprocessing the app, `lrnn probe`, `lrnn predict`
//! and the benchmarks all use, chosen by the model's kind.
//!
//! - VGG-16 FCNs: the photo resized to the input side, **BGR**, 0-255, less the Caffe means
//!   ([`crate::io::vgg16::caffe_input`]), as the ImageNet weights expect;
//! - Long et al.'s FCNs (`FCN-8s-Caffe`, …): the same at the photo's own size, not resized;
//! - every other model: resized, grey for one-channel models, in `[0, 1]`, less the checkpoint's
//!   mean image, or less 0.5 for a model trained without one.

use std::path::Path;

use candle_core::{Device, Tensor};
use image::{imageops::FilterType, RgbImage};

use crate::error::{Error, Result};
use crate::limits;
use crate::models::ModelDesc;

/// Reads a photo of any size, grey, RGBA or 16-bit, as 8-bit RGB.
///
/// # Errors
/// [`Error::File`] naming the file when it is missing, unreadable, not an image, empty, over
/// [`limits::MAX_PHOTO_PIXELS`], or a truncated JPEG (which would decode with a grey bottom).
pub fn read_photo(path: &Path) -> Result<RgbImage> {
    let bytes = crate::io::read_file(path)?;
    // A reader of the bytes with decoding memory bounded (a decompression bomb stops there).
    let open = || {
        let mut reader = image::ImageReader::new(std::io::Cursor::new(&bytes[..]))
            .with_guessed_format()
            .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
        let mut lim = image::Limits::default();
        lim.max_alloc = Some(limits::MAX_PHOTO_PIXELS * 8);
        reader.limits(lim);
        Ok::<_, Error>(reader)
    };
    let reader = open()?;
    if reader.format() == Some(image::ImageFormat::Jpeg) && jpeg_truncated(&bytes) {
        return Err(Error::file(
            path,
            "the JPEG is truncated (it ends before its end-of-image marker): part of the photo is missing",
        ));
    }
    let (w, h) =
        reader.into_dimensions().map_err(|e| Error::file(path, format!("not a readable image: {e}")))?;
    if u64::from(w) * u64::from(h) > limits::MAX_PHOTO_PIXELS {
        return Err(Error::file(
            path,
            format!("{w}x{h} pixels: over the limit of {} megapixels", limits::MAX_PHOTO_PIXELS >> 20),
        ));
    }
    let reader = open()?;
    let img = reader.decode().map_err(|e| Error::file(path, format!("not a readable image: {e}")))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::file(path, "the image is empty"));
    }
    Ok(img.to_rgb8())
}

/// Whether a JPEG stream stops before the end-of-image marker (`FF D9`) that follows its last
/// scan (`FF DA`): a download cut short. Entropy-coded data never holds `FF D9` (a data `FF` is
/// followed by `00`), so the last scan's end is found reliably; bytes after it are allowed.
pub fn jpeg_truncated(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_scan {
        Some(at) => !bytes[at..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => true,
    }
}

/// A photo prepared for a model.
#[derive(Debug, Clone)]
pub struct ModelInput {
    /// `[1, C, size, size]` on the CPU (`[1, 3, H, W]` at the photo's own size for a model that
    /// runs photos at their own size, [`ModelDesc::own_size`]).
    pub tensor: Tensor,
    /// What the model sees, for people: the photo resized (and grey for a grey model), RGB.
    pub seen: RgbImage,
}

/// `photo` as the input of a model described by `desc`, at `size x size` pixels (at its own size
/// for Long et al.'s FCNs, `size` then unused), centred with `mean` (flattened
/// `[C, size, size]`, a checkpoint's mean image; ignored by FCNs).
///
/// # Errors
/// [`Error::Invalid`] when `size` is 0 or `mean` is not of the input's size.
pub fn photo_input(
    photo: &RgbImage,
    desc: &ModelDesc,
    size: usize,
    mean: Option<&[f32]>,
) -> Result<ModelInput> {
    if size == 0 {
        return Err(Error::Invalid("the input size must be at least 1 pixel".into()));
    }
    limits::check_size(size, limits::MAX_SIDE, "the input size").map_err(Error::Invalid)?;
    if desc.own_size() {
        // Long et al.'s FCNs: the photo at its own size, BGR less the Caffe means.
        let (w, h) = (photo.width() as usize, photo.height() as usize);
        limits::check_size(h.max(w), limits::MAX_SIDE, "a photo side of").map_err(Error::Invalid)?;
        let plane = w * h;
        let mut data = vec![0f32; 3 * plane];
        for (i, p) in photo.pixels().enumerate() {
            for (c, rgb_index) in [2usize, 1, 0].into_iter().enumerate() {
                data[c * plane + i] = f32::from(p[rgb_index]) - crate::io::vgg16::CAFFE_MEAN_BGR[c];
            }
        }
        let tensor = Tensor::from_vec(data, (1, 3, h, w), &Device::Cpu)?;
        return Ok(ModelInput { tensor, seen: photo.clone() });
    }
    let side = size as u32;
    let resized = image::imageops::resize(photo, side, side, FilterType::Triangle);
    if let ModelDesc::Fcn(_) = desc {
        // Already at the input's size: `caffe_input` only reorders and centres it.
        let tensor = crate::io::vgg16::caffe_input(&image::DynamicImage::ImageRgb8(resized.clone()), size)?;
        return Ok(ModelInput { tensor, seen: resized });
    }
    let channels = desc.in_channels();
    let n = size * size;
    let (mut data, seen): (Vec<f32>, RgbImage) = if channels == 1 {
        let g = image::DynamicImage::ImageRgb8(resized).to_luma8();
        let seen = image::DynamicImage::ImageLuma8(g.clone()).to_rgb8();
        (g.pixels().map(|p| f32::from(p[0]) / 255.0).collect(), seen)
    } else if channels == 3 {
        let mut planes = vec![0f32; 3 * n];
        for (i, p) in resized.pixels().enumerate() {
            for c in 0..3 {
                planes[c * n + i] = f32::from(p[c]) / 255.0;
            }
        }
        (planes, resized)
    } else {
        return Err(Error::Invalid(format!(
            "{} takes {channels}-channel inputs: a photo gives 1 (grey) or 3 (colour)",
            desc.display_name()
        )));
    };
    match mean {
        Some(m) if m.iter().any(|v| !v.is_finite()) => {
            return Err(Error::Invalid(
                "the model's mean image holds NaN or infinite values: the checkpoint's mean is damaged"
                    .into(),
            ))
        }
        Some(m) if m.len() == data.len() => data.iter_mut().zip(m).for_each(|(v, m)| *v -= m),
        Some(m) => {
            return Err(Error::Invalid(format!(
                "the model's mean image has {} values, a {channels}x{size}x{size} input has {}: \
                 use the size the model was trained at",
                m.len(),
                data.len()
            )))
        }
        None => data.iter_mut().for_each(|v| *v -= 0.5),
    }
    Ok(ModelInput { tensor: Tensor::from_vec(data, (1, channels, size, size), &Device::Cpu)?, seen })
}

//! From a photo to a model's input: the one preprocessing the app, `lrnn probe`, `lrnn predict`
//! and the benchmarks all use, chosen by the model's kind.
//!
//! - VGG-16 FCNs: the photo resized to the input side, **BGR**, 0-255, less the Caffe means
//!   ([`crate::io::vgg16::caffe_input`]), as the ImageNet weights expect;
//! - every other model: resized, grey for one-channel models, in `[0, 1]`, less the checkpoint's
//!   mean image, or less 0.5 for a model trained without one.

use std::path::Path;

use candle_core::{Device, Tensor};
use image::{imageops::FilterType, RgbImage};

use crate::error::{Error, Result};
use crate::models::ModelDesc;

/// Reads a photo of any size, grey, RGBA or 16-bit, as 8-bit RGB.
///
/// # Errors
/// [`Error::File`] naming the file when it is missing, unreadable, not an image or empty.
pub fn read_photo(path: &Path) -> Result<RgbImage> {
    let img = image::ImageReader::open(path)
        .map_err(|e| Error::file(path, format!("cannot open: {e}")))?
        .with_guessed_format()
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?
        .decode()
        .map_err(|e| Error::file(path, format!("not a readable image: {e}")))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::file(path, "the image is empty"));
    }
    Ok(img.to_rgb8())
}

/// A photo prepared for a model.
#[derive(Debug, Clone)]
pub struct ModelInput {
    /// `[1, C, size, size]` on the CPU.
    pub tensor: Tensor,
    /// What the model sees, for people: the photo resized (and grey for a grey model), RGB.
    pub seen: RgbImage,
}

/// `photo` as the input of a model described by `desc`, at `size x size` pixels, centred with
/// `mean` (flattened `[C, size, size]`, a checkpoint's mean image; ignored by FCNs).
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
    let side = u32::try_from(size).map_err(|_| Error::Invalid(format!("input size {size} is too large")))?;
    let resized = image::imageops::resize(photo, side, side, FilterType::Triangle);
    if let ModelDesc::Fcn(_) = desc {
        let tensor = crate::io::vgg16::caffe_input(&image::DynamicImage::ImageRgb8(photo.clone()), size)?;
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

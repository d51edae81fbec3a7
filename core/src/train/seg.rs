//! Segmentation training and scoring: the per-pixel cross-entropy with ignored pixels, per-pixel
//! predictions, and the scores of a model over a whole set.

use candle_core::{DType, Result, Tensor};

use super::confusion::Confusion;
use crate::data::seg_set::SegSet;
use crate::data::voc::{LabelMap, IGNORE};
use crate::models::Model;
use crate::nn::Forward;

/// Mean cross-entropy over the pixels whose label is not [`IGNORE`]: `logits` `[B, K, H, W]`,
/// `labels` `[B, H, W]` (u32). Zero (with zero gradient) when every pixel is ignored.
///
/// # Errors
/// Shapes that do not match, or a label other than 255 outside `0..K`.
pub fn pixel_cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (b, k, h, w) = logits.dims4()?;
    if labels.dims() != [b, h, w] {
        candle_core::bail!("labels {:?} do not match scores {:?}", labels.dims(), logits.dims());
    }
    let values = labels.flatten_all()?.to_vec1::<u32>()?;
    let ignore = u32::from(IGNORE);
    if let Some(bad) = values.iter().find(|&&l| l != ignore && l as usize >= k) {
        candle_core::bail!("label {bad} is outside the {k} classes");
    }
    let counted = values.iter().filter(|&&l| l != ignore).count();
    let mask: Vec<f32> = values.iter().map(|&l| f32::from(u8::from(l != ignore))).collect();
    let index: Vec<u32> = values.iter().map(|&l| if l == ignore { 0 } else { l }).collect();
    let dev = logits.device();
    let index = Tensor::from_vec(index, (b, 1, h, w), dev)?;
    let mask = Tensor::from_vec(mask, (b, 1, h, w), dev)?.to_dtype(logits.dtype())?;
    let log_p = candle_nn::ops::log_softmax(logits, 1)?.gather(&index, 1)?;
    (log_p * mask)?.sum_all()?.affine(-1.0 / counted.max(1) as f64, 0.0)
}

/// The training loss of `logits` against `labels` as the loop takes it: per pixel
/// ([`pixel_cross_entropy`], 255 ignored) for `[B, K, H, W]` maps, per image (candle's
/// cross-entropy) for `[B, K]` scores; `labels` one per pixel or per image, row by row.
///
/// # Errors
/// Labels that do not fit the scores.
pub fn mean_cross_entropy(logits: &Tensor, labels: &[u32]) -> Result<Tensor> {
    let dev = logits.device();
    if logits.rank() == 4 {
        let (b, _, h, w) = logits.dims4()?;
        if labels.len() != b * h * w {
            candle_core::bail!("{} labels for {b}x{h}x{w} pixels", labels.len());
        }
        let y = Tensor::from_vec(labels.to_vec(), (b, h, w), dev)?;
        return pixel_cross_entropy(logits, &y);
    }
    let y = Tensor::from_vec(labels.to_vec(), labels.len(), dev)?;
    candle_nn::loss::cross_entropy(logits, &y)
}

/// The most likely class of every pixel: `[B, K, H, W]` scores to `B` maps of `H · W` labels.
///
/// # Errors
/// Candle errors.
pub fn pixel_predictions(logits: &Tensor) -> Result<Vec<Vec<u8>>> {
    let am = logits.argmax(1)?.to_dtype(DType::U8)?;
    let b = am.dim(0)?;
    (0..b).map(|i| am.get(i)?.flatten_all()?.to_vec1::<u8>()).collect()
}

/// The labels of one image's scores `[1, K, h, w]`, resized by nearest neighbour to
/// `width x height` (a photo's own size: what `lrnn predict` writes and the app shows).
///
/// # Errors
/// Candle errors; scores that are not 4-dimensional.
pub fn predicted_labels(scores: &Tensor, width: usize, height: usize) -> Result<LabelMap> {
    let (_, _, h, w) = scores.dims4()?;
    let labels = pixel_predictions(&scores.narrow(0, 0, 1)?)?.swap_remove(0);
    Ok(LabelMap { width: w, height: h, labels }.resize_nearest(width, height))
}

/// Wrong and counted (not ignored) pixels of a batch.
///
/// # Errors
/// Candle errors.
pub fn pixel_errors(logits: &Tensor, labels: &Tensor) -> Result<(usize, usize)> {
    let pred = logits.argmax(1)?.flatten_all()?.to_vec1::<u32>()?;
    let truth = labels.flatten_all()?.to_vec1::<u32>()?;
    let ignore = u32::from(IGNORE);
    let counted = truth.iter().filter(|&&t| t != ignore).count();
    let wrong = pred.iter().zip(&truth).filter(|(p, t)| **t != ignore && p != t).count();
    Ok((wrong, counted))
}

/// The confusion matrix of `model` over `set` (inference mode, batches of `batch`).
///
/// # Errors
/// Candle errors.
pub fn evaluate_segmentation(model: &Model, set: &SegSet, batch: usize) -> crate::Result<Confusion> {
    let set = &*set.centred();
    let classes = model.desc().classes().unwrap_or(set.classes.len()).max(set.classes.len());
    let mut confusion = Confusion::new(classes);
    let idx: Vec<usize> = (0..set.len()).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let (x, _) = set.batch(chunk, None, model.device())?;
        let logits = model.forward(&x, &mut Forward::eval())?;
        for (pred, &i) in pixel_predictions(&logits)?.iter().zip(chunk) {
            confusion.add(pred, &set.label(i).labels);
        }
    }
    Ok(confusion)
}

/// The dense CRF over one image's scores: `logits` `[1, K, h, w]` (or `[K, h, w]`) at any size,
/// upsampled bilinearly to the photo's `width x height` (as PyTorch's `align_corners=False`),
/// then refined with the photo's colours (`rgb`, `height x width x 3` bytes). `progress` as
/// for [`DenseCrf::infer`](crate::crf::DenseCrf::infer): `Ok(None)` when it stops the run.
///
/// # Errors
/// Scores that are not 3- or 4-dimensional, a photo of the wrong size, the CRF's errors.
pub fn crf_on_scores(
    logits: &Tensor,
    rgb: &[u8],
    width: usize,
    height: usize,
    params: &crate::crf::CrfParams,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> crate::Result<Option<crate::crf::CrfOutput>> {
    let logits = match logits.rank() {
        3 => logits.unsqueeze(0)?,
        4 => logits.narrow(0, 0, 1)?,
        _ => return Err(crate::Error::Invalid(format!("CRF: scores of shape {:?}", logits.dims()))),
    };
    let (_, k, h, w) = logits.dims4()?;
    let at_size = if (h, w) == (height, width) {
        logits
    } else {
        logits.to_dtype(DType::F32)?.upsample_bilinear2d(height, width, false)?
    };
    let scores = at_size.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let crf = crate::crf::DenseCrf::new(rgb, width, height, params)?;
    crf.infer(&scores, k, progress)
}

/// The confusion matrices of `model` over `set` without and with the dense CRF (each image
/// refined at the set's size with its own colours). `progress(done, total)` counts images and
/// stops the run when it returns `false` (then `Ok(None)`).
///
/// # Errors
/// Candle and CRF errors.
pub fn evaluate_segmentation_with_crf(
    model: &Model,
    set: &SegSet,
    batch: usize,
    params: &crate::crf::CrfParams,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> crate::Result<Option<(Confusion, Confusion)>> {
    let set = &*set.centred();
    let classes = model.desc().classes().unwrap_or(set.classes.len()).max(set.classes.len());
    let (mut plain, mut refined) = (Confusion::new(classes), Confusion::new(classes));
    let (h, w) = set.size;
    let idx: Vec<usize> = (0..set.len()).collect();
    let mut done = 0;
    for chunk in idx.chunks(batch.max(1)) {
        let (x, _) = set.batch(chunk, None, model.device())?;
        let logits = model.forward(&x, &mut Forward::eval())?;
        for (j, &i) in chunk.iter().enumerate() {
            let truth = set.label(i).labels;
            let one = logits.narrow(0, j, 1)?;
            plain.add(&pixel_predictions(&one)?[0], &truth);
            // The set keeps pixels planar (3 x h x w); the CRF reads them interleaved.
            let planes = &set.pixels[i * 3 * h * w..(i + 1) * 3 * h * w];
            let rgb: Vec<u8> =
                (0..h * w).flat_map(|p| [planes[p], planes[h * w + p], planes[2 * h * w + p]]).collect();
            let Some(out) = crf_on_scores(&one, &rgb, w, h, params, &mut |_, _| true)? else {
                return Ok(None);
            };
            refined.add(&out.labels, &truth);
            done += 1;
            if !progress(done, set.len()) {
                return Ok(None);
            }
        }
    }
    Ok(Some((plain, refined)))
}

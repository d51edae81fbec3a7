//! `lrnn crf`: the dense CRF over a photo and a network's scores; the CRF settings that
//! `predict --crf` and `eval --crf` share.

use std::path::Path;

use anyhow::bail;
use candle_core::Device;
use lrnn_core::crf::CrfParams;
use lrnn_core::data::voc::{write_label_png, LabelMap};

/// The dense CRF's settings (defaults: the usual post-processing ones).
#[derive(Debug, Clone, clap::Args)]
pub struct CrfArgs {
    /// Mean-field updates.
    #[arg(long, default_value_t = 5, value_parser = crate::args::iterations)]
    pub iterations: usize,
    /// Standard deviation of the smoothness kernel, in pixels.
    #[arg(long, default_value_t = 3.0, value_parser = crate::args::positive_f32)]
    pub gaussian_sxy: f32,
    /// Weight of the smoothness kernel.
    #[arg(long, default_value_t = 3.0, value_parser = crate::args::non_negative_f32)]
    pub gaussian_weight: f32,
    /// Standard deviation in position of the appearance kernel, in pixels.
    #[arg(long, default_value_t = 80.0, value_parser = crate::args::positive_f32)]
    pub bilateral_sxy: f32,
    /// Standard deviation in colour of the appearance kernel (0-255 levels).
    #[arg(long, default_value_t = 13.0, value_parser = crate::args::positive_f32)]
    pub bilateral_srgb: f32,
    /// Weight of the appearance kernel.
    #[arg(long, default_value_t = 10.0, value_parser = crate::args::non_negative_f32)]
    pub bilateral_weight: f32,
}

impl CrfArgs {
    /// The settings for the core.
    pub fn params(&self) -> CrfParams {
        CrfParams {
            iterations: self.iterations,
            gaussian_sxy: self.gaussian_sxy,
            gaussian_weight: self.gaussian_weight,
            bilateral_sxy: self.bilateral_sxy,
            bilateral_srgb: self.bilateral_srgb,
            bilateral_weight: self.bilateral_weight,
        }
    }
}

/// Runs `lrnn crf`: `scores` (`[C, H, W]` or `[1, C, H, W]` logits at the photo's size, the
/// tensor `scores` or the file's only tensor) refined over `image`, written as a VOC-palette
/// PNG of label indices.
pub fn crf(image: &Path, scores_path: &Path, out: &Path, args: &CrfArgs) -> anyhow::Result<()> {
    lrnn_core::io::refuse_overwriting_inputs(out, [image, scores_path])?;
    let photo = lrnn_core::data::photo::read_photo(image)?;
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    let tensors = lrnn_core::io::read_tensors(scores_path, &Device::Cpu)?;
    let name = if tensors.contains_key("scores") || tensors.len() != 1 {
        "scores".to_string()
    } else {
        tensors.keys().next().cloned().unwrap_or_default()
    };
    let t = tensors.get(&name).ok_or_else(|| {
        let names: Vec<&str> = tensors.keys().map(String::as_str).take(8).collect();
        anyhow::anyhow!(
            "{}: no tensor `scores` (the file holds: {})",
            scores_path.display(),
            names.join(", ")
        )
    })?;
    let t = match t.rank() {
        3 => t.clone(),
        4 if t.dim(0)? == 1 => t.squeeze(0)?,
        _ => bail!(
            "{}: tensor `{name}`: shape {:?}; expected [C, H, W] or [1, C, H, W] scores",
            scores_path.display(),
            t.dims()
        ),
    };
    let (c, sh, sw) = t.dims3()?;
    if (sh, sw) != (h, w) {
        bail!(
            "{}: tensor `{name}` is {sw}x{sh} (W x H), the photo {} is {w}x{h}: scores must be at the photo's size",
            scores_path.display(),
            image.display()
        );
    }
    if c == 0 || c > 255 {
        bail!("{}: tensor `{name}` has {c} classes (1 to 255 can be labelled)", scores_path.display());
    }
    let scores = t.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let params = args.params();
    let start = std::time::Instant::now();
    let crf = lrnn_core::crf::DenseCrf::new(photo.as_raw(), w, h, &params)?;
    let result = crf
        .infer(&scores, c, &mut |_, _| true)
        .map_err(|e| anyhow::anyhow!("{}: {e}", scores_path.display()))?;
    let Some(result) = result else { bail!("stopped") };
    let before = lrnn_core::crf::argmax_labels(&scores, c, w * h);
    let changed = before.iter().zip(&result.labels).filter(|(a, b)| a != b).count();
    write_label_png(out, &LabelMap { width: w, height: h, labels: result.labels })?;
    println!(
        "CRF ({} updates) over {w}x{h} pixels and {c} classes in {:.0} ms: {changed} labels changed ({:.2}%)",
        params.iterations,
        start.elapsed().as_secs_f64() * 1e3,
        100.0 * changed as f64 / (w * h) as f64
    );
    println!("wrote {}", out.display());
    Ok(())
}

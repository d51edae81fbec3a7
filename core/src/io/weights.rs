//! Weight files of any supported format, told apart by their bytes (not their extension):
//! safetensors (the project's own), PyTorch `.pth` (zip or legacy, [`super::pytorch`]) and
//! Caffe `.caffemodel` ([`super::caffe`]). Every command that takes `--weights` and the app's
//! Model menu read through here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use candle_core::Tensor;

use crate::error::{Error, Result};

/// A weight file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// safetensors.
    Safetensors,
    /// PyTorch's `torch.save` (zip or legacy).
    Pth,
    /// Caffe's `NetParameter` protobuf.
    Caffe,
}

impl WeightFormat {
    /// The format's name for people.
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::Safetensors => "safetensors",
            WeightFormat::Pth => "PyTorch .pth",
            WeightFormat::Caffe => "Caffe .caffemodel",
        }
    }
}

/// The format of `bytes` (a whole file's): PyTorch by its zip or legacy magic, safetensors by
/// its header (a length, then `{`), otherwise Caffe when the file is named `.caffemodel` or
/// decodes as a Caffe net with learned layers.
pub fn sniff(bytes: &[u8], path: &Path) -> Option<WeightFormat> {
    if super::pytorch::looks_like_pth(bytes) {
        return Some(WeightFormat::Pth);
    }
    if bytes.len() >= 9 {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default());
        if n > 0 && n <= (bytes.len() - 8) as u64 && bytes[8] == b'{' {
            return Some(WeightFormat::Safetensors);
        }
    }
    let named = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("caffemodel"));
    if named || super::caffe::decode(bytes, path).is_ok() {
        return Some(WeightFormat::Caffe);
    }
    None
}

/// Whether a file's name says it is not safetensors (`.pth`, `.pt`, `.caffemodel`, or any
/// extension other than `.safetensors`): its unrecognised bytes are then not reported as a
/// broken safetensors file.
pub fn foreign_extension(path: &Path) -> bool {
    path.extension().is_some_and(|e| !e.eq_ignore_ascii_case("safetensors"))
}

/// Every float tensor of a weight file as f32 on the CPU, with the names of those whose shape
/// is Caffe's legacy 4D one (a loader may reshape those to a model's shape of the same size).
///
/// # Errors
/// [`Error::File`] naming `path` when the format is none of the three or the file is damaged;
/// [`Error::Tensor`] for a NaN or infinite value.
pub fn read_weights(path: &Path) -> Result<(WeightFormat, BTreeMap<String, Tensor>, BTreeSet<String>)> {
    let bytes = super::read_file(path)?;
    let format = match sniff(&bytes, path) {
        Some(f) => f,
        // Unrecognised bytes: the reader the name points to says what is wrong in its terms.
        None if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("pth") || e.eq_ignore_ascii_case("pt")) =>
        {
            WeightFormat::Pth
        }
        None if foreign_extension(path) => {
            return Err(Error::file(
                path,
                "not a weight file: neither safetensors, a PyTorch .pth nor a Caffe .caffemodel",
            ))
        }
        None => WeightFormat::Safetensors,
    };
    let mut legacy = BTreeSet::new();
    let tensors = match format {
        WeightFormat::Safetensors => {
            drop(bytes);
            super::read_tensors(path, &candle_core::Device::Cpu)?
        }
        WeightFormat::Pth => {
            drop(bytes);
            super::pytorch::read_pth(path)?
        }
        WeightFormat::Caffe => {
            let blobs = super::caffe::decode(&bytes, path)?;
            blobs
                .into_iter()
                .map(|(name, b)| {
                    if b.legacy_shape {
                        legacy.insert(name.clone());
                    }
                    (name, b.tensor)
                })
                .collect()
        }
    };
    for (name, t) in &tensors {
        let bad = super::non_finite(t)?;
        if bad > 0 {
            return Err(Error::tensor(path, name, format!("holds {bad} NaN or infinite value(s)")));
        }
    }
    Ok((format, tensors, legacy))
}

/// Loads a weight file of Long et al.'s FCNs with the model kind recognised from its weights
/// ([`crate::models::fcn_caffe::FcnCaffeConfig::infer`]).
///
/// # Errors
/// As [`read_weights`]; [`Error::File`] when the weights are not those of FCN-32s/16s/8s.
pub fn load_recognised(path: &Path, device: &candle_core::Device) -> Result<crate::models::Model> {
    let (format, tensors, _) = read_weights(path)?;
    let dims = tensors.iter().map(|(n, t)| (n.clone(), t.dims().to_vec())).collect();
    let cfg = crate::models::fcn_caffe::FcnCaffeConfig::infer(&dims).ok_or_else(|| {
        Error::file(
            path,
            format!(
                "this {} file is not one of Long et al.'s FCNs (no score_fr / upscore weights): \
                 name the model it is for (--model)",
                format.name()
            ),
        )
    })?;
    drop(tensors);
    crate::models::Model::load(crate::models::ModelDesc::FcnCaffe(cfg), path, device)
}

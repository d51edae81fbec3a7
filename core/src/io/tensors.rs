//! safetensors files: strict loading of model weights into a [`VarMap`], reading inputs and
//! writing outputs (atomically). Every problem names the file and the tensor.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use safetensors::SafeTensors;

use crate::error::{Error, Result};

use super::read_file;

/// Refuses a tensor holding NaN or infinite values: they would flow silently into every map.
fn check_finite(t: &Tensor, name: &str, path: &Path) -> Result<()> {
    let bad = non_finite(t)?;
    if bad > 0 {
        return Err(Error::tensor(
            path,
            name,
            format!("holds {bad} NaN or infinite value{}", if bad == 1 { "" } else { "s" }),
        ));
    }
    Ok(())
}

fn parse<'a>(bytes: &'a [u8], path: &Path) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes)
        .map_err(|e| Error::file(path, format!("not a valid safetensors file: {e}")))
}

fn view_to_f32(
    view: &safetensors::tensor::TensorView<'_>,
    name: &str,
    path: &Path,
    device: &Device,
) -> Result<Tensor> {
    let half = match view.dtype() {
        safetensors::Dtype::F32 => {
            let data: Vec<f32> =
                view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            return Ok(Tensor::from_vec(data, view.shape(), device)?);
        }
        // Half-size files (`lrnn pack --half`) read back as f32.
        safetensors::Dtype::F16 => DType::F16,
        safetensors::Dtype::BF16 => DType::BF16,
        other => {
            return Err(Error::tensor(path, name, format!("dtype is {other:?}, expected F32, F16 or BF16")));
        }
    };
    Ok(Tensor::from_raw_buffer(view.data(), half, view.shape(), &Device::Cpu)?
        .to_dtype(DType::F32)?
        .to_device(device)?)
}

/// How many values of `t` are NaN or infinite.
///
/// # Errors
/// Candle errors (a tensor that cannot be read as f32).
pub fn non_finite(t: &Tensor) -> Result<usize> {
    let v = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    Ok(v.iter().filter(|x| !x.is_finite()).count())
}

/// Reads every tensor of a safetensors file (f32, or f16 / bf16 converted to f32).
///
/// # Errors
/// [`Error::Io`], [`Error::File`] for a malformed file or one over the memory limit,
/// [`Error::Tensor`] for a tensor that is not a float or holds NaN or infinite values.
pub fn read_tensors(path: &Path, device: &Device) -> Result<BTreeMap<String, Tensor>> {
    tensors_from_bytes(&read_file(path)?, path, device)
}

/// [`read_tensors`] of a safetensors file's bytes; `path` names it in errors.
pub(crate) fn tensors_from_bytes(
    bytes: &[u8],
    path: &Path,
    device: &Device,
) -> Result<BTreeMap<String, Tensor>> {
    let st = parse(bytes, path)?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let t = view_to_f32(&view, &name, path, device)?;
        check_finite(&t, &name, path)?;
        out.insert(name.clone(), t);
    }
    Ok(out)
}

/// Takes tensor `name` out of `tensors` read from `path`, checking its rank.
///
/// # Errors
/// [`Error::Tensor`] when it is missing or of another rank.
pub fn require_tensor(
    tensors: &BTreeMap<String, Tensor>,
    name: &str,
    rank: usize,
    path: &Path,
) -> Result<Tensor> {
    let t = tensors.get(name).ok_or_else(|| {
        let names: Vec<&str> = tensors.keys().map(String::as_str).take(8).collect();
        Error::tensor(path, name, format!("missing (the file holds: {})", names.join(", ")))
    })?;
    if t.rank() != rank {
        return Err(Error::tensor(
            path,
            name,
            format!("shape {:?} has rank {}, expected {rank}", t.dims(), t.rank()),
        ));
    }
    Ok(t.clone())
}

/// Loads weights into every variable of `varmap`, strictly: each variable must be in the file
/// with its exact shape and dtype f32, and the file must hold nothing else.
///
/// # Errors
/// [`Error::Tensor`] naming the first missing, unexpected or mis-shaped tensor; the varmap is
/// unchanged then.
pub fn load_into_varmap(varmap: &VarMap, path: &Path) -> Result<()> {
    let bytes = read_file(path)?;
    let format = super::weights::sniff(&bytes, path);
    if matches!(format, Some(super::weights::WeightFormat::Pth | super::weights::WeightFormat::Caffe))
        || (format.is_none() && super::weights::foreign_extension(path))
    {
        let file = super::weights::decode_weights(&bytes, path, format)?;
        drop(bytes);
        return file.assign(varmap, path);
    }
    let st = parse(&bytes, path)?;
    assign_strict(
        varmap,
        path,
        |name, dims| {
            let view = st.tensor(name).map_err(|_| {
                Error::tensor(path, name, format!("missing (the model expects shape {dims:?})"))
            })?;
            if view.shape() != dims {
                return Err(Error::tensor(
                    path,
                    name,
                    format!("shape {:?}, the model expects {dims:?}", view.shape()),
                ));
            }
            let t = view_to_f32(&view, name, path, &Device::Cpu)?;
            check_finite(&t, name, path)?;
            Ok(t)
        },
        |is_var| {
            let mut extra: Vec<String> =
                st.names().into_iter().filter(|n| !is_var(n)).map(str::to_string).collect();
            extra.sort();
            extra
                .first()
                .map(|first| Error::tensor(path, first.as_str(), "unexpected: the model has no such weight"))
        },
    )
}

/// Loads every variable of `varmap` strictly (the one rule of every weight file): `fetch(name,
/// the variable's shape)` gives its tensor or the error naming what is wrong with it, variables
/// in name order; then `unexpected(is a variable)` names a tensor of the file the model lacks.
/// Nothing is set unless every variable was found and nothing was unexpected.
///
/// # Errors
/// The first error of `fetch` or `unexpected`; candle errors setting a variable.
pub(crate) fn assign_strict(
    varmap: &VarMap,
    path: &Path,
    mut fetch: impl FnMut(&str, &[usize]) -> Result<Tensor>,
    unexpected: impl FnOnce(&dyn Fn(&str) -> bool) -> Option<Error>,
) -> Result<()> {
    let vars = varmap.data().lock().map_err(|_| Error::file(path, "model variables are poisoned"))?;
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let mut loaded = Vec::with_capacity(names.len());
    for name in names {
        let var = &vars[name];
        loaded.push((var, fetch(name, var.dims())?));
    }
    if let Some(e) = unexpected(&|n: &str| vars.contains_key(n)) {
        return Err(e);
    }
    for (var, t) in loaded {
        var.set(&t.to_device(var.device())?.to_dtype(var.dtype())?)?;
    }
    Ok(())
}

/// Writes named tensors (converted to contiguous f32) to a safetensors file, atomically.
///
/// # Errors
/// [`Error::Io`] naming `path`; candle errors for tensors that cannot be converted.
pub fn write_tensors(tensors: &BTreeMap<String, Tensor>, path: &Path) -> Result<()> {
    write_tensors_as(tensors, path, DType::F32)
}

/// Writes tensors as a safetensors file in `dtype` (e.g. F16 for a bundled model half the size;
/// readers convert back to f32), atomically.
///
/// # Errors
/// Candle errors; I/O errors naming `path`.
pub fn write_tensors_as(tensors: &BTreeMap<String, Tensor>, path: &Path, dtype: DType) -> Result<()> {
    let mut prepared = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        prepared.push((name.clone(), t.to_dtype(dtype)?.to_device(&Device::Cpu)?.contiguous()?));
    }
    let bytes = safetensors::serialize(prepared.iter().map(|(n, t)| (n.as_str(), t)), None)
        .map_err(|e| Error::file(path, format!("cannot serialise: {e}")))?;
    super::write_atomic(path, &bytes)
}

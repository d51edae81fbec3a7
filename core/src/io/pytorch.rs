//! PyTorch weight files (`torch.save` of a state dict, or of a checkpoint holding one) in both
//! of torch's formats, read without running any pickle code ([`super::pickle`]):
//!
//! - the zip format (torch >= 1.6): `<archive>/data.pkl` pickles the object, each tensor's storage
//!   a persistent id `('storage', torch.FloatStorage, key, location, numel)` whose bytes are the
//!   entry `<archive>/data/<key>`;
//! - the legacy format (torch < 1.6; torchvision's `vgg16-397923af.pth`, the FCN port's
//!   `fcn8s_from_caffe.pth`): five pickles in a row — the magic number
//!   `0x1950a86a20f9469cfc6c`, the protocol version 1001, the system info (byte order), the
//!   object (persistent ids `('storage', type, key, location, numel, view)`), the sorted
//!   storage keys — then each storage's element count (8 bytes) and raw bytes, in key order.
//!
//! Tensors are rebuilt from `torch._utils._rebuild_tensor_v2` / `_rebuild_tensor` (storage,
//! offset, size, stride), `_rebuild_parameter` and `torch._tensor._rebuild_from_type_v2`; float
//! tensors (f32, f64, f16, bf16) come back as f32, integer ones (BatchNorm's
//! `num_batches_tracked`) are left out.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

use candle_core::{DType, Device, Tensor};

use super::pickle::{Unpickler, Value};
use crate::error::{Error, Result};

/// The magic number pickle that starts a legacy file (protocol 2, `LONG1` of 10 bytes).
const LEGACY_MAGIC: [u8; 15] =
    [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e];

/// Whether `bytes` start like a PyTorch file (zip or legacy).
pub fn looks_like_pth(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(&LEGACY_MAGIC)
}

/// A storage's element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    F32,
    F64,
    F16,
    Bf16,
    /// An integer or bool type of this many bytes (read past, not converted).
    Other(usize),
}

impl Elem {
    fn from_storage(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Elem::F32,
            "DoubleStorage" => Elem::F64,
            "HalfStorage" => Elem::F16,
            "BFloat16Storage" => Elem::Bf16,
            "LongStorage" => Elem::Other(8),
            "IntStorage" => Elem::Other(4),
            "ShortStorage" => Elem::Other(2),
            "CharStorage" | "ByteStorage" | "BoolStorage" | "QInt8Storage" | "QUInt8Storage" => {
                Elem::Other(1)
            }
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::F64 => 8,
            Elem::F16 | Elem::Bf16 => 2,
            Elem::Other(n) => n,
        }
    }
}

/// A storage reference: key, element type, element count, and (legacy views) an offset into its
/// root storage.
#[derive(Debug, Clone)]
struct StorageRef {
    key: String,
    elem: Elem,
    numel: usize,
    view_offset: usize,
}

/// A tensor found in the pickle: its name and how to rebuild it.
#[derive(Debug, Clone)]
struct TensorRef {
    name: String,
    storage: StorageRef,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

/// Reads every float tensor of a `.pth` file as f32 on the CPU.
///
/// # Errors
/// [`Error::File`] naming `path` and what is wrong: not a PyTorch file, a broken zip or pickle,
/// a pickle that holds no tensors, a storage too short for a tensor, a big-endian file.
pub fn read_pth(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    decode(&super::read_file(path)?, path)
}

/// [`read_pth`] of a file's bytes; `path` names it in errors.
///
/// # Errors
/// As [`read_pth`].
pub fn decode(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, Tensor>> {
    if bytes.starts_with(&LEGACY_MAGIC) {
        read_legacy(bytes, path)
    } else if bytes.starts_with(b"PK\x03\x04") {
        read_zip(bytes, path)
    } else {
        Err(Error::file(
            path,
            "not a PyTorch file: it starts neither as torch's zip format nor as its legacy format",
        ))
    }
}

fn bad(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::file(path, format!("not a readable PyTorch file: {what}"))
}

fn read_zip(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| bad(path, e))?;
    let pkl = zip
        .file_names()
        .filter_map(|n| n.ok().map(std::borrow::Cow::into_owned))
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() == 1)
        .ok_or_else(|| bad(path, "a zip without `<archive>/data.pkl`: not a torch.save file"))?;
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let pickle = read_entry(&mut zip, &pkl, path, None)?;
    let root = Unpickler::new(&pickle).load().map_err(|e| bad(path, format!("{pkl}: {e}")))?;
    let tensors = find_tensors(&root).map_err(|e| bad(path, e))?;
    let mut data: HashMap<String, Vec<u8>> = HashMap::new();
    let mut out = BTreeMap::new();
    for t in tensors {
        if !data.contains_key(&t.storage.key) {
            let entry = format!("{prefix}data/{}", t.storage.key);
            let want = t.storage.numel.checked_mul(t.storage.elem.size());
            let d = read_entry(&mut zip, &entry, path, want)?;
            data.insert(t.storage.key.clone(), d);
        }
        if let Some(tensor) = rebuild(&t, &data[&t.storage.key], path)? {
            out.insert(t.name, tensor);
        }
    }
    Ok(out)
}

fn read_entry(
    zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    name: &str,
    path: &Path,
    want: Option<usize>,
) -> Result<Vec<u8>> {
    let entry = zip.by_name(name).map_err(|e| bad(path, format!("entry `{name}`: {e}")))?;
    let size = entry.size();
    crate::limits::check_memory(size, &format!("the entry `{name}`")).map_err(|p| Error::file(path, p))?;
    if let Some(w) = want.filter(|&w| w as u64 > size) {
        return Err(bad(path, format!("entry `{name}` holds {size} bytes, its tensor needs {w}")));
    }
    let mut out = Vec::with_capacity(size as usize);
    entry.take(size).read_to_end(&mut out).map_err(|e| bad(path, format!("entry `{name}`: {e}")))?;
    Ok(out)
}

fn read_legacy(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let mut p = Unpickler::new(bytes);
    let mut next = |what: &str| p.load().map_err(|e| bad(path, format!("legacy format, {what}: {e}")));
    next("magic number")?;
    let protocol = next("protocol version")?;
    if protocol.as_int() != Some(1001) {
        return Err(bad(path, format!("legacy format version {:?}, expected 1001", protocol.as_int())));
    }
    let info = next("system info")?;
    if let Value::Dict(items) = &*info {
        let little = items.iter().find(|(k, _)| k.as_str() == Some("little_endian"));
        if little.is_some_and(|(_, v)| **v == Value::Bool(false)) {
            return Err(bad(path, "written on a big-endian machine; only little-endian files are read"));
        }
    }
    let root = next("the saved object")?;
    let keys = next("storage keys")?;
    let keys: Vec<String> = keys
        .as_seq()
        .ok_or_else(|| bad(path, "legacy format: the storage keys are not a list"))?
        .iter()
        .map(|k| {
            k.as_str().map(str::to_string).ok_or_else(|| bad(path, "a storage key that is not a string"))
        })
        .collect::<Result<_>>()?;
    let tensors = find_tensors(&root).map_err(|e| bad(path, e))?;
    // Element sizes by key, from the tensors that use each storage.
    let mut elem: HashMap<&str, Elem> = HashMap::new();
    for t in &tensors {
        elem.insert(&t.storage.key, t.storage.elem);
    }
    let mut at = p.position();
    let mut data: HashMap<String, Vec<u8>> = HashMap::new();
    for key in &keys {
        let header = bytes.get(at..at + 8).ok_or_else(|| bad(path, format!("storage `{key}`: truncated")))?;
        let numel = u64::from_le_bytes(header.try_into().map_err(|_| bad(path, "truncated"))?);
        let size = elem.get(key.as_str()).map_or(4, |e| e.size()) as u64;
        let len =
            numel.checked_mul(size).filter(|&l| l <= (bytes.len() - at - 8) as u64).ok_or_else(|| {
                bad(path, format!("storage `{key}` claims {numel} values, more than the file holds"))
            })? as usize;
        if elem.contains_key(key.as_str()) {
            data.insert(key.clone(), bytes[at + 8..at + 8 + len].to_vec());
        }
        at += 8 + len;
    }
    let mut out = BTreeMap::new();
    for t in tensors {
        let d = data.get(&t.storage.key).ok_or_else(|| {
            bad(path, format!("tensor `{}`: its storage `{}` is not in the file", t.name, t.storage.key))
        })?;
        if let Some(tensor) = rebuild(&t, d, path)? {
            out.insert(t.name, tensor);
        }
    }
    Ok(out)
}

/// The state dict inside `root`: `root` itself, or the dict under a checkpoint's
/// `state_dict` / `model_state_dict` / `model` key; its tensor entries in order.
fn find_tensors(root: &Rc<Value>) -> std::result::Result<Vec<TensorRef>, String> {
    let items = dict_items(root).ok_or(
        "the file holds no dict of tensors (a whole pickled model is not read: save its state_dict)",
    )?;
    for key in ["state_dict", "model_state_dict", "model", "net"] {
        if let Some((_, v)) = items.iter().find(|(k, _)| k.as_str() == Some(key)) {
            if dict_items(v).is_some() {
                return find_tensors(v);
            }
        }
    }
    let mut out = Vec::new();
    for (k, v) in items {
        let Some(name) = k.as_str() else { continue };
        if let Some(t) = tensor_ref(name, v)? {
            out.push(t);
        }
    }
    if out.is_empty() {
        return Err("the dict holds no tensors".into());
    }
    Ok(out)
}

fn dict_items(v: &Value) -> Option<&[(Rc<Value>, Rc<Value>)]> {
    match v {
        Value::Dict(items) => Some(items),
        Value::Call { callable, items, .. }
            if callable.as_global().is_some_and(|(m, n)| m == "collections" && n == "OrderedDict") =>
        {
            Some(items)
        }
        _ => None,
    }
}

/// The tensor a value rebuilds, if it is one.
fn tensor_ref(name: &str, v: &Value) -> std::result::Result<Option<TensorRef>, String> {
    let Value::Call { callable, args, .. } = v else { return Ok(None) };
    let Some((module, func)) = callable.as_global() else { return Ok(None) };
    let args = args.as_seq().unwrap_or(&[]);
    match (module, func) {
        ("torch._utils", "_rebuild_parameter") | ("torch._utils", "_rebuild_parameter_with_state") => {
            match args.first() {
                Some(t) => tensor_ref(name, t),
                None => Err(format!("`{name}`: a parameter without its tensor")),
            }
        }
        ("torch._tensor", "_rebuild_from_type_v2") => {
            // (func, type, args, state): the tensor is func(*args).
            let (Some(func), Some(inner)) = (args.first(), args.get(2)) else {
                return Err(format!("`{name}`: a malformed tensor subclass"));
            };
            let call = Value::Call {
                callable: func.clone(),
                args: inner.clone(),
                state: None,
                items: vec![],
                list: vec![],
            };
            tensor_ref(name, &call)
        }
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            let err = |what: &str| format!("tensor `{name}`: {what}");
            let storage = match args.first().map(|a| &**a) {
                Some(Value::Persistent(pid)) => storage_ref(pid).map_err(|e| err(&e))?,
                _ => return Err(err("its storage is not a persistent id")),
            };
            let int = |i: usize, what: &str| -> std::result::Result<usize, String> {
                args.get(i)
                    .and_then(|v| v.as_int())
                    .and_then(|v| usize::try_from(v).ok())
                    .ok_or_else(|| err(&format!("{what} is not a non-negative integer")))
            };
            let dims = |i: usize, what: &str| -> std::result::Result<Vec<usize>, String> {
                args.get(i)
                    .and_then(|v| v.as_seq())
                    .ok_or_else(|| err(&format!("{what} is not a tuple")))?
                    .iter()
                    .map(|d| {
                        d.as_int()
                            .and_then(|v| usize::try_from(v).ok())
                            .ok_or_else(|| err(&format!("{what} holds a non-integer")))
                    })
                    .collect()
            };
            let offset = int(1, "the storage offset")?;
            let size = dims(2, "the size")?;
            let stride = dims(3, "the stride")?;
            if size.len() != stride.len() || size.len() > 8 {
                return Err(err("size and stride of different ranks"));
            }
            Ok(Some(TensorRef { name: name.to_string(), storage, offset, size, stride }))
        }
        _ => Ok(None),
    }
}

fn storage_ref(pid: &Value) -> std::result::Result<StorageRef, String> {
    let items = pid.as_seq().ok_or("a persistent id that is not a tuple")?;
    if items.first().and_then(|v| v.as_str()) != Some("storage") || items.len() < 5 {
        return Err("a persistent id that is not a storage".into());
    }
    let elem = match items[1].as_global() {
        Some((_, class)) => {
            Elem::from_storage(class).ok_or_else(|| format!("storage type `{class}` is not known"))?
        }
        None => return Err("a storage type that is not a class".into()),
    };
    let key = items[2].as_str().map(str::to_string).or_else(|| items[2].as_int().map(|i| i.to_string()));
    let key = key.ok_or("a storage key that is neither a string nor an integer")?;
    let numel = items[4]
        .as_int()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or("a storage size that is not a count")?;
    // A legacy view: (view key, offset, size) into the root storage `key`.
    let (view_offset, numel) = match items.get(5).map(|v| &**v) {
        Some(Value::Tuple(view)) if view.len() == 3 => {
            let off = view[1].as_int().and_then(|n| usize::try_from(n).ok()).ok_or("a view offset")?;
            let len = view[2].as_int().and_then(|n| usize::try_from(n).ok()).ok_or("a view size")?;
            (off, len)
        }
        _ => (0, numel),
    };
    Ok(StorageRef { key, elem, numel, view_offset })
}

/// The tensor from its storage's bytes (`None` for integer tensors).
fn rebuild(t: &TensorRef, data: &[u8], path: &Path) -> Result<Option<Tensor>> {
    let dtype = match t.storage.elem {
        Elem::F32 => DType::F32,
        Elem::F64 => DType::F64,
        Elem::F16 => DType::F16,
        Elem::Bf16 => DType::BF16,
        Elem::Other(_) => return Ok(None),
    };
    let es = t.storage.elem.size();
    let count = crate::limits::elements(&t.size)
        .filter(|&c| c <= u64::from(u32::MAX) * 64)
        .ok_or_else(|| Error::tensor(path, &t.name, format!("size {:?} is too large", t.size)))?
        as usize;
    crate::limits::check_memory(count as u64 * 4, &format!("tensor `{}`", t.name))
        .map_err(|p| Error::file(path, p))?;
    let base = t.storage.view_offset + t.offset;
    // The last element any index reaches, checked against the storage.
    let reach = t.size.iter().zip(&t.stride).try_fold(base, |acc, (&n, &s)| {
        if n == 0 {
            Some(acc)
        } else {
            (n - 1).checked_mul(s).and_then(|v| acc.checked_add(v))
        }
    });
    let available = (data.len() / es).min(t.storage.view_offset + t.storage.numel);
    if count > 0 && reach.is_none_or(|r| r >= available) {
        return Err(Error::tensor(
            path,
            &t.name,
            format!(
                "size {:?} at offset {} reaches past its storage of {available} values",
                t.size, t.offset
            ),
        ));
    }
    let mut raw = Vec::with_capacity(count * es);
    let contiguous = {
        let mut expect = 1;
        t.size.iter().zip(&t.stride).rev().all(|(&n, &s)| {
            let ok = n <= 1 || s == expect;
            expect *= n.max(1);
            ok
        })
    };
    if contiguous {
        raw.extend_from_slice(&data[base * es..(base + count) * es]);
    } else {
        let mut index = vec![0usize; t.size.len()];
        for _ in 0..count {
            let at = base + index.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
            raw.extend_from_slice(&data[at * es..(at + 1) * es]);
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < t.size[d] {
                    break;
                }
                index[d] = 0;
            }
        }
    }
    let tensor = Tensor::from_raw_buffer(&raw, dtype, &t.size, &Device::Cpu)?.to_dtype(DType::F32)?;
    Ok(Some(tensor))
}

//! Caffe `.caffemodel` files: a protobuf `NetParameter` (Caffe's `caffe.proto`) whose layers
//! carry their learned blobs. Both layer fields are read — the current `layer` (field 100,
//! `LayerParameter`) and the V1 `layers` (field 2, `V1LayerParameter`) — and blobs with a
//! `shape` or the legacy `num` / `channels` / `height` / `width`. Only the fields named here are
//! decoded (`prost`); the rest of the schema is skipped.
//!
//! Each layer's blobs become `<layer>.weight` (blob 0) and `<layer>.bias` (blob 1), the names
//! PyTorch ports of Caffe models use, so one loader serves both.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use prost::Message;

use crate::error::{Error, Result};

#[derive(Clone, PartialEq, Message)]
struct NetParameter {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(message, repeated, tag = "2")]
    layers: Vec<V1LayerParameter>,
    #[prost(message, repeated, tag = "100")]
    layer: Vec<LayerParameter>,
}

#[derive(Clone, PartialEq, Message)]
struct LayerParameter {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    r#type: Option<String>,
    #[prost(message, repeated, tag = "7")]
    blobs: Vec<BlobProto>,
}

#[derive(Clone, PartialEq, Message)]
struct V1LayerParameter {
    #[prost(string, optional, tag = "4")]
    name: Option<String>,
    #[prost(int32, optional, tag = "5")]
    r#type: Option<i32>,
    #[prost(message, repeated, tag = "6")]
    blobs: Vec<BlobProto>,
}

#[derive(Clone, PartialEq, Message)]
struct BlobShape {
    #[prost(int64, repeated, packed = "true", tag = "1")]
    dim: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
struct BlobProto {
    #[prost(int64, optional, tag = "1")]
    num: Option<i64>,
    #[prost(int64, optional, tag = "2")]
    channels: Option<i64>,
    #[prost(int64, optional, tag = "3")]
    height: Option<i64>,
    #[prost(int64, optional, tag = "4")]
    width: Option<i64>,
    #[prost(float, repeated, packed = "true", tag = "5")]
    data: Vec<f32>,
    #[prost(message, optional, tag = "7")]
    shape: Option<BlobShape>,
    #[prost(double, repeated, packed = "true", tag = "8")]
    double_data: Vec<f64>,
}

/// A tensor read from a Caffe file, and whether its shape is Caffe's legacy 4D one (`num`,
/// `channels`, `height`, `width`), which a loader may reshape to the model's shape of the same
/// size (a bias stored as `1 x 1 x 1 x N`).
#[derive(Debug, Clone)]
pub struct CaffeBlob {
    /// The values, in the file's shape.
    pub tensor: Tensor,
    /// Whether the shape came from the legacy fields.
    pub legacy_shape: bool,
}

/// Reads every learned blob of a `.caffemodel` as `<layer>.weight` / `<layer>.bias` (further
/// blobs `<layer>.blob<i>`).
///
/// # Errors
/// [`Error::File`] naming `path` when it is not a Caffe `NetParameter`, holds no learned layer,
/// or a blob's values do not match its shape; [`Error::Tensor`] for a repeated layer name.
pub fn read_caffemodel(path: &Path) -> Result<BTreeMap<String, CaffeBlob>> {
    let bytes = super::read_file(path)?;
    decode(&bytes, path)
}

/// Decodes a `.caffemodel`'s bytes (see [`read_caffemodel`]).
///
/// # Errors
/// As [`read_caffemodel`].
pub fn decode(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, CaffeBlob>> {
    let net = NetParameter::decode(bytes)
        .map_err(|e| Error::file(path, format!("not a Caffe model (a NetParameter protobuf): {e}")))?;
    let layers = net
        .layer
        .into_iter()
        .map(|l| (l.name.unwrap_or_default(), l.blobs))
        .chain(net.layers.into_iter().map(|l| (l.name.unwrap_or_default(), l.blobs)));
    let mut out = BTreeMap::new();
    for (layer, blobs) in layers {
        if blobs.is_empty() {
            continue;
        }
        if layer.is_empty() {
            return Err(Error::file(path, "a layer with learned blobs but no name"));
        }
        for (i, blob) in blobs.into_iter().enumerate() {
            let name = match i {
                0 => format!("{layer}.weight"),
                1 => format!("{layer}.bias"),
                i => format!("{layer}.blob{i}"),
            };
            let (dims, legacy_shape) = match &blob.shape {
                Some(s) => (s.dim.clone(), false),
                None => {
                    let d = [blob.num, blob.channels, blob.height, blob.width];
                    (d.iter().map(|v| v.unwrap_or(1)).collect(), true)
                }
            };
            let dims: Vec<usize> = dims
                .iter()
                .map(|&d| {
                    usize::try_from(d).map_err(|_| Error::tensor(path, &name, format!("dimension {d}")))
                })
                .collect::<Result<_>>()?;
            let values: Vec<f32> = if blob.data.is_empty() {
                blob.double_data.iter().map(|&v| v as f32).collect()
            } else {
                blob.data
            };
            let count = crate::limits::elements(&dims);
            if count != Some(values.len() as u64) {
                return Err(Error::tensor(
                    path,
                    &name,
                    format!("shape {dims:?} needs {count:?} values, the file holds {}", values.len()),
                ));
            }
            let tensor = Tensor::from_vec(values, dims.as_slice(), &Device::Cpu)?;
            if out.insert(name.clone(), CaffeBlob { tensor, legacy_shape }).is_some() {
                return Err(Error::tensor(path, &name, "two layers of this name hold blobs"));
            }
        }
    }
    if out.is_empty() {
        return Err(Error::file(
            path,
            "a Caffe NetParameter without learned weights (a .prototxt's net, or not a .caffemodel)",
        ));
    }
    Ok(out)
}

/// A layer to encode: its name and its blobs (shape, values).
pub type LayerBlobs = (String, Vec<(Vec<usize>, Vec<f32>)>);

/// Encodes named blobs as a `.caffemodel` with the current `layer` field (`modern`) or the V1
/// `layers` field with legacy 4D shapes, for tests and fixtures: `(layer, blobs)` in order.
pub fn encode(layers: &[LayerBlobs], modern: bool) -> Vec<u8> {
    let blob = |(dims, values): &(Vec<usize>, Vec<f32>)| {
        if modern {
            BlobProto {
                shape: Some(BlobShape { dim: dims.iter().map(|&d| d as i64).collect() }),
                data: values.clone(),
                ..Default::default()
            }
        } else {
            let mut d4 = vec![1i64; 4usize.saturating_sub(dims.len())];
            d4.extend(dims.iter().map(|&d| d as i64));
            BlobProto {
                num: Some(d4[0]),
                channels: Some(d4[1]),
                height: Some(d4[2]),
                width: Some(d4[3]),
                data: values.clone(),
                ..Default::default()
            }
        }
    };
    let mut net = NetParameter { name: Some("lrnn-studio".into()), layers: vec![], layer: vec![] };
    for (name, blobs) in layers {
        if modern {
            net.layer.push(LayerParameter {
                name: Some(name.clone()),
                r#type: Some("Convolution".into()),
                blobs: blobs.iter().map(blob).collect(),
            });
        } else {
            net.layers.push(V1LayerParameter {
                name: Some(name.clone()),
                r#type: Some(4),
                blobs: blobs.iter().map(blob).collect(),
            });
        }
    }
    net.encode_to_vec()
}

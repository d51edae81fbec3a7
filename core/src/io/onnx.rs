//! The weights of an ONNX model: its initializers, and the convolutions of its graph in order
//! (which initializers each one multiplies and adds). Decoded with `prost` from only the fields
//! of ONNX's protobuf schema (onnx.proto) that this needs; unknown fields are skipped.

use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use crate::error::{Error, Result};

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, tag = "4")]
    op_type: String,
}

/// An ONNX tensor (the fields this reader uses).
#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    /// Shape.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// Element type (1 = float32).
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// Values when not in `raw_data`.
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// Name.
    #[prost(string, tag = "8")]
    pub name: String,
    /// Little-endian values.
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
}

/// An f32 initializer.
#[derive(Debug, Clone, PartialEq)]
pub struct Initializer {
    /// Its shape.
    pub dims: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f32>,
}

/// A convolution of the graph: the names of its weight and (optional) bias initializers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvNode {
    /// The weight's name (`[O, I, kh, kw]`).
    pub weight: String,
    /// The bias's name.
    pub bias: Option<String>,
}

/// What the reader takes from an ONNX model.
#[derive(Debug, Clone, Default)]
pub struct OnnxWeights {
    /// Every f32 initializer by name (others are skipped).
    pub initializers: HashMap<String, Initializer>,
    /// The `Conv` nodes in graph order.
    pub convs: Vec<ConvNode>,
}

/// Decodes an ONNX model's bytes; `path` only names the source in errors.
///
/// # Errors
/// [`Error::File`] naming `path` when the bytes are not an ONNX model or a tensor's data does not
/// match its shape.
pub fn read_onnx(bytes: &[u8], path: &Path) -> Result<OnnxWeights> {
    let model =
        ModelProto::decode(bytes).map_err(|e| Error::file(path, format!("not an ONNX model: {e}")))?;
    let graph = model.graph.ok_or_else(|| Error::file(path, "an ONNX model without a graph"))?;
    let mut initializers = HashMap::new();
    for t in graph.initializer {
        if t.data_type != 1 {
            continue; // not f32: shapes and indices of other ops
        }
        let dims: Vec<usize> = t.dims.iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect();
        // Checked: dimensions whose product wraps past 2^64 must not pass the length check.
        let count = crate::limits::elements(&dims);
        let held = if t.raw_data.is_empty() { t.float_data.len() } else { t.raw_data.len() / 4 };
        if count != Some(held as u64) || (!t.raw_data.is_empty() && t.raw_data.len() % 4 != 0) {
            let count = count.map_or("more than 2^64".to_string(), |c| c.to_string());
            return Err(Error::tensor(
                path,
                &t.name,
                format!("shape {dims:?} needs {count} values, the file holds {held}"),
            ));
        }
        let values = if t.raw_data.is_empty() {
            t.float_data
        } else {
            t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        };
        initializers.insert(t.name, Initializer { dims, values });
    }
    let convs = graph
        .node
        .iter()
        .filter(|n| n.op_type == "Conv" && n.input.len() >= 2)
        .map(|n| ConvNode { weight: n.input[1].clone(), bias: n.input.get(2).cloned() })
        .collect();
    Ok(OnnxWeights { initializers, convs })
}

/// Encodes a minimal ONNX model (initializers and `Conv` nodes), for tests and fixtures.
pub fn write_minimal_onnx(tensors: &[(String, Vec<usize>, Vec<f32>)], convs: &[ConvNode]) -> Vec<u8> {
    let initializer = tensors
        .iter()
        .map(|(name, dims, values)| TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: 1,
            float_data: vec![],
            name: name.clone(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        })
        .collect();
    let node = convs
        .iter()
        .map(|c| NodeProto {
            input: std::iter::once("x".to_string()).chain([c.weight.clone()]).chain(c.bias.clone()).collect(),
            op_type: "Conv".into(),
        })
        .collect();
    ModelProto { graph: Some(GraphProto { node, initializer }) }.encode_to_vec()
}

//! Files: safetensors weights and tensors, JSON model descriptions, atomic writes.

pub mod atomic;
pub mod model_files;
pub mod onnx;
pub mod tensors;
pub mod vgg16;

pub use atomic::{refuse_overwriting_inputs, write_atomic};
pub use tensors::{load_into_varmap, read_tensors, require_tensor, write_tensors, write_tensors_as};

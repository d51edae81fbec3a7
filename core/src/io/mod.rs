//! Files: weights (safetensors, PyTorch `.pth`, Caffe `.caffemodel`) and tensors, JSON model
//! descriptions, atomic writes.

pub mod atomic;
pub mod caffe;
pub mod model_files;
pub mod onnx;
pub mod pickle;
pub mod pytorch;
pub mod tensors;
pub mod vgg16;
pub mod weights;

pub use atomic::{refuse_overwriting_inputs, write_atomic, write_folder};
pub use tensors::{
    load_into_varmap, non_finite, read_tensors, require_tensor, write_tensors, write_tensors_as,
};

/// Reads a whole file, refusing a folder, or a file larger than the memory budget
/// ([`crate::limits`]) before reading it.
///
/// # Errors
/// [`crate::Error::Io`] or [`crate::Error::File`] naming the file.
pub fn read_file(path: &std::path::Path) -> crate::Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| crate::Error::io(path, e))?;
    if meta.is_dir() {
        return Err(crate::Error::file(path, "is a folder, not a file"));
    }
    crate::limits::check_memory(meta.len(), "reading this file")
        .map_err(|problem| crate::Error::file(path, problem))?;
    std::fs::read(path).map_err(|e| crate::Error::io(path, e))
}

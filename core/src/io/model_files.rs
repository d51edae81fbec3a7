//! A model's files: its description as JSON and its weights as safetensors, read strictly and
//! written atomically.

use std::path::Path;

use candle_core::Device;

use crate::error::{Error, Result};
use crate::models::{Model, ModelDesc};

impl ModelDesc {
    /// Writes the description as pretty JSON, atomically.
    ///
    /// # Errors
    /// [`Error::Io`] naming `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::file(path, e.to_string()))?;
        super::write_atomic(path, text.as_bytes())
    }
}

impl Model {
    /// Builds the model and loads its weights strictly from a safetensors file.
    ///
    /// # Errors
    /// [`crate::Error::Tensor`] naming the file and the tensor that does not fit.
    pub fn load(desc: ModelDesc, weights: &Path, device: &Device) -> Result<Self> {
        let model = Self::new(desc, device)?;
        super::tensors::load_into_varmap(model.varmap(), weights)?;
        Ok(model)
    }

    /// Saves the weights to a safetensors file, atomically.
    ///
    /// # Errors
    /// [`crate::Error::Io`] naming `path`.
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        super::tensors::write_tensors(&self.weights()?, path)
    }
}

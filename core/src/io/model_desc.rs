//! JSON model descriptions (SPEC §8): what network to build, beside its safetensors weights.
//!
//! A lone L-RNN module:
//! `{"kind": "lrnn", "in_channels": 3, "hidden": 8, "cell": "vanilla_ln", "merge": "sum"}`.
//! Unknown fields are an error, so a typo never silently falls back to a default.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::LayerRnnConfig;

/// A model description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelDesc {
    /// A lone L-RNN module (no prefix on its weights and captured maps).
    Lrnn(LayerRnnConfig),
}

impl ModelDesc {
    /// Parses a description from JSON text; `path` only names the source in errors.
    ///
    /// # Errors
    /// [`Error::File`] naming `path` and the problem (invalid JSON, unknown kind or field,
    /// missing field, zero sizes).
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let desc: ModelDesc = serde_json::from_str(text)
            .map_err(|e| Error::file(path, format!("not a valid model description: {e}")))?;
        desc.validate().map_err(|problem| Error::file(path, problem))?;
        Ok(desc)
    }

    /// Reads a description file.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::File`] naming `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text, path)
    }

    /// Writes the description as pretty JSON, atomically.
    ///
    /// # Errors
    /// [`Error::Io`] naming `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::file(path, e.to_string()))?;
        super::write_atomic(path, text.as_bytes())
    }

    fn validate(&self) -> std::result::Result<(), String> {
        match self {
            ModelDesc::Lrnn(c) if c.in_channels == 0 || c.hidden == 0 => {
                Err("in_channels and hidden must be at least 1".into())
            }
            ModelDesc::Lrnn(_) => Ok(()),
        }
    }
}

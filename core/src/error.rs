//! The library's error type: every error about user data names the file (and tensor) at fault.

use std::path::PathBuf;

/// Errors of `lrnn-core`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error (in the message, not also as a source: printing the chain would say it
        /// twice).
        error: std::io::Error,
    },
    /// A file is malformed as a whole (not safetensors, invalid JSON, unknown field, …).
    #[error("{}: {problem}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        problem: String,
    },
    /// One tensor of a file is missing, unexpected, or of the wrong dtype or shape.
    #[error("{}: tensor `{tensor}`: {problem}", path.display())]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// What is wrong, in words.
        problem: String,
    },
    /// A request does not fit the model (inserting into a layer that does not exist, …).
    #[error("{0}")]
    Invalid(String),
    /// The GPU path cannot run this (no adapter, a buffer beyond the adapter's limits, a model
    /// kind not built for it yet, a lost device); callers fall back to the CPU path.
    #[error("GPU: {0}")]
    Gpu(String),
    /// A computation failed (shape mismatch, device error).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Results of `lrnn-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::File`] (a problem longer than [`MAX_PROBLEM`] characters is shortened: a
    /// parser may quote a huge field value).
    pub fn file(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Error::File { path: path.into(), problem: shorten(problem.into()) }
    }

    /// An [`Error::Tensor`].
    pub fn tensor(path: impl Into<PathBuf>, tensor: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::Tensor { path: path.into(), tensor: shorten(tensor.into()), problem: shorten(problem.into()) }
    }

    /// An [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), error: source }
    }
}

/// The longest problem text an error keeps, in characters.
pub const MAX_PROBLEM: usize = 400;

/// `text` cut to [`MAX_PROBLEM`] characters, saying how much was left out.
fn shorten(text: String) -> String {
    let n = text.chars().count();
    if n <= MAX_PROBLEM {
        return text;
    }
    let kept: String = text.chars().take(MAX_PROBLEM).collect();
    format!("{kept}… ({} more characters)", n - MAX_PROBLEM)
}

//! Datasets: an in-memory image set and readers of the real formats (CIFAR-10 binary,
//! Fashion-MNIST IDX) and a generated long-range context task, plus augmentation.

pub mod augment;
pub mod cifar10;
pub mod context;
pub mod fashion_mnist;
pub mod image_set;
pub mod voc;

pub use augment::Augment;
pub use image_set::{ImageSet, Splits};

use std::path::Path;

use crate::error::{Error, Result};

/// The dataset formats the CLI knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `cifar-10-batches-bin` (40k/10k/10k split).
    Cifar10,
    /// Fashion-MNIST IDX files (padded to 32x32).
    FashionMnist,
    /// The generated long-range context task (`--path` is ignored; a seed instead).
    Context,
}

impl Format {
    /// The class names of this format's labels.
    pub fn class_names(self) -> &'static [&'static str] {
        match self {
            Format::Cifar10 => &cifar10::CLASSES,
            Format::FashionMnist => &fashion_mnist::CLASSES,
            Format::Context => &context::CLASSES,
        }
    }

    /// Parses a format name.
    ///
    /// # Errors
    /// A message listing the known formats.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cifar10" | "cifar-10" => Ok(Format::Cifar10),
            "fashion-mnist" | "fashion_mnist" => Ok(Format::FashionMnist),
            "context" => Ok(Format::Context),
            _ => Err(format!("unknown dataset format `{s}`; known: cifar10, fashion-mnist, context")),
        }
    }

    /// The on-the-fly augmentation that keeps this data's labels true: flips, rotations and
    /// scaling for photographs; none for the generated context task, whose label a horizontal
    /// flip would invert (and which has no shortage of images).
    pub fn label_preserving_augment(self) -> Option<augment::Augment> {
        match self {
            Format::Cifar10 | Format::FashionMnist => Some(augment::Augment::default()),
            Format::Context => None,
        }
    }
}

/// Loads the train / validation / test splits of a dataset.
///
/// # Errors
/// [`Error::Io`] or [`Error::File`] naming the missing, truncated or malformed file.
pub fn load(format: Format, path: &Path) -> Result<Splits> {
    match format {
        Format::Cifar10 => cifar10::load(path),
        Format::FashionMnist => fashion_mnist::load(path),
        Format::Context => Ok(context::generate(&context::ContextTask::default())),
    }
}

/// Reads a whole file, naming it in errors.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

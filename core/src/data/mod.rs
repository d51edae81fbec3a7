//! Datasets: an in-memory image set and readers of the real formats (CIFAR-10 binary,
//! Fashion-MNIST IDX) and a generated long-range context task, plus augmentation; for
//! segmentation, an in-memory set with per-pixel labels, PASCAL VOC and generated scenes.

pub mod augment;
pub mod cifar10;
pub mod context;
pub mod fashion_mnist;
pub mod image_set;
pub mod photo;
pub mod scenes;
pub mod seg_set;
pub mod voc;

pub use augment::Augment;
pub use image_set::{ImageSet, Splits};
pub use seg_set::{SegSet, SegSplits};

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
    /// Segmentation: a PASCAL VOC 2012 tree (`train` and `val` lists).
    Voc,
    /// Segmentation: generated scenes whose labels depend on a distant mark (no folder).
    Scenes,
}

impl Format {
    /// The class names of this format's labels.
    pub fn class_names(self) -> &'static [&'static str] {
        match self {
            Format::Cifar10 => &cifar10::CLASSES,
            Format::FashionMnist => &fashion_mnist::CLASSES,
            Format::Context => &context::CLASSES,
            Format::Voc => &voc::VOC_CLASSES,
            Format::Scenes => &scenes::CLASSES,
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
            "voc" => Ok(Format::Voc),
            "scenes" => Ok(Format::Scenes),
            _ => Err(format!(
                "unknown dataset format `{s}`; known: cifar10, fashion-mnist, context, voc, scenes"
            )),
        }
    }

    /// The on-the-fly augmentation that keeps this data's labels true: flips, rotations and
    /// scaling for photographs; none for the generated context task, whose label a horizontal
    /// flip would invert (and which has no shortage of images).
    pub fn label_preserving_augment(self) -> Option<augment::Augment> {
        match self {
            Format::Cifar10 | Format::FashionMnist => Some(augment::Augment::default()),
            Format::Context => None,
            // Segmentation flips photo and labels together (SPEC §6: horizontal flips only).
            Format::Voc | Format::Scenes => Some(augment::Augment { flip: true, ..augment::Augment::NONE }),
        }
    }

    /// Whether this is a segmentation format (per-pixel labels).
    pub fn is_segmentation(self) -> bool {
        matches!(self, Format::Voc | Format::Scenes)
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
        Format::Voc | Format::Scenes => {
            Err(Error::file(path, "segmentation data has per-pixel labels: train it with `lrnn train-seg`"))
        }
    }
}

/// Loads the train and validation splits of a segmentation dataset at `size x size`: a VOC tree
/// (its `train` and `val` lists, the first `max_train` / `max_val` images) or generated scenes.
///
/// # Errors
/// As [`voc::VocSplit::open`] and [`voc::VocSplit::load_resized`]; [`Error::Invalid`] for a
/// classification format, or sides that are not multiples of 32 (the FCNs' stride).
pub fn load_segmentation(
    format: Format,
    path: &Path,
    size: usize,
    scenes_task: Option<scenes::SceneTask>,
    max_train: Option<usize>,
    max_val: Option<usize>,
) -> Result<SegSplits> {
    if size == 0 || size % 32 != 0 {
        return Err(Error::Invalid(format!(
            "segmentation input {size}x{size}: the FCNs need a multiple of 32"
        )));
    }
    match format {
        Format::Voc => {
            // A split asked for none of its images is not read (a tree may lack its list).
            let load = |split: &str, max: Option<usize>| -> Result<seg_set::SegSet> {
                if max == Some(0) {
                    let classes = voc::VOC_CLASSES.iter().map(|c| (*c).to_string()).collect();
                    return Ok(seg_set::SegSet::new((size, size), classes));
                }
                let list = voc::VocSplit::open(path, split)?;
                if split == "train" {
                    list.load_for_training(size, max)
                } else {
                    list.load_resized(size, max)
                }
            };
            Ok(SegSplits { train: load("train", max_train)?, val: load("val", max_val)? })
        }
        Format::Scenes => {
            let mut task = scenes_task.unwrap_or_default();
            task.size = size;
            if let Some(problem) = task.check() {
                return Err(Error::Invalid(problem));
            }
            if task.dims().1 % 32 != 0 {
                return Err(Error::Invalid(format!(
                    "scenes {} px wide: the FCNs need a multiple of 32",
                    task.dims().1
                )));
            }
            task.train = max_train.map_or(task.train, |m| m.min(task.train));
            task.val = max_val.map_or(task.val, |m| m.min(task.val));
            Ok(scenes::generate(&task))
        }
        other => Err(Error::Invalid(format!("{other:?} is not a segmentation format"))),
    }
}

/// Reads a whole file, naming it in errors.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    crate::io::read_file(path)
}

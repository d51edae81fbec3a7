//! CIFAR-10 in its binary form (`cifar-10-batches-bin`): `data_batch_1.bin` … `data_batch_5.bin`
//! and `test_batch.bin`, each a sequence of records of 1 label byte and 3072 pixel bytes
//! (3x32x32, channel planes). Split as in the paper: the first 40,000 training images train,
//! the last 10,000 validate, `test_batch.bin` tests.

use std::path::Path;

use super::image_set::{ImageSet, Splits};
use crate::error::{Error, Result};

/// Class names, by label.
pub const CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

const RECORD: usize = 1 + 3 * 32 * 32;

/// Reads one batch file.
///
/// # Errors
/// [`Error::Io`] when missing; [`Error::File`] when its size is not a whole number of records or
/// a label is out of range.
pub fn read_batch(path: &Path) -> Result<ImageSet> {
    let bytes = super::read(path)?;
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(Error::file(
            path,
            format!(
                "truncated or not a CIFAR-10 batch: {} bytes is not a whole number of {RECORD}-byte records",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / RECORD;
    let mut pixels = Vec::with_capacity(n * (RECORD - 1));
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if usize::from(rec[0]) >= CLASSES.len() {
            return Err(Error::file(
                path,
                format!("record {i}: label {} is not a CIFAR-10 class (0-9)", rec[0]),
            ));
        }
        labels.push(rec[0]);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok(ImageSet { pixels, labels, shape: (3, 32, 32), classes: CLASSES.map(String::from).to_vec() })
}

/// Loads `dir` (the `cifar-10-batches-bin` folder) with the paper's 40k/10k/10k split (the last
/// fifth of the training images validate, whatever their number).
///
/// # Errors
/// The first missing, truncated or malformed file.
pub fn load(dir: &Path) -> Result<Splits> {
    let mut train = read_batch(&dir.join("data_batch_1.bin"))?;
    for i in 2..=5 {
        let more = read_batch(&dir.join(format!("data_batch_{i}.bin")))?;
        train.pixels.extend_from_slice(&more.pixels);
        train.labels.extend_from_slice(&more.labels);
    }
    let test = read_batch(&dir.join("test_batch.bin"))?;
    let cut = train.len() * 4 / 5;
    let val = train.slice(cut..train.len());
    let train = train.slice(0..cut);
    Ok(Splits { train, val, test })
}

//! Fashion-MNIST in its IDX files (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
//! `t10k-…`), as Debian's `dataset-fashion-mnist` installs them in
//! `/usr/share/datasets/fashion-mnist/`. Images are 28x28 grey, zero-padded to 32x32 for the CIFAR
//! networks; the last sixth of the training images (10,000 of 60,000) validate.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::image_set::{ImageSet, Splits};
use crate::error::{Error, Result};

/// Class names, by label.
pub const CLASSES: [&str; 10] = [
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
];

/// `stem` in `dir`, gzipped or not.
fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    for name in [format!("{stem}.gz"), stem.to_string()] {
        let p = dir.join(name);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(Error::file(dir.join(stem), "missing (neither the file nor its .gz is there)"))
}

/// The bytes of an IDX file, gunzipped when its name ends in `.gz`.
fn read_idx(path: &Path) -> Result<Vec<u8>> {
    let raw = super::read(path)?;
    if path.extension().is_some_and(|e| e == "gz") {
        // Decompressed no further than the memory budget (a gzip bomb stops there).
        let budget = crate::limits::memory_budget();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .take(budget.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| Error::file(path, format!("not a valid gzip file: {e}")))?;
        crate::limits::check_memory(out.len() as u64, "decompressing this file")
            .map_err(|problem| Error::file(path, problem))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an IDX file of unsigned bytes with `rank` dimensions; returns the dimensions and data.
fn parse_idx(bytes: &[u8], rank: usize, path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let header = 4 + 4 * rank;
    if bytes.len() < header
        || bytes[0] != 0
        || bytes[1] != 0
        || bytes[2] != 0x08
        || usize::from(bytes[3]) != rank
    {
        return Err(Error::file(path, format!("not an IDX file of unsigned bytes with {rank} dimensions")));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            u32::from_be_bytes([bytes[4 + 4 * i], bytes[5 + 4 * i], bytes[6 + 4 * i], bytes[7 + 4 * i]])
                as usize
        })
        .collect();
    let expected = crate::limits::elements(&dims);
    let data = &bytes[header..];
    if dims.contains(&0) {
        return Err(Error::file(path, format!("dimensions {dims:?}: a dimension is 0")));
    }
    if expected != Some(data.len() as u64) {
        let expected = expected.map_or("more than 2^64".to_string(), |e| e.to_string());
        return Err(Error::file(
            path,
            format!(
                "truncated or malformed: dimensions {dims:?} need {expected} bytes, the file has {}",
                data.len()
            ),
        ));
    }
    Ok((dims, data.to_vec()))
}

/// Reads one images + labels pair (`prefix` is `train` or `t10k`).
///
/// # Errors
/// The missing, truncated or inconsistent file.
pub fn read_pair(dir: &Path, prefix: &str) -> Result<ImageSet> {
    let ipath = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lpath = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (idims, pixels) = parse_idx(&read_idx(&ipath)?, 3, &ipath)?;
    let (ldims, labels) = parse_idx(&read_idx(&lpath)?, 1, &lpath)?;
    if idims[0] != ldims[0] {
        return Err(Error::file(
            &lpath,
            format!("{} labels for {} images in {}", ldims[0], idims[0], ipath.display()),
        ));
    }
    if idims[1] > 32 || idims[2] > 32 {
        return Err(Error::file(
            &ipath,
            format!(
                "images of {}x{}: Fashion-MNIST's are 28x28, and this reader pads them to 32x32 (larger ones would be cropped)",
                idims[1], idims[2]
            ),
        ));
    }
    if let Some(i) = labels.iter().position(|&l| usize::from(l) >= CLASSES.len()) {
        return Err(Error::file(&lpath, format!("label {} of item {i} is not a class (0-9)", labels[i])));
    }
    Ok(ImageSet {
        pixels,
        labels,
        shape: (1, idims[1], idims[2]),
        classes: CLASSES.map(String::from).to_vec(),
    })
}

/// Loads the dataset from `dir`, padded to 32x32, split 50k/10k/10k.
///
/// # Errors
/// The first missing, truncated or malformed file.
pub fn load(dir: &Path) -> Result<Splits> {
    let train = read_pair(dir, "train")?.pad_to(32, 32);
    let test = read_pair(dir, "t10k")?.pad_to(32, 32);
    let cut = train.len() * 5 / 6;
    Ok(Splits { val: train.slice(cut..train.len()), train: train.slice(0..cut), test })
}

//! The app's file work, done on the worker thread (never on the UI thread): listing a folder's
//! photos, checking a VOC tree's masks, paths as people read them, writing exports, copying a
//! checkpoint.

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::options::assets_dir;

/// A path as the user reads it: bundled files relative to `assets/`, others in full.
pub fn display_path(p: &Path) -> String {
    let assets = assets_dir().canonicalize().unwrap_or_else(|_| assets_dir());
    let full = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    match full.strip_prefix(&assets) {
        Ok(rel) => format!("bundled {}", rel.display()),
        Err(_) => p.display().to_string(),
    }
}

/// For a VOC tree: which photos have no ground-truth mask in `SegmentationClass/`, in words
/// (`None` when every photo has one, or the folder is not a VOC tree).
pub fn voc_masks_missing(dir: &Path, photos: &[PathBuf]) -> Option<String> {
    if !dir.join("JPEGImages").is_dir() {
        return None;
    }
    let masks = dir.join("SegmentationClass");
    if !masks.is_dir() {
        return Some(format!("{}: missing, so there is no ground truth for these photos", masks.display()));
    }
    let missing: Vec<&PathBuf> = photos
        .iter()
        .filter(|p| p.file_stem().is_none_or(|s| !masks.join(s).with_extension("png").exists()))
        .collect();
    let first = missing.first()?;
    let stem = first.file_stem().map_or(String::new(), |s| s.to_string_lossy().into_owned());
    Some(format!(
        "{} of {} photos have no mask in {} (the first: {stem}.png)",
        missing.len(),
        photos.len(),
        masks.display()
    ))
}

/// The photos of a folder, sorted; for a VOC tree (a folder with `JPEGImages/`), its photos.
///
/// # Errors
/// The folder cannot be read (the message names it).
pub fn list_photos(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let dir = if dir.join("JPEGImages").is_dir() { dir.join("JPEGImages") } else { dir.to_path_buf() };
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("{}: cannot read the folder: {e}", dir.display()))?;
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg" | "bmp")
                })
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Copies a checkpoint folder to `dest` (a new folder), through a temporary folder renamed at
/// the end, so `dest` is either complete or absent.
///
/// # Errors
/// `dest` exists or cannot be written (the message names it).
pub fn copy_checkpoint(from: &Path, dest: &Path) -> Result<(), String> {
    if dest.exists() {
        return Err(format!("{}: already exists; choose a new folder name", dest.display()));
    }
    // Whole or not at all (a temporary folder renamed at the end).
    lrnn_core::io::write_folder(dest, |tmp| {
        let entries = std::fs::read_dir(from).map_err(|e| lrnn_core::Error::io(from, e))?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_file() {
                let to = tmp.join(entry.file_name());
                std::fs::copy(&p, &to).map_err(|e| lrnn_core::Error::io(&to, e))?;
            }
        }
        Ok(())
    })
    .map_err(|e| e.to_string())
}

/// Writes a picture as PNG atomically (temp file, then rename).
///
/// # Errors
/// The folder is not writable (the message names the file).
pub fn save_png(img: &RgbImage, path: &Path) -> Result<(), String> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| format!("{}: cannot encode: {e}", path.display()))?;
    lrnn_core::io::write_atomic(path, &bytes).map_err(|e| e.to_string())
}

/// Writes text atomically.
///
/// # Errors
/// The folder is not writable (the message names the file).
pub fn save_text(text: &str, path: &Path) -> Result<(), String> {
    lrnn_core::io::write_atomic(path, text.as_bytes()).map_err(|e| e.to_string())
}

/// Writes a view's export as `<stem>.png` and `<stem>.csv` beside `path` (its extension
/// replaced); returns the two files.
///
/// # Errors
/// The files cannot be written (the message names them).
pub fn write_export(picture: &RgbImage, csv: &str, path: &Path) -> Result<(PathBuf, PathBuf), String> {
    let (png, table) = (path.with_extension("png"), path.with_extension("csv"));
    save_png(picture, &png)?;
    save_text(csv, &table)?;
    Ok((png, table))
}

//! Writing files so that a reader never sees a partly written one: write a temporary file beside
//! the target, flush it to disk, then rename it over the target.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically.
///
/// # Errors
/// [`Error::Io`] naming `path` when the directory is not writable or the disk is full; the
/// target is then left as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// A path's identity for comparing files: the canonical path when it exists, else its folder's
/// canonical path joined with its name (an output not written yet).
fn identity(path: &Path) -> Option<std::path::PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(dir.canonicalize().ok()?.join(path.file_name()?))
}

/// Refuses an output that is one of the inputs (the same file by another name too): writing it
/// would destroy the user's file.
///
/// # Errors
/// [`Error::File`] naming the output and the input it would replace.
pub fn refuse_overwriting_inputs<'a>(
    output: &Path,
    inputs: impl IntoIterator<Item = &'a Path>,
) -> Result<()> {
    let Some(out) = identity(output) else { return Ok(()) };
    for input in inputs {
        if identity(input).is_some_and(|i| i == out) {
            return Err(Error::file(
                output,
                format!(
                    "this output is also the input {}: refusing to overwrite it; choose another output",
                    input.display()
                ),
            ));
        }
    }
    Ok(())
}

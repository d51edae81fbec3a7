//! Writing files so that a reader never sees a partly written one: write a temporary file beside
//! the target, flush it to disk, then rename it over the target. Folders likewise: filled under a
//! temporary name, then renamed into place, so they appear whole or not at all.

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

/// Writes a folder whole or not at all: `fill` writes into a temporary folder beside `out`
/// (`.<name>.partial-<pid>`), which is renamed to `out` when it succeeds and removed when it
/// fails. Leftovers of earlier runs that were killed are removed first. An existing `out` must
/// be an empty folder (it is replaced): a folder with files is never written over.
///
/// # Errors
/// [`Error::File`] for a non-empty `out`; `fill`'s error; [`Error::Io`] naming the folder.
pub fn write_folder<T>(out: &Path, fill: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    if out.exists() {
        let empty = std::fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !empty {
            return Err(Error::file(
                out,
                "exists and is not empty: choose a new folder (nothing was written)",
            ));
        }
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let prefix = format!(".{name}.partial-");
    if let Ok(entries) = std::fs::read_dir(&parent) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let tmp = parent.join(format!("{prefix}{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let value = match fill(&tmp) {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if out.exists() {
        let _ = std::fs::remove_dir(out);
    }
    std::fs::rename(&tmp, out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp);
        Error::io(out, e)
    })?;
    Ok(value)
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

#[cfg(test)]
mod folder_tests {
    use super::write_folder;
    use crate::error::Error;

    #[test]
    fn a_folder_appears_whole_or_not_at_all_and_is_never_written_over() {
        let root = std::env::temp_dir().join(format!("lrnn-write-folder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let out = root.join("packed");
        // A leftover of a killed run is cleaned up.
        std::fs::create_dir_all(root.join(".packed.partial-1")).unwrap();
        // A failure leaves nothing.
        let failed: crate::Result<()> = write_folder(&out, |tmp| {
            std::fs::write(tmp.join("a"), b"half").unwrap();
            Err(Error::Invalid("disk full".into()))
        });
        assert!(failed.is_err() && !out.exists());
        let left: Vec<_> = std::fs::read_dir(&root).unwrap().flatten().collect();
        assert!(left.is_empty(), "leftovers: {left:?}");
        // Success: the whole folder.
        write_folder(&out, |tmp| std::fs::write(tmp.join("a"), b"whole").map_err(|e| Error::io(tmp, e)))
            .unwrap();
        assert_eq!(std::fs::read(out.join("a")).unwrap(), b"whole");
        // A folder with files is refused and kept.
        let err = write_folder(&out, |_| Ok(())).unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
        assert_eq!(std::fs::read(out.join("a")).unwrap(), b"whole");
        let _ = std::fs::remove_dir_all(&root);
    }
}

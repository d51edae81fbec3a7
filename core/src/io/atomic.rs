//! Writing files so that a reader never sees a partly written one: write a temporary file beside
//! the target, flush it to disk, then rename it over the target. Folders likewise: filled under a
//! temporary name, then renamed into place, so they appear whole or not at all.

use std::io::Write;
use std::path::{Path, PathBuf};

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
    let prefix = format!(".{name}.tmp-");
    remove_leftovers(&dir, &prefix);
    let tmp = dir.join(format!("{prefix}{}", std::process::id()));
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
    remove_leftovers(&parent, &prefix);
    let tmp = parent.join(format!("{prefix}{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let value = match fill(&tmp) {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(renamed(e, &tmp, out));
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

/// An error about a file in the temporary folder `tmp`, told of its place in `out` (the user
/// never sees the temporary name).
fn renamed(e: Error, tmp: &Path, out: &Path) -> Error {
    let fix = |p: PathBuf| p.strip_prefix(tmp).map_or(p.clone(), |rel| out.join(rel));
    match e {
        Error::Io { path, error } => Error::Io { path: fix(path), error },
        Error::File { path, problem } => Error::File { path: fix(path), problem },
        Error::Tensor { path, tensor, problem } => Error::Tensor { path: fix(path), tensor, problem },
        other => other,
    }
}

/// Removes the temporary files and folders `<prefix><pid>` in `dir` that a killed process left:
/// those whose process is gone (where `/proc` tells), else those untouched for an hour. A
/// running writer's temporary is kept.
fn remove_leftovers(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let proc = Path::new("/proc/self").exists();
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file.strip_prefix(prefix).and_then(|p| p.parse::<u32>().ok()) else { continue };
        let stale = if pid == std::process::id() {
            true
        } else if proc {
            !Path::new(&format!("/proc/{pid}")).exists()
        } else {
            e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(3600))
        };
        if stale {
            let p = e.path();
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
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
        // (4194304 is above Linux's largest pid: no process has it.)
        std::fs::create_dir_all(root.join(".packed.partial-4194304")).unwrap();
        // A running writer's temporary folder is kept (pid 1 is always alive).
        let running = root.join(".packed.partial-1");
        if std::path::Path::new("/proc/1").exists() {
            std::fs::create_dir_all(&running).unwrap();
        }
        // A failure leaves nothing.
        let failed: crate::Result<()> = write_folder(&out, |tmp| {
            std::fs::write(tmp.join("a"), b"half").unwrap();
            Err(Error::Invalid("disk full".into()))
        });
        assert!(failed.is_err() && !out.exists());
        // An error in a file of the temporary folder names the file's place in the output.
        let failed: crate::Result<()> =
            write_folder(&out, |tmp| Err(Error::io(tmp.join("w.bin"), std::io::Error::other("disk full"))));
        assert_eq!(failed.unwrap_err().to_string(), format!("{}: disk full", out.join("w.bin").display()));
        let left: Vec<_> =
            std::fs::read_dir(&root).unwrap().flatten().map(|e| e.path()).filter(|p| *p != running).collect();
        assert!(left.is_empty(), "leftovers: {left:?}");
        let _ = std::fs::remove_dir_all(&running);
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

    #[test]
    fn a_file_write_removes_the_temporary_a_killed_writer_left() {
        let root = std::env::temp_dir().join(format!("lrnn-write-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let target = root.join("w.safetensors");
        std::fs::write(root.join(".w.safetensors.tmp-4194304"), b"half").unwrap();
        std::fs::write(root.join(".other.tmp-4194304"), b"not ours").unwrap();
        super::write_atomic(&target, b"whole").unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into())
            .collect();
        left.sort();
        assert_eq!(left, [".other.tmp-4194304", "w.safetensors"]);
        let _ = std::fs::remove_dir_all(&root);
    }
}

//! Scratch folders for tests that leaves no litter behind between runs.
//!
//! Every test process gets one root, `<temp>/lrnn-tests/<binary>-<pid>/`. A test harness has no
//! hook at exit, so a run cannot remove its own root; instead the first scratch request of a run
//! removes the roots of this binary's earlier runs whose process is gone (on systems with
//! `/proc`; elsewhere they stay). What one run leaves is therefore bounded by one copy per test
//! binary, instead of growing with every run (VGG-sized test files made that gigabytes).
#![allow(clippy::unwrap_used, dead_code)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn binary() -> String {
    let exe = std::env::current_exe().unwrap();
    let stem = exe.file_stem().unwrap().to_string_lossy().to_string();
    // Cargo names test binaries `<name>-<hash>`.
    stem.rsplit_once('-').map_or(stem.clone(), |(name, _)| name.to_string())
}

fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let base = std::env::temp_dir().join("lrnn-tests");
        let name = binary();
        if Path::new("/proc/self").exists() {
            for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
                let file = entry.file_name().to_string_lossy().to_string();
                let pid = file.strip_prefix(&format!("{name}-")).and_then(|p| p.parse::<u32>().ok());
                if pid.is_some_and(|p| p != std::process::id() && !Path::new(&format!("/proc/{p}")).exists())
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// An empty folder `name` in this run's scratch root (emptied if a test of this run used it).
pub fn scratch_dir(name: &str) -> PathBuf {
    let d = root().join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A path `name` in this run's scratch root (nothing is created there).
pub fn scratch_path(name: &str) -> PathBuf {
    root().join(name)
}

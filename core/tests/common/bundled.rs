//! The bundled models' checkpoint folders, shared by the GPU parity test and the GPU benchmark.
//! Both run in `core/` (cargo runs tests and benches there; so does `benches/gpu_bench.sh`).

use std::path::PathBuf;

/// Every folder of `assets/models` holding a `model.json`, sorted.
///
/// # Panics
/// When `assets/models` cannot be read (a test or benchmark run outside `core/`).
pub fn bundled_model_dirs() -> Vec<PathBuf> {
    let root = std::path::Path::new("../assets/models");
    let mut folders: Vec<_> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("{}: {e} (run from core/)", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.json").exists())
        .collect();
    folders.sort();
    folders
}

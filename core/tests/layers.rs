//! The core's modules form layers, and no module reaches up: each top-level module of
//! `core/src` may use only the modules below it (ARCHITECTURE.md draws the same diagram). The
//! test reads every source file's `crate::` paths (code, not comments), so a new upward `use`
//! fails here with the file and the path that broke the order.

use std::path::Path;

mod layering;
use layering::{crate_uses, first_ident, rust_files};

/// Each top-level module with its layer: a module may use its own layer's base modules and any
/// lower layer, never a higher one, and never a module of its own layer other than itself
/// (layer 0 excepted: its modules are independent leaves).
const LAYERS: &[(&str, usize)] = &[
    ("error", 0),
    ("rng", 0),
    ("colour", 0),
    ("limits", 0),
    ("nn", 1),
    ("crf", 1),
    ("models", 2),
    ("io", 3),
    ("data", 4),
    ("gpu", 5),
    ("train", 6),
    ("probe", 7),
];

#[test]
fn no_module_of_the_core_uses_a_higher_one() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (seen, violations) = layering::violations(&src, LAYERS);
    assert!(seen > 20, "read only {seen} source files under {}", src.display());
    assert!(violations.is_empty(), "modules reaching up:\n{}", violations.join("\n"));
}

#[test]
fn the_reader_of_paths_finds_grouped_and_plain_uses() {
    assert_eq!(crate_uses("use crate::models::Model;"), ["models"]);
    assert_eq!(crate_uses("use crate::{nn::Forward, io::{self, x}, probe};"), ["nn", "io", "probe"]);
    assert_eq!(crate_uses("let a = crate::gpu::paint(x); crate::rng::Rng(1)"), ["gpu", "rng"]);
    assert!(crate_uses("use super::kernels;").is_empty());
}

#[test]
fn the_kernels_know_no_layer() {
    // `nn/kernels/` holds how things run fast; of the paper's layers it may name only the
    // vocabulary of cells, axes, directions and merges (`nn/cell.rs`).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/nn/kernels");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    assert!(files.len() >= 8, "found only {} kernel files in {}", files.len(), dir.display());
    let mut violations = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            let mut rest = code;
            while let Some(at) = rest.find("crate::nn::") {
                rest = &rest[at + "crate::nn::".len()..];
                let name = first_ident(rest).unwrap_or_default();
                if name != "cell" && name != "kernels" {
                    violations.push(format!("{}:{}: uses crate::nn::{name}", file.display(), n + 1));
                }
            }
            if code.contains("super::super") {
                violations.push(format!("{}:{}: reaches up with super::super", file.display(), n + 1));
            }
        }
    }
    assert!(violations.is_empty(), "kernels using layers:\n{}", violations.join("\n"));
}

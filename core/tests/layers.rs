//! The core's modules form layers, and no module reaches up: each top-level module of
//! `core/src` may use only the modules below it (ARCHITECTURE.md draws the same diagram). The
//! test reads every source file's `crate::` paths (code, not comments), so a new upward `use`
//! fails here with the file and the path that broke the order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top-level module with its layer: a module may use its own layer's base modules and any
/// lower layer, never a higher one, and never a module of its own layer other than itself
/// (layer 0 excepted: its modules are independent leaves).
const LAYERS: &[(&str, usize)] = &[
    ("error", 0),
    ("rng", 0),
    ("colour", 0),
    ("nn", 1),
    ("models", 2),
    ("io", 3),
    ("data", 4),
    ("gpu", 5),
    ("probe", 6),
    ("train", 6),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read core/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a line of code names through `crate::` (also in grouped imports,
/// `use crate::{a::b, c}`).
fn crate_uses(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group, up to its closing brace.
            let mut depth = 0usize;
            let mut start = 0usize;
            for (i, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.extend(first_ident(&group[start..i]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.extend(first_ident(&group[start..i]));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.extend(first_ident(rest));
        }
    }
    found
}

fn first_ident(s: &str) -> Option<String> {
    let s = s.trim_start();
    let ident: String = s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!ident.is_empty() && ident != "self").then_some(ident)
}

#[test]
fn no_module_of_the_core_uses_a_higher_one() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layer: BTreeMap<&str, usize> = LAYERS.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut seen_modules = 0;
    let mut violations = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let top = rel.components().next().expect("a component").as_os_str().to_string_lossy();
        let top = top.trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(&own) = layer.get(top.as_str()) else {
            panic!("{}: module `{top}` is not in the layer table of this test", rel.display());
        };
        seen_modules += 1;
        let text = std::fs::read_to_string(file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for used in crate_uses(code) {
                if used == top {
                    continue;
                }
                let Some(&theirs) = layer.get(used.as_str()) else {
                    continue; // a crate-level item (`crate::Result`, `crate::Error`, …)
                };
                if theirs > own || (theirs == own && own > 0) || (own == 0 && theirs == 0) {
                    violations.push(format!(
                        "{}:{}: `{top}` (layer {own}) uses `{used}` (layer {theirs})",
                        rel.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(seen_modules > 20, "read only {seen_modules} source files under {}", src.display());
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

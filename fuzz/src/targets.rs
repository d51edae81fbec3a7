//! The fuzz targets: one per reader of user files. Each takes arbitrary bytes, puts them where
//! the reader looks (a scratch file or folder), and runs the reader and what a command does
//! next with what it read. A target may return an error (a clear refusal) but must never
//! panic, abort on allocation or hang: under `cargo fuzz` libFuzzer reports those, and the
//! workspace's smoke test (`tests/fuzz_smoke.rs`) runs every target over the committed corpus
//! and mutations of it on every CI run.
//!
//! Shared as source by the cargo-fuzz crate (`fuzz/`) and the smoke test: it needs only
//! `lrnn-core`, `candle-core`, `candle-nn` and `std`.

use std::path::{Path, PathBuf};
use std::sync::Once;

use candle_core::{Device, Tensor};
use lrnn_core::data::{cifar10, fashion_mnist, photo, voc};
use lrnn_core::io;
use lrnn_core::models::{Model, ModelDesc};
use lrnn_core::train::Checkpoint;

/// A target: its name (the corpus folder) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("safetensors_weights", safetensors_weights),
    ("safetensors_input", safetensors_input),
    ("model_json", model_json),
    ("image", image),
    ("cifar_batch", cifar_batch),
    ("idx", idx),
    ("label_png", label_png),
    ("voc_split", voc_split),
    ("checkpoint_state", checkpoint_state),
    ("run_latest", run_latest),
    ("onnx", onnx),
    ("pth_trunk", pth_trunk),
    ("weights_file", weights_file),
];

/// The memory budget under fuzzing: a description that is valid but large would otherwise
/// allocate up to the default 16 GiB per input.
const FUZZ_MEMORY_GB: &str = "0.25";

static SETUP: Once = Once::new();

/// A scratch folder of this process and thread, created once; `LRNN_MEMORY_LIMIT_GB` set low.
fn scratch(name: &str) -> PathBuf {
    SETUP.call_once(|| {
        if std::env::var_os(lrnn_core::limits::MEMORY_ENV).is_none() {
            std::env::set_var(lrnn_core::limits::MEMORY_ENV, FUZZ_MEMORY_GB);
        }
    });
    let thread = format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_alphanumeric(), "");
    let dir = std::env::temp_dir().join(format!("lrnn-fuzz-{}-{thread}", std::process::id())).join(name);
    std::fs::create_dir_all(&dir).expect("create the scratch folder");
    dir
}

/// Writes `data` to `name` in the target's scratch folder and returns the file.
fn file(target: &str, name: &str, data: &[u8]) -> PathBuf {
    let p = scratch(target).join(name);
    std::fs::write(&p, data).expect("write the scratch file");
    p
}

/// The bundled Context-LRNN (a small convnet with L-RNNs): description, weights and mean.
fn bundled(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/models/context-lrnn").join(name)
}

/// Runs a model once on a small input of a side it accepts, as `lrnn run` would.
fn run_once(model: &Model) {
    let graph = model.graph();
    let side = graph.min_input().max(graph.input_multiple).clamp(1, 64);
    if graph.check_input(1, side, side).is_err() {
        return;
    }
    if let Ok(x) = Tensor::zeros((1, graph.in_channels, side, side), candle_core::DType::F32, &Device::Cpu) {
        let _ = model.forward(&x, &mut lrnn_core::nn::Forward::eval());
    }
}

/// A safetensors file as the weights of the bundled Context-LRNN, then a forward pass.
pub fn safetensors_weights(data: &[u8]) {
    let p = file("weights", "weights.safetensors", data);
    let Ok(desc) = ModelDesc::load(&bundled("model.json")) else { return };
    if let Ok(model) = Model::load(desc, &p, &Device::Cpu) {
        run_once(&model);
    }
}

/// A safetensors file as `lrnn run --input`: every tensor read, `input` taken at rank 4.
pub fn safetensors_input(data: &[u8]) {
    let p = file("input", "input.safetensors", data);
    if let Ok(t) = io::read_tensors(&p, &Device::Cpu) {
        let _ = io::require_tensor(&t, "input", 4, &p);
    }
}

/// A model description: loaded, lowered to its graph, built and run when it fits the limits.
pub fn model_json(data: &[u8]) {
    let p = file("model", "model.json", data);
    if let Ok(desc) = ModelDesc::load(&p) {
        let _ = desc.graph();
        if let Ok(model) = Model::new_seeded(desc, &Device::Cpu, 0) {
            run_once(&model);
        }
    }
}

/// A photo: decoded, then prepared for the bundled Context-LRNN and for an FCN.
pub fn image(data: &[u8]) {
    let p = file("image", "photo.png", data);
    if let Ok(img) = photo::read_photo(&p) {
        if let Ok(desc) = ModelDesc::load(&bundled("model.json")) {
            let _ = photo::photo_input(&img, &desc, 32, None);
        }
        let fcn = ModelDesc::from_name_or_file("FCN-32s");
        if let Ok(fcn) = fcn {
            let _ = photo::photo_input(&img, &fcn, 32, None);
        }
    }
}

/// A CIFAR-10 binary batch.
pub fn cifar_batch(data: &[u8]) {
    let p = file("cifar", "data_batch_1.bin", data);
    let _ = cifar10::read_batch(&p);
}

/// IDX files: after a 4-byte little-endian length, that many bytes as the images file and the
/// rest as the labels file.
pub fn idx(data: &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<4>() else { return };
    let (images, labels) = rest.split_at((u32::from_le_bytes(*len) as usize).min(rest.len()));
    let dir = scratch("idx");
    let _ = std::fs::write(dir.join("train-images-idx3-ubyte"), images);
    let _ = std::fs::write(dir.join("train-labels-idx1-ubyte"), labels);
    if let Ok(set) = fashion_mnist::read_pair(&dir, "train") {
        let _ = set.pad_to(32, 32);
    }
}

/// A VOC label PNG: read, resized, written back.
pub fn label_png(data: &[u8]) {
    let p = file("label", "a.png", data);
    if let Ok(map) = voc::read_label_png(&p) {
        let small = map.resize_nearest(7, 5);
        let _ = voc::write_label_png(&scratch("label").join("out.png"), &small);
    }
}

/// A VOC split list in a tree with one photo and one label: opened, its first ids' labels read.
pub fn voc_split(data: &[u8]) {
    let root = scratch("voc");
    for d in ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"] {
        let _ = std::fs::create_dir_all(root.join(d));
    }
    let map = voc::LabelMap { width: 3, height: 2, labels: vec![0, 1, 255, 2, 0, 0] };
    let _ = voc::write_label_png(&root.join("SegmentationClass/a.png"), &map);
    let _ = std::fs::write(root.join("ImageSets/Segmentation/val.txt"), data);
    if let Ok(split) = voc::VocSplit::open(&root, "val") {
        for id in split.ids.iter().take(3) {
            let _ = split.label(id, None);
        }
    }
}

/// A checkpoint folder of the bundled Context-LRNN whose `state.json` is the bytes.
pub fn checkpoint_state(data: &[u8]) {
    let dir = scratch("checkpoint").join("step-00000001");
    let _ = std::fs::create_dir_all(&dir);
    for f in ["model.json", "weights.safetensors", "mean.safetensors"] {
        if !dir.join(f).exists() {
            let _ = std::fs::copy(bundled(f), dir.join(f));
        }
    }
    let _ = std::fs::write(dir.join("state.json"), data);
    if let Ok(c) = Checkpoint::open(&dir, &Device::Cpu) {
        let _ = c.describe();
    }
}

/// A run folder whose `latest.json` is the bytes.
pub fn run_latest(data: &[u8]) {
    let run = scratch("run");
    let _ = std::fs::write(run.join("latest.json"), data);
    let _ = Checkpoint::resolve(&run);
}

/// An ONNX file (the form the ImageNet VGG-16 weights come in).
pub fn onnx(data: &[u8]) {
    let path = Path::new("fuzz.onnx");
    if let Ok(w) = io::onnx::read_onnx(data, path) {
        let _ = io::vgg16::vgg16_from_onnx(&w, path);
    }
}

/// A PyTorch `.pth` file as `lrnn init --trunk` reads it (torchvision's VGG-16 weights): the zip
/// format of `torch.save`, or the legacy one.
pub fn pth_trunk(data: &[u8]) {
    let path = file("pth_trunk", "fuzz.pth", data);
    let _ = io::vgg16::read_vgg16_trunk(&path);
}

/// A weight file of any format (safetensors, `.pth` zip or legacy, `.caffemodel` current or V1)
/// as `lrnn import` and every `--weights` read it, loaded into a narrow FCN-8s-Caffe (the
/// fixtures' widths) and run on a small input.
pub fn weights_file(data: &[u8]) {
    let path = file("weights_file", "fuzz.caffemodel", data);
    let desc =
        r#"{"kind": "fcn_caffe", "variant": "8s", "classes": 3, "fc": 16, "trunk": [4, 8, 8, 16, 16]}"#;
    let Ok(desc) = ModelDesc::from_json(desc, Path::new("fuzz.json")) else { return };
    if let Ok(model) = Model::load(desc, &path, &Device::Cpu) {
        if let Ok(x) = Tensor::zeros((1, 3, 5, 7), candle_core::DType::F32, &Device::Cpu) {
            let _ = model.forward(&x, &mut lrnn_core::nn::Forward::eval());
        }
    }
}

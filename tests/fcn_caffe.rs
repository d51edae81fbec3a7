//! Long et al.'s FCN-32s/16s/8s in their published geometry against our own PyTorch
//! implementation of them (`fixtures/gen_fcn_caffe.py`): the same random weights read from a
//! legacy `.pth` (torch < 1.6), a zip `.pth`, a Caffe `.caffemodel` (current `layer` field) and
//! a V1 `.caffemodel` (legacy blob shapes) must give PyTorch's scores on a real photo at its own
//! odd size (61x47: ceil-mode pooling, every crop) within 1e-4 relative; the photo prepared by
//! the project must be the input PyTorch was given; L-RNN pairs inserted with V = 0 keep the
//! scores; damaged and foreign files are errors naming the file.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use candle_core::Device;
use lrnn_core::data::photo::{photo_input, read_photo};
use lrnn_core::io::read_tensors;
use lrnn_core::models::{Model, ModelDesc};
use lrnn_core::nn::Forward;
use lrnn_tests::{assert_close, fixtures_dir};

const TOL: f32 = 1e-4;
const FORMATS: [&str; 4] = ["legacy.pth", "zip.pth", "caffemodel", "v1.caffemodel"];

fn desc(variant: &str) -> ModelDesc {
    ModelDesc::load(&fixtures_dir().join(format!("fcn{variant}_caffe.json"))).unwrap()
}

#[test]
fn every_variant_from_every_format_matches_pytorch() {
    let dir = fixtures_dir();
    let photo = read_photo(&dir.join("fcn_caffe_photo.png")).unwrap();
    for variant in ["32s", "16s", "8s"] {
        let io = read_tensors(&dir.join(format!("fcn{variant}_caffe.io.safetensors")), &Device::Cpu).unwrap();
        let input = photo_input(&photo, &desc(variant), 384, None).unwrap();
        assert_eq!(input.tensor.dims(), &[1, 3, 47, 61], "the photo at its own size");
        assert_close(&format!("FCN-{variant}: the prepared photo"), &input.tensor, &io["input"], 1e-6);
        for format in FORMATS {
            let file = dir.join(format!("fcn{variant}_caffe.{format}"));
            let model = Model::load(desc(variant), &file, &Device::Cpu)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let out = model.forward(&input.tensor, &mut Forward::eval()).unwrap();
            assert_close(&format!("FCN-{variant} from {format}"), &out, &io["output"], TOL);
        }
    }
}

#[test]
fn inserted_pairs_keep_the_scores_and_capture_each_direction() {
    let dir = fixtures_dir();
    let io = read_tensors(&dir.join("fcn8s_caffe.io.safetensors"), &Device::Cpu).unwrap();
    let plain = Model::load(desc("8s"), &dir.join("fcn8s_caffe.zip.pth"), &Device::Cpu).unwrap();
    let lrnn = plain.with_lrnn_heads().unwrap();
    assert!(lrnn.desc().display_name().starts_with("FCN-8s-Caffe-LRNN"), "{}", lrnn.desc().display_name());
    let mut fwd = Forward::eval().capturing();
    let out = lrnn.forward(&io["input"], &mut fwd).unwrap();
    assert_close("FCN-8s-Caffe-LRNN with V = 0", &out, &io["output"], TOL);
    let maps = fwd.take_captured();
    for name in ["fc6.lr", "fc6.rl", "fc7.tb", "fc7.bt", "score", "pool5", "conv1_1"] {
        assert!(maps.contains_key(name), "captures {name}: {:?}", maps.keys().collect::<Vec<_>>());
    }
    let v = lrnn.weights().unwrap();
    assert!(v.contains_key("fc6.v_lr.weight") && v.contains_key("fc7.v_bt.weight"));
    // A gradient reaches the recurrences (so train-seg can fine-tune them).
    let loss = out.sqr().unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let vars = lrnn.trainable_vars().unwrap();
    let (_, fc6_u) = vars.iter().find(|(n, _)| n == "fc6.weight").unwrap();
    assert!(grads.get(fc6_u.as_tensor()).is_some(), "fc6 gets a gradient");
}

#[test]
fn any_input_size_runs_and_the_output_is_its_size() {
    let model = Model::new_seeded(desc("8s"), &Device::Cpu, 3).unwrap();
    for (h, w) in [(1, 1), (7, 33), (32, 32), (65, 20)] {
        let x = candle_core::Tensor::zeros((1, 3, h, w), candle_core::DType::F32, &Device::Cpu).unwrap();
        let y = model.forward(&x, &mut Forward::eval()).unwrap();
        assert_eq!(y.dims(), &[1, 3, h, w]);
    }
    // A fresh network starts as Long et al.'s: zero scores, bilinear upsampling filters.
    let w = model.weights().unwrap();
    assert_eq!(w["score_fr.weight"].abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    let up: Vec<f32> =
        w["upscore2.weight"].get(0).unwrap().get(0).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(
        up,
        [
            0.0625, 0.1875, 0.1875, 0.0625, 0.1875, 0.5625, 0.5625, 0.1875, 0.1875, 0.5625, 0.5625, 0.1875,
            0.0625, 0.1875, 0.1875, 0.0625
        ]
    );
}

#[test]
fn damaged_and_foreign_files_are_errors_naming_them() {
    let dir = fixtures_dir();
    let tmp = std::env::temp_dir().join(format!("lrnn-fcn-caffe-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for format in FORMATS {
        let bytes = std::fs::read(dir.join(format!("fcn8s_caffe.{format}"))).unwrap();
        for cut in [bytes.len() / 2, bytes.len() - 3, 20] {
            let p = tmp.join(format!("cut{cut}.{format}"));
            std::fs::write(&p, &bytes[..cut]).unwrap();
            let e = Model::load(desc("8s"), &p, &Device::Cpu).unwrap_err().to_string();
            assert!(e.contains(&p.display().to_string()), "{format} cut at {cut}: {e}");
        }
        // The right format, another model kind: names a missing weight.
        let e = Model::load(desc("32s"), &dir.join(format!("fcn8s_caffe.{format}")), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("upscore") || e.contains("score_pool"), "{format} as FCN-32s: {e}");
    }
    let p = tmp.join("notes.pth");
    std::fs::write(&p, b"hello, these are not weights").unwrap();
    let e = Model::load(desc("8s"), &p, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("notes.pth") && e.contains("not a"), "{e}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

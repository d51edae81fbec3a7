//! Plain convnets with inserted L-RNN pairs: parameter counts, exact insertion (V = 0 gives the
//! CNN's output bit for bit), the IRNN start, JSON descriptions and their errors, receptive fields.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "common/scratch.rs"]
mod scratch;

use candle_core::{Device, Tensor};
use lrnn_core::models::convnet::{ConvNetConfig, Insertion};
use lrnn_core::models::Model;
use lrnn_core::models::ModelDesc;
use lrnn_core::nn::{Axis, Forward, ScanBackend};
use lrnn_core::probe::rf::receptive_field;

fn preset(name: &str) -> ModelDesc {
    ModelDesc::from_name_or_file(name).unwrap()
}

fn insertions(v_init: f32) -> Vec<Insertion> {
    vec![
        Insertion { layer: "conv5".into(), axis: Axis::Horizontal, v_init },
        Insertion { layer: "conv6".into(), axis: Axis::Vertical, v_init },
    ]
}

#[test]
fn presets_have_the_documented_parameter_counts() {
    // conv1 1*8*9+8, conv2 8*8*9+8, conv3 8*16*9+16, conv4 16*16*9+16, conv5 16*32+32,
    // conv6 32*32+32, head 32*2+2; the L-RNN adds four 32x32 recurrences.
    let cnn = 80 + 584 + 1168 + 2320 + 544 + 1056 + 66;
    let wide = 80 + 584 + 1168 + 2320 + (16 * 66 + 66) + (66 * 66 + 66) + (66 * 2 + 2);
    let cases = [("Context-CNN", cnn), ("Context-LRNN", cnn + 4 * 32 * 32), ("Context-CNN-Wide", wide)];
    for (name, want) in cases {
        let model = Model::new(preset(name), &Device::Cpu).unwrap();
        assert_eq!(model.parameter_count().unwrap(), want, "{name}");
    }
    assert_eq!(wide, 9830);
}

#[test]
fn inserting_with_zero_recurrences_keeps_every_output_bit_for_bit() {
    let dev = Device::Cpu;
    let cnn = Model::new_seeded(preset("Context-CNN"), &dev, 7).unwrap();
    let lrnn = cnn.with_insertions(&insertions(0.0)).unwrap();
    assert_eq!(lrnn.parameter_count().unwrap(), cnn.parameter_count().unwrap() + 4 * 32 * 32);
    let x = Tensor::randn(0f32, 1.0, (2, 1, 40, 56), &dev).unwrap();
    for backend in [ScanBackend::Fused, ScanBackend::Reference] {
        let run = |m: &Model| {
            let mut fwd = Forward::eval().capturing().with_backend(backend);
            let y = m.forward(&x, &mut fwd).unwrap();
            (y, fwd.take_captured())
        };
        let ((y0, maps0), (y1, maps1)) = (run(&cnn), run(&lrnn));
        let diff = (y0 - y1).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0, "{backend:?}: scores differ");
        for (name, a) in &maps0 {
            let b = &maps1[name];
            let d = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert_eq!(d, 0.0, "{backend:?}: map {name} differs");
        }
        for dir in ["conv5.lr", "conv5.rl", "conv6.tb", "conv6.bt"] {
            assert!(maps1.contains_key(dir), "{backend:?}: no captured map {dir}");
        }
    }
    let weights = lrnn.weights().unwrap();
    let v = weights["conv5.v_lr.weight"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(v.iter().all(|&x| x == 0.0));
    // A copy on a device (the CPU here; CUDA for `lrnn probe erf --device cuda`) holds every
    // weight, recurrences included, and computes the same.
    let moved = lrnn.to_device(&dev).unwrap();
    let same = |a: &Tensor, b: &Tensor| {
        a.eq(b).unwrap().flatten_all().unwrap().min(0).unwrap().to_scalar::<u8>().unwrap()
    };
    for (name, w) in moved.weights().unwrap() {
        assert_eq!(same(&w, &weights[&name]), 1, "{name} was not copied");
    }
    assert_eq!(moved.weights().unwrap().len(), weights.len());
    let y0 = lrnn.forward(&x, &mut Forward::eval()).unwrap();
    let y1 = moved.forward(&x, &mut Forward::eval()).unwrap();
    assert_eq!(same(&y0, &y1), 1);
}

#[test]
fn an_irnn_start_sets_v_to_a_scaled_identity_and_changes_the_output() {
    let dev = Device::Cpu;
    let cnn = Model::new_seeded(preset("Context-CNN"), &dev, 7).unwrap();
    let lrnn = cnn.with_insertions(&insertions(0.9)).unwrap();
    let weights = lrnn.weights().unwrap();
    for name in ["conv5.v_lr.weight", "conv5.v_rl.weight", "conv6.v_tb.weight", "conv6.v_bt.weight"] {
        let v = weights[name].to_vec2::<f32>().unwrap();
        for (i, row) in v.iter().enumerate() {
            for (j, &x) in row.iter().enumerate() {
                assert_eq!(x, if i == j { 0.9 } else { 0.0 }, "{name}[{i}][{j}]");
            }
        }
    }
    // A seeded model of the preset also starts there (seeding redraws only random weights).
    let fresh = Model::new_seeded(preset("Context-LRNN"), &dev, 3).unwrap();
    assert_eq!(fresh.weights().unwrap()["conv5.v_lr.weight"].to_vec2::<f32>().unwrap()[0][0], 0.9);
    let x = Tensor::randn(0f32, 1.0, (1, 1, 32, 32), &dev).unwrap();
    let y0 = cnn.forward(&x, &mut Forward::eval()).unwrap();
    let y1 = lrnn.forward(&x, &mut Forward::eval()).unwrap();
    let diff = (y0 - y1).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff > 0.0);
}

#[test]
fn descriptions_round_trip_and_bad_ones_say_what_is_wrong() {
    let desc = preset("Context-LRNN");
    let path = scratch::scratch_path("convnet.json");
    desc.save(&path).unwrap();
    assert_eq!(ModelDesc::load(&path).unwrap(), desc);
    let text = std::fs::read_to_string(&path).unwrap();
    let bad = |from: &str, to: &str| {
        assert!(text.contains(from), "{from}");
        ModelDesc::from_json(&text.replacen(from, to, 1), &path).unwrap_err().to_string()
    };
    assert!(bad("\"conv5\",\n      \"axis\"", "\"pool1\",\n      \"axis\"").contains("not a convolution"));
    assert!(bad("\"conv5\",\n      \"axis\"", "\"conv9\",\n      \"axis\"").contains("no such layer"));
    assert!(bad("\"conv5\",\n      \"axis\"", "\"conv6\",\n      \"axis\"").contains("two insertions"));
    assert!(bad("\"name\": \"conv2\"", "\"name\": \"conv1\"").contains("two layers are named `conv1`"));
    assert!(bad("\"classes\"", "\"clases\"").contains("unknown field"));
    assert!(bad("\"horizontal\"", "\"diagonal\"").contains("unknown variant"));
    assert!(bad("\"kernel\": 3", "\"kernel\": 4").contains("kernel odd"));
    for err in [bad("\"op\": \"conv\"", "\"op\": \"deconv\""), bad("\"classes\": 2", "\"classes\": 0")] {
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
    std::fs::remove_file(&path).unwrap();
    let cnn = Model::new(ModelDesc::from_name_or_file("E-RNN-Max").unwrap(), &Device::Cpu).unwrap();
    let err = cnn.with_insertions(&insertions(0.0)).unwrap_err().to_string();
    assert!(err.contains("only into a plain convnet"), "{err}");
}

#[test]
fn receptive_fields_follow_the_layers_and_the_inserted_scans() {
    let ModelDesc::Convnet(cnn) = preset("Context-CNN") else { panic!() };
    let ModelDesc::Convnet(lrnn) = preset("Context-LRNN") else { panic!() };
    // conv 3, conv 5, pool 6 (jump 2), conv 10, conv 14, pool 16 (jump 4), 1x1 convs 16.
    for (layer, side) in [("conv2", 5), ("pool1", 6), ("conv4", 14), ("conv6", 16)] {
        let rf = receptive_field(&cnn.geometry(layer).unwrap());
        assert_eq!((rf.height, rf.width), (Some(side), Some(side)), "{layer}");
    }
    let rf = receptive_field(&lrnn.geometry("conv5").unwrap());
    assert_eq!((rf.height, rf.width), (Some(16), None), "a horizontal pair sees whole rows");
    let rf = receptive_field(&lrnn.geometry("conv6").unwrap());
    assert_eq!((rf.height, rf.width), (None, None), "both pairs see the whole image");
    assert_eq!(cnn.geometry("conv9"), None);
    let desc = ModelDesc::Convnet(lrnn.clone());
    let rf = receptive_field(&desc.geometry("conv5.rl").unwrap());
    assert_eq!((rf.width, rf.open), (Some(16), [false, true, false, false]), "right-to-left sees the right");
    let rf = receptive_field(&desc.geometry("conv6.tb").unwrap());
    assert_eq!((rf.height, rf.width, rf.open), (Some(16), None, [true, true, true, false]));
    assert!(ConvNetConfig::preset("Nope").is_none());
}

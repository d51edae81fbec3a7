//! Segmentation training: the per-pixel loss against hand-computed values and finite
//! differences, a fresh FCN-8s-LRNN equal to FCN-8s with the same seed, and a short run of the
//! shared training loop on the generated scenes (pixel error, mean IoU, recurrences that move).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::channel;

use candle_core::{Device, Tensor, Var};
use lrnn_core::data::scenes::SceneTask;
use lrnn_core::data::Format;
use lrnn_core::models::fcn::{FcnConfig, Variant};
use lrnn_core::models::Model;
use lrnn_core::models::ModelDesc;
use lrnn_core::nn::Forward;
use lrnn_core::train::seg::{pixel_cross_entropy, pixel_errors};
use lrnn_core::train::trainer::run;
use lrnn_core::train::Checkpoint;
use lrnn_core::train::{DataSource, Event, OptimizerConfig, Schedule, TrainConfig};

#[path = "common/scratch.rs"]
mod scratch;

#[test]
fn the_pixel_loss_ignores_255_and_matches_hand_computed_values_and_finite_differences() {
    let dev = Device::Cpu;
    // One image, 2 classes, 1x3 pixels; the third pixel is ignored.
    let logits = [0.5f32, -1.0, 2.0, 1.0, 0.0, 3.0]; // class 0 row, then class 1 row
    let x = Var::from_vec(logits.to_vec(), (1, 2, 1, 3), &dev).unwrap();
    let y = Tensor::new(&[[[1u32, 0, 255]]], &dev).unwrap();
    let loss = pixel_cross_entropy(x.as_tensor(), &y).unwrap();
    let ce = |own: f32, other: f32| -(own - (own.exp() + other.exp()).ln());
    let expected = (ce(1.0, 0.5) + ce(-1.0, 0.0)) / 2.0;
    assert!((loss.to_scalar::<f32>().unwrap() - expected).abs() < 1e-6);
    assert_eq!(pixel_errors(x.as_tensor(), &y).unwrap(), (1, 2), "pixel 2 is wrong, pixel 3 not counted");
    let grad = loss.backward().unwrap().get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!((grad[2], grad[5]), (0.0, 0.0), "no gradient from the ignored pixel");
    for i in 0..6 {
        let at = |d: f32| {
            let mut v = logits.to_vec();
            v[i] += d;
            let t = Tensor::from_vec(v, (1, 2, 1, 3), &dev).unwrap();
            f64::from(pixel_cross_entropy(&t, &y).unwrap().to_scalar::<f32>().unwrap())
        };
        let fd = (at(1e-2) - at(-1e-2)) / 2e-2;
        assert!((fd - f64::from(grad[i])).abs() < 1e-3, "d/dx{i}: {fd} vs {}", grad[i]);
    }
    let all_ignored = Tensor::new(&[[[255u32, 255, 255]]], &dev).unwrap();
    assert_eq!(pixel_cross_entropy(x.as_tensor(), &all_ignored).unwrap().to_scalar::<f32>().unwrap(), 0.0);
    let bad = Tensor::new(&[[[2u32, 0, 0]]], &dev).unwrap();
    assert!(pixel_cross_entropy(x.as_tensor(), &bad).unwrap_err().to_string().contains("label 2"));
}

fn fcn(lrnn: bool) -> ModelDesc {
    ModelDesc::Fcn(FcnConfig {
        variant: Variant::Fcn8s,
        heads: 8,
        lrnn,
        classes: 3,
        input_size: None,
        v_init: 0.0,
    })
}

#[test]
fn a_fresh_fcn8s_lrnn_is_fcn8s_with_the_same_seed_and_zero_recurrences() {
    let dev = Device::Cpu;
    let plain = Model::new_seeded(fcn(false), &dev, 7).unwrap();
    let lrnn = Model::new_seeded(fcn(true), &dev, 7).unwrap();
    let (pw, lw) = (plain.weights().unwrap(), lrnn.weights().unwrap());
    for (name, t) in &lw {
        match pw.get(name) {
            Some(p) => assert_eq!(
                p.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                "{name}"
            ),
            None => {
                assert!(name.contains(".v_"), "{name} is new but not a recurrence");
                assert_eq!(t.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap(), 0.0, "{name}");
            }
        }
    }
    for score in ["fc3.weight", "fc6.weight", "fc9.bias"] {
        assert_eq!(
            pw[score].abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap(),
            0.0,
            "{score} starts at zero"
        );
    }
    assert!(pw["fc1.weight"].abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
}

#[test]
fn train_seg_on_scenes_reports_pixel_scores_and_moves_the_recurrences() {
    let out = scratch::scratch_path("scenes-run");
    let _ = std::fs::remove_dir_all(&out);
    let mut data = DataSource::new(Format::Scenes, PathBuf::new());
    data.scenes = Some(SceneTask { size: 32, width: None, min_distance: 16, train: 6, val: 2, seed: 1 });
    data.size = Some(32);
    let config = TrainConfig {
        model: fcn(true),
        data,
        epochs: 1,
        batch_size: 2,
        optimizer: OptimizerConfig::PAPER_RMSPROP,
        schedule: Schedule::Steps { lr: 1e-3, drops: vec![(0.5, 1e-4)] },
        augment: Format::Scenes.label_preserving_augment(),
        subtract_mean: false,
        seed: 0,
        max_train_images: None,
        max_val_images: None,
        max_steps: None,
        out: out.clone(),
        init_from: None,
        time_budget_s: None,
        checkpoint_every: None,
        device: lrnn_core::train::TrainDevice::Cpu,
        init_trunk: None,
    };
    let (tx, rx) = channel();
    run(&config, false, &AtomicBool::new(false), &tx).unwrap();
    drop(tx);
    let events: Vec<Event> = rx.iter().collect();
    let steps: Vec<(f32, f32, f64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Step { loss, error, lr, .. } => Some((*loss, *error, *lr)),
            _ => None,
        })
        .collect();
    assert_eq!(steps.len(), 3);
    assert!(steps.iter().all(|(l, e, _)| l.is_finite() && *l > 0.0 && (0.0..=1.0).contains(e)));
    assert_eq!(
        steps.iter().map(|s| s.2).collect::<Vec<_>>(),
        [1e-3, 1e-3, 1e-4],
        "the rate drops at half an epoch"
    );
    let stats =
        events.iter().find_map(|e| if let Event::Epoch(s) = e { Some(s.clone()) } else { None }).unwrap();
    let miou = stats.val_miou.expect("segmentation reports a mean IoU");
    assert!((0.0..=1.0).contains(&miou) && (0.0..=1.0).contains(&stats.val_error));
    let dir = out.join("step-00000003");
    let (model, state) = Checkpoint::open(&dir, &Device::Cpu).and_then(Checkpoint::into_run).unwrap();
    assert_eq!(state.history[0].val_miou, Some(miou));
    let w = model.weights().unwrap();
    // At 32x32, pool5 is 1x1 (no neighbour to recur from); pool3's branch is 4x4.
    for name in ["fc7.v_lr.weight", "fc7.v_rl.weight", "fc8.v_tb.weight", "fc8.v_bt.weight"] {
        let v = w[name].abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(v > 0.0, "{name} is trained");
    }
    // The trained model segments a 32x32 input into 3 class maps.
    let x = Tensor::zeros((1, 3, 32, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert_eq!(model.forward(&x, &mut Forward::eval()).unwrap().dims(), [1, 3, 32, 32]);
}

#[test]
fn segmentation_data_and_networks_do_not_mix_with_classification() {
    let mut config_data = DataSource::new(Format::Scenes, PathBuf::new());
    config_data.size = Some(48);
    let base = TrainConfig {
        model: fcn(false),
        data: config_data,
        epochs: 1,
        batch_size: 2,
        optimizer: OptimizerConfig::PAPER_RMSPROP,
        schedule: Schedule::Constant { lr: 1e-4 },
        augment: None,
        subtract_mean: false,
        seed: 0,
        max_train_images: Some(2),
        max_val_images: Some(1),
        max_steps: None,
        out: scratch::scratch_path("mix"),
        init_from: None,
        time_budget_s: None,
        checkpoint_every: None,
        device: lrnn_core::train::TrainDevice::Cpu,
        init_trunk: None,
    };
    let err = |c: &TrainConfig| run(c, false, &AtomicBool::new(false), &channel().0).unwrap_err().to_string();
    assert!(err(&base).contains("multiple of 32"), "{}", err(&base));
    let mut c = base.clone();
    c.data = DataSource::new(Format::Context, PathBuf::new());
    assert!(err(&c).contains("`lrnn train-seg`"), "{}", err(&c));
    let mut c = base.clone();
    c.data.size = Some(64);
    c.model = ModelDesc::from_name_or_file("Context-CNN").unwrap();
    assert!(err(&c).contains("needs an FCN"), "{}", err(&c));
}

#[test]
fn an_irnn_start_sets_every_inserted_v_to_a_scaled_identity() {
    let ModelDesc::Fcn(mut cfg) = fcn(true) else { unreachable!() };
    cfg.v_init = 0.9;
    let model = Model::new_seeded(ModelDesc::Fcn(cfg.clone()), &Device::Cpu, 7).unwrap();
    let w = model.weights().unwrap();
    let vs: Vec<&String> = w.keys().filter(|n| n.contains(".v_")).collect();
    assert_eq!(vs.len(), 12, "two pairs per branch, three branches: {vs:?}");
    for name in vs {
        let v = &w[name];
        let d = v.dim(0).unwrap();
        let eye = (Tensor::eye(d, candle_core::DType::F32, &Device::Cpu).unwrap() * 0.9).unwrap();
        assert_eq!(
            (v - eye).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap(),
            0.0,
            "{name}"
        );
    }
    cfg.v_init = 3.0;
    assert!(Model::new(ModelDesc::Fcn(cfg), &Device::Cpu).unwrap_err().to_string().contains("v_init 3"));
}

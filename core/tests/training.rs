//! The training loop: the loss falls, a stopped run leaves a checkpoint and resumes exactly where
//! it ended, a NaN loss stops the run with a clear message, events come in the documented order.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "common/scratch.rs"]
mod scratch;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::channel;

use candle_core::Device;
use lrnn_core::data::context::ContextTask;
use lrnn_core::data::{Augment, Format};
use lrnn_core::models::cifar::CifarConfig;
use lrnn_core::models::ModelDesc;
use lrnn_core::train::checkpoint::latest_checkpoint;
use lrnn_core::train::trainer::run;
use lrnn_core::train::Checkpoint;
use lrnn_core::train::{spawn, DataSource, Event, OptimizerConfig, RunEnd, Schedule, TrainConfig};

fn out_dir(name: &str) -> PathBuf {
    let d = scratch::scratch_path(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A small, fast run: A-Concat-RNN on 16x16 context images, 64 training images, batches of 16.
fn config(name: &str) -> TrainConfig {
    let model = ModelDesc::Cifar(CifarConfig {
        in_channels: 1,
        classes: 2,
        ..CifarConfig::named("A-Concat-RNN-Max")
    });
    let task = ContextTask { size: 16, min_distance: 8, margin: 2, train: 64, val: 32, test: 8, seed: 5 };
    TrainConfig {
        model,
        data: DataSource { context: Some(task), ..DataSource::new(Format::Context, PathBuf::new()) },
        epochs: 3,
        batch_size: 16,
        optimizer: OptimizerConfig::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
        schedule: Schedule::Constant { lr: 1e-3 },
        augment: Some(Augment::default()),
        subtract_mean: true,
        seed: 1,
        max_train_images: None,
        max_val_images: None,
        max_steps: None,
        out: out_dir(name),
        init_from: None,
        time_budget_s: None,
        checkpoint_every: None,
        device: lrnn_core::train::TrainDevice::Cpu,
        init_trunk: None,
    }
}

fn weights_of(out: &std::path::Path) -> Vec<(String, Vec<f32>)> {
    let dir = latest_checkpoint(out).unwrap().unwrap();
    let (model, _) = Checkpoint::open(&dir, &Device::Cpu).and_then(Checkpoint::into_run).unwrap();
    model
        .weights()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

#[test]
fn loss_falls_and_events_come_in_order() {
    let cfg = config("smoke");
    let handle = spawn(cfg.clone(), false).unwrap();
    let events: Vec<Event> = handle.events.iter().collect();
    assert!(
        matches!(events.first(), Some(Event::Started { steps_per_epoch: 4, resumed_at: 0, .. })),
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&Event::Finished));
    let epochs: Vec<_> =
        events.iter().filter_map(|e| if let Event::Epoch(s) = e { Some(s.clone()) } else { None }).collect();
    assert_eq!(epochs.len(), 3);
    assert!(epochs[2].train_loss < epochs[0].train_loss, "loss did not fall: {epochs:?}");
    let steps = events.iter().filter(|e| matches!(e, Event::Step { .. })).count();
    assert_eq!(steps, 12);
    let dir = latest_checkpoint(&cfg.out).unwrap().unwrap();
    let ckpt = Checkpoint::open(&dir, &Device::Cpu).unwrap();
    let state = ckpt.state.as_ref().unwrap();
    assert_eq!((state.global_step, state.epoch, state.history.len()), (12, 3, 3));
    let mean = ckpt.mean.unwrap();
    let data = lrnn_core::train::trainer::load_data(&cfg).unwrap();
    assert_eq!(mean, data.train.mean_image(), "the checkpoint keeps the training mean");
}

#[test]
fn a_stopped_run_resumes_exactly_where_it_ended() {
    // Uninterrupted: 6 steps (one and a half epochs).
    let mut whole = config("whole");
    whole.max_steps = Some(6);
    let (tx, _rx) = channel();
    assert_eq!(run(&whole, false, &AtomicBool::new(false), &tx).unwrap(), RunEnd::Finished);
    // Interrupted after 3 steps (mid-epoch), then resumed to 6.
    let mut part = config("part");
    part.max_steps = Some(3);
    run(&part, false, &AtomicBool::new(false), &tx).unwrap();
    let (_, state) = Checkpoint::open(&latest_checkpoint(&part.out).unwrap().unwrap(), &Device::Cpu)
        .and_then(Checkpoint::into_run)
        .unwrap();
    assert_eq!((state.global_step, state.epoch, state.step_in_epoch), (3, 0, 3));
    part.max_steps = Some(6);
    run(&part, true, &AtomicBool::new(false), &tx).unwrap();
    let (a, b) = (weights_of(&whole.out), weights_of(&part.out));
    assert_eq!(a.len(), b.len());
    for ((na, va), (nb, vb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert_eq!(va, vb, "{na} differs after resuming");
    }
}

#[test]
fn stop_request_writes_a_checkpoint_and_reports_stopped() {
    let cfg = config("stop");
    let (tx, rx) = channel();
    let stop = AtomicBool::new(true);
    assert_eq!(run(&cfg, false, &stop, &tx).unwrap(), RunEnd::Stopped);
    drop(tx);
    assert!(rx.iter().any(|e| matches!(e, Event::Checkpoint(_))));
    let dir = latest_checkpoint(&cfg.out).unwrap().unwrap();
    assert!(Checkpoint::open(&dir, &Device::Cpu).and_then(Checkpoint::into_run).is_ok());
}

#[test]
fn a_nan_loss_stops_with_a_clear_message() {
    let mut cfg = config("nan");
    cfg.optimizer = OptimizerConfig::Sgd { momentum: 0.0 };
    cfg.schedule = Schedule::Constant { lr: 1e30 };
    let handle = spawn(cfg, false).unwrap();
    let last = handle.events.iter().last().unwrap();
    let Event::Failed(msg) = last else { panic!("expected a failure, got {last:?}") };
    assert!(msg.contains("the loss became") && msg.contains("last good checkpoint"), "{msg}");
}

#[test]
fn resuming_without_a_run_names_the_missing_file() {
    let cfg = config("none");
    let (tx, _rx) = channel();
    let err = run(&cfg, true, &AtomicBool::new(false), &tx).unwrap_err().to_string();
    assert!(err.contains("latest.json") && err.contains("no run to resume"), "{err}");
}

#[test]
fn a_time_budget_ends_the_run_with_a_validation_and_a_checkpoint() {
    let mut cfg = config("budget");
    cfg.epochs = 1000;
    // Long enough for several steps even on a loaded 2-core machine (one step is ~50 ms idle).
    cfg.time_budget_s = Some(4.0);
    cfg.schedule = Schedule::Restarts { max: 1e-3, min: 1e-5, period_epochs: 1000.0 };
    let (tx, rx) = channel();
    let started = std::time::Instant::now();
    let end = run(&cfg, false, &AtomicBool::new(false), &tx).unwrap();
    assert_eq!(end, RunEnd::Finished);
    assert!(started.elapsed().as_secs_f64() < 30.0, "the budget was not kept");
    let lrs: Vec<f64> =
        rx.try_iter().filter_map(|e| if let Event::Step { lr, .. } = e { Some(lr) } else { None }).collect();
    assert!(
        lrs.len() >= 2 && lrs.windows(2).all(|w| w[1] <= w[0]),
        "the rate falls over the budget: {lrs:?}"
    );
    assert!(lrs.last().unwrap() < &1e-3, "{lrs:?}");
    let (_, state) = Checkpoint::open(&latest_checkpoint(&cfg.out).unwrap().unwrap(), &Device::Cpu)
        .and_then(Checkpoint::into_run)
        .unwrap();
    assert!(state.trained_seconds >= 4.0, "{}", state.trained_seconds);
    assert!(state.epoch < 1000);
    let steps: usize = state.history.iter().map(|h| h.steps).sum();
    assert_eq!(steps, state.global_step, "every step is counted in the history, the last epoch partly");
}

#[test]
fn a_run_can_start_from_another_runs_weights() {
    let first = config("init-source");
    run(&first, false, &AtomicBool::new(false), &channel().0).unwrap();
    let mut second = config("init-target");
    second.init_from = Some(first.out.clone());
    second.max_steps = Some(0);
    run(&second, false, &AtomicBool::new(false), &channel().0).unwrap();
    assert_eq!(
        weights_of(&second.out),
        weights_of(&first.out),
        "the fine-tuning run starts from the weights"
    );
    second.init_from = Some(out_dir("nowhere"));
    let err = run(&second, false, &AtomicBool::new(false), &channel().0).unwrap_err().to_string();
    assert!(err.contains("nowhere"), "{err}");
}

#[test]
fn snapshots_every_n_steps_are_written_and_all_kept() {
    let mut cfg = config("snapshots");
    cfg.checkpoint_every = Some(3);
    let (tx, rx) = channel();
    run(&cfg, false, &AtomicBool::new(false), &tx).unwrap();
    let announced: Vec<String> = rx
        .try_iter()
        .filter_map(|e| match e {
            Event::Checkpoint(p) => Some(p.file_name().unwrap().to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    // 4 steps per epoch, 3 epochs: every 3rd step and every epoch's end, once each.
    let want: Vec<String> = [3, 4, 6, 8, 9, 12].iter().map(|s| format!("step-{s:08}")).collect();
    assert_eq!(announced, want);
    let mut on_disk: Vec<String> = std::fs::read_dir(&cfg.out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-"))
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, want, "a run with snapshots keeps every one");
    // A snapshot taken inside an epoch resumes where it was taken.
    let (_, state) = Checkpoint::open(&cfg.out.join("step-00000003"), &Device::Cpu)
        .and_then(Checkpoint::into_run)
        .unwrap();
    assert_eq!((state.global_step, state.epoch, state.step_in_epoch), (3, 0, 3));
}

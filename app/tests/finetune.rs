//! A fine-tuning run driven from the app: started, plotted, snapshotted, saved, reopened; a long
//! one stopped; the bundled FCN fine-tuned on its generated scenes. Its own test binary, so that it
//! does not share the 2 cores with the other UI tests' worker threads (under that load a run once
//! took longer than the test's limits), and its tests one at a time for the same reason.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{open, save_render, temp};
use egui_kittest::kittest::Queryable;
use lrnn_studio::screenshot::settle;
use lrnn_studio::View;

/// The tests of this binary run one at a time (each trains on both cores).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn a_short_fine_tuning_run_plots_snapshots_and_saves_and_a_long_one_stops() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut h = open("finetune");
    h.state_mut().show_view(View::FineTune);
    {
        let ft = &mut h.state_mut().finetune_mut();
        ft.steps = 4;
        ft.every = 2;
    }
    h.state_mut().start_finetune();
    assert!(h.state().finetune().is_running());
    // The UI keeps drawing while the run goes.
    let started = Instant::now();
    let mut frames = 0;
    while h.state().finetune().is_running() {
        assert!(started.elapsed() < Duration::from_secs(300), "the run did not end");
        h.step();
        frames += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(frames > 3, "frames kept coming during the run");
    settle(&mut h, Duration::from_secs(120)).unwrap();
    assert_eq!(h.state().error(), None);
    let ft = h.state().finetune();
    assert_eq!(ft.losses.len(), 4);
    let steps: Vec<usize> = ft.snapshots.iter().map(|s| s.step).collect();
    assert_eq!(steps, [0, 2, 4], "the start and a snapshot every 2 steps");
    // (the app computes on the CPU here: a software adapter is not chosen by itself)
    h.get_by_label_contains("finished 4 steps on CPU");
    save_render(&mut h, "finetune-finished");

    let dest = temp("saved").join("finetuned");
    h.state().save_finetuned(&dest).unwrap();
    assert!(dest.join("weights.safetensors").exists() && dest.join("model.json").exists());
    assert!(h.state().save_finetuned(&dest).unwrap_err().contains("already exists"));
    h.state_mut().open_model(dest);
    settle(&mut h, Duration::from_secs(120)).unwrap();
    assert_eq!(h.state().error(), None, "the saved checkpoint opens");

    // A long run stops on request, leaving a checkpoint.
    h.state_mut().finetune_mut().steps = 10_000;
    h.state_mut().start_finetune();
    while h.state().finetune().losses.len() < 2 {
        assert!(h.state().finetune().is_running(), "the run ended early: {:?}", h.state().error());
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    h.state_mut().stop_finetune();
    settle(&mut h, Duration::from_secs(120)).unwrap();
    let ft = h.state().finetune();
    assert!(ft.status.contains("stopped"), "{}", ft.status);
    assert!(ft.losses.len() < 100);
    assert!(ft.last_checkpoint.as_ref().unwrap().join("weights.safetensors").exists());
}

#[test]
fn the_bundled_fcn_fine_tunes_on_its_generated_scenes_with_pixel_errors() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut h = open("finetune-fcn");
    h.state_mut().open_segmentation_demo();
    settle(&mut h, Duration::from_secs(300)).unwrap();
    assert_eq!(h.state().error(), None);
    h.state_mut().show_view(View::FineTune);
    h.run_steps(2);
    h.get_by_label_contains("A segmentation network: it fine-tunes on per-pixel labels");
    h.get_by_label_contains("its own: the generated scenes");
    {
        let ft = &mut h.state_mut().finetune_mut();
        ft.steps = 2;
        ft.every = 2;
    }
    h.state_mut().start_finetune();
    let started = Instant::now();
    while h.state().finetune().is_running() {
        assert!(started.elapsed() < Duration::from_secs(600), "the run did not end");
        h.step();
        std::thread::sleep(Duration::from_millis(50));
    }
    settle(&mut h, Duration::from_secs(120)).unwrap();
    assert_eq!(h.state().error(), None);
    let ft = h.state().finetune();
    assert_eq!(ft.losses.len(), 2);
    // Per-pixel cross-entropy of a trained segmenter on its own scenes: small, not zero.
    assert!(ft.losses.iter().all(|l| l[1].is_finite() && l[1] > 0.0 && l[1] < 1.0), "{:?}", ft.losses);
    assert!(ft.errors.iter().all(|e| (0.0..=1.0).contains(&e[1])), "{:?}", ft.errors);
    // The timeline tracked the default unit (the centre of class 0's scores) from the start.
    let steps: Vec<usize> = ft.snapshots.iter().map(|s| s.step).collect();
    assert_eq!(steps, [0, 2], "the start and a snapshot at step 2");
    let checkpoint = ft.last_checkpoint.clone().unwrap();
    assert!(checkpoint.join("weights.safetensors").exists());
    h.get_by_label_contains("finished 2 steps on CPU");
    h.get_by_label_contains("wrong pixels: batch");
    save_render(&mut h, "finetune-fcn-finished");
    // The result opens and still segments.
    let out = h.state().finetune().out.clone().unwrap();
    h.state_mut().open_model(out);
    settle(&mut h, Duration::from_secs(300)).unwrap();
    assert_eq!(h.state().error(), None, "the fine-tuned FCN opens");
    assert!(h.state().analysis().unwrap().segmentation.is_some(), "and segments the photo");
}

//! A fine-tuning run driven from the app: started, plotted, snapshotted, saved, reopened; a long
//! one stopped. Its own test binary, so that it does not share the 2 cores with the other UI tests'
//! worker threads (under that load a run once took longer than the test's limits).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::{open, save_render, temp};
use egui_kittest::kittest::Queryable;
use lrnn_studio::screenshot::settle;
use lrnn_studio::View;

#[test]
fn a_short_fine_tuning_run_plots_snapshots_and_saves_and_a_long_one_stops() {
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

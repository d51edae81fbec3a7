//! Frame time of the app while a fine-tuning run goes, against the idle app, in one process:
//! the real app in egui_kittest's harness, each frame one UI pass (`step`: what the UI thread
//! does) and, separately, one UI pass plus a wgpu render and read-back (`render`, lavapipe or a
//! real GPU). Prints a table; BENCHMARKS.md records it.
//!
//! `cargo bench -p lrnn-studio --bench frame_time` (add `--profile dev` to reuse the test build).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use lrnn_studio::screenshot::{harness, settle};
use lrnn_studio::{StudioOptions, View};

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    lrnn_core::keep_freed_memory();
    let work = std::env::temp_dir().join(format!("lrnn-frame-time-{}", std::process::id()));
    let options = StudioOptions { work_dir: work.clone(), settings: None, ..StudioOptions::bundled() };
    let mut h = harness(options, (1280.0, 860.0));
    settle(&mut h, Duration::from_secs(300)).unwrap();
    h.state_mut().show_view(View::FineTune);
    h.run_steps(5);
    let frames = 40;
    let measure = |h: &mut egui_kittest::Harness<'static, lrnn_studio::StudioApp>, render: bool| {
        let mut t = Vec::with_capacity(frames);
        for _ in 0..frames {
            let s = Instant::now();
            h.step();
            if render {
                h.render().unwrap();
            }
            t.push(s.elapsed().as_secs_f64() * 1e3);
        }
        t
    };
    let mut idle_step = measure(&mut h, false);
    let mut idle_render = measure(&mut h, true);
    {
        let ft = h.state_mut().finetune_mut();
        ft.steps = 100_000;
        ft.every = 5;
    }
    h.state_mut().start_finetune();
    // Wait until steps come in (data generated, first step done).
    let start = Instant::now();
    while h.state().finetune().losses.is_empty() && start.elapsed() < Duration::from_secs(300) {
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    let steps_before = h.state().finetune().losses.len();
    let mut busy_step = measure(&mut h, false);
    let mut busy_render = measure(&mut h, true);
    let steps_during = h.state().finetune().losses.len() - steps_before;
    h.state_mut().stop_finetune();
    settle(&mut h, Duration::from_secs(300)).unwrap();
    let _ = std::fs::remove_dir_all(&work);

    println!("frame time of lrnn-studio (Fine-tune view, 1280x860 points), {frames} frames each, ms");
    println!("{:<34} {:>8} {:>8} {:>8}", "", "median", "p95", "max");
    for (name, v) in [
        ("idle: UI pass", &mut idle_step),
        ("fine-tuning: UI pass", &mut busy_step),
        ("idle: UI pass + wgpu render", &mut idle_render),
        ("fine-tuning: UI pass + wgpu render", &mut busy_render),
    ] {
        let max = v.iter().copied().fold(0.0, f64::max);
        println!("{name:<34} {:>8.2} {:>8.2} {:>8.2}", percentile(v, 0.5), percentile(v, 0.95), max);
    }
    println!("training steps completed while the fine-tuning frames were measured: {steps_during}");
}

//! `lrnn-studio --screenshot FILE`: the real app rendered offscreen through wgpu (egui_kittest's
//! renderer), on the chosen model, photo and view, once every pending job has answered.

use std::path::Path;
use std::time::{Duration, Instant};

use egui_kittest::Harness;

use crate::{StudioApp, StudioOptions, View};

/// A harness running the app at `size` points, rendering through wgpu.
/// egui_kittest panics on a character no font has (to catch missing glyphs in tests); the app
/// itself draws a box for one. The tests keep the panic for the app's own text, and install the
/// fallback fonts (`crate::fonts`) that names in other scripts need.
pub fn harness(options: StudioOptions, size: (f32, f32)) -> Harness<'static, StudioApp> {
    Harness::builder()
        .with_size(eframe::egui::vec2(size.0, size.1))
        .wgpu()
        .build_eframe(move |cc| StudioApp::new(cc, options))
}

/// Steps frames until the worker and any run have answered (at most `limit`).
///
/// # Errors
/// The app still works after `limit`.
pub fn settle(h: &mut Harness<'static, StudioApp>, limit: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        h.run_steps(2);
        if !h.state().is_busy() && !h.state().finetune().is_running() {
            h.run_steps(3);
            if !h.state().is_busy() {
                return Ok(());
            }
        }
        if start.elapsed() > limit {
            let s = h.state();
            let (busy, pending) = s.busy();
            return Err(format!(
                "the app was still working after {} s: {pending} job(s) pending ({busy}), fine-tuning running: {}",
                limit.as_secs(),
                s.finetune().is_running()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Renders `view` of the app opened on `options` to a PNG file (written atomically).
///
/// # Errors
/// The app reported an error (the message says which), the renderer failed, or the file cannot
/// be written.
pub fn screenshot(options: StudioOptions, view: View, out: &Path) -> Result<(), String> {
    // As in the window: a character no font has is drawn as a box, never a panic.
    let mut h = Harness::builder()
        .with_size(eframe::egui::vec2(1280.0, 860.0))
        .wgpu()
        .allow_missing_glyphs()
        .build_eframe(move |cc| StudioApp::new(cc, options));
    settle(&mut h, Duration::from_secs(600))?;
    if let Some(e) = h.state().error() {
        return Err(e.to_string());
    }
    h.state_mut().show_view(view);
    h.run_steps(3);
    let img = h.render()?;
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| format!("{}: cannot encode: {e}", out.display()))?;
    lrnn_core::io::write_atomic(out, &bytes).map_err(|e| e.to_string())
}

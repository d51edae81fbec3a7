//! The app driven as a person drives it, rendered through wgpu (lavapipe in CI): it opens the
//! bundled model and photo with real content, steps through layers with the keys, shows a scan
//! direction's hidden states, computes an ERF when a unit is clicked, and shows an error for a
//! corrupt photo while keeping what it had. Snapshots land in `app/tests/snapshots/`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use lrnn_studio::{StudioApp, StudioOptions};

fn harness() -> Harness<'static, StudioApp> {
    Harness::builder()
        .with_size(eframe::egui::vec2(1280.0, 800.0))
        .wgpu()
        .build_eframe(|cc| StudioApp::new(cc, StudioOptions::bundled()))
}

/// Steps frames until the worker has answered (at most 120 s: lavapipe and a debug build).
fn settle(h: &mut Harness<'static, StudioApp>) {
    let start = Instant::now();
    while h.state().is_busy() {
        assert!(start.elapsed() < Duration::from_secs(120), "the worker did not answer");
        std::thread::sleep(Duration::from_millis(20));
        h.step();
    }
    h.run_steps(3);
}

#[test]
fn opens_the_bundled_model_steps_layers_and_computes_an_erf() {
    let mut h = harness();
    settle(&mut h);
    assert_eq!(h.state().error(), None);
    let names = h.state().map_names();
    assert_eq!(names.first().map(String::as_str), Some("conv1"));
    assert!(names.contains(&"conv5.lr".to_string()) && names.contains(&"output".to_string()), "{names:?}");
    // Opens on the first scan direction.
    h.get_by_label("conv5.lr");
    h.snapshot("direction_map");

    // Step with the keys: down to conv5 (after conv5.lr, conv5.rl).
    h.key_press(eframe::egui::Key::ArrowDown);
    h.key_press(eframe::egui::Key::ArrowDown);
    h.run_steps(2);
    assert!(h.query_by_label_contains("layer output: 32 channels of 24×24").is_some());

    // Click the centre of the first tile: an ERF with its mass numbers.
    let image = h.get_by_role(eframe::egui::accesskit::Role::Image);
    let r = image.rect();
    let tile = (r.width() - 18.0 * r.width() / 500.0) / 6.0;
    let at = eframe::egui::pos2(r.left() + tile * 0.5, r.top() + tile * 0.5);
    h.hover_at(at);
    h.event(eframe::egui::Event::PointerButton {
        pos: at,
        button: eframe::egui::PointerButton::Primary,
        pressed: true,
        modifiers: Default::default(),
    });
    h.event(eframe::egui::Event::PointerButton {
        pos: at,
        button: eframe::egui::PointerButton::Primary,
        pressed: false,
        modifiers: Default::default(),
    });
    h.step();
    assert!(h.state().is_busy(), "a click on a unit starts an ERF");
    settle(&mut h);
    assert!(h.query_by_label_contains("holding 20% / 50% / 99%").is_some());
    h.snapshot("erf");
}

#[test]
fn a_corrupt_photo_shows_an_error_and_keeps_the_maps() {
    let mut h = harness();
    settle(&mut h);
    let before = h.state().map_names();
    let bad = std::env::temp_dir().join(format!("lrnn-studio-corrupt-{}.png", std::process::id()));
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n this is not a picture").unwrap();
    h.state_mut().open_image(bad.clone());
    settle(&mut h);
    let err = h.state().error().unwrap().to_string();
    assert!(err.contains(bad.to_str().unwrap()) && err.contains("not a readable image"), "{err}");
    assert_eq!(h.state().map_names(), before, "the maps of the last good photo stay");
    assert!(h.query_by_label_contains("Error:").is_some());
    h.snapshot("corrupt_photo");
}

//! The guided lesson, the settings kept between runs and the keyboard shortcuts, driven as a
//! teacher drives them: each of the lesson's steps sets the model, photo, view, layer, unit and
//! V scale it names and says what to look at (a snapshot per step, `tests/snapshots/lesson_N.png`,
//! looked at and used in TEACHING.md); the UI scale and the colour-blind map survive a restart;
//! F1, Page Down and the digit keys do what Help → Keyboard shortcuts says.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{open, options};
use eframe::egui;
use egui_kittest::kittest::Queryable;
use lrnn_studio::lesson::STEPS;
use lrnn_studio::screenshot::{harness, settle};
use lrnn_studio::View;

#[test]
fn each_lesson_step_sets_the_app_and_says_what_to_look_at() {
    let mut h = open("lesson");
    for (i, step) in STEPS.iter().enumerate() {
        h.state_mut().go_to_lesson(i);
        settle(&mut h, Duration::from_secs(300)).unwrap();
        let app = h.state();
        assert_eq!(app.error(), None, "step {}", i + 1);
        assert_eq!(app.lesson_step(), Some(i));
        assert_eq!(app.view(), step.view, "step {}", i + 1);
        let a = app.analysis().unwrap();
        assert!(a.model_dir.ends_with(step.model), "step {}: {}", i + 1, a.model_dir.display());
        assert!(a.photo.ends_with(step.photo), "step {}", i + 1);
        if let Some(m) = step.map {
            assert_eq!(app.selected_map(), Some(m), "step {}", i + 1);
        }
        if !a.recurrences.is_empty() {
            assert_eq!(a.scale, step.scale, "step {}", i + 1);
        }
        if let Some((map, channel, y, x)) = step.unit {
            let (unit, model, cnn) = app.erf_summary().unwrap();
            assert_eq!(
                (unit.map.as_str(), unit.channel, unit.y, unit.x),
                (map, channel, y, x),
                "step {}",
                i + 1
            );
            // What the text says holds: conv1's field is its 3x3 patch; with V = 0 the model's
            // ERF is the CNN's; the L-RNN's conv6 reaches past the CNN's 16 px.
            match i {
                0 => assert_eq!(model[2], Some(3), "step 1: {model:?}"),
                5 => assert_eq!(Some(model), cnn, "step 6: V = 0 is the CNN"),
                4 => assert!(model[2].unwrap() > 2 * cnn.unwrap()[2].unwrap(), "step 5: {model:?} {cnn:?}"),
                _ => {}
            }
        }
        if step.rf_depth {
            let d = app.rf_depth().expect("the step computes the receptive field against depth");
            assert!(a.model_dir.ends_with(step.model) && !d.model.is_empty());
        }
        h.get_by_label(step.title);
        h.get_by_label(step.text);
        if step.rf_depth {
            // The plot is what the step is about: bring it into view.
            h.get_by_label("Export the plot PNG + CSV…").scroll_to_me();
            h.run_steps(3);
        }
        common::snapshot(&mut h, &format!("lesson_{}", i + 1));
    }
    // Next is disabled at the end; Close closes.
    h.get_by_label("Close").click();
    h.run_steps(2);
    assert_eq!(h.state().lesson_step(), None);
}

#[test]
fn shortcuts_open_the_lesson_step_it_and_switch_views() {
    let mut h = open("shortcuts");
    h.key_press(egui::Key::F1);
    settle(&mut h, Duration::from_secs(300)).unwrap();
    assert_eq!(h.state().lesson_step(), Some(0));
    h.key_press(egui::Key::PageDown);
    settle(&mut h, Duration::from_secs(300)).unwrap();
    assert_eq!((h.state().lesson_step(), h.state().view()), (Some(1), View::Layers));
    h.key_press(egui::Key::PageUp);
    settle(&mut h, Duration::from_secs(300)).unwrap();
    assert_eq!(h.state().lesson_step(), Some(0));
    h.key_press(egui::Key::F1);
    h.run_steps(2);
    assert_eq!(h.state().lesson_step(), None);
    for (key, view) in
        [(egui::Key::Num3, View::Recurrence), (egui::Key::Num2, View::Field), (egui::Key::Num1, View::Layers)]
    {
        h.key_press(key);
        h.run_steps(1);
        assert_eq!(h.state().view(), view);
    }
    // Help lists them.
    h.get_by_label("Help").click();
    h.run_steps(2);
    h.get_by_label("Keyboard shortcuts").click();
    h.run_steps(2);
    for (keys, what) in lrnn_studio::app::SHORTCUTS {
        h.get_by_label(keys);
        h.get_by_label(what);
    }
}

#[test]
fn the_ui_scale_and_the_colour_blind_map_are_kept_between_runs() {
    let opts = options("settings");
    let path = opts.settings.clone().unwrap();
    let _ = std::fs::remove_file(&path);
    let mut h = harness(opts.clone(), (1280.0, 860.0));
    settle(&mut h, Duration::from_secs(300)).unwrap();
    assert_eq!(h.state().settings(), lrnn_studio::settings::Settings::default());
    let ctx = h.ctx.clone();
    h.state_mut().set_ui_scale(&ctx, 1.5);
    h.state_mut().set_colour_blind(true);
    h.run_steps(2);
    assert_eq!(h.ctx.zoom_factor(), 1.5);
    assert_eq!(h.state().colour_map(), lrnn_core::colour::ColourMap::Cividis);
    // Ctrl + beyond 2x stops at 2x.
    h.state_mut().set_ui_scale(&ctx, 9.0);
    h.run_steps(1);
    assert_eq!((h.ctx.zoom_factor(), h.state().settings().ui_scale), (2.0, 2.0));
    h.state_mut().set_ui_scale(&ctx, 1.5);
    h.run_steps(1);
    drop(h);
    // A restart: the same scale and map.
    let mut h = harness(opts.clone(), (1280.0, 860.0));
    settle(&mut h, Duration::from_secs(300)).unwrap();
    assert_eq!(h.state().settings().ui_scale, 1.5);
    assert_eq!(h.ctx.zoom_factor(), 1.5);
    assert_eq!(h.state().colour_map(), lrnn_core::colour::ColourMap::Cividis);
    common::save_render(&mut h, "ui_scale_1.5");
    drop(h);
    // A damaged settings file: the defaults and a notice naming it; the file is not replaced
    // until a setting changes.
    std::fs::write(&path, b"{ not json").unwrap();
    let mut h = harness(opts, (1280.0, 860.0));
    settle(&mut h, Duration::from_secs(300)).unwrap();
    assert_eq!(h.state().settings(), lrnn_studio::settings::Settings::default());
    assert!(h.state().notice().unwrap().contains("studio.json"), "{:?}", h.state().notice());
    assert_eq!(std::fs::read(&path).unwrap(), b"{ not json");
}

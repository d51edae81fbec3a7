//! The app driven as a person drives it, rendered through wgpu (lavapipe in CI): it opens the
//! bundled model and photo with real content in every view, steps through layers with the keys,
//! computes an ERF when a unit is clicked, scales every V with the slider, inserts an L-RNN pair,
//! exports views (fine-tuning: `finetune.rs`), and shows errors for a corrupt
//! photo and a checkpoint that does not fit while keeping what it had. Snapshots of each view
//! land in `app/tests/snapshots/` (compared with the committed ones; `UPDATE_SNAPSHOTS=1`
//! rewrites them); renders that change from run to run (fine-tuning) go to
//! `target/ui-renders/`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{open, options, temp};
use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use lrnn_studio::screenshot::settle;
use lrnn_studio::{StudioApp, View};

fn click(h: &mut Harness<'static, StudioApp>, at: egui::Pos2) {
    h.hover_at(at);
    for pressed in [true, false] {
        h.event(egui::Event::PointerButton {
            pos: at,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: Default::default(),
        });
    }
    h.step();
}

#[test]
fn opens_the_bundled_model_with_every_view_showing_real_content() {
    let mut h = open("views");
    let names = h.state().map_names();
    assert_eq!(names.first().map(String::as_str), Some("conv1"));
    for want in ["conv5.lr", "conv5.rl", "conv5", "conv6.tb", "conv6.bt", "conv6", "output"] {
        assert!(names.contains(&want.to_string()), "{want} missing from {names:?}");
    }
    // Opens on the first scan direction, with the module strip and an ERF already computed.
    assert_eq!(h.state().selected_map(), Some("conv5.lr"));
    h.get_by_label_contains("The L-RNN module");
    let (unit, model, cnn) = h.state().erf_summary().expect("an ERF on start");
    assert_eq!(unit.map, "conv6", "the default unit is the centre of the last map");
    let (model, cnn) = (model[2].unwrap(), cnn.unwrap()[2].unwrap());
    assert!(model > cnn, "the L-RNN's 99% square ({model} px) is wider than its CNN's ({cnn} px)");
    common::snapshot(&mut h, "layers");

    for view in [View::Field, View::Recurrence, View::FineTune, View::Segmentation] {
        h.state_mut().show_view(view);
        h.run_steps(3);
        common::snapshot(&mut h, view.key());
    }
    // Real content: the recurrence view lists all four matrices with their radii; the fine-tune
    // view plots the checkpoint's own history; the segmentation view says what to open instead
    // (the segmentation itself: tests/segmentation.rs).
    h.state_mut().show_view(View::Recurrence);
    h.run_steps(2);
    assert_eq!(h.state().analysis().unwrap().recurrences.len(), 4);
    h.get_by_label_contains("spectral radius ρ =");
    h.state_mut().show_view(View::Segmentation);
    h.run_steps(2);
    h.get_by_label_contains("is not a segmentation network");
    assert_eq!(h.state().finetune().history.len(), 2);
}

#[test]
fn keys_step_through_layers_and_a_click_gives_that_units_erf() {
    let mut h = open("keys");
    // Down twice from conv5.lr: conv5.rl, then conv5 (the merged output).
    h.key_press(egui::Key::ArrowDown);
    h.key_press(egui::Key::ArrowDown);
    h.run_steps(2);
    assert_eq!(h.state().selected_map(), Some("conv5"));
    h.get_by_label("layer output: 32 channels of 24×24");
    h.key_press(egui::Key::ArrowUp);
    h.run_steps(2);
    assert_eq!(h.state().selected_map(), Some("conv5.rl"));
    h.key_press(egui::Key::ArrowDown);
    h.run_steps(2);

    // Click the centre of the first tile (channel 0 of conv5, 24x24): that unit's ERF.
    let image = h.get_all_by_role(egui::accesskit::Role::Image).next().unwrap().rect();
    let tile = image.width() / (4.0 * 25.0 - 1.0) * 24.0; // 16 channels, 4 per row, 1-px gaps
    let unit = tile / 24.0;
    click(&mut h, egui::pos2(image.left() + 12.5 * unit, image.top() + 12.5 * unit));
    assert!(h.state().is_busy(), "a click on a unit starts an ERF");
    settle(&mut h, Duration::from_secs(120)).unwrap();
    let (unit, _, _) = h.state().erf_summary().unwrap();
    assert_eq!((unit.map.as_str(), unit.channel, unit.y, unit.x), ("conv5", 0, 12, 12));
}

#[test]
fn the_v_slider_goes_from_the_cnn_to_the_trained_model() {
    let mut h = open("slider");
    let radius = |h: &Harness<'static, StudioApp>| {
        h.state().analysis().unwrap().recurrences[0].spectrum.as_ref().unwrap().spectral_radius
    };
    let trained = radius(&h);
    assert!(trained > 0.1, "{trained}");
    h.state_mut().set_scale(0.0);
    settle(&mut h, Duration::from_secs(120)).unwrap();
    assert_eq!(radius(&h), 0.0, "V = 0 everywhere");
    let (_, model, cnn) = h.state().erf_summary().unwrap();
    assert_eq!(Some(model), cnn, "at scale 0 the model's ERF is its CNN's");
    h.state_mut().set_scale(0.5);
    settle(&mut h, Duration::from_secs(120)).unwrap();
    assert!((radius(&h) - 0.5 * trained).abs() < 1e-4, "eigenvalues scale with V");
    h.state_mut().set_scale(1.0);
    settle(&mut h, Duration::from_secs(120)).unwrap();
    assert!((radius(&h) - trained).abs() < 1e-9, "back to the trained values");
}

#[test]
fn inserting_a_pair_keeps_the_scores_and_adds_its_directions() {
    let mut h = open("insert");
    h.state_mut().open_model(lrnn_studio::app::assets_dir().join("models/context-cnn"));
    settle(&mut h, Duration::from_secs(120)).unwrap();
    let before = h.state().analysis().unwrap().classes.clone();
    assert!(h.state().analysis().unwrap().recurrences.is_empty());
    h.state_mut()
        .insert(lrnn_studio::view_model::InsertTarget::Conv("conv5".into()), lrnn_core::nn::Axis::Horizontal);
    settle(&mut h, Duration::from_secs(120)).unwrap();
    assert_eq!(h.state().error(), None);
    let a = h.state().analysis().unwrap();
    assert_eq!(a.classes, before, "V = 0: exactly the CNN's scores");
    assert_eq!(a.recurrences.len(), 2);
    assert!(a.maps.iter().any(|m| m.name == "conv5.lr") && a.maps.iter().any(|m| m.name == "conv5.rl"));
    assert!(a.recurrences.iter().all(|r| r.spectrum.as_ref().unwrap().spectral_radius == 0.0));
}

#[test]
fn views_export_png_and_csv() {
    let mut h = open("export");
    let dir = temp("exported");
    for view in [View::Layers, View::Field, View::Recurrence] {
        h.state_mut().show_view(view);
        h.run_steps(1);
        let (png, csv) = h.state().export_to(&dir.join(view.key())).unwrap();
        let img = image::open(&png).unwrap();
        assert!(img.width() > 20 && img.height() > 20, "{view:?}");
        let text = std::fs::read_to_string(&csv).unwrap();
        assert!(text.lines().count() > 10, "{view:?}: {text:.200}");
    }
    let text = std::fs::read_to_string(dir.join("recurrence.csv")).unwrap();
    assert!(text.starts_with("matrix,gate,kind,i,re,im\n") && text.contains(",eigenvalue,"));
    h.state_mut().show_view(View::Segmentation);
    assert!(h.state().export_to(&dir.join("seg")).unwrap_err().contains("nothing to export"));
}

#[test]
fn a_corrupt_photo_and_an_unfit_checkpoint_show_errors_and_keep_what_was_there() {
    let mut h = open("errors");
    let before = h.state().map_names();
    // A fixed path: the message is in the snapshot.
    let dir = std::env::temp_dir().join("lrnn-studio-bad-input");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("corrupt.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n this is not a picture").unwrap();
    h.state_mut().open_image(bad.clone());
    settle(&mut h, Duration::from_secs(60)).unwrap();
    let err = h.state().error().unwrap().to_string();
    assert!(err.contains(bad.to_str().unwrap()) && err.contains("not a readable image"), "{err}");
    assert_eq!(h.state().map_names(), before, "the maps of the last good photo stay");
    h.get_by_label_contains("Error:");
    common::snapshot(&mut h, "corrupt_photo");

    // A checkpoint whose weights belong to another model.
    let ckpt = temp("unfit");
    std::fs::create_dir_all(&ckpt).unwrap();
    let assets = lrnn_studio::app::assets_dir().join("models");
    for f in ["model.json", "state.json"] {
        std::fs::copy(assets.join("context-lrnn").join(f), ckpt.join(f)).unwrap();
    }
    std::fs::copy(assets.join("context-cnn/weights.safetensors"), ckpt.join("weights.safetensors")).unwrap();
    h.state_mut().open_model(ckpt.clone());
    settle(&mut h, Duration::from_secs(60)).unwrap();
    let err = h.state().error().unwrap().to_string();
    assert!(err.contains("weights.safetensors"), "{err}");
    assert_eq!(h.state().map_names(), before, "the last good model stays");

    // Grey 16-bit and RGBA photos of odd sizes open (resized for the model, the original kept).
    let grey16 = dir.join("grey16.png");
    image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(37, 23, |x, y| {
        image::Luma([(x * 1500 + y * 300) as u16])
    })
    .save(&grey16)
    .unwrap();
    let rgba = dir.join("rgba.png");
    image::RgbaImage::from_fn(50, 81, |x, y| image::Rgba([x as u8 * 5, y as u8 * 3, 100, 128]))
        .save(&rgba)
        .unwrap();
    for (p, size) in [(&grey16, (37, 23)), (&rgba, (50, 81))] {
        h.state_mut().open_image(p.clone());
        settle(&mut h, Duration::from_secs(60)).unwrap();
        assert_eq!(h.state().error(), None, "{}", p.display());
        let a = h.state().analysis().unwrap();
        assert_eq!(a.original.dimensions(), size);
        assert_eq!(a.input.dimensions(), (96, 96));
    }

    // A folder of photos browses with the arrow keys; the good photo comes back.
    h.state_mut().open_folder(&lrnn_studio::app::assets_dir().join("photos"));
    settle(&mut h, Duration::from_secs(60)).unwrap();
    assert_eq!(h.state().error(), None);
    let first = h.state().analysis().unwrap().photo.clone();
    assert!(first.ends_with("astronaut.png"), "{first:?}");
    h.key_press(egui::Key::ArrowRight);
    settle(&mut h, Duration::from_secs(60)).unwrap();
    assert!(h.state().analysis().unwrap().photo.ends_with("chelsea.png"));
    h.state_mut().open_folder(&dir.join("no-such-folder"));
    settle(&mut h, Duration::from_secs(60)).unwrap();
    assert!(h.state().error().unwrap().contains("no-such-folder"));
}

#[test]
fn the_screenshot_option_renders_a_view_to_a_png() {
    let out = temp("shot").join("recurrence.png");
    lrnn_studio::screenshot::screenshot(options("shot-work"), View::Recurrence, &out).unwrap();
    let img = image::open(&out).unwrap();
    assert!(img.width() >= 1280 && img.height() >= 860, "{}x{}", img.width(), img.height());
}

#[test]
fn a_folder_with_a_description_and_weights_opens_but_is_not_fine_tuned() {
    let mut h = open("bare");
    let dir = temp("bare-model");
    let desc = lrnn_core::models::ModelDesc::from_name_or_file("Context-LRNN").unwrap();
    let model = lrnn_core::models::Model::new_seeded(desc.clone(), &candle_core::Device::Cpu, 5).unwrap();
    desc.save(&dir.join("model.json")).unwrap();
    model.save_weights(&dir.join("weights.safetensors")).unwrap();
    h.state_mut().open_model(dir);
    settle(&mut h, Duration::from_secs(120)).unwrap();
    assert_eq!(h.state().error(), None);
    assert!(h.state().analysis().unwrap().state.is_none());
    assert_eq!(h.state().analysis().unwrap().recurrences.len(), 4);
    h.state_mut().show_view(View::FineTune);
    h.run_steps(2);
    h.get_by_label_contains("no state.json");
    h.state_mut().start_finetune();
    assert!(h.state().error().unwrap().contains("no state.json"));
    assert!(!h.state().finetune().is_running());
}

#[test]
fn a_voc_tree_with_missing_masks_says_which() {
    let mut h = open("voc");
    let root = temp("voc-tree");
    std::fs::create_dir_all(root.join("JPEGImages")).unwrap();
    std::fs::create_dir_all(root.join("SegmentationClass")).unwrap();
    for id in ["2007_000032", "2007_000039"] {
        image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 90]))
            .save(root.join("JPEGImages").join(format!("{id}.jpg")))
            .unwrap();
    }
    let mask = lrnn_core::data::voc::LabelMap { width: 40, height: 30, labels: vec![0; 1200] };
    lrnn_core::data::voc::write_label_png(&root.join("SegmentationClass/2007_000032.png"), &mask).unwrap();
    h.state_mut().open_folder(&root);
    settle(&mut h, Duration::from_secs(60)).unwrap();
    assert_eq!(h.state().error(), None, "the photos still open");
    let notice = h.state().notice().unwrap().to_string();
    assert!(notice.contains("1 of 2 photos have no mask") && notice.contains("2007_000039.png"), "{notice}");
    h.get_by_label_contains("have no mask");
    // Without SegmentationClass/ at all.
    std::fs::remove_dir_all(root.join("SegmentationClass")).unwrap();
    h.state_mut().open_folder(&root);
    settle(&mut h, Duration::from_secs(60)).unwrap();
    assert!(h.state().notice().unwrap().contains("no ground truth"), "{:?}", h.state().notice());
}

#[test]
fn the_compute_menu_moves_the_forward_passes_to_the_gpu_with_the_same_maps() {
    let mut h = open("compute");
    let cpu = h.state().analysis().unwrap().clone();
    assert_eq!(cpu.device, "CPU (candle)", "a software adapter is not chosen by itself");
    h.get_by_label("Compute").click();
    h.run();
    h.get_by_label("GPU through wgpu (the best adapter)").click();
    settle(&mut h, Duration::from_secs(300)).unwrap();
    let require = std::env::var("LRNN_REQUIRE_GPU").is_ok_and(|v| v == "1");
    if let Some(e) = h.state().error() {
        assert!(!require, "LRNN_REQUIRE_GPU=1 but: {e}");
        assert!(e.contains("no GPU adapter"), "{e}");
        return;
    }
    let gpu = h.state().analysis().unwrap().clone();
    assert!(gpu.device.starts_with("GPU: "), "{}", gpu.device);
    h.get_by_label_contains(&format!("· {}", gpu.device.split(" (").next().unwrap()));
    // The menu as a person sees it (not compared: the adapter's name depends on the machine).
    h.get_by_label("Compute").click();
    h.run();
    h.get_by_label_contains("Forward passes now run on: GPU: ");
    common::save_render(&mut h, "compute_menu");
    h.key_press(egui::Key::Escape);
    h.run();
    assert_eq!(cpu.maps.len(), gpu.maps.len());
    for (c, g) in cpu.maps.iter().zip(&gpu.maps) {
        assert_eq!((&c.name, c.shape), (&g.name, g.shape));
        let peak = c.values.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let diff = c.values.iter().zip(&g.values).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff / peak < 1e-4, "{}: {}", c.name, diff / peak);
    }
    for ((name, p), (_, q)) in cpu.classes.iter().zip(&gpu.classes) {
        assert!((p - q).abs() < 1e-5, "{name}: {p} vs {q}");
    }
    // The ERF of a unit on the GPU (its backward pass): the CPU's map within 1e-4 of its peak,
    // for the model and for its CNN.
    let unit = h.state().erf_summary().unwrap().0;
    let (on_gpu, cnn_on_gpu) = {
        h.state_mut().request_erf(unit.clone());
        settle(&mut h, Duration::from_secs(120)).unwrap();
        let (m, c) = h.state().erf_maps().unwrap();
        assert!(m.on_gpu, "Compute → GPU: the ERF's backward pass runs there");
        (m.values.clone(), c.map(|c| c.values.clone()))
    };
    // A Fine-tune timeline snapshot (here the loaded checkpoint itself) on the GPU too.
    let dir = h.state().analysis().unwrap().model_dir.clone();
    h.state_mut().request_snapshot(dir, 0, unit.clone());
    settle(&mut h, Duration::from_secs(120)).unwrap();
    {
        let snap = &h.state().finetune().snapshots.last().unwrap().erf;
        assert!(snap.on_gpu, "Compute → GPU: the snapshot's ERF runs there");
        let worst = snap.values.iter().zip(&on_gpu).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst < 1e-6, "the snapshot's ERF is the model's: {worst}");
    }
    // Receptive field against depth: its backward passes on the GPU, the CPU's table.
    h.state_mut().show_view(View::Field);
    h.run_steps(2);
    h.get_by_label("Compute on this photo").click();
    h.run_steps(1);
    settle(&mut h, Duration::from_secs(300)).unwrap();
    assert_eq!(h.state().error(), None);
    let depth_on_gpu = h.state().rf_depth().expect("computed").clone();
    let on = h.state().rf_depth_device().unwrap().to_string();
    assert!(on.starts_with("the GPU ("), "{on}");
    h.get_by_label_contains("backward passes on the GPU (");
    h.state_mut().set_compute(false);
    settle(&mut h, Duration::from_secs(120)).unwrap();
    h.get_by_label("Compute on this photo").click();
    h.run_steps(1);
    settle(&mut h, Duration::from_secs(300)).unwrap();
    assert_eq!(h.state().rf_depth_device(), Some("the CPU"));
    assert_eq!(h.state().rf_depth(), Some(&depth_on_gpu), "the same table on both");
    h.state_mut().request_erf(unit.clone());
    settle(&mut h, Duration::from_secs(120)).unwrap();
    let (on_cpu, cnn_on_cpu) = h.state().erf_maps().unwrap();
    assert!(!on_cpu.on_gpu);
    let (on_cpu, cnn_on_cpu) = (&on_cpu.values, cnn_on_cpu.map(|c| &c.values));
    let worst = |a: &[f32], b: &[f32]| a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert_eq!(on_gpu.len(), on_cpu.len());
    assert!(worst(&on_gpu, on_cpu) < 1e-4, "ERF of {unit:?}: {}", worst(&on_gpu, on_cpu));
    if let (Some(a), Some(b)) = (&cnn_on_gpu, cnn_on_cpu) {
        assert!(worst(a, b) < 1e-4, "the CNN's ERF: {}", worst(a, b));
    }
    h.state_mut().set_compute(true);
    settle(&mut h, Duration::from_secs(120)).unwrap();
    // The V slider re-uploads the scaled weights; back to the CPU gives the CPU's maps again.
    h.state_mut().set_scale(0.0);
    settle(&mut h, Duration::from_secs(120)).unwrap();
    let scaled = h.state().analysis().unwrap();
    assert!(scaled.device.starts_with("GPU: "));
    assert!(scaled.maps.iter().zip(&gpu.maps).any(|(a, b)| a.values != b.values), "V = 0 changes the maps");
    h.state_mut().set_compute(false);
    h.state_mut().set_scale(1.0);
    settle(&mut h, Duration::from_secs(120)).unwrap();
    let back = h.state().analysis().unwrap();
    assert_eq!(back.device, "CPU (candle)");
    assert_eq!(back.classes, cpu.classes);
    // Off and on again at one scale: each time a new device, the weights uploaded to it (not
    // the ones the earlier device holds).
    for round in 0..2 {
        h.state_mut().set_compute(true);
        settle(&mut h, Duration::from_secs(120)).unwrap();
        assert_eq!(h.state().error(), None);
        let again = h.state().analysis().unwrap();
        assert!(again.device.starts_with("GPU: "), "round {round}: {}", again.device);
        for ((name, p), (_, q)) in cpu.classes.iter().zip(&again.classes) {
            assert!((p - q).abs() < 1e-5, "{name}: {p} vs {q}");
        }
        h.state_mut().set_compute(false);
        settle(&mut h, Duration::from_secs(120)).unwrap();
    }
}

#[test]
fn photos_named_in_any_script_open_and_their_names_show() {
    let mut h = open("unicode");
    let dir = temp("unicode-names");
    // Japanese, Arabic and an emoji in one name (the CJK glyphs come from a system font such as
    // Droid Sans Fallback; the harness fails on any character no font has).
    let photo = dir.join("猫の写真 صورة 🐱.png");
    std::fs::copy(lrnn_studio::options::assets_dir().join("photos/chelsea.png"), &photo).unwrap();
    h.state_mut().open_image(photo.clone());
    settle(&mut h, Duration::from_secs(60)).unwrap();
    assert_eq!(h.state().error(), None);
    assert_eq!(h.state().analysis().unwrap().photo, photo);
    h.get_by_label_contains("猫の写真 صورة 🐱.png");
    // A missing one: the error names it, drawn in the window.
    let missing = dir.join("存在しない 🚫.png");
    h.state_mut().open_image(missing.clone());
    settle(&mut h, Duration::from_secs(60)).unwrap();
    let err = h.state().error().unwrap().to_string();
    assert!(err.contains("存在しない 🚫.png"), "{err}");
    h.get_by_label_contains("存在しない");
    common::save_render(&mut h, "unicode_names");
}

#[test]
fn the_layers_list_gives_each_layers_receptive_field_arithmetic() {
    let mut h = open("rf-table");
    // conv4, two 3x3 convolutions after a 2x2 pool on two 3x3 ones: 6 + 2·2 + 2·2 = 14 px, jump 2.
    assert!(h.state_mut().select_map("conv4"));
    h.run_steps(2);
    h.get_by_label_contains("Receptive field of conv4: 14 px · jump 2 px");
    // The pair in conv5 reaches the whole row; the pair in conv6 after it the whole image.
    assert!(h.state_mut().select_map("conv5"));
    h.run_steps(2);
    h.get_by_label_contains("Receptive field of conv5: the whole row");
    assert!(h.state_mut().select_map("conv6"));
    h.run_steps(2);
    h.get_by_label_contains("Receptive field of conv6: the whole image");
    // The full table opens under the list.
    h.get_by_label("Receptive-field arithmetic, every layer").click();
    h.run_steps(2);
    h.get_by_label("first centre");
}

#[test]
fn the_field_view_plots_receptive_field_against_depth_for_the_model_and_its_cnn() {
    let mut h = open("rf-depth");
    h.state_mut().show_view(View::Field);
    h.run_steps(2);
    h.get_by_label("Not computed yet for this model.");
    h.get_by_label("Compute on this photo").click();
    h.run_steps(1);
    assert!(h.state().is_busy(), "the button starts the job on the worker");
    settle(&mut h, Duration::from_secs(120)).unwrap();
    let d = h.state().rf_depth().expect("computed").clone();
    // The bundled Context-LRNN: the CNN stops at 16 px; the model's last layer sees the image.
    let names: Vec<&str> = d.model.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["conv1", "conv2", "pool1", "conv3", "conv4", "pool2", "conv5", "conv6"]);
    let cnn = d.cnn.as_ref().expect("a CNN curve");
    assert_eq!(cnn.last().unwrap().theoretical, 16.0);
    assert!(d.model.last().unwrap().whole_image);
    assert!(d.model.last().unwrap().erf99.unwrap() > 2 * cnn.last().unwrap().erf99.unwrap());
    h.get_by_label_contains("model: ERF 99%");
    h.get_by_label("Export the plot PNG + CSV…").scroll_to_me();
    h.run_steps(3);
    common::snapshot(&mut h, "field_rf_depth");
}

#[test]
fn the_recurrence_view_steps_through_a_runs_snapshots() {
    use lrnn_core::probe::contribution::RecurrenceScale;
    // A run folder by hand: the bundled model with every V scaled by 1.0, 0.9, 0.8 at steps 0,
    // 10, 20 (spectral radii and changes known exactly).
    let run = temp("history-run");
    let _ = std::fs::remove_dir_all(&run);
    let start = lrnn_studio::app::assets_dir().join("models/context-lrnn-finetuned");
    let ckpt = lrnn_core::train::Checkpoint::open(&start, &candle_core::Device::Cpu).unwrap();
    let mut scale = RecurrenceScale::of(&ckpt.model).unwrap();
    for (step, k) in [(0, 1.0), (10, 0.9), (20, 0.8)] {
        scale.set(k).unwrap();
        let dir = run.join(format!("step-{step:08}"));
        std::fs::create_dir_all(&dir).unwrap();
        ckpt.model.save_weights(&dir.join("weights.safetensors")).unwrap();
    }
    let mut h = open("history");
    h.state_mut().show_view(View::Recurrence);
    h.run_steps(2);
    h.get_by_label("No run read yet.");
    h.state_mut().read_history(run.clone());
    settle(&mut h, Duration::from_secs(120)).unwrap();
    let history = h.state().history().expect("read").clone();
    assert_eq!(history.steps, [0, 10, 20]);
    assert_eq!(history.tracks.len(), 4);
    assert_eq!(history.pairs.len(), 2);
    for t in &history.tracks {
        let rho: Vec<f64> = t.at.iter().map(|a| a.spectrum.spectral_radius).collect();
        assert!((rho[2] / rho[0] - 0.8).abs() < 1e-5, "{}: {rho:?}", t.name);
        assert!((t.at[2].change - 0.2).abs() < 1e-5, "{}: {}", t.name, t.at[2].change);
    }
    h.get_by_label_contains("3 snapshots, steps 0–20");
    h.get_by_label_contains("top eigenvectors");
    h.get_by_label_contains("the two directions differ by");
    h.get_by_label("Export over training PNG + CSV…").scroll_to_me();
    h.run_steps(3);
    common::snapshot(&mut h, "recurrence_history");
}

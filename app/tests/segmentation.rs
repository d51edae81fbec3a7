//! The Segmentation view on the bundled scenes segmenter (FCN-8s-LRNN trained on the generated
//! scenes) and its scenes: prediction over the photo, ground truth, the CNN with every V at zero
//! and where they differ, per-photo and running scores, the V slider, browsing, export.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{options, temp};
use eframe::egui;
use egui_kittest::kittest::Queryable;
use lrnn_core::train::confusion::Confusion;
use lrnn_studio::screenshot::{harness, settle};
use lrnn_studio::views::View;

/// The app on its defaults, then the Segmentation demo, loaded without error.
fn open_demo(name: &str) -> egui_kittest::Harness<'static, lrnn_studio::StudioApp> {
    let mut h = harness(options(name), (1280.0, 960.0));
    settle(&mut h, Duration::from_secs(300)).unwrap();
    h.state_mut().open_segmentation_demo();
    settle(&mut h, Duration::from_secs(300)).unwrap();
    assert_eq!(h.state().error(), None);
    h
}

#[test]
fn the_scenes_segmenter_shows_prediction_truth_its_cnn_and_running_scores() {
    let mut h = open_demo("seg");
    let a = h.state().analysis().unwrap();
    assert!(a.model.contains("FCN-8s-LRNN"), "{}", a.model);
    let s = a.segmentation.clone().expect("an FCN segments the photo");
    assert_eq!(s.size, (96, 96));
    assert_eq!(s.classes, ["background", "red-marked object", "blue-marked object"]);
    let truth = s.truth.clone().expect("the scene's mask is found");
    assert!(s.truth_note.contains("SegmentationClass"), "{}", s.truth_note);
    // The trained segmenter finds the object and its class on an unseen scene.
    let mut c = Confusion::new(3);
    c.add(&s.prediction, &truth);
    assert!(c.mean_iou().unwrap() > 0.8, "mean IoU {:?}", c.mean_iou());
    let cnn = s.cnn.clone().expect("the model has recurrences: its CNN is shown too");
    assert_eq!(cnn.len(), s.prediction.len());
    h.run_steps(3);
    h.get_by_label("ground truth");
    h.get_by_label("its CNN (every V = 0)");
    h.get_by_label("where the L-RNN changes the CNN's labels");
    h.get_by_label_contains("running, 1 photo");
    common::snapshot(&mut h, "segmentation_scenes");

    // The V slider at 0: the model is its CNN, and nothing differs.
    h.state_mut().set_scale(0.0);
    settle(&mut h, Duration::from_secs(120)).unwrap();
    let s0 = h.state().analysis().unwrap().segmentation.clone().unwrap();
    assert_eq!(s0.prediction, cnn, "at V scale 0 the prediction is the CNN's");
    assert_eq!(s0.cnn.as_ref(), Some(&cnn));
    h.state_mut().set_scale(1.0);
    settle(&mut h, Duration::from_secs(120)).unwrap();

    // Right: the next scene joins the running scores; Left returns without counting twice.
    h.key_press(egui::Key::ArrowRight);
    settle(&mut h, Duration::from_secs(120)).unwrap();
    assert!(h.state().analysis().unwrap().photo.ends_with("scene-00001.jpg"));
    assert_eq!(h.state().segmentation().running_photos(), 2);
    h.key_press(egui::Key::ArrowLeft);
    settle(&mut h, Duration::from_secs(120)).unwrap();
    assert_eq!(h.state().segmentation().running_photos(), 2);

    // Opacity 0 shows the photo alone; the export has the pictures and the per-class IoU.
    h.state_mut().segmentation_mut().set_opacity(0.0);
    h.run_steps(2);
    let dir = temp("seg-export");
    let (png, csv) = h.state().export_to(&dir.join("seg")).unwrap();
    let img = image::open(&png).unwrap().to_rgb8();
    assert!(img.width() >= 4 * 96, "four panels: {}x{}", img.width(), img.height());
    let photo = image::open(&h.state().analysis().unwrap().photo).unwrap().to_rgb8();
    let (p, q) = (photo.get_pixel(40, 40).0, img.get_pixel(40, 40).0);
    assert!(p.iter().zip(q).all(|(a, b)| a.abs_diff(b) < 12), "opacity 0: the photo, {p:?} vs {q:?}");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with(
        "class,photo_iou,photo_iou_cnn,photo_iou_crf,running_iou,running_iou_cnn,running_iou_crf,running_photos\n"
    ));
    assert!(text.contains("red-marked object,") && text.lines().count() == 4, "{text}");
    h.state_mut().show_view(View::Layers);
    h.run_steps(2);
    assert!(h.state().map_names().contains(&"fc7.lr".to_string()), "{:?}", h.state().map_names());
}

#[test]
fn the_dense_crf_switch_refines_the_labels_and_scores_them_beside_the_networks() {
    let mut h = open_demo("seg-crf");
    h.run_steps(2);
    h.get_by_label("dense CRF").click();
    h.run_steps(1);
    settle(&mut h, Duration::from_secs(300)).unwrap();
    assert_eq!(h.state().error(), None);
    let s = h.state().analysis().unwrap().segmentation.clone().unwrap();
    let crf = s.crf.clone().expect("the CRF's labels");
    assert_eq!(crf.len(), s.prediction.len());
    // On the flat-coloured scenes the CRF keeps the objects and cleans their borders.
    let truth = s.truth.clone().unwrap();
    let iou = |labels: &[u8]| {
        let mut c = Confusion::new(3);
        c.add(labels, &truth);
        c.mean_iou().unwrap()
    };
    assert!(iou(&crf) >= iou(&s.prediction) - 0.01, "CRF {} vs {}", iou(&crf), iou(&s.prediction));
    h.run_steps(3);
    h.get_by_label("after the dense CRF");
    h.get_by_label("where the CRF changes the labels");
    h.get_by_label_contains("the dense CRF changes");
    assert_eq!(h.query_all_by_label("with the CRF").count(), 2, "photo and running columns");
    common::snapshot(&mut h, "segmentation_crf");
    // It stays on for the next scene; its export has six panels and the CRF's IoU.
    h.key_press(egui::Key::ArrowRight);
    settle(&mut h, Duration::from_secs(120)).unwrap();
    assert!(h.state().analysis().unwrap().segmentation.as_ref().unwrap().crf.is_some());
    let dir = temp("seg-crf-export");
    let (png, csv) = h.state().export_to(&dir.join("seg")).unwrap();
    assert!(image::open(&png).unwrap().width() >= 6 * 96);
    let text = std::fs::read_to_string(&csv).unwrap();
    let red = text.lines().find(|l| l.starts_with("red-marked object,")).unwrap();
    let crf_iou: f64 = red.split(',').nth(3).unwrap().parse().unwrap();
    assert!(crf_iou > 0.5, "{red}");
    // Off again: no CRF labels.
    h.get_by_label("dense CRF").click();
    h.run_steps(1);
    settle(&mut h, Duration::from_secs(120)).unwrap();
    assert!(h.state().analysis().unwrap().segmentation.as_ref().unwrap().crf.is_none());
}

#[test]
fn large_recurrences_get_their_spectra_when_the_recurrence_view_asks() {
    let mut h = open_demo("seg-spectra");
    let a = h.state().analysis().unwrap();
    let big: Vec<bool> = a.recurrences.iter().map(|r| r.size > 256).collect();
    assert_eq!(big.iter().filter(|b| **b).count(), 8, "fc4, fc5, fc7, fc8 pairs are 1024 wide");
    assert!(a.recurrences.iter().all(|r| r.spectrum.is_some() != (r.size > 256)), "small ones at once");
    h.state_mut().show_view(View::Recurrence);
    h.run_steps(2);
    h.get_by_label_contains("Computing the spectra of 8 matrices");
    settle(&mut h, Duration::from_secs(600)).unwrap();
    let a = h.state().analysis().unwrap();
    assert!(a.recurrences.iter().all(|r| r.spectrum.is_some()));
    let fc5 = a.recurrences.iter().find(|r| r.name == "fc5.v_bt.weight").unwrap();
    let rho = fc5.spectrum.as_ref().unwrap().spectral_radius;
    assert!(rho > 0.5 && rho < 1.5, "the trained vertical recurrence of fc5: ρ = {rho}");
    // At V scale 0.5 the cached spectra are scaled, not recomputed: all present at once.
    h.state_mut().set_scale(0.5);
    settle(&mut h, Duration::from_secs(120)).unwrap();
    let a = h.state().analysis().unwrap();
    let half = a.recurrences.iter().find(|r| r.name == "fc5.v_bt.weight").unwrap();
    assert!((half.spectrum.as_ref().unwrap().spectral_radius - rho / 2.0).abs() < 1e-6);
}

#[test]
fn pairs_inserted_into_an_fcns_heads_from_the_ui_keep_its_segmentation() {
    // A plain FCN-8s (random heads, no trunk file needed) as `lrnn init` writes it.
    let dir = temp("plain-fcn");
    let desc = lrnn_core::models::ModelDesc::Fcn(lrnn_core::models::fcn::FcnConfig {
        heads: 16,
        classes: 3,
        input_size: Some(64),
        ..lrnn_core::models::fcn::FcnConfig::named("FCN-8s").unwrap()
    });
    let model = lrnn_core::models::Model::new_seeded(desc.clone(), &candle_core::Device::Cpu, 3).unwrap();
    // Non-zero scoring layers, so that the labels are not all background.
    for (name, var) in model.varmap().data().lock().unwrap().iter() {
        if name.starts_with("fc3.") || name.starts_with("fc6.") || name.starts_with("fc9.") {
            var.set(&var.randn_like(0.0, 0.01).unwrap()).unwrap();
        }
    }
    desc.save(&dir.join("model.json")).unwrap();
    model.save_weights(&dir.join("weights.safetensors")).unwrap();
    let mut h = harness(options("fcn-insert"), (1280.0, 960.0));
    settle(&mut h, Duration::from_secs(300)).unwrap();
    h.state_mut().open_model(dir.clone());
    h.state_mut().open_image(lrnn_studio::app::assets_dir().join("scenes/JPEGImages/scene-00003.jpg"));
    settle(&mut h, Duration::from_secs(300)).unwrap();
    assert_eq!(h.state().error(), None);
    let before = h.state().analysis().unwrap().segmentation.clone().unwrap();
    assert!(before.cnn.is_none(), "a plain FCN has no recurrence");
    assert_eq!(h.state().analysis().unwrap().insertable, [lrnn_studio::view_model::InsertTarget::FcnHeads]);
    h.state_mut().insert(lrnn_studio::view_model::InsertTarget::FcnHeads, lrnn_core::nn::Axis::Horizontal);
    settle(&mut h, Duration::from_secs(300)).unwrap();
    assert_eq!(h.state().error(), None);
    let a = h.state().analysis().unwrap();
    assert!(a.model.contains("FCN-8s-LRNN (n = 16)"), "{}", a.model);
    assert_eq!(a.recurrences.len(), 12);
    let after = a.segmentation.clone().unwrap();
    assert_eq!(after.prediction, before.prediction, "V = 0: the same labels, pixel for pixel");
    assert_eq!(after.cnn.as_ref(), Some(&before.prediction));
}

#[test]
fn the_demo_segments_the_same_on_the_gpu() {
    let mut h = open_demo("seg-gpu");
    let cpu = h.state().analysis().unwrap().segmentation.clone().unwrap();
    h.state_mut().set_compute(true);
    settle(&mut h, Duration::from_secs(300)).unwrap();
    let require = std::env::var("LRNN_REQUIRE_GPU").is_ok_and(|v| v == "1");
    if let Some(e) = h.state().error() {
        assert!(!require && e.contains("no GPU adapter"), "{e}");
        return;
    }
    let a = h.state().analysis().unwrap();
    assert!(a.device.starts_with("GPU: "), "{}", a.device);
    let gpu = a.segmentation.clone().unwrap();
    let differ = |x: &[u8], y: &[u8]| x.iter().zip(y).filter(|(a, b)| a != b).count();
    // A pixel whose two best scores are within rounding may go either way.
    assert!(differ(&cpu.prediction, &gpu.prediction) <= 10, "the model's labels");
    assert!(differ(cpu.cnn.as_ref().unwrap(), gpu.cnn.as_ref().unwrap()) <= 10, "the CNN's labels");
}

#[test]
fn a_published_fcns_weight_file_opens_segments_a_photo_at_its_size_and_takes_pairs() {
    // Long et al.'s FCN-8s geometry (narrow widths) as PyTorch's legacy torch.save wrote it.
    // Copied to a fixed place: the window shows the file's path, and the snapshot must not
    // depend on where the repository is.
    let fixture =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/fcn8s_caffe.legacy.pth");
    let dir = std::env::temp_dir().join("lrnn-studio-fcn-caffe");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("fcn8s_caffe.legacy.pth");
    std::fs::copy(&fixture, &file).unwrap();
    let mut h = harness(options("fcn-caffe"), (1280.0, 960.0));
    settle(&mut h, Duration::from_secs(300)).unwrap();
    h.state_mut().open_model(file);
    h.state_mut().open_image(lrnn_studio::app::assets_dir().join("photos/chelsea.png"));
    settle(&mut h, Duration::from_secs(300)).unwrap();
    assert_eq!(h.state().error(), None);
    let a = h.state().analysis().unwrap();
    assert!(a.model.contains("FCN-8s-Caffe"), "{}", a.model);
    let s = a.segmentation.clone().expect("a published FCN segments the photo");
    assert_eq!(s.size, (451, 300), "at the photo's own size");
    assert_eq!(s.classes.len(), 3);
    assert_eq!(a.insertable, [lrnn_studio::view_model::InsertTarget::FcnHeads]);
    h.state_mut().show_view(View::Segmentation);
    h.run_steps(3);
    common::snapshot(&mut h, "segmentation_caffe");
    h.state_mut().insert(lrnn_studio::view_model::InsertTarget::FcnHeads, lrnn_core::nn::Axis::Horizontal);
    settle(&mut h, Duration::from_secs(300)).unwrap();
    assert_eq!(h.state().error(), None);
    let after = h.state().analysis().unwrap();
    assert!(after.model.contains("FCN-8s-Caffe-LRNN"), "{}", after.model);
    let s2 = after.segmentation.clone().unwrap();
    assert_eq!(s2.prediction, s.prediction, "V = 0: the same labels, pixel for pixel");
}

#[test]
fn vgg16_convolutions_alone_open_as_the_trunk_of_an_fcn() {
    // What Model → VGG-16 (ImageNet) opens once fetched: torchvision-named convolutions only.
    let dir = temp("vgg16-trunk");
    let full = lrnn_core::models::Model::new_seeded(
        lrnn_core::models::ModelDesc::from_name_or_file("FCN-32s").unwrap(),
        &candle_core::Device::Cpu,
        5,
    )
    .unwrap();
    let trunk: std::collections::BTreeMap<String, candle_core::Tensor> =
        full.weights().unwrap().into_iter().filter(|(n, _)| n.starts_with("features.")).collect();
    assert_eq!(trunk.len(), 26);
    let file = dir.join("vgg16.safetensors");
    lrnn_core::io::write_tensors(&trunk, &file).unwrap();
    let mut h = harness(options("vgg16"), (1280.0, 960.0));
    settle(&mut h, Duration::from_secs(300)).unwrap();
    h.state_mut().open_model(file);
    settle(&mut h, Duration::from_secs(300)).unwrap();
    assert_eq!(h.state().error(), None);
    let a = h.state().analysis().unwrap();
    assert!(a.model.contains("FCN-32s"), "{}", a.model);
    for layer in ["conv1_1", "conv5_3", "pool5"] {
        assert!(a.maps.iter().any(|m| m.name == layer), "{layer} is shown");
    }
}

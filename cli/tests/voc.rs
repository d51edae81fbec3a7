//! PASCAL VOC in its real layout (palette PNG labels with 255 borders, the split lists, the
//! augmented label folder), segmentation scores against hand-computed values, and `lrnn score`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "../../core/tests/common/scratch.rs"]
mod scratch;

use std::path::{Path, PathBuf};
use std::process::Command;

use lrnn_core::colour::palette;
use lrnn_core::data::voc::{read_label_png, write_label_png, LabelMap, VocSplit};
use lrnn_core::train::confusion::Confusion;

fn tmp(name: &str) -> PathBuf {
    scratch::scratch_dir(name)
}

/// A `w x h` label map: background, a square of `class`, a 255 border around the square.
fn scene(w: usize, h: usize, class: u8) -> LabelMap {
    let mut labels = vec![0u8; w * h];
    for y in 2..h - 2 {
        for x in 2..w - 2 {
            let edge = y == 2 || y == h - 3 || x == 2 || x == w - 3;
            labels[y * w + x] = if edge { 255 } else { class };
        }
    }
    LabelMap { width: w, height: h, labels }
}

/// A VOC tree with two images (`a` a cat, `b` a person) in `val`.
fn voc_tree(root: &Path) {
    for d in ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("ImageSets/Segmentation/val.txt"), "a\nb\n").unwrap();
    for (id, class) in [("a", 8u8), ("b", 15u8)] {
        image::RgbImage::new(12, 10).save(root.join(format!("JPEGImages/{id}.jpg"))).unwrap();
        write_label_png(&root.join(format!("SegmentationClass/{id}.png")), &scene(12, 10, class)).unwrap();
    }
}

#[test]
fn label_pngs_are_real_palette_pngs_with_the_voc_colours() {
    let p = palette();
    assert_eq!(p[1], [128, 0, 0]);
    assert_eq!(p[8], [64, 0, 0]);
    assert_eq!(p[15], [192, 128, 128]);
    assert_eq!(p[255], [224, 224, 192]);
    let dir = tmp("png");
    let map = scene(12, 10, 15);
    write_label_png(&dir.join("l.png"), &map).unwrap();
    assert_eq!(read_label_png(&dir.join("l.png")).unwrap(), map, "indices survive the round trip");
    // Any PNG reader sees the VOC colours.
    let rgb = image::open(dir.join("l.png")).unwrap().to_rgb8();
    assert_eq!(rgb.get_pixel(5, 5).0, [192, 128, 128]);
    assert_eq!(rgb.get_pixel(2, 2).0, [224, 224, 192]);
    assert_eq!(rgb.get_pixel(0, 0).0, [0, 0, 0]);
    // Grey labels (SegmentationClassAug) read as their values; 16-bit ones are refused by name.
    image::GrayImage::from_pixel(3, 2, image::Luma([7])).save(dir.join("g.png")).unwrap();
    assert_eq!(read_label_png(&dir.join("g.png")).unwrap().labels, [7; 6]);
    image::ImageBuffer::<image::Luma<u16>, _>::new(3, 2).save(dir.join("g16.png")).unwrap();
    let err = read_label_png(&dir.join("g16.png")).unwrap_err().to_string();
    assert!(err.contains("g16.png") && err.contains("8-bit"), "{err}");
    std::fs::write(dir.join("text.png"), "not a png").unwrap();
    assert!(read_label_png(&dir.join("text.png")).unwrap_err().to_string().contains("text.png"));
    // Nearest-neighbour resizing never invents labels.
    let small = map.resize_nearest(6, 5);
    assert!(small.labels.iter().all(|l| [0, 15, 255].contains(l)));
    assert_eq!((small.width, small.height), (6, 5));
}

#[test]
fn the_split_reader_finds_images_and_labels_and_names_bad_ones() {
    let root = tmp("tree");
    voc_tree(&root);
    let split = VocSplit::open(&root, "val").unwrap();
    assert_eq!(split.ids, ["a", "b"]);
    assert!(split.image_path("a").exists());
    assert_eq!(split.label("b", Some((12, 10))).unwrap().labels[5 * 12 + 5], 15);
    let err = split.label("b", Some((10, 10))).unwrap_err().to_string();
    assert!(err.contains("b.png") && err.contains("12x10"), "{err}");
    std::fs::remove_file(root.join("SegmentationClass/a.png")).unwrap();
    let err = split.label("a", None).unwrap_err().to_string();
    assert!(err.contains("SegmentationClass/a.png"), "{err}");
    let err = VocSplit::open(&root, "train").unwrap_err().to_string();
    assert!(err.contains("train.txt"), "{err}");
    // A label that is neither a VOC class nor 255 is refused with where it is (as train-seg
    // refuses it), not silently ignored by score, eval or dataset.
    let mut m = split.label("b", None).unwrap();
    m.labels[3] = 37;
    write_label_png(&root.join("SegmentationClass/b.png"), &m).unwrap();
    let err = split.label("b", None).unwrap_err().to_string();
    assert!(err.contains("b.png") && err.contains("label 37 at row 0, column 3"), "{err}");
    // The augmented labels are preferred when present.
    std::fs::create_dir_all(root.join("SegmentationClassAug")).unwrap();
    assert!(VocSplit::open(&root, "val").unwrap().labels.ends_with("SegmentationClassAug"));
}

#[test]
fn scores_match_hand_computed_values() {
    let mut c = Confusion::new(3);
    c.add(&[0, 1, 1, 1, 0, 255], &[0, 0, 1, 1, 255, 2]);
    // Counted: (t0,p0) (t0,p1) (t1,p1) (t1,p1), and truth 2 predicted as nothing; the 255 truth
    // is ignored.
    assert_eq!(c.pixel_accuracy(), Some(3.0 / 5.0));
    let iou = c.iou();
    assert_eq!(iou[0], Some(0.5)); // TP 1, FN 1
    assert_eq!(iou[1], Some(2.0 / 3.0)); // TP 2, FP 1
    assert_eq!(iou[2], Some(0.0)); // TP 0, FN 1
    assert!((c.mean_iou().unwrap() - (0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
    assert_eq!(Confusion::new(21).mean_iou(), None);
    // A truth of a class the model does not have (VOC's person, 15, against a 3-class model):
    // wrong, a false positive of the class predicted, and named; never silently ignored.
    let mut c = Confusion::new(3);
    c.add(&[0, 0, 1, 2], &[0, 15, 15, 255]);
    assert_eq!(c.pixel_accuracy(), Some(1.0 / 3.0));
    assert_eq!(c.iou()[0], Some(0.5)); // TP 1, FP 1 (the person predicted as 0)
    assert_eq!(c.iou()[1], Some(0.0)); // FP 1
    assert_eq!(c.foreign_labels(), (vec![15], 2));
    let mut total = Confusion::new(3);
    total.merge(&c);
    assert_eq!(total.foreign_labels(), (vec![15], 2));
}

#[test]
fn lrnn_score_prints_accuracy_mean_iou_and_every_class() {
    let root = tmp("score-tree");
    voc_tree(&root);
    let pred = tmp("score-pred");
    // `a` perfect; `b` all background.
    write_label_png(&pred.join("a.png"), &scene(12, 10, 8)).unwrap();
    write_label_png(&pred.join("b.png"), &LabelMap { width: 12, height: 10, labels: vec![0; 120] }).unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_lrnn"))
            .args([
                "score",
                "--pred",
                pred.to_str().unwrap(),
                "--voc",
                root.to_str().unwrap(),
                "--split",
                "val",
            ])
            .output()
            .unwrap()
    };
    let o = run();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    // Per image 120 pixels: the 8x6 square's 24 border pixels are 255, 24 inside, 72 background.
    // Background: TP 72 + 72, FP 24 (b's person) -> 144/168. Cat: 24/24. Person: 0/24.
    // Pixel accuracy (144 + 24) / 192.
    assert!(out.contains("images: 2"), "{out}");
    assert!(out.contains(&format!("pixel accuracy: {:.2}%", 100.0 * 168.0 / 192.0)), "{out}");
    let miou = (144.0 / 168.0 + 1.0 + 0.0) / 3.0 * 100.0;
    assert!(out.contains(&format!("mean IoU: {miou:.2}%")), "{out}");
    assert!(out.contains("class cat: IoU 100.00%") && out.contains("class person: IoU 0.00%"), "{out}");
    assert!(out.contains("class dog: IoU -"), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("class ")).count(), 21);
    std::fs::remove_file(pred.join("b.png")).unwrap();
    let o = run();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("b.png"));
}

#[test]
fn lrnn_predict_writes_palette_pngs_that_lrnn_score_reads() {
    let root = tmp("predict-tree");
    voc_tree(&root);
    let dir = tmp("predict-model");
    std::fs::write(dir.join("fcn.json"), r#"{"kind": "fcn", "variant": "8s", "heads": 8, "lrnn": true}"#)
        .unwrap();
    let lrnn = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_lrnn")).args(args).output().unwrap();
    let (model, weights) = (dir.join("fcn.json"), dir.join("w.safetensors"));
    let o = lrnn(&["init", "--model", model.to_str().unwrap(), "--output", weights.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pred = dir.join("pred");
    let args = ["predict", "--model", model.to_str().unwrap(), "--weights", weights.to_str().unwrap()];
    let o = lrnn(
        &[&args[..], &["--voc", root.to_str().unwrap(), "--size", "64", "--out", pred.to_str().unwrap()]]
            .concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = read_label_png(&pred.join("a.png")).unwrap();
    assert_eq!((a.width, a.height), (12, 10), "at the photo's own size");
    assert!(a.labels.iter().all(|&l| l < 21));
    let o = lrnn(&["score", "--pred", pred.to_str().unwrap(), "--voc", root.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("mean IoU: "));
    let o = lrnn(
        &[&args[..], &["--image", "/no/photo.jpg", "--size", "64", "--out", pred.to_str().unwrap()]].concat(),
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("/no/photo.jpg"));
    let o = lrnn(
        &[&args[..], &["--voc", root.to_str().unwrap(), "--size", "50", "--out", pred.to_str().unwrap()]]
            .concat(),
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("multiple of 32"));
    // A label map never replaces a photo, and two photos of one name are refused, not merged.
    let photos = root.join("JPEGImages");
    let photo = std::fs::read_dir(&photos).unwrap().flatten().next().unwrap().path();
    let png = photo.with_extension("png");
    std::fs::copy(&photo, &png).unwrap();
    let before = std::fs::read(&png).unwrap();
    let o = lrnn(
        &[&args[..], &["--image", png.to_str().unwrap(), "--size", "64", "--out", photos.to_str().unwrap()]]
            .concat(),
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("refusing to overwrite"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read(&png).unwrap(), before, "the photo was changed");
    let o = lrnn(
        &[
            &args[..],
            &[
                "--image",
                photo.to_str().unwrap(),
                "--image",
                png.to_str().unwrap(),
                "--size",
                "64",
                "--out",
                pred.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("the same name"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn lrnn_predict_on_the_gpu_writes_the_cpus_labels() {
    // The bundled scenes segmenter on two bundled scenes.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let model = root.join("assets/models/scenes-fcn8s-lrnn");
    let scenes = root.join("assets/scenes");
    let predict = |device: &str, out: &Path| {
        let o = Command::new(env!("CARGO_BIN_EXE_lrnn"))
            .args(["predict", "--model", model.join("model.json").to_str().unwrap()])
            .args(["--weights", model.join("weights.safetensors").to_str().unwrap()])
            .args(["--out", out.to_str().unwrap(), "--device", device])
            .args(
                ["0", "1"]
                    .map(|i| scenes.join(format!("JPEGImages/scene-0000{i}.jpg")))
                    .iter()
                    .flat_map(|p| ["--image".as_ref(), p.as_os_str()]),
            )
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let (cpu, gpu) = (tmp("predict-cpu"), tmp("predict-gpu"));
    assert!(predict("cpu", &cpu).contains("device: CPU\n"));
    let said = predict("wgpu", &gpu);
    let require = std::env::var("LRNN_REQUIRE_GPU").is_ok_and(|v| v == "1");
    if said.contains("device: CPU (") {
        assert!(!require, "{said}");
        return;
    }
    assert!(said.contains("through wgpu"), "{said}");
    for id in ["scene-00000", "scene-00001"] {
        let (a, b) = (
            read_label_png(&cpu.join(format!("{id}.png"))).unwrap(),
            read_label_png(&gpu.join(format!("{id}.png"))).unwrap(),
        );
        assert_eq!((a.width, a.height), (b.width, b.height));
        let differ = a.labels.iter().zip(&b.labels).filter(|(x, y)| x != y).count();
        assert!(differ <= 10, "{id}: {differ} labels differ");
        assert!(a.labels.iter().any(|&l| l != 0), "{id}: an object is found");
    }
}

#[test]
fn lrnn_dataset_describes_a_voc_tree() {
    let root = tmp("describe-tree");
    voc_tree(&root);
    let sheet = root.join("sheet.png");
    let o = Command::new(env!("CARGO_BIN_EXE_lrnn"))
        .args([
            "dataset",
            "--format",
            "voc",
            "--path",
            root.to_str().unwrap(),
            "--sheet",
            sheet.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    for line in [
        "split val: 2 images",
        "images: 2",
        "shape: 3x10x12",
        "label background: 2",
        "label cat: 1",
        "label person: 1",
        "label dog: 0",
    ] {
        assert!(out.lines().any(|l| l == line), "no line `{line}` in:\n{out}");
    }
    assert_eq!(image::open(&sheet).unwrap().width(), 324);
    // Without its label folder the tree is refused (naming the folder), not described as empty.
    std::fs::remove_dir_all(root.join("SegmentationClass")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_lrnn"))
        .args(["dataset", "--format", "voc", "--path", root.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("SegmentationClass") && err.contains("missing"), "{err}");
}

#[test]
fn training_loads_a_split_resized_and_centre_cropped_and_names_bad_files() {
    let root = tmp("train-tree");
    voc_tree(&root);
    std::fs::write(root.join("ImageSets/Segmentation/train.txt"), "a\nb\n").unwrap();
    // A 20x10 photo (a PNG named .jpg: read by content): shorter side to 8 gives 16x8, and the
    // centre 8x8 is kept.
    let photo = image::RgbImage::from_fn(20, 10, |x, _| image::Rgb([if x < 10 { 200 } else { 10 }, 0, 0]));
    photo.save(root.join("JPEGImages/a.png")).unwrap();
    std::fs::rename(root.join("JPEGImages/a.png"), root.join("JPEGImages/a.jpg")).unwrap();
    let mut labels = vec![0u8; 200];
    for y in 0..10 {
        for x in 10..20 {
            labels[y * 20 + x] = if x == 10 { 255 } else { 3 };
        }
    }
    write_label_png(&root.join("SegmentationClass/a.png"), &LabelMap { width: 20, height: 10, labels })
        .unwrap();
    write_label_png(&root.join("SegmentationClass/b.png"), &scene(20, 10, 15)).unwrap();
    let split = VocSplit::open(&root, "train").unwrap();
    let set = split.load_resized(8, Some(1)).unwrap();
    assert_eq!((set.len(), set.size, set.classes.len()), (1, (8, 8), 21));
    let l = set.label(0);
    // The crop spans source columns 5..15: left half class 0, the 255 border, then class 3.
    assert_eq!(l.labels[..8], [0, 0, 0, 0, 255, 3, 3, 3], "nearest neighbour keeps labels and 255");
    assert!(set.image(0)[..4].iter().all(|&r| r > 150) && set.image(0)[6..8].iter().all(|&r| r < 60));
    // For training, stored 1.25x larger (10x10) and cut 8x8 at random places per batch; the
    // centre cut is the validation view.
    let t = split.load_for_training(8, Some(1)).unwrap();
    assert_eq!((t.size, t.crop, t.batch_size()), ((10, 10), Some(8), (8, 8)));
    assert_eq!(t.centred().label(0).labels.len(), 64);
    // b's label is 20x10, its photo 12x10: named.
    let err = split.load_resized(8, None).unwrap_err().to_string();
    assert!(err.contains("b.png") && err.contains("20x10"), "{err}");
    std::fs::remove_file(root.join("SegmentationClass/b.png")).unwrap();
    let err = split.load_resized(8, None).unwrap_err().to_string();
    assert!(err.contains("b.png"), "a missing label is named: {err}");
}

#[test]
fn a_scenes_tree_killed_while_written_leaves_nothing_and_the_next_run_cleans_up() {
    let parent = tmp("killed");
    let out = parent.join("scenes");
    let partial = || {
        std::fs::read_dir(&parent)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".scenes.partial-"))
            .count()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_lrnn"))
        .args(["dataset", "--format", "scenes", "--count", "5000", "--size", "96", "--voc-out"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // SIGKILL once it is writing (its temporary folder exists).
    let start = std::time::Instant::now();
    while partial() == 0 && start.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.exists(), "a killed run left a partial tree at the output");
    assert_eq!(partial(), 1, "the temporary folder of the killed run");
    // The next run writes the whole tree and removes the leftover.
    let o = Command::new(env!("CARGO_BIN_EXE_lrnn"))
        .args(["dataset", "--format", "scenes", "--count", "3", "--size", "32", "--voc-out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(out.join("ImageSets/Segmentation/val.txt")).unwrap().lines().count(),
        3
    );
    assert_eq!(partial(), 0);
    // A second run into the finished tree is refused and keeps it.
    let o = Command::new(env!("CARGO_BIN_EXE_lrnn"))
        .args(["dataset", "--format", "scenes", "--count", "2", "--size", "32", "--voc-out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not empty"));
    assert_eq!(
        std::fs::read_to_string(out.join("ImageSets/Segmentation/val.txt")).unwrap().lines().count(),
        3
    );
}

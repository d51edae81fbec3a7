//! `lrnn score`: segmentation scores of a folder of predicted label PNGs against a VOC split.

use std::path::Path;

use lrnn_core::data::voc::{read_label_png, VocSplit, VOC_CLASSES};
use lrnn_core::train::confusion::Confusion;

/// Runs `lrnn score`.
pub fn score(pred: &Path, voc: &Path, split: &str) -> anyhow::Result<()> {
    let split_list = VocSplit::open(voc, split)?;
    let mut confusion = Confusion::new(VOC_CLASSES.len());
    for id in &split_list.ids {
        let truth = split_list.label(id, None)?;
        let path = pred.join(format!("{id}.png"));
        let p = read_label_png(&path)?;
        if (p.width, p.height) != (truth.width, truth.height) {
            anyhow::bail!(
                "{}: the prediction is {}x{}, the ground truth ({}) is {}x{}",
                path.display(),
                p.width,
                p.height,
                split_list.label_path(id).display(),
                truth.width,
                truth.height
            );
        }
        confusion.add(&p.labels, &truth.labels);
    }
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}%", 100.0 * v));
    println!("images: {}", split_list.ids.len());
    println!("pixel accuracy: {}", pct(confusion.pixel_accuracy()));
    println!("mean IoU: {}", pct(confusion.mean_iou()));
    for (name, iou) in VOC_CLASSES.iter().zip(confusion.iou()) {
        println!("class {name}: IoU {}", pct(iou));
    }
    Ok(())
}

/// Runs `lrnn predict`: a palette PNG `<id>.png` per image, at the image's own size.
pub fn predict(
    model: &lrnn_core::models::Model,
    images: &[(String, std::path::PathBuf)],
    size: usize,
    out: &Path,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use lrnn_core::data::voc::{write_label_png, LabelMap};
    use lrnn_core::io::vgg16::caffe_input;
    use lrnn_core::nn::Forward;
    if !matches!(model.desc(), lrnn_core::io::ModelDesc::Fcn(_)) {
        anyhow::bail!("{} is not a segmentation network (FCN-32s, FCN-8s, …)", model.desc().display_name());
    }
    if size % 32 != 0 {
        anyhow::bail!("--size {size}: an FCN needs a multiple of 32");
    }
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let bar = indicatif::ProgressBar::new(images.len() as u64);
    for (id, path) in images {
        let photo = image::open(path).with_context(|| format!("{}: not a readable image", path.display()))?;
        let x = caffe_input(&photo, size)?;
        let scores = model.forward(&x, &mut Forward::eval())?;
        let labels: Vec<u8> =
            scores.argmax(1)?.flatten_all()?.to_vec1::<u32>()?.into_iter().map(|l| l as u8).collect();
        let map = LabelMap { width: size, height: size, labels }
            .resize_nearest(photo.width() as usize, photo.height() as usize);
        write_label_png(&out.join(format!("{id}.png")), &map)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("wrote {} label PNGs to {}", images.len(), out.display());
    Ok(())
}

/// `lrnn dataset --format voc`: images per split, images holding each class (train and val
/// together), and optionally a sheet of the first labelled images beside their label maps.
pub fn describe_voc(root: &Path, sheet: Option<&Path>) -> anyhow::Result<()> {
    use lrnn_core::data::voc::palette;
    let mut per_class = [0usize; 21];
    let mut total = 0;
    let mut sizes = std::collections::BTreeSet::new();
    let mut shown: Vec<image::RgbImage> = Vec::new();
    for split in ["train", "val"] {
        let Ok(s) = VocSplit::open(root, split) else {
            println!("split {split}: none (no ImageSets/Segmentation/{split}.txt)");
            continue;
        };
        println!("split {split}: {} images", s.ids.len());
        for id in &s.ids {
            let label = s.label(id, None)?;
            total += 1;
            sizes.insert((label.width, label.height));
            let mut present = [false; 21];
            for &l in &label.labels {
                if let Some(p) = present.get_mut(usize::from(l)) {
                    *p = true;
                }
            }
            for (count, seen) in per_class.iter_mut().zip(present) {
                *count += usize::from(seen);
            }
            if sheet.is_some() && shown.len() < 8 {
                let colours = palette();
                let img = image::RgbImage::from_fn(label.width as u32, label.height as u32, |x, y| {
                    image::Rgb(colours[usize::from(label.labels[y as usize * label.width + x as usize])])
                });
                let photo = image::open(s.image_path(id))
                    .map_err(|e| anyhow::anyhow!("{}: {e}", s.image_path(id).display()))?
                    .to_rgb8();
                let thumb = |i: &image::RgbImage| {
                    image::imageops::resize(i, 160, 120, image::imageops::FilterType::Nearest)
                };
                shown.push(thumb(&photo));
                shown.push(thumb(&img));
            }
        }
    }
    println!("images: {total}");
    let shape = match (sizes.len(), sizes.iter().next()) {
        (1, Some((w, h))) => format!("3x{h}x{w}"),
        _ => format!("3xHxW, {} different sizes", sizes.len()),
    };
    println!("shape: {shape}");
    for (name, count) in VOC_CLASSES.iter().zip(per_class) {
        println!("label {name}: {count}");
    }
    if let Some(p) = sheet {
        let rows: Vec<image::RgbImage> =
            shown.chunks(2).map(|pair| lrnn_core::probe::render::side_by_side(pair, 4)).collect();
        let mut out =
            image::RgbImage::from_pixel(324, (124 * rows.len()).max(1) as u32, image::Rgb([255, 255, 255]));
        for (i, r) in rows.iter().enumerate() {
            image::imageops::replace(&mut out, r, 0, (i * 124) as i64);
        }
        crate::save_png(&out, p)?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

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

//! The Segmentation view: an FCN's prediction in the VOC palette over the photo (with an opacity
//! slider), the ground truth beside it when the photo sits in a VOC tree, the same network with
//! every `V` at zero (the CNN its L-RNNs were inserted into) and where the two differ, and, with
//! the dense CRF switched on, the labels it refines and where it changes them; per-image and
//! running per-class IoU for each.

use std::collections::BTreeMap;
use std::path::PathBuf;

use eframe::egui::{self, Color32};
use image::RgbImage;
use lrnn_core::probe::render::{label_image, label_overlay, side_by_side};
use lrnn_core::train::confusion::Confusion;

use super::{color_image, export_button, Export, Panel, View};
use crate::shared::Shared;
use crate::view_model::{Analysis, Segmentation};

/// The longest side the view draws a picture at.
const SHOWN: u32 = 420;

/// The view's own state: the overlay's opacity, the CRF switch, the running scores and the
/// numbers on show.
pub struct SegView {
    /// Opacity of the class colours over the photo.
    pub opacity: f32,
    /// Whether the dense CRF refines the labels (the worker computes it with every analysis).
    pub crf: bool,
    tally: Tally,
    shown: Shown,
}

impl Default for SegView {
    fn default() -> Self {
        Self { opacity: 0.6, crf: false, tally: Tally::default(), shown: Shown::default() }
    }
}

/// One photo's confusion matrices: the model's, its CNN's and the model's after the CRF.
#[derive(Clone)]
struct PhotoScores {
    model: Confusion,
    cnn: Option<Confusion>,
    crf: Option<Confusion>,
}

/// The numbers the view shows for the current analysis, computed once when it arrives (not every
/// frame: each is a pass over every pixel of the photo).
#[derive(Default)]
struct Shown {
    /// The photo's matrices, when it has a ground truth.
    photo: Option<PhotoScores>,
    /// The running totals (the model's, its CNN's, after the CRF: over the photos it refined).
    total: Option<Confusion>,
    total_cnn: Option<Confusion>,
    total_crf: Option<Confusion>,
    /// The fraction of pixels whose label the L-RNN changes from its CNN's.
    changed: Option<f64>,
    /// The fraction of pixels whose label the CRF changes.
    crf_changed: Option<f64>,
    /// Which labels (0..=255) appear in the prediction or the truth, for the legend.
    present: Vec<bool>,
}

/// Per-photo confusion matrices (the model's and its CNN's) of one model at one `V` scale; a
/// photo seen again replaces its own entry, so browsing back and forth counts each photo once.
#[derive(Default)]
struct Tally {
    model: PathBuf,
    scale: f64,
    photos: BTreeMap<PathBuf, PhotoScores>,
}

/// The scores of one prediction against the truth.
fn confusion(classes: usize, prediction: &[u8], truth: &[u8]) -> Confusion {
    let mut c = Confusion::new(classes);
    c.add(prediction, truth);
    c
}

impl SegView {
    /// Adds the photo of a new analysis to the running scores (starting afresh when the model or
    /// the `V` scale changed).
    pub fn record(&mut self, a: &Analysis) {
        let Some(s) = &a.segmentation else { return };
        if self.tally.model != a.model_dir || self.tally.scale != a.scale {
            self.tally = Tally { model: a.model_dir.clone(), scale: a.scale, photos: BTreeMap::new() };
        }
        let k = s.classes.len();
        let photo = s.truth.as_ref().map(|t| PhotoScores {
            model: confusion(k, &s.prediction, t),
            cnn: s.cnn.as_ref().map(|c| confusion(k, c, t)),
            crf: s.crf.as_ref().map(|c| confusion(k, c, t)),
        });
        if let Some(p) = &photo {
            self.tally.photos.insert(a.photo.clone(), p.clone());
        }
        let mut present = vec![false; 256];
        for &l in s.prediction.iter().chain(s.truth.iter().flatten()).chain(s.crf.iter().flatten()) {
            present[usize::from(l)] = true;
        }
        let differ = |other: &Vec<u8>| {
            s.prediction.iter().zip(other).filter(|(a, b)| a != b).count() as f64
                / s.prediction.len().max(1) as f64
        };
        let (changed, crf_changed) = (s.cnn.as_ref().map(differ), s.crf.as_ref().map(differ));
        self.shown =
            Shown { photo, total: None, total_cnn: None, total_crf: None, changed, crf_changed, present };
        self.sum_up(k);
    }

    /// Recomputes the running totals of the photos in the tally.
    fn sum_up(&mut self, classes: usize) {
        let mut model = Confusion::new(classes);
        let (mut cnn, mut crf): (Option<Confusion>, Option<Confusion>) = (None, None);
        for p in self.tally.photos.values().filter(|p| p.model.classes() == classes) {
            model.merge(&p.model);
            if let Some(c) = &p.cnn {
                cnn.get_or_insert_with(|| Confusion::new(classes)).merge(c);
            }
            if let Some(c) = &p.crf {
                crf.get_or_insert_with(|| Confusion::new(classes)).merge(c);
            }
        }
        (self.shown.total, self.shown.total_cnn, self.shown.total_crf) = (Some(model), cnn, crf);
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{:.1}%", 100.0 * v))
}

/// The display size of a `w x h` photo: its longer side at most [`SHOWN`].
fn shown_size((w, h): (usize, usize)) -> (usize, usize) {
    let k = (SHOWN as f32 / w.max(h) as f32).min(1.0);
    (((w as f32 * k).round() as usize).max(1), ((h as f32 * k).round() as usize).max(1))
}

/// A label map of the photo's size at display size `(sw, sh)` (nearest neighbour).
fn shrink(labels: &[u8], (w, h): (usize, usize), (sw, sh): (usize, usize)) -> Vec<u8> {
    lrnn_core::data::voc::LabelMap { width: w, height: h, labels: labels.to_vec() }
        .resize_nearest(sw, sh)
        .labels
}

/// The titles of the view's pictures, in order.
fn titles(a: &Analysis, s: &Segmentation) -> Vec<String> {
    let mut out = vec![format!("prediction (V × {:.2}) over the photo", a.scale)];
    if s.truth.is_some() {
        out.push("ground truth".to_string());
    }
    if s.cnn.is_some() {
        out.push("its CNN (every V = 0)".to_string());
        out.push("where the L-RNN changes the CNN's labels".to_string());
    }
    if s.crf.is_some() {
        out.push("after the dense CRF".to_string());
        out.push("where the CRF changes the labels".to_string());
    }
    out
}

/// Where `other` differs from `pred`: `other`'s class colour there, the photo dimmed elsewhere.
fn difference(photo: &RgbImage, pred: &[u8], other: &[u8], (w, h): (usize, usize)) -> RgbImage {
    let palette = lrnn_core::colour::palette();
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        if pred[i] == other[i] {
            let p = photo.get_pixel(x, y).0;
            let g = ((u16::from(p[0]) + u16::from(p[1]) + u16::from(p[2])) / 9) as u8;
            image::Rgb([g, g, g])
        } else {
            image::Rgb(palette[usize::from(other[i])])
        }
    })
}

/// The pictures of the view (see [`titles`]): prediction over the photo, ground truth, the CNN's
/// prediction over the photo, and where the two differ (the model's class colour there, the
/// photo dimmed elsewhere).
fn pictures(a: &Analysis, s: &Segmentation, opacity: f32) -> Vec<RgbImage> {
    let (w, h) = shown_size(s.size);
    let photo =
        image::imageops::resize(&a.original, w as u32, h as u32, image::imageops::FilterType::Triangle);
    let pred = shrink(&s.prediction, s.size, (w, h));
    let mut out = vec![label_overlay(photo.as_raw(), &pred, w, h, opacity)];
    if let Some(t) = &s.truth {
        out.push(label_image(&shrink(t, s.size, (w, h)), w, h));
    }
    if let Some(c) = &s.cnn {
        let cnn = shrink(c, s.size, (w, h));
        out.push(label_overlay(photo.as_raw(), &cnn, w, h, opacity));
        // (the model's colour where the L-RNN changed its CNN's label)
        out.push(difference(&photo, &cnn, &pred, (w, h)));
    }
    if let Some(c) = &s.crf {
        let crf = shrink(c, s.size, (w, h));
        out.push(label_overlay(photo.as_raw(), &crf, w, h, opacity));
        out.push(difference(&photo, &pred, &crf, (w, h)));
    }
    out
}

impl SegView {
    /// The photos in the running scores.
    pub fn running_photos(&self) -> usize {
        self.tally.photos.len()
    }

    /// Switches the dense CRF on or off (the worker recomputes the segmentation).
    pub fn set_crf(&mut self, shared: &mut Shared, on: bool) {
        self.crf = on;
        let params = on.then(lrnn_core::crf::CrfParams::default);
        let what =
            if on { "refining the labels with the dense CRF" } else { "recomputing without the dense CRF" };
        shared.send(crate::protocol::Job::Crf(params), what);
    }

    /// Sets the overlay's opacity.
    pub fn set_opacity(&mut self, opacity: f32) {
        self.opacity = opacity.clamp(0.0, 1.0);
    }
}

impl Panel for SegView {
    fn loaded(&mut self, shared: &Shared, _model_changed: bool) {
        if let Some(a) = shared.analysis.as_deref() {
            self.record(a);
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.heading("Segmentation checks");
        let Some(a) = shared.analysis.as_deref() else {
            ui.label("Loading…");
            return;
        };
        let Some(s) = &a.segmentation else {
            ui.label(format!(
                "{} is not a segmentation network. Open one from the Model menu: the bundled \
                 FCN-8s-LRNN for the generated scenes (with its scenes under Photo), a checkpoint \
                 of `lrnn train-seg`, or an FCN made with `lrnn init`.",
                a.model
            ));
            return;
        };
        let mut crf = self.crf;
        ui.horizontal(|ui| {
            ui.add(egui::Slider::new(&mut self.opacity, 0.0..=1.0).text("opacity of the class colours"));
            if ui.button("Reset the running scores").clicked() {
                self.tally.photos.clear();
                self.sum_up(s.classes.len());
            }
            ui.checkbox(&mut crf, "dense CRF").on_hover_text(
                "Refine the labels with a fully connected CRF over the photo (Krähenbühl & Koltun; \
                 5 mean-field updates, smoothness σ 3 px weight 3, appearance σ 80 px and 13 \
                 colour levels weight 10), as the paper does after FCN-8s-LRNN",
            );
        });
        ui.label(&s.truth_note);
        let opacity = self.opacity;
        let key = format!("seg/{}/{opacity:.2}", a.scale);
        // The pictures are made once per analysis and opacity (the cache is cleared with the
        // analysis), not every frame.
        let titles = titles(a, s);
        let textures: Vec<_> = if shared.textures.contains(&format!("{key}/0")) {
            (0..titles.len())
                .map(|i| shared.textures.get(ui.ctx(), &format!("{key}/{i}"), egui::ColorImage::default))
                .collect()
        } else {
            pictures(a, s, opacity)
                .iter()
                .enumerate()
                .map(|(i, img)| shared.textures.get(ui.ctx(), &format!("{key}/{i}"), || color_image(img)))
                .collect()
        };
        // One row when the pictures fit at 200 points or more (up to 280), else rows of as many
        // as fit. Small photos (the 96 px scenes) are enlarged, large ones shrunk.
        let gap = ui.spacing().item_spacing.x;
        let count = textures.len().max(1) as f32;
        let width = ui.available_width();
        let side = ((width - gap * (count - 1.0)) / count).clamp(200.0, 280.0);
        let columns = (((width + gap) / (side + gap)).floor() as usize).max(1);
        egui::Grid::new("seg-pictures").num_columns(columns).spacing([gap, 8.0]).show(ui, |ui| {
            for (i, (title, tex)) in titles.iter().zip(&textures).enumerate() {
                ui.vertical(|ui| {
                    ui.set_width(side);
                    ui.add(egui::Label::new(title.as_str()).truncate());
                    let size = tex.size_vec2();
                    let k = side / size.x.max(size.y).max(1.0);
                    ui.add(egui::Image::new(tex).fit_to_exact_size(size * k));
                });
                if (i + 1) % columns == 0 {
                    ui.end_row();
                }
            }
        });
        let shown = &self.shown;
        legend(ui, &s.classes, &shown.present);
        let (photo, total, total_cnn, total_crf) =
            (&shown.photo, &shown.total, &shown.total_cnn, &shown.total_crf);
        let n = self.tally.photos.len();
        if let Some(changed) = shown.changed {
            ui.label(format!(
                "the L-RNN changes {:.1}% of the pixels' labels from its CNN's",
                100.0 * changed
            ));
        }
        if let Some(changed) = shown.crf_changed {
            ui.label(format!("the dense CRF changes {:.1}% of the pixels' labels", 100.0 * changed));
        } else if self.crf {
            ui.label("the dense CRF is on: it refines the next segmentation");
        }
        let (with_cnn, with_crf) = (s.cnn.is_some(), s.crf.is_some());
        egui::Grid::new("seg-scores").striped(true).show(ui, |ui| {
            ui.strong("");
            ui.strong("this photo");
            if with_cnn {
                ui.strong("its CNN");
            }
            if with_crf {
                ui.strong("with the CRF");
            }
            ui.strong(format!("running, {n} photo{}", if n == 1 { "" } else { "s" }));
            if with_cnn {
                ui.strong("its CNN");
            }
            if with_crf {
                ui.strong("with the CRF");
            }
            ui.end_row();
            let row = |ui: &mut egui::Ui, name: &str, f: &dyn Fn(&Confusion) -> Option<f64>| {
                ui.label(name);
                ui.label(pct(photo.as_ref().and_then(|p| f(&p.model))));
                if with_cnn {
                    ui.label(pct(photo.as_ref().and_then(|p| p.cnn.as_ref().and_then(f))));
                }
                if with_crf {
                    ui.label(pct(photo.as_ref().and_then(|p| p.crf.as_ref().and_then(f))));
                }
                ui.label(pct(total.as_ref().and_then(f)));
                if with_cnn {
                    ui.label(pct(total_cnn.as_ref().and_then(f)));
                }
                if with_crf {
                    ui.label(pct(total_crf.as_ref().and_then(f)));
                }
                ui.end_row();
            };
            row(ui, "pixel accuracy", &|c: &Confusion| c.pixel_accuracy());
            row(ui, "mean IoU", &|c: &Confusion| c.mean_iou());
            for (i, name) in s.classes.iter().enumerate() {
                row(ui, &format!("IoU {name}"), &|c: &Confusion| c.iou().get(i).copied().flatten());
            }
        });
        if let Some(warning) = total.as_ref().and_then(|t| foreign_warning(t, &s.classes)) {
            ui.colored_label(Color32::from_rgb(230, 140, 30), warning);
        }
        if s.truth.is_none() {
            ui.label("Scores need a ground truth: open a VOC tree (Photo menu) or the bundled scenes.");
        }
        export_button(ui, shared, View::Segmentation, |s| self.export(s));
        if crf != self.crf {
            self.set_crf(shared, crf);
        }
    }

    fn export(&self, shared: &Shared) -> Option<Export> {
        let a = shared.analysis.as_deref()?;
        let s = a.segmentation.as_ref()?;
        let pics = pictures(a, s, self.opacity);
        let shown = &self.shown;
        let (photo, total, total_cnn, total_crf) =
            (&shown.photo, &shown.total, &shown.total_cnn, &shown.total_crf);
        let n = self.tally.photos.len();
        let mut csv = String::from(
            "class,photo_iou,photo_iou_cnn,photo_iou_crf,running_iou,running_iou_cnn,running_iou_crf,running_photos\n",
        );
        let num = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
        let iou = |c: Option<&Confusion>, i: usize| c.and_then(|c| c.iou().get(i).copied().flatten());
        for (i, name) in s.classes.iter().enumerate() {
            let p = photo.as_ref();
            csv.push_str(&format!(
                "{name},{},{},{},{},{},{},{n}\n",
                num(iou(p.map(|p| &p.model), i)),
                num(iou(p.and_then(|p| p.cnn.as_ref()), i)),
                num(iou(p.and_then(|p| p.crf.as_ref()), i)),
                num(iou(total.as_ref(), i)),
                num(iou(total_cnn.as_ref(), i)),
                num(iou(total_crf.as_ref(), i))
            ));
        }
        Some(Export { picture: side_by_side(&pics, 8), csv })
    }
}

/// In words, the true labels the model has no class for (a VOC photo against a model of other
/// classes), which count as wrong; `None` when there are none.
fn foreign_warning(c: &Confusion, classes: &[String]) -> Option<String> {
    let (labels, pixels) = c.foreign_labels();
    if labels.is_empty() {
        return None;
    }
    let names: Vec<String> = labels
        .iter()
        .map(|&l| match lrnn_core::data::voc::VOC_CLASSES.get(usize::from(l)) {
            Some(name) => format!("{l} ({name})"),
            None => l.to_string(),
        })
        .collect();
    Some(format!(
        "The ground truth holds labels this {}-class model has no class for: {}. Their {pixels} pixels count as wrong.",
        classes.len(),
        names.join(", ")
    ))
}

/// The classes present in the prediction or the truth (`present`, by label), as colour swatches.
fn legend(ui: &mut egui::Ui, classes: &[String], present: &[bool]) {
    let palette = lrnn_core::colour::palette();
    let present = |l: usize| present.get(l).copied().unwrap_or(false);
    let swatch = |ui: &mut egui::Ui, [r, g, b]: [u8; 3], name: &str| {
        let (rect, _) = ui.allocate_exact_size(egui::vec2(14.0, 14.0), egui::Sense::hover());
        ui.painter().rect_filled(rect, 2.0, Color32::from_rgb(r, g, b));
        ui.painter().rect_stroke(rect, 2.0, egui::Stroke::new(1.0, Color32::GRAY), egui::StrokeKind::Inside);
        ui.label(name);
    };
    ui.horizontal_wrapped(|ui| {
        for (i, name) in classes.iter().enumerate().filter(|(i, _)| present(*i)) {
            swatch(ui, palette[i], name);
        }
        if present(255) {
            swatch(ui, palette[255], "ignored (object borders)");
        }
    });
}

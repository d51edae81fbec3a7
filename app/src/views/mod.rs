//! The views, one component each (its own state behind the `Panel` trait, one file each), and
//! what they draw alike: the colour bar, the ERF over the photo, exporting as PNG and CSV.

pub mod field;
pub mod finetune;
pub mod layers;
pub mod recurrence;
pub mod recurrence_history;
pub mod segmentation;

use eframe::egui::{self, Color32};
use image::RgbImage;
use lrnn_core::colour::ColourMap;

use crate::protocol::{FileJob, Job};
use crate::shared::Shared;
pub use crate::textures::{color_image, painted};

/// The app's views (tabs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Every layer's channels, hidden states per scan direction, class scores.
    Layers,
    /// Effective and theoretical receptive fields, the model against its CNN (V = 0).
    Field,
    /// Recurrence matrices and their spectra.
    Recurrence,
    /// Fine-tuning runs with live plots and an ERF timeline.
    FineTune,
    /// Segmentation checks (VOC).
    Segmentation,
}

impl View {
    /// Every view, in tab order.
    pub const ALL: [View; 5] =
        [View::Layers, View::Field, View::Recurrence, View::FineTune, View::Segmentation];

    /// The tab's title.
    pub fn title(self) -> &'static str {
        match self {
            View::Layers => "Layers",
            View::Field => "Receptive field",
            View::Recurrence => "Recurrence",
            View::FineTune => "Fine-tune",
            View::Segmentation => "Segmentation",
        }
    }

    /// The short name used by `--view` and in file names.
    pub fn key(self) -> &'static str {
        match self {
            View::Layers => "layers",
            View::Field => "field",
            View::Recurrence => "recurrence",
            View::FineTune => "finetune",
            View::Segmentation => "segmentation",
        }
    }

    /// Parses a `--view` name.
    ///
    /// # Errors
    /// A message listing the names.
    pub fn parse(s: &str) -> Result<View, String> {
        View::ALL.into_iter().find(|v| v.key() == s).ok_or_else(|| {
            let names: Vec<&str> = View::ALL.iter().map(|v| v.key()).collect();
            format!("unknown view `{s}`; known: {}", names.join(", "))
        })
    }
}

/// `[h, w]` values coloured with `cmap` over `range` as a picture (for PNG export).
pub fn painted_rgb(values: &[f32], h: usize, w: usize, cmap: ColourMap, range: (f32, f32)) -> RgbImage {
    RgbImage::from_raw(w as u32, h as u32, cmap.paint(values, range)).unwrap_or_else(|| RgbImage::new(1, 1))
}

/// A vertical colour bar of `height` points with the range's ends written beside it.
pub fn colour_bar(ui: &mut egui::Ui, cmap: ColourMap, range: (f32, f32), height: f32) {
    ui.vertical(|ui| {
        ui.label(format!("{:.3}", range.1));
        let (rect, _) = ui.allocate_exact_size(egui::vec2(14.0, height), egui::Sense::hover());
        let steps = 64;
        for i in 0..steps {
            let t = 1.0 - (i as f32 + 0.5) / steps as f32;
            let v = range.0 + t * (range.1 - range.0);
            let [r, g, b] = cmap.colour(v, range);
            let y0 = rect.top() + rect.height() * i as f32 / steps as f32;
            let y1 = rect.top() + rect.height() * (i + 1) as f32 / steps as f32;
            let band = egui::Rect::from_x_y_ranges(rect.x_range(), y0..=y1);
            ui.painter().rect_filled(band, 0.0, Color32::from_rgb(r, g, b));
        }
        ui.label(format!("{:.3}", range.0));
    });
}

/// The worker's long job, if one runs: its progress bar (`done / total unit`) and a Stop button
/// (the job stops at its next step); `true` while it runs.
pub fn long_job_progress(ui: &mut egui::Ui, shared: &Shared, unit: &str) -> bool {
    let Some((done, total)) = shared.worker.progress.get() else { return false };
    ui.add(
        egui::ProgressBar::new(done as f32 / total.max(1) as f32)
            .desired_width(180.0)
            .text(format!("{done} / {total} {unit}")),
    );
    if ui.button("Stop").clicked() {
        shared.worker.progress.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    ui.ctx().request_repaint_after(std::time::Duration::from_millis(100));
    true
}

/// The unit circle of the complex plane as plot points (`steps` segments).
pub fn unit_circle(steps: u32) -> Vec<[f64; 2]> {
    (0..=steps)
        .map(|i| {
            let t = std::f64::consts::TAU * f64::from(i) / f64::from(steps);
            [t.cos(), t.sin()]
        })
        .collect()
}

/// What a view exports: a picture and a table.
pub struct Export {
    /// The view's main picture.
    pub picture: RgbImage,
    /// Its numbers as CSV.
    pub csv: String,
}

/// A view: its own state, how it draws itself with the shared state, and what it exports.
pub trait Panel {
    /// Draws the view in the central panel.
    fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared);

    /// The view's picture and numbers, if it shows any.
    fn export(&self, shared: &Shared) -> Option<Export>;

    /// A new analysis arrived (`model_changed`: from another model); `shared` holds it.
    fn loaded(&mut self, _shared: &Shared, _model_changed: bool) {}
}

/// The export button every view shows: asks where, then writes the view's picture and numbers
/// on the worker (its reply shows what was written).
pub fn export_button(
    ui: &mut egui::Ui,
    shared: &mut Shared,
    view: View,
    export: impl FnOnce(&Shared) -> Option<Export>,
) {
    export_as(ui, shared, "Export PNG + CSV…", &format!("lrnn-{}.png", view.key()), export)
        .then(|| shared.error = Some(nothing_to_export(view)));
}

/// A button `label` that asks where (proposing `file_name`) and writes `export`'s picture and
/// numbers on the worker; `true` when there was nothing to export.
pub fn export_as(
    ui: &mut egui::Ui,
    shared: &mut Shared,
    label: &str,
    file_name: &str,
    export: impl FnOnce(&Shared) -> Option<Export>,
) -> bool {
    if ui.button(label).clicked() {
        if let Some(path) = rfd::FileDialog::new().set_file_name(file_name).save_file() {
            match export(shared) {
                Some(Export { picture, csv }) => {
                    let what = format!("writing {}", path.display());
                    shared.send(Job::File(FileJob::Export { picture, csv, path }), &what);
                }
                None => return true,
            }
        }
    }
    false
}

/// The message of a view with nothing to export.
pub fn nothing_to_export(view: View) -> String {
    format!("the {} view has nothing to export yet", view.title())
}

/// The ERF drawn over the original photo (any aspect; the model saw it resized to a square),
/// at most `max_side` pixels on its longer side: grey photo, ERF magnitude in red–yellow.
pub fn overlay_on_original(original: &RgbImage, erf: &[f32], n: usize, max_side: u32) -> RgbImage {
    let (w0, h0) = original.dimensions();
    let k = (max_side as f32 / w0.max(h0) as f32).min(1.0);
    let (w, h) = (((w0 as f32 * k).round() as u32).max(1), ((h0 as f32 * k).round() as u32).max(1));
    let grey: image::GrayImage = image::imageops::resize(
        &image::DynamicImage::ImageRgb8(original.clone()).to_luma8(),
        w,
        h,
        image::imageops::FilterType::Triangle,
    );
    let map: image::ImageBuffer<image::Luma<f32>, Vec<f32>> =
        image::ImageBuffer::from_raw(n as u32, n as u32, erf.iter().map(|v| v.abs()).collect())
            .unwrap_or_else(|| image::ImageBuffer::new(n as u32, n as u32));
    let map = image::imageops::resize(&map, w, h, image::imageops::FilterType::Triangle);
    let bg: Vec<f32> = grey.pixels().map(|p| f32::from(p[0]) / 255.0).collect();
    lrnn_core::probe::render::erf_overlay(&bg, map.as_raw(), h as usize, w as usize, 1)
}

//! The views, one file each, and what they share: the texture cache, the colour bar, and
//! exporting a view as PNG and CSV.

pub mod field;
pub mod finetune;
pub mod layers;
pub mod recurrence;
pub mod segmentation;

use std::collections::HashMap;
use std::path::Path;

use eframe::egui::{self, Color32, ColorImage, TextureHandle, TextureOptions};
use image::RgbImage;
use lrnn_core::colour::ColourMap;

use crate::protocol::{FileJob, Job};
use crate::StudioApp;

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

/// Textures made from the current analysis, by key, with the value range of those that colour a
/// map; cleared when the analysis changes.
#[derive(Default)]
pub struct TextureCache {
    textures: HashMap<String, TextureHandle>,
    ranges: HashMap<String, (f32, f32)>,
}

impl TextureCache {
    /// Forgets every texture.
    pub fn clear(&mut self) {
        self.textures.clear();
        self.ranges.clear();
    }

    /// Whether a texture is cached under `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.textures.contains_key(key)
    }

    /// The texture under `key`, made by `make` the first time.
    pub fn get(
        &mut self,
        ctx: &egui::Context,
        key: &str,
        make: impl FnOnce() -> ColorImage,
    ) -> TextureHandle {
        self.textures
            .entry(key.to_string())
            .or_insert_with(|| ctx.load_texture(key, make(), TextureOptions::NEAREST))
            .clone()
    }

    /// A map coloured with `cmap` over its own range: the texture and that range. `values`
    /// (`[h, w]` values with `h` and `w`) runs only the first time, not every frame.
    pub fn map(
        &mut self,
        ctx: &egui::Context,
        key: &str,
        cmap: ColourMap,
        values: impl FnOnce() -> (Vec<f32>, usize, usize),
    ) -> (TextureHandle, (f32, f32)) {
        if let (Some(t), Some(r)) = (self.textures.get(key), self.ranges.get(key)) {
            return (t.clone(), *r);
        }
        let (v, h, w) = values();
        let range = cmap.range(&v);
        let t = ctx.load_texture(key, painted(&v, h, w, cmap, range), TextureOptions::NEAREST);
        self.textures.insert(key.to_string(), t.clone());
        self.ranges.insert(key.to_string(), range);
        (t, range)
    }
}

/// An RGB picture as an egui image.
pub fn color_image(img: &RgbImage) -> ColorImage {
    ColorImage::from_rgb([img.width() as usize, img.height() as usize], img.as_raw())
}

/// `[h, w]` values coloured with `cmap` over `range` as an egui image.
pub fn painted(values: &[f32], h: usize, w: usize, cmap: ColourMap, range: (f32, f32)) -> ColorImage {
    ColorImage::from_rgb([w, h], &cmap.paint(values, range))
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

/// What a view exports: a picture and a table.
pub struct Export {
    /// The view's main picture.
    pub picture: RgbImage,
    /// Its numbers as CSV.
    pub csv: String,
}

impl StudioApp {
    /// The current view's picture and numbers, if it shows any.
    pub fn export(&self) -> Option<Export> {
        match self.view {
            View::Layers => self.layers_export(),
            View::Field => self.field_export(),
            View::Recurrence => self.recurrence_export(),
            View::FineTune => self.finetune_export(),
            View::Segmentation => self.segmentation_export(),
        }
    }

    /// Saves the current view as `<stem>.png` and `<stem>.csv` next to `path` (its extension is
    /// replaced). Returns the two files written.
    ///
    /// # Errors
    /// Nothing to export, or the files cannot be written.
    pub fn export_to(&self, path: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf), String> {
        let e = self
            .export()
            .ok_or_else(|| format!("the {} view has nothing to export yet", self.view.title()))?;
        crate::files::write_export(&e.picture, &e.csv, path)
    }

    /// The export buttons every view shows.
    pub(crate) fn export_buttons(&mut self, ui: &mut egui::Ui) {
        if ui.button("Export PNG + CSV…").clicked() {
            let name = format!("lrnn-{}.png", self.view.key());
            if let Some(path) = rfd::FileDialog::new().set_file_name(name).save_file() {
                // The files are written on the worker; its reply shows what was written.
                match self.export() {
                    Some(Export { picture, csv }) => {
                        let what = format!("writing {}", path.display());
                        self.send(Job::File(FileJob::Export { picture, csv, path }), &what);
                    }
                    None => {
                        self.error =
                            Some(format!("the {} view has nothing to export yet", self.view.title()));
                    }
                }
            }
        }
    }
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

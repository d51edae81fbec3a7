//! The app's state and views: the layer list, the selected map's channels with a colour bar,
//! and the effective receptive field of a clicked unit over the photo.

use std::path::PathBuf;

use eframe::egui::{self, Color32, ColorImage, TextureHandle, TextureOptions};
use image::RgbImage;
use lrnn_core::probe::activations::MapKind;

use crate::worker::{Job, MapView, Reply, Worker};

/// What the app opens.
#[derive(Debug, Clone)]
pub struct StudioOptions {
    /// A run or checkpoint folder.
    pub model: PathBuf,
    /// A photo.
    pub image: PathBuf,
}

impl StudioOptions {
    /// The bundled defaults: the context-task CNN with L-RNNs inserted and fine-tuned, and the
    /// astronaut photo (both in `assets/`).
    pub fn bundled() -> Self {
        let assets = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets");
        Self {
            model: assets.join("models/context-lrnn-finetuned"),
            image: assets.join("photos/astronaut.png"),
        }
    }
}

struct Shown {
    view: MapView,
    texture: TextureHandle,
}

struct ErfShown {
    unit: String,
    texture: TextureHandle,
    mass: [Option<usize>; 3],
    theoretical: String,
}

/// The app.
pub struct StudioApp {
    worker: Worker,
    options: StudioOptions,
    model: Option<String>,
    input: Option<TextureHandle>,
    maps: Vec<Shown>,
    selected: usize,
    erf: Option<ErfShown>,
    busy: Option<String>,
    error: Option<String>,
}

fn texture(ctx: &egui::Context, name: &str, img: &RgbImage) -> TextureHandle {
    let size = [img.width() as usize, img.height() as usize];
    ctx.load_texture(name, ColorImage::from_rgb(size, img.as_raw()), TextureOptions::NEAREST)
}

impl StudioApp {
    /// Opens the app and starts loading `options`' model and photo.
    pub fn new(cc: &eframe::CreationContext<'_>, options: StudioOptions) -> Self {
        let ctx = cc.egui_ctx.clone();
        let worker = Worker::spawn(move || ctx.request_repaint());
        let mut app = Self {
            worker,
            options,
            model: None,
            input: None,
            maps: Vec::new(),
            selected: 0,
            erf: None,
            busy: None,
            error: None,
        };
        app.load();
        app
    }

    fn load(&mut self) {
        self.busy =
            Some(format!("loading {} and {}…", self.options.model.display(), self.options.image.display()));
        self.worker.send(Job::Load { run: self.options.model.clone(), photo: self.options.image.clone() });
    }

    /// Whether the worker is still computing something.
    pub fn is_busy(&self) -> bool {
        self.busy.is_some()
    }

    /// The last error shown to the user, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The names of the maps in the layer list.
    pub fn map_names(&self) -> Vec<String> {
        self.maps.iter().map(|m| m.view.name.clone()).collect()
    }

    /// Opens another photo (keeps the model).
    pub fn open_image(&mut self, path: PathBuf) {
        self.options.image = path;
        self.erf = None;
        self.load();
    }

    fn drain(&mut self, ctx: &egui::Context) {
        while let Ok(reply) = self.worker.replies.try_recv() {
            self.busy = None;
            match reply {
                Reply::Loaded { model, input, maps } => {
                    self.model = Some(model);
                    self.input = Some(texture(ctx, "input", &input));
                    let keep = self.maps.get(self.selected).map(|m| m.view.name.clone());
                    self.maps = maps
                        .into_iter()
                        .map(|view| {
                            let texture = texture(ctx, &view.name, &view.picture);
                            Shown { view, texture }
                        })
                        .collect();
                    self.selected = keep
                        .and_then(|k| self.maps.iter().position(|m| m.view.name == k))
                        .or_else(|| self.maps.iter().position(|m| m.view.kind == MapKind::Direction))
                        .unwrap_or(0);
                    self.error = None;
                }
                Reply::Erf { unit, picture, mass, theoretical } => {
                    self.erf =
                        Some(ErfShown { unit, texture: texture(ctx, "erf", &picture), mass, theoretical });
                }
                Reply::Failed(message) => self.error = Some(message),
            }
        }
    }

    fn layer_list(&mut self, ui: &mut egui::Ui) {
        ui.heading("Layers");
        ui.label("↑/↓ step through them");
        egui::ScrollArea::vertical().show(ui, |ui| {
            for (i, m) in self.maps.iter().enumerate() {
                let (c, h, w) = m.view.shape;
                let indent = if m.view.kind == MapKind::Direction { "    " } else { "" };
                let text = format!("{indent}{}  {c}×{h}×{w}", m.view.name);
                if ui.selectable_label(i == self.selected, text).clicked() {
                    self.selected = i;
                }
            }
        });
    }

    fn map_view(&mut self, ui: &mut egui::Ui) {
        let Some(shown) = self.maps.get(self.selected) else { return };
        let v = &shown.view;
        let (c, h, w) = v.shape;
        let kind = match v.kind {
            MapKind::Layer => "layer output",
            MapKind::Direction => "one scan direction's hidden states",
            MapKind::Output => "class scores",
        };
        ui.heading(&v.name);
        ui.label(format!(
            "{kind}: {c} channels of {h}×{w} (first {} shown, {} per row); viridis over [{:.3}, {:.3}], colour bar on the right",
            v.shown.0, v.shown.1, v.range.0, v.range.1
        ));
        let response = ui.add(egui::Image::new(&shown.texture).sense(egui::Sense::click()));
        if h > 1 && w > 1 {
            ui.label("Click a unit in the first channel's tile to see its effective receptive field.");
        }
        if let Some(pos) = response.interact_pointer_pos().filter(|_| response.clicked()) {
            // The grid's first tile is channel 0; map the click to its unit.
            let rect = response.rect;
            let (shown_c, cols) = v.shown;
            let rows = shown_c.div_ceil(cols.max(1));
            let bar = 18.0 / (v.picture.width() as f32) * rect.width(); // colour bar and gap
            let grid_w = rect.width() - bar;
            let tile_w = grid_w / (cols * (w + 1) - 1) as f32 * w as f32;
            let tile_h = rect.height() / (rows * (h + 1) - 1) as f32 * h as f32;
            let (dx, dy) = (pos.x - rect.left(), pos.y - rect.top());
            if dx < tile_w && dy < tile_h && h > 1 && w > 1 {
                let x = ((dx / tile_w) * w as f32) as usize;
                let y = ((dy / tile_h) * h as f32) as usize;
                self.busy = Some(format!("computing the ERF of {} at ({y}, {x})…", v.name));
                self.worker.send(Job::Erf { map: v.name.clone(), y: y.min(h - 1), x: x.min(w - 1) });
            }
        }
    }

    fn erf_view(&self, ui: &mut egui::Ui) {
        ui.heading("Effective receptive field");
        match &self.erf {
            Some(e) => {
                ui.label(&e.unit);
                ui.add(egui::Image::new(&e.texture));
                let side = |s: Option<usize>| s.map_or("-".to_string(), |v| format!("{v} px"));
                ui.label(format!(
                    "centred squares holding 20% / 50% / 99% of the gradient: {} / {} / {}",
                    side(e.mass[0]),
                    side(e.mass[1]),
                    side(e.mass[2])
                ));
                ui.label(format!("theoretical receptive field: {}", e.theoretical));
            }
            None => {
                if let Some(input) = &self.input {
                    ui.add(egui::Image::new(input).fit_to_exact_size(egui::vec2(384.0, 384.0)));
                }
                ui.label("No unit chosen yet: click a map.");
            }
        }
    }
}

impl eframe::App for StudioApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.drain(&ctx);
        if !self.maps.is_empty() {
            let (up, down) =
                ctx.input(|i| (i.key_pressed(egui::Key::ArrowUp), i.key_pressed(egui::Key::ArrowDown)));
            if up {
                self.selected = self.selected.saturating_sub(1);
            }
            if down {
                self.selected = (self.selected + 1).min(self.maps.len() - 1);
            }
        }
        egui::Panel::top("status").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.strong("L-RNN Studio");
                ui.separator();
                ui.label(self.model.as_deref().unwrap_or("no model"));
                ui.separator();
                ui.label(format!("photo: {}", self.options.image.display()));
                if let Some(b) = &self.busy {
                    ui.separator();
                    ui.spinner();
                    ui.label(b);
                }
            });
            if let Some(e) = &self.error {
                ui.colored_label(Color32::from_rgb(200, 40, 40), format!("Error: {e}"));
            }
            ui.label(
                "Built so far: layers, channel maps, each scan direction's hidden states, ERFs. Not built yet: \
                 model/photo dialogs, the V slider, recurrence spectra, fine-tuning, segmentation views (issue #7).",
            );
        });
        egui::Panel::left("layers").default_size(260.0).show(ui, |ui| self.layer_list(ui));
        egui::Panel::right("erf").default_size(420.0).show(ui, |ui| self.erf_view(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::both().show(ui, |ui| self.map_view(ui));
        });
    }
}

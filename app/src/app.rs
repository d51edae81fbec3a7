//! The app's state, its top bar (model, photo, the V slider, view tabs) and its input handling
//! (keys, drag and drop, dialogs). Each view draws itself in `views/`.

use std::path::{Path, PathBuf};

use eframe::egui::{self, Color32};
use lrnn_core::colour::ColourMap;
use lrnn_core::models::capture::MapKind;
use lrnn_core::nn::Axis;

use crate::protocol::{FileJob, Job, Reply};
use crate::view_model::{Analysis, ErfPicture, InsertTarget, UnitRef};
use crate::views::finetune::FineTune;
use crate::views::View;
use crate::worker::Worker;

/// What the app opens.
#[derive(Debug, Clone)]
pub struct StudioOptions {
    /// A run or checkpoint folder.
    pub model: PathBuf,
    /// A photo.
    pub image: PathBuf,
    /// Where runs made in the app go (fine-tuning, insertions).
    pub work_dir: PathBuf,
}

/// The folder of the bundled assets.
pub fn assets_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets")
}

impl StudioOptions {
    /// The bundled defaults: the context-task CNN with L-RNNs inserted and fine-tuned, and the
    /// astronaut photo (both in `assets/`); runs go to `~/.cache/lrnn/studio`.
    pub fn bundled() -> Self {
        let assets = assets_dir();
        Self {
            model: assets.join("models/context-lrnn-finetuned"),
            image: assets.join("photos/astronaut.png"),
            work_dir: lrnn_core::io::vgg16::default_cache().join("studio"),
        }
    }
}

/// The bundled segmentation network (FCN-8s-LRNN trained on the generated scenes) and the scenes
/// it opens with (a VOC tree with ground truth, scenes it was not trained on).
pub const BUNDLED_SEGMENTER: (&str, &str) = ("scenes-fcn8s-lrnn", "scenes");

/// The bundled models the model menu offers.
pub const BUNDLED_MODELS: [(&str, &str); 6] = [
    ("scenes-fcn8s-lrnn", "FCN-8s-LRNN on the generated scenes (segmentation)"),
    ("context-lrnn-finetuned", "Context-CNN + inserted L-RNNs, fine-tuned"),
    ("context-lrnn", "Context-LRNN, trained from scratch"),
    ("context-cnn", "Context-CNN (no L-RNN)"),
    ("e-rnn-max-fashion-mnist", "E-RNN (Fashion-MNIST)"),
    ("baseline-cnn-max-fashion-mnist", "Baseline-CNN (Fashion-MNIST)"),
];

/// Sides of the centred squares holding 20%, 50% and 99% of an ERF's mass.
pub type MassSides = [Option<usize>; 3];

/// The ERF on show.
pub(crate) struct ErfShown {
    pub unit: UnitRef,
    pub size: usize,
    pub model: ErfPicture,
    pub cnn: Option<ErfPicture>,
    pub theoretical: Option<((usize, usize), (usize, usize))>,
    pub theoretical_cnn: Option<((usize, usize), (usize, usize))>,
    pub scale: f64,
}

/// The app.
pub struct StudioApp {
    pub(crate) worker: Worker,
    pub(crate) options: StudioOptions,
    pub(crate) analysis: Option<Box<Analysis>>,
    pub(crate) view: View,
    pub(crate) selected: usize,
    pub(crate) first_channel: usize,
    pub(crate) colour_map: ColourMap,
    pub(crate) scale: f64,
    pub(crate) erf: Option<ErfShown>,
    pub(crate) recurrence: usize,
    pub(crate) finetune: FineTune,
    pub(crate) seg: crate::views::segmentation::SegView,
    /// Whether the spectra missing from the current analysis were asked for.
    pub(crate) spectra_asked: bool,
    pub(crate) pending: usize,
    pub(crate) busy: String,
    pub(crate) error: Option<String>,
    pub(crate) notice: Option<String>,
    pub(crate) browse: Vec<PathBuf>,
    pub(crate) insert_layer: usize,
    pub(crate) insert_axis: Axis,
    pub(crate) textures: crate::views::TextureCache,
    /// Where the worker runs forward passes, in words (`GPU: …` or `CPU …`).
    pub(crate) device: String,
}

impl StudioApp {
    /// Opens the app and starts loading `options`' model and photo.
    pub fn new(cc: &eframe::CreationContext<'_>, options: StudioOptions) -> Self {
        let ctx = cc.egui_ctx.clone();
        let worker = Worker::spawn(move || ctx.request_repaint());
        let mut app = Self {
            worker,
            options,
            analysis: None,
            view: View::Layers,
            selected: 0,
            first_channel: 0,
            colour_map: ColourMap::Viridis,
            scale: 1.0,
            erf: None,
            recurrence: 0,
            finetune: FineTune::default(),
            seg: Default::default(),
            spectra_asked: false,
            pending: 0,
            busy: String::new(),
            error: None,
            notice: None,
            browse: Vec::new(),
            insert_layer: 0,
            insert_axis: Axis::Horizontal,
            textures: Default::default(),
            device: "CPU (candle)".into(),
        };
        let (model, photo) = (app.options.model.clone(), app.options.image.clone());
        app.send(Job::Load { model: Some(model), photo: Some(photo) }, "loading the model and the photo");
        app
    }

    pub(crate) fn send(&mut self, job: Job, what: &str) {
        self.pending += 1;
        self.busy = format!("{what}…");
        self.worker.send(job);
    }

    /// Whether the worker is still computing something.
    pub fn is_busy(&self) -> bool {
        self.pending > 0
    }

    /// The last error shown to the user, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The names of the maps in the layer list.
    pub fn map_names(&self) -> Vec<String> {
        self.analysis.as_ref().map(|a| a.maps.iter().map(|m| m.name.clone()).collect()).unwrap_or_default()
    }

    /// The selected map's name.
    pub fn selected_map(&self) -> Option<&str> {
        self.analysis.as_ref().and_then(|a| a.maps.get(self.selected)).map(|m| m.name.as_str())
    }

    /// The view on show.
    pub fn view(&self) -> View {
        self.view
    }

    /// Shows another view.
    pub fn show_view(&mut self, view: View) {
        self.view = view;
    }

    /// The ERF on show: its unit and the sides of the squares holding 20/50/99% of its mass,
    /// with the model as it is and with `V = 0`.
    pub fn erf_summary(&self) -> Option<(UnitRef, MassSides, Option<MassSides>)> {
        self.erf.as_ref().map(|e| (e.unit.clone(), e.model.mass, e.cnn.as_ref().map(|c| c.mass)))
    }

    /// The analysis on show.
    pub fn analysis(&self) -> Option<&Analysis> {
        self.analysis.as_deref()
    }

    /// The fine-tuning state.
    pub fn finetune(&self) -> &FineTune {
        &self.finetune
    }

    /// The last notice shown under the top bar (what was opened, what was written), if any.
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// The fine-tuning settings and run, to change.
    pub fn finetune_mut(&mut self) -> &mut FineTune {
        &mut self.finetune
    }

    /// Opens another photo (keeps the model).
    pub fn open_image(&mut self, path: impl Into<PathBuf>) {
        let path = path.into();
        self.send(
            Job::Load { model: None, photo: Some(path.clone()) },
            &format!("reading {}", path.display()),
        );
    }

    /// Opens another model (a run or checkpoint folder; keeps the photo).
    pub fn open_model(&mut self, path: impl Into<PathBuf>) {
        let path = path.into();
        self.send(
            Job::Load { model: Some(path.clone()), photo: None },
            &format!("loading {}", path.display()),
        );
    }

    /// Opens a folder of photos (or a VOC tree: its `JPEGImages`) for browsing with Left/Right, and
    /// shows its first photo (the worker lists it).
    pub fn open_folder(&mut self, dir: &Path) {
        let job = FileJob::OpenFolder { dir: dir.to_path_buf(), model: None };
        self.send(Job::File(job), &format!("listing {}", dir.display()));
    }

    /// Opens the bundled segmentation network with its scenes (browse them with Left/Right) and
    /// shows the Segmentation view.
    pub fn open_segmentation_demo(&mut self) {
        let model = assets_dir().join("models").join(BUNDLED_SEGMENTER.0);
        let job = FileJob::OpenFolder { dir: assets_dir().join(BUNDLED_SEGMENTER.1), model: Some(model) };
        self.send(Job::File(job), "loading the scenes segmenter");
        self.view = View::Segmentation;
    }

    /// Steps through the browsed folder (`+1` next, `-1` previous).
    pub fn step_photo(&mut self, by: isize) {
        if self.browse.is_empty() {
            return;
        }
        let cur =
            self.analysis.as_ref().and_then(|a| self.browse.iter().position(|p| *p == a.photo)).unwrap_or(0);
        let n = self.browse.len() as isize;
        let next = (cur as isize + by).rem_euclid(n) as usize;
        self.open_image(self.browse[next].clone());
    }

    /// Selects a map by name.
    pub fn select_map(&mut self, name: &str) -> bool {
        match self.analysis.as_ref().and_then(|a| a.maps.iter().position(|m| m.name == name)) {
            Some(i) => {
                self.selected = i;
                self.first_channel = 0;
                true
            }
            None => false,
        }
    }

    /// Sets the scale of every `V` (0: the plain CNN, 1: as trained); maps and the ERF update.
    pub fn set_scale(&mut self, scale: f64) {
        self.scale = scale.clamp(0.0, 1.0);
        self.send(Job::Scale(self.scale), &format!("scaling every V by {:.2}", self.scale));
        if let Some(e) = &self.erf {
            let unit = e.unit.clone();
            self.request_erf(unit);
        }
    }

    /// Computes the ERF of a unit (as the model is, and with `V = 0`).
    pub fn request_erf(&mut self, unit: UnitRef) {
        let what = format!("computing the ERF of {unit}");
        self.send(Job::Erf(unit), &what);
    }

    /// Inserts an L-RNN pair (V = 0) into a convolution of the loaded model.
    pub fn insert(&mut self, target: InsertTarget, axis: Axis) {
        let stamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let tag = match &target {
            InsertTarget::Conv(layer) => layer.clone(),
            InsertTarget::FcnHeads => "fcn-heads".to_string(),
        };
        let out = self.options.work_dir.join(format!("inserted-{tag}-{stamp}"));
        let what = format!("inserting an L-RNN pair into {target}");
        self.send(Job::Insert { target, axis, out }, &what);
    }

    /// Runs the forward passes on the GPU through wgpu (`true`) or on the CPU from now on, and
    /// recomputes what is shown.
    pub fn set_compute(&mut self, gpu: bool) {
        let what = if gpu { "opening the GPU and recomputing" } else { "recomputing on the CPU" };
        self.send(Job::Compute(gpu), what);
    }

    /// Where forward passes run, in words.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The unit whose ERF the app shows first: the centre of the last map with an extent.
    fn default_unit(a: &Analysis) -> Option<UnitRef> {
        let m = a.maps.iter().rev().find(|m| m.shape.1 > 1 && m.kind != MapKind::Direction)?;
        Some(UnitRef { map: m.name.clone(), channel: 0, y: m.shape.1 / 2, x: m.shape.2 / 2 })
    }

    fn drain(&mut self) {
        while let Ok(reply) = self.worker.replies.try_recv() {
            self.pending = self.pending.saturating_sub(1);
            match reply {
                Reply::Loaded(a) => {
                    self.device.clone_from(&a.device);
                    let keep = self.selected_map().map(str::to_string);
                    let model_changed = self.analysis.as_ref().is_none_or(|old| old.model_dir != a.model_dir);
                    let photo_changed = self.analysis.as_ref().is_none_or(|old| old.photo != a.photo);
                    self.scale = a.scale;
                    self.analysis = Some(a);
                    self.textures.clear();
                    let a = self.analysis.as_deref().expect("just set");
                    self.seg.record(a);
                    self.spectra_asked = false;
                    self.selected = keep
                        .and_then(|k| a.maps.iter().position(|m| m.name == k))
                        .or_else(|| a.maps.iter().position(|m| m.kind == MapKind::Direction))
                        .unwrap_or(0);
                    self.recurrence = self.recurrence.min(a.recurrences.len().saturating_sub(1));
                    self.error = None;
                    if model_changed {
                        self.finetune.adopt_history(a.state.as_ref());
                    }
                    // A new photo or model: the ERF follows (same unit if the map is still there).
                    let unit = match &self.erf {
                        Some(e) if a.maps.iter().any(|m| m.name == e.unit.map) => Some(e.unit.clone()),
                        _ => Self::default_unit(a),
                    };
                    if let Some(u) = unit.filter(|_| model_changed || photo_changed) {
                        self.request_erf(u);
                    }
                }
                Reply::Erf { unit, size, model, cnn, theoretical, theoretical_cnn, scale } => {
                    self.erf = Some(ErfShown { unit, size, model, cnn, theoretical, theoretical_cnn, scale });
                }
                Reply::Spectra { model_dir, scale, spectra } => {
                    if let Some(a) = self.analysis.as_deref_mut() {
                        if a.model_dir == model_dir
                            && a.scale == scale
                            && a.recurrences.len() == spectra.len()
                        {
                            for (r, sp) in a.recurrences.iter_mut().zip(spectra) {
                                r.spectrum = Some(sp);
                            }
                            self.textures.clear();
                        }
                    }
                }
                Reply::Snapshot { step, unit, erf } => self.finetune.add_snapshot(step, unit, erf),
                Reply::Device(device) => self.device = device,
                Reply::Folder { dir, photos, warning, model } => {
                    let mut notice = match &model {
                        // The segmentation demo: its bundled scenes.
                        Some(_) => {
                            format!("{} scenes with ground truth (Left/Right to browse)", photos.len())
                        }
                        None => {
                            format!("{} photos in {} (Left/Right to browse)", photos.len(), dir.display())
                        }
                    };
                    if let Some(w) = warning {
                        notice = format!("{notice} — {w}");
                    }
                    self.notice = Some(notice);
                    let first = photos[0].clone();
                    self.browse = photos;
                    self.send(Job::Load { model, photo: Some(first) }, "reading the first photo");
                }
                Reply::Written(what) => self.notice = Some(what),
                Reply::Failed(message) => self.error = Some(message),
            }
        }
        if self.pending == 0 {
            self.busy.clear();
        }
    }

    fn keys(&mut self, ctx: &egui::Context) {
        if ctx.memory(|m| m.focused().is_some()) {
            return;
        }
        let (up, down, left, right) = ctx.input(|i| {
            (
                i.key_pressed(egui::Key::ArrowUp),
                i.key_pressed(egui::Key::ArrowDown),
                i.key_pressed(egui::Key::ArrowLeft),
                i.key_pressed(egui::Key::ArrowRight),
            )
        });
        let n = self.analysis.as_ref().map_or(0, |a| a.maps.len());
        if n > 0 && (up || down) {
            self.selected = if up { self.selected.saturating_sub(1) } else { (self.selected + 1).min(n - 1) };
            self.first_channel = 0;
        }
        if left || right {
            self.step_photo(if right { 1 } else { -1 });
        }
    }

    fn dropped(&mut self, ctx: &egui::Context) {
        let files: Vec<PathBuf> =
            ctx.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).collect());
        for path in files {
            if path.is_dir() {
                if path.join("weights.safetensors").exists() || path.join("latest.json").exists() {
                    self.open_model(path);
                } else {
                    self.open_folder(&path);
                }
            } else {
                self.open_image(path);
            }
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            ui.strong("L-RNN Studio");
            ui.separator();
            ui.menu_button("Photo", |ui| {
                if ui.button("Open a photo…").clicked() {
                    ui.close();
                    if let Some(p) = rfd::FileDialog::new()
                        .add_filter("images", &["png", "jpg", "jpeg", "bmp"])
                        .pick_file()
                    {
                        self.open_image(p);
                    }
                }
                if ui.button("Open a folder or VOC tree (Left/Right browse)…").clicked() {
                    ui.close();
                    if let Some(d) = rfd::FileDialog::new().pick_folder() {
                        self.open_folder(&d);
                    }
                }
                if ui.button("Bundled scenes (ground truth for the scenes segmenter)").clicked() {
                    ui.close();
                    self.open_folder(&assets_dir().join(BUNDLED_SEGMENTER.1));
                }
                ui.separator();
                ui.label("Bundled photos");
                for name in ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"] {
                    if ui.button(name).clicked() {
                        ui.close();
                        self.open_image(assets_dir().join("photos").join(name));
                    }
                }
            });
            ui.menu_button("Model", |ui| {
                ui.label("Bundled models");
                if ui.button("Segmentation demo: the scenes FCN-8s-LRNN with its scenes").clicked() {
                    ui.close();
                    self.open_segmentation_demo();
                }
                for (dir, what) in BUNDLED_MODELS {
                    if ui.button(what).clicked() {
                        ui.close();
                        self.open_model(assets_dir().join("models").join(dir));
                    }
                }
                ui.separator();
                if ui.button("Open a checkpoint or run folder…").clicked() {
                    ui.close();
                    if let Some(d) = rfd::FileDialog::new().pick_folder() {
                        self.open_model(d);
                    }
                }
                ui.label(
                    "VGG-16 / FCN models: `lrnn train-seg` (VOC or the generated scenes), or \
                     `lrnn fetch vgg16`, then `lrnn init --model FCN-8s --trunk …`",
                );
            });
            ui.menu_button("Compute", |ui| {
                let on_gpu = self.device.starts_with("GPU");
                if ui.radio(!on_gpu, "CPU (candle)").clicked() && on_gpu {
                    ui.close();
                    self.set_compute(false);
                }
                if ui.radio(on_gpu, "GPU through wgpu (the best adapter)").clicked() && !on_gpu {
                    ui.close();
                    self.set_compute(true);
                }
                ui.label(format!("Forward passes now run on: {}", self.device));
                ui.label(
                    "With a hardware GPU the app computes there from the start. A software adapter \
                     (lavapipe) is slower than the CPU. ERFs and fine-tuning always run on the CPU \
                     (they need gradients).",
                );
            });
            ui.separator();
            let mut s = self.scale;
            let slider = ui.add_enabled(
                self.analysis.as_ref().is_some_and(|a| !a.recurrences.is_empty()),
                egui::Slider::new(&mut s, 0.0..=1.0).text("V scale (0 = the CNN)").fixed_decimals(2),
            );
            if slider.changed() {
                self.scale = s;
            }
            if slider.drag_stopped() || (slider.changed() && !slider.dragged()) {
                self.set_scale(s);
            }
            if !self.busy.is_empty() {
                ui.separator();
                ui.spinner();
                ui.label(&self.busy);
            }
        });
        ui.horizontal(|ui| {
            for v in View::ALL {
                if ui.selectable_label(self.view == v, v.title()).clicked() {
                    self.view = v;
                }
            }
            ui.separator();
            if let Some(a) = &self.analysis {
                // The adapter's name only (`GPU: llvmpipe`, `CPU`): the Compute menu has the rest.
                let device = a.device.split(" (").next().unwrap_or(&a.device);
                ui.label(format!("{} · photo: {} · {device}", a.model, a.photo_shown))
                    .on_hover_text(&a.device);
            }
        });
        if let Some(e) = self.error.clone() {
            ui.horizontal(|ui| {
                ui.add(
                    egui::Label::new(
                        egui::RichText::new(format!("Error: {e}")).color(Color32::from_rgb(220, 50, 50)),
                    )
                    .wrap(),
                );
                if ui.small_button("dismiss").clicked() {
                    self.error = None;
                }
            });
        }
        if let Some(n) = &self.notice {
            ui.label(n);
        }
    }
}

impl eframe::App for StudioApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.drain();
        self.finetune_poll();
        self.keys(&ctx);
        self.dropped(&ctx);
        egui::Panel::top("top").show(ui, |ui| self.top_bar(ui));
        if self.view == View::Layers {
            egui::Panel::left("layers").default_size(250.0).show(ui, |ui| self.layer_list(ui));
        }
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::both().auto_shrink([false, false]).show(ui, |ui| match self.view {
                View::Layers => self.layers_view(ui),
                View::Field => self.field_view(ui),
                View::Recurrence => self.recurrence_view(ui),
                View::FineTune => self.finetune_view(ui),
                View::Segmentation => self.segmentation_view(ui),
            });
        });
        if self.finetune.is_running() || self.is_busy() {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
    }
}

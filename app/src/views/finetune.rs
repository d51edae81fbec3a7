//! The Fine-tune view: short fine-tuning runs of the loaded model on its own data (the bundled
//! context task or generated scenes for the bundled models) or a dataset folder (CIFAR-10 or
//! Fashion-MNIST for classifiers, a PASCAL VOC tree for FCNs), with live loss and error plots
//! (segmentation: the fraction of wrong pixels and the validation's mean IoU), a
//! scrubbable timeline of snapshots showing one unit's ERF grow, stop at any time, and saving the
//! result. Training runs on its own thread (`lrnn_core::train::trainer::spawn`); snapshots are
//! loaded and probed on the worker.

use std::path::{Path, PathBuf};

use eframe::egui;
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};
use lrnn_core::data::Format;
use lrnn_core::train::checkpoint::checkpoint_step;
use lrnn_core::train::schedule::Schedule;
use lrnn_core::train::trainer::{spawn, Event, RunState, TrainDevice, TrainHandle};

use super::{color_image, export_button, overlay_on_original, Export, Panel, View};
use crate::protocol::Job;
use crate::shared::Shared;
use crate::view_model::{ErfPicture, UnitRef};

/// Where the training images come from.
#[derive(Debug, Clone, PartialEq)]
pub enum DataChoice {
    /// The data the checkpoint was trained on (for the bundled models: the generated context
    /// task, or Fashion-MNIST where it is downloaded).
    Own,
    /// A dataset folder in a known format.
    Folder(Format, PathBuf),
}

/// One snapshot of a run: the tracked unit's ERF at a step.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Global step (0: the model before fine-tuning).
    pub step: usize,
    /// The unit.
    pub unit: UnitRef,
    /// Its ERF.
    pub erf: ErfPicture,
}

/// The state of the fine-tuning view.
pub struct FineTune {
    /// Steps to run.
    pub steps: usize,
    /// Learning rate (constant over the run).
    pub lr: f64,
    /// A snapshot every this many steps.
    pub every: usize,
    /// The data.
    pub data: DataChoice,
    handle: Option<TrainHandle>,
    /// The run's folder.
    pub out: Option<PathBuf>,
    /// `(step, loss)` of every step so far.
    pub losses: Vec<[f64; 2]>,
    /// `(step, batch error)`.
    pub errors: Vec<[f64; 2]>,
    /// `(step, validation error)` at epoch ends.
    pub val: Vec<[f64; 2]>,
    /// `(step, validation mean IoU)` at epoch ends (segmentation).
    pub miou: Vec<[f64; 2]>,
    /// The loaded checkpoint's own history: `(epoch, train loss, validation error)`.
    pub history: Vec<(usize, f32, f32)>,
    /// Snapshots, by step.
    pub snapshots: Vec<Snapshot>,
    /// The snapshot on show.
    pub scrub: usize,
    /// The newest checkpoint of the run.
    pub last_checkpoint: Option<PathBuf>,
    /// What the run is doing, in words.
    pub status: String,
    /// Where the run's steps go, in words (the CPU with the reason when the GPU was asked for
    /// and cannot train the network).
    pub device: Option<String>,
    unit: Option<UnitRef>,
}

impl Default for FineTune {
    fn default() -> Self {
        Self {
            steps: 60,
            lr: 1e-4,
            every: 10,
            data: DataChoice::Own,
            handle: None,
            out: None,
            losses: vec![],
            errors: vec![],
            val: vec![],
            miou: vec![],
            history: vec![],
            snapshots: vec![],
            scrub: 0,
            last_checkpoint: None,
            status: "No run yet.".into(),
            device: None,
            unit: None,
        }
    }
}

impl FineTune {
    /// Whether a run is going.
    pub fn is_running(&self) -> bool {
        self.handle.is_some()
    }

    /// Shows a newly loaded checkpoint's own training history.
    pub fn adopt_history(&mut self, state: Option<&RunState>) {
        self.history = state
            .map(|s| s.history.iter().map(|h| (h.epoch, h.train_loss, h.val_error)).collect())
            .unwrap_or_default();
    }

    pub(crate) fn add_snapshot(&mut self, step: usize, unit: UnitRef, erf: ErfPicture) {
        let at = self.snapshots.partition_point(|s| s.step < step);
        let following = self.scrub + 1 >= self.snapshots.len();
        self.snapshots.insert(at, Snapshot { step, unit, erf });
        if following {
            self.scrub = self.snapshots.len() - 1;
        }
    }
}

/// The format and root of a dataset folder picked for a model: a VOC tree for a segmentation
/// network (the `VOC2012` folder itself, or a folder holding `VOC2012` or `VOCdevkit/VOC2012`),
/// else CIFAR-10 where its binary batches are, else Fashion-MNIST. A wrong choice fails at the
/// run's start with the loader's message naming what is missing.
pub fn folder_choice(dir: &Path, segmentation: bool) -> (Format, PathBuf) {
    if segmentation {
        let root = [dir.to_path_buf(), dir.join("VOC2012"), dir.join("VOCdevkit/VOC2012")]
            .into_iter()
            .find(|d| d.join("JPEGImages").is_dir())
            .unwrap_or_else(|| dir.to_path_buf());
        (Format::Voc, root)
    } else if dir.join("data_batch_1.bin").exists() || dir.join("cifar-10-batches-bin").exists() {
        (Format::Cifar10, dir.to_path_buf())
    } else {
        (Format::FashionMnist, dir.to_path_buf())
    }
}

/// Why a model without a run state cannot be fine-tuned here.
const NOT_A_CHECKPOINT: &str = "This model is a description and weights only (no state.json): fine-tuning starts from a \
     training checkpoint, which names its data and optimiser (`lrnn train`, `lrnn insert`, or a bundled model).";

impl FineTune {
    /// Starts a fine-tuning run of the loaded model with the view's settings.
    pub fn start(&mut self, shared: &mut Shared) {
        let Some(a) = shared.analysis.as_deref() else { return };
        if self.is_running() {
            return;
        }
        let Some(state) = &a.state else {
            shared.error = Some(NOT_A_CHECKPOINT.to_string());
            return;
        };
        let out = shared.new_run_dir("finetune");
        let ft = &mut *self;
        let mut config = state.config.clone();
        config.out = out.clone();
        config.init_from = Some(a.model_dir.clone());
        config.max_steps = Some(ft.steps.max(1));
        config.epochs = ft.steps.max(1);
        config.time_budget_s = None;
        config.schedule = Schedule::Constant { lr: ft.lr };
        config.checkpoint_every = Some(ft.every.max(1));
        config.max_val_images = Some(config.max_val_images.unwrap_or(500).min(500));
        // Under Compute → GPU the steps run through wgpu (the CPU, with the reason, for what
        // does not train there).
        config.device = if shared.device.starts_with("GPU") { TrainDevice::Wgpu } else { TrainDevice::Cpu };
        if let DataChoice::Folder(format, path) = &ft.data {
            config.data.format = *format;
            config.data.path = path.clone();
        }
        let unit = shared.erf.as_ref().map(|e| e.unit.clone());
        match spawn(config, false) {
            Ok(h) => {
                ft.handle = Some(h);
                shared.finetune_run = Some(out.clone());
                ft.out = Some(out);
                ft.losses.clear();
                ft.errors.clear();
                ft.val.clear();
                ft.miou.clear();
                ft.snapshots.clear();
                ft.scrub = 0;
                ft.last_checkpoint = None;
                ft.device = None;
                ft.unit = unit.clone();
                ft.status = "loading the data…".into();
            }
            Err(e) => {
                shared.error = Some(format!("cannot start the run: {e}"));
                return;
            }
        }
        if let Some(u) = unit {
            let dir = a.model_dir.clone();
            shared.send(Job::Snapshot { checkpoint: dir, step: 0, unit: u }, "probing the start");
        }
    }

    /// Asks the run to stop after its current step (it writes a checkpoint first).
    pub fn stop(&mut self) {
        if let Some(h) = &self.handle {
            h.stop();
            self.status = "stopping after this step…".into();
        }
    }

    /// Reads the run's events (every frame).
    pub fn poll(&mut self, shared: &mut Shared) {
        let Some(h) = &self.handle else { return };
        let events: Vec<Event> = h.events.try_iter().collect();
        let mut ended = false;
        for ev in events {
            let ft = &mut *self;
            match ev {
                Event::Started { steps_per_epoch, parameters, device, .. } => {
                    ft.device = Some(device.clone());
                    ft.status = format!(
                        "running on {device}: {parameters} parameters, {steps_per_epoch} steps per epoch"
                    );
                }
                Event::Step { epoch: _, step: _, loss, error, lr } => {
                    let n = ft.losses.len() as f64 + 1.0;
                    ft.losses.push([n, f64::from(loss)]);
                    ft.errors.push([n, f64::from(error)]);
                    let on = ft.device.as_deref().map_or(String::new(), |d| format!(" on {d}"));
                    ft.status = format!("step {} of {}{on}: loss {loss:.4}, lr {lr:.1e}", n, ft.steps);
                }
                Event::Epoch(s) => {
                    let n = ft.losses.len() as f64;
                    ft.val.push([n, f64::from(s.val_error)]);
                    if let Some(m) = s.val_miou {
                        ft.miou.push([n, f64::from(m)]);
                    }
                }
                Event::Checkpoint(p) => {
                    ft.last_checkpoint = Some(p.clone());
                    if let (Some(step), Some(u)) = (checkpoint_step(&p), ft.unit.clone()) {
                        shared.send(Job::Snapshot { checkpoint: p, step, unit: u }, "probing a snapshot");
                    }
                }
                Event::Finished => {
                    let on = ft.device.as_deref().map_or(String::new(), |d| format!(" on {d}"));
                    ft.status = format!("finished {} steps{on}", ft.losses.len());
                    ended = true;
                }
                Event::Stopped => {
                    ft.status = format!("stopped after {} steps (checkpoint written)", ft.losses.len());
                    ended = true;
                }
                Event::Failed(m) => {
                    ft.status = "failed".into();
                    shared.error = Some(m);
                    ended = true;
                }
            }
        }
        if ended {
            if let Some(h) = self.handle.take() {
                h.join();
            }
        }
    }

    /// Saves the run's newest checkpoint to `dest` (a new folder).
    ///
    /// # Errors
    /// No checkpoint yet, or `dest` cannot be written.
    pub fn save(&self, dest: &Path) -> Result<(), String> {
        let from = self.last_checkpoint.as_ref().ok_or("no checkpoint yet: start a run first")?;
        crate::files::copy_checkpoint(from, dest)
    }

    fn plots(&self, ui: &mut egui::Ui, segmentation: bool) {
        let ft = self;
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                if ft.losses.is_empty() && !ft.history.is_empty() {
                    ui.label("this checkpoint's training so far (per epoch)");
                    Plot::new("history").width(420.0).height(200.0).legend(Legend::default()).show(ui, |p| {
                        let loss: Vec<[f64; 2]> =
                            ft.history.iter().map(|h| [h.0 as f64 + 1.0, f64::from(h.1)]).collect();
                        let val: Vec<[f64; 2]> =
                            ft.history.iter().map(|h| [h.0 as f64 + 1.0, f64::from(h.2)]).collect();
                        // A line and its markers share a name (one legend entry) and a colour.
                        let (loss_colour, val_colour) =
                            (egui::Color32::from_rgb(31, 119, 180), egui::Color32::from_rgb(255, 127, 14));
                        p.line(Line::new("training loss", PlotPoints::from(loss.clone())).color(loss_colour));
                        p.points(
                            Points::new("training loss", PlotPoints::from(loss))
                                .id("training loss markers")
                                .color(loss_colour)
                                .radius(3.0),
                        );
                        p.line(
                            Line::new("validation error", PlotPoints::from(val.clone())).color(val_colour),
                        );
                        p.points(
                            Points::new("validation error", PlotPoints::from(val))
                                .id("validation error markers")
                                .color(val_colour)
                                .radius(3.0),
                        );
                    });
                } else {
                    ui.label("loss per step");
                    Plot::new("loss").width(420.0).height(200.0).show(ui, |p| {
                        p.line(Line::new("loss", PlotPoints::from(ft.losses.clone())));
                    });
                }
            });
            ui.vertical(|ui| {
                ui.label(if segmentation {
                    "wrong pixels: batch (training mode) and validation (at epoch ends, with its mean IoU)"
                } else {
                    "error: batch (training mode) and validation (at epoch ends)"
                });
                Plot::new("error")
                    .width(420.0)
                    .height(200.0)
                    .include_y(0.0)
                    .include_y(1.0)
                    .legend(Legend::default())
                    .show(ui, |p| {
                        p.line(Line::new("batch error", PlotPoints::from(ft.errors.clone())));
                        p.points(
                            Points::new("validation error", PlotPoints::from(ft.val.clone())).radius(4.0),
                        );
                        if !ft.miou.is_empty() {
                            p.points(
                                Points::new("validation mean IoU", PlotPoints::from(ft.miou.clone()))
                                    .radius(4.0),
                            );
                        }
                    });
            });
        });
    }

    fn timeline(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        let Some(a) = shared.analysis.as_deref() else { return };
        let n = self.snapshots.len();
        if n == 0 {
            return;
        }
        ui.separator();
        ui.strong("ERF timeline");
        let mut scrub = self.scrub.min(n - 1);
        let step = self.snapshots[scrub].step;
        ui.add(egui::Slider::new(&mut scrub, 0..=n - 1).text(format!("snapshot (step {step}; {n} so far)")));
        self.scrub = scrub;
        let s = &self.snapshots[scrub];
        let size = a.input.width() as usize;
        let key = format!("snap/{}/{}", s.step, s.unit);
        let tex = shared
            .textures
            .get(ui.ctx(), &key, || color_image(&overlay_on_original(&a.original, &s.erf.values, size, 320)));
        let on = if s.erf.on_gpu { " (gradient computed on the GPU)" } else { "" };
        ui.label(format!("step {}: {}{on}", s.step, s.unit));
        ui.add(egui::Image::new(&tex));
        let side = |v: Option<usize>| v.map_or("-".into(), |v| format!("{v} px"));
        ui.label(format!(
            "squares holding 20% / 50% / 99% of the gradient: {} / {} / {}",
            side(s.erf.mass[0]),
            side(s.erf.mass[1]),
            side(s.erf.mass[2])
        ));
    }
}

impl Panel for FineTune {
    fn loaded(&mut self, shared: &Shared, model_changed: bool) {
        if model_changed {
            self.adopt_history(shared.analysis.as_ref().and_then(|a| a.state.as_ref()));
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        let Some(a) = shared.analysis.as_deref() else {
            ui.label("Loading…");
            return;
        };
        ui.heading("Fine-tune");
        let Some(state) = &a.state else {
            ui.label(NOT_A_CHECKPOINT);
            return;
        };
        let data = &state.config.data;
        let segmentation = state.config.model.is_segmentation();
        let own = match data.format {
            Format::Context => "the generated context task (no files needed)".to_string(),
            Format::Scenes => "the generated scenes (no files needed)".to_string(),
            f => format!("{f:?} from {}", data.path.display()),
        };
        let running = self.is_running();
        ui.add_enabled_ui(!running, |ui| {
            ui.horizontal(|ui| {
                ui.label("data:");
                ui.radio_value(&mut self.data, DataChoice::Own, format!("its own: {own}"));
                if ui.button("a dataset folder…").clicked() {
                    if let Some(d) = rfd::FileDialog::new().pick_folder() {
                        let (format, root) = folder_choice(&d, segmentation);
                        self.data = DataChoice::Folder(format, root);
                    }
                }
                if let DataChoice::Folder(f, p) = &self.data {
                    ui.label(format!("{f:?}: {}", p.display()));
                }
            });
            ui.label(if segmentation {
                "A segmentation network: it fine-tunes on per-pixel labels (its own generated scenes, \
                 or a PASCAL VOC 2012 folder: JPEGImages, SegmentationClass, ImageSets/Segmentation), \
                 pixels labelled 255 ignored, as `lrnn train-seg`."
            } else {
                "A classifier: it fine-tunes on its own data or a CIFAR-10 / Fashion-MNIST folder, \
                 as `lrnn train`."
            });
            ui.horizontal(|ui| {
                let l = ui.label("steps");
                ui.add(egui::DragValue::new(&mut self.steps).range(1..=100_000)).labelled_by(l.id);
                let l = ui.label("learning rate");
                ui.add(egui::DragValue::new(&mut self.lr).range(1e-7..=1.0).speed(1e-4).max_decimals(6))
                    .labelled_by(l.id);
                let l = ui.label("snapshot every");
                ui.add(egui::DragValue::new(&mut self.every).range(1..=10_000)).labelled_by(l.id);
                ui.label("steps");
            });
        });
        let unit = shared.erf.as_ref().map(|e| e.unit.clone());
        ui.label(match (&self.unit, &unit) {
            (Some(u), _) if running => format!("tracking the ERF of {u}"),
            (_, Some(u)) => {
                format!("the timeline will track the ERF of {u} (pick another in the Layers tab)")
            }
            _ => "pick a unit in the Layers tab to track its ERF".into(),
        });
        ui.horizontal(|ui| {
            if ui.add_enabled(!running, egui::Button::new("Start")).clicked() {
                self.start(shared);
            }
            if ui.add_enabled(running, egui::Button::new("Stop")).clicked() {
                self.stop();
            }
            let can_save = !running && self.last_checkpoint.is_some();
            if ui.add_enabled(can_save, egui::Button::new("Save checkpoint…")).clicked() {
                let from = self.last_checkpoint.clone();
                if let (Some(from), Some(dest)) =
                    (from, rfd::FileDialog::new().set_file_name("finetuned").save_file())
                {
                    // Copied on the worker; its reply says where.
                    let what = format!("writing {}", dest.display());
                    shared.send(Job::File(crate::protocol::FileJob::SaveCheckpoint { from, dest }), &what);
                }
            }
            if ui.add_enabled(can_save, egui::Button::new("Open the result")).clicked() {
                if let Some(out) = self.out.clone() {
                    shared.open_model(out);
                }
            }
            export_button(ui, shared, View::FineTune, |s| self.export(s));
        });
        ui.label(&self.status);
        self.plots(ui, segmentation);
        self.timeline(ui, shared);
    }

    fn export(&self, shared: &Shared) -> Option<Export> {
        let a = shared.analysis.as_deref()?;
        let ft = self;
        let mut csv = String::from("step,loss,batch_error\n");
        for (l, e) in ft.losses.iter().zip(&ft.errors) {
            csv.push_str(&format!("{},{},{}\n", l[0], l[1], e[1]));
        }
        for s in &ft.snapshots {
            csv.push_str(&format!("# snapshot step {} {}: mass sides {:?}\n", s.step, s.unit, s.erf.mass));
        }
        let s = ft.snapshots.get(ft.scrub)?;
        let picture = overlay_on_original(&a.original, &s.erf.values, a.input.width() as usize, 320);
        Some(Export { picture, csv })
    }
}

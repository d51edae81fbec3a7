//! The app's background worker: model runs, probes and checkpoint loading never happen on the UI
//! thread. The UI sends a [`Job`]; the worker answers with a [`Reply`] and asks for a repaint.
//! The worker owns the loaded model and photo; a failed job leaves them as they were.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};

use candle_core::{Device, Tensor};
use image::RgbImage;
use lrnn_core::data::photo::{photo_input, read_photo};
use lrnn_core::gpu::{Capture, GpuContext, GpuModel, GradientSeed};
use lrnn_core::models::capture::{Activation, MapKind};
use lrnn_core::models::convnet::{Insertion, LayerSpec};
use lrnn_core::models::{Model, ModelDesc};
use lrnn_core::nn::geometry::Geom;
use lrnn_core::nn::{Forward, ScanBackend};
use lrnn_core::probe::activations::activations;
use lrnn_core::probe::contribution::{recurrence_vars, RecurrenceScale};
use lrnn_core::probe::erf::{erf, Mode, Unit};
use lrnn_core::probe::recurrence::{analyse, gate_blocks, Spectrum};
use lrnn_core::probe::rf::receptive_field;
use lrnn_core::train::checkpoint::{insert_into_checkpoint, Checkpoint};
use lrnn_core::train::trainer::RunState;

use crate::files;
use crate::protocol::{FileJob, Job, JobProgress, Reply};
use crate::view_model::{
    Analysis, ErfPicture, InsertTarget, MapData, RecurrenceInfo, Segmentation, UnitRef, EAGER_SPECTRUM,
    MAX_CHANNELS, MAX_VALUES,
};

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
            (Some(m.labels), format!("ground truth: {}", files::display_path(mask)))
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
    crf: Option<&lrnn_core::crf::CrfParams>,
) -> anyhow::Result<Option<Segmentation>> {
    let Some(classes) = m.model.desc().classes().filter(|_| m.model.desc().is_segmentation()) else {
        return Ok(None);
    };
    let size = (p.original.width() as usize, p.original.height() as usize);
    let names: Vec<String> = match &m.state {
        Some(s) if !s.config.data.format.class_names().is_empty() => {
            s.config.data.format.class_names().iter().map(|c| (*c).to_string()).collect()
        }
        _ if classes == lrnn_core::data::voc::VOC_CLASSES.len() => {
            lrnn_core::data::voc::VOC_CLASSES.iter().map(|c| (*c).to_string()).collect()
        }
        _ => (0..classes).map(|i| format!("class {i}")).collect(),
    };
    let prediction = labels_at(scores, size)?;
    // The scores upsampled to the photo's size, refined over its colours.
    let crf = match crf {
        Some(params) => lrnn_core::train::seg::crf_on_scores(
            scores,
            p.original.as_raw(),
            size.0,
            size.1,
            params,
            &mut |_, _| true,
        )?
        .map(|o| o.labels),
        None => None,
    };
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
        crf,
    };
    m.photo_labels = Some(kept);
    Ok(Some(seg))
}

/// The worker thread's handle.
pub struct Worker {
    jobs: Sender<Job>,
    /// The long job's progress and stop request.
    pub progress: std::sync::Arc<JobProgress>,
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
    fn new(checkpoint: Checkpoint) -> anyhow::Result<Self> {
        let Checkpoint { model, dir, state, mean } = checkpoint;
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

    /// The model's ERF of `unit` on the GPU (its weights uploaded once per V scale, shared with
    /// the forward passes); `None` when the GPU cannot (an operation without a GPU gradient).
    fn model_erf_on_gpu(&mut self, ctx: &GpuContext, x: &Tensor, unit: &UnitRef) -> Option<ErfPicture> {
        let s = self.scale.scale();
        let model = match self.gpu.take() {
            Some((scale, g)) if scale == s => g,
            _ => GpuModel::upload(ctx, &self.model).ok()?,
        };
        let (_, g) = self.gpu.insert((s, model));
        erf_on_gpu(ctx, g, x, unit)
    }

    /// The ERF of `unit` with every `V` at zero, on the GPU (those weights uploaded once).
    fn cnn_erf_on_gpu(&mut self, ctx: &GpuContext, x: &Tensor, unit: &UnitRef) -> Option<ErfPicture> {
        if self.gpu_cnn.is_none() {
            self.gpu_cnn = self.with_cnn(|model| GpuModel::upload(ctx, model).ok()).ok()?;
        }
        erf_on_gpu(ctx, self.gpu_cnn.as_mut()?, x, unit)
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
    /// The dense CRF's settings while it is switched on.
    crf: Option<lrnn_core::crf::CrfParams>,
    /// The long job's progress, shared with the UI.
    progress: std::sync::Arc<JobProgress>,
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
            Ok(maps) => return Ok((maps, gpu_words(ctx))),
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
        let progress = std::sync::Arc::new(JobProgress::default());
        let shared_progress = progress.clone();
        let spawned = std::thread::Builder::new().name("lrnn-studio-worker".into()).spawn(move || {
            let mut state = WorkerState { progress: shared_progress, ..WorkerState::default() };
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
            return Self { jobs, progress, replies: rx };
        }
        Self { jobs, progress, replies }
    }

    /// Queues a job.
    pub fn send(&self, job: Job) {
        let _ = self.jobs.send(job);
    }
}

/// Opens a checkpoint, run, packed or bare model folder ([`Checkpoint::open`]), or a weight file
/// of Long et al.'s FCNs.
fn load_model(path: &Path) -> anyhow::Result<Loaded> {
    let vgg = lrnn_core::io::vgg16::default_weights();
    if path == vgg && !path.exists() {
        // Model → VGG-16 (ImageNet): fetched and converted once, as `lrnn fetch vgg16` does.
        lrnn_core::io::vgg16::ensure_vgg16(&vgg)?;
    }
    if path.is_file() {
        // A published network's weight file (.pth, .caffemodel, safetensors), its kind recognised;
        // or VGG-16's convolutions alone, shown as the trunk of an FCN-32s (its head untrained).
        let model = lrnn_core::io::weights::open_published(path, &Device::Cpu)?;
        return Loaded::new(Checkpoint { model, dir: path.to_path_buf(), state: None, mean: None });
    }
    Loaded::new(Checkpoint::open(path, &Device::Cpu)?)
}

/// The model's input tensor for a photo ([`photo_input`]: the model's preprocessing, at its input
/// size) and the photo as the model sees it.
fn input_tensor(m: &Loaded, original: &RgbImage) -> anyhow::Result<(Tensor, RgbImage)> {
    let desc = m.model.desc();
    let input = photo_input(original, desc, desc.input_size(), m.mean.as_deref())?;
    Ok((input.tensor, input.seen))
}

fn analysis(
    m: &mut Loaded,
    p: &Photo,
    gpu: Option<&GpuContext>,
    crf: Option<&lrnn_core::crf::CrfParams>,
) -> anyhow::Result<Analysis> {
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
    if let Some(out) = &output {
        let bad = lrnn_core::io::non_finite(out)?;
        if bad > 0 {
            anyhow::bail!(
                "{}: the output holds {bad} NaN or infinite values on this photo (the weights overflow f32); \
                 the last good result stays on show",
                files::display_path(&m.dir)
            );
        }
    }
    let insertable = match m.model.desc() {
        ModelDesc::Convnet(cfg) => cfg
            .layers
            .iter()
            .filter_map(|l| match l {
                LayerSpec::Conv { name, .. } if cfg.inserted(name).is_none() => {
                    Some(InsertTarget::Conv(name.clone()))
                }
                _ => None,
            })
            .collect(),
        ModelDesc::Fcn(cfg) if !cfg.lrnn => vec![InsertTarget::FcnHeads],
        ModelDesc::FcnCaffe(cfg) if !cfg.lrnn => vec![InsertTarget::FcnHeads],
        _ => vec![],
    };
    let segmentation = match &output {
        Some(scores) if scores.rank() == 4 => segment(m, p, &x, scores, gpu, crf)?,
        _ => None,
    };
    Ok(Analysis {
        model: format!("{} ({})", m.model.desc().display_name(), files::display_path(&m.dir)),
        model_dir: m.dir.clone(),
        photo: p.path.clone(),
        photo_shown: files::display_path(&p.path),
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
        rf_table: lrnn_core::probe::rf_table::rf_table(m.model.graph()),
    })
}

/// Every recurrence matrix at the current scale, with its spectrum: from the cache (scaled), or
/// computed when small or when `all`; otherwise `None`.
fn recurrences(m: &mut Loaded, all: bool) -> anyhow::Result<Vec<RecurrenceInfo>> {
    use rayon::prelude::*;
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
            let spectrum = match m.spectra.get(&(name.clone(), gate)) {
                Some((s0, sp)) if *s0 == scale => Some(sp.clone()),
                Some((s0, sp)) if *s0 > 0.0 => Some(sp.scaled(scale / s0)),
                _ => None,
            };
            out.push(RecurrenceInfo { name: name.clone(), gate, size: d, values: block.to_vec(), spectrum });
        }
    }
    // The missing spectra (seconds each for a 1024-wide V) on every core.
    let missing: Vec<usize> = (0..out.len())
        .filter(|&i| out[i].spectrum.is_none() && (all || out[i].size <= EAGER_SPECTRUM))
        .collect();
    let computed: Vec<Spectrum> = missing.par_iter().map(|&i| analyse(&out[i].values, out[i].size)).collect();
    for (i, sp) in missing.into_iter().zip(computed) {
        m.spectra.insert((out[i].name.clone(), out[i].gate), (scale, sp.clone()));
        out[i].spectrum = Some(sp);
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
    Ok(ErfPicture { values: e.map, mass, centre: e.centre, on_gpu: false })
}

/// [`erf_of`] through the GPU's backward pass; `None` when it cannot.
fn erf_on_gpu(ctx: &GpuContext, gpu: &mut GpuModel, x: &Tensor, unit: &UnitRef) -> Option<ErfPicture> {
    let seed = GradientSeed { layer: &unit.map, channel: Some(unit.channel), y: unit.y, x: unit.x };
    let target = Unit { channel: unit.channel, y: unit.y, x: unit.x };
    let e = lrnn_core::probe::erf::erf_with(std::slice::from_ref(x), target, Mode::Abs, |input| {
        let (g, shape) =
            gpu.input_gradient(ctx, input, &seed).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok((g, shape.to_vec()))
    })
    .ok()?;
    let mass = e.mass_sides();
    Some(ErfPicture { values: e.map, mass, centre: e.centre, on_gpu: true })
}

fn need<'a, T>(what: &'a Option<T>, name: &str) -> anyhow::Result<&'a T> {
    what.as_ref().ok_or_else(|| anyhow::anyhow!("no {name} is loaded"))
}

/// A file job's answer.
fn file_job(job: &FileJob) -> anyhow::Result<Reply> {
    Ok(match job {
        FileJob::OpenFolder { dir, model } => {
            let photos = files::list_photos(dir).map_err(anyhow::Error::msg)?;
            if photos.is_empty() {
                anyhow::bail!("{}: no photos (png, jpg, jpeg, bmp) in this folder", dir.display());
            }
            let warning = files::voc_masks_missing(dir, &photos);
            Reply::Folder { dir: dir.clone(), photos, warning, model: model.clone() }
        }
        FileJob::Export { picture, csv, path } => {
            let (png, table) = files::write_export(picture, csv, path).map_err(anyhow::Error::msg)?;
            Reply::Written(format!("wrote {} and {}", png.display(), table.display()))
        }
        FileJob::SaveCheckpoint { from, dest } => {
            files::copy_checkpoint(from, dest).map_err(anyhow::Error::msg)?;
            Reply::Written(format!("saved the checkpoint to {}", dest.display()))
        }
    })
}

fn run_job(job: &Job, state: &mut WorkerState) -> anyhow::Result<Reply> {
    match job {
        Job::File(f) => file_job(f),
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
            let a = analysis(m, p, state.gpu.as_ref(), state.crf.as_ref())?;
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
            Ok(Reply::Loaded(Box::new(analysis(m, p, state.gpu.as_ref(), state.crf.as_ref())?)))
        }
        Job::Compute(on) => {
            state.gpu = match (*on, state.gpu.take()) {
                (false, _) => None,
                (true, Some(ctx)) => Some(ctx),
                (true, None) => Some(GpuContext::new()?),
            };
            let device = state.gpu.as_ref().map_or("CPU (candle)".to_string(), gpu_words);
            match (state.model.as_mut(), state.photo.as_ref()) {
                (Some(m), Some(p)) => {
                    // Everything is recomputed on the new device, the CNN's labels too; weights
                    // uploaded to an earlier device are not used on a new one.
                    m.photo_labels = None;
                    (m.gpu, m.gpu_cnn) = (None, None);
                    Ok(Reply::Loaded(Box::new(analysis(m, p, state.gpu.as_ref(), state.crf.as_ref())?)))
                }
                _ => Ok(Reply::Device(device)),
            }
        }
        Job::Crf(params) => {
            state.crf = *params;
            match (state.model.as_mut(), state.photo.as_ref()) {
                (Some(m), Some(p)) => {
                    Ok(Reply::Loaded(Box::new(analysis(m, p, state.gpu.as_ref(), state.crf.as_ref())?)))
                }
                _ => Ok(Reply::Written(format!(
                    "the dense CRF is {}",
                    if params.is_some() { "on" } else { "off" }
                ))),
            }
        }
        Job::Erf(unit) => {
            let p = need(&state.photo, "photo")?;
            let m = state.model.as_mut().ok_or_else(|| anyhow::anyhow!("no model is loaded"))?;
            let (x, _) = input_tensor(m, &p.original)?;
            let size = m.model.desc().input_size();
            // On the GPU when Compute → GPU and the model's operations have GPU gradients, else
            // (or when the GPU fails) on the CPU.
            let gpu = state.gpu.as_ref();
            let model_erf = match gpu.and_then(|ctx| m.model_erf_on_gpu(ctx, &x, unit)) {
                Some(e) => e,
                None => erf_of(&m.model, &x, unit)?,
            };
            let s = m.scale.scale();
            let cnn = if m.scale.is_empty() {
                None
            } else {
                match gpu.and_then(|ctx| m.cnn_erf_on_gpu(ctx, &x, unit)) {
                    Some(e) => Some(e),
                    None => Some(m.with_cnn(|model| erf_of(model, &x, unit))??),
                }
            };
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
        Job::Insert { target, axis, out } => {
            let m = need(&state.model, "model")?;
            let dir = if let InsertTarget::Conv(layer) = target {
                let ins = Insertion { layer: layer.clone(), axis: *axis, v_init: 0.0 };
                insert_into_checkpoint(&m.dir, &[ins], out)?
            } else {
                // An FCN: the pairs go into every head; written as a bare model folder.
                // Whole or not at all (a temporary folder renamed at the end).
                let fcn = m.model.with_lrnn_heads()?;
                lrnn_core::io::write_folder(out, |tmp| {
                    fcn.desc().save(&tmp.join("model.json"))?;
                    fcn.save_weights(&tmp.join("weights.safetensors"))
                })?;
                out.clone()
            };
            let mut nm = load_model(&dir)?;
            let a = analysis(&mut nm, need(&state.photo, "photo")?, state.gpu.as_ref(), state.crf.as_ref())?;
            state.model = Some(nm);
            Ok(Reply::Loaded(Box::new(a)))
        }
        Job::Spectra => {
            let m = state.model.as_mut().ok_or_else(|| anyhow::anyhow!("no model is loaded"))?;
            let spectra = recurrences(m, true)?.into_iter().filter_map(|r| r.spectrum).collect();
            Ok(Reply::Spectra { model_dir: m.dir.clone(), scale: m.scale.scale(), spectra })
        }
        Job::RfDepth(channel) => {
            use lrnn_core::probe::rf_depth::{rf_depth, rf_depth_on_gpu, Channels};
            let p = need(&state.photo, "photo")?;
            let m = need(&state.model, "model")?;
            let (x, _) = input_tensor(m, &p.original)?;
            let channels = channel.map_or(Channels::Mean, Channels::One);
            let progress = state.progress.clone();
            progress.start();
            let inputs = std::slice::from_ref(&x);
            let mut step = |d, t| progress.step(d, t);
            // Under Compute → GPU the backward passes run there (the CPU, saying why, when the
            // GPU cannot).
            let on_gpu = state.gpu.as_ref().map(|ctx| {
                rf_depth_on_gpu(ctx, &m.model, inputs, channels, &mut step).map(|d| (d, ctx.describe()))
            });
            let (data, device) = match on_gpu {
                Some(Ok((d, adapter))) => (Ok(d), format!("the GPU ({adapter})")),
                // (asked to stop: no CPU run after it)
                Some(Err(e)) if progress.stop.load(std::sync::atomic::Ordering::Relaxed) => {
                    (Err(e), String::new())
                }
                Some(Err(e)) => (
                    rf_depth(&m.model, inputs, channels, &mut step),
                    format!("the CPU (the GPU could not: {e})"),
                ),
                None => (rf_depth(&m.model, inputs, channels, &mut step), "the CPU".to_string()),
            };
            progress.finish();
            Ok(Reply::RfDepth {
                model_dir: m.dir.clone(),
                photo: p.path.clone(),
                scale: m.scale.scale(),
                channel: *channel,
                data: data?,
                device,
            })
        }
        Job::RecurrenceHistory(dir) => {
            use lrnn_core::probe::recurrence_history::{read_run, top_eigenvectors};
            let progress = state.progress.clone();
            progress.start();
            let history = read_run(dir, 60, &mut |d, t| progress.step(d, t));
            progress.finish();
            let history = history?;
            let eigenvectors = history
                .tracks
                .iter()
                .map(|t| {
                    let last = t.at.len().saturating_sub(1);
                    t.at.iter()
                        .enumerate()
                        .map(|(i, a)| {
                            if t.size <= crate::view_model::EAGER_SPECTRUM || i == last {
                                top_eigenvectors(&a.values, t.size, &a.spectrum, 3)
                            } else {
                                Vec::new()
                            }
                        })
                        .collect()
                })
                .collect();
            Ok(Reply::History { run: dir.clone(), history: Box::new(history), eigenvectors })
        }
        Job::Snapshot { checkpoint, step, unit } => {
            let p = need(&state.photo, "photo")?;
            let snap = load_model(checkpoint)?;
            let (x, _) = input_tensor(&snap, &p.original)?;
            // Under Compute → GPU the snapshot's weights go up once and its ERF runs there (the
            // CPU when an operation has no GPU gradient).
            let on_gpu = state.gpu.as_ref().and_then(|ctx| {
                let mut g = GpuModel::upload(ctx, &snap.model).ok()?;
                erf_on_gpu(ctx, &mut g, &x, unit)
            });
            let erf = match on_gpu {
                Some(e) => e,
                None => erf_of(&snap.model, &x, unit)?,
            };
            Ok(Reply::Snapshot { step: *step, unit: unit.clone(), erf })
        }
    }
}

/// The GPU in words for the header, with the advice for a software OpenGL adapter.
fn gpu_words(ctx: &GpuContext) -> String {
    match ctx.advice() {
        Some(advice) => format!("GPU: {} ({advice})", ctx.describe()),
        None => format!("GPU: {}", ctx.describe()),
    }
}

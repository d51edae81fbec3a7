//! The training loop shared by the CLI and the app: it runs on a named background thread and
//! reports through an event channel; a shared flag stops it after the current step.
//!
//! The same loop trains classifiers (cross-entropy per image, top-1 error) and segmentation
//! networks (cross-entropy per pixel with label 255 ignored, pixel error, mean IoU on validation).
//!
//! Order of events: `Started`, then per step `Step`, per epoch `Epoch` followed by `Checkpoint`,
//! and finally exactly one of `Finished`, `Stopped` or `Failed`.
//!
//! Reproducible and resumable: the order of the training images in epoch `e` and the random
//! numbers of step `s` (augmentation, dropout) are derived from the seed, `e` and `s`, so a run
//! resumed from a checkpoint continues exactly as the uninterrupted run would have.
//!
//! Checkpoints: each is a folder `step-NNNNNNNN/` inside the run's folder holding `model.json`,
//! `weights.safetensors`, `optimizer.safetensors` and `state.json`, every file written atomically,
//! and `latest.json` (written atomically last) names the newest complete one. A stopped or failed
//! run therefore always leaves the last good checkpoint; older ones are pruned.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use candle_core::{Device, Tensor};

use serde::{Deserialize, Serialize};

use super::checkpoint::{checkpoint_step, latest_checkpoint, load_checkpoint, save_checkpoint};
use super::optim::{Optimizer, OptimizerConfig};
use super::schedule::Schedule;
use super::seg;
use crate::data::augment::Augment;
use crate::data::{self, ImageSet, SegSplits, Splits};
use crate::error::{Error, Result};
use crate::io;
use crate::models::{Model, ModelDesc};
use crate::nn::Forward;
use crate::rng::Rng;

/// Where the training images come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSource {
    /// The format.
    pub format: data::Format,
    /// The dataset's folder (unused for the generated task).
    pub path: PathBuf,
    /// Parameters of the generated task (`None`: its defaults).
    #[serde(default)]
    pub context: Option<data::context::ContextTask>,
    /// Parameters of the generated scenes (`None`: their defaults; the side is `size`).
    #[serde(default)]
    pub scenes: Option<data::scenes::SceneTask>,
    /// Segmentation data: the side of the square network input every photo is resized and
    /// cropped to (`None`: 384 for VOC, the paper's; the scenes' own for scenes).
    #[serde(default)]
    pub size: Option<usize>,
}

impl DataSource {
    /// A source with no generator parameters: the format's defaults.
    pub fn new(format: data::Format, path: PathBuf) -> Self {
        Self { format, path, context: None, scenes: None, size: None }
    }

    /// The side of segmentation inputs.
    pub fn segmentation_size(&self) -> usize {
        self.size.unwrap_or(match self.format {
            data::Format::Scenes => self.scenes.unwrap_or_default().size,
            _ => 384,
        })
    }
}

/// Everything a training run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The network.
    pub model: ModelDesc,
    /// The data.
    pub data: DataSource,
    /// Epochs to train (in all, counting those of a resumed run).
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// The optimiser.
    pub optimizer: OptimizerConfig,
    /// The learning rate over time.
    pub schedule: Schedule,
    /// On-the-fly augmentation of training images (`None`: none).
    pub augment: Option<Augment>,
    /// Subtract the mean training image from every input (SPEC §5).
    pub subtract_mean: bool,
    /// Seed of the data order, augmentation and dropout.
    pub seed: u64,
    /// Use only the first this many training images (quick runs); `None`: all.
    pub max_train_images: Option<usize>,
    /// Use only the first this many validation images; `None`: all.
    pub max_val_images: Option<usize>,
    /// Stop after this many steps in all (tests and demos); `None`: train every epoch.
    pub max_steps: Option<usize>,
    /// The run's folder (checkpoints).
    pub out: PathBuf,
    /// Start a fresh run from this checkpoint's weights (a checkpoint or run folder) instead of
    /// from random ones: fine-tuning, e.g. after inserting L-RNNs. The optimiser starts afresh.
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    /// Train for this many seconds of wall time (validation included) instead of a number of
    /// epochs: the learning-rate schedule then runs over the budget as if it were `epochs` epochs
    /// long, and the run ends with a validation and a checkpoint when the budget is spent.
    #[serde(default)]
    pub time_budget_s: Option<f64>,
    /// Also write a checkpoint every this many steps (besides each epoch's end): the snapshots of
    /// a fine-tuning run that the app's timeline scrubs through. `None`: at epoch ends only.
    #[serde(default)]
    pub checkpoint_every: Option<usize>,
    /// Set a VGG-16 trunk from this file (`lrnn fetch vgg16`, torchvision's `.pth`, safetensors)
    /// before a fresh run starts; the rest of the network starts from the seed.
    #[serde(default)]
    pub init_trunk: Option<PathBuf>,
    /// Where the steps run (checkpoints are the same files on every device, so a run resumes
    /// on any other).
    #[serde(default)]
    pub device: TrainDevice,
}

/// Where a run's training steps run. Validation, checkpoints and the data stay on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainDevice {
    /// candle's CPU path.
    #[default]
    Cpu,
    /// candle's CUDA device 0 in a build with `--features cuda` when there is one; else a
    /// hardware GPU through wgpu when there is one and the model trains on it; else the CPU.
    Auto,
    /// wgpu on the best adapter, a software one too (falls back to the CPU, with the reason,
    /// when the model does not train on the GPU or the device fails to start).
    Wgpu,
    /// candle's CUDA device 0 (a build with `--features cuda`; else the CPU, with the reason).
    Cuda,
}

/// What the loop reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The run began (`resumed_at`: the global step it resumed from).
    Started {
        /// Where the steps run, for people ("CPU", "<adapter> through wgpu", "CPU (why not the
        /// GPU)").
        device: String,
        /// Steps per epoch.
        steps_per_epoch: usize,
        /// Trainable parameters.
        parameters: usize,
        /// The global step the run starts at (0 for a fresh run).
        resumed_at: usize,
    },
    /// One optimisation step finished.
    Step {
        /// Epoch (0-based).
        epoch: usize,
        /// Step within the epoch (0-based).
        step: usize,
        /// Mean loss of the batch.
        loss: f32,
        /// Top-1 error on the batch (training mode, augmented images; segmentation: the fraction
        /// of wrong pixels).
        error: f32,
        /// Learning rate used.
        lr: f64,
    },
    /// An epoch finished.
    Epoch(EpochStats),
    /// A checkpoint was written.
    Checkpoint(PathBuf),
    /// All epochs are done.
    Finished,
    /// The run stopped on request (after writing a checkpoint).
    Stopped,
    /// The run failed; the message says why and names the last good checkpoint.
    Failed(String),
}

/// The numbers of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f32,
    /// Training top-1 error (on the augmented batches, in training mode).
    pub train_error: f32,
    /// Validation top-1 error (segmentation: the fraction of wrong pixels).
    pub val_error: f32,
    /// Segmentation: mean IoU over the classes on validation.
    #[serde(default)]
    pub val_miou: Option<f32>,
    /// Wall time of the epoch in seconds (training and validation).
    pub seconds: f64,
    /// Training steps in the epoch (fewer than an epoch's when a time budget ended it).
    #[serde(default)]
    pub steps: usize,
}

/// The state saved with a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The configuration of the run.
    pub config: TrainConfig,
    /// Global steps done.
    pub global_step: usize,
    /// Epoch of the next step.
    pub epoch: usize,
    /// Step within that epoch of the next step.
    pub step_in_epoch: usize,
    /// Finished epochs' numbers (and, for a run with a time budget, the last partial epoch's).
    pub history: Vec<EpochStats>,
    /// Wall time spent training so far, over every resumed part of the run.
    #[serde(default)]
    pub trained_seconds: f64,
}

/// A running training job.
#[derive(Debug)]
pub struct TrainHandle {
    /// Events, in the documented order.
    pub events: Receiver<Event>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TrainHandle {
    /// Asks the loop to stop after its current step (it writes a checkpoint, then `Stopped`).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// The shared stop flag (e.g. for a Ctrl-C handler).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Waits for the thread to end.
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a run (or resumes the one in `config.out` when `resume`) on a thread named `lrnn-train`.
///
/// # Errors
/// [`Error::Io`] when the thread cannot be spawned.
pub fn spawn(config: TrainConfig, resume: bool) -> Result<TrainHandle> {
    let (tx, rx) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("lrnn-train".into())
        .spawn(move || {
            let result = run(&config, resume, &flag, &tx);
            let last = match result {
                Ok(RunEnd::Finished) => Event::Finished,
                Ok(RunEnd::Stopped) => Event::Stopped,
                Err(e) => Event::Failed(e.to_string()),
            };
            let _ = tx.send(last);
        })
        .map_err(|e| Error::io("<thread lrnn-train>", e))?;
    Ok(TrainHandle { events: rx, stop, thread: Some(thread) })
}

/// How a run ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Every epoch (or `max_steps`) done.
    Finished,
    /// Stopped on request.
    Stopped,
}

fn derive(seed: u64, a: u64, b: u64) -> Rng {
    let mut r = Rng(seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
    r.next_u64();
    r
}

/// The order of the training images in `epoch`.
fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    derive(seed, 1 + epoch as u64, 0).shuffle(&mut order);
    order
}

fn limit(set: &ImageSet, max: Option<usize>) -> ImageSet {
    match max {
        Some(m) if m < set.len() => set.slice(0..m),
        _ => set.clone(),
    }
}

/// Top-1 error of `model` on `set` (inference mode, batches of `batch`).
///
/// # Errors
/// Candle errors.
pub fn evaluate(model: &Model, set: &ImageSet, mean: Option<&[f32]>, batch: usize) -> Result<f32> {
    if set.is_empty() {
        return Ok(0.0);
    }
    let mut wrong = 0usize;
    let idx: Vec<usize> = (0..set.len()).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let (x, y) = set.batch(chunk, mean, None, model.device())?;
        let logits = model.forward(&x, &mut Forward::eval())?;
        let pred = logits.argmax(1)?.to_vec1::<u32>()?;
        let truth = y.to_vec1::<u32>()?;
        wrong += pred.iter().zip(&truth).filter(|(p, t)| p != t).count();
    }
    Ok(wrong as f32 / set.len() as f32)
}

/// Loads the data of a run, limited as configured.
///
/// # Errors
/// The reader's errors.
pub fn load_data(config: &TrainConfig) -> Result<Splits> {
    let mut splits = match (config.data.format, config.data.context) {
        (data::Format::Context, Some(task)) => data::context::generate(&task),
        (format, _) => data::load(format, &config.data.path)?,
    };
    splits.train = limit(&splits.train, config.max_train_images);
    splits.val = limit(&splits.val, config.max_val_images);
    Ok(splits)
}

/// The data of a run as the loop sees it: labelled images, or photos with per-pixel labels.
enum RunData {
    Classes { splits: Splits, mean: Option<Vec<f32>> },
    Pixels(SegSplits),
}

impl RunData {
    fn load(config: &TrainConfig) -> Result<Self> {
        let source = &config.data;
        if source.format.is_segmentation() {
            return Ok(RunData::Pixels(data::load_segmentation(
                source.format,
                &source.path,
                source.segmentation_size(),
                source.scenes,
                config.max_train_images,
                config.max_val_images,
            )?));
        }
        let splits = load_data(config)?;
        let mean = config.subtract_mean.then(|| splits.train.mean_image());
        Ok(RunData::Classes { splits, mean })
    }

    fn train_len(&self) -> usize {
        match self {
            RunData::Classes { splits, .. } => splits.train.len(),
            RunData::Pixels(s) => s.train.len(),
        }
    }

    fn mean(&self) -> Option<&[f32]> {
        match self {
            RunData::Classes { mean, .. } => mean.as_deref(),
            RunData::Pixels(_) => None,
        }
    }

    /// Training batch `idx`: inputs and labels (`[B]`, or `[B, H, W]` per pixel).
    fn batch(
        &self,
        idx: &[usize],
        aug: Option<(&Augment, &mut Rng)>,
        dev: &Device,
    ) -> Result<(Tensor, Tensor)> {
        Ok(match self {
            RunData::Classes { splits, mean } => splits.train.batch(idx, mean.as_deref(), aug, dev)?,
            RunData::Pixels(s) => s.train.batch(idx, aug.map(|(a, rng)| (a.flip, rng)), dev)?,
        })
    }

    fn loss(&self, logits: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok(match self {
            RunData::Classes { .. } => candle_nn::loss::cross_entropy(logits, y)?,
            RunData::Pixels(_) => seg::pixel_cross_entropy(logits, y)?,
        })
    }

    /// Wrong and counted predictions of a batch (images, or pixels not ignored).
    fn errors(&self, logits: &Tensor, y: &Tensor) -> Result<(usize, usize)> {
        Ok(match self {
            RunData::Classes { .. } => {
                let pred = logits.argmax(1)?.to_vec1::<u32>()?;
                let wrong = pred.iter().zip(y.to_vec1::<u32>()?).filter(|(p, t)| **p != *t).count();
                (wrong, pred.len())
            }
            RunData::Pixels(_) => seg::pixel_errors(logits, y)?,
        })
    }

    /// Validation error and, for segmentation, mean IoU.
    fn validate(&self, model: &Model, batch: usize) -> Result<(f32, Option<f32>)> {
        Ok(match self {
            RunData::Classes { splits, mean } => {
                (evaluate(model, &splits.val, mean.as_deref(), batch)?, None)
            }
            RunData::Pixels(s) => {
                let c = seg::evaluate_segmentation(model, &s.val, batch)?;
                let error = c.pixel_accuracy().map_or(0.0, |a| 1.0 - a as f32);
                (error, c.mean_iou().map(|m| m as f32))
            }
        })
    }
}

/// The training loop itself, on the calling thread.
///
/// # Errors
/// Bad data or model, a NaN loss (the message names the last good checkpoint), I/O errors.
pub fn run(config: &TrainConfig, resume: bool, stop: &AtomicBool, events: &Sender<Event>) -> Result<RunEnd> {
    let (dev, cuda_note) = candle_device(config.device);
    let data = RunData::load(config)?;
    check_data_fits(config, &data)?;
    std::fs::create_dir_all(&config.out).map_err(|e| Error::io(&config.out, e))?;
    let (model, mut opt, mut state) = if resume {
        restore(config, &dev)?
    } else {
        let model = match &config.init_from {
            Some(from) => {
                let dir = super::checkpoint::Checkpoint::resolve(from)?;
                Model::load(config.model.clone(), &dir.join("weights.safetensors"), &dev)?
            }
            None => {
                let model = Model::new_seeded(config.model.clone(), &dev, config.seed)?;
                if let Some(trunk) = &config.init_trunk {
                    io::vgg16::load_trunk(&model, trunk)?;
                }
                model
            }
        };
        let opt = Optimizer::new(config.optimizer, trainable(&model)?, config.schedule.lr(0.0))?;
        let state = RunState {
            config: config.clone(),
            global_step: 0,
            epoch: 0,
            step_in_epoch: 0,
            history: vec![],
            trained_seconds: 0.0,
        };
        (model, opt, state)
    };
    let mean = data.mean();
    let bs = config.batch_size.max(1);
    let steps_per_epoch = data.train_len().div_ceil(bs);
    let mut backend = match (&dev, cuda_note) {
        (Device::Cpu, note) => Backend::open(config.device, &model, &opt, note),
        (_, _) => Backend::Candle { device: "CUDA device 0 through candle".into() },
    };
    let _ = events.send(Event::Started {
        device: backend.describe(),
        steps_per_epoch,
        parameters: model.parameter_count()?,
        resumed_at: state.global_step,
    });
    let mut last_good: Option<PathBuf> = latest_checkpoint(&config.out)?;
    let budget = config.time_budget_s;
    let (clock, trained_before) = (Instant::now(), state.trained_seconds);
    let trained = || trained_before + clock.elapsed().as_secs_f64();
    while budget.is_some() || state.epoch < config.epochs {
        let epoch = state.epoch;
        let order = epoch_order(data.train_len(), config.seed, epoch);
        let started = Instant::now();
        let (mut loss_sum, mut seen, mut steps) = (0f64, 0usize, 0usize);
        let (mut wrong, mut counted) = (0usize, 0usize);
        // The epoch's numbers with a fresh validation (at its end, or where a time budget ends it).
        let close_epoch = |loss_sum: f64, seen: usize, (wrong, counted): (usize, usize), steps: usize| {
            let (val_error, val_miou) = data.validate(&model, bs)?;
            Ok::<_, Error>(EpochStats {
                epoch,
                train_loss: (loss_sum / seen.max(1) as f64) as f32,
                train_error: wrong as f32 / counted.max(1) as f32,
                val_error,
                val_miou,
                seconds: started.elapsed().as_secs_f64(),
                steps,
            })
        };
        while state.step_in_epoch < steps_per_epoch {
            let spent = budget.is_some_and(|b| trained() >= b);
            if spent
                || stop.load(Ordering::SeqCst)
                || config.max_steps.is_some_and(|m| state.global_step >= m)
            {
                backend.sync(&model, &mut opt)?;
                if spent && steps > 0 {
                    let stats = close_epoch(loss_sum, seen, (wrong, counted), steps)?;
                    state.history.push(stats.clone());
                    let _ = events.send(Event::Epoch(stats));
                }
                // A snapshot of this very step may already be on disk (`checkpoint_every`); a
                // spent time budget still writes one (its clock moved on).
                let already = last_good.as_deref().filter(|p| checkpoint_step(p) == Some(state.global_step));
                if already.is_none() || spent {
                    state.trained_seconds = trained();
                    let ckpt = save_checkpoint(&model, &opt, &state, mean)?;
                    let _ = events.send(Event::Checkpoint(ckpt));
                }
                return Ok(if stop.load(Ordering::SeqCst) { RunEnd::Stopped } else { RunEnd::Finished });
            }
            let s = state.step_in_epoch;
            let idx = &order[s * bs..((s + 1) * bs).min(order.len())];
            let progress = match budget {
                Some(b) => (trained() / b).min(1.0) * config.epochs as f64,
                None => epoch as f64 + s as f64 / steps_per_epoch as f64,
            };
            let lr = config.schedule.lr(progress);
            opt.set_learning_rate(lr);
            let mut rng = derive(config.seed, 1 + epoch as u64, 1 + s as u64);
            let aug = config.augment.as_ref().map(|a| (a, &mut rng));
            let (x, y) = data.batch(idx, aug, &dev)?;
            let dropout = derive(config.seed, 1 + epoch as u64, (1 << 32) + s as u64);
            let (loss_value, (wrong_here, counted_here)) = match &mut backend {
                Backend::Candle { .. } => {
                    let mut fwd = Forward::train().with_rng(dropout);
                    let logits = model.forward(&x, &mut fwd)?;
                    let loss = data.loss(&logits, &y)?;
                    let loss_value = loss.to_scalar::<f32>()?;
                    if loss_value.is_finite() {
                        let grads = loss.backward()?;
                        opt.step(&grads)?;
                    }
                    (loss_value, data.errors(&logits, &y)?)
                }
                Backend::Wgpu { ctx, trainer, dirty, .. } => {
                    let labels = y.flatten_all()?.to_vec1::<u32>()?;
                    let stats = trainer.step(ctx, &x, &labels, lr, dropout)?;
                    *dirty = true;
                    (stats.loss, (stats.wrong, stats.counted))
                }
            };
            if !loss_value.is_finite() {
                let where_ = last_good.as_ref().map_or("none yet".to_string(), |p| p.display().to_string());
                return Err(Error::file(
                    &config.out,
                    format!(
                        "the loss became {loss_value} at epoch {epoch}, step {s} (try a lower learning rate); \
                         last good checkpoint: {where_}"
                    ),
                ));
            }
            wrong += wrong_here;
            counted += counted_here;
            seen += idx.len();
            steps += 1;
            loss_sum += f64::from(loss_value) * idx.len() as f64;
            state.step_in_epoch += 1;
            state.global_step += 1;
            let error = wrong_here as f32 / counted_here.max(1) as f32;
            let _ = events.send(Event::Step { epoch, step: s, loss: loss_value, error, lr });
            let ends_epoch = state.step_in_epoch == steps_per_epoch;
            if !ends_epoch && config.checkpoint_every.is_some_and(|k| k > 0 && state.global_step % k == 0) {
                backend.sync(&model, &mut opt)?;
                state.trained_seconds = trained();
                let ckpt = save_checkpoint(&model, &opt, &state, mean)?;
                last_good = Some(ckpt.clone());
                let _ = events.send(Event::Checkpoint(ckpt));
            }
        }
        backend.sync(&model, &mut opt)?;
        let stats = close_epoch(loss_sum, seen, (wrong, counted), steps)?;
        state.history.push(stats.clone());
        state.epoch += 1;
        state.step_in_epoch = 0;
        state.trained_seconds = trained();
        let _ = events.send(Event::Epoch(stats));
        let ckpt = save_checkpoint(&model, &opt, &state, mean)?;
        last_good = Some(ckpt.clone());
        let _ = events.send(Event::Checkpoint(ckpt));
    }
    Ok(RunEnd::Finished)
}

/// candle's device for `device`: CUDA device 0 when asked (or `auto` in a CUDA build) and there
/// is one, else the CPU, with why not CUDA when it was asked for.
fn candle_device(device: TrainDevice) -> (Device, Option<String>) {
    let wants_cuda = device == TrainDevice::Cuda || (device == TrainDevice::Auto && cfg!(feature = "cuda"));
    if !wants_cuda {
        return (Device::Cpu, None);
    }
    match Device::new_cuda(0) {
        Ok(d) => (d, None),
        Err(e) => (
            Device::Cpu,
            Some(format!(
                "no CUDA device: {e} (CUDA needs a build with `--features cuda` on a machine with the CUDA toolkit)"
            )),
        ),
    }
}

/// Where the steps of a run go: candle (the CPU or CUDA), or wgpu with the weights and the
/// optimiser's state kept on the GPU between steps and brought back for validations and
/// checkpoints.
enum Backend {
    Candle {
        /// For people: where, and why not the GPU when one was asked for.
        device: String,
    },
    Wgpu {
        ctx: Box<crate::gpu::GpuContext>,
        trainer: Box<crate::gpu::GpuTrainer>,
        /// Whether the GPU holds steps the CPU model has not seen.
        dirty: bool,
        rule: super::optim::OptimizerConfig,
    },
}

impl Backend {
    /// wgpu when `device` asks for it (`auto`: a hardware adapter only) and the model trains
    /// there, else the CPU with the reason (`note`: why not CUDA, when it was asked for).
    fn open(device: TrainDevice, model: &Model, opt: &Optimizer, note: Option<String>) -> Self {
        let cpu = |why: Option<String>| Backend::Candle {
            device: why.map_or("CPU".into(), |w| format!("CPU ({w})")),
        };
        if matches!(device, TrainDevice::Cpu | TrainDevice::Cuda) {
            return cpu(note);
        }
        let opened = crate::gpu::GpuContext::new().and_then(|ctx| {
            if ctx.is_software() && device == TrainDevice::Auto {
                return Err(Error::Gpu(format!(
                    "the only GPU adapter is the software {}, slower than the CPU here; --device wgpu uses it",
                    ctx.describe()
                )));
            }
            let mut trainer = crate::gpu::GpuTrainer::upload(&ctx, model, opt.config().gpu_rule())?;
            let names: Vec<String> = model.trainable_vars()?.into_iter().map(|(n, _)| n).collect();
            let adam = matches!(opt.config(), super::optim::OptimizerConfig::Adam { .. });
            let mut state = std::collections::BTreeMap::new();
            for (name, s) in names.into_iter().zip(opt.state()) {
                let Some(s) = s else { continue };
                let pair = if adam { [Some(s.get(0)?), Some(s.get(1)?)] } else { [Some(s.clone()), None] };
                state.insert(name, pair);
            }
            trainer.set_state(&ctx, &state, opt.steps())?;
            Ok(Backend::Wgpu { ctx: Box::new(ctx), trainer: Box::new(trainer), dirty: false, rule: opt.config() })
        });
        match opened {
            Ok(b) => b,
            Err(e) => {
                let why = match note {
                    Some(n) => format!("{n}; {e}"),
                    None => e.to_string(),
                };
                cpu(Some(why))
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Backend::Candle { device } => device.clone(),
            Backend::Wgpu { ctx, .. } => format!("{} through wgpu", ctx.describe()),
        }
    }

    /// Brings the GPU's weights and optimiser state into `model` and `opt` (for a validation or a
    /// checkpoint); nothing to do on candle's devices.
    fn sync(&mut self, model: &Model, opt: &mut Optimizer) -> Result<()> {
        let Backend::Wgpu { ctx, trainer, dirty, rule } = self else { return Ok(()) };
        let adam = matches!(rule, super::optim::OptimizerConfig::Adam { .. });
        if !*dirty {
            return Ok(());
        }
        let weights = trainer.weights(ctx)?;
        let state = trainer.state(ctx)?;
        let mut restored = Vec::new();
        for (name, var) in model.trainable_vars()? {
            let w = weights.get(&name).ok_or_else(|| Error::Gpu(format!("the GPU holds no `{name}`")))?;
            var.set(w)?;
            restored.push(match state.get(&name) {
                Some([Some(m), Some(v)]) if adam => Some(Tensor::stack(&[m, v], 0)?),
                Some([Some(s), _]) => Some(s.clone()),
                _ => None,
            });
        }
        opt.restore_state(restored, trainer.steps()).map_err(Error::Gpu)?;
        // BatchNorm's running statistics, which the GPU's forward passes updated.
        let vars =
            model.varmap().data().lock().map_err(|_| Error::Gpu("model variables are poisoned".into()))?;
        for (name, t) in &weights {
            if crate::models::is_running_statistic(name) {
                let var = vars.get(name).ok_or_else(|| Error::Gpu(format!("the model has no `{name}`")))?;
                var.set(t)?;
            }
        }
        drop(vars);
        *dirty = false;
        Ok(())
    }
}

/// Checks that the data's images and labels fit the model.
fn check_data_fits(config: &TrainConfig, data: &RunData) -> Result<()> {
    let is_fcn = config.model.is_segmentation();
    let (train_len, data_classes) = match data {
        RunData::Pixels(_) if !is_fcn => {
            return Err(Error::Invalid(format!(
                "{} is a classifier; segmentation data needs an FCN (FCN-8s, FCN-8s-LRNN, …)",
                config.model.display_name()
            )));
        }
        RunData::Classes { .. } if is_fcn => {
            return Err(Error::Invalid(format!(
                "{} is a segmentation network: train it on segmentation data (`lrnn train-seg`)",
                config.model.display_name()
            )));
        }
        RunData::Pixels(s) => (s.train.len(), s.train.classes.len()),
        RunData::Classes { splits, .. } => (splits.train.len(), splits.train.classes.len()),
    };
    if train_len == 0 {
        return Err(Error::file(&config.data.path, "no training images"));
    }
    if let RunData::Classes { splits, .. } = data {
        if splits.train.shape.0 != config.model.in_channels() {
            return Err(Error::file(
                &config.data.path,
                format!(
                    "images have {} channels, the model expects {}",
                    splits.train.shape.0,
                    config.model.in_channels()
                ),
            ));
        }
    }
    if let Some(classes) = config.model.classes() {
        if data_classes > classes {
            return Err(Error::file(
                &config.data.path,
                format!("the data has {data_classes} classes, the model scores only {classes}"),
            ));
        }
    }
    Ok(())
}

pub(super) fn trainable(model: &Model) -> Result<Vec<candle_core::Var>> {
    Ok(model.trainable_vars()?.into_iter().map(|(_, v)| v).collect())
}

fn restore(config: &TrainConfig, dev: &Device) -> Result<(Model, Optimizer, RunState)> {
    let dir = latest_checkpoint(&config.out)?.ok_or_else(|| {
        Error::file(config.out.join("latest.json"), "missing: there is no run to resume here")
    })?;
    let (model, mut state) = load_checkpoint(&dir, dev)?;
    if state.config.model != config.model {
        return Err(Error::file(
            dir.join("model.json"),
            "the checkpoint's model differs from the requested one",
        ));
    }
    state.config = config.clone();
    let mut opt = Optimizer::new(config.optimizer, trainable(&model)?, config.schedule.lr(0.0))?;
    let opt_path = dir.join("optimizer.safetensors");
    let saved = io::read_tensors(&opt_path, dev)?;
    // Every optimiser here keeps a state per variable from its first step on (SGD a momentum
    // buffer, even at momentum 0): an empty file after steps is damage, not a fresh start.
    if saved.is_empty() && state.global_step > 0 && !model.trainable_vars()?.is_empty() {
        return Err(Error::file(
            &opt_path,
            format!(
                "holds no optimiser state although the run took {} steps: the file is damaged \
                 (start afresh with --init-from {} instead of --resume)",
                state.global_step,
                dir.display()
            ),
        ));
    }
    let restored: Vec<Option<Tensor>> =
        model.trainable_vars()?.iter().map(|(n, _)| saved.get(n).cloned()).collect();
    opt.restore_state(restored, state.global_step).map_err(|problem| Error::file(&opt_path, problem))?;
    Ok((model, opt, state))
}

//! `lrnn train` and `lrnn eval`: the library's training loop with progress bars, a line per
//! epoch, and Ctrl-C handled (the first stops after the current step and writes a checkpoint; a
//! second one exits at once).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{bail, Context};
use candle_core::Device;
use indicatif::{ProgressBar, ProgressStyle};
use lrnn_core::data;
use lrnn_core::models::ModelDesc;
use lrnn_core::train::trainer::evaluate;
use lrnn_core::train::Checkpoint;
use lrnn_core::train::{spawn, DataSource, Event, OptimizerConfig, Schedule, TrainConfig, TrainDevice};

/// Options of `lrnn train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// A built-in network's name (e.g. `E-RNN-Max`, `Context-CNN`) or a JSON model description;
    /// with --init-from, defaults to that checkpoint's model.
    #[arg(long)]
    model: Option<String>,
    /// `cifar10`, `fashion-mnist` or `context`.
    #[arg(long)]
    data: String,
    /// The dataset's folder (not needed for `context`).
    #[arg(long)]
    path: Option<PathBuf>,
    /// The run's folder (checkpoints).
    #[arg(long)]
    out: PathBuf,
    /// Epochs in all.
    #[arg(long, default_value_t = 10, value_parser = crate::args::count)]
    epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = 64, value_parser = crate::args::count)]
    batch: usize,
    /// `rmsprop` (the paper's), `sgd` (momentum 0.9) or `adam`.
    #[arg(long, default_value = "rmsprop")]
    optimizer: String,
    /// Learning rate at each restart.
    #[arg(long, default_value_t = 1e-3, value_parser = crate::args::positive)]
    lr_max: f64,
    /// Learning rate at the end of each period.
    #[arg(long, default_value_t = 1e-5, value_parser = crate::args::non_negative)]
    lr_min: f64,
    /// Epochs between restarts (the paper: 60 or 80; default: the whole run).
    #[arg(long, value_parser = crate::args::positive)]
    restart_every: Option<f64>,
    /// No flips, rotations or scaling (the context task never has them: a flip swaps its label).
    #[arg(long)]
    no_augment: bool,
    /// Start from this checkpoint's weights (a checkpoint or run folder): fine-tuning, e.g. after
    /// `lrnn insert`. The optimiser and the schedule start afresh.
    #[arg(long)]
    init_from: Option<PathBuf>,
    /// Train for this many minutes of wall time instead of --epochs epochs; the learning rate then
    /// falls over the budget as it would over --epochs epochs.
    #[arg(long, value_parser = crate::args::positive)]
    time_budget: Option<f64>,
    /// Also write a checkpoint every N steps and keep them all (a timeline of snapshots).
    #[arg(long, value_name = "N", value_parser = crate::args::count)]
    checkpoint_every: Option<usize>,
    /// Use only the first N training images.
    #[arg(long, value_parser = crate::args::count)]
    max_train: Option<usize>,
    /// Use only the first N validation images.
    #[arg(long, value_parser = crate::args::count)]
    max_val: Option<usize>,
    /// Seed of data order, augmentation and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue the run in `--out` from its last checkpoint (on any device: checkpoints are the
    /// same files).
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Where the steps run: `auto` takes candle's CUDA device in a `--features cuda` build when
    /// there is one, else a hardware GPU through wgpu when there is one and the network trains
    /// there, else the CPU; `wgpu` any adapter (a software one too); `cuda` candle's CUDA device;
    /// `cpu` the candle CPU path. The choice is printed; what cannot run on the GPU falls back to
    /// the CPU with the reason.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// Start afresh in a `--out` that already holds a run: its checkpoints are removed first
    /// (without it, such a folder is refused).
    #[arg(long)]
    overwrite: bool,
}

/// Where `lrnn train` and `lrnn train-seg` run their steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    /// CUDA (a `--features cuda` build), else a hardware GPU through wgpu, else the CPU.
    Auto,
    /// The candle CPU path.
    Cpu,
    /// wgpu on the best adapter, software ones included.
    Wgpu,
    /// candle's CUDA device 0 (a build with `--features cuda`).
    Cuda,
}

impl From<DeviceArg> for TrainDevice {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Auto => TrainDevice::Auto,
            DeviceArg::Cpu => TrainDevice::Cpu,
            DeviceArg::Wgpu => TrainDevice::Wgpu,
            DeviceArg::Cuda => TrainDevice::Cuda,
        }
    }
}

/// The data a command names: a format and, except for the generated task, a folder.
pub fn data_source(format: &str, path: Option<&Path>) -> anyhow::Result<DataSource> {
    let format = data::Format::parse(format).map_err(anyhow::Error::msg)?;
    let path = match (format, path) {
        (data::Format::Context, _) => PathBuf::new(),
        (_, Some(p)) => p.to_path_buf(),
        (_, None) => bail!("--path is needed for this dataset (its folder)"),
    };
    Ok(DataSource::new(format, path))
}

/// Runs `lrnn train`.
pub fn train(a: &TrainArgs) -> anyhow::Result<()> {
    let (mut model, named) = match (&a.model, &a.init_from) {
        (Some(m), _) => (ModelDesc::from_name_or_file(m)?, !m.ends_with(".json")),
        (None, Some(from)) => (Checkpoint::desc(from)?, false),
        (None, None) => bail!("--model is needed (or --init-from, to fine-tune a checkpoint's model)"),
    };
    if a.time_budget.is_some_and(|m| m.is_nan() || m <= 0.0) {
        bail!("--time-budget must be a positive number of minutes");
    }
    let data = data_source(&a.data, a.path.as_deref())?;
    // Grey datasets feed networks named on the command line with one input channel (and the
    // context task has two classes).
    if let ModelDesc::Cifar(cfg) = &mut model {
        if named {
            match data.format {
                data::Format::FashionMnist => cfg.in_channels = 1,
                data::Format::Context => (cfg.in_channels, cfg.classes) = (1, 2),
                data::Format::Cifar10 => {}
                data::Format::Voc | data::Format::Scenes => {
                    bail!("`{}` is segmentation data: train an FCN on it with `lrnn train-seg`", a.data)
                }
            }
        }
    }
    let optimizer = match a.optimizer.as_str() {
        "rmsprop" => OptimizerConfig::PAPER_RMSPROP,
        "sgd" => OptimizerConfig::Sgd { momentum: 0.9 },
        "adam" => OptimizerConfig::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
        other => bail!("unknown optimiser `{other}`; known: rmsprop, sgd, adam"),
    };
    let augment = if a.no_augment { None } else { data.format.label_preserving_augment() };
    let config = TrainConfig {
        model,
        data,
        epochs: a.epochs,
        batch_size: a.batch,
        optimizer,
        schedule: Schedule::Restarts {
            max: a.lr_max,
            min: a.lr_min,
            period_epochs: a.restart_every.unwrap_or(a.epochs.max(1) as f64),
        },
        augment,
        subtract_mean: true,
        seed: a.seed,
        max_train_images: a.max_train,
        max_val_images: a.max_val,
        max_steps: None,
        out: a.out.clone(),
        init_from: a.init_from.clone(),
        time_budget_s: a.time_budget.map(|m| m * 60.0),
        checkpoint_every: a.checkpoint_every,
        init_trunk: None,
        device: a.device.into(),
    };
    follow(config, a.resume, a.overwrite)
}

/// Makes sure a fresh run never writes over another silently: a `--out` folder that holds
/// anything is refused unless the run resumes or `overwrite` is given; then only what a run
/// writes (`latest.json` and its checkpoint folders) is removed, nothing else.
fn prepare_out(out: &Path, resume: bool, overwrite: bool) -> anyhow::Result<()> {
    if resume {
        return Ok(());
    }
    if out.exists() && !out.is_dir() {
        anyhow::bail!("{}: --out must be a folder, this is a file", out.display());
    }
    let Ok(entries) = std::fs::read_dir(out) else { return Ok(()) };
    let entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    if entries.is_empty() {
        return Ok(());
    }
    if !overwrite {
        anyhow::bail!(
            "{}: the folder is not empty{}: continue that run with --resume, replace it with --overwrite, \
             or choose another --out",
            out.display(),
            if out.join("latest.json").exists() { " (it holds a run)" } else { "" }
        );
    }
    for p in entries {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name == "latest.json" {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        } else if p.is_dir() && lrnn_core::train::checkpoint::checkpoint_step(&p).is_some() {
            std::fs::remove_dir_all(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    Ok(())
}

/// Runs a training configuration on the library's thread and reports its events: a progress bar
/// per epoch, a line per epoch and per checkpoint; Ctrl-C stops after the current step.
pub fn follow(config: TrainConfig, resume: bool, overwrite: bool) -> anyhow::Result<()> {
    prepare_out(&config.out, resume, overwrite)?;
    let has_budget = config.time_budget_s.is_some();
    let handle = spawn(config, resume)?;
    let stop = handle.stop_flag();
    ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::SeqCst) {
            eprintln!("\nlrnn: second Ctrl-C: exiting without a checkpoint of the current step");
            std::process::exit(130);
        }
        eprintln!("\nlrnn: stopping after this step (Ctrl-C again to exit at once)…");
    })
    .context("cannot install the Ctrl-C handler")?;
    let style =
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} steps, loss {msg} ({eta})")
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .progress_chars("=> ");
    let mut bar: Option<ProgressBar> = None;
    let mut steps = 0u64;
    let mut outcome = Ok(());
    for event in &handle.events {
        match event {
            Event::Started { steps_per_epoch, parameters, resumed_at, device } => {
                steps = steps_per_epoch as u64;
                println!("device: {device}");
                println!(
                    "{} parameters, {steps_per_epoch} steps per epoch, starting at step {resumed_at}",
                    parameters
                );
            }
            Event::Step { epoch, step, loss, lr, .. } => {
                let b = bar.get_or_insert_with(|| {
                    let b = ProgressBar::new(steps).with_style(style.clone());
                    b.set_prefix((epoch + 1).to_string());
                    b
                });
                b.set_position(step as u64 + 1);
                b.set_message(format!("{loss:.4}, lr {lr:.2e}"));
            }
            Event::Epoch(s) => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                let partial = match (s.steps < steps as usize, has_budget) {
                    (false, _) => String::new(),
                    (true, true) => format!(" (time budget spent after {} of {steps} steps)", s.steps),
                    // A resumed run finishing its epoch, or one stopped early.
                    (true, false) => {
                        format!(" ({} of the epoch's {steps} steps in this part of the run)", s.steps)
                    }
                };
                let miou =
                    s.val_miou.map_or(String::new(), |m| format!(", validation mean IoU {:.2}%", 100.0 * m));
                println!(
                    "epoch {:>3}: train loss {:.4}, train error {:.2}%, validation error {:.2}%{miou}, {:.1} s{partial}",
                    s.epoch + 1,
                    s.train_loss,
                    100.0 * s.train_error,
                    100.0 * s.val_error,
                    s.seconds
                );
            }
            Event::Checkpoint(p) => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                println!("checkpoint {}", p.display());
            }
            Event::Finished => println!("finished"),
            Event::Stopped => println!("stopped on request; resume with --resume"),
            Event::Failed(msg) => outcome = Err(anyhow::anyhow!(msg)),
        }
    }
    handle.join();
    outcome
}

/// Runs `lrnn eval`: top-1 error of a classifier checkpoint on a split, or the segmentation scores
/// of an FCN checkpoint; the data defaults to the checkpoint's own.
pub fn eval(
    run: &Path,
    data: Option<&str>,
    path: Option<&Path>,
    split: Option<&str>,
    batch: usize,
    crf: Option<&lrnn_core::crf::CrfParams>,
) -> anyhow::Result<()> {
    let ckpt = Checkpoint::open(run, &Device::Cpu)?;
    let what = ckpt.describe();
    let mean = ckpt.mean.clone();
    let (model, state) = ckpt.into_run()?;
    let source = match data {
        Some(d) => {
            let mut s = data_source(d, path)?;
            s.size = state.config.data.size;
            s.scenes = state.config.data.scenes;
            s
        }
        None => state.config.data.clone(),
    };
    println!("checkpoint {what}");
    if source.format.is_segmentation() {
        let split = split.unwrap_or("val");
        // Only the split scored is read from a VOC tree (generated scenes draw both splits
        // from one seed: the validation scenes stay those training held out).
        let (max_train, max_val) = match (source.format, split) {
            (data::Format::Voc, "train") => (None, Some(0)),
            (data::Format::Voc, _) => (Some(0), None),
            _ => (None, None),
        };
        let splits = data::load_segmentation(
            source.format,
            &source.path,
            source.segmentation_size(),
            source.scenes,
            max_train,
            max_val,
        )?;
        let set = match split {
            "train" => &splits.train,
            "val" | "validation" => &splits.val,
            other => bail!("unknown split `{other}` for segmentation data; known: train, val"),
        };
        println!("{split}: {} images of {}x{}", set.len(), set.size.1, set.size.0);
        let Some(params) = crf else {
            let confusion = lrnn_core::train::seg::evaluate_segmentation(&model, set, batch)?;
            crate::seg_cmd::print_scores(&confusion, &set.classes);
            return Ok(());
        };
        let bar = indicatif::ProgressBar::new(set.len() as u64);
        let scored = lrnn_core::train::seg::evaluate_segmentation_with_crf(
            &model,
            set,
            batch,
            params,
            &mut |done, _| {
                bar.set_position(done as u64);
                true
            },
        )?;
        bar.finish_and_clear();
        let Some((plain, refined)) = scored else { bail!("stopped") };
        println!("without the CRF:");
        crate::seg_cmd::print_scores(&plain, &set.classes);
        println!("with the CRF ({} updates):", params.iterations);
        crate::seg_cmd::print_scores(&refined, &set.classes);
        return Ok(());
    }
    if crf.is_some() {
        bail!("--crf refines segmentations; {what} is a classifier");
    }
    let split = split.unwrap_or("test");
    let splits = data::load(source.format, &source.path)?;
    let set = match split {
        "train" => &splits.train,
        "val" | "validation" => &splits.val,
        "test" => &splits.test,
        other => bail!("unknown split `{other}`; known: train, val, test"),
    };
    let error = evaluate(&model, set, mean.as_deref(), batch)?;
    println!("{split}: {} images, top-1 error {:.2}%", set.len(), 100.0 * error);
    Ok(())
}

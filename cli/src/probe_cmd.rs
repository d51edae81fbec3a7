//! `lrnn probe activations|erf|directions|recurrence`: every map of a forward pass, receptive
//! fields, per-direction contributions and recurrence spectra as PNG and CSV, for papers and slides.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use candle_core::{Device, Tensor};
use image::imageops::FilterType;
use lrnn_core::data::photo::{photo_input, read_photo};
use lrnn_core::io::write_atomic;
use lrnn_core::models::Model;
use lrnn_core::models::ModelDesc;
use lrnn_core::probe::contribution::{direction_contributions, is_recurrence};
use lrnn_core::probe::erf::{erf, Mode, Unit};
use lrnn_core::probe::recurrence::{analyse, gate_blocks};
use lrnn_core::probe::render::{csv, heatmap};
use lrnn_core::train::Checkpoint;

use crate::save_png;

/// Where `lrnn probe erf` computes its gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeDevice {
    /// A hardware GPU through wgpu when there is one, else the CPU.
    Auto,
    /// The candle CPU path.
    Cpu,
    /// wgpu on the best adapter, software ones included.
    Wgpu,
    /// candle's CUDA device 0 (a build with `--features cuda`): the CPU's autograd on the GPU.
    Cuda,
}

/// The ERF through wgpu: the unit (its map's centre unless given; `channel` `None`: the sum of
/// every channel at that place, as channel 0 of the summed map, one backward pass), the map and the adapter's
/// name; the reason when the GPU cannot (no adapter, only a software one for `auto`, an
/// operation without a GPU gradient, a device error).
fn gpu_erf(
    model: &Model,
    inputs: &[Tensor],
    map: &str,
    (channel, y, x): (Option<usize>, Option<usize>, Option<usize>),
    mode: Mode,
    any_adapter: bool,
) -> Result<(lrnn_core::probe::erf::Erf, Unit, String), String> {
    use lrnn_core::gpu::{Capture, GpuModel, GradientSeed};
    let ctx = crate::open_gpu(any_adapter)?;
    let mut gpu = GpuModel::upload(&ctx, model).map_err(|e| e.to_string())?;
    // The map's size, for the default unit: one forward pass reading back only that map.
    let names = [map];
    let out = gpu
        .forward(&ctx, &inputs[0], if map == "output" { Capture::Nothing } else { Capture::Only(&names) })
        .map_err(|e| e.to_string())?;
    let dims = match map {
        "output" => out.output.dims().to_vec(),
        _ => out
            .captured
            .iter()
            .find(|(n, _)| n == map)
            .map(|(_, t)| t.dims().to_vec())
            .ok_or_else(|| format!("the model has no map named {map}"))?,
    };
    let (mc, my, mx) = match dims.as_slice() {
        [_, c, h, w] => (*c, *h, *w),
        [_, c] => (*c, 1, 1),
        _ => (1, 1, 1),
    };
    let unit = Unit { channel: channel.unwrap_or(0), y: y.unwrap_or(my / 2), x: x.unwrap_or(mx / 2) };
    // The sum over the channels: one backward pass of their mean, times their number.
    let seed = GradientSeed { layer: map, channel, y: unit.y, x: unit.x };
    // (the GPU's own message kept whole, not wrapped in candle's)
    let mut failed = None;
    let e = lrnn_core::probe::erf::erf_with(inputs, unit, mode, |input| {
        match gpu.input_gradient(&ctx, input, &seed) {
            Ok((g, shape)) => {
                let mut shape = shape.to_vec();
                if channel.is_some() {
                    return Ok((g, shape));
                }
                shape[1] = 1;
                Ok(((g * mc as f64)?, shape))
            }
            Err(e) => {
                failed = Some(e.to_string());
                Err(candle_core::Error::Msg("the GPU failed".into()))
            }
        }
    });
    let e = e.map_err(|e| failed.take().unwrap_or_else(|| e.to_string()))?;
    Ok((e, unit, ctx.describe()))
}

/// The ERF through candle's autograd on the device `model` lives on (the CPU, or CUDA after
/// [`Model::to_device`]), the unit as in [`gpu_erf`].
fn candle_erf(
    model: &Model,
    inputs: &[Tensor],
    map: &str,
    (channel, y, x): (Option<usize>, Option<usize>, Option<usize>),
    mode: Mode,
) -> anyhow::Result<(lrnn_core::probe::erf::Erf, Unit)> {
    let pick = |t: &Tensor, f: &mut lrnn_core::nn::Forward| -> candle_core::Result<Tensor> {
        let m = model.forward_map(t, map, f.backend).map_err(candle_core::Error::wrap)?;
        match channel {
            Some(_) => Ok(m),
            None => m.sum_keepdim(1),
        }
    };
    let dims = pick(&inputs[0], &mut lrnn_core::nn::Forward::eval())?.dims().to_vec();
    let (mh, mw) = match dims.as_slice() {
        [_, _, h, w] => (*h, *w),
        _ => (1, 1),
    };
    let unit = Unit { channel: channel.unwrap_or(0), y: y.unwrap_or(mh / 2), x: x.unwrap_or(mw / 2) };
    Ok((erf(pick, inputs, unit, mode)?, unit))
}

/// `model` and `inputs` copied to candle's CUDA device 0, or why not (no device, a build
/// without `--features cuda`, no memory).
fn on_cuda(model: &Model, inputs: &[Tensor]) -> Result<(Model, Vec<Tensor>), String> {
    let dev = Device::new_cuda(0).map_err(|e| {
        format!("no CUDA device: {e} (CUDA needs a build with `--features cuda` on a machine with the CUDA toolkit)")
    })?;
    let on = model.to_device(&dev).map_err(|e| e.to_string())?;
    let moved = inputs
        .iter()
        .map(|t| t.to_device(&dev))
        .collect::<candle_core::Result<_>>()
        .map_err(|e| e.to_string())?;
    Ok((on, moved))
}

/// A GPU a probe's gradients may run on.
#[derive(Debug, Clone, Copy)]
enum Gpu {
    /// candle's CUDA device 0 (the model and inputs copied there).
    Cuda,
    /// wgpu on the best adapter (a software one only with `any_adapter`).
    Wgpu { any_adapter: bool },
}

/// `job` on the GPUs `device` asks for, with the fall-backs of `lrnn run`: `cuda` CUDA, `wgpu`
/// any adapter, `auto` CUDA in a `--features cuda` build, then a hardware GPU through wgpu. The
/// result (with where it ran), or why the CPU must do it (`None`: the CPU was asked for).
fn on_gpu<T>(
    device: ProbeDevice,
    mut job: impl FnMut(Gpu) -> Result<T, String>,
) -> Result<T, Option<String>> {
    match device {
        ProbeDevice::Cpu => Err(None),
        ProbeDevice::Cuda => job(Gpu::Cuda).map_err(Some),
        ProbeDevice::Wgpu => job(Gpu::Wgpu { any_adapter: true }).map_err(Some),
        ProbeDevice::Auto if cfg!(feature = "cuda") => job(Gpu::Cuda)
            .or_else(|c| job(Gpu::Wgpu { any_adapter: false }).map_err(|w| format!("{c}; {w}")))
            .map_err(Some),
        ProbeDevice::Auto => job(Gpu::Wgpu { any_adapter: false }).map_err(Some),
    }
}

/// The `device:` line of a fall-back to the CPU: `CPU`, or `CPU (why)`.
fn on_cpu(why: Option<String>) -> String {
    why.map_or_else(|| "CPU".to_string(), |w| format!("CPU ({w})"))
}

/// The ERF on `device` ([`on_gpu`]'s choices; the CPU when no GPU can), and where it ran, for
/// the `device:` line.
fn erf_on(
    device: ProbeDevice,
    model: &Model,
    inputs: &[Tensor],
    map: &str,
    unit: (Option<usize>, Option<usize>, Option<usize>),
    mode: Mode,
) -> anyhow::Result<(lrnn_core::probe::erf::Erf, Unit, String)> {
    let tried = on_gpu(device, |gpu| match gpu {
        Gpu::Cuda => {
            let (on, moved) = on_cuda(model, inputs)?;
            let (e, u) = candle_erf(&on, &moved, map, unit, mode).map_err(|e| format!("CUDA failed: {e}"))?;
            Ok((e, u, "CUDA device 0 through candle".into()))
        }
        Gpu::Wgpu { any_adapter } => gpu_erf(model, inputs, map, unit, mode, any_adapter)
            .map(|(e, u, adapter)| (e, u, format!("{adapter} through wgpu"))),
    });
    match tried {
        Ok(done) => Ok(done),
        Err(why) => {
            let (e, u) = candle_erf(model, inputs, map, unit, mode)?;
            Ok((e, u, on_cpu(why)))
        }
    }
}

/// Which model to probe.
#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// A training run folder (its latest checkpoint) or a checkpoint folder.
    #[arg(long)]
    run: Option<PathBuf>,
    /// A CIFAR network name or a JSON description (with --weights, or untrained from --seed).
    #[arg(long)]
    model: Option<String>,
    /// Weights for --model (safetensors, or a PyTorch .pth / Caffe .caffemodel).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Seed of the initialisation when no weights are given, and of the random inputs (the
    /// same seed draws the same inputs: a probe repeats bit for bit).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// The `i`-th random input of a probe: normal with deviation 0.5, drawn from `seed`.
fn random_input(seed: u64, i: u64, c: usize, size: usize) -> candle_core::Result<Tensor> {
    let mut rng = lrnn_core::rng::Rng(seed ^ 0x7072_6f62_6500_0000 ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let values: Vec<f32> = (0..c * size * size).map(|_| 0.5 * rng.normal()).collect();
    Tensor::from_vec(values, (1, c, size, size), &Device::Cpu)
}

/// `lrnn probe` commands.
#[derive(Debug, clap::Subcommand)]
pub enum Probe {
    /// Every map of one forward pass (each layer's output and each scan direction's hidden
    /// states): a channel-grid PNG with a colour bar and a CSV per map, and layers.csv.
    Activations {
        #[command(flatten)]
        model: ModelArgs,
        /// The input image (resized to --size); default: one random input.
        #[arg(long)]
        image: Option<PathBuf>,
        /// Input side in pixels (default: the model's).
        #[arg(long, value_parser = crate::args::side)]
        size: Option<usize>,
        /// Channels per map in the PNG grids (the CSVs hold them all).
        #[arg(long, default_value_t = 16, value_parser = crate::args::channels)]
        max_channels: usize,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Effective receptive field of one unit: erf.png (colour bar), erf.csv, mass numbers.
    Erf {
        #[command(flatten)]
        model: ModelArgs,
        /// Images to average over (resized to --size); default: --random inputs.
        #[arg(long)]
        image: Vec<PathBuf>,
        /// Number of random inputs when no image is given.
        #[arg(long, default_value_t = 8, value_parser = crate::args::count)]
        random: usize,
        /// Input side in pixels (default: the model's, 32 for the CIFAR networks).
        #[arg(long, value_parser = crate::args::side)]
        size: Option<usize>,
        /// The map holding the unit: `output` or a captured name (`stage3.0`, `stage2.0.lrnn.lr`, …).
        #[arg(long, default_value = "output")]
        map: String,
        /// Channel (or class) of the unit.
        #[arg(long, default_value_t = 0)]
        channel: usize,
        /// Row of the unit in its map (default: the centre).
        #[arg(long)]
        y: Option<usize>,
        /// Column of the unit in its map (default: the centre).
        #[arg(long)]
        x: Option<usize>,
        /// `abs`, `signed` or `relu`.
        #[arg(long, default_value = "abs")]
        mode: String,
        /// Where the gradients are computed: `auto` (candle's CUDA device in a `--features cuda`
        /// build, else a hardware GPU through wgpu when there is one, else the CPU, saying why),
        /// `wgpu` (any adapter, software ones included), `cuda` (candle's CUDA device 0) or
        /// `cpu`; a GPU that cannot falls back to the CPU, saying why.
        #[arg(long, value_enum, default_value_t = ProbeDevice::Auto)]
        device: ProbeDevice,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Effective receptive fields of several models side by side over a photo, with the
    /// theoretical receptive field outlined (e.g. a CNN and the same CNN after L-RNN fine-tuning).
    ErfCompare {
        /// The models: run or checkpoint folders, in the order shown (repeat the option).
        #[arg(long = "run", required = true)]
        runs: Vec<PathBuf>,
        /// Photos to average the ERF over (resized to the first model's input size); the first is
        /// the background.
        #[arg(long = "image", required = true)]
        images: Vec<PathBuf>,
        /// The map holding the unit (`conv6`, `stage3.0`, …; default `output`).
        #[arg(long, default_value = "output")]
        map: String,
        /// Channel of the unit (default: the sum over every channel).
        #[arg(long)]
        channel: Option<usize>,
        /// Row of the unit in its map (default: the centre).
        #[arg(long)]
        y: Option<usize>,
        /// Column of the unit in its map (default: the centre).
        #[arg(long)]
        x: Option<usize>,
        /// The PNG to write (a CSV of the mass numbers is written beside it).
        #[arg(long)]
        out: PathBuf,
        /// Where the gradients are computed (as `probe erf --device`).
        #[arg(long, value_enum, default_value_t = ProbeDevice::Auto)]
        device: ProbeDevice,
    },
    /// How much a map changes when each direction's recurrence is switched off (V = 0).
    Directions {
        #[command(flatten)]
        model: ModelArgs,
        /// The input image (resized to --size); default: one random input.
        #[arg(long)]
        image: Option<PathBuf>,
        /// Input side in pixels (default: the model's).
        #[arg(long, value_parser = crate::args::side)]
        size: Option<usize>,
        /// `output` or a captured map.
        #[arg(long, default_value = "output")]
        map: String,
        /// Where to write directions.csv (optional).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The receptive-field arithmetic of every layer (Araujo et al., Distill 2019): kernel,
    /// stride, padding, effective stride, field size and the centre of the first unit's field,
    /// from the architecture alone; "the whole row" / "the whole image" after L-RNN pairs.
    RfTable {
        /// A built-in network's name or a JSON model description (`FCN-8s-Caffe`, `E-RNN-Max`, …).
        #[arg(long)]
        model: String,
        /// Also write the table as CSV here.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Receptive field against depth: for every layer, the theoretical field's side and the
    /// sides of the centred squares holding 50% and 99% of the centre unit's effective field,
    /// for the model and for its CNN (every V at zero): rf_depth.csv and rf_depth.png.
    RfDepth {
        #[command(flatten)]
        model: ModelArgs,
        /// Photos to average over (resized to --size); default: --random inputs.
        #[arg(long)]
        image: Vec<PathBuf>,
        /// Number of random inputs when no image is given.
        #[arg(long, default_value_t = 4, value_parser = crate::args::count)]
        random: usize,
        /// Input side in pixels (default: the model's).
        #[arg(long, value_parser = crate::args::side)]
        size: Option<usize>,
        /// One channel's centre unit (layers with fewer channels are left out); default: the
        /// mean over every channel.
        #[arg(long)]
        channel: Option<usize>,
        /// Where the gradients are computed (as `probe erf --device`; on wgpu the mean over
        /// channels is one backward pass per layer).
        #[arg(long, value_enum, default_value_t = ProbeDevice::Auto)]
        device: ProbeDevice,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Recurrences over training: for a run folder with snapshots (`lrnn train
    /// --checkpoint-every N`, the app's fine-tuning runs), each matrix's spectral radius, memory
    /// length and change from the start against the step, every eigenvalue at every snapshot,
    /// how different the two directions of each pair are, the top eigenvectors at the end:
    /// history.csv, eigenvalues.csv, pairs.csv, eigenvectors.csv, spectral_radius.png.
    RecurrenceHistory {
        /// The run folder (its `step-NNNNNNNN/` snapshots and the model it started from).
        #[arg(long)]
        run: PathBuf,
        /// At most this many snapshots, evenly spread (the first and last kept).
        #[arg(long, default_value_t = 50, value_parser = crate::args::count)]
        max_snapshots: usize,
        /// Eigenvectors per matrix in eigenvectors.csv (the largest eigenvalues).
        #[arg(long, default_value_t = 3, value_parser = crate::args::count)]
        eigenvectors: usize,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Every recurrence matrix: heatmaps, eigenvalues, singular values, spectral radius, memory.
    Recurrence {
        #[command(flatten)]
        model: ModelArgs,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
}

/// The model, a description of it, and the mean image its inputs are centred with (a trained
/// checkpoint's; `None`: pixels are centred at 0.5).
fn load(m: &ModelArgs) -> anyhow::Result<(Model, String, Option<Vec<f32>>)> {
    if let Some(run) = &m.run {
        let ckpt = Checkpoint::open(run, &Device::Cpu)?;
        let what = ckpt.describe();
        return Ok((ckpt.model, what, ckpt.mean));
    }
    let Some(name) = &m.model else { bail!("give --run, or --model (with --weights)") };
    let desc = ModelDesc::from_name_or_file(name)?;
    Ok(match &m.weights {
        Some(w) => (Model::load(desc, w, &Device::Cpu)?, format!("{name} with {}", w.display()), None),
        None => {
            let model = Model::new_seeded(desc, &Device::Cpu, m.seed)?;
            (model, format!("{name}, untrained (seed {})", m.seed), None)
        }
    })
}

/// A photo as `model`'s input at `size x size` ([`photo_input`]: the model's own preprocessing,
/// VGG-16's for an FCN).
fn load_image(path: &Path, model: &Model, size: usize, mean: Option<&[f32]>) -> anyhow::Result<Tensor> {
    Ok(photo_input(&read_photo(path)?, model.desc(), size, mean)?.tensor)
}

/// A photo in grey at `size x size`, values in `[0, 1]`: the background of ERF pictures.
fn grey_background(path: &Path, size: usize) -> anyhow::Result<Vec<f32>> {
    let side = u32::try_from(size)?;
    let photo = image::imageops::resize(&read_photo(path)?, side, side, FilterType::Triangle);
    let grey = image::DynamicImage::ImageRgb8(photo).to_luma8();
    Ok(grey.pixels().map(|p| f32::from(p[0]) / 255.0).collect())
}

/// Runs a probe command.
pub fn probe(cmd: &Probe) -> anyhow::Result<()> {
    match cmd {
        Probe::RfTable { model, csv } => rf_table(model, csv.as_deref())?,
        Probe::Activations { model, image, size, max_channels, out } => {
            let seed = model.seed;
            let (model, what, mean) = load(model)?;
            let c = model.desc().in_channels();
            let size = size.unwrap_or_else(|| model.desc().input_size());
            let x = match image {
                Some(p) => load_image(p, &model, size, mean.as_deref())?,
                None => random_input(seed, 0, c, size)?,
            };
            write_activations(&model, &x, *max_channels, out)?;
            println!("({what}, {size}x{size} input)");
        }
        Probe::Erf { model, image, random, size, map, channel, y, x, mode, device, out } => {
            let seed = model.seed;
            let (model, what, mean) = load(model)?;
            let c = model.desc().in_channels();
            let size = &size.unwrap_or_else(|| model.desc().input_size());
            let inputs: Vec<Tensor> = if image.is_empty() {
                (0..*random as u64)
                    .map(|i| random_input(seed, i, c, *size))
                    .collect::<candle_core::Result<_>>()?
            } else {
                image
                    .iter()
                    .map(|p| load_image(p, &model, *size, mean.as_deref()))
                    .collect::<anyhow::Result<_>>()?
            };
            if inputs.is_empty() {
                bail!("no input: give --image PHOTO, or --random N with N at least 1");
            }
            let mode = match mode.as_str() {
                "abs" => Mode::Abs,
                "signed" => Mode::Signed,
                "relu" => Mode::Relu,
                other => bail!("unknown mode `{other}`; known: abs, signed, relu"),
            };
            let (e, unit, on) = erf_on(*device, &model, &inputs, map, (Some(*channel), *y, *x), mode)?;
            println!("device: {on}");
            std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
            let scale = (256 / e.width.max(1)).max(1) as u32;
            save_png(&heatmap(&e.map, e.height, e.width, mode == Mode::Signed, scale), &out.join("erf.png"))?;
            write_atomic(&out.join("erf.csv"), csv(&e.map, e.width).as_bytes())?;
            let sides = e.mass_sides().map(|s| s.map_or("-".to_string(), |v| v.to_string()));
            println!(
                "ERF of {map}[{}, {}, {}] of {what}, over {} input(s), {mode:?}",
                unit.channel,
                unit.y,
                unit.x,
                inputs.len()
            );
            if e.map.iter().all(|&v| v == 0.0) {
                println!(
                    "the unit does not respond to this input: its gradient is zero at every pixel (its \
                     ReLU is off), so it has no effective receptive field here; try another unit, \
                     channel or photo"
                );
            } else {
                println!(
                    "centred square holding 20% / 50% / 99% of the mass: {} / {} / {} px",
                    sides[0], sides[1], sides[2]
                );
            }
            println!("wrote {} and {}", out.join("erf.png").display(), out.join("erf.csv").display());
        }
        Probe::RfDepth { model, image, random, size, channel, device, out } => {
            rf_depth(model, image, (*random, *size, *channel), *device, out)?;
        }
        Probe::RecurrenceHistory { run, max_snapshots, eigenvectors, out } => {
            recurrence_history(run, *max_snapshots, *eigenvectors, out)?;
        }
        Probe::ErfCompare { runs, images, map, channel, y, x, out, device } => {
            erf_compare(runs, images, map, *channel, (*y, *x), out, *device)?;
        }
        Probe::Directions { model, image, size, map, out } => {
            let seed = model.seed;
            let (model, what, mean) = load(model)?;
            let c = model.desc().in_channels();
            let size = &size.unwrap_or_else(|| model.desc().input_size());
            let x = match image {
                Some(p) => load_image(p, &model, *size, mean.as_deref())?,
                None => random_input(seed, 0, c, *size)?,
            };
            let effects = direction_contributions(&model, &x, map)?;
            if effects.is_empty() {
                bail!("the model has no recurrence matrix");
            }
            println!("change of `{map}` when one recurrence is switched off ({what}):");
            let mut table = String::from("recurrence,relative_change\n");
            for e in &effects {
                println!("  {:<32} {:>8.4}%", e.name, 100.0 * e.relative_change);
                table.push_str(&format!("{},{}\n", e.name, e.relative_change));
            }
            if let Some(out) = out {
                std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
                write_atomic(&out.join("directions.csv"), table.as_bytes())?;
                println!("wrote {}", out.join("directions.csv").display());
            }
        }
        Probe::Recurrence { model, out } => {
            let (model, what, _) = load(model)?;
            std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
            let mut summary =
                String::from("matrix,gate,size,spectral_radius,memory_length,largest_singular_value\n");
            let mut eig = String::from("matrix,gate,re,im\n");
            println!("recurrences of {what}");
            let mut found = 0;
            for (name, t) in model.weights()? {
                if !is_recurrence(&name) || t.rank() != 2 {
                    continue;
                }
                found += 1;
                let (rows, d) = t.dims2()?;
                let values: Vec<f32> = t.flatten_all()?.to_vec1()?;
                save_png(
                    &heatmap(&values, rows, d, true, (256 / d.max(1)).max(1) as u32),
                    &out.join(format!("{name}.png")),
                )?;
                for (gate, block) in gate_blocks(&values, rows, d) {
                    let sp = analyse(block, d);
                    let mem = sp.memory_length.map_or("inf".to_string(), |m| format!("{m:.3}"));
                    summary.push_str(&format!(
                        "{name},{gate},{d},{:.6},{mem},{:.6}\n",
                        sp.spectral_radius,
                        sp.singular_values.first().copied().unwrap_or(0.0)
                    ));
                    for (re, im) in &sp.eigenvalues {
                        eig.push_str(&format!("{name},{gate},{re},{im}\n"));
                    }
                    println!(
                        "  {name:<28} {gate}  spectral radius {:.4}, memory {mem} steps",
                        sp.spectral_radius
                    );
                }
            }
            if found == 0 {
                bail!("the model has no recurrence matrix");
            }
            write_atomic(&out.join("recurrence.csv"), summary.as_bytes())?;
            write_atomic(&out.join("eigenvalues.csv"), eig.as_bytes())?;
            println!("wrote {found} heatmaps, recurrence.csv and eigenvalues.csv to {}", out.display());
        }
    }
    Ok(())
}

/// Writes `<map>.png` (channel grid, colour bar) and `<map>.csv` (`channel,y,x,value`) for every
/// map of one forward pass, and `layers.csv`; prints the layer list.
fn write_activations(model: &Model, x: &Tensor, max_channels: usize, out: &Path) -> anyhow::Result<()> {
    use lrnn_core::models::capture::MapKind;
    use lrnn_core::probe::activations::{activations, channel_grid};
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let maps = activations(model, x, lrnn_core::nn::ScanBackend::Auto)?;
    let mut table = String::from("name,kind,channels,height,width,min,max,mean\n");
    println!("{:<28} {:<10} {:>16} {:>10} {:>10}", "map", "kind", "shape (C,H,W)", "min", "max");
    for a in &maps {
        let t = a.tensor.get(0)?; // the first image
        let (c, h, w) = match t.dims() {
            [c, h, w] => (*c, *h, *w),
            [c] => (*c, 1, 1),
            other => bail!("map {} has an unexpected shape {other:?}", a.name),
        };
        let values: Vec<f32> = t.flatten_all()?.to_vec1()?;
        let (lo, hi) =
            values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len().max(1) as f64;
        let kind = match a.kind {
            MapKind::Layer => "layer",
            MapKind::Direction => "direction",
            MapKind::Output => "output",
        };
        println!("{:<28} {kind:<10} {:>16} {lo:>10.4} {hi:>10.4}", a.name, format!("{c},{h},{w}"));
        table.push_str(&format!("{},{kind},{c},{h},{w},{lo},{hi},{mean}\n", a.name));
        let shown = c.min(max_channels.max(1));
        let cols = (shown as f64).sqrt().ceil() as usize;
        let (grid, gh, gw) = channel_grid(&values[..shown * h * w], (shown, h, w), cols);
        let scale = (512 / gw.max(gh).max(1)).clamp(1, 16) as u32;
        save_png(&heatmap(&grid, gh, gw, false, scale), &out.join(format!("{}.png", a.name)))?;
        let mut rows = String::from("channel,y,x,value\n");
        for (i, v) in values.iter().enumerate() {
            rows.push_str(&format!("{},{},{},{v}\n", i / (h * w), (i / w) % h, i % w));
        }
        write_atomic(&out.join(format!("{}.csv", a.name)), rows.as_bytes())?;
    }
    write_atomic(&out.join("layers.csv"), table.as_bytes())?;
    println!("wrote {} maps (PNG + CSV) and layers.csv to {}", maps.len(), out.display());
    Ok(())
}

/// `lrnn probe erf-compare`.
fn erf_compare(
    runs: &[PathBuf],
    images: &[PathBuf],
    map: &str,
    channel: Option<usize>,
    (uy, ux): (Option<usize>, Option<usize>),
    out: &Path,
    device: ProbeDevice,
) -> anyhow::Result<()> {
    use lrnn_core::probe::render::{erf_overlay, outline, side_by_side};
    use lrnn_core::probe::rf::receptive_field;
    let mut panels = Vec::new();
    let mut table =
        String::from("run,map,unit_y,unit_x,side_20,side_50,side_99,theoretical_height,theoretical_width\n");
    let mut size = None;
    for run in runs {
        let (model, what, mean) =
            load(&ModelArgs { run: Some(run.clone()), model: None, weights: None, seed: 0 })?;
        let n = *size.get_or_insert(model.desc().input_size());
        let inputs: Vec<Tensor> = images
            .iter()
            .map(|p| load_image(p, &model, n, mean.as_deref()))
            .collect::<anyhow::Result<_>>()?;
        let (e, unit, on) = erf_on(device, &model, &inputs, map, (channel, uy, ux), Mode::Abs)?;
        println!("{what}: device: {on}");
        // The background: the first photo in grey, without the mean subtracted.
        let background = grey_background(&images[0], n)?;
        let scale = (384 / n.max(1)).max(1) as u32;
        let mut panel = erf_overlay(&background, &e.map, n, n, scale);
        let rf = model.desc().geometry(map).map(|g| receptive_field(&g));
        if let Some(rf) = rf {
            let (rows, cols) = rf.span(e.centre, (n, n));
            outline(&mut panel, rows, cols, scale, [255, 255, 255]);
        }
        panels.push(panel);
        let sides = e.mass_sides().map(|s| s.map_or("-".to_string(), |v| v.to_string()));
        let theo = |v: Option<(Option<usize>, bool, bool)>| match v {
            Some((Some(r), false, false)) => r.to_string(),
            Some((Some(r), true, _)) => format!("{r} + border before"),
            Some((Some(r), false, true)) => format!("{r} + border after"),
            Some((None, _, _)) => "whole".into(),
            None => "-".into(),
        };
        let th = theo(rf.map(|r| (r.height, r.open[2], r.open[3])));
        let tw = theo(rf.map(|r| (r.width, r.open[0], r.open[1])));
        println!(
            "{what}: ERF of {map}[{}, {}] over {} photo(s): 20% / 50% / 99% of the mass within {} / {} / {} px; \
             theoretical {th} x {tw}",
            unit.y,
            unit.x,
            inputs.len(),
            sides[0],
            sides[1],
            sides[2]
        );
        table.push_str(&format!(
            "{},{map},{},{},{},{},{},{th},{tw}\n",
            run.display(),
            unit.y,
            unit.x,
            sides[0],
            sides[1],
            sides[2]
        ));
    }
    save_png(&side_by_side(&panels, 12), out)?;
    let csv_path = out.with_extension("csv");
    write_atomic(&csv_path, table.as_bytes())?;
    println!("wrote {} and {}", out.display(), csv_path.display());
    Ok(())
}

/// The first line of an rf-table CSV (also how an earlier one is recognised before replacing it).
const RF_TABLE_HEADER: &str =
    "layer,kind,kernel,stride,pad,jump_y,jump_x,field_height,field_width,first_centre_y,first_centre_x\n";

/// `lrnn probe rf-table`: the table on the terminal, and as CSV with `--csv`.
fn rf_table(model: &str, csv: Option<&Path>) -> anyhow::Result<()> {
    let desc = ModelDesc::from_name_or_file(model)?;
    let graph = desc.graph().map_err(anyhow::Error::msg)?;
    let rows = lrnn_core::probe::rf_table::rf_table(&graph);
    println!(
        "{} — receptive-field arithmetic (input pixels; centre of the first unit's field)",
        desc.display_name()
    );
    println!(
        "{:<16} {:<34} {:>6} {:>6} {:>4} {:>8} {:>30} {:>12}",
        "layer", "kind", "kernel", "stride", "pad", "jump", "field", "first centre"
    );
    let num = |v: f64| if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v}") };
    let mut text = String::from(RF_TABLE_HEADER);
    for r in &rows {
        let jump = if r.height.jump == r.width.jump {
            num(r.width.jump)
        } else {
            format!("{}/{}", num(r.height.jump), num(r.width.jump))
        };
        let centre = if r.height.start == r.width.start {
            num(r.width.start)
        } else {
            format!("{}, {}", num(r.height.start), num(r.width.start))
        };
        println!(
            "{:<16} {:<34} {:>6} {:>6} {:>4} {jump:>8} {:>30} {centre:>12}",
            r.name,
            r.kind,
            r.kernel,
            r.stride,
            r.pad,
            r.size_words()
        );
        let size = |v: Option<f64>| v.map_or("whole".to_string(), num);
        text.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            r.name,
            r.kind.replace(',', ";"),
            r.kernel,
            r.stride,
            r.pad,
            num(r.height.jump),
            num(r.width.jump),
            size(r.height.size),
            size(r.width.size),
            num(r.height.start),
            num(r.width.start)
        ));
    }
    if let Some(path) = csv {
        // Replaces only an earlier table: never a photo, weights or anything else.
        if path.is_file() {
            use std::io::Read;
            let mut head = vec![0u8; RF_TABLE_HEADER.len()];
            let same = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok()
                && head == RF_TABLE_HEADER.as_bytes();
            if !same {
                bail!(
                    "{}: exists and is not an rf-table CSV; not replaced (choose another --csv)",
                    path.display()
                );
            }
        }
        lrnn_core::io::write_atomic(path, text.as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// A progress bar for a probe that learns its total once it starts (the `progress(done,
/// total)` callbacks of the core's probes); cleared when dropped.
struct StepBar(indicatif::ProgressBar);

impl StepBar {
    fn new(what: &'static str, unit: &str) -> Self {
        let template = format!("{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{eta}} left)");
        let style = indicatif::ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        let bar = indicatif::ProgressBar::new(0).with_style(style);
        bar.set_message(what);
        Self(bar)
    }

    /// Shows `done` of `total`; never asks the probe to stop.
    fn step(&self, done: usize, total: usize) -> bool {
        self.0.set_length(total as u64);
        self.0.set_position(done as u64);
        true
    }
}

impl Drop for StepBar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// `lrnn probe rf-depth`.
fn rf_depth(
    args: &ModelArgs,
    images: &[PathBuf],
    (random, size, channel): (usize, Option<usize>, Option<usize>),
    device: ProbeDevice,
    out: &Path,
) -> anyhow::Result<()> {
    use lrnn_core::probe::rf_depth::{rf_depth, rf_depth_on_gpu, Channels};
    let seed = args.seed;
    let (model, what, mean) = load(args)?;
    let c = model.desc().in_channels();
    let size = size.unwrap_or_else(|| model.desc().input_size());
    let inputs: Vec<Tensor> = if images.is_empty() {
        (0..random as u64).map(|i| random_input(seed, i, c, size)).collect::<candle_core::Result<_>>()?
    } else {
        images.iter().map(|p| load_image(p, &model, size, mean.as_deref())).collect::<anyhow::Result<_>>()?
    };
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let bar = StepBar::new("receptive fields", "backward passes");
    let channels = channel.map_or(Channels::Mean, Channels::One);
    let mut step = |done, total| bar.step(done, total);
    // The devices and fall-backs of `probe erf --device`.
    let tried = on_gpu(device, |gpu| match gpu {
        Gpu::Cuda => {
            let (on, moved) = on_cuda(&model, &inputs)?;
            let r = rf_depth(&on, &moved, channels, &mut step).map_err(|e| format!("CUDA failed: {e}"))?;
            Ok((r, "CUDA device 0 through candle".to_string()))
        }
        Gpu::Wgpu { any_adapter } => {
            let ctx = crate::open_gpu(any_adapter)?;
            let r = rf_depth_on_gpu(&ctx, &model, &inputs, channels, &mut step).map_err(|e| e.to_string())?;
            Ok((r, format!("{} through wgpu", ctx.describe())))
        }
    });
    let (result, on) = match tried {
        Ok(done) => done,
        Err(why) => (rf_depth(&model, &inputs, channels, &mut step)?, on_cpu(why)),
    };
    drop(bar);
    println!("device: {on}");
    let unit = channel.map_or("mean over channels".to_string(), |c| format!("channel {c}"));
    println!(
        "receptive field against depth of {what} ({size}x{size}, {} input(s), centre unit, {unit})",
        inputs.len()
    );
    println!(
        "{:<20} {:<30} {:>12} {:>8} {:>8} {:>12} {:>8} {:>8}",
        "layer", "kind", "theoretical", "ERF 50%", "ERF 99%", "CNN theor.", "CNN 50%", "CNN 99%"
    );
    let num = |v: Option<usize>| v.map_or("-".to_string(), |v| v.to_string());
    let theo = |r: &lrnn_core::probe::rf_depth::DepthRow| {
        if r.whole_image {
            "whole".to_string()
        } else {
            format!("{:.0}", r.theoretical)
        }
    };
    for (i, r) in result.model.iter().enumerate() {
        let cnn = result.cnn.as_ref().and_then(|c| c.get(i));
        println!(
            "{:<20} {:<30} {:>12} {:>8} {:>8} {:>12} {:>8} {:>8}",
            r.name,
            r.kind,
            theo(r),
            num(r.erf50),
            num(r.erf99),
            cnn.map_or("-".into(), theo),
            cnn.map_or("-".into(), |c| num(c.erf50)),
            cnn.map_or("-".into(), |c| num(c.erf99)),
        );
    }
    if result.cnn.is_none() {
        println!("(the model has no recurrence: it is its own CNN)");
    }
    let csv_path = out.join("rf_depth.csv");
    let png_path = out.join("rf_depth.png");
    write_atomic(&csv_path, result.csv().as_bytes())?;
    let chart = result.chart(&format!("Receptive field against depth: {}", model.desc().display_name()));
    save_png(&chart.render(960, 560), &png_path)?;
    println!("wrote {} and {}", csv_path.display(), png_path.display());
    Ok(())
}

/// `lrnn probe recurrence-history`.
fn recurrence_history(run: &Path, max: usize, k: usize, out: &Path) -> anyhow::Result<()> {
    use lrnn_core::probe::recurrence_history::{read_run, top_eigenvectors};
    // A 512x512 matrix takes seconds to decompose: a bar says how far it is.
    let bar = StepBar::new("spectra", "matrices");
    let h = read_run(run, max, &mut |done, total| bar.step(done, total))?;
    drop(bar);
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    println!(
        "recurrences of {} over {} snapshots (steps {}–{})",
        run.display(),
        h.steps.len(),
        h.steps.first().copied().unwrap_or(0),
        h.steps.last().copied().unwrap_or(0)
    );
    println!("{:<34} {:>22} {:>22} {:>10}", "matrix", "spectral radius", "memory (steps)", "change");
    let mem = |m: Option<f64>| m.map_or("inf".to_string(), |m| format!("{m:.2}"));
    let mut vectors = String::from("matrix,gate,rank,eigenvalue_re,eigenvalue_im,channel,bar,magnitude\n");
    for t in &h.tracks {
        let (Some(a), Some(b)) = (t.at.first(), t.at.last()) else { continue };
        println!(
            "{:<34} {:>22} {:>22} {:>9.1}%",
            t.label(),
            format!("{:.4} → {:.4}", a.spectrum.spectral_radius, b.spectrum.spectral_radius),
            format!("{} → {}", mem(a.spectrum.memory_length), mem(b.spectrum.memory_length)),
            100.0 * b.change
        );
        for (rank, e) in top_eigenvectors(&b.values, t.size, &b.spectrum, k).iter().enumerate() {
            for (c, (bar, m)) in e.bars.iter().zip(&e.magnitude).enumerate() {
                vectors.push_str(&format!(
                    "{},{},{rank},{},{},{c},{bar:.6},{m:.6}\n",
                    t.name, t.gate, e.eigenvalue.0, e.eigenvalue.1
                ));
            }
        }
    }
    for p in &h.pairs {
        let (a, b) = (&h.tracks[p.first], &h.tracks[p.second]);
        println!(
            "pair {} / {}: the two directions differ by {:.1}% at the start, {:.1}% at the end",
            a.label(),
            b.label(),
            100.0 * p.difference.first().copied().unwrap_or(0.0),
            100.0 * p.difference.last().copied().unwrap_or(0.0)
        );
    }
    write_atomic(&out.join("history.csv"), h.csv().as_bytes())?;
    write_atomic(&out.join("eigenvalues.csv"), h.eigenvalues_csv().as_bytes())?;
    write_atomic(&out.join("pairs.csv"), h.pairs_csv().as_bytes())?;
    write_atomic(&out.join("eigenvectors.csv"), vectors.as_bytes())?;
    let chart = h.radius_chart(&format!("Spectral radius over training: {}", run.display()));
    save_png(&chart.render(900, 480), &out.join("spectral_radius.png"))?;
    println!(
        "wrote history.csv, eigenvalues.csv, pairs.csv, eigenvectors.csv and spectral_radius.png to {}",
        out.display()
    );
    Ok(())
}

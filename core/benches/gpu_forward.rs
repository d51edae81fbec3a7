//! Forward passes through wgpu next to the candle CPU path, in one process, with the two outputs
//! compared: every bundled model (batch 1 at its own input size, its trained weights) and VGG-16
//! FCN-8s-LRNN (n = 1024, random weights, V random) at 384x384. On a hardware GPU, PyTorch
//! (CUDA, f32) runs the same FCN-8s-LRNN on the same card in the same run
//! (`fcn_forward_torch.py ... cuda`), when a CUDA-enabled torch is there.
//!
//! On a hardware GPU it also times one ERF of the FCN and one training step of E-RNN-Max (batch
//! 64) and of the FCN (384x384, batch 1) through wgpu next to the CPU, next to PyTorch's CUDA
//! step (`cifar_step_torch.py ... cuda`, `fcn_forward_torch.py ... cuda step`) and, built with
//! `--features cuda`, candle's CUDA step (the trainer's `--device cuda`).
//!
//! `cargo bench -p lrnn-core --bench gpu_forward` (`LRNN_BENCH_RUNS=N` timed calls of the FCN,
//! default 3; the bundled models get 7). Built with `--features cuda` and run with an NVIDIA GPU,
//! it also times the FCN on candle's CUDA device. The GPU time includes writing the input and reading the
//! output back; the weights are uploaded once, before. With `LRNN_GPU_PROFILE=1` each model's
//! parity pass (after the timed ones) prints its per-kernel table (`gpu/profile.rs`).
#![allow(clippy::unwrap_used)]

mod common;

#[path = "../tests/common/bundled.rs"]
mod bundled;

use std::process::Command;

use candle_core::{Device, Tensor};
use common::{python, time_ms};
use lrnn_core::gpu::{Capture, GpuContext, GpuModel, ScanMode};
use lrnn_core::models::Model;
use lrnn_core::models::ModelDesc;
use lrnn_core::nn::{Cell, Forward, LayerRnnConfig, Merge};
use lrnn_core::train::Checkpoint;

fn relative_error(a: &Tensor, b: &Tensor) -> f32 {
    let peak = a.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-6);
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() / peak
}

/// One row: CPU and GPU medians and their outputs' relative difference.
fn row(ctx: &GpuContext, label: &str, model: &Model, x: &Tensor, runs: usize) -> (f64, f64) {
    let cpu_ms = time_ms(runs, || {
        model.forward(x, &mut Forward::eval()).unwrap();
    });
    let mut gpu = GpuModel::upload(ctx, model).unwrap();
    // Timed without timestamps; the parity pass after them is profiled (its table printed
    // with `LRNN_GPU_PROFILE=1`).
    let profiling = lrnn_core::gpu::profile::wanted();
    gpu.set_profiling(false);
    let gpu_ms = time_ms(runs, || {
        gpu.forward(ctx, x, Capture::Nothing).unwrap();
    });
    let cpu = model.forward(x, &mut Forward::eval()).unwrap();
    gpu.set_profiling(profiling);
    let err = relative_error(&cpu, &gpu.forward(ctx, x, Capture::Nothing).unwrap().output);
    println!("| {label} | {:?} | {cpu_ms:.1} | {gpu_ms:.1} | {err:.1e} |", x.dims());
    (cpu_ms, gpu_ms)
}

/// The two ways of running a vanilla pair's scans side by side: a lone module of n = 1024
/// hidden units on FCN-8s-LRNN's 12x12 fc map at 384x384 (and a longer 48x48 map), both axes.
fn scan_modes(ctx: &GpuContext, runs: usize) {
    println!("\n| scan of a vanilla L-RNN module, n = 1024 | input | per sequence, `scan_pair` (ms) | per step, `scan_step` (ms) | relative difference |");
    println!("|---|---|---:|---:|---:|");
    for side in [12, 48] {
        let cfg = LayerRnnConfig { in_channels: 64, hidden: 1024, cell: Cell::Vanilla, merge: Merge::Sum };
        let model = Model::new_seeded(ModelDesc::Lrnn(cfg), &Device::Cpu, 3).unwrap();
        for (name, var) in model.varmap().data().lock().unwrap().iter() {
            if name.contains(".v_") {
                let t = var.as_tensor();
                let scale = 0.5 / (t.dim(t.rank() - 1).unwrap() as f64).sqrt();
                var.set(&(Tensor::randn(0f32, 1.0, t.shape(), &Device::Cpu).unwrap() * scale).unwrap())
                    .unwrap();
            }
        }
        let x = Tensor::randn(0f32, 1.0, (1, 64, side, side), &Device::Cpu).unwrap();
        let mut gpu = GpuModel::upload(ctx, &model).unwrap();
        let mut times = Vec::new();
        let mut outs = Vec::new();
        for mode in [ScanMode::Sequences, ScanMode::Steps] {
            gpu.set_scan_mode(mode);
            gpu.set_profiling(false);
            times.push(time_ms(runs, || {
                gpu.forward(ctx, &x, Capture::Nothing).unwrap();
            }));
            gpu.set_profiling(lrnn_core::gpu::profile::wanted());
            outs.push(gpu.forward(ctx, &x, Capture::Nothing).unwrap().output);
        }
        let err = relative_error(&outs[0], &outs[1]);
        println!("| {side}x{side} map | {:?} | {:.1} | {:.1} | {err:.1e} |", x.dims(), times[0], times[1]);
    }
}

/// One ERF of FCN-8s-LRNN (the class-0 score of the centre pixel, one image) through wgpu's
/// backward pass next to the CPU's autograd, and their largest difference relative to the
/// gradient's peak.
fn erf_timing(ctx: &GpuContext, model: &Model, x: &Tensor, runs: usize) {
    use lrnn_core::gpu::GradientSeed;
    let (_, _, h, w) = x.dims4().unwrap();
    let seed = GradientSeed { layer: "output", channel: Some(0), y: h / 2, x: w / 2 };
    let mut gpu = GpuModel::upload(ctx, model).unwrap();
    let gpu_ms = time_ms(runs, || {
        gpu.input_gradient(ctx, x, &seed).unwrap();
    });
    let (got, _) = gpu.input_gradient(ctx, x, &seed).unwrap();
    let start = std::time::Instant::now();
    let var = candle_core::Var::from_tensor(x).unwrap();
    let y = model.forward(var.as_tensor(), &mut Forward::eval()).unwrap();
    let unit = y.narrow(1, 0, 1).unwrap().narrow(2, h / 2, 1).unwrap().narrow(3, w / 2, 1).unwrap();
    let grads = unit.sum_all().unwrap().backward().unwrap();
    let cpu = grads.get(var.as_tensor()).unwrap().clone();
    let cpu_ms = start.elapsed().as_secs_f64() * 1e3;
    println!(
        "\nOne ERF of FCN-8s-LRNN 384x384 (class 0 at the centre, forward + backward to the input): wgpu {gpu_ms:.1} ms, candle CPU {cpu_ms:.0} ms, max relative difference {:.1e}",
        relative_error(&cpu, &got)
    );
}

/// The median of `runs` training steps of `model` (RMSprop, the paper's) on candle's CUDA device 0,
/// as `lrnn train --device cuda` takes them; `None` without a CUDA device.
fn cuda_train_ms(model: &Model, x: &Tensor, labels: &[u32], runs: usize) -> Option<f64> {
    use lrnn_core::rng::Rng;
    use lrnn_core::train::{Optimizer, OptimizerConfig};
    let dev = Device::new_cuda(0).ok()?;
    let on = model.to_device(&dev).unwrap();
    let vars = on.trainable_vars().unwrap().into_iter().map(|(_, v)| v).collect();
    let mut opt = Optimizer::new(OptimizerConfig::PAPER_RMSPROP, vars, 1e-4).unwrap();
    let xd = x.to_device(&dev).unwrap();
    let mut step = || {
        let logits = on.forward(&xd, &mut Forward::train().with_rng(Rng(1))).unwrap();
        let loss = lrnn_core::train::seg::mean_cross_entropy(&logits, labels).unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        dev.synchronize().unwrap();
    };
    step();
    Some(time_ms(runs, step))
}

/// PyTorch's CUDA timing from `script args`: the JSON line it prints, or why it did not run.
fn torch_cuda(script: &str, args: &[&str]) -> Result<serde_json::Value, String> {
    let o = Command::new(python()).arg(script).args(args).output().map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("").to_string());
    }
    serde_json::from_slice(&o.stdout).map_err(|e| e.to_string())
}

/// One training step of `model` (RMSprop, the paper's) on `x` with `labels` through wgpu (the
/// weights and the optimiser's state on the GPU; only the per-row losses and predictions read
/// back) next to one on the candle CPU path, and their losses; then candle's CUDA step and
/// PyTorch's (`torch`: its script and arguments) on the same card, when they run.
fn train_timing(
    ctx: &GpuContext,
    name: &str,
    model: &Model,
    (x, labels): (&Tensor, &[u32]),
    runs: usize,
    torch: Option<(&str, &[&str])>,
) {
    use lrnn_core::gpu::GpuTrainer;
    use lrnn_core::rng::Rng;
    use lrnn_core::train::{Optimizer, OptimizerConfig};
    let config = OptimizerConfig::PAPER_RMSPROP;
    let mut gpu = match GpuTrainer::upload(ctx, model, config.gpu_rule()) {
        Ok(g) => g,
        Err(e) => {
            return println!(
                "
{name} does not train on the GPU: {e}"
            )
        }
    };
    let cuda_ms = cuda_train_ms(model, x, labels, runs);
    let gpu_loss = gpu.step(ctx, x, labels, 1e-4, Rng(1)).unwrap().loss;
    let gpu_ms = time_ms(runs, || {
        gpu.step(ctx, x, labels, 1e-4, Rng(1)).unwrap();
    });
    let vars = model.trainable_vars().unwrap().into_iter().map(|(_, v)| v).collect();
    let mut opt = Optimizer::new(config, vars, 1e-4).unwrap();
    let start = std::time::Instant::now();
    let logits = model.forward(x, &mut Forward::train().with_rng(Rng(1))).unwrap();
    let loss = lrnn_core::train::seg::mean_cross_entropy(&logits, labels).unwrap();
    opt.step(&loss.backward().unwrap()).unwrap();
    let cpu_ms = start.elapsed().as_secs_f64() * 1e3;
    println!(
        "
One {name} training step (RMSprop): wgpu {gpu_ms:.1} ms, candle CPU {cpu_ms:.0} ms; first step's loss {gpu_loss:.5} (wgpu) / {:.5} (CPU)",
        loss.to_scalar::<f32>().unwrap()
    );
    match cuda_ms {
        Some(ms) => println!("  candle CUDA (`--device cuda`): {ms:.1} ms"),
        None => println!("  candle CUDA: not run (a build without `--features cuda`, or no CUDA device)"),
    }
    if let Some((script, args)) = torch {
        match torch_cuda(script, args) {
            Ok(v) => {
                let torch_ms = v["step_ms"].as_f64().unwrap_or(f64::NAN);
                let cuda = cuda_ms
                    .map_or(String::new(), |c| format!(", candle CUDA / PyTorch {:.2}x", c / torch_ms));
                println!(
                    "  PyTorch {} CUDA f32 on {}: {torch_ms:.1} ms (peak {:.0} MiB); wgpu / PyTorch {:.2}x{cuda}",
                    v["torch"],
                    v["device"],
                    v["peak_gpu_mib"].as_f64().unwrap_or(f64::NAN),
                    gpu_ms / torch_ms
                );
            }
            Err(why) => println!("  PyTorch CUDA did not run: {why}"),
        }
    }
}

/// The median time of `model` on candle's CUDA device 0 (same weights) and the largest difference
/// of its output to the CPU's, relative to the output's peak; `None` without a CUDA device (a
/// build without `--features cuda`, or no NVIDIA GPU).
fn on_cuda(model: &Model, x: &Tensor, runs: usize) -> Option<(f64, f32)> {
    let dev = Device::new_cuda(0).ok()?;
    let on = model.to_device(&dev).unwrap();
    let xd = x.to_device(&dev).unwrap();
    let ms = time_ms(runs, || {
        on.forward(&xd, &mut Forward::eval()).unwrap();
        dev.synchronize().unwrap();
    });
    let cpu = model.forward(x, &mut Forward::eval()).unwrap();
    let got = on.forward(&xd, &mut Forward::eval()).unwrap().to_device(&Device::Cpu).unwrap();
    Some((ms, relative_error(&cpu, &got)))
}

fn main() {
    lrnn_core::keep_freed_memory();
    let ctx = match GpuContext::new() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("no GPU adapter, nothing to compare: {e}");
            return;
        }
    };
    let threads = candle_core::utils::get_num_threads();
    println!("GPU: {}; CPU: candle, {threads} threads", ctx.describe());
    println!("| model | input | candle CPU (ms) | wgpu (ms) | max relative difference |");
    println!("|---|---|---:|---:|---:|");
    let folders = bundled::bundled_model_dirs();
    for dir in folders {
        let (model, _) = Checkpoint::open(&dir, &Device::Cpu).and_then(Checkpoint::into_run).unwrap();
        let (c, size) = (model.desc().in_channels(), model.desc().input_size());
        let x = (Tensor::randn(0f32, 1.0, (1, c, size, size), &Device::Cpu).unwrap() * 50.0).unwrap();
        let label = format!(
            "{} (bundled `{}`)",
            model.desc().display_name(),
            dir.file_name().unwrap().to_string_lossy()
        );
        row(&ctx, &label, &model, &x, 7);
    }
    let runs = std::env::var("LRNN_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    scan_modes(&ctx, runs);
    let model =
        Model::new_seeded(ModelDesc::from_name_or_file("FCN-8s-LRNN").unwrap(), &Device::Cpu, 1).unwrap();
    // Random recurrences (a fresh insertion has V = 0) and scores, so every part counts.
    for (name, var) in model.varmap().data().lock().unwrap().iter() {
        if name.contains(".v_") || ["fc3.", "fc6.", "fc9."].iter().any(|p| name.starts_with(p)) {
            let t = var.as_tensor();
            let scale = 0.5 / (t.dim(t.rank() - 1).unwrap() as f64).sqrt();
            var.set(&(Tensor::randn(0f32, 1.0, t.shape(), &Device::Cpu).unwrap() * scale).unwrap()).unwrap();
        }
    }
    let x = (Tensor::randn(0f32, 1.0, (1, 3, 384, 384), &Device::Cpu).unwrap() * 50.0).unwrap();
    let (_, gpu_ms) = row(&ctx, "VGG-16 FCN-8s-LRNN, n = 1024 (random weights)", &model, &x, runs);
    if let Some((cuda_ms, err)) = on_cuda(&model, &x, runs) {
        println!("\nFCN-8s-LRNN 384x384 on candle's CUDA device (same weights, fused CUDA scan): {cuda_ms:.1} ms, max relative difference to the CPU {err:.1e}");
    }
    if ctx.is_software() {
        println!(
            "\n{} is a software rasteriser: no PyTorch CUDA comparison, no FCN ERF or training timing.",
            ctx.describe()
        );
        // A small training step, to show the path works here.
        let dir = bundled::bundled_model_dirs().into_iter().find(|d| d.ends_with("context-lrnn")).unwrap();
        let (small, _) = Checkpoint::open(&dir, &Device::Cpu).and_then(Checkpoint::into_run).unwrap();
        let batch = (Tensor::randn(0f32, 1.0, (8, 1, 48, 48), &Device::Cpu).unwrap() * 50.0).unwrap();
        let labels: Vec<u32> = (0..8).map(|i| i % 2).collect();
        train_timing(&ctx, "Context-LRNN (batch 8, 48x48)", &small, (&batch, &labels), runs, None);
        return;
    }
    erf_timing(&ctx, &model, &x, runs);
    let script = "benches/fcn_forward_torch.py"; // from core/, where benches run
    let torch =
        Command::new(python()).args([script, "FCN-8s-LRNN", &runs.max(5).to_string(), "4", "cuda"]).output();
    match torch {
        Ok(o) if o.status.success() => {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
            let torch_ms = v["forward_ms"].as_f64().unwrap_or(f64::NAN);
            println!("\nFCN-8s-LRNN 384x384 on {}: wgpu {gpu_ms:.1} ms, PyTorch {} CUDA f32 {torch_ms:.1} ms ({:.2}x)", v["device"], v["torch"], gpu_ms / torch_ms);
        }
        Ok(o) => println!(
            "\nPyTorch CUDA did not run: {}",
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
        ),
        Err(e) => println!("\nPyTorch CUDA did not run: {e}"),
    }
    // Training steps last (they change the weights).
    let e_rnn =
        Model::new_seeded(ModelDesc::from_name_or_file("E-RNN-Max").unwrap(), &Device::Cpu, 1).unwrap();
    let batch = Tensor::randn(0f32, 1.0, (64, 3, 32, 32), &Device::Cpu).unwrap();
    let labels: Vec<u32> = (0..64).map(|i| i % 10).collect();
    let n = runs.max(5).to_string();
    let torch = ("benches/cifar_step_torch.py", ["E-RNN-Max", "64", n.as_str(), "4", "cuda"]);
    train_timing(
        &ctx,
        "E-RNN-Max (batch 64, 32x32x3)",
        &e_rnn,
        (&batch, &labels),
        runs,
        Some((torch.0, &torch.1)),
    );
    let pixels: Vec<u32> = (0..384 * 384).map(|i| (i % 21) as u32).collect();
    let torch = ("benches/fcn_forward_torch.py", ["FCN-8s-LRNN", n.as_str(), "4", "cuda", "step"]);
    let name = "FCN-8s-LRNN (n = 1024, 384x384, batch 1)";
    train_timing(&ctx, name, &model, (&x, &pixels), runs, Some((torch.0, &torch.1)));
}

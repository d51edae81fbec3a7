//! The spatial scan at the shapes issue #8 names, in one run: the fused op, the same computation
//! composed of candle ops step by step, PyTorch (when `python3` can import torch) and the floor
//! (FLOPs over the best sgemm rate measured at the shapes involved), forward and
//! forward+backward, with the peak memory growth of forward+backward beside PyTorch's.
//!
//! - the shape: an L-RNN module, vanilla cell, sum merge, B=64 C=128 16x16 D=128;
//! - CIFAR-A's module: B=64 C=256 8x8 D=256, vanilla and GRU;
//! - FCN's fc1 pair: a horizontal pair inserted into fc1 (shared projection, mean merge), B=1,
//!   n=1024, 12x12; and the pool3 branch's fc7 pair, B=1, 1024, 48x48.
//!
//! Run: `cargo bench -p lrnn-core --bench lrnn_module` (env `LRNN_BENCH_RUNS`, default 7;
//! `LRNN_BENCH_CASES=0,2` for some of the cases; `LRNN_BENCH_FUSED_ONLY=1` times the fused op
//! alone, for profiling). `LRNN_BENCH_DEVICE=cuda` runs every row on the first NVIDIA GPU (build
//! with `--features cuda`; PyTorch on CUDA too, the floor at cuBLAS's rate; no memory column):
//! `core/benches/cuda_bench.sh` does that on a machine without cargo.

mod common;

use std::process::Command;

use common::{python, time_ms};

use candle_core::{Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use lrnn_core::models::Model;
use lrnn_core::models::ModelDesc;
use lrnn_core::nn::{Axis, Cell, Forward, LayerRnnConfig, Merge, RnnPair, ScanBackend};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A whole L-RNN module (two pairs, own projections, sum merge) on `[B, C, H, W]`.
    Module,
    /// A horizontal pair on a shared projection `[B, D, H, W]`, mean merge.
    Pair,
}

#[derive(Debug, Clone, Copy)]
struct Case {
    label: &'static str,
    shape: [usize; 5],
    cell: Cell,
    mode: Mode,
}

const CASES: [Case; 5] = [
    Case {
        label: "issue shape, module, vanilla",
        shape: [64, 128, 16, 16, 128],
        cell: Cell::Vanilla,
        mode: Mode::Module,
    },
    Case {
        label: "CIFAR-A, module, vanilla",
        shape: [64, 256, 8, 8, 256],
        cell: Cell::Vanilla,
        mode: Mode::Module,
    },
    Case { label: "CIFAR-A, module, GRU", shape: [64, 256, 8, 8, 256], cell: Cell::Gru, mode: Mode::Module },
    Case { label: "FCN fc1 pair", shape: [1, 1024, 12, 12, 1024], cell: Cell::Vanilla, mode: Mode::Pair },
    Case {
        label: "FCN pool3 (fc7) pair",
        shape: [1, 1024, 48, 48, 1024],
        cell: Cell::Vanilla,
        mode: Mode::Pair,
    },
];

/// The network of a case and its input.
enum Net {
    Module(Model),
    Pair(RnnPair),
}

impl Case {
    fn build(&self, dev: &Device) -> (Net, Tensor) {
        let [b, c, h, w, d] = self.shape;
        let dev = dev.clone();
        match self.mode {
            Mode::Module => {
                let cfg = LayerRnnConfig { in_channels: c, hidden: d, cell: self.cell, merge: Merge::Sum };
                let model = Model::new(ModelDesc::Lrnn(cfg), &dev).expect("model");
                (Net::Module(model), Tensor::randn(0f32, 1.0, (b, c, h, w), &dev).expect("input"))
            }
            Mode::Pair => {
                let vars = VarMap::new();
                let pair = RnnPair::shared(
                    Axis::Horizontal,
                    d,
                    &VarBuilder::from_varmap(&vars, candle_core::DType::F32, &dev),
                )
                .expect("pair");
                for var in vars.all_vars() {
                    let v = (Tensor::randn(0f32, 1.0, (d, d), &dev).expect("v") * (0.5 / (d as f64).sqrt()))
                        .expect("v");
                    var.set(&v).expect("set");
                }
                (Net::Pair(pair), Tensor::randn(0f32, 1.0, (b, d, h, w), &dev).expect("input"))
            }
        }
    }

    /// FLOPs of the forward pass: projections and recurrences (the backward is counted as twice).
    fn flops(&self) -> f64 {
        let [b, c, h, w, d] = self.shape;
        let g = self.cell.gates();
        let pos = (b * h * w) as f64;
        let steps_h = (b * h * (w - 1)) as f64;
        let steps_v = (b * w * (h - 1)) as f64;
        match self.mode {
            Mode::Module => {
                let proj = 2.0 * pos * (c + d) as f64 * (2 * g * d) as f64;
                proj + 2.0 * 2.0 * (steps_h + steps_v) * (g * d * d) as f64
            }
            Mode::Pair => 2.0 * 2.0 * steps_h * (d * d) as f64,
        }
    }

    /// The best sgemm rate (GFLOP/s) candle reaches at the products involved.
    fn rate(&self, dev: &Device, runs: usize) -> f64 {
        let [b, c, h, w, d] = self.shape;
        let g = self.cell.gates();
        let step = sgemm_gflops(dev, b * h, d, g * d, runs * 10);
        match self.mode {
            Mode::Module => step.max(sgemm_gflops(dev, b * h * w, c, 2 * g * d, runs)),
            Mode::Pair => step.max(sgemm_gflops(dev, 2 * b * h, d, d, runs * 10)),
        }
    }
}

fn forward(net: &Net, x: &Tensor, fwd: &mut Forward) -> Tensor {
    match net {
        Net::Module(m) => m.forward(x, fwd).expect("forward"),
        Net::Pair(p) => p.forward(x, Merge::Mean, fwd).expect("forward"),
    }
}

fn sgemm_gflops(dev: &Device, m: usize, k: usize, n: usize, runs: usize) -> f64 {
    let a = Tensor::randn(0f32, 1.0, (m, k), dev).expect("randn");
    let b = Tensor::randn(0f32, 1.0, (k, n), dev).expect("randn");
    // The best of several medians: the floor is what the machine can reach.
    let ms = (0..5)
        .map(|_| {
            time_ms(runs, || {
                a.matmul(&b).expect("matmul");
                dev.synchronize().expect("synchronize");
            })
        })
        .fold(f64::INFINITY, f64::min);
    2.0 * (m * k * n) as f64 / (ms * 1e6)
}

fn torch_side(case: &Case, dev: &Device, runs: usize, memory: bool) -> Option<serde_json::Value> {
    let script = common::script("lrnn_module_torch.py");
    let mut args: Vec<String> = case.shape.iter().map(ToString::to_string).collect();
    args.push(runs.to_string());
    args.push(std::thread::available_parallelism().map_or(1, usize::from).to_string());
    args.push(if case.cell == Cell::Gru { "gru" } else { "vanilla" }.into());
    args.push(if case.mode == Mode::Pair { "pair" } else { "module" }.into());
    args.push(if dev.is_cuda() { "cuda" } else { "cpu" }.into());
    // torch runs its own intra-op threads; a threaded OpenBLAS under it oversubscribes the cores.
    let out = Command::new(python())
        .arg(script)
        .args(&args)
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("LRNN_TORCH_MEMORY", if memory { "1" } else { "0" })
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "PyTorch side skipped: {}",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        );
        return None;
    }
    serde_json::from_slice(String::from_utf8_lossy(&out.stdout).trim().as_bytes()).ok()
}

/// A field of `/proc/self/status` in MiB (`VmRSS`: resident now, `VmHWM`: its high-water mark).
fn vm_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// In a fresh child process of this benchmark: the growth of the peak resident memory over one
/// forward+backward. The high-water mark is reset to the resident memory before
/// (`/proc/self/clear_refs`) and read after (`VmHWM`; `ru_maxrss` would include the parent's
/// memory at the fork), as the PyTorch script measures its own with `LRNN_TORCH_MEMORY=1`.
fn memory_child(case: &Case) {
    let (net, x) = case.build(&Device::Cpu);
    let xv = Var::from_tensor(&x).expect("var");
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = vm_mib("VmRSS");
    let y = forward(&net, xv.as_tensor(), &mut Forward::train());
    y.sum_all().and_then(|l| l.backward()).expect("backward");
    println!("{:.1}", vm_mib("VmHWM") - before);
}

fn main() {
    lrnn_core::keep_freed_memory();
    let runs: usize = std::env::var("LRNN_BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    if let Some(i) = std::env::var("LRNN_BENCH_MEMORY_OF").ok().and_then(|v| v.parse::<usize>().ok()) {
        memory_child(&CASES[i]);
        return;
    }
    let wanted: Vec<usize> = std::env::var("LRNN_BENCH_CASES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| (0..CASES.len()).collect());
    let dev = match std::env::var("LRNN_BENCH_DEVICE").as_deref() {
        Ok("cuda") => Device::new_cuda(0)
            .expect("LRNN_BENCH_DEVICE=cuda: build with --features cuda, run with an NVIDIA GPU"),
        _ => Device::Cpu,
    };
    let threads = rayon::current_num_threads();
    let on = if dev.is_cuda() { "CUDA GPU 0".to_string() } else { format!("CPU, {threads} threads") };
    println!("Spatial scans, {on}, median of {runs} (the step-by-step candle rows: of {})", runs.min(3));
    println!("| case | B, C, H, W, D | implementation | forward (ms) | forward+backward (ms) | peak memory growth, fwd+bwd (MiB) |");
    println!("|---|---|---|---:|---:|---:|");
    for i in wanted {
        let case = &CASES[i];
        let (net, x) = case.build(&dev);
        let xv = Var::from_tensor(&x).expect("var");
        let fwd_flops = case.flops();
        let rate = case.rate(&dev, runs);
        let fused_only = std::env::var("LRNN_BENCH_FUSED_ONLY").is_ok_and(|v| v == "1");
        let memory = dev.is_cpu().then(|| {
            Command::new(std::env::current_exe().expect("exe"))
                .env("LRNN_BENCH_MEMORY_OF", i.to_string())
                .output()
                .ok()
                .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        });
        let memory = memory.flatten();
        let mut rows: Vec<(String, f64, f64, Option<f64>)> = Vec::new();
        for (name, backend, n) in [
            ("lrnn-core, fused scan op", ScanBackend::Fused, runs),
            ("lrnn-core, candle ops step by step", ScanBackend::Reference, runs.min(3)),
        ]
        .into_iter()
        .take(if fused_only { 1 } else { 2 })
        {
            let f = time_ms(n, || {
                forward(&net, &x, &mut Forward::eval().with_backend(backend));
                dev.synchronize().expect("synchronize");
            });
            let fb = time_ms(n, || {
                let y = forward(&net, xv.as_tensor(), &mut Forward::train().with_backend(backend));
                y.sum_all().and_then(|l| l.backward()).expect("backward");
                dev.synchronize().expect("synchronize");
            });
            let mem = if backend == ScanBackend::Fused { memory } else { None };
            rows.push((name.to_string(), f, fb, mem));
        }
        if let Some(t) = (!fused_only).then(|| torch_side(case, &dev, runs, false)).flatten() {
            let get = |k: &str| t.get(k).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
            let name = format!("PyTorch {}", t.get("torch").and_then(|v| v.as_str()).unwrap_or("?"));
            let mem = if dev.is_cpu() {
                torch_side(case, &dev, runs, true)
                    .and_then(|m| m.get("peak_growth_mib").and_then(serde_json::Value::as_f64))
            } else {
                None
            };
            rows.push((name, get("forward_ms"), get("forward_backward_ms"), mem));
        }
        rows.push((
            format!("floor ({:.2} GFLOP at {rate:.0} GFLOP/s)", fwd_flops / 1e9),
            fwd_flops / (rate * 1e6),
            3.0 * fwd_flops / (rate * 1e6),
            None,
        ));
        let [b, c, h, w, d] = case.shape;
        for (name, f, fb, mem) in rows {
            let mem = mem.map_or("".to_string(), |m| format!("{m:.0}"));
            println!("| {} | {b}, {c}, {h}, {w}, {d} | {name} | {f:.1} | {fb:.1} | {mem} |", case.label);
        }
    }
}

//! Benchmark of one L-RNN module (vanilla cell, sum merge) at B=64, C=128, H=W=16, D=128:
//! forward and forward+backward, medians of several runs, printed next to the same computation
//! in PyTorch (when `python3` can import torch) and next to the floor (FLOPs over the measured
//! sgemm rate).
//!
//! Run: `cargo bench -p lrnn-core --bench lrnn_module` (env `LRNN_BENCH_RUNS`, default 7;
//! `LRNN_BENCH_SHAPE=B,C,H,W,D` for another shape).

mod common;

use std::process::Command;

use common::{python, time_ms};

use candle_core::{DType, Device, Tensor};
use lrnn_core::io::ModelDesc;
use lrnn_core::models::Model;
use lrnn_core::nn::{Cell, Forward, LayerRnnConfig, Merge, ScanBackend};

fn sgemm_gflops(m: usize, k: usize, n: usize, runs: usize) -> f64 {
    let dev = Device::Cpu;
    let a = Tensor::randn(0f32, 1.0, (m, k), &dev).expect("randn");
    let b = Tensor::randn(0f32, 1.0, (k, n), &dev).expect("randn");
    let ms = time_ms(runs, || {
        a.matmul(&b).expect("matmul");
    });
    2.0 * (m * k * n) as f64 / (ms * 1e6)
}

fn torch_side(shape: [usize; 5], runs: usize) -> Option<serde_json::Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/lrnn_module_torch.py");
    let mut args: Vec<String> = shape.iter().map(ToString::to_string).collect();
    args.push(runs.to_string());
    args.push(std::thread::available_parallelism().map_or(1, usize::from).to_string());
    // torch runs its own intra-op threads; a threaded OpenBLAS under it oversubscribes the cores.
    let out =
        Command::new(python()).arg(script).args(&args).env("OPENBLAS_NUM_THREADS", "1").output().ok()?;
    if !out.status.success() {
        eprintln!(
            "PyTorch side skipped: {}",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        );
        return None;
    }
    serde_json::from_slice(String::from_utf8_lossy(&out.stdout).trim().as_bytes()).ok()
}

fn main() {
    let runs: usize = std::env::var("LRNN_BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let shape: [usize; 5] = std::env::var("LRNN_BENCH_SHAPE")
        .ok()
        .and_then(|s| s.split(',').map(|x| x.trim().parse().ok()).collect::<Option<Vec<usize>>>())
        .and_then(|v| v.try_into().ok())
        .unwrap_or([64, 128, 16, 16, 128]);
    let [b, c, h, w, d] = shape;
    let dev = Device::Cpu;
    let desc =
        ModelDesc::Lrnn(LayerRnnConfig { in_channels: c, hidden: d, cell: Cell::Vanilla, merge: Merge::Sum });
    let model = Model::new(desc, &dev).expect("model");
    let x = Tensor::randn(0f32, 1.0, (b, c, h, w), &dev).expect("input");
    let xv = candle_core::Var::from_tensor(&x).expect("var");

    // FLOPs: per pair, projection 2·(B·H·W)·C_in·2D and recurrence 2 directions x 2·N·(T-1)·D².
    let pos = (b * h * w) as f64;
    let proj = 2.0 * pos * (c + d) as f64 * (2 * d) as f64;
    let rec = 2.0 * 2.0 * (b * h * (w - 1) + b * w * (h - 1)) as f64 * (d * d) as f64;
    let fwd_flops = proj + rec;
    let rate = sgemm_gflops(pos as usize, c, 2 * d, runs).max(sgemm_gflops(b * h, d, d, runs * 10));
    let threads = rayon::current_num_threads();

    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    for (name, backend, n) in [
        ("lrnn-core, fused scan op", ScanBackend::Fused, runs),
        ("lrnn-core, candle ops step by step", ScanBackend::Reference, runs.min(3)),
    ] {
        let f = time_ms(n, || {
            model.forward(&x, &mut Forward::eval().with_backend(backend)).expect("forward");
        });
        let fb = time_ms(n, || {
            let y =
                model.forward(xv.as_tensor(), &mut Forward::train().with_backend(backend)).expect("forward");
            y.sum_all().and_then(|l| l.backward()).expect("backward");
        });
        rows.push((name.to_string(), f, fb));
    }
    if let Some(t) = torch_side(shape, runs) {
        let get = |k: &str| t.get(k).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
        rows.push((
            format!(
                "PyTorch {} ({} threads)",
                t.get("torch").and_then(|v| v.as_str()).unwrap_or("?"),
                get("threads")
            ),
            get("forward_ms"),
            get("forward_backward_ms"),
        ));
    } else {
        println!("(PyTorch not available to python3: no side-by-side row)");
    }
    rows.push((
        format!("floor: FLOPs / sgemm rate ({rate:.0} GFLOP/s)"),
        fwd_flops / (rate * 1e6),
        3.0 * fwd_flops / (rate * 1e6),
    ));

    println!("\nL-RNN module, vanilla cell, sum merge: B={b} C={c} H={h} W={w} D={d}, {threads} threads, median of {runs}");
    println!("forward {:.2} GFLOP, forward+backward {:.2} GFLOP", fwd_flops / 1e9, 3.0 * fwd_flops / 1e9);
    println!("| implementation | forward (ms) | forward+backward (ms) |");
    println!("|---|---:|---:|");
    for (name, f, fb) in rows {
        println!("| {name} | {f:.1} | {fb:.1} |");
    }
    let _ = DType::F32;
}

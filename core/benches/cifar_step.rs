//! One training step (forward, cross-entropy, backward, RMSprop update) of the paper's CIFAR
//! networks at batch 64 on 32x32 colour images, next to the same step in PyTorch in the same run.
//!
//! Run: `cargo bench -p lrnn-core --bench cifar_step` (env `LRNN_BENCH_RUNS`, default 3;
//! `LRNN_BENCH_NETS=E-RNN-Max,Baseline-CNN-Max`).

mod common;

use std::process::Command;
use std::time::Instant;

use common::{median, python};

use candle_core::{Device, Tensor};
use lrnn_core::models::cifar::CifarConfig;
use lrnn_core::models::Model;
use lrnn_core::models::ModelDesc;
use lrnn_core::nn::Forward;
use lrnn_core::train::{Optimizer, OptimizerConfig};

fn main() {
    lrnn_core::keep_freed_memory();
    let runs: usize = std::env::var("LRNN_BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let nets = std::env::var("LRNN_BENCH_NETS").unwrap_or_else(|_| "E-RNN-Max,Baseline-CNN-Max".into());
    let batch = 64;
    let dev = Device::Cpu;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    println!("\nOne training step, batch {batch}, 32x32x3, RMSprop, {threads} threads, median of {runs}");
    println!("| network | parameters | lrnn-core (ms) | PyTorch (ms) |");
    println!("|---|---:|---:|---:|");
    for name in nets.split(',') {
        let model = Model::new_seeded(ModelDesc::Cifar(CifarConfig::named(name)), &dev, 0).expect("model");
        let vars: Vec<candle_core::Var> =
            model.trainable_vars().expect("vars").into_iter().map(|(_, v)| v).collect();
        let mut opt = Optimizer::new(OptimizerConfig::PAPER_RMSPROP, vars, 1e-3).expect("optimizer");
        let x = Tensor::randn(0f32, 1.0, (batch, 3, 32, 32), &dev).expect("x");
        let y = Tensor::new((0..batch as u32).map(|i| i % 10).collect::<Vec<_>>(), &dev).expect("y");
        let mut step = || {
            let logits = model.forward(&x, &mut Forward::train()).expect("forward");
            let loss = candle_nn::loss::cross_entropy(&logits, &y).expect("loss");
            opt.step(&loss.backward().expect("backward")).expect("step");
        };
        step();
        let ours = median(
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    step();
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        );
        let script = common::script("cifar_step_torch.py");
        let torch = Command::new(python())
            .arg(script)
            .args([name, &batch.to_string(), &runs.to_string(), &threads.to_string()])
            .env("OPENBLAS_NUM_THREADS", "1")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                serde_json::from_slice::<serde_json::Value>(
                    String::from_utf8_lossy(&o.stdout).trim().as_bytes(),
                )
                .ok()
            })
            .and_then(|v| v.get("step_ms").and_then(serde_json::Value::as_f64))
            .map_or_else(|| "n/a".to_string(), |ms| format!("{ms:.0}"));
        println!("| {name} | {} | {ours:.0} | {torch} |", model.parameter_count().expect("count"));
    }
}

//! The 3x3 convolutions and the BatchNorm + ReLU of the CIFAR networks (E-RNN-Max's shapes at
//! batch 64), forward and forward+backward, next to the same operations in PyTorch (oneDNN) in
//! the same run: where a training step's time goes.
//!
//! Run: `cargo bench -p lrnn-core --bench conv` (env `LRNN_BENCH_RUNS`, default 7).

mod common;

use std::process::Command;

use candle_core::{Device, Tensor, Var};
use common::{python, time_ms};
use lrnn_core::nn::batch_norm::BatchNormRelu;
use lrnn_core::nn::{conv2d_with, ConvAlgo};

fn torch_row(shape: [usize; 5], runs: usize, threads: usize) -> Option<serde_json::Value> {
    let script = common::script("conv_torch.py");
    let out = Command::new(python())
        .arg(script)
        .args(shape.iter().map(ToString::to_string))
        .args([runs.to_string(), threads.to_string()])
        .env("OPENBLAS_NUM_THREADS", "1")
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    serde_json::from_slice(String::from_utf8_lossy(&out.stdout).trim().as_bytes()).ok()
}

fn main() {
    lrnn_core::keep_freed_memory();
    let runs: usize = std::env::var("LRNN_BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let dev = Device::Cpu;
    println!("\n3x3 convolutions (padding 1, no bias) and BatchNorm (training) + ReLU, {threads} threads, median of {runs}");
    println!("| B, C, H, W -> O | GFLOP fwd | implementation | conv fwd (ms) | conv fwd+bwd (ms) | BN+ReLU fwd (ms) | BN+ReLU fwd+bwd (ms) |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    for shape in [[64, 3, 32, 32, 64], [64, 64, 32, 32, 64], [64, 128, 16, 16, 128], [64, 128, 8, 8, 128]] {
        let [b, c, h, w, o] = shape;
        let gflop = 2.0 * (b * o * h * w * c * 9) as f64 / 1e9;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, c, h, w), &dev).expect("x")).expect("var");
        let wt = Var::from_tensor(
            &(Tensor::randn(0f32, 1.0, (o, c, 3, 3), &dev).expect("w") / (9.0 * c as f64).sqrt()).expect("w"),
        )
        .expect("var");
        let g = Tensor::randn(0f32, 1.0, (b, o, h, w), &dev).expect("g");
        let gx = Tensor::randn(0f32, 1.0, (b, c, h, w), &dev).expect("gx");
        let map = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&map, candle_core::DType::F32, &dev);
        let bn = BatchNormRelu::new(c, 1e-5, &vb).expect("bn");
        let composed = candle_nn::batch_norm(c, 1e-5, vb.pp("composed")).expect("bn");
        let conv = |algo: Option<ConvAlgo>| {
            let (x, w) = (x.as_tensor(), wt.as_tensor());
            match algo {
                Some(algo) => conv2d_with(x, w, None, 1, algo).expect("conv"),
                None => x.conv2d(w, 1, 1, 1, 1).expect("conv"),
            }
        };
        let bn_relu = |algo: Option<ConvAlgo>| {
            if algo.is_some() {
                bn.forward(x.as_tensor(), true).expect("bn")
            } else {
                candle_nn::ModuleT::forward_t(&composed, x.as_tensor(), true)
                    .expect("bn")
                    .relu()
                    .expect("relu")
            }
        };
        let label = format!("{b}, {c}, {h}, {w} -> {o}");
        for (algo, name) in [
            (Some(ConvAlgo::Auto), "lrnn-core: Winograd F(2x2, 3x3), fused BN+ReLU"),
            (Some(ConvAlgo::Im2col), "lrnn-core: im2col + gemm, fused BN+ReLU"),
            (None, "candle ops (conv2d, candle-nn BatchNorm)"),
        ] {
            let conv_fwd = time_ms(runs, || drop(conv(algo)));
            let conv_both = time_ms(runs, || {
                (conv(algo) * &g).expect("mul").sum_all().expect("sum").backward().expect("backward");
            });
            let bn_fwd = time_ms(runs, || drop(bn_relu(algo)));
            let bn_both = time_ms(runs, || {
                (bn_relu(algo) * &gx).expect("mul").sum_all().expect("sum").backward().expect("backward");
            });
            println!("| {label} | {gflop:.2} | {name} | {conv_fwd:.1} | {conv_both:.1} | {bn_fwd:.1} | {bn_both:.1} |");
        }
        match torch_row(shape, runs, threads) {
            Some(v) => {
                let f = |k: &str| v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
                let version = v.get("torch").and_then(serde_json::Value::as_str).unwrap_or("?");
                println!(
                    "| {label} | {gflop:.2} | PyTorch {version} | {:.1} | {:.1} | {:.1} | {:.1} |",
                    f("conv_fwd"),
                    f("conv_both"),
                    f("bn_fwd"),
                    f("bn_both")
                );
            }
            None => println!("| {label} | {gflop:.2} | PyTorch | n/a | n/a | n/a | n/a |"),
        }
    }
}

//! Forward pass of the context-task L-RNN (`Context-LRNN`, random weights) on the candle CPU path
//! and through wgpu on the best adapter, side by side in one process, with the two outputs
//! compared. Batch 1 (the app's case) and batch 16, 96x96 grey images.
//!
//! `cargo bench -p lrnn-core --bench gpu_forward`
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use candle_core::{Device, Tensor};
use lrnn_core::gpu::{GpuContext, GpuModel};
use lrnn_core::io::ModelDesc;
use lrnn_core::models::Model;
use lrnn_core::nn::Forward;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let ctx = match GpuContext::new() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("no GPU adapter, nothing to compare: {e}");
            return;
        }
    };
    let model =
        Model::new_seeded(ModelDesc::from_name_or_file("Context-LRNN").unwrap(), &Device::Cpu, 1).unwrap();
    let mut gpu = GpuModel::upload(&ctx, &model).unwrap();
    println!("Context-LRNN forward, 96x96 grey; GPU: {}", ctx.describe());
    println!("{:>6} {:>14} {:>14} {:>12}", "batch", "candle CPU ms", "wgpu ms", "max rel err");
    for batch in [1usize, 16] {
        let x = Tensor::randn(0f32, 1.0, (batch, 1, 96, 96), &Device::Cpu).unwrap();
        let reps = 7;
        let cpu_ms: Vec<f64> = (0..reps)
            .map(|_| {
                let s = Instant::now();
                model.forward(&x, &mut Forward::eval()).unwrap();
                s.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        gpu.forward(&ctx, &x, false).unwrap(); // warm-up: buffers and pipelines
        let gpu_ms: Vec<f64> = (0..reps)
            .map(|_| {
                let s = Instant::now();
                gpu.forward(&ctx, &x, false).unwrap();
                s.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        let a = model.forward(&x, &mut Forward::eval()).unwrap();
        let b = gpu.forward(&ctx, &x, false).unwrap().output;
        let peak = a.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-6);
        let err = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() / peak;
        println!("{batch:>6} {:>14.2} {:>14.2} {:>12.2e}", median(cpu_ms), median(gpu_ms), err);
    }
}

//! f32 GEMM through cubek-matmul (cubecl on wgpu, its autotuned `Strategy::Auto`) against
//! lrnn-core's conv2d.wgsl as a 1x1 convolution (the same product: [M, K] weights x [K, N]
//! positions), on the same adapter, with a spot check of both against the CPU. BENCHMARKS.md has
//! the table.
use std::time::Instant;

use cubecl::prelude::*;
use cubecl::std::tensor::TensorHandle;
use cubecl::wgpu::{AutoCompiler, WgpuDevice};
type WgpuRuntime = cubecl::wgpu::WgpuRuntime<AutoCompiler>;
use cubek_matmul::definition::MatmulElems;
use cubek_matmul::launch::launch_ref;
use cubek_matmul::strategy::Strategy;
use cubek_std::InputBinding;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn cubecl_gemm(m: usize, n: usize, k: usize, runs: usize) -> (f64, Vec<f32>, Vec<f32>, Vec<f32>) {
    let device = WgpuDevice::default();
    let client = <WgpuRuntime as cubecl_runtime::runtime::Runtime>::client(&device);
    let lhs: Vec<f32> = (0..m * k).map(|i| ((i * 7919 % 1000) as f32 / 1000.0) - 0.5).collect();
    let rhs: Vec<f32> = (0..k * n).map(|i| ((i * 104729 % 1000) as f32 / 1000.0) - 0.5).collect();
    let dtypes = MatmulElems::new_deprecated::<f32>();
    let elem = dtypes.lhs_global;
    let make = |data: &[f32], shape: [usize; 3]| {
        let handle = client.create_from_slice(f32::as_bytes(data));
        TensorHandle::new_contiguous(shape.to_vec(), handle, elem)
    };
    let a = make(&lhs, [1, m, k]);
    let b = make(&rhs, [1, k, n]);
    let out = TensorHandle::empty(&client, vec![1, m, n], dtypes.acc_global);
    let strategy = Strategy::Auto;
    let launch = || {
        launch_ref(
            &strategy,
            &client,
            InputBinding::Normal(a.clone().binding(), dtypes.lhs_global),
            InputBinding::Normal(b.clone().binding(), dtypes.rhs_global),
            out.clone().binding(),
            &mut dtypes.clone(),
        )
        .unwrap();
        cubecl::future::block_on(client.sync()).unwrap();
    };
    launch();
    let times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            launch();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let bytes = client.read_one(out.handle.clone()).unwrap();
    let c = f32::from_bytes(&bytes).to_vec();
    (median(times), c, lhs, rhs)
}

fn ours(m: usize, n: usize, k: usize, lhs: &[f32], rhs: &[f32], runs: usize) -> (f64, f64, Vec<f32>) {
    use candle_core::{Device, Tensor};
    use lrnn_core::gpu::{Capture, GpuContext, GpuModel};
    use lrnn_core::models::convnet::{ConvNetConfig, LayerSpec};
    use lrnn_core::models::{Model, ModelDesc};
    let ctx = GpuContext::new().unwrap();
    // One 1x1 convolution of K channels to M over a map of N = side x side positions.
    let side = (n as f64).sqrt() as usize;
    assert_eq!(side * side, n);
    let cfg = ConvNetConfig {
        name: "gemm".into(),
        in_channels: k,
        classes: 2,
        input_size: side,
        layers: vec![LayerSpec::Conv { name: "c".into(), out: m, kernel: 1, relu: false }],
        pool: Default::default(),
        insert: vec![],
    };
    let model = Model::new(ModelDesc::Convnet(cfg), &Device::Cpu).unwrap();
    for (name, var) in model.varmap().data().lock().unwrap().iter() {
        let t = var.as_tensor();
        let v = if name == "c.weight" {
            Tensor::from_vec(lhs.to_vec(), t.shape(), &Device::Cpu).unwrap()
        } else {
            t.zeros_like().unwrap()
        };
        var.set(&v).unwrap();
    }
    let x = Tensor::from_vec(rhs.to_vec(), (1, k, side, side), &Device::Cpu).unwrap();
    let mut gpu = GpuModel::upload(&ctx, &model).unwrap();
    let names = ["c"];
    let run = |gpu: &mut GpuModel| gpu.forward(&ctx, &x, Capture::Only(&names)).unwrap();
    run(&mut gpu);
    let times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            run(&mut gpu);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    gpu.set_profiling(true);
    let out = run(&mut gpu);
    let kernel_ms = gpu
        .profile()
        .and_then(|r| r.kernels.iter().find(|k| k.kernel == "conv2d").map(|k| k.ms))
        .unwrap_or(f64::NAN);
    let c = out.captured.into_iter().find(|(n, _)| n == "c").unwrap().1;
    (median(times), kernel_ms, c.flatten_all().unwrap().to_vec1().unwrap())
}

fn main() {
    let runs: usize = std::env::var("RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let shapes: Vec<(usize, usize, usize)> = match std::env::args().nth(1).as_deref() {
        Some("big") => vec![(1024, 48 * 48, 1024), (512, 24 * 24, 4608), (256, 96 * 96, 1152)],
        _ => vec![(256, 48 * 48, 1152), (128, 32 * 32, 576), (1024, 12 * 12, 1024)],
    };
    println!("| M x K x N | GFLOP | cubek-matmul (Auto) ms | conv2d.wgsl (1x1) ms, pass | conv2d kernel ms | max |diff| / peak |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (m, n, k) in shapes {
        let (cube_ms, c1, lhs, rhs) = cubecl_gemm(m, n, k, runs);
        let (our_ms, kernel_ms, c2) = ours(m, n, k, &lhs, &rhs, runs);
        let peak = c1.iter().fold(0f32, |a, v| a.max(v.abs()));
        let diff = c1.iter().zip(&c2).fold(0f32, |a, (x, y)| a.max((x - y).abs()));
        let gflop = 2.0 * (m * n * k) as f64 / 1e9;
        // A spot check against a plain sum on the CPU.
        let (i, j) = (m / 3, n / 2);
        let want: f64 = (0..k).map(|t| f64::from(lhs[i * k + t]) * f64::from(rhs[t * n + j])).sum();
        eprintln!(
            "lengths {} {} ; C[{i},{j}] cubecl {} ours {} cpu {want}",
            c1.len(),
            c2.len(),
            c1[i * n + j],
            c2[i * n + j]
        );
        println!(
            "| {m} x {k} x {n} | {gflop:.2} | {cube_ms:.1} ({:.1} GFLOP/s) | {our_ms:.1} | {kernel_ms:.1} ({:.1} GFLOP/s) | {:.1e} |",
            gflop / cube_ms * 1e3,
            gflop / kernel_ms * 1e3,
            diff / peak
        );
    }
}

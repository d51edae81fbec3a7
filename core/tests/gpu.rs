//! The wgpu path against the candle CPU path: every shader validates with naga (no GPU needed);
//! on a GPU adapter (lavapipe in CI), convnets with and without inserted pairs, both axes, odd
//! sizes (H != W, hidden sizes that are not multiples of the workgroup) and random weights give
//! the CPU's scores and every captured map within a relative error of 1e-4; models the GPU path
//! does not run yet are refused with a message.
//!
//! Without an adapter the GPU tests say so and pass, unless `LRNN_REQUIRE_GPU=1` (set by
//! `.ci/run`), where a missing adapter fails them.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use candle_core::{Device, Tensor};
use lrnn_core::gpu::kernels::SHADERS;
use lrnn_core::gpu::{GpuContext, GpuModel};
use lrnn_core::io::ModelDesc;
use lrnn_core::models::convnet::{ConvNetConfig, Insertion, LayerSpec};
use lrnn_core::models::Model;
use lrnn_core::nn::{Axis, GlobalPool, ScanBackend};
use lrnn_core::probe::activations::activations;
use lrnn_core::probe::contribution::recurrence_vars;

#[test]
fn every_shader_validates_with_naga() {
    for (name, src) in SHADERS {
        let module =
            naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(module.entry_points.iter().any(|e| e.name == "main"), "{name}: no `main`");
    }
}

fn context() -> Option<GpuContext> {
    match GpuContext::new() {
        Ok(c) => Some(c),
        Err(e) if std::env::var("LRNN_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("LRNN_REQUIRE_GPU=1 but: {e}")
        }
        Err(e) => {
            eprintln!("no GPU adapter, GPU parity not checked: {e}");
            None
        }
    }
}

fn relative_error(gpu: &Tensor, cpu: &Tensor) -> f32 {
    assert_eq!(gpu.dims(), cpu.dims());
    let peak = cpu.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-6);
    let diff = (gpu - cpu).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    diff / peak
}

/// Random recurrences (the presets start at 0 or 0.9 I).
fn randomise_recurrences(model: &Model) {
    for (i, (_, var)) in recurrence_vars(model).unwrap().into_iter().enumerate() {
        let d = var.as_tensor().dim(0).unwrap();
        let v =
            (Tensor::randn(0f32, 1.0, (d, d), &Device::Cpu).unwrap() * (0.6 / (d as f64).sqrt())).unwrap();
        let v = (v + Tensor::eye(d, candle_core::DType::F32, &Device::Cpu).unwrap() * (0.3 + 0.1 * i as f64))
            .unwrap();
        var.set(&v).unwrap();
    }
}

fn check(ctx: &GpuContext, model: &Model, x: &Tensor) {
    let mut gpu = GpuModel::upload(ctx, model).unwrap();
    let out = gpu.forward(ctx, x, true).unwrap();
    let cpu = activations(model, x, ScanBackend::Auto).unwrap();
    let cpu_scores = &cpu.last().unwrap().tensor;
    let e = relative_error(&out.scores, cpu_scores);
    assert!(e < 1e-4, "{}: scores differ by {e:e}", model.desc().display_name());
    let gpu_names: Vec<&str> = out.captured.iter().map(|(n, _)| n.as_str()).collect();
    let cpu_names: Vec<&str> = cpu.iter().map(|a| a.name.as_str()).filter(|n| *n != "output").collect();
    let (mut g, mut c) = (gpu_names.clone(), cpu_names.clone());
    g.sort_unstable();
    c.sort_unstable();
    assert_eq!(g, c, "the same maps are captured");
    for (name, t) in &out.captured {
        let reference = &cpu.iter().find(|a| a.name == *name).unwrap().tensor;
        let e = relative_error(t, reference);
        assert!(e < 1e-4, "{name}: differs by {e:e}");
    }
    // A second call reuses the buffers and gives the same.
    let again = gpu.forward(ctx, x, false).unwrap();
    assert!(again.captured.is_empty(), "nothing captured unless asked");
    assert_eq!(relative_error(&again.scores, &out.scores), 0.0);
}

#[test]
fn the_context_networks_match_the_cpu_on_random_weights() {
    let Some(ctx) = context() else { return };
    eprintln!("adapter: {}", ctx.describe());
    for (i, name) in ["Context-CNN", "Context-LRNN"].iter().enumerate() {
        let model =
            Model::new_seeded(ModelDesc::from_name_or_file(name).unwrap(), &Device::Cpu, 10 + i as u64)
                .unwrap();
        randomise_recurrences(&model);
        // H != W, both divisible by 4 (two pools).
        let x = Tensor::randn(0f32, 1.0, (2, 1, 20, 36), &Device::Cpu).unwrap();
        check(&ctx, &model, &x);
    }
}

#[test]
fn odd_shapes_both_axes_and_mean_pooling_match_the_cpu() {
    let Some(ctx) = context() else { return };
    let conv = |name: &str, out, kernel, relu| LayerSpec::Conv { name: name.into(), out, kernel, relu };
    let cfg = ConvNetConfig {
        name: "odd".into(),
        in_channels: 3,
        classes: 3,
        input_size: 14,
        layers: vec![
            conv("a", 6, 5, false),
            LayerSpec::MaxPool { name: "p".into() },
            conv("b", 70, 3, true),
            conv("c", 5, 1, true),
        ],
        pool: GlobalPool::Avg,
        insert: vec![
            Insertion { layer: "b".into(), axis: Axis::Vertical, v_init: 0.0 },
            Insertion { layer: "c".into(), axis: Axis::Horizontal, v_init: 0.0 },
        ],
    };
    let model = Model::new_seeded(ModelDesc::Convnet(cfg), &Device::Cpu, 3).unwrap();
    randomise_recurrences(&model);
    // After the pool: 7x11, neither a multiple of anything; 70 hidden units: 64 + 6.
    let x = Tensor::randn(0f32, 1.0, (3, 3, 14, 22), &Device::Cpu).unwrap();
    check(&ctx, &model, &x);
}

#[test]
fn models_the_gpu_path_does_not_run_yet_are_refused_with_a_message() {
    let Some(ctx) = context() else { return };
    let model =
        Model::new_seeded(ModelDesc::from_name_or_file("E-RNN-Max").unwrap(), &Device::Cpu, 1).unwrap();
    let err = GpuModel::upload(&ctx, &model).err().unwrap().to_string();
    assert!(err.contains("does not run on the GPU path yet"), "{err}");
    let model =
        Model::new_seeded(ModelDesc::from_name_or_file("Context-CNN").unwrap(), &Device::Cpu, 1).unwrap();
    let mut gpu = GpuModel::upload(&ctx, &model).unwrap();
    let x = Tensor::zeros((1, 3, 8, 8), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = gpu.forward(&ctx, &x, false).unwrap_err().to_string();
    assert!(err.contains("3 channels, the model takes 1"), "{err}");
}

#[test]
fn colour_maps_on_the_gpu_match_the_cpu() {
    use lrnn_core::gpu::GpuColourMap;
    use lrnn_core::probe::render::ColourMap;
    let Some(ctx) = context() else { return };
    let painter = GpuColourMap::new(&ctx);
    // 1,000 values (not a multiple of 64), a NaN gap, both signs.
    let mut values: Vec<f32> = (0..1000).map(|i| ((i as f32) * 0.37).sin() * 3.0 - 0.5).collect();
    values[17] = f32::NAN;
    for map in ColourMap::ALL {
        let range = map.range(&values);
        let gpu = painter.paint(&ctx, &values, map, range).unwrap();
        let cpu = map.paint(&values, range);
        assert_eq!(gpu.len(), 4 * values.len());
        for (i, (g, c)) in gpu.chunks(4).zip(cpu.chunks(3)).enumerate() {
            assert_eq!(g[3], 255);
            for k in 0..3 {
                // The same formulas; float rounding may move a channel by one level.
                assert!(g[k].abs_diff(c[k]) <= 1, "{map:?} value {i} ({}): gpu {g:?} cpu {c:?}", values[i]);
            }
        }
    }
}

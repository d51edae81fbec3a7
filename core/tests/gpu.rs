//! The wgpu path against the candle CPU path: every shader validates with naga (no GPU needed);
//! on a GPU adapter (lavapipe in CI), every model kind on random inputs and random weights gives
//! the CPU's output and every captured map within a relative error of 1e-4: a lone L-RNN module
//! with each cell and merge, the context convnets with inserted pairs on both axes, the CIFAR
//! networks (both recurrent cells, the three fusions, BatchNorm folded, max and mean pooling),
//! VGG-16 FCN-32s and FCN-8s-LRNN, every bundled model with its trained weights; odd sizes
//! throughout (H != W, sizes and hidden sizes that are not multiples of the workgroup). The
//! segmentation coloured on the GPU matches the CPU's labels and overlay; bad inputs and buffers
//! too large for the adapter give messages.
//!
//! Without an adapter the GPU tests say so and pass, unless `LRNN_REQUIRE_GPU=1` (set by
//! `.ci/run`), where a missing adapter fails them.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "common/bundled.rs"]
mod bundled;

use candle_core::{DType, Device, Tensor};
use lrnn_core::gpu::kernels::SHADERS;
use lrnn_core::gpu::{Capture, GpuContext, GpuModel, GpuTrainer, GradientSeed, ScanMode};
use lrnn_core::models::convnet::{ConvNetConfig, Insertion, LayerSpec};
use lrnn_core::models::fcn::{FcnConfig, Variant};
use lrnn_core::models::Model;
use lrnn_core::models::ModelDesc;
use lrnn_core::nn::{Axis, Cell, GlobalPool, LayerRnnConfig, Merge, ScanBackend};
use lrnn_core::probe::activations::activations;
use lrnn_core::train::{Checkpoint, Optimizer, OptimizerConfig};

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

#[test]
fn every_parameter_struct_has_its_shaders_layout() {
    // The typed parameter blocks (`gpu/params.rs`) must match each shader's `struct Params`:
    // same size, and every member a 4-byte scalar, so field i of the Rust struct is member i.
    assert_eq!(lrnn_core::gpu::params::ALL.len(), SHADERS.len());
    for (name, bytes) in lrnn_core::gpu::params::ALL {
        let src = SHADERS.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no shader {name}")).1;
        let module = naga::front::wgsl::parse_str(src).unwrap();
        let (_, params) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some("Params"))
            .unwrap_or_else(|| panic!("{name}: no `struct Params`"));
        let naga::TypeInner::Struct { members, span } = &params.inner else { panic!("{name}: Params") };
        assert_eq!(
            *span as usize, bytes,
            "{name}: the shader's Params has {span} bytes, the Rust struct {bytes}"
        );
        for (i, m) in members.iter().enumerate() {
            assert_eq!(m.offset as usize, 4 * i, "{name}: member {:?} is not at {}", m.name, 4 * i);
            let scalar = matches!(module.types[m.ty].inner, naga::TypeInner::Scalar(s) if s.width == 4);
            assert!(scalar, "{name}: member {:?} is not a 4-byte scalar", m.name);
        }
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

/// Random values for what a fresh model starts at a constant: inserted recurrences (zero or a
/// multiple of I), LayerNorm and BatchNorm gains and biases, BatchNorm running statistics, FCN
/// scoring layers (zero).
fn randomise(model: &Model) {
    let vars = model.varmap().data().lock().unwrap();
    let dev = &Device::Cpu;
    for (i, (name, var)) in vars.iter().enumerate() {
        let shape = var.as_tensor().shape().clone();
        let randn = |scale: f64| (Tensor::randn(0f32, 1.0, &shape, dev).unwrap() * scale).unwrap();
        let value = if name.contains(".v_") {
            let d = shape.dims()[0];
            let eye = Tensor::eye(d, DType::F32, dev).unwrap() * (0.3 + 0.05 * (i % 5) as f64);
            (randn(0.6 / (d as f64).sqrt()) + eye.unwrap()).unwrap()
        } else if name.ends_with("running_var") {
            (randn(0.2).abs().unwrap() + 0.5).unwrap()
        } else if name.ends_with("running_mean") || name.ends_with("ln.bias") || name.ends_with("bn1.bias") {
            randn(0.3)
        } else if name.ends_with("ln.weight") || name.contains(".bn") && name.ends_with(".weight") {
            (randn(0.2) + 1.0).unwrap()
        } else if ["fc3.", "fc6.", "fc9."].iter().any(|p| name.starts_with(p)) {
            randn(0.05)
        } else {
            continue;
        };
        var.set(&value).unwrap();
    }
}

/// The model on the GPU against the CPU: the output and every captured map (the same names).
fn check(ctx: &GpuContext, model: &Model, x: &Tensor) {
    let mut gpu = GpuModel::upload(ctx, model).unwrap();
    let out = gpu.forward(ctx, x, Capture::All).unwrap();
    let cpu = activations(model, x, ScanBackend::Auto).unwrap();
    let name = model.desc().display_name();
    let mut g: Vec<&str> = out.captured.iter().map(|(n, _)| n.as_str()).collect();
    let mut c: Vec<&str> = cpu.iter().map(|a| a.name.as_str()).filter(|n| *n != "output").collect();
    g.sort_unstable();
    c.sort_unstable();
    assert_eq!(g, c, "{name}: the same maps are captured");
    // In forward order, so that a failure names the first map that differs.
    let mut worst = 0f32;
    for (map, t) in &out.captured {
        let reference = &cpu.iter().find(|a| a.name == *map).unwrap().tensor;
        let e = relative_error(t, reference);
        assert!(e < 1e-4, "{name}: {map} differs by {e:e}");
        worst = worst.max(e);
    }
    let e = relative_error(&out.output, &cpu.last().unwrap().tensor);
    assert!(e < 1e-4, "{name}: outputs differ by {e:e}");
    eprintln!("{name} {:?}: output {e:.1e}, worst of {} maps {worst:.1e}", x.dims(), g.len());
    // A second call reuses the buffers and gives the same.
    let again = gpu.forward(ctx, x, Capture::Nothing).unwrap();
    assert!(again.captured.is_empty(), "nothing captured unless asked");
    assert_eq!(relative_error(&again.output, &out.output), 0.0);
}

fn seeded(desc: ModelDesc, seed: u64) -> Model {
    let model = Model::new_seeded(desc, &Device::Cpu, seed).unwrap();
    randomise(&model);
    model
}

fn randn(shape: (usize, usize, usize, usize)) -> Tensor {
    Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap()
}

#[test]
fn a_lone_module_matches_the_cpu_for_every_cell_and_merge() {
    let Some(ctx) = context() else { return };
    eprintln!("adapter: {}", ctx.describe());
    for (i, cell) in [Cell::Vanilla, Cell::VanillaLn, Cell::Gru].into_iter().enumerate() {
        for merge in [Merge::Sum, Merge::Concat] {
            // 70 hidden units: 64 + 6; a 7x11 map.
            let cfg = LayerRnnConfig { in_channels: 5, hidden: 70, cell, merge };
            let model = seeded(ModelDesc::Lrnn(cfg), 20 + i as u64);
            check(&ctx, &model, &randn((2, 5, 7, 11)));
        }
    }
    // Long sequences of wide states: on lavapipe these run as several chunks of steps.
    for (i, cell) in [Cell::Vanilla, Cell::VanillaLn, Cell::Gru].into_iter().enumerate() {
        let cfg = LayerRnnConfig { in_channels: 3, hidden: 300, cell, merge: Merge::Sum };
        let model = seeded(ModelDesc::Lrnn(cfg), 25 + i as u64);
        check(&ctx, &model, &randn((1, 3, 3, 90)));
    }
}

#[test]
fn vanilla_pairs_run_per_step_or_per_sequence_with_the_same_maps_as_the_cpu() {
    let Some(ctx) = context() else { return };
    // Narrow and wide states (300: five tiles of 64 units, the last partial), more than 64
    // sequences (two tiles: 2 images x 40 rows), one and several steps, both merges.
    let cases = [
        (70, Merge::Sum, (2, 5, 7, 11)),
        (300, Merge::Concat, (2, 3, 40, 3)),
        (300, Merge::Sum, (1, 3, 1, 5)),
    ];
    for (i, (hidden, merge, shape)) in cases.into_iter().enumerate() {
        let cfg = LayerRnnConfig { in_channels: shape.1, hidden, cell: Cell::Vanilla, merge };
        let model = seeded(ModelDesc::Lrnn(cfg), 60 + i as u64);
        let x = randn(shape);
        let cpu = activations(&model, &x, ScanBackend::Auto).unwrap();
        let mut gpu = GpuModel::upload(&ctx, &model).unwrap();
        let mut outputs = Vec::new();
        for mode in [ScanMode::Sequences, ScanMode::Steps] {
            gpu.set_scan_mode(mode);
            let out = gpu.forward(&ctx, &x, Capture::All).unwrap();
            assert!(out.captured.len() >= 4, "both pairs' directions are captured");
            for (map, t) in &out.captured {
                let reference = &cpu.iter().find(|a| a.name == *map).unwrap().tensor;
                let e = relative_error(t, reference);
                assert!(e < 1e-4, "hidden {hidden}, {mode:?}: {map} differs from the CPU by {e:e}");
            }
            outputs.push(out.output);
        }
        let e = relative_error(&outputs[1], &outputs[0]);
        assert!(e < 1e-5, "hidden {hidden}: per step and per sequence differ by {e:e}");
    }
}

/// The GPU's input gradient of one unit of `layer` against candle's autograd on the CPU.
fn check_gradient(ctx: &GpuContext, gpu: &mut GpuModel, model: &Model, x: &Tensor, layer: &str) -> f32 {
    let var = candle_core::Var::from_tensor(x).unwrap();
    let map = model.forward_map(var.as_tensor(), layer, ScanBackend::Auto).unwrap();
    let (b, c, h, w) = map.dims4().unwrap();
    // The first image's most active unit (a unit after a ReLU may be dead, and have none).
    let first: Vec<f32> = map.get(0).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let best = (0..first.len()).fold(0, |m, i| if first[i] > first[m] { i } else { m });
    let (channel, y, xx) = (best / (h * w), (best / w) % h, best % w);
    let mut mask = vec![0f32; b * c * h * w];
    for i in 0..b {
        mask[((i * c + channel) * h + y) * w + xx] = 1.0;
    }
    let mask = Tensor::from_vec(mask, (b, c, h, w), &Device::Cpu).unwrap();
    let grads = (map * mask).unwrap().sum_all().unwrap().backward().unwrap();
    let cpu = grads.get(var.as_tensor()).unwrap().clone();
    let seed = GradientSeed { layer, channel: Some(channel), y, x: xx };
    let (got, shape) = gpu.input_gradient(ctx, x, &seed).unwrap();
    assert_eq!(shape, [b, c, h, w], "{layer}: the seed's map");
    assert_eq!(got.dims(), x.dims());
    let e = relative_error(&got, &cpu);
    let peak = cpu.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(peak > 0.0, "{layer}: the unit depends on the input");
    assert!(
        e < 1e-4,
        "{}: gradient of {layer}[{channel}, {y}, {xx}] differs by {e:e}",
        model.desc().display_name()
    );
    e
}

#[test]
fn input_gradients_on_the_gpu_match_the_cpu() {
    let Some(ctx) = context() else { return };
    // The bundled context networks (convolutions, max pooling, inserted vanilla pairs merged by
    // the mean), every layer.
    for name in ["context-lrnn", "context-lrnn-finetuned", "context-cnn"] {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models").join(name);
        let (model, _) = Checkpoint::open(&dir, &Device::Cpu).and_then(Checkpoint::into_run).unwrap();
        let x = (randn((2, 1, 48, 40)) * 50.0).unwrap();
        let mut gpu = GpuModel::upload(&ctx, &model).unwrap();
        let layers: Vec<String> =
            gpu.forward(&ctx, &x, Capture::All).unwrap().captured.into_iter().map(|(n, _)| n).collect();
        let mut worst = 0f32;
        for layer in layers
            .iter()
            .filter(|l| !l.contains(".lr") && !l.contains(".rl") && !l.contains(".tb") && !l.contains(".bt"))
        {
            worst = worst.max(check_gradient(&ctx, &mut gpu, &model, &x, layer));
        }
        eprintln!("{name}: {} layers, worst {worst:.1e}", layers.len());
    }
    // Lone vanilla modules with their own projections: both merges that need a split or a
    // factor, narrow and wide states, more than 64 sequences.
    for (i, (hidden, merge, shape)) in [
        (70, Merge::Concat, (2, 5, 7, 11)),
        (130, Merge::Mean, (1, 3, 70, 4)),
        (40, Merge::Sum, (1, 2, 1, 6)),
    ]
    .into_iter()
    .enumerate()
    {
        let cfg = LayerRnnConfig { in_channels: shape.1, hidden, cell: Cell::Vanilla, merge };
        let model = seeded(ModelDesc::Lrnn(cfg), 70 + i as u64);
        let x = randn(shape);
        let mut gpu = GpuModel::upload(&ctx, &model).unwrap();
        let layers: Vec<String> =
            gpu.forward(&ctx, &x, Capture::All).unwrap().captured.into_iter().map(|(n, _)| n).collect();
        assert!(layers.len() >= 4, "{layers:?}");
        check_gradient(&ctx, &mut gpu, &model, &x, "output");
    }
    // The paper's baseline CIFAR network: BatchNorm in inference mode (folded into a
    // convolution, or alone before one), concatenations, ReLUs; its stages' ERFs.
    let desc = ModelDesc::Cifar(lrnn_core::models::cifar::CifarConfig {
        in_channels: 1,
        ..lrnn_core::models::cifar::CifarConfig::named("Baseline-CNN-Max")
    });
    let model = fixed_seeded(desc, 12);
    let x = fixed_randn((2, 1, 12, 16), 9);
    let mut gpu = GpuModel::upload(&ctx, &model).unwrap();
    for layer in ["stage1.0", "stage3.0"] {
        check_gradient(&ctx, &mut gpu, &model, &x, layer);
    }
    // Vanilla + LayerNorm pairs: a lone module, and E-RNN-Max's L-RNN stages.
    let cfg = LayerRnnConfig { in_channels: 3, hidden: 20, cell: Cell::VanillaLn, merge: Merge::Concat };
    let model = fixed_seeded(ModelDesc::Lrnn(cfg), 13);
    let mut gpu = GpuModel::upload(&ctx, &model).unwrap();
    check_gradient(&ctx, &mut gpu, &model, &fixed_randn((2, 3, 6, 9), 10), "output");
    let desc = ModelDesc::Cifar(lrnn_core::models::cifar::CifarConfig {
        in_channels: 1,
        ..lrnn_core::models::cifar::CifarConfig::named("E-RNN-Max")
    });
    let model = fixed_seeded(desc, 14);
    let x = fixed_randn((2, 1, 12, 16), 11);
    let mut gpu = GpuModel::upload(&ctx, &model).unwrap();
    for layer in ["stage2.0", "stage3.1"] {
        check_gradient(&ctx, &mut gpu, &model, &x, layer);
    }
    // VGG-16 FCN-8s with L-RNN heads (40 units) at a small size: the class scores through the
    // upsampling and its fused sums, the trunk, the pairs; and FCN-32s' single upsampling.
    for (i, (variant, lrnn, shape)) in
        [(Variant::Fcn8s, true, (1, 3, 64, 96)), (Variant::Fcn32s, false, (1, 3, 32, 64))]
            .into_iter()
            .enumerate()
    {
        // Fixed weights and input: through 13 ReLUs and 5 max-poolings random ones now and then
        // hold a near-tie closer than the two forward passes' rounding (~1e-6), where the GPU
        // and the CPU route the gradient differently (a piecewise function's gradient at a
        // kink; PyTorch's CPU and CUDA differ there too). These have none on lavapipe; the test
        // is about agreement where the function is differentiable.
        let model = Model::new_seeded(fcn(variant, lrnn, 40), &Device::Cpu, 90 + i as u64).unwrap();
        let mut rng = lrnn_core::rng::Rng(7 + i as u64);
        let vars = model.varmap().data().lock().unwrap().clone();
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for name in names {
            let var = &vars[name];
            let t = var.as_tensor();
            let fan_in: usize = t.dims().iter().skip(1).product::<usize>().max(1);
            let scale = if name.contains(".v_") {
                0.5 / (t.dim(t.rank() - 1).unwrap() as f32).sqrt()
            } else if t.rank() == 1 {
                0.1
            } else {
                (2.0 / fan_in as f32).sqrt()
            };
            let v: Vec<f32> = (0..t.elem_count()).map(|_| scale * rng.normal()).collect();
            var.set(&Tensor::from_vec(v, t.shape(), &Device::Cpu).unwrap()).unwrap();
        }
        let values: Vec<f32> =
            (0..shape.0 * shape.1 * shape.2 * shape.3).map(|_| 30.0 * rng.normal()).collect();
        let x = Tensor::from_vec(values, shape, &Device::Cpu).unwrap();
        let mut gpu = GpuModel::upload(&ctx, &model).unwrap();
        let e = check_gradient(&ctx, &mut gpu, &model, &x, "output");
        eprintln!("{}: output gradient {e:.1e}", model.desc().display_name());
    }
    // GRU pairs through time: lone modules (every merge, a state wider than a workgroup whose
    // 25 steps lavapipe runs in chunks, the carry passed between them; more than 64 sequences), and A-Sum-GRU-Max (its L-RNN module in stage 3, a sum fusion).
    for (i, (hidden, merge, shape)) in
        [(8, Merge::Sum, (2, 3, 5, 7)), (300, Merge::Concat, (1, 2, 3, 25)), (9, Merge::Mean, (1, 2, 70, 3))]
            .into_iter()
            .enumerate()
    {
        let cfg = LayerRnnConfig { in_channels: shape.1, hidden, cell: Cell::Gru, merge };
        let model = fixed_seeded(ModelDesc::Lrnn(cfg), 80 + i as u64);
        let mut gpu = GpuModel::upload(&ctx, &model).unwrap();
        check_gradient(&ctx, &mut gpu, &model, &fixed_randn(shape, 15 + i as u64), "output");
    }
    let desc = ModelDesc::Cifar(lrnn_core::models::cifar::CifarConfig {
        in_channels: 1,
        ..lrnn_core::models::cifar::CifarConfig::named("A-Sum-GRU-Max")
    });
    let model = fixed_seeded(desc, 16);
    let x = fixed_randn((2, 1, 12, 16), 18);
    let mut gpu = GpuModel::upload(&ctx, &model).unwrap();
    for layer in ["stage2.0", "stage3.0"] {
        check_gradient(&ctx, &mut gpu, &model, &x, layer);
    }
    // Long et al.'s FCNs in their published layout (the PyTorch-parity fixtures' narrow
    // widths): transposed convolutions, crops, Caffe's ceil pooling; FCN-8s with L-RNN heads.
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    for variant in ["32s", "8s"] {
        let desc = ModelDesc::load(&fixtures.join(format!("fcn{variant}_caffe.json"))).unwrap();
        let model =
            Model::load(desc, &fixtures.join(format!("fcn{variant}_caffe.zip.pth")), &Device::Cpu).unwrap();
        let x = (fixed_randn((1, 3, 23, 30), 19) * 60.0).unwrap();
        let mut gpu = GpuModel::upload(&ctx, &model).unwrap();
        check_gradient(&ctx, &mut gpu, &model, &x, "output");
        if variant == "8s" {
            let lrnn = model.with_lrnn_heads().unwrap();
            randomise(&lrnn);
            let mut gpu = GpuModel::upload(&ctx, &lrnn).unwrap();
            check_gradient(&ctx, &mut gpu, &lrnn, &x, "output");
        }
    }
    // A layer the model does not have is named in the error.
    let seed = GradientSeed { layer: "no-such-layer", channel: Some(0), y: 0, x: 0 };
    assert!(gpu.input_gradient(&ctx, &x, &seed).unwrap_err().to_string().contains("no-such-layer"));
}

#[test]
fn the_context_networks_match_the_cpu_on_random_weights() {
    let Some(ctx) = context() else { return };
    for (i, name) in ["Context-CNN", "Context-LRNN"].iter().enumerate() {
        let model = seeded(ModelDesc::from_name_or_file(name).unwrap(), 10 + i as u64);
        // H != W, both divisible by 4 (two pools).
        check(&ctx, &model, &randn((2, 1, 20, 36)));
    }
}

/// A convnet with a 5x5 convolution without ReLU, a pool leaving odd sizes, pairs inserted on
/// both axes (the vertical one 70 wide: 64 + 6), global mean pooling; three classes.
fn odd_convnet() -> ConvNetConfig {
    let conv = |name: &str, out, kernel, relu| LayerSpec::Conv { name: name.into(), out, kernel, relu };
    ConvNetConfig {
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
    }
}

#[test]
fn odd_shapes_both_axes_and_mean_pooling_match_the_cpu() {
    let Some(ctx) = context() else { return };
    let cfg = odd_convnet();
    let model = seeded(ModelDesc::Convnet(cfg), 3);
    // After the pool: 7x11, neither a multiple of anything; 70 hidden units: 64 + 6.
    check(&ctx, &model, &randn((3, 3, 14, 22)));
}

#[test]
fn the_cifar_networks_match_the_cpu_with_both_cells_every_fusion_and_batchnorm() {
    let Some(ctx) = context() else { return };
    // E: vanilla + LN, concat and forward fusions, max pooling; A-Sum-GRU: GRU, sums with 1x1
    // projections where channels change; A-Forward-GRU-Avg: mean pooling; B-RNN: two CNN modules
    // in a row.
    for (i, name) in ["E-RNN-Max", "A-Sum-GRU-Max", "A-Forward-GRU-Avg", "B-RNN-Max"].iter().enumerate() {
        let model = seeded(ModelDesc::from_name_or_file(name).unwrap(), 30 + i as u64);
        // 12x20: 6x10 and 3x5 after the pools.
        check(&ctx, &model, &randn((2, 3, 12, 20)));
    }
}

fn fcn(variant: Variant, lrnn: bool, heads: usize) -> ModelDesc {
    ModelDesc::Fcn(FcnConfig { variant, heads, lrnn, classes: 5, input_size: None, v_init: 0.0 })
}

#[test]
fn vgg16_fcns_match_the_cpu_at_a_small_size() {
    let Some(ctx) = context() else { return };
    // 64x96: pool5 is 2x3, pool3 (FCN-8s's finest branch, 1024 hidden units) 8x12. The full
    // 384x384 FCN-8s-LRNN (n = 1024) is checked by `cargo bench --bench gpu_forward`.
    check(&ctx, &seeded(fcn(Variant::Fcn8s, true, 96), 40), &randn((1, 3, 64, 96)));
    check(&ctx, &seeded(fcn(Variant::Fcn32s, false, 40), 41), &randn((2, 3, 32, 64)));
}

#[test]
fn long_et_al_fcns_match_the_cpu_with_their_published_weights_layout() {
    let Some(ctx) = context() else { return };
    // The PyTorch-parity fixtures (narrow widths): ceil pooling on odd sides, every transposed
    // convolution and crop; the L-RNN variant with non-zero recurrences.
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    for variant in ["32s", "16s", "8s"] {
        let desc = ModelDesc::load(&fixtures.join(format!("fcn{variant}_caffe.json"))).unwrap();
        let model =
            Model::load(desc, &fixtures.join(format!("fcn{variant}_caffe.zip.pth")), &Device::Cpu).unwrap();
        check(&ctx, &model, &(randn((1, 3, 47, 61)) * 60.0).unwrap());
        if variant == "8s" {
            let lrnn = model.with_lrnn_heads().unwrap();
            randomise(&lrnn);
            check(&ctx, &lrnn, &(randn((2, 3, 21, 30)) * 60.0).unwrap());
        }
    }
}

#[test]
fn every_bundled_model_matches_the_cpu_with_its_trained_weights() {
    let Some(ctx) = context() else { return };
    let folders = bundled::bundled_model_dirs();
    assert!(folders.len() >= 6, "the bundled models: {folders:?}");
    for dir in folders {
        let (model, _) = Checkpoint::open(&dir, &Device::Cpu).and_then(Checkpoint::into_run).unwrap();
        let (c, size) = (model.desc().in_channels(), model.desc().input_size());
        // A random image at the model's own input size, a second one a little wider.
        let x = (randn((2, c, size, size + 32)) * 50.0).unwrap();
        eprintln!("{}", dir.display());
        check(&ctx, &model, &x);
    }
}

#[test]
fn segmentation_coloured_on_the_gpu_matches_the_cpu() {
    use lrnn_core::probe::render::label_overlay;
    use lrnn_core::train::seg::predicted_labels;
    let Some(ctx) = context() else { return };
    // The bundled scenes model on a bundled scene: an object on a background.
    let root = std::path::Path::new(".."); // the repository, from core/ (where cargo and gpu_bench.sh run tests)
    let (model, _) = Checkpoint::open(&root.join("assets/models/scenes-fcn8s-lrnn"), &Device::Cpu)
        .and_then(Checkpoint::into_run)
        .unwrap();
    let image = image::open(root.join("assets/scenes/JPEGImages/scene-00003.jpg")).unwrap();
    let (h, w) = (96, 96);
    let x = lrnn_core::io::vgg16::caffe_input(&image, h).unwrap();
    let photo =
        image.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle).to_rgb8().into_raw();
    let mut gpu = GpuModel::upload(&ctx, &model).unwrap();
    let seg = gpu.segment(&ctx, &x, Some(&photo), 0.6).unwrap();
    let labels_only = gpu.segment(&ctx, &x, None, 0.6).unwrap();
    assert_eq!((labels_only.labels.as_slice(), labels_only.picture), (seg.labels.as_slice(), None));
    assert_eq!(seg.size, (w, h));
    let cpu_scores = model.forward(&x, &mut lrnn_core::nn::Forward::eval()).unwrap();
    let cpu = predicted_labels(&cpu_scores, w, h).unwrap();
    let differ = cpu.labels.iter().zip(&seg.labels).filter(|(a, b)| a != b).count();
    // A pixel whose two best scores are within float rounding may go either way.
    assert!(differ * 1000 <= w * h, "{differ} of {} labels differ", w * h);
    let objects = seg.labels.iter().filter(|&&l| l != 0).count();
    assert!(objects > 200 && objects < w * h / 2, "an object on a background: {objects} object pixels");
    let overlay = label_overlay(&photo, &seg.labels, w, h, 0.6);
    for (i, (g, c)) in seg.picture.unwrap().chunks(4).zip(overlay.as_raw().chunks(3)).enumerate() {
        assert_eq!(g[3], 255);
        for k in 0..3 {
            assert!(g[k].abs_diff(c[k]) <= 1, "pixel {i}: gpu {g:?} cpu {c:?}");
        }
    }
    let classifier = seeded(ModelDesc::from_name_or_file("Context-CNN").unwrap(), 1);
    let err = GpuModel::upload(&ctx, &classifier)
        .unwrap()
        .segment(&ctx, &randn((1, 1, 32, 32)), None, 0.5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a segmentation network"), "{err}");
    let err = gpu.segment(&ctx, &x, Some(&photo[..30]), 0.5).unwrap_err().to_string();
    assert!(err.contains("a 96x96 RGB image has"), "{err}");
}

#[test]
fn bad_inputs_and_buffers_too_large_for_the_adapter_give_messages() {
    let Some(ctx) = context() else { return };
    let model = seeded(ModelDesc::from_name_or_file("Context-CNN").unwrap(), 1);
    let mut gpu = GpuModel::upload(&ctx, &model).unwrap();
    let err = gpu.forward(&ctx, &randn((1, 3, 8, 8)), Capture::Nothing).unwrap_err().to_string();
    assert!(err.contains("3 channels, the model takes 1"), "{err}");
    let mut fcn_gpu = GpuModel::upload(&ctx, &seeded(fcn(Variant::Fcn32s, false, 8), 2)).unwrap();
    let err = fcn_gpu.forward(&ctx, &randn((1, 3, 40, 64)), Capture::Nothing).unwrap_err().to_string();
    assert!(err.contains("multiples of 32"), "{err}");
    // An adapter whose buffers hold 64 KiB: the first layer's map of a 1x1x96x96 input does not fit.
    let small = GpuContext::new().unwrap().with_buffer_limit(64 << 10);
    let mut gpu = GpuModel::upload(&small, &model).unwrap();
    let err = gpu.forward(&small, &randn((1, 1, 96, 96)), Capture::Nothing).unwrap_err().to_string();
    assert!(err.contains("conv1 needs 288 KiB, more than the 64 KiB one buffer may hold"), "{err}");
    // Weights too large: VGG's conv1_2 (64 x 64 x 3 x 3 floats).
    let err = GpuModel::upload(&small, &seeded(fcn(Variant::Fcn32s, false, 8), 3)).err().unwrap().to_string();
    assert!(err.contains("features.2 needs 144 KiB"), "{err}");
}

#[test]
fn single_kernels_match_candle_at_any_kernel_stride_padding_and_size() {
    use lrnn_core::gpu::{conv2d, pool2d, upsample};
    let Some(ctx) = context() else { return };
    let x = randn((2, 3, 13, 17));
    for (k, stride, pad) in [(5, 2, 2), (3, 2, 0), (1, 1, 0), (7, 3, 3), (4, 1, 1), (3, 1, 1)] {
        // 70 output channels: one tile of 64 and a ragged one.
        let w = randn((70, 3, k, k));
        let b = Tensor::randn(0f32, 1.0, 70, &Device::Cpu).unwrap();
        for relu in [false, true] {
            let gpu = conv2d(&ctx, &x, &w, Some(&b), stride, pad, relu).unwrap();
            let mut cpu = x
                .conv2d(&w, pad, stride, 1, 1)
                .unwrap()
                .broadcast_add(&b.reshape((1, 70, 1, 1)).unwrap())
                .unwrap();
            if relu {
                cpu = cpu.relu().unwrap();
            }
            let e = relative_error(&gpu, &cpu);
            assert!(e < 1e-4, "conv k {k} stride {stride} pad {pad} relu {relu}: {e:e}");
        }
    }
    let err =
        conv2d(&ctx, &randn((1, 3, 2, 2)), &randn((4, 3, 5, 5)), None, 1, 0, false).unwrap_err().to_string();
    assert!(err.contains("smaller than the 5x5 kernel"), "{err}");
    for (k, stride) in [(2, 2), (3, 3), (3, 2), (2, 1)] {
        let gpu = pool2d(&ctx, &x, k, stride, false).unwrap();
        let cpu = x.max_pool2d_with_stride(k, stride).unwrap();
        assert_eq!(relative_error(&gpu, &cpu), 0.0, "max pool {k}/{stride}");
        let gpu = pool2d(&ctx, &x, k, stride, true).unwrap();
        let cpu = x.avg_pool2d_with_stride(k, stride).unwrap();
        assert!(relative_error(&gpu, &cpu) < 1e-6, "mean pool {k}/{stride}");
    }
    for size in [(31, 45), (26, 34), (13, 17), (40, 20)] {
        let gpu = upsample(&ctx, &x, size).unwrap();
        let cpu = lrnn_core::models::fcn::upsample_bilinear(&x, size.0, size.1).unwrap();
        let e = relative_error(&gpu, &cpu);
        assert!(e < 1e-5, "upsampling to {size:?}: {e:e}");
    }
}

#[test]
fn only_the_maps_asked_for_are_read_back() {
    let Some(ctx) = context() else { return };
    let model = seeded(ModelDesc::from_name_or_file("E-RNN-Max").unwrap(), 5);
    let mut gpu = GpuModel::upload(&ctx, &model).unwrap();
    let x = randn((1, 3, 8, 8));
    let wanted = ["stem", "stage2.0.lrnn.tb"];
    let out = gpu.forward(&ctx, &x, Capture::Only(&wanted)).unwrap();
    let names: Vec<&str> = out.captured.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, wanted);
    assert_eq!(out.captured[1].1.dims(), [1, 128, 4, 4]);
    assert_eq!(out.output.dims(), [1, 10]);
}

#[test]
fn a_lost_device_gives_a_message_not_a_panic() {
    let Some(ctx) = context() else { return };
    let model = seeded(ModelDesc::from_name_or_file("Context-LRNN").unwrap(), 6);
    let mut gpu = GpuModel::upload(&ctx, &model).unwrap();
    let x = randn((1, 1, 16, 16));
    gpu.forward(&ctx, &x, Capture::Nothing).unwrap();
    ctx.destroy();
    let err = gpu.forward(&ctx, &x, Capture::Nothing).unwrap_err().to_string();
    assert!(err.contains("lost") || err.contains("invalid") || err.contains("destroyed"), "{err}");
}

#[test]
fn colour_maps_on_the_gpu_match_the_cpu() {
    use lrnn_core::colour::ColourMap;
    let Some(ctx) = context() else { return };
    // 1,000 values (not a multiple of 64), a NaN gap, both signs.
    let mut values: Vec<f32> = (0..1000).map(|i| ((i as f32) * 0.37).sin() * 3.0 - 0.5).collect();
    values[17] = f32::NAN;
    for map in ColourMap::ALL {
        let range = map.range(&values);
        let gpu = lrnn_core::gpu::paint(&ctx, &values, map, range).unwrap();
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

#[test]
fn the_profiler_times_every_kernel_of_a_forward_pass_and_changes_no_output() {
    let Some(ctx) = context() else { return };
    let model = seeded(ModelDesc::from_name_or_file("Context-LRNN").unwrap(), 7);
    let mut gpu = GpuModel::upload(&ctx, &model).unwrap();
    let x = randn((1, 1, 32, 32));
    let plain = gpu.forward(&ctx, &x, Capture::Nothing).unwrap().output;
    gpu.set_profiling(true);
    let timed = gpu.forward(&ctx, &x, Capture::Nothing).unwrap().output;
    // Timestamps change nothing computed.
    assert_eq!(
        plain.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        timed.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    let has = ctx.has_timestamps();
    let Some(report) = gpu.profile() else {
        assert!(!has, "the adapter has timestamp queries but no table came back");
        eprintln!("{} has no timestamp queries: the profiler is off", ctx.describe());
        return;
    };
    println!("{report}");
    // Context-LRNN: six convolutions (conv5 / conv6 are followed by pairs), pooling, two scan
    // pairs (each one or more dispatches), their merges, the head.
    let calls = |k: &str| report.kernels.iter().find(|r| r.kernel == k).map_or(0, |r| r.calls);
    assert!(calls("conv2d") >= 6, "{report}");
    assert!(calls("scan_pair") >= 2, "{report}");
    assert!(calls("pool2d") >= 2, "{report}");
    let share: f64 = report.kernels.iter().map(|k| k.share).sum();
    assert!((share - 1.0).abs() < 1e-9 || report.total_ms == 0.0, "{report}");
    assert!(report.total_ms >= 0.0 && report.untimed == 0);
    let conv = report.kernels.iter().find(|r| r.kernel == "conv2d").unwrap();
    assert!(conv.gflops.is_some() && conv.gbs >= 0.0, "convolutions report GFLOP/s: {report}");
    let text = report.to_string();
    assert!(text.starts_with("kernel") && text.contains("conv2d") && text.contains("all kernels"), "{text}");
}

/// One CPU training step as the trainer takes it (training mode, dropout drawn from `rng`, the
/// mean cross-entropy per image or per pixel, backward, the optimiser): the loss and the
/// gradients by weight name.
fn cpu_step(
    model: &Model,
    opt: &mut Optimizer,
    x: &Tensor,
    labels: &[u32],
    rng: lrnn_core::rng::Rng,
) -> (f32, Vec<(String, Tensor)>) {
    let mut fwd = lrnn_core::nn::Forward::train().with_rng(rng);
    let logits = model.forward(x, &mut fwd).unwrap();
    let loss = lrnn_core::train::seg::mean_cross_entropy(&logits, labels).unwrap();
    let grads = loss.backward().unwrap();
    let named = model
        .trainable_vars()
        .unwrap()
        .into_iter()
        .map(|(n, v)| (n, grads.get(&v).unwrap().clone()))
        .collect();
    opt.step(&grads).unwrap();
    (loss.to_scalar::<f32>().unwrap(), named)
}

/// Training steps of `make()`'s model on the GPU and on the CPU with each optimiser. SGD: two
/// steps; the losses and the first step's gradients within 1e-4 of the CPU's (relative to the
/// tensor's peak), the second step's and the momentum within 1e-3 (they start from weights the
/// first step left apart by rounding, through deep networks with batch statistics), every
/// weight and running statistic within 1e-4. RMSprop and Adam: one step (their steps move a
/// weight by about ±lr whatever its gradient's size, so a gradient at the noise floor, summed
/// in another order on each path, moves it differently by up to its whole size, and a second
/// step through a deep network starts apart): the loss, the gradients and the state within
/// 1e-4, the weights within 1e-4 where the gradient is above the noise floor (1e-3 of its
/// tensor's peak) and within the step's bound elsewhere (a convolution's bias before a
/// BatchNorm has no gradient at all, only rounding). The worst weight error.
fn check_training(ctx: &GpuContext, what: &str, make: impl Fn() -> Model, x: &Tensor, labels: &[u32]) -> f32 {
    let (mut worst, mut worst_grad) = (0f32, 0f32);
    let start = std::time::Instant::now();
    let lr = 1e-3;
    for config in [
        OptimizerConfig::Sgd { momentum: 0.9 },
        OptimizerConfig::PAPER_RMSPROP,
        OptimizerConfig::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
    ] {
        // (uploaded before the CPU steps change the weights: both start from the same)
        let cpu = make();
        let mut gpu = GpuTrainer::upload(ctx, &cpu, config.gpu_rule()).unwrap();
        let vars: Vec<_> = cpu.trainable_vars().unwrap().into_iter().map(|(_, v)| v).collect();
        let mut opt = Optimizer::new(config, vars, lr).unwrap();
        assert_eq!(gpu.tensors(), cpu.trainable_vars().unwrap().len(), "{what}: every weight trains");
        // Per weight, 1 where every step's gradient is above the noise floor.
        let mut clear: std::collections::BTreeMap<String, Tensor> = Default::default();
        let sign_like = !matches!(config, OptimizerConfig::Sgd { .. });
        let steps = if sign_like { 1 } else { 2 };
        for step in 0..steps {
            let tolerance = if step > 0 { 1e-3 } else { 1e-4 };
            let rng = || lrnn_core::rng::Rng(100 + step);
            let stats = gpu.step(ctx, x, labels, lr, rng()).unwrap();
            let (loss, cpu_grads) = cpu_step(&cpu, &mut opt, x, labels, rng());
            let e = (stats.loss - loss).abs() / loss.abs().max(1e-6);
            assert!(e < 1e-4, "{what} {config:?} step {step}: loss {} against {loss}", stats.loss);
            assert_eq!(stats.counted, labels.iter().filter(|&&l| l != 255).count());
            let gpu_grads = gpu.gradients(ctx).unwrap();
            for (name, g) in &cpu_grads {
                let e = relative_error(&gpu_grads[name], g);
                assert!(
                    e < tolerance,
                    "{what} {config:?} step {step}: the gradient of {name} differs by {e:e}"
                );
                worst_grad = worst_grad.max(e);
                let peak = g.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                let above =
                    g.abs().unwrap().ge(1e-3 * f64::from(peak)).unwrap().to_dtype(DType::F32).unwrap();
                let c = clear.remove(name).map_or(above.clone(), |c| (c * &above).unwrap());
                clear.insert(name.clone(), c);
            }
        }
        let weights = gpu.weights(ctx).unwrap();
        // BatchNorm's running statistics, updated by every forward pass.
        for (name, var) in cpu.varmap().data().lock().unwrap().iter() {
            if name.contains("running_") {
                let e = relative_error(&weights[name], var.as_tensor());
                assert!(e < 1e-4, "{what} {config:?}: {name} differs by {e:e}");
            }
        }
        let states = gpu.state(ctx).unwrap();
        // The optimiser's state holds SGD's second step's gradient.
        let state_tolerance = if sign_like { 1e-4 } else { 1e-3 };
        for ((name, var), state) in cpu.trainable_vars().unwrap().iter().zip(opt.state()) {
            let (g, c) = (&weights[name], var.as_tensor());
            let (e, loose) = if sign_like {
                let mask = &clear[name];
                let diff = (g - c).unwrap().abs().unwrap();
                let near_zero =
                    (&diff * (1.0 - mask).unwrap()).unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                let peak = c.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-6);
                let strict = (&diff * mask).unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                (strict / peak, near_zero)
            } else {
                (relative_error(g, c), 0.0)
            };
            assert!(e < 1e-4, "{what} {config:?}: {name} differs by {e:e}");
            // (at most 1 / sqrt(1 - α) = 3.2 lr per step and path)
            assert!(
                loose < 2.0 * 3.2 * lr as f32,
                "{what} {config:?}: {name} differs by {loose:e} where its gradient is ~0"
            );
            worst = worst.max(e);
            let state = state.as_ref().unwrap();
            let (first, second) = match config {
                OptimizerConfig::Adam { .. } => (state.get(0).unwrap(), Some(state.get(1).unwrap())),
                _ => (state.clone(), None),
            };
            let [g1, g2] = &states[name];
            let e = relative_error(g1.as_ref().unwrap(), &first);
            assert!(e < state_tolerance, "{what} {config:?}: state of {name} differs by {e:e}");
            if let Some(second) = second {
                let e = relative_error(g2.as_ref().unwrap(), &second);
                assert!(e < state_tolerance, "{what} {config:?}: second moment of {name} differs by {e:e}");
            }
        }
    }
    eprintln!(
        "{what}: SGD two steps, RMSprop and Adam one, worst gradient {worst_grad:.1e}, weight {worst:.1e} ({:.1} s)",
        start.elapsed().as_secs_f64()
    );
    worst
}

/// `randn` from a seeded generator (the same values every run).
fn fixed_randn(shape: (usize, usize, usize, usize), seed: u64) -> Tensor {
    let mut rng = lrnn_core::rng::Rng(seed);
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    Tensor::from_vec((0..n).map(|_| rng.normal()).collect::<Vec<f32>>(), shape, &Device::Cpu).unwrap()
}

/// [`seeded`] with the random values of [`randomise`] from a seeded generator.
fn fixed_seeded(desc: ModelDesc, seed: u64) -> Model {
    let model = Model::new_seeded(desc, &Device::Cpu, seed).unwrap();
    let vars = model.varmap().data().lock().unwrap().clone();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for (i, name) in names.into_iter().enumerate() {
        let t = vars[name].as_tensor();
        let dims = t.dims().to_vec();
        let mut rng = lrnn_core::rng::Rng(seed * 1000 + i as u64);
        let n: usize = dims.iter().product();
        let mut randn = |scale: f32| {
            let v: Vec<f32> = (0..n).map(|_| rng.normal() * scale).collect();
            Tensor::from_vec(v, dims.as_slice(), &Device::Cpu).unwrap()
        };
        let value = if name.contains(".v_") {
            let d = dims[0];
            let eye =
                (Tensor::eye(d, DType::F32, &Device::Cpu).unwrap() * (0.3 + 0.05 * (i % 5) as f64)).unwrap();
            (randn(0.6 / (d as f32).sqrt()) + eye).unwrap()
        } else if name.ends_with("ln.weight") || name.contains(".bn") && name.ends_with(".weight") {
            (randn(0.2) + 1.0).unwrap()
        } else if name.ends_with("running_var") {
            (randn(0.2).abs().unwrap() + 0.5).unwrap()
        } else if name.ends_with("running_mean") || name.ends_with("ln.bias") || name.ends_with("bn1.bias") {
            randn(0.3)
        } else {
            continue;
        };
        vars[name].set(&value).unwrap();
    }
    model
}

#[test]
fn training_steps_on_the_gpu_match_the_cpu() {
    let Some(ctx) = context() else { return };
    // Inputs and random weights from seeded generators: the same test every run.
    let mut rng = lrnn_core::rng::Rng(5);
    // The bundled context network with inserted pairs (shared projections, the mean merge),
    // global max pooling and a linear head; per image.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models/context-lrnn");
    let open = || Checkpoint::open(&dir, &Device::Cpu).and_then(Checkpoint::into_run).unwrap().0;
    let x = (fixed_randn((3, 1, 40, 36), 1) * 5.0).unwrap();
    check_training(&ctx, "context-lrnn", open, &x, &[1, 0, 1]);
    // Lone vanilla modules with their own projections, per pixel over the output's channels,
    // some pixels ignored: concatenation, mean and sum merges, more than 64 sequences.
    for (i, (hidden, merge, shape)) in
        [(6, Merge::Concat, (2, 3, 7, 9)), (5, Merge::Mean, (1, 2, 70, 3)), (70, Merge::Sum, (2, 4, 5, 6))]
            .into_iter()
            .enumerate()
    {
        let cfg = LayerRnnConfig { in_channels: shape.1, hidden, cell: Cell::Vanilla, merge };
        let classes = if merge == Merge::Concat { 2 * hidden } else { hidden };
        let x = fixed_randn(shape, 2 + i as u64);
        let pixels = shape.0 * shape.2 * shape.3;
        let labels: Vec<u32> = (0..pixels)
            .map(|_| if rng.uniform() < 0.1 { 255 } else { (rng.next_u64() % classes as u64) as u32 })
            .collect();
        let make = || fixed_seeded(ModelDesc::Lrnn(cfg), 40 + i as u64);
        check_training(&ctx, &format!("L-RNN {hidden} {merge:?}"), make, &x, &labels);
    }
    // A convnet with a 5x5 convolution without ReLU, pairs inserted on both axes (the vertical
    // one 70 wide), odd sizes after the pool, global mean pooling; three classes.
    let cfg = odd_convnet();
    let x = fixed_randn((3, 3, 14, 22), 5);
    check_training(&ctx, "odd convnet", || fixed_seeded(ModelDesc::Convnet(cfg.clone()), 3), &x, &[2, 0, 1]);
    // The paper's baseline: BatchNorm + ReLU in training mode (batch statistics, running ones
    // updated), concatenations, global max pooling, dropout 0.5 (the same masks), grey input.
    let desc = ModelDesc::Cifar(lrnn_core::models::cifar::CifarConfig {
        in_channels: 1,
        ..lrnn_core::models::cifar::CifarConfig::named("Baseline-CNN-Max")
    });
    let x = fixed_randn((4, 1, 8, 12), 6);
    check_training(&ctx, "Baseline-CNN-Max", || fixed_seeded(desc.clone(), 8), &x, &[3, 9, 0, 3]);
    // Vanilla + LayerNorm pairs (the paper's "RNN"): lone modules per pixel (every merge, a
    // state wider than a workgroup; with 300 classes label 255 is still ignored per pixel), and
    // E-RNN-Max (with BatchNorm, dropout) per image.
    for (i, (hidden, merge, shape)) in
        [(6, Merge::Concat, (2, 3, 5, 7)), (300, Merge::Sum, (1, 2, 4, 3)), (9, Merge::Mean, (2, 2, 3, 6))]
            .into_iter()
            .enumerate()
    {
        let cfg = LayerRnnConfig { in_channels: shape.1, hidden, cell: Cell::VanillaLn, merge };
        let classes = if merge == Merge::Concat { 2 * hidden } else { hidden };
        let x = fixed_randn(shape, 20 + i as u64);
        let pixels = shape.0 * shape.2 * shape.3;
        let labels: Vec<u32> = (0..pixels)
            .map(|_| if rng.uniform() < 0.1 { 255 } else { (rng.next_u64() % classes as u64) as u32 })
            .collect();
        let make = || fixed_seeded(ModelDesc::Lrnn(cfg), 60 + i as u64);
        check_training(&ctx, &format!("L-RNN LN {hidden} {merge:?}"), make, &x, &labels);
    }
    let desc = ModelDesc::Cifar(lrnn_core::models::cifar::CifarConfig {
        in_channels: 1,
        ..lrnn_core::models::cifar::CifarConfig::named("E-RNN-Max")
    });
    let x = fixed_randn((3, 1, 8, 12), 7);
    check_training(&ctx, "E-RNN-Max", || fixed_seeded(desc.clone(), 9), &x, &[1, 7, 4]);
    // GRU pairs (the paper's A-D networks): lone modules per pixel (every merge, a state wider
    // than a workgroup over 20 steps: chunks on lavapipe), and A-Concat-GRU-Max per image.
    for (i, (hidden, merge, shape)) in
        [(6, Merge::Concat, (2, 3, 5, 7)), (300, Merge::Sum, (1, 2, 4, 20)), (9, Merge::Mean, (2, 2, 3, 6))]
            .into_iter()
            .enumerate()
    {
        let cfg = LayerRnnConfig { in_channels: shape.1, hidden, cell: Cell::Gru, merge };
        let classes = if merge == Merge::Concat { 2 * hidden } else { hidden };
        let x = fixed_randn(shape, 30 + i as u64);
        let pixels = shape.0 * shape.2 * shape.3;
        let labels: Vec<u32> = (0..pixels)
            .map(|_| if rng.uniform() < 0.1 { 255 } else { (rng.next_u64() % classes as u64) as u32 })
            .collect();
        let make = || fixed_seeded(ModelDesc::Lrnn(cfg), 70 + i as u64);
        check_training(&ctx, &format!("L-RNN GRU {hidden} {merge:?}"), make, &x, &labels);
    }
    let desc = ModelDesc::Cifar(lrnn_core::models::cifar::CifarConfig {
        in_channels: 1,
        ..lrnn_core::models::cifar::CifarConfig::named("A-Concat-GRU-Max")
    });
    let x = fixed_randn((2, 1, 8, 12), 8);
    check_training(&ctx, "A-Concat-GRU-Max", || fixed_seeded(desc.clone(), 10), &x, &[6, 2]);
    // Long et al.'s FCN-8s in its published layout (narrow widths): transposed convolutions
    // (trained, as on the CPU), crops, ceil pooling; per pixel, some pixels ignored.
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let load = || {
        let desc = ModelDesc::load(&fixtures.join("fcn8s_caffe.json")).unwrap();
        Model::load(desc, &fixtures.join("fcn8s_caffe.zip.pth"), &Device::Cpu).unwrap()
    };
    let x = (fixed_randn((1, 3, 21, 26), 12) * 60.0).unwrap();
    let labels: Vec<u32> =
        (0..21 * 26).map(|_| if rng.uniform() < 0.1 { 255 } else { (rng.next_u64() % 3) as u32 }).collect();
    check_training(&ctx, "FCN-8s (Caffe layout)", load, &x, &labels);
}

#[test]
fn rf_depth_on_the_gpu_gives_the_cpus_table() {
    use lrnn_core::probe::rf_depth::{rf_depth, rf_depth_on_gpu, Channels};
    let Some(ctx) = context() else { return };
    // The bundled context L-RNN (its CNN's curve too: every V at zero, uploaded again), and
    // E-RNN-Max (a classifier: its scores' centre unit is the mean over classes).
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models/context-lrnn-finetuned");
    let (lrnn, _) = Checkpoint::open(&dir, &Device::Cpu).and_then(Checkpoint::into_run).unwrap();
    let desc = ModelDesc::Cifar(lrnn_core::models::cifar::CifarConfig {
        in_channels: 1,
        ..lrnn_core::models::cifar::CifarConfig::named("E-RNN-Max")
    });
    let e_rnn = fixed_seeded(desc, 17);
    for (model, side) in [(&lrnn, 48), (&e_rnn, 16)] {
        let inputs: Vec<Tensor> =
            (0..2).map(|i| (fixed_randn((1, 1, side, side), 40 + i) * 50.0).unwrap()).collect();
        for channels in [Channels::Mean, Channels::One(3)] {
            let mut cpu_calls = 0;
            let cpu = rf_depth(model, &inputs, channels, &mut |_, _| {
                cpu_calls += 1;
                true
            })
            .unwrap();
            let mut calls = 0;
            let gpu = rf_depth_on_gpu(&ctx, model, &inputs, channels, &mut |_, _| {
                calls += 1;
                true
            })
            .unwrap();
            let name = model.desc().display_name();
            assert_eq!(calls, cpu_calls, "{name}: progress after every backward pass, as on the CPU");
            assert!(calls >= 2 * inputs.len() * cpu.model.len(), "{name}: {calls} progress calls");
            assert!(cpu.cnn.is_some() && cpu.model.len() > 3, "{name}: {cpu:?}");
            assert_eq!(cpu, gpu, "{name} {channels:?}");
        }
    }
    // Told to stop, it stops with an error.
    let x = [(fixed_randn((1, 1, 48, 48), 3) * 50.0).unwrap()];
    let e = rf_depth_on_gpu(&ctx, &lrnn, &x, Channels::Mean, &mut |_, _| false).unwrap_err();
    assert!(e.to_string().contains("stopped"), "{e}");
}

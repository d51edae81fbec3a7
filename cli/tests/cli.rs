//! The `lrnn` command line: `run` reproduces the PyTorch fixtures through files, `init` writes
//! loadable weights, `demo` writes its pictures, and bad input gives one clear error naming the
//! file and the tensor or field, with no panic and no output file left behind.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "../../core/tests/common/scratch.rs"]
mod scratch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{DType, Device, Tensor};
use lrnn_core::io::read_tensors;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn lrnn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lrnn")).args(args).output().unwrap()
}

/// Runs `lrnn`, expects success and returns its standard output.
fn lrnn_ok(args: &[&str]) -> String {
    let o = lrnn(args);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "lrnn {args:?}: {text}{}", String::from_utf8_lossy(&o.stderr));
    text
}

fn tmp(name: &str) -> PathBuf {
    scratch::scratch_path(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
    let d =
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    let m = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    d / m.max(1e-12)
}

#[test]
fn run_reproduces_every_pytorch_fixture() {
    for stem in ["lrnn_vanilla_sum", "lrnn_vanilla_ln_concat", "lrnn_gru_sum"] {
        let f = fixtures();
        let out = tmp(&format!("{stem}.out.safetensors"));
        let o = lrnn(&[
            "run",
            "--model",
            s(&f.join(format!("{stem}.json"))),
            "--weights",
            s(&f.join(format!("{stem}.weights.safetensors"))),
            "--input",
            s(&f.join(format!("{stem}.io.safetensors"))),
            "--output",
            s(&out),
        ]);
        assert!(o.status.success(), "{stem}: {}", String::from_utf8_lossy(&o.stderr));
        let got = read_tensors(&out, &Device::Cpu).unwrap();
        let want = read_tensors(&f.join(format!("{stem}.io.safetensors")), &Device::Cpu).unwrap();
        assert_eq!(got.keys().collect::<Vec<_>>(), ["bt", "lr", "output", "rl", "tb"]);
        for (name, t) in &got {
            assert!(max_rel(t, &want[name]) < 1e-5, "{stem}: {name} differs from PyTorch");
        }
    }
}

#[test]
fn init_writes_weights_that_run_loads() {
    let desc = tmp("init.json");
    std::fs::write(
        &desc,
        r#"{"kind": "lrnn", "in_channels": 2, "hidden": 3, "cell": "gru", "merge": "concat"}"#,
    )
    .unwrap();
    let w = tmp("init.safetensors");
    let o = lrnn(&["init", "--model", s(&desc), "--output", s(&w), "--seed", "7"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let w2 = tmp("init2.safetensors");
    assert!(lrnn(&["init", "--model", s(&desc), "--output", s(&w2), "--seed", "7"]).status.success());
    assert_eq!(
        std::fs::read(&w).unwrap(),
        std::fs::read(&w2).unwrap(),
        "the same seed gives the same weights"
    );
    let x = tmp("init.in.safetensors");
    let input = Tensor::randn(0f32, 1.0, (1, 2, 3, 4), &Device::Cpu).unwrap();
    candle_core::safetensors::save(&HashMap::from([("input".to_string(), input)]), &x).unwrap();
    let y = tmp("init.out.safetensors");
    let o = lrnn(&["run", "--model", s(&desc), "--weights", s(&w), "--input", s(&x), "--output", s(&y)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read_tensors(&y, &Device::Cpu).unwrap()["output"].dims(), [1, 6, 3, 4]);
}

#[test]
fn demo_writes_its_pictures() {
    let out = tmp("demo");
    let o = lrnn(&["demo", "--out", s(&out), "--width", "40"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for name in ["input", "lr", "rl", "tb", "bt", "output", "sheet"] {
        let img = image::open(out.join(format!("{name}.png"))).unwrap();
        assert!(img.width() >= 40, "{name}.png is {}x{}", img.width(), img.height());
    }
}

/// Runs `lrnn run --model --weights --input --output`.
fn lrnn_run(model: &Path, weights: &Path, input: &Path, output: &Path) -> Output {
    lrnn(&["run", "--model", s(model), "--weights", s(weights), "--input", s(input), "--output", s(output)])
}

/// Runs `lrnn run` with a fixture's files, some replaced; expects a failure whose message
/// contains every one of `needles`, no panic, and no output file.
fn expect_run_error(model: Option<&Path>, weights: Option<&Path>, input: Option<&Path>, needles: &[&str]) {
    let f = fixtures();
    let stem = "lrnn_vanilla_ln_sum";
    let model = model.map_or_else(|| f.join(format!("{stem}.json")), Path::to_path_buf);
    let weights = weights.map_or_else(|| f.join(format!("{stem}.weights.safetensors")), Path::to_path_buf);
    let input = input.map_or_else(|| f.join(format!("{stem}.io.safetensors")), Path::to_path_buf);
    let out = tmp(&format!("never-{}.safetensors", needles.join("-").replace(['/', ' ', '`'], "_")));
    let o = lrnn_run(&model, &weights, &input, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected a failure for {needles:?}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "error `{err}` does not mention `{n}`");
    }
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    assert!(!out.exists(), "an output file was written despite the error");
}

fn write_weights(name: &str, edit: impl FnOnce(&mut HashMap<String, Tensor>)) -> PathBuf {
    let f = fixtures().join("lrnn_vanilla_ln_sum.weights.safetensors");
    let mut w: HashMap<String, Tensor> = read_tensors(&f, &Device::Cpu).unwrap().into_iter().collect();
    edit(&mut w);
    let p = tmp(name);
    candle_core::safetensors::save(&w, &p).unwrap();
    p
}

#[test]
fn bad_weights_name_the_file_and_tensor() {
    let renamed = write_weights("renamed.safetensors", |w| {
        let t = w.remove("lr.v.weight").unwrap();
        w.insert("lr.v.wieght".into(), t);
    });
    expect_run_error(None, Some(&renamed), None, &["renamed.safetensors", "lr.v.weight", "missing"]);
    let extra = write_weights("extra.safetensors", |w| {
        w.insert("stray".into(), Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap());
    });
    expect_run_error(None, Some(&extra), None, &["extra.safetensors", "stray", "unexpected"]);
    let shape = write_weights("shape.safetensors", |w| {
        w.insert("tb.u.weight".into(), Tensor::zeros((4, 5), DType::F32, &Device::Cpu).unwrap());
    });
    expect_run_error(None, Some(&shape), None, &["shape.safetensors", "tb.u.weight", "[4, 5]", "[4, 4]"]);
    let dtype = write_weights("dtype.safetensors", |w| {
        w.insert("rl.ln.bias".into(), Tensor::zeros(4, DType::F64, &Device::Cpu).unwrap());
    });
    expect_run_error(None, Some(&dtype), None, &["dtype.safetensors", "rl.ln.bias", "F64"]);
    let nan = write_weights("nan.safetensors", |w| {
        let t = w["lr.v.weight"].clone();
        let nan = Tensor::full(f32::NAN, t.dims(), &Device::Cpu).unwrap();
        w.insert("lr.v.weight".into(), nan);
    });
    expect_run_error(None, Some(&nan), None, &["nan.safetensors", "lr.v.weight", "NaN or infinite"]);
    let garbage = tmp("garbage.safetensors");
    std::fs::write(&garbage, b"this is not a safetensors file").unwrap();
    expect_run_error(None, Some(&garbage), None, &["garbage.safetensors", "not a valid safetensors file"]);
    let truncated = tmp("truncated.safetensors");
    let bytes = std::fs::read(fixtures().join("lrnn_vanilla_ln_sum.weights.safetensors")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    expect_run_error(
        None,
        Some(&truncated),
        None,
        &["truncated.safetensors", "not a valid safetensors file"],
    );
    expect_run_error(None, Some(&tmp("absent.safetensors")), None, &["absent.safetensors"]);
}

#[test]
fn bad_model_descriptions_name_the_file_and_field() {
    let cases = [
        (r#"{"kind": "lrnn", "in_channels": 3, "hidden": 4, "cel": "gru"}"#, "cel"),
        (r#"{"kind": "lstm", "in_channels": 3, "hidden": 4}"#, "lstm"),
        (r#"{"kind": "lrnn", "in_channels": 3}"#, "hidden"),
        (r#"{"kind": "lrnn", "in_channels": 3, "hidden": 4, "cell": "tanh"}"#, "tanh"),
        (r#"{"kind": "lrnn", "in_channels": 3, "hidden": 0}"#, "at least 1"),
        // Sizes over the limits are refused before anything is allocated.
        (
            r#"{"kind": "lrnn", "in_channels": 3, "hidden": 100000000000}"#,
            "hidden 100000000000 is outside 1..=65536",
        ),
        (
            r#"{"kind": "lrnn", "in_channels": 18446744073709551615, "hidden": 4}"#,
            "in_channels 18446744073709551615 is outside 1..=65536",
        ),
        ("{not json", "not a valid model description"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let p = tmp(&format!("desc{i}.json"));
        std::fs::write(&p, text).unwrap();
        expect_run_error(Some(&p), None, None, &[&format!("desc{i}.json"), needle]);
    }
    // A huge field value is not echoed whole.
    let p = tmp("long.json");
    std::fs::write(&p, format!(r#"{{"kind": "{}", "in_channels": 3, "hidden": 4}}"#, "x".repeat(100_000)))
        .unwrap();
    expect_run_error(Some(&p), None, None, &["long.json", "more characters)"]);
}

#[test]
fn bad_inputs_name_the_file_and_tensor() {
    let save = |name: &str, key: &str, t: Tensor| {
        let p = tmp(name);
        candle_core::safetensors::save(&HashMap::from([(key.to_string(), t)]), &p).unwrap();
        p
    };
    let dev = Device::Cpu;
    let no_input = save("noinput.safetensors", "x", Tensor::zeros((1, 3, 2, 2), DType::F32, &dev).unwrap());
    expect_run_error(None, None, Some(&no_input), &["noinput.safetensors", "input", "missing"]);
    let rank = save("rank.safetensors", "input", Tensor::zeros((3, 2, 2), DType::F32, &dev).unwrap());
    expect_run_error(None, None, Some(&rank), &["rank.safetensors", "input", "rank 3"]);
    let chans = save("chans.safetensors", "input", Tensor::zeros((1, 5, 2, 2), DType::F32, &dev).unwrap());
    expect_run_error(None, None, Some(&chans), &["chans.safetensors", "input", "5 channels", "expects 3"]);
    let mut values = vec![0f32; 12];
    values[5] = f32::INFINITY;
    let nan = save("inf.safetensors", "input", Tensor::from_vec(values, (1, 3, 2, 2), &dev).unwrap());
    expect_run_error(None, None, Some(&nan), &["inf.safetensors", "input", "1 NaN or infinite value"]);
    let empty = save("empty.safetensors", "input", Tensor::zeros((1, 3, 0, 4), DType::F32, &dev).unwrap());
    expect_run_error(None, None, Some(&empty), &["input 0x4", "at least 1"]);
    // Integers are not an image (f16 and bf16 are read as f32: `lrnn pack --half`).
    let ints = save("ints.safetensors", "input", Tensor::zeros((1, 3, 2, 2), DType::U8, &dev).unwrap());
    expect_run_error(
        None,
        None,
        Some(&ints),
        &["ints.safetensors", "input", "U8", "expected F32, F16 or BF16"],
    );
}

#[test]
fn info_prints_the_layer_table_and_parameter_count() {
    let o = lrnn(&["info", "--model", "E-RNN-Max"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.lines().any(|l| l == "parameters: 967178"), "{text}");
    assert!(text.contains("stage2.0") && text.contains("lrnn(128, vanilla_ln) forward"), "{text}");
    let o = lrnn(&["info", "--model", "Z-RNN-Max"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown network `Z-RNN-Max`"));
}

#[test]
fn probe_erf_and_recurrence_write_pictures_and_tables() {
    let out = tmp("probe-erf");
    let o = lrnn(&[
        "probe",
        "erf",
        "--model",
        "A-Concat-RNN-Max",
        "--map",
        "stage3.0",
        "--random",
        "1",
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("20% / 50% / 99%"), "{text}");
    assert!(image::open(out.join("erf.png")).unwrap().width() >= 32);
    let rows = std::fs::read_to_string(out.join("erf.csv")).unwrap();
    assert_eq!(rows.lines().count(), 32);
    assert_eq!(rows.lines().next().unwrap().split(',').count(), 32);
    let o = lrnn(&[
        "probe",
        "erf",
        "--model",
        "A-Concat-RNN-Max",
        "--map",
        "nope",
        "--random",
        "1",
        "--out",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no map `nope`"));
    // The recurrences of the PyTorch fixture's GRU module: 4 matrices, 3 gates each.
    let f = fixtures();
    let rec = tmp("probe-rec");
    let o = lrnn(&[
        "probe",
        "recurrence",
        "--model",
        s(&f.join("lrnn_gru_sum.json")),
        "--weights",
        s(&f.join("lrnn_gru_sum.weights.safetensors")),
        "--out",
        s(&rec),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = std::fs::read_to_string(rec.join("recurrence.csv")).unwrap();
    assert_eq!(summary.lines().count(), 1 + 4 * 3, "{summary}");
    assert!(summary.contains("lr.v.weight,z,4,"));
    let eig = std::fs::read_to_string(rec.join("eigenvalues.csv")).unwrap();
    assert_eq!(eig.lines().count(), 1 + 4 * 3 * 4);
}

#[test]
fn insert_then_probe_activations_of_the_inserted_model() {
    // A run to insert into: Context-CNN's checkpoint at step 0 on the generated task.
    let run = tmp("ctx-run");
    let config = lrnn_core::train::TrainConfig {
        model: lrnn_core::models::ModelDesc::from_name_or_file("Context-CNN").unwrap(),
        data: lrnn_core::train::DataSource {
            format: lrnn_core::data::Format::Context,
            path: PathBuf::new(),
            context: None,
            scenes: None,
            size: None,
        },
        epochs: 1,
        batch_size: 8,
        optimizer: lrnn_core::train::OptimizerConfig::PAPER_RMSPROP,
        schedule: lrnn_core::train::Schedule::Constant { lr: 1e-3 },
        augment: None,
        subtract_mean: true,
        seed: 1,
        max_train_images: Some(16),
        max_val_images: Some(16),
        max_steps: Some(0),
        out: run.clone(),
        init_from: None,
        time_budget_s: None,
        checkpoint_every: None,
        device: lrnn_core::train::TrainDevice::Cpu,
        init_trunk: None,
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    lrnn_core::train::trainer::run(&config, false, &stop, &std::sync::mpsc::channel().0).unwrap();

    let inserted = tmp("ctx-inserted");
    let o = lrnn(&[
        "insert",
        "--run",
        s(&run),
        "--layer",
        "conv5=horizontal",
        "--layer",
        "conv6=v",
        "--out",
        s(&inserted),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("9914 parameters; every inserted V is zero"));
    let o = lrnn(&["insert", "--run", s(&run), "--layer", "pool1=horizontal", "--out", s(&tmp("bad-ins"))]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot insert into `pool1`"));
    assert!(!tmp("bad-ins").join("latest.json").exists(), "no output on error");

    let out = tmp("activations");
    let o = lrnn(&["probe", "activations", "--run", s(&inserted), "--out", s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = std::fs::read_to_string(out.join("layers.csv")).unwrap();
    assert_eq!(table.lines().count(), 14, "{table}");
    assert!(table.contains("conv5.lr,direction,32,24,24"), "{table}");
    for name in ["conv1", "conv5.lr", "conv6.bt", "output"] {
        assert!(out.join(format!("{name}.png")).exists(), "{name}.png");
        let csv = std::fs::read_to_string(out.join(format!("{name}.csv"))).unwrap();
        assert!(csv.starts_with("channel,y,x,value\n"), "{name}.csv");
    }
    let o =
        lrnn(&["probe", "activations", "--run", s(&inserted), "--image", "/no/such.png", "--out", s(&out)]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("/no/such.png"));
}

#[test]
fn erf_compare_sets_models_side_by_side_with_the_same_numbers_on_cpu_and_wgpu() {
    // The bundled CNN beside its fine-tuned L-RNN: the sum over conv6's channels (one backward
    // pass on the GPU, seeded at every channel) and one channel; the CSV's mass sides the same
    // either way.
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models");
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/photos/astronaut.png");
    let require = std::env::var("LRNN_REQUIRE_GPU").is_ok_and(|v| v == "1");
    for channel in [None, Some("3")] {
        let compare = |device: &str| {
            let dir = tmp(&format!("erf-compare-{device}-{}", channel.unwrap_or("sum")));
            std::fs::create_dir_all(&dir).unwrap();
            let out = dir.join("cmp.png");
            let o = Command::new(env!("CARGO_BIN_EXE_lrnn"))
                .args(["probe", "erf-compare", "--map", "conv6", "--device", device])
                .args([
                    "--run",
                    s(&models.join("context-cnn")),
                    "--run",
                    s(&models.join("context-lrnn-finetuned")),
                ])
                .args(["--image", s(&photo), "--out", s(&out)])
                .args(channel.map(|c| vec!["--channel", c]).unwrap_or_default())
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert!(out.exists());
            let csv = std::fs::read_to_string(out.with_extension("csv")).unwrap();
            (String::from_utf8_lossy(&o.stdout).into_owned(), csv)
        };
        let (said, cpu) = compare("cpu");
        assert_eq!(said.matches("device: CPU\n").count(), 2, "{said}");
        assert_eq!(cpu.lines().count(), 3, "{cpu}");
        let (said, gpu) = compare("wgpu");
        if said.contains("device: CPU (") && !require {
            eprintln!("no GPU adapter: only the fall-back was checked: {said}");
            return;
        }
        assert_eq!(said.matches("through wgpu").count(), 2, "{said}");
        // (the run folders differ only in name between the two calls: compare the numbers)
        let numbers = |csv: &str| {
            csv.lines().map(|l| l.split(',').skip(1).collect::<Vec<_>>().join(",")).collect::<Vec<_>>()
        };
        assert_eq!(numbers(&cpu), numbers(&gpu));
    }
}

#[test]
fn probe_erf_on_wgpu_gives_the_cpus_map_and_falls_back_with_the_reason() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models/context-lrnn-finetuned");
    let erf = |device: &str, map: &str, env: &[(&str, &str)]| {
        let out = tmp(&format!("erf-{device}-{map}-{}", env.len()));
        let o = Command::new(env!("CARGO_BIN_EXE_lrnn"))
            .args(["probe", "erf", "--run", s(&model), "--map", map, "--random", "3", "--device", device])
            .args(["--out", s(&out)])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let said = String::from_utf8_lossy(&o.stdout).into_owned();
        let map: Vec<f32> = std::fs::read_to_string(out.join("erf.csv"))
            .unwrap()
            .lines()
            .flat_map(|l| l.split(',').map(|v| v.parse::<f32>().unwrap()).collect::<Vec<_>>())
            .collect();
        (said, map)
    };
    for layer in ["conv6", "conv3"] {
        let (said, cpu) = erf("cpu", layer, &[]);
        assert!(said.contains("device: CPU\n"), "{said}");
        let (said, gpu) = erf("wgpu", layer, &[]);
        let require = std::env::var("LRNN_REQUIRE_GPU").is_ok_and(|v| v == "1");
        if said.contains("device: CPU (") && !require {
            eprintln!("no GPU adapter: only the fall-back was checked: {said}");
            return;
        }
        assert!(said.contains("through wgpu"), "{said}");
        assert_eq!(cpu.len(), gpu.len());
        // Both maps peak at 1: within 1e-4 of the peak everywhere.
        let worst = cpu.iter().zip(&gpu).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst < 1e-4, "{layer}: the ERFs differ by {worst}");
        assert!(cpu.contains(&1.0));
    }
    // No adapter: the CPU, with the reason.
    let (said, _) = erf("wgpu", "conv6", &[("WGPU_BACKEND", "metal")]);
    assert!(said.contains("device: CPU (") && said.contains("no GPU adapter found"), "{said}");
    // CUDA: candle's CUDA device in a `--features cuda` build on a machine with one; elsewhere
    // the CPU with the reason, and the CPU's map.
    let (said, cuda) = erf("cuda", "conv6", &[]);
    let (_, cpu) = erf("cpu", "conv6", &[]);
    if said.contains("through candle") {
        let worst = cpu.iter().zip(&cuda).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst < 1e-4, "CUDA's ERF differs by {worst}");
    } else {
        assert!(said.contains("device: CPU (no CUDA device") && said.contains("--features cuda"), "{said}");
        assert_eq!(cuda, cpu);
    }
}

#[test]
fn run_on_wgpu_matches_the_cpu_and_falls_back_with_a_message() {
    // A CIFAR network: BatchNorm, LayerNorm scans, concat fusions.
    let desc = tmp("gpu.json");
    lrnn_core::models::ModelDesc::from_name_or_file("E-RNN-Max").unwrap().save(&desc).unwrap();
    let w = tmp("gpu.safetensors");
    assert!(lrnn(&["init", "--model", s(&desc), "--output", s(&w), "--seed", "3"]).status.success());
    let x = tmp("gpu.in.safetensors");
    let input = Tensor::randn(0f32, 1.0, (2, 3, 16, 24), &Device::Cpu).unwrap();
    candle_core::safetensors::save(&HashMap::from([("input".to_string(), input)]), &x).unwrap();
    let run = |device: &str, out: &Path, env: &[(&str, &str)]| {
        let o = Command::new(env!("CARGO_BIN_EXE_lrnn"))
            .args(["run", "--model", s(&desc), "--weights", s(&w), "--input", s(&x), "--output", s(out)])
            .args(["--device", device])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let same = |a: &Path, b: &Path| {
        let (a, b) = (read_tensors(a, &Device::Cpu).unwrap(), read_tensors(b, &Device::Cpu).unwrap());
        let mut names: Vec<&String> = a.keys().collect();
        names.sort();
        let mut other: Vec<&String> = b.keys().collect();
        other.sort();
        assert_eq!(names, other);
        for n in names {
            assert!(max_rel(&b[n], &a[n]) < 1e-4, "{n}");
        }
    };
    let (cpu_out, gpu_out) = (tmp("gpu.cpu.safetensors"), tmp("gpu.wgpu.safetensors"));
    assert!(run("cpu", &cpu_out, &[]).contains("device: CPU\n"));
    // Without a CUDA build, `cuda` says so and runs on the CPU.
    let said = run("cuda", &tmp("gpu.cuda.safetensors"), &[]);
    if said.contains("device: CPU (") {
        assert!(said.contains("no CUDA device") && said.contains("--features cuda"), "{said}");
        same(&cpu_out, &tmp("gpu.cuda.safetensors"));
    }
    // No adapter among the backends asked for: the CPU, with the reason.
    let fallback = tmp("gpu.none.safetensors");
    let said = run("wgpu", &fallback, &[("WGPU_BACKEND", "metal")]);
    assert!(said.contains("device: CPU (") && said.contains("no GPU adapter found"), "{said}");
    same(&cpu_out, &fallback);
    let said = run("wgpu", &gpu_out, &[]);
    let require = std::env::var("LRNN_REQUIRE_GPU").is_ok_and(|v| v == "1");
    if said.contains("device: CPU (") && !require {
        eprintln!("no GPU adapter: only the fall-back was checked: {said}");
        return;
    }
    assert!(said.contains("through wgpu"), "{said}");
    same(&cpu_out, &gpu_out);
    // An adapter whose buffers are too small for the maps: the CPU, with the reason.
    let said = run("wgpu", &fallback, &[("LRNN_GPU_MAX_BUFFER_MIB", "0")]);
    assert!(said.contains("device: CPU (") && said.contains("one buffer may hold"), "{said}");
    same(&cpu_out, &fallback);
    // On a software adapter `auto` prefers the CPU and says why.
    let said = run("auto", &tmp("gpu.auto.safetensors"), &[]);
    assert!(said.contains("through wgpu") || said.contains("software"), "{said}");
}

#[test]
fn train_seg_on_generated_scenes_then_eval_prints_the_segmentation_scores() {
    let out = tmp("train-seg");
    let _ = std::fs::remove_dir_all(&out);
    let flags =
        "--model FCN-8s-LRNN --heads 8 --size 32 --vgg none --scenes-train 4 --scenes-val 2 --batch 2";
    let mut args = vec!["train-seg"];
    args.extend(flags.split(' '));
    args.extend(["--out", s(&out)]);
    let text = lrnn_ok(&args);
    assert!(text.contains("FCN-8s-LRNN (n = 8) on 32x32 inputs"), "{text}");
    assert!(text.contains("validation mean IoU"), "{text}");
    assert!(out.join("step-00000002/weights.safetensors").exists());
    let text = lrnn_ok(&["eval", "--run", s(&out)]);
    for line in ["val: 2 images of 32x32", "pixel accuracy: ", "mean IoU: ", "class red-marked object: IoU"] {
        assert!(text.contains(line), "{line} in {text}");
    }
    // Packed in f16: half the size, and it still loads and scores.
    let packed = tmp("train-seg-packed");
    lrnn_ok(&["pack", "--run", s(&out), "--out", s(&packed), "--half"]);
    let size = |p: &Path| std::fs::metadata(p.join("weights.safetensors")).unwrap().len();
    let full = size(&out.join("step-00000002"));
    assert!(size(&packed) < full / 2 + 4096, "{} vs {full}", size(&packed));
    assert!(!packed.join("optimizer.safetensors").exists() && packed.join("state.json").exists());
    assert!(lrnn_ok(&["eval", "--run", s(&packed)]).contains("mean IoU: "));
    // A fresh run into that folder is refused (its checkpoints stay) …
    let o = lrnn(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("not empty") && err.contains("--overwrite"), "{err}");
    assert!(out.join("step-00000002/weights.safetensors").exists());
    // … a damaged (emptied) optimiser state is refused on --resume, not silently reset …
    let opt = out.join("step-00000002/optimizer.safetensors");
    candle_core::safetensors::save(&HashMap::<String, Tensor>::new(), &opt).unwrap();
    let mut resume = args.clone();
    resume.extend(["--resume", "--epochs", "2"]);
    let o = lrnn(&resume);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no optimiser state"), "{err}");
    // … and --overwrite starts afresh.
    let mut again = args.clone();
    again.push("--overwrite");
    lrnn_ok(&again);
    assert!(read_tensors(&opt, &Device::Cpu).unwrap().len() > 4);
    // Bad sizes and classifiers are refused with the reason.
    let o = lrnn(&["train-seg", "--size", "40", "--vgg", "none", "--out", s(&tmp("never"))]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("multiple of 32"));
    let o = lrnn(&["train-seg", "--model", "Context-CNN", "--out", s(&tmp("never"))]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not a segmentation network"));
}

#[test]
fn train_seg_reads_a_voc_tree_and_lrnn_eval_scores_it_with_the_voc_classes() {
    // Scenes written as a VOC tree (JPEG photos, palette PNG labels), with a train list too.
    let voc = tmp("seg-voc");
    let _ = std::fs::remove_dir_all(&voc);
    lrnn_ok(&["dataset", "--format", "scenes", "--voc-out", s(&voc), "--count", "4", "--size", "64"]);
    let lists = voc.join("ImageSets/Segmentation");
    std::fs::copy(lists.join("val.txt"), lists.join("train.txt")).unwrap();
    let out = tmp("seg-voc-run");
    let _ = std::fs::remove_dir_all(&out);
    let mut args = vec!["train-seg", "--voc", s(&voc), "--out", s(&out)];
    args.extend("--model FCN-8s --heads 8 --size 32 --vgg none --batch 2 --steps 1".split(' '));
    let text = lrnn_ok(&args);
    assert!(text.contains("FCN-8s (n = 8) on 32x32 inputs"), "{text}");
    let text = lrnn_ok(&["eval", "--run", s(&out)]);
    assert!(text.contains("val: 4 images of 32x32") && text.contains("class aeroplane: IoU"), "{text}");
    // A label of the wrong size is named.
    let label = voc.join("SegmentationClass/scene-00001.png");
    image::GrayImage::new(5, 5).save(&label).unwrap();
    let o =
        lrnn(&["train-seg", "--voc", s(&voc), "--size", "32", "--vgg", "none", "--out", s(&tmp("never"))]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("scene-00001.png") && err.contains("5x5"), "{err}");
}

#[test]
fn an_output_that_is_one_of_the_inputs_is_refused_and_the_file_kept() {
    let dir = tmp("overwrite");
    std::fs::create_dir_all(&dir).unwrap();
    let f = fixtures();
    let stem = "lrnn_vanilla_ln_sum";
    // Copies of a fixture's files, so that a failure could not damage the committed ones.
    let [model, weights, input] =
        ["model.json", "weights.safetensors", "input.safetensors"].map(|p| dir.join(p));
    for (from, to) in [("json", &model), ("weights.safetensors", &weights), ("io.safetensors", &input)] {
        std::fs::copy(f.join(format!("{stem}.{from}")), to).unwrap();
    }
    let run_into = |output: &Path| lrnn_run(&model, &weights, &input, output);
    for target in [&model, &weights, &input] {
        let before = std::fs::read(target).unwrap();
        let o = run_into(target);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains("refusing to overwrite"), "{err}");
        assert_eq!(std::fs::read(target).unwrap(), before, "{} was changed", target.display());
    }
    // The same file by another spelling is the same file.
    let o = run_into(&dir.join(".").join("input.safetensors"));
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("refusing to overwrite"));
    // `lrnn init` refuses to write its weights over the description it reads.
    let o = lrnn(&["init", "--model", model.to_str().unwrap(), "--output", model.to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("refusing to overwrite"));
    assert!(std::fs::read_to_string(&model).unwrap().contains("\"kind\""));
}

#[test]
fn a_pass_over_the_memory_limit_and_out_of_range_numbers_are_refused_before_allocating() {
    let f = fixtures();
    let stem = "lrnn_vanilla_ln_sum";
    let out = tmp("never-memory.safetensors");
    let o = Command::new(env!("CARGO_BIN_EXE_lrnn"))
        .env("LRNN_MEMORY_LIMIT_GB", "0.0000001")
        .args(["run", "--model", s(&f.join(format!("{stem}.json")))])
        .args(["--weights", s(&f.join(format!("{stem}.weights.safetensors")))])
        .args(["--input", s(&f.join(format!("{stem}.io.safetensors"))), "--output", s(&out)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !err.contains("panicked"), "{err}");
    assert!(err.contains("over the memory limit") && err.contains("LRNN_MEMORY_LIMIT_GB"), "{err}");
    assert!(!out.exists());
    for (args, needle) in [
        (vec!["dataset", "--format", "scenes", "--size", "0"], "1..=16384"),
        (vec!["dataset", "--format", "scenes", "--count", "0"], "1..=16777216"),
        (vec!["demo", "--width", "100000"], "1..=16384"),
        (vec!["demo", "--decay", "nan"], "not a finite number"),
        (vec!["eval", "--run", "x", "--batch", "0"], "1..=16777216"),
    ] {
        let o = lrnn(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(needle) && !err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn a_seeded_training_run_is_bit_identical_at_one_and_two_threads() {
    // Convolution and scan-pair weight gradients are summed in a fixed order (not per thread), so
    // the same seed gives the same weights however many threads run it.
    let train = |threads: &str| {
        let out = tmp(&format!("repeat-{threads}"));
        let _ = std::fs::remove_dir_all(&out);
        let o = Command::new(env!("CARGO_BIN_EXE_lrnn"))
            .env("RAYON_NUM_THREADS", threads)
            .args(["train", "--model", "Context-LRNN", "--data", "context", "--epochs", "1"])
            .args(["--max-train", "24", "--max-val", "8", "--batch", "8", "--seed", "3", "--out", s(&out)])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        read_tensors(&out.join("step-00000003/weights.safetensors"), &Device::Cpu).unwrap()
    };
    let (one, two) = (train("1"), train("2"));
    assert_eq!(one.keys().collect::<Vec<_>>(), two.keys().collect::<Vec<_>>());
    for (name, a) in &one {
        let (a, b) = (a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), two[name].flatten_all().unwrap());
        let b = b.to_vec1::<f32>().unwrap();
        let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{name} differs between 1 and 2 threads");
    }
}

#[test]
fn two_training_steps_on_wgpu_leave_the_cpus_weights_and_resume_on_the_other_device() {
    // Context-LRNN (convolutions, inserted pairs, global max pooling, a linear head), two steps
    // of SGD with momentum on each device: the same checkpoint files, weights within 1e-4 of
    // each tensor's peak; then the wgpu run resumed on the CPU for a third step.
    let require = std::env::var("LRNN_REQUIRE_GPU").is_ok_and(|v| v == "1");
    let train = |name: &str, device: &str, extra: &[&str]| {
        let out = tmp(name);
        if extra.is_empty() {
            let _ = std::fs::remove_dir_all(&out);
        }
        let o = Command::new(env!("CARGO_BIN_EXE_lrnn"))
            .args(["train", "--model", "Context-LRNN", "--data", "context"])
            .args(["--max-train", "8", "--max-val", "4", "--batch", "4", "--seed", "5"])
            .args(["--optimizer", "sgd", "--lr-max", "0.01", "--device", device, "--out", s(&out)])
            .args(if extra.is_empty() { &["--epochs", "1"][..] } else { extra })
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (String::from_utf8_lossy(&o.stdout).into_owned(), out)
    };
    let (said, cpu_out) = train("train-cpu", "cpu", &[]);
    assert!(said.contains("device: CPU\n"), "{said}");
    let (said, gpu_out) = train("train-wgpu", "wgpu", &[]);
    if said.contains("device: CPU (") && !require {
        eprintln!("no GPU adapter: only the fall-back was checked: {said}");
        return;
    }
    assert!(said.contains("through wgpu"), "{said}");
    let weights =
        |out: &Path| read_tensors(&out.join("step-00000002/weights.safetensors"), &Device::Cpu).unwrap();
    let (cpu, gpu) = (weights(&cpu_out), weights(&gpu_out));
    assert_eq!(cpu.keys().collect::<Vec<_>>(), gpu.keys().collect::<Vec<_>>());
    for (name, c) in &cpu {
        let g = &gpu[name];
        let peak = c.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-6);
        let diff = (g - c).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff / peak < 1e-4, "{name}: {:e} of its peak apart", diff / peak);
    }
    let state =
        |out: &Path| read_tensors(&out.join("step-00000002/optimizer.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(state(&cpu_out).keys().collect::<Vec<_>>(), state(&gpu_out).keys().collect::<Vec<_>>());
    // The GPU's run goes on on the CPU (a second epoch: two more steps).
    let (said, _) = train("train-wgpu", "cpu", &["--resume", "--epochs", "2"]);
    assert!(said.contains("starting at step 2"), "{said}");
    assert!(gpu_out.join("step-00000004/weights.safetensors").exists());
}

#[test]
fn a_run_killed_or_interrupted_keeps_its_last_good_checkpoint_and_resumes() {
    let out = tmp("killed-run");
    let _ = std::fs::remove_dir_all(&out);
    let train = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lrnn"))
            .args(["train", "--model", "Context-CNN", "--data", "context", "--epochs", "200"])
            .args(["--max-train", "16", "--max-val", "8", "--batch", "8", "--checkpoint-every", "1"])
            .args(["--out", s(&out)])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let checkpoints = || {
        std::fs::read_dir(&out).map_or(0, |d| {
            d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("step-")).count()
        })
    };
    let wait_for = |n: usize| {
        let start = std::time::Instant::now();
        while checkpoints() < n && start.elapsed() < std::time::Duration::from_secs(180) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(checkpoints() >= n, "no checkpoint {n} after 180 s");
    };
    // SIGKILL in the middle of the run (possibly in the middle of a write).
    let mut child = train(&[]);
    wait_for(3);
    child.kill().unwrap();
    child.wait().unwrap();
    // The third folder may have been half written when the kill came: the newest complete
    // checkpoint (what `latest.json` names) is at least the second.
    let killed = lrnn_core::train::Checkpoint::open(&out, &Device::Cpu).unwrap();
    assert!(killed.steps() >= 2, "the last good checkpoint loads");
    // Ctrl-C (SIGINT) on the resumed run: it stops after its step with a checkpoint, exit 0.
    let child = train(&["--resume"]);
    wait_for(killed.steps() + 2);
    let pid = child.id().to_string();
    // (the shell's own `kill`: a fresh machine may lack procps' /bin/kill)
    assert!(Command::new("sh").arg("-c").arg(format!("kill -INT {pid}")).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && text.contains("stopped on request"),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stopped = lrnn_core::train::Checkpoint::open(&out, &Device::Cpu).unwrap();
    assert!(stopped.steps() > killed.steps());
    // No temporary file of an interrupted write is read as a checkpoint.
    assert!(lrnn_core::train::checkpoint::latest_checkpoint(&out).unwrap().is_some());
}

#[test]
fn probe_rf_table_prints_the_published_vgg16_fields_and_writes_csv() {
    let csv = tmp("rf-table.csv");
    let text = lrnn_ok(&["probe", "rf-table", "--model", "FCN-8s-Caffe-LRNN", "--csv", s(&csv)]);
    let line = |name: &str| {
        text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}: {text}"))
    };
    assert!(line("pool3").contains("44 px") && line("pool5").contains("212 px"), "{text}");
    assert!(line("conv1_1").trim_end().ends_with("-99"), "pad 100: {}", line("conv1_1"));
    assert!(text.contains("the whole row") && text.contains("the whole image"), "{text}");
    let table = std::fs::read_to_string(&csv).unwrap();
    assert!(table.starts_with("layer,kind,kernel,stride,pad,jump_y,jump_x,field_height,field_width"));
    assert!(table.lines().any(|l| l.starts_with("conv5_3,") && l.contains(",196,196,")), "{table}");
    // A file that is not an earlier table is never replaced.
    let photo = tmp("rf-photo.png");
    std::fs::copy(fixtures().join("fcn_caffe_photo.png"), &photo).unwrap();
    let before = std::fs::read(&photo).unwrap();
    let o = lrnn(&["probe", "rf-table", "--model", "FCN-8s-Caffe", "--csv", s(&photo)]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not an rf-table CSV"));
    assert_eq!(std::fs::read(&photo).unwrap(), before, "the photo is untouched");
    // Run again over its own table: replaced.
    lrnn_ok(&["probe", "rf-table", "--model", "FCN-8s-Caffe", "--csv", s(&csv)]);
    // An unknown model: one clear line, no panic.
    let o = lrnn(&["probe", "rf-table", "--model", "no-such-net"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("no-such-net"));
}

#[test]
fn probe_rf_depth_writes_the_plot_and_the_table_for_a_model_and_its_cnn() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let run = root.join("assets/models/context-lrnn-finetuned");
    let photo = root.join("assets/photos/chelsea.png");
    let out = tmp("rf-depth");
    let text = lrnn_ok(&[
        "probe",
        "rf-depth",
        "--run",
        s(&run),
        "--image",
        s(&photo),
        "--out",
        s(&out),
        "--device",
        "cpu",
    ]);
    assert!(text.contains("device: CPU\n"), "{text}");
    let csv = std::fs::read_to_string(out.join("rf_depth.csv")).unwrap();
    // The same table with the backward passes through wgpu (the CPU's where there is no adapter,
    // saying why) and asked for CUDA (the CPU's in a build without it, saying why).
    let require = std::env::var("LRNN_REQUIRE_GPU").is_ok_and(|v| v == "1");
    for device in ["wgpu", "cuda"] {
        let other = tmp(&format!("rf-depth-{device}"));
        let said = lrnn_ok(&[
            "probe",
            "rf-depth",
            "--run",
            s(&run),
            "--image",
            s(&photo),
            "--out",
            s(&other),
            "--device",
            device,
        ]);
        let on_gpu = said.contains("through wgpu") || said.contains("through candle");
        assert!(on_gpu || said.contains("device: CPU ("), "{said}");
        if device == "wgpu" && require {
            assert!(on_gpu, "{said}");
        }
        assert_eq!(std::fs::read_to_string(other.join("rf_depth.csv")).unwrap(), csv, "{device}: {said}");
    }
    assert!(csv.starts_with(lrnn_core::probe::rf_depth::CSV_HEADER), "{csv}");
    // conv1 … conv6: eight layers; the last one's theoretical field is the whole image for the
    // model and 16 px for its CNN.
    assert_eq!(csv.lines().count(), 9, "{csv}");
    let last: Vec<&str> = csv.lines().last().unwrap().split(',').collect();
    assert_eq!((last[1], last[3], last[7]), ("conv6", "whole", "16"), "{csv}");
    let model99: usize = last[6].parse().unwrap();
    let cnn99: usize = last[10].parse().unwrap();
    assert!(model99 > 2 * cnn99, "{csv}");
    assert!(text.contains("conv6") && text.contains("whole"), "{text}");
    let png = image::open(out.join("rf_depth.png")).unwrap();
    assert_eq!((png.width(), png.height()), (960, 560));
    // A model without recurrences: one curve, said so.
    let cnn = root.join("assets/models/context-cnn");
    let text = lrnn_ok(&["probe", "rf-depth", "--run", s(&cnn), "--random", "1", "--out", s(&out)]);
    assert!(text.contains("it is its own CNN"), "{text}");
}

#[test]
fn probe_recurrence_history_reads_a_runs_snapshots_from_its_start() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let start = root.join("assets/models/context-lrnn-finetuned");
    let run = tmp("history-run");
    let _ = std::fs::remove_dir_all(&run);
    lrnn_ok(&[
        "train",
        "--init-from",
        s(&start),
        "--data",
        "context",
        "--out",
        s(&run),
        "--epochs",
        "1",
        "--max-train",
        "320",
        "--max-val",
        "50",
        "--checkpoint-every",
        "2",
        "--seed",
        "3",
    ]);
    let out = tmp("history-out");
    let text = lrnn_ok(&["probe", "recurrence-history", "--run", s(&run), "--out", s(&out)]);
    // Steps 0 (the model it started from), 2, 4 and 5 (the end of the epoch).
    assert!(text.contains("over 4 snapshots (steps 0–5)"), "{text}");
    let history = std::fs::read_to_string(out.join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 1 + 4 * 4, "four matrices at four snapshots: {history}");
    // At step 0 each matrix is where it started; later it has moved.
    for line in history.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let change: f64 = f[7].parse().unwrap();
        assert_eq!(change == 0.0, f[0] == "0", "{line}");
    }
    let pairs = std::fs::read_to_string(out.join("pairs.csv")).unwrap();
    assert_eq!(pairs.lines().count(), 1 + 2 * 4, "two pairs at four snapshots: {pairs}");
    let vectors = std::fs::read_to_string(out.join("eigenvectors.csv")).unwrap();
    assert!(vectors.lines().count() > 1);
    assert!(out.join("spectral_radius.png").is_file());
    // Not a run: one line naming the folder.
    let o = lrnn(&["probe", "recurrence-history", "--run", s(&start), "--out", s(&out)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("not a run folder"), "{err}");
}

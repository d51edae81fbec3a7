//! Long et al.'s FCN-8s (`FCN-8s-Caffe`, 134M parameters) on one 500x375 photo-sized input on
//! the CPU: lrnn-core next to PyTorch (`fcn_caffe_torch.py`, the parity fixtures' reference
//! network), each in its own child process so that its peak resident memory (`wait4`) is its
//! own; and FCN-8s-Caffe-LRNN (pairs in fc6 and fc7). With `--parity DIR` (the folder
//! `python3 tests/fixtures/gen_fcn_caffe.py --full DIR` writes) it first checks the full-size
//! network read from each weight format against PyTorch's scores on the photo.
//! `cargo bench -p lrnn-core --bench fcn_caffe [-- --parity DIR]`.

mod common;

use std::process::Command;

use candle_core::{Device, Tensor};
use common::run_child;
use lrnn_core::models::{Model, ModelDesc};
use lrnn_core::nn::Forward;

const RUNS: usize = 3;

/// The full-size network from every format against PyTorch's scores.
fn parity(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let io = lrnn_core::io::read_tensors(&dir.join("fcn8s.io.safetensors"), &Device::Cpu)?;
    let photo = lrnn_core::data::photo::read_photo(&dir.join("photo.png"))?;
    let desc = ModelDesc::from_name_or_file("FCN-8s-Caffe")?;
    let x = lrnn_core::data::photo::photo_input(&photo, &desc, 500, None)?.tensor;
    let dx = (&x - &io["input"])?.abs()?.max_all()?.to_scalar::<f32>()?;
    println!("full-size parity, FCN-8s-Caffe on the 500x375 photo (max |input difference| {dx:e})");
    for file in ["fcn8s.legacy.pth", "fcn8s.zip.pth", "fcn8s.caffemodel"] {
        let model = Model::load(desc.clone(), &dir.join(file), &Device::Cpu)?;
        let y = model.forward(&x, &mut Forward::eval())?;
        let want = &io["output"];
        let err = ((&y - want)?.abs()?.max_all()?.to_scalar::<f32>()?)
            / want.abs()?.max_all()?.to_scalar::<f32>()?;
        let labels =
            |t: &Tensor| -> Result<Vec<u32>, candle_core::Error> { t.argmax(1)?.flatten_all()?.to_vec1() };
        let (a, b) = (labels(&y)?, labels(want)?);
        let same = a.iter().zip(&b).filter(|(p, q)| p == q).count() as f64 / a.len() as f64;
        println!("| {file} | relative error {err:.1e} | identical labels {:.3}% |", 100.0 * same);
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    lrnn_core::keep_freed_memory();
    if let Ok(name) = std::env::var("LRNN_FCN_CAFFE_BENCH_CHILD") {
        return common::forward_child(&name, (375, 500), RUNS);
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--parity") {
        parity(std::path::Path::new(args.get(i + 1).ok_or("--parity DIR")?))?;
    }
    let me = std::env::current_exe()?;
    let script = common::script("fcn_caffe_torch.py");
    let threads = rayon::current_num_threads();
    println!("Long et al.'s FCN-8s forward, 1 input 500x375, {threads} threads, median of {RUNS} (after one warm-up)");
    println!("| network | parameters | lrnn-core (ms) | PyTorch (ms) | lrnn-core peak memory (MiB) | PyTorch peak memory (MiB) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for name in ["FCN-8s-Caffe", "FCN-8s-Caffe-LRNN"] {
        let (text, _, rss) = run_child(Command::new(&me).env("LRNN_FCN_CAFFE_BENCH_CHILD", name))?;
        let ours: serde_json::Value = serde_json::from_str(text.trim())?;
        let torch = if name == "FCN-8s-Caffe" {
            let (text, _, torch_rss) =
                run_child(Command::new(common::python()).env("OPENBLAS_NUM_THREADS", "1").args([
                    &script,
                    "8s",
                    &RUNS.to_string(),
                    &threads.to_string(),
                ]))?;
            let torch: serde_json::Value = serde_json::from_str(text.trim())?;
            if ours["parameters"] != torch["parameters"] {
                return Err(format!("{name}: parameter counts differ: {ours} vs {torch}").into());
            }
            format!("{:.0} | {rss:.0} | {torch_rss:.0}", torch["forward_ms"].as_f64().unwrap_or(f64::NAN))
        } else {
            format!("- | {rss:.0} | -")
        };
        let ms = ours["forward_ms"].as_f64().unwrap_or(f64::NAN);
        let (ours_ms, rest) = torch.split_once(" | ").unwrap_or(("-", ""));
        println!("| {name} | {} | {ms:.0} | {ours_ms} | {rest} |", ours["parameters"]);
    }
    Ok(())
}

//! Time per epoch and peak memory of training on Fashion-MNIST: `lrnn train` (a child process,
//! the real command) next to the same network in PyTorch (`train_epoch_torch.py`, a child process
//! too) on the same images, in the same run. Peak memory is each child's maximum resident set
//! (`wait4`). `cargo bench -p lrnn-core --bench train_epoch`; `LRNN_EPOCH_IMAGES` (default 3200)
//! training images make the epoch, `LRNN_FASHION` names the IDX folder (default Debian's).

#[path = "../../core/benches/common/mod.rs"]
mod common;

use std::process::Command;

use common::run_child;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::var("LRNN_FASHION").unwrap_or_else(|_| "/usr/share/datasets/fashion-mnist".into());
    if !std::path::Path::new(&dir).join("train-images-idx3-ubyte.gz").exists() {
        return Err(format!("{dir}: no Fashion-MNIST here (apt-get install dataset-fashion-mnist)").into());
    }
    let n: usize = std::env::var("LRNN_EPOCH_IMAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(3200);
    let (v, batch, threads) = (1000usize, 64usize, rayon::current_num_threads());
    let script = common::script("train_epoch_torch.py");
    let tmp = std::env::temp_dir().join(format!("lrnn-epoch-bench-{}", std::process::id()));
    println!(
        "One epoch on Fashion-MNIST: {n} training images (padded to 32x32, no augmentation), batch {batch}, \
         RMSprop, then {v} validation images; {threads} threads"
    );
    println!("| network | implementation | epoch (s) | projected 50,000-image epoch (min) | peak memory (MiB) | validation error |");
    println!("|---|---|---:|---:|---:|---:|");
    for name in ["Baseline-CNN-Max", "E-RNN-Max"] {
        let out = tmp.join(name);
        let _ = std::fs::remove_dir_all(&out);
        let (text, _, rss) = run_child(Command::new(env!("CARGO_BIN_EXE_lrnn")).args([
            "train",
            "--model",
            name,
            "--data",
            "fashion-mnist",
            "--path",
            &dir,
            "--out",
            out.to_str().ok_or("temp path")?,
            "--epochs",
            "1",
            "--no-augment",
            "--seed",
            "1",
            "--batch",
            &batch.to_string(),
            "--max-train",
            &n.to_string(),
            "--max-val",
            &v.to_string(),
        ]))?;
        // "epoch   1: train loss L, train error E%, validation error V%, S s"
        let line = text.lines().find(|l| l.trim_start().starts_with("epoch")).ok_or("no epoch line")?;
        let seconds: f64 =
            line.rsplit(", ").next().and_then(|s| s.trim_end_matches(" s").parse().ok()).ok_or("no time")?;
        let val =
            line.split("validation error ").nth(1).and_then(|s| s.split('%').next()).ok_or("no error")?;
        let project = seconds * 50_000.0 / n as f64 / 60.0;
        println!("| {name} | lrnn-core (`lrnn train`) | {seconds:.1} | {project:.1} | {rss:.0} | {val}% |");
        let (text, _, rss) =
            run_child(Command::new(common::python()).env("OPENBLAS_NUM_THREADS", "1").args([
                &script,
                name,
                &dir,
                &n.to_string(),
                &v.to_string(),
                &batch.to_string(),
                &threads.to_string(),
            ]))?;
        let json: serde_json::Value = serde_json::from_str(text.trim())?;
        let seconds = json["epoch_s"].as_f64().ok_or("epoch_s")?;
        let project = seconds * 50_000.0 / n as f64 / 60.0;
        let val = 100.0 * json["val_error"].as_f64().ok_or("val_error")?;
        println!(
            "| {name} | PyTorch {} ({} threads) | {seconds:.1} | {project:.1} | {rss:.0} | {val:.2}% |",
            json["torch"].as_str().unwrap_or("?"),
            json["threads"]
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

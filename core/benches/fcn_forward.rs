//! Forward time and peak memory of VGG-16 FCN-8s and FCN-8s-LRNN (n = 1024) at 384x384, one
//! image, lrnn-core next to the same network in PyTorch (`fcn_forward_torch.py`), each network in
//! its own child process so that its peak resident memory (`wait4`) is its own.
//! `cargo bench -p lrnn-core --bench fcn_forward`.

mod common;

use std::process::Command;

use common::run_child;

const RUNS: usize = 5;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    lrnn_core::keep_freed_memory();
    if let Ok(name) = std::env::var("LRNN_FCN_BENCH_CHILD") {
        return common::forward_child(&name, (384, 384), RUNS);
    }
    let me = std::env::current_exe()?;
    let script = common::script("fcn_forward_torch.py");
    let threads = rayon::current_num_threads();
    println!("VGG-16 FCN forward, 1 image 384x384, n = 1024, {threads} threads, median of {RUNS} (after one warm-up)");
    println!("| network | parameters | lrnn-core (ms) | PyTorch (ms) | lrnn-core peak memory (MiB) | PyTorch peak memory (MiB) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for name in ["FCN-8s", "FCN-8s-LRNN"] {
        let (text, _, rss) = run_child(Command::new(&me).env("LRNN_FCN_BENCH_CHILD", name))?;
        let ours: serde_json::Value = serde_json::from_str(text.trim())?;
        let (text, _, torch_rss) =
            run_child(Command::new(common::python()).env("OPENBLAS_NUM_THREADS", "1").args([
                &script,
                name,
                &RUNS.to_string(),
                &threads.to_string(),
            ]))?;
        let torch: serde_json::Value = serde_json::from_str(text.trim())?;
        if ours["parameters"] != torch["parameters"] {
            return Err(format!("{name}: parameter counts differ: {ours} vs {torch}").into());
        }
        println!(
            "| {name} | {} | {:.0} | {:.0} | {rss:.0} | {torch_rss:.0} |",
            ours["parameters"],
            ours["forward_ms"].as_f64().unwrap_or(f64::NAN),
            torch["forward_ms"].as_f64().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

//! Helpers shared by the benchmarks: medians and the Python that runs the PyTorch side.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::Instant;

/// The median of some timings.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median wall time in ms of `runs` calls of `f`, after one warm-up call (the best time
/// instead with `LRNN_BENCH_STAT=min`, steadier on a noisy machine when comparing builds).
pub fn time_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let stat = if std::env::var("LRNN_BENCH_STAT").is_ok_and(|s| s == "min") {
        |v: Vec<f64>| v.into_iter().fold(f64::INFINITY, f64::min)
    } else {
        median
    };
    stat(
        (0..runs.max(1))
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

/// The Python that runs the PyTorch side: `LRNN_PYTHON`, else Debian's (where `python3-torch`
/// installs), else `python3` on the PATH.
pub fn python() -> String {
    std::env::var("LRNN_PYTHON").unwrap_or_else(|_| {
        if std::path::Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3".into()
        } else {
            "python3".into()
        }
    })
}

/// The path of the PyTorch script `name` beside these benchmarks: where the sources were built
/// from, else `benches/` or `core/benches/` under the current folder (a benchmark built on one
/// machine and run from a checkout on another).
pub fn script(name: &str) -> String {
    let built = format!("{}/benches/{name}", env!("CARGO_MANIFEST_DIR"));
    [built.clone(), format!("benches/{name}"), format!("core/benches/{name}")]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or(built)
}

/// Runs `cmd`, returning its stdout, its wall time in s and its peak RSS in MiB.
pub fn run_child(cmd: &mut Command) -> Result<(String, f64, f64), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let pid = child.id() as libc::pid_t;
    // Read the output on threads so that a full pipe never blocks the child.
    let mut stdout = child.stdout.ok_or("no stdout")?;
    let mut stderr = child.stderr.ok_or("no stderr")?;
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).map(|_| s)
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child `pid`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is a child of this process that nobody else waits for.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    let out = out.join().map_err(|_| "reader panicked")??;
    let err = err.join().map_err(|_| "reader panicked")??;
    if r != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("{cmd:?} failed:\n{out}\n{err}").into());
    }
    Ok((out, seconds, usage.ru_maxrss as f64 / 1024.0))
}

/// In a child process: builds the network `name` (seeded), times its forward pass on one random
/// input of `(h, w)` pixels (median of `runs` after a warm-up) and prints one JSON line with the
/// time and the parameter count, for a parent that measures the child's peak memory.
pub fn forward_child(
    name: &str,
    (h, w): (usize, usize),
    runs: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    use lrnn_core::models::{Model, ModelDesc};
    let dev = candle_core::Device::Cpu;
    let model = Model::new_seeded(ModelDesc::from_name_or_file(name)?, &dev, 1)?;
    let x = candle_core::Tensor::randn(0f32, 50.0, (1, 3, h, w), &dev)?;
    let ms = time_ms(runs, || {
        model.forward(&x, &mut lrnn_core::nn::Forward::eval()).expect("forward");
    });
    println!("{{\"forward_ms\": {ms}, \"parameters\": {}}}", model.parameter_count()?);
    Ok(())
}

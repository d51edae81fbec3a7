//! Helpers shared by the benchmarks: medians and the Python that runs the PyTorch side.
#![allow(dead_code)]

use std::time::Instant;

/// The median of some timings.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median wall time in ms of `runs` calls of `f`, after one warm-up call.
pub fn time_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
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

//! L-RNN Studio: the desktop app (eframe/egui). The UI thread only draws; model runs and probes
//! happen on the worker thread (`worker.rs`), whose replies the UI drains every frame.

pub mod app;
pub mod worker;

pub use app::{StudioApp, StudioOptions};

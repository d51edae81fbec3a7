//! L-RNN Studio: the desktop app (eframe/egui). The UI thread only draws; model runs, probes and
//! every file read or write happen on the worker thread (`worker.rs`, jobs and replies in
//! `protocol.rs`, what it sends the views in `view_model.rs`, its file work in `files.rs`) and
//! training on its own thread, whose replies and events the UI drains every frame. `app.rs`
//! holds the state and the top bar; each view is one file in `views/`; `screenshot.rs` renders a
//! view without a window.

pub mod app;
pub mod files;
pub mod protocol;
pub mod screenshot;
pub mod view_model;
pub mod views;
pub mod worker;

pub use app::{StudioApp, StudioOptions};
pub use views::View;

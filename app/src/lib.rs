//! L-RNN Studio: the desktop app (eframe/egui). The UI thread only draws; model runs, probes and
//! every file read or write happen on the worker thread (`worker.rs`, jobs and replies in
//! `protocol.rs`, what it sends the views in `view_model.rs`, its file work in `files.rs`) and
//! training on its own thread, whose replies and events the UI drains every frame. `shared.rs`
//! holds what every view shares (photo, model, V scale, device, the ERF on show); each view is a
//! component with its own state in `views/`; `app.rs` holds them, draws the top bar and hands
//! the worker's replies on; `screenshot.rs` renders a view without a window.
//!
//! The modules form layers, lowest first (a module uses only lower ones; `tests/layers.rs`
//! checks it): `options`, `view_model`, `fonts` → `protocol`, `files` → `worker` → `textures` →
//! `shared` → `views` → `app` → `screenshot`.

pub mod app;
pub mod files;
pub mod fonts;
pub mod lesson;
pub mod options;
pub mod protocol;
pub mod screenshot;
pub mod settings;
pub mod shared;
pub mod textures;
pub mod view_model;
pub mod views;
pub mod worker;

pub use app::StudioApp;
pub use options::StudioOptions;
pub use views::View;

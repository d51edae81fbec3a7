//! L-RNN Studio: the desktop app (eframe/egui). The UI thread only draws; model runs and probes
//! happen on the worker thread (`worker.rs`) and training on its own thread, whose replies and
//! events the UI drains every frame. `app.rs` holds the state and the top bar; each view is one
//! file in `views/`; `screenshot.rs` renders a view without a window.

pub mod app;
pub mod screenshot;
pub mod views;
pub mod worker;

pub use app::{StudioApp, StudioOptions};
pub use views::View;

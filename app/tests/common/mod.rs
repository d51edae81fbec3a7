//! What the app's UI tests share: scratch folders, an app opened on the bundled defaults, and
//! saving a render that is not compared with a snapshot.
#![allow(clippy::unwrap_used, dead_code)] // tests; not every test binary uses every helper

use std::path::PathBuf;

#[path = "../../../core/tests/common/scratch.rs"]
mod scratch;
use std::time::Duration;

use egui_kittest::Harness;
use lrnn_studio::screenshot::{harness, settle};
use lrnn_studio::{StudioApp, StudioOptions};

/// A fresh scratch folder for this test process.
pub fn temp(name: &str) -> PathBuf {
    scratch::scratch_dir(name)
}

/// The bundled defaults, with runs going to a scratch folder.
pub fn options(name: &str) -> StudioOptions {
    // The settings file in the scratch folder: a test never reads or changes the user's.
    let work_dir = temp(name);
    StudioOptions { settings: Some(work_dir.join("studio.json")), work_dir, ..StudioOptions::bundled() }
}

/// Fails at once, naming what to install, when this machine has no GPU adapter for the
/// renderer (a fresh Debian machine without a Vulkan driver).
pub fn require_adapter() {
    let instance = wgpu::Instance::default();
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    assert!(
        !adapters.is_empty(),
        "no GPU adapter: the UI tests render through wgpu. Install a Vulkan driver \
         (Debian: apt-get install mesa-vulkan-drivers, the software one, lavapipe)"
    );
}

/// The app on the bundled model and photo, once it has loaded them without error.
pub fn open(name: &str) -> Harness<'static, StudioApp> {
    require_adapter();
    let mut h = harness(options(name), (1280.0, 860.0));
    settle(&mut h, Duration::from_secs(300)).unwrap();
    assert_eq!(h.state().error(), None);
    h
}

/// Saves a render to `target/ui-renders/<name>.png` (for renders that change from run to run).
pub fn save_render(h: &mut Harness<'static, StudioApp>, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-renders");
    std::fs::create_dir_all(&dir).unwrap();
    h.render().unwrap().save(dir.join(format!("{name}.png"))).unwrap();
}

/// How many pixels of a snapshot may differ: software renderers (lavapipe, llvmpipe through GL)
/// rasterise a few edge pixels differently, which is no change a person would see.
pub const SNAPSHOT_PIXELS: usize = 400;

/// Compares a render with its snapshot in `tests/snapshots/`, allowing [`SNAPSHOT_PIXELS`]
/// differing pixels.
pub fn snapshot(h: &mut Harness<'static, StudioApp>, name: &str) {
    let options = egui_kittest::SnapshotOptions::new().max_failed_pixels(SNAPSHOT_PIXELS);
    h.snapshot_options(name, &options);
}

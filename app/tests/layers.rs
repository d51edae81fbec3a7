//! The app's modules form layers and no module reaches up (the core's layer test reads the
//! sources the same way): options and view-model types at the bottom, then the job protocol and
//! file work, the worker, the textures, the state the views share, the views, the lesson
//! (it drives the shared state and names views), the app, and the screenshot renderer on top. A view never uses the app; the app holds the views.

use std::path::Path;

#[path = "../../core/tests/layering/mod.rs"]
mod layering;

const LAYERS: &[(&str, usize)] = &[
    ("options", 0),
    ("view_model", 0),
    ("fonts", 0),
    ("settings", 0),
    ("protocol", 1),
    ("files", 1),
    ("worker", 2),
    ("textures", 3),
    ("shared", 4),
    ("views", 5),
    ("lesson", 6),
    ("app", 7),
    ("screenshot", 8),
    // The crate root's re-exports count as the modules they come from.
    ("StudioApp", 7),
    ("StudioOptions", 0),
    ("View", 5),
];

#[test]
fn no_module_of_the_app_uses_a_higher_one() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (seen, violations) = layering::violations(&src, LAYERS);
    assert!(seen >= 15, "read only {seen} source files under {}", src.display());
    assert!(violations.is_empty(), "modules reaching up:\n{}", violations.join("\n"));
}

//! What the app opens: the model, the photo, where its runs go, and the bundled assets it offers.

use std::path::PathBuf;

/// What the app opens.
#[derive(Debug, Clone)]
pub struct StudioOptions {
    /// A run or checkpoint folder.
    pub model: PathBuf,
    /// A photo.
    pub image: PathBuf,
    /// Where runs made in the app go (fine-tuning, insertions).
    pub work_dir: PathBuf,
    /// The settings file kept between runs (UI scale, colours); `None`: nothing is kept.
    pub settings: Option<PathBuf>,
}

/// The folder of the bundled assets.
pub fn assets_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets")
}

impl StudioOptions {
    /// The bundled defaults: the context-task CNN with L-RNNs inserted and fine-tuned, and the
    /// astronaut photo (both in `assets/`); runs go to `~/.cache/lrnn/studio`.
    pub fn bundled() -> Self {
        let assets = assets_dir();
        Self {
            model: assets.join("models/context-lrnn-finetuned"),
            image: assets.join("photos/astronaut.png"),
            work_dir: lrnn_core::io::vgg16::default_cache().join("studio"),
            settings: default_settings_path(),
        }
    }
}

/// The settings file kept between runs: `$XDG_CONFIG_HOME/lrnn/studio.json`, else
/// `~/.config/lrnn/studio.json` (`None` without a home).
pub fn default_settings_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("lrnn").join("studio.json"))
}

/// The bundled segmentation network (FCN-8s-LRNN trained on the generated scenes) and the scenes
/// it opens with (a VOC tree with ground truth, scenes it was not trained on).
pub const BUNDLED_SEGMENTER: (&str, &str) = ("scenes-fcn8s-lrnn", "scenes");

/// The bundled models the model menu offers.
pub const BUNDLED_MODELS: [(&str, &str); 6] = [
    ("scenes-fcn8s-lrnn", "FCN-8s-LRNN on the generated scenes (segmentation)"),
    ("context-lrnn-finetuned", "Context-CNN + inserted L-RNNs, fine-tuned"),
    ("context-lrnn", "Context-LRNN, trained from scratch"),
    ("context-cnn", "Context-CNN (no L-RNN)"),
    ("e-rnn-max-fashion-mnist", "E-RNN (Fashion-MNIST)"),
    ("baseline-cnn-max-fashion-mnist", "Baseline-CNN (Fashion-MNIST)"),
];

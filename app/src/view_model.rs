//! What the worker tells the views: the view-model types (an analysis of one model on one
//! photo, its maps, recurrences, segmentation and ERFs), built on the worker and only read on the
//! UI thread.

use std::path::PathBuf;

use image::RgbImage;
use lrnn_core::models::capture::MapKind;
use lrnn_core::probe::recurrence::Spectrum;
use lrnn_core::train::trainer::RunState;

/// The most channels of one map the worker sends to the UI.
pub const MAX_CHANNELS: usize = 64;

/// About the most values of one map the worker sends to the UI.
pub const MAX_VALUES: usize = 1 << 22;

/// One unit of one map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitRef {
    /// The map's capture name.
    pub map: String,
    /// Channel.
    pub channel: usize,
    /// Row.
    pub y: usize,
    /// Column.
    pub x: usize,
}

impl std::fmt::Display for UnitRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} channel {} at row {}, column {}", self.map, self.channel, self.y, self.x)
    }
}

/// One map of the forward pass.
#[derive(Debug, Clone)]
pub struct MapData {
    /// Capture name.
    pub name: String,
    /// Layer, direction or output.
    pub kind: MapKind,
    /// `(channels, height, width)`.
    pub shape: (usize, usize, usize),
    /// The first `MAX_CHANNELS` channels, `[c, h, w]` row-major.
    pub values: Vec<f32>,
}

impl MapData {
    /// Channels held in `values`.
    pub fn held_channels(&self) -> usize {
        let (c, h, w) = self.shape;
        c.min(self.values.len() / (h * w).max(1))
    }

    /// The value of `channel` at `(y, x)`, if held.
    pub fn value(&self, channel: usize, y: usize, x: usize) -> Option<f32> {
        let (_, h, w) = self.shape;
        (channel < self.held_channels() && y < h && x < w).then(|| self.values[(channel * h + y) * w + x])
    }

    /// One channel, `[h, w]`.
    pub fn channel(&self, channel: usize) -> &[f32] {
        let (_, h, w) = self.shape;
        let c = channel.min(self.held_channels().saturating_sub(1));
        &self.values[c * h * w..(c + 1) * h * w]
    }
}

/// One recurrence matrix (one gate's block for a GRU) with its spectrum.
#[derive(Debug, Clone)]
pub struct RecurrenceInfo {
    /// The weight's name (`conv5.v_lr.weight`, `stage3.0.lrnn.tb.v.weight`).
    pub name: String,
    /// The gate (`v` for a vanilla cell; `z`, `r`, `h` for a GRU).
    pub gate: &'static str,
    /// Its side.
    pub size: usize,
    /// Row-major values at the current scale.
    pub values: Vec<f32>,
    /// The analysis (`None` until asked for with `Job::Spectra` for matrices larger than
    /// [`EAGER_SPECTRUM`]: a 1024x1024 decomposition takes seconds).
    pub spectrum: Option<Spectrum>,
}

/// Where an L-RNN pair (V = 0) can go in the loaded model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertTarget {
    /// One convolution of a plain convnet, by name; the pair's axis is chosen.
    Conv(String),
    /// Every head of an FCN without L-RNNs, as in the paper (a horizontal pair on fc1, fc4, fc7,
    /// a vertical one on fc2, fc5, fc8).
    FcnHeads,
}

impl std::fmt::Display for InsertTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InsertTarget::Conv(name) => f.write_str(name),
            InsertTarget::FcnHeads => {
                f.write_str("the FCN heads (fc1/fc2, fc4/fc5, fc7/fc8; fc6/fc7 of Long et al.'s)")
            }
        }
    }
}

/// Matrices up to this side get their spectrum with every analysis; larger ones on request.
pub const EAGER_SPECTRUM: usize = 256;

/// Everything the views show about one model on one photo.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The model, in words.
    pub model: String,
    /// The checkpoint folder it came from.
    pub model_dir: PathBuf,
    /// The photo's file.
    pub photo: PathBuf,
    /// The photo's path as people read it (bundled files relative to `assets/`).
    pub photo_shown: String,
    /// The photo as read (any size), as RGB, for overlays.
    pub original: RgbImage,
    /// The photo as the model sees it (model input size; grey models see grey).
    pub input: RgbImage,
    /// Every map, in forward order (shared: views hold them across frames without copying).
    pub maps: Vec<std::sync::Arc<MapData>>,
    /// Class names and probabilities (empty for models without class scores).
    pub classes: Vec<(String, f32)>,
    /// Every recurrence matrix (empty for a plain CNN).
    pub recurrences: Vec<RecurrenceInfo>,
    /// The `V` scale in force.
    pub scale: f64,
    /// Where an L-RNN pair can be inserted (the convolutions of a plain convnet, or the heads of
    /// an FCN without L-RNNs).
    pub insertable: Vec<InsertTarget>,
    /// The checkpoint's run state (its training configuration and history; `None` for a folder
    /// holding only `model.json` and `weights.safetensors`).
    pub state: Option<RunState>,
    /// A segmentation network's labels for the photo (`None` for other models).
    pub segmentation: Option<Segmentation>,
    /// Where the maps were computed, in words (`CPU (candle)`, or the GPU adapter; a GPU failure
    /// says why it fell back).
    pub device: String,
    /// The receptive-field arithmetic of every layer (from the architecture).
    pub rf_table: Vec<lrnn_core::probe::rf_table::RfRow>,
}

/// A segmentation network's reading of the photo, for the Segmentation view. Every label map is
/// at the photo's own size (the network's, resized by nearest neighbour, as `lrnn predict` does).
#[derive(Debug, Clone)]
pub struct Segmentation {
    /// Class names, by label.
    pub classes: Vec<String>,
    /// The photo's width and height.
    pub size: (usize, usize),
    /// The model's labels at the current `V` scale.
    pub prediction: Vec<u8>,
    /// The labels with every `V` at zero: the CNN the pairs were inserted into (`None` when the
    /// model has no recurrence).
    pub cnn: Option<Vec<u8>>,
    /// The photo's ground truth (255: ignored), when the photo sits in a VOC tree with its mask.
    pub truth: Option<Vec<u8>>,
    /// Where the ground truth came from, or why there is none.
    pub truth_note: String,
    /// The model's labels refined by the dense CRF over the photo, when the CRF is switched on.
    pub crf: Option<Vec<u8>>,
}

/// The ERF of one unit as values over the model input, with its mass numbers.
#[derive(Debug, Clone)]
pub struct ErfPicture {
    /// `[n, n]`, peak magnitude 1.
    pub values: Vec<f32>,
    /// Sides of the centred squares holding 20%, 50% and 99% of the gradient.
    pub mass: [Option<usize>; 3],
    /// The unit's centre in input pixels `(y, x)`.
    pub centre: (f32, f32),
    /// Whether the GPU's backward pass computed it (else the CPU's).
    pub on_gpu: bool,
}

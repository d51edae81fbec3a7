//! JSON model descriptions (SPEC §8): what network to build, beside its safetensors weights.
//!
//! A lone L-RNN module:
//! `{"kind": "lrnn", "in_channels": 3, "hidden": 8, "cell": "vanilla_ln", "merge": "sum"}`.
//! A CIFAR network of the paper (SPEC §5):
//! `{"kind": "cifar", "name": "E-RNN-Max", "classes": 10, "in_channels": 3, "dropout": 0.5}`
//! (all but `name` optional).
//! A segmentation network (SPEC §6): `{"kind": "fcn", "variant": "8s", "heads": 1024, "lrnn": true}`.
//! A plain convolutional network with inserted L-RNN pairs (see [`super::convnet`]):
//! `{"kind": "convnet", "name": "Context-LRNN", "in_channels": 1, "classes": 2, "input_size": 64,
//! "layers": [...], "insert": [{"layer": "conv5", "axis": "horizontal"}]}`.
//! Unknown fields are an error, so a typo never silently falls back to a default. Writing one
//! (atomically) is in [`crate::io::model_files`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::cifar::{CifarArch, CifarConfig, NETWORK_NAMES};
use super::convnet::{ConvNetConfig, PRESET_NAMES};
use super::fcn::{FcnConfig, FCN_NAMES};
use super::fcn_caffe::{FcnCaffeConfig, FCN_CAFFE_NAMES};
use super::graph::Graph;
use crate::error::{Error, Result};
use crate::nn::geometry::Geom;
use crate::nn::LayerRnnConfig;

/// A model description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelDesc {
    /// A lone L-RNN module (no prefix on its weights and captured maps).
    Lrnn(LayerRnnConfig),
    /// A CIFAR network of the paper, by name.
    Cifar(CifarConfig),
    /// A plain convolutional network, possibly with inserted L-RNN pairs.
    Convnet(ConvNetConfig),
    /// A VGG-16 FCN for segmentation (SPEC §6).
    Fcn(FcnConfig),
    /// One of Long et al.'s FCNs in its published geometry (any input size).
    FcnCaffe(FcnCaffeConfig),
}

impl ModelDesc {
    /// Parses a description from JSON text; `path` only names the source in errors.
    ///
    /// # Errors
    /// [`Error::File`] naming `path` and the problem (invalid JSON, unknown kind or field,
    /// missing field, zero sizes).
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let desc: ModelDesc = serde_json::from_str(text)
            .map_err(|e| Error::file(path, format!("not a valid model description: {e}")))?;
        desc.validate().map_err(|problem| Error::file(path, problem))?;
        Ok(desc)
    }

    /// Reads a description file.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::File`] naming `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
        if len > 64 << 20 {
            return Err(Error::file(path, format!("{len} bytes: too large for a model description")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text, path)
    }

    /// The model as an op graph (every backend walks it: [`super::graph`]).
    ///
    /// # Errors
    /// An invalid description, in words.
    pub fn graph(&self) -> std::result::Result<Graph, String> {
        self.validate_fields()?;
        Ok(match self {
            ModelDesc::Lrnn(c) => {
                let mut g = Graph::new(c.in_channels);
                g.lrnn(Graph::INPUT, "", (c.in_channels, c.hidden), c.cell, c.merge);
                g
            }
            ModelDesc::Cifar(c) => CifarArch::from_name(&c.name)?.graph(c),
            ModelDesc::Convnet(c) => c.graph(),
            ModelDesc::Fcn(c) => c.graph(),
            ModelDesc::FcnCaffe(c) => c.graph(),
        })
    }

    /// Input channels the model expects.
    pub fn in_channels(&self) -> usize {
        match self {
            ModelDesc::Lrnn(c) => c.in_channels,
            ModelDesc::Cifar(c) => c.in_channels,
            ModelDesc::Convnet(c) => c.in_channels,
            ModelDesc::Fcn(_) | ModelDesc::FcnCaffe(_) => 3,
        }
    }

    /// The side of the images the model was made for (32 for the CIFAR networks and a lone module).
    pub fn input_size(&self) -> usize {
        match self {
            ModelDesc::Lrnn(_) | ModelDesc::Cifar(_) => 32,
            ModelDesc::Convnet(c) => c.input_size,
            ModelDesc::Fcn(c) => c.input_size.unwrap_or(384),
            // Run at a photo's own size; 500 is a VOC photo's long side.
            ModelDesc::FcnCaffe(_) => 500,
        }
    }

    /// The geometry of every layer up to the captured map `map`, for theoretical receptive
    /// fields (plain convnets and FCNs; `None` for other models or unknown maps).
    /// A direction map (`conv5.lr`) ends with that direction alone instead of its pair.
    pub fn geometry(&self, map: &str) -> Option<Vec<Geom>> {
        let (layer, direction) = match map.rsplit_once('.') {
            Some((layer, d)) => (layer, Some(crate::nn::Direction::from_name(d)?)),
            None => (map, None),
        };
        let mut g = match self {
            ModelDesc::Convnet(c) => c.geometry(layer)?,
            ModelDesc::Fcn(c) => c.geometry(layer)?,
            // Long et al.'s FCNs pad their input by 100: their units do not sit on the
            // centred grid the receptive-field overlay assumes, so none is drawn.
            ModelDesc::Lrnn(_) | ModelDesc::Cifar(_) | ModelDesc::FcnCaffe(_) => return None,
        };
        if let Some(d) = direction {
            match g.last_mut() {
                Some(last @ (Geom::RowScan | Geom::ColumnScan)) => *last = Geom::Scan(d),
                _ => return None, // not a layer with an inserted pair
            }
        }
        Some(g)
    }

    /// Number of classes the model scores (`None` for a lone L-RNN module).
    pub fn classes(&self) -> Option<usize> {
        match self {
            ModelDesc::Lrnn(_) => None,
            ModelDesc::Cifar(c) => Some(c.classes),
            ModelDesc::Convnet(c) => Some(c.classes),
            ModelDesc::Fcn(c) => Some(c.classes),
            ModelDesc::FcnCaffe(c) => Some(c.classes),
        }
    }

    /// A short name for people: the network's name, or `L-RNN module`.
    pub fn display_name(&self) -> String {
        match self {
            ModelDesc::Lrnn(c) => {
                format!("L-RNN module ({} -> {}, {})", c.in_channels, c.hidden, c.cell.name())
            }
            ModelDesc::Cifar(c) => c.name.clone(),
            ModelDesc::Convnet(c) if c.insert.is_empty() => c.name.clone(),
            ModelDesc::Convnet(c) => {
                let layers: Vec<&str> = c.insert.iter().map(|i| i.layer.as_str()).collect();
                format!("{} + L-RNN pairs in {}", c.name, layers.join(", "))
            }
            ModelDesc::Fcn(c) => c.display_name(),
            ModelDesc::FcnCaffe(c) => c.display_name(),
        }
    }

    /// A description from a built-in network's name (the CIFAR networks, `Context-CNN`,
    /// `Context-LRNN`) or a JSON file's path: `name_or_path` is a file when it ends in `.json`.
    ///
    /// # Errors
    /// As [`ModelDesc::load`], or an unknown network name.
    pub fn from_name_or_file(name_or_path: &str) -> Result<Self> {
        if std::path::Path::new(name_or_path).extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
            return Self::load(Path::new(name_or_path));
        }
        if let Some(config) = ConvNetConfig::preset(name_or_path) {
            return Ok(ModelDesc::Convnet(config));
        }
        if let Some(config) = FcnConfig::named(name_or_path) {
            return Ok(ModelDesc::Fcn(config));
        }
        if let Some(config) = FcnCaffeConfig::named(name_or_path) {
            return Ok(ModelDesc::FcnCaffe(config));
        }
        if CifarArch::from_name(name_or_path).is_err() {
            return Err(Error::file(
                name_or_path,
                format!(
                    "unknown network `{name_or_path}` (and not a .json file); known: {}, {}, {}, {} (or -Avg)",
                    PRESET_NAMES.join(", "),
                    FCN_NAMES.join(", "),
                    FCN_CAFFE_NAMES.join(", "),
                    NETWORK_NAMES.join(", ")
                ),
            ));
        }
        let desc = ModelDesc::Cifar(CifarConfig::named(name_or_path));
        desc.validate().map_err(|problem| Error::file(name_or_path, problem))?;
        Ok(desc)
    }

    /// Checks the fields, the sizes against [`crate::limits`] and the graph's sizes (channels,
    /// weights' memory), before anything is allocated for them.
    fn validate(&self) -> std::result::Result<(), String> {
        self.graph()?.check_sizes()
    }

    /// Checks the fields and the description's own sizes (not the graph's).
    fn validate_fields(&self) -> std::result::Result<(), String> {
        self.check_fields()?;
        // Channel counts within the limit before any arithmetic on them (a huge `hidden` would
        // overflow `2 · hidden` for a concat merge).
        let channels: Vec<(usize, &str)> = match self {
            ModelDesc::Lrnn(c) => vec![(c.in_channels, "in_channels"), (c.hidden, "hidden")],
            ModelDesc::Cifar(c) => vec![(c.in_channels, "in_channels"), (c.classes, "classes")],
            ModelDesc::Fcn(c) => vec![(c.heads, "heads"), (c.classes, "classes")],
            ModelDesc::FcnCaffe(c) => {
                let mut v = vec![(c.fc, "fc"), (c.classes, "classes")];
                v.extend(c.trunk.iter().map(|&t| (t, "a trunk width")));
                v
            }
            ModelDesc::Convnet(c) => c
                .layers
                .iter()
                .filter_map(|l| match l {
                    crate::models::convnet::LayerSpec::Conv { out, .. } => {
                        Some((*out, "a convolution's out"))
                    }
                    _ => None,
                })
                .collect(),
        };
        for (v, what) in channels {
            if v > crate::limits::MAX_CHANNELS {
                return Err(format!("{what} {v} is outside 1..={}", crate::limits::MAX_CHANNELS));
            }
        }
        if let ModelDesc::Convnet(c) = self {
            crate::limits::check_size(c.input_size, crate::limits::MAX_SIDE, "input_size")?;
            crate::limits::check_size(c.layers.len(), crate::limits::MAX_LAYERS, "the number of layers,")?;
        }
        if let Some(n) = match self {
            ModelDesc::Fcn(c) => c.input_size,
            _ => None,
        } {
            crate::limits::check_size(n, crate::limits::MAX_SIDE, "input_size")?;
        }
        Ok(())
    }

    fn check_fields(&self) -> std::result::Result<(), String> {
        match self {
            ModelDesc::Lrnn(c) if c.in_channels == 0 || c.hidden == 0 => {
                Err("in_channels and hidden must be at least 1".into())
            }
            ModelDesc::Lrnn(_) => Ok(()),
            ModelDesc::Cifar(c) => {
                CifarArch::from_name(&c.name)?;
                if c.classes == 0 || c.in_channels == 0 {
                    return Err("classes and in_channels must be at least 1".into());
                }
                if !(0.0..1.0).contains(&c.dropout) {
                    return Err(format!("dropout {} is outside [0, 1)", c.dropout));
                }
                Ok(())
            }
            ModelDesc::Convnet(c) => c.validate(),
            ModelDesc::Fcn(c) => c.validate(),
            ModelDesc::FcnCaffe(c) => c.validate(),
        }
    }

    /// Whether the model segments (scores every pixel): the FCNs.
    pub fn is_segmentation(&self) -> bool {
        matches!(self, ModelDesc::Fcn(_) | ModelDesc::FcnCaffe(_))
    }

    /// Whether photos go in at their own size (Long et al.'s FCNs) rather than resized to
    /// [`ModelDesc::input_size`].
    pub fn own_size(&self) -> bool {
        matches!(self, ModelDesc::FcnCaffe(_))
    }
}

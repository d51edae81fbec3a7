//! Whole models built from a [`ModelDesc`], with their variables, so that any description can be
//! initialised, loaded, run with capture, and saved.

pub mod capture;
pub mod cifar;
pub mod convnet;
pub mod desc;
pub(crate) mod execute;
pub mod fcn;
pub mod fcn_caffe;
pub mod graph;
pub mod init;

pub use desc::ModelDesc;
pub use graph::{Graph, LayerRow};

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use crate::error::Result;
use crate::nn::Forward;

/// A model: its description, its variables and the network.
pub struct Model {
    desc: ModelDesc,
    varmap: VarMap,
    exec: execute::Executable,
    device: Device,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("desc", &self.desc)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Builds the model with freshly initialised weights.
    ///
    /// # Errors
    /// Candle errors.
    pub fn new(desc: ModelDesc, device: &Device) -> Result<Self> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let graph = desc.graph().map_err(crate::Error::Invalid)?;
        graph.check_sizes().map_err(crate::Error::Invalid)?;
        let exec = execute::Executable::bind(graph, &vb)?;
        let model = Self { desc, varmap, exec, device: device.clone() };
        model.init_inserted_recurrences()?;
        Ok(model)
    }

    /// Sets every inserted pair's `V` to its `v_init` times the identity (they are created at zero).
    fn init_inserted_recurrences(&self) -> Result<()> {
        let vars = self
            .varmap
            .data()
            .lock()
            .map_err(|_| crate::Error::Invalid("model variables are poisoned".into()))?;
        // (weight name, scale) of every inserted V that does not start at zero.
        let starts: Vec<(String, f32)> = match &self.desc {
            ModelDesc::Convnet(cfg) => cfg
                .insert
                .iter()
                .filter(|i| i.v_init != 0.0)
                .flat_map(|ins| {
                    ins.axis
                        .directions()
                        .map(|d| (format!("{}.v_{}.weight", ins.layer, d.name()), ins.v_init))
                })
                .collect(),
            ModelDesc::Fcn(cfg) if cfg.lrnn && cfg.v_init != 0.0 => vars
                .keys()
                .filter(|n| n.contains(".v_") && n.ends_with(".weight"))
                .map(|n| (n.clone(), cfg.v_init))
                .collect(),
            _ => return Ok(()),
        };
        for (name, v_init) in starts {
            if let Some(var) = vars.get(&name) {
                let d = var.dim(0)?;
                let eye = (Tensor::eye(d, DType::F32, &self.device)? * f64::from(v_init))?;
                var.set(&eye)?;
            }
        }
        Ok(())
    }

    /// Builds the model with weights drawn from `seed` (reproducible; see [`init`]).
    ///
    /// # Errors
    /// Candle errors.
    pub fn new_seeded(desc: ModelDesc, device: &Device, seed: u64) -> Result<Self> {
        let model = Self::new(desc, device)?;
        {
            let vars = model
                .varmap
                .data()
                .lock()
                .map_err(|_| crate::Error::file("<memory>", "model variables are poisoned"))?;
            init::reinit_seeded(&vars, seed)?;
            if let ModelDesc::Fcn(_) = &model.desc {
                // FCN's scoring layers start at zero (Long et al.): the pre-trained trunk's
                // activations are in the hundreds, and random scores on them give losses of
                // that size on the first steps.
                for (name, var) in vars.iter() {
                    if fcn::SCORE_LAYERS
                        .iter()
                        .any(|l| name.strip_prefix(l).is_some_and(|r| r.starts_with('.')))
                    {
                        var.set(&var.zeros_like()?)?;
                    }
                }
            }
            if let ModelDesc::FcnCaffe(_) = &model.desc {
                // Long et al.'s start: scoring layers at zero, every upsampling a fixed bilinear
                // interpolation of each class onto itself.
                for (name, var) in vars.iter() {
                    let layer = name.split('.').next().unwrap_or_default();
                    if layer.starts_with("score") {
                        var.set(&var.zeros_like()?)?;
                    } else if layer.starts_with("upscore") {
                        let (cin, cout, k, _) = var.dims4()?;
                        var.set(&Tensor::from_vec(
                            fcn_caffe::bilinear_kernel(cin, cout, k),
                            var.shape(),
                            &model.device,
                        )?)?;
                    }
                }
            }
        }
        model.init_inserted_recurrences()?;
        Ok(model)
    }

    /// The description.
    pub fn desc(&self) -> &ModelDesc {
        &self.desc
    }

    /// The model's op graph (what every backend runs).
    pub fn graph(&self) -> &Graph {
        self.exec.graph()
    }

    /// The variables (for optimisers and for saving).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Runs the network.
    ///
    /// # Errors
    /// Shape mismatches with the input.
    pub fn forward(&self, x: &Tensor, fwd: &mut Forward) -> Result<Tensor> {
        Ok(self.exec.forward(x, fwd)?)
    }

    /// Runs the network in inference mode with `backend` and returns one map: `output`, or a map it
    /// captures (`stem`, `stage3.0`, `stage2.0.lrnn.lr`, `lr`, …).
    ///
    /// # Errors
    /// An unknown map name (the message lists the known ones); shape mismatches.
    pub fn forward_map(&self, x: &Tensor, map: &str, backend: crate::nn::ScanBackend) -> Result<Tensor> {
        let mut fwd = Forward::eval().capturing().with_backend(backend);
        let y = self.forward(x, &mut fwd)?;
        if map == "output" {
            return Ok(y);
        }
        let mut maps = fwd.take_captured();
        maps.remove(map).ok_or_else(|| {
            let names: Vec<String> = maps.keys().cloned().collect();
            crate::Error::Candle(candle_core::Error::msg(format!(
                "no map `{map}`; the model captures: output, {}",
                names.join(", ")
            )))
        })
    }

    /// The trainable variables (every weight but BatchNorm running statistics) with their names,
    /// in name order (the order optimiser state is saved in).
    ///
    /// # Errors
    /// Never in practice (a poisoned lock).
    pub fn trainable_vars(&self) -> Result<Vec<(String, candle_core::Var)>> {
        let vars = self
            .varmap
            .data()
            .lock()
            .map_err(|_| crate::Error::file("<memory>", "model variables are poisoned"))?;
        let mut named: Vec<(String, candle_core::Var)> = vars
            .iter()
            .filter(|(n, _)| !is_running_statistic(n))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(named)
    }

    /// The weights by name.
    ///
    /// # Errors
    /// Never in practice (a poisoned lock).
    pub fn weights(&self) -> Result<BTreeMap<String, Tensor>> {
        let vars = self
            .varmap
            .data()
            .lock()
            .map_err(|_| crate::Error::file("<memory>", "model variables are poisoned"))?;
        Ok(vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect())
    }

    /// Number of trainable parameters (every weight but BatchNorm running statistics).
    ///
    /// # Errors
    /// Never in practice (a poisoned lock).
    pub fn parameter_count(&self) -> Result<usize> {
        Ok(self.trainable_vars()?.iter().map(|(_, v)| v.elem_count()).sum())
    }

    /// The same model with L-RNN pairs inserted into convolutions (SPEC §4, paper App. B): every
    /// weight is kept and each new recurrence starts at its `v_init` times the identity; with the
    /// paper's zero the outputs are bit-for-bit unchanged until the recurrences are trained.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] when the model is not a `convnet` or an insertion does not fit it.
    pub fn with_insertions(&self, insert: &[convnet::Insertion]) -> Result<Model> {
        let ModelDesc::Convnet(cfg) = &self.desc else {
            return Err(crate::Error::Invalid(format!(
                "L-RNNs can be inserted only into a plain convnet model, not into {}",
                self.desc.display_name()
            )));
        };
        let mut cfg = cfg.clone();
        cfg.insert.extend(insert.iter().cloned());
        cfg.validate().map_err(crate::Error::Invalid)?;
        self.with_weights_in(ModelDesc::Convnet(cfg))
    }

    /// An FCN with L-RNN pairs inserted into its heads (fc1/fc2, and fc4/fc5, fc7/fc8 for FCN-8s:
    /// the paper's FCN-8s-LRNN; fc6 and fc7 of Long et al.'s FCNs), every weight kept and every `V` at zero, so that it segments
    /// exactly as this FCN until fine-tuned.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] when the model is not an FCN or already has the pairs.
    pub fn with_lrnn_heads(&self) -> Result<Model> {
        match &self.desc {
            ModelDesc::Fcn(cfg) if !cfg.lrnn => self.with_weights_in(ModelDesc::Fcn(fcn::FcnConfig {
                lrnn: true,
                v_init: 0.0,
                ..cfg.clone()
            })),
            ModelDesc::FcnCaffe(cfg) if !cfg.lrnn => {
                self.with_weights_in(ModelDesc::FcnCaffe(fcn_caffe::FcnCaffeConfig {
                    lrnn: true,
                    ..cfg.clone()
                }))
            }
            other => Err(crate::Error::Invalid(format!(
                "{} is not an FCN without L-RNNs: nothing to insert into its heads",
                other.display_name()
            ))),
        }
    }

    /// A new model of `desc` holding this model's weights; the tensors this one lacks (new
    /// recurrences) keep their start values.
    fn with_weights_in(&self, desc: ModelDesc) -> Result<Model> {
        self.with_weights_on(desc, &self.device)
    }

    /// The same model with its weights copied to `device` (candle's CUDA device, say).
    ///
    /// # Errors
    /// Candle errors (no memory on the device).
    pub fn to_device(&self, device: &Device) -> Result<Model> {
        self.with_weights_on(self.desc.clone(), device)
    }

    fn with_weights_on(&self, desc: ModelDesc, device: &Device) -> Result<Model> {
        let model = Model::new(desc, device)?;
        let old = self.weights()?;
        {
            let vars = model
                .varmap
                .data()
                .lock()
                .map_err(|_| crate::Error::Invalid("model variables are poisoned".into()))?;
            // Tensors the old model lacks are the new recurrences, already at their start values.
            for (name, var) in vars.iter() {
                if let Some(t) = old.get(name) {
                    var.set(&t.to_device(device)?)?;
                }
            }
        }
        Ok(model)
    }
}

/// Whether a weight is a BatchNorm running statistic (state, not a trainable parameter).
pub fn is_running_statistic(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

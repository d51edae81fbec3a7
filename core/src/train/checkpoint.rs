//! Checkpoints, the one way every caller opens a trained model: a checkpoint folder
//! (`step-NNNNNNNN/`: `model.json`, `weights.safetensors`, `state.json`, `optimizer.safetensors`,
//! `mean.safetensors` when the run subtracted a mean), a run folder (its `latest.json` names the
//! newest complete checkpoint), a packed checkpoint (`lrnn pack`: no optimiser state) or a bare
//! model folder (`model.json` + `weights.safetensors`, what `lrnn init` and `lrnn insert` write).
//! [`Checkpoint::open`] reads any of them into the model, its run state and its mean image.
//!
//! Writing: every file atomically, `latest.json` last, so a stopped or failed run always leaves
//! the last good checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::optim::Optimizer;
use super::trainer::{load_data, trainable, RunState};
use crate::error::{Error, Result};
use crate::io;
use crate::models::{Model, ModelDesc};

/// A trained (or freshly initialised) model with what it was trained with.
#[derive(Debug)]
pub struct Checkpoint {
    /// The model, its weights loaded.
    pub model: Model,
    /// The folder it was read from: the checkpoint folder (for a run folder, its latest).
    pub dir: PathBuf,
    /// The run's state (configuration, steps, history); `None` for a bare model folder.
    pub state: Option<RunState>,
    /// The mean image its inputs are centred with (flattened `[C, H, W]`); `None` when the run
    /// did not subtract one or the folder is a bare model (inputs are then centred at 0.5).
    pub mean: Option<Vec<f32>>,
}

impl Checkpoint {
    /// Opens a checkpoint, run, packed or bare model folder on `device`.
    ///
    /// # Errors
    /// [`Error::File`] naming the path when it is none of these; missing or malformed files,
    /// named.
    pub fn open(path: &Path, device: &Device) -> Result<Self> {
        let bare = path.join("model.json").exists()
            && path.join("weights.safetensors").exists()
            && !path.join("state.json").exists();
        if bare {
            let desc = ModelDesc::load(&path.join("model.json"))?;
            let model = Model::load(desc, &path.join("weights.safetensors"), device)?;
            return Ok(Self { model, dir: path.to_path_buf(), state: None, mean: None });
        }
        let dir = Self::resolve(path)?;
        let (model, state) = load_checkpoint(&dir, device)?;
        let mean = checkpoint_mean(&dir, &state)?;
        Ok(Self { model, dir, state: Some(state), mean })
    }

    /// The folder of the checkpoint a path names: a checkpoint or model folder itself (it holds
    /// `weights.safetensors`), or a run folder's latest checkpoint.
    ///
    /// # Errors
    /// [`Error::File`] when the path is neither.
    pub fn resolve(path: &Path) -> Result<PathBuf> {
        if path.join("weights.safetensors").exists() {
            return Ok(path.to_path_buf());
        }
        latest_checkpoint(path)?.ok_or_else(|| {
            Error::file(
                path,
                "neither a checkpoint (no weights.safetensors) nor a run folder (no latest.json)",
            )
        })
    }

    /// The description of the model a path holds, without loading its weights.
    ///
    /// # Errors
    /// As [`Checkpoint::resolve`] and [`ModelDesc::load`].
    pub fn desc(path: &Path) -> Result<ModelDesc> {
        ModelDesc::load(&Self::resolve(path)?.join("model.json"))
    }

    /// The model and the run's state, for a checkpoint of a run.
    ///
    /// # Errors
    /// [`Error::File`] for a bare model folder (it has no run state).
    pub fn into_run(self) -> Result<(Model, RunState)> {
        match self.state {
            Some(state) => Ok((self.model, state)),
            None => Err(Error::file(&self.dir, "a model folder without a run (no state.json)")),
        }
    }

    /// Global steps trained (0 for a bare model).
    pub fn steps(&self) -> usize {
        self.state.as_ref().map_or(0, |s| s.global_step)
    }

    /// `<folder> after N steps` (or the folder alone for a bare model), for people.
    pub fn describe(&self) -> String {
        match &self.state {
            Some(s) => format!("{} after {} steps", self.dir.display(), s.global_step),
            None => self.dir.display().to_string(),
        }
    }

    /// The names of the classes it was trained on (empty for a bare model).
    pub fn class_names(&self) -> &'static [&'static str] {
        self.state.as_ref().map_or(&[][..], |s| s.config.data.format.class_names())
    }
}

#[derive(Serialize, Deserialize)]
struct Latest {
    checkpoint: String,
}

/// The newest complete checkpoint of a run folder, if any.
///
/// # Errors
/// [`Error::File`] when `latest.json` exists but is unreadable.
pub fn latest_checkpoint(out: &Path) -> Result<Option<PathBuf>> {
    let p = out.join("latest.json");
    if !p.exists() {
        return Ok(None);
    }
    let bytes = io::read_file(&p)?;
    let text = String::from_utf8_lossy(&bytes);
    let latest: Latest =
        serde_json::from_str(&text).map_err(|e| Error::file(&p, format!("not valid: {e}")))?;
    // A checkpoint's own folder name, never a path that leads elsewhere.
    if checkpoint_step(Path::new(&latest.checkpoint)).is_none() || latest.checkpoint.contains(['/', '\\']) {
        let shown: String = latest.checkpoint.chars().take(80).collect();
        return Err(Error::file(&p, format!("names `{shown}`, not a checkpoint folder (step-NNNNNNNN)")));
    }
    Ok(Some(out.join(latest.checkpoint)))
}

pub(super) fn save_checkpoint(
    model: &Model,
    opt: &Optimizer,
    state: &RunState,
    mean: Option<&[f32]>,
) -> Result<PathBuf> {
    save_checkpoint_in(&state.config.out, model, opt, state, mean)
}

/// [`save_checkpoint`] into the run folder `out` (a temporary one that becomes
/// `state.config.out`).
fn save_checkpoint_in(
    out: &Path,
    model: &Model,
    opt: &Optimizer,
    state: &RunState,
    mean: Option<&[f32]>,
) -> Result<PathBuf> {
    let name = checkpoint_name(state.global_step);
    let dir = out.join(&name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    model.desc().save(&dir.join("model.json"))?;
    model.save_weights(&dir.join("weights.safetensors"))?;
    if let Some(m) = mean {
        let t = Tensor::from_vec(m.to_vec(), m.len(), &Device::Cpu)?;
        io::write_tensors(&BTreeMap::from([("mean".to_string(), t)]), &dir.join("mean.safetensors"))?;
    }
    let mut opt_state = BTreeMap::new();
    for ((n, _), t) in model.trainable_vars()?.into_iter().zip(opt.state()) {
        if let Some(t) = t {
            opt_state.insert(n, t.clone());
        }
    }
    io::write_tensors(&opt_state, &dir.join("optimizer.safetensors"))?;
    let text = serde_json::to_string_pretty(state).map_err(|e| Error::file(&dir, e.to_string()))?;
    io::write_atomic(&dir.join("state.json"), text.as_bytes())?;
    let latest = serde_json::to_string(&Latest { checkpoint: name.clone() })
        .map_err(|e| Error::file(out, e.to_string()))?;
    io::write_atomic(&out.join("latest.json"), latest.as_bytes())?;
    // Keep the newest two complete checkpoints (all of them when the run asked for snapshots).
    let keep_all = state.config.checkpoint_every.is_some();
    if let (false, Ok(entries)) = (keep_all, std::fs::read_dir(out)) {
        let mut old: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("step-")) && *p != dir)
            .collect();
        old.sort();
        for p in old.iter().rev().skip(1) {
            let _ = std::fs::remove_dir_all(p);
        }
    }
    Ok(dir)
}

/// The folder name of the checkpoint taken after `step` global steps.
pub(super) fn checkpoint_name(step: usize) -> String {
    format!("step-{step:08}")
}

/// The global step a checkpoint folder was taken at, from its name (`None` for other folders).
pub fn checkpoint_step(dir: &Path) -> Option<usize> {
    dir.file_name()?.to_str()?.strip_prefix("step-")?.parse().ok()
}

/// Inserts L-RNN pairs into the model of the checkpoint `from` (a checkpoint or run folder) and
/// writes the result as a new run folder `out` (one checkpoint at step 0 with the same mean image
/// and data source): every weight kept, the new recurrences exactly zero, so it scores exactly as
/// the original until fine-tuned (`TrainConfig::init_from`). Returns the checkpoint's folder.
///
/// # Errors
/// Unreadable checkpoints, or insertions that do not fit the model ([`Error::Invalid`]).
pub fn insert_into_checkpoint(
    from: &Path,
    insert: &[crate::models::convnet::Insertion],
    out: &Path,
) -> Result<PathBuf> {
    let dir = Checkpoint::resolve(from)?;
    let (model, state) = load_checkpoint(&dir, &Device::Cpu)?;
    let mean = checkpoint_mean(&dir, &state)?;
    let model = model.with_insertions(insert)?;
    let mut config = state.config.clone();
    config.model = model.desc().clone();
    config.out = out.to_path_buf();
    config.init_from = Some(dir);
    let opt = Optimizer::new(config.optimizer, trainable(&model)?, config.schedule.lr(0.0))?;
    let state = RunState {
        config,
        global_step: 0,
        epoch: 0,
        step_in_epoch: 0,
        history: vec![],
        trained_seconds: 0.0,
    };
    // The new run folder appears whole or not at all.
    let written =
        io::write_folder(out, |tmp| save_checkpoint_in(tmp, &model, &opt, &state, mean.as_deref()))?;
    Ok(out.join(written.file_name().unwrap_or_default()))
}

/// The mean image a checkpoint's model was trained with (flattened `[C, H, W]`): from its
/// `mean.safetensors`, or recomputed from the run's training data for checkpoints without one;
/// `None` when the run did not subtract a mean.
///
/// # Errors
/// A malformed mean file, or the run's data no longer readable.
fn checkpoint_mean(dir: &Path, state: &RunState) -> Result<Option<Vec<f32>>> {
    if !state.config.subtract_mean {
        return Ok(None);
    }
    let p = dir.join("mean.safetensors");
    if p.exists() {
        let t = io::read_tensors(&p, &Device::Cpu)?;
        return Ok(Some(io::require_tensor(&t, "mean", 1, &p)?.to_vec1()?));
    }
    Ok(Some(load_data(&state.config)?.train.mean_image()))
}

/// Loads a checkpoint folder (not a run or bare model folder: see [`Checkpoint::open`]): the
/// model and the run state.
///
/// # Errors
/// Missing or malformed files, named.
pub(super) fn load_checkpoint(dir: &Path, device: &Device) -> Result<(Model, RunState)> {
    let desc = ModelDesc::load(&dir.join("model.json"))?;
    let model = Model::load(desc, &dir.join("weights.safetensors"), device)?;
    let p = dir.join("state.json");
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let state: RunState =
        serde_json::from_str(&text).map_err(|e| Error::file(&p, format!("not valid: {e}")))?;
    Ok((model, state))
}

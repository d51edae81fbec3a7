//! Per-direction contribution (SPEC §7): how much a chosen map changes when one direction's
//! recurrence is switched off (its `V` set to zero), so a user sees which scan carried the
//! context. Every recurrence of the model is switched off in turn, then restored.

use candle_core::{DType, Tensor};

use crate::error::Result;
use crate::models::Model;
use crate::nn::ScanBackend;

/// The effect of switching off one recurrence.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectionEffect {
    /// The recurrence's weight name (`stage3.0.lrnn.lr.v.weight`, `fc1.v_lr.weight`, …).
    pub name: String,
    /// `‖map' − map‖ / ‖map‖` over the whole map (0 when the map does not depend on it).
    pub relative_change: f64,
}

/// Whether a weight name is a recurrence matrix: `<prefix>.<dir>.v.weight` (`<dir>.v.weight` in a
/// lone module) or `<layer>.v_<dir>.weight` (inserted).
pub fn is_recurrence(name: &str) -> bool {
    let last_two: Vec<&str> = name.rsplit('.').take(2).collect();
    matches!(last_two.as_slice(), ["weight", "v"])
        || matches!(last_two.as_slice(), ["weight", p] if p.starts_with("v_"))
}

/// The model's recurrence matrices as variables, sorted by name.
///
/// # Errors
/// Poisoned variable store.
pub fn recurrence_vars(model: &Model) -> Result<Vec<(String, candle_core::Var)>> {
    let data = model
        .varmap()
        .data()
        .lock()
        .map_err(|_| crate::Error::Invalid("model variables are poisoned".into()))?;
    let mut v: Vec<_> =
        data.iter().filter(|(n, _)| is_recurrence(n)).map(|(n, v)| (n.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

/// Every recurrence of a model scaled by one factor, from 0 (the plain CNN the L-RNNs were
/// inserted into) to 1 (the trained model): what the app's V slider does. The trained values are
/// kept, so any scale can be set again and `restore` brings the model back exactly.
pub struct RecurrenceScale {
    vars: Vec<(String, candle_core::Var, Tensor)>,
    scale: f64,
}

impl RecurrenceScale {
    /// Remembers `model`'s recurrences (at scale 1).
    ///
    /// # Errors
    /// Candle errors.
    pub fn of(model: &Model) -> Result<Self> {
        let vars = recurrence_vars(model)?
            .into_iter()
            .map(|(n, v)| {
                let t = v.as_tensor().copy()?;
                Ok((n, v, t))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { vars, scale: 1.0 })
    }

    /// How many recurrence matrices the model has.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether the model has none (a plain CNN).
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// The scale in force.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Sets every recurrence to `scale` times its trained value.
    ///
    /// # Errors
    /// Candle errors.
    pub fn set(&mut self, scale: f64) -> Result<()> {
        for (_, var, trained) in &self.vars {
            if scale == 1.0 {
                var.set(trained)?;
            } else {
                var.set(&trained.affine(scale, 0.0)?)?;
            }
        }
        self.scale = scale;
        Ok(())
    }

    /// Brings back the trained recurrences.
    ///
    /// # Errors
    /// Candle errors.
    pub fn restore(&mut self) -> Result<()> {
        self.set(1.0)
    }
}

fn norm(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.sqr()?.sum_all()?.sqrt()?.to_scalar::<f64>()?)
}

/// Switches off each recurrence of `model` in turn and measures the change of `map` (`output`
/// or a captured name) on input `x`. The weights are restored afterwards.
///
/// # Errors
/// An unknown map; candle errors.
pub fn direction_contributions(model: &Model, x: &Tensor, map: &str) -> Result<Vec<DirectionEffect>> {
    let base = model.forward_map(x, map, ScanBackend::Auto)?;
    let scale = norm(&base)?.max(f64::MIN_POSITIVE);
    let vars = recurrence_vars(model)?;
    let mut out = Vec::with_capacity(vars.len());
    for (name, var) in vars {
        let saved = var.as_tensor().copy()?;
        var.set(&saved.zeros_like()?)?;
        let changed = model.forward_map(x, map, ScanBackend::Auto);
        var.set(&saved)?;
        let changed = changed?;
        out.push(DirectionEffect { name, relative_change: norm(&(changed - &base)?)? / scale });
    }
    Ok(out)
}

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
    let vars: Vec<(String, candle_core::Var)> = {
        let data = model.varmap().data().lock().map_err(|_| crate::Error::file("<memory>", "poisoned"))?;
        let mut v: Vec<_> =
            data.iter().filter(|(n, _)| is_recurrence(n)).map(|(n, v)| (n.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
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

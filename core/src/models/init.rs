//! Seeded initialisation. Candle's CPU random numbers cannot be seeded, so a model built through a
//! `VarMap` starts from different weights every time; this redraws every randomly initialised
//! weight from a seed, with the same distributions, so that runs are reproducible:
//! - spatial-RNN weights (`u.weight`, `u.bias`, `v.weight`, `v_<dir>.weight`): uniform in
//!   `±1/sqrt(fan_in)` (PyTorch's RNN default, as [`crate::nn::RnnPair::new`]);
//! - other weights (convolutions, linear layers): Kaiming normal, `std = sqrt(2 / fan_in)`
//!   (candle's default);
//! - their biases: uniform in `±1/sqrt(fan_in)` of the matching weight (candle's default);
//! - constants (BatchNorm and LayerNorm parameters, running statistics, recurrences inserted at
//!   zero) are left as they are.

use std::collections::HashMap;

use candle_core::{Result, Tensor, Var};

use crate::rng::Rng;

fn is_constant(t: &Tensor) -> Result<bool> {
    let v: Vec<f32> = t.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1()?;
    Ok(v.windows(2).all(|w| w[0] == w[1]))
}

fn normal(rng: &mut Rng) -> f32 {
    // Box-Muller.
    let u1 = rng.uniform().max(f32::MIN_POSITIVE);
    let u2 = rng.uniform();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Redraws every randomly initialised variable from `seed` (variables in name order).
///
/// # Errors
/// Candle errors.
pub fn reinit_seeded(vars: &HashMap<String, Var>, seed: u64) -> Result<()> {
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let mut rng = Rng(seed);
    for name in names {
        let var = &vars[name];
        if var.elem_count() < 2 || is_constant(var.as_tensor())? {
            continue;
        }
        let dims = var.dims().to_vec();
        let weight_name = name.strip_suffix(".bias").map(|p| format!("{p}.weight"));
        let fan_in = match &weight_name {
            Some(w) => vars.get(w).map_or(dims[0], |v| v.dims()[1..].iter().product()),
            None => dims[1..].iter().product(),
        }
        .max(1) as f32;
        let rnn = name.ends_with("u.weight")
            || name.ends_with("u.bias")
            || name.ends_with("v.weight")
            || name.rsplit('.').nth(1).is_some_and(|p| p.starts_with("v_"));
        let n = var.elem_count();
        let values: Vec<f32> = if rnn || weight_name.is_some() {
            let bound = 1.0 / fan_in.sqrt();
            (0..n).map(|_| rng.symmetric(bound)).collect()
        } else {
            let std = (2.0 / fan_in).sqrt();
            (0..n).map(|_| std * normal(&mut rng)).collect()
        };
        let t = Tensor::from_vec(values, dims, var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}

//! The context every forward pass carries: training or inference, which scan implementation
//! to use, and the capture of intermediate maps (SPEC §8) in the same pass.

use std::collections::BTreeMap;

use candle_core::{Result, Tensor};

use super::scan::ScanBackend;
use crate::rng::Rng;

/// Options and captured maps of one forward pass.
#[derive(Debug, Default)]
pub struct Forward {
    /// Training mode: dropout active, BatchNorm uses batch statistics.
    pub train: bool,
    /// Which implementation runs the spatial scans.
    pub backend: ScanBackend,
    /// Random numbers for dropout; when `None`, candle's own (unseeded) generator is used. The
    /// trainer sets one per step so that runs and resumed runs are reproducible.
    pub rng: Option<Rng>,
    captured: Option<BTreeMap<String, Tensor>>,
    /// Names in the order they were first recorded (the forward order).
    order: Vec<String>,
}

impl Forward {
    /// Inference, no capture.
    pub fn eval() -> Self {
        Self::default()
    }

    /// Training mode, no capture.
    pub fn train() -> Self {
        Self { train: true, ..Self::default() }
    }

    /// Also keep every per-direction hidden map (and other recorded maps) of this pass.
    #[must_use]
    pub fn capturing(mut self) -> Self {
        self.captured = Some(BTreeMap::new());
        self
    }

    /// Draw dropout masks from this generator.
    #[must_use]
    pub fn with_rng(mut self, rng: Rng) -> Self {
        self.rng = Some(rng);
        self
    }

    /// Use this scan implementation.
    #[must_use]
    pub fn with_backend(mut self, backend: ScanBackend) -> Self {
        self.backend = backend;
        self
    }

    /// Whether maps are being captured.
    pub fn is_capturing(&self) -> bool {
        self.captured.is_some()
    }

    /// Records a map under `name` when capturing; `make` is only called then.
    ///
    /// # Errors
    /// Whatever `make` returns.
    pub fn record(&mut self, name: &str, make: impl FnOnce() -> Result<Tensor>) -> Result<()> {
        if let Some(map) = self.captured.as_mut() {
            if map.insert(name.to_string(), make()?).is_none() {
                self.order.push(name.to_string());
            }
        }
        Ok(())
    }

    /// The maps captured so far in the order the pass recorded them (empty when not capturing).
    pub fn take_captured_in_order(&mut self) -> Vec<(String, Tensor)> {
        let order = std::mem::take(&mut self.order);
        let mut maps = self.take_captured();
        order.into_iter().filter_map(|n| maps.remove(&n).map(|t| (n, t))).collect()
    }

    /// The maps captured so far, by name (empty when not capturing).
    pub fn take_captured(&mut self) -> BTreeMap<String, Tensor> {
        self.order.clear();
        self.captured.as_mut().map(std::mem::take).unwrap_or_default()
    }
}

/// A network layer or block.
pub trait Layer {
    /// Runs the layer on `x` (`[B, C, H, W]` unless documented otherwise).
    ///
    /// # Errors
    /// Shape mismatches and device errors from candle.
    fn forward(&self, x: &Tensor, fwd: &mut Forward) -> Result<Tensor>;
}

/// Joins a prefix and a name with a dot; an empty prefix gives the bare name.
pub fn join_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

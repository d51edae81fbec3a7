//! Learning-rate schedules: constant, the paper's restarts (SPEC §5), and steps (SPEC §6).

use serde::{Deserialize, Serialize};

/// A learning rate as a function of training progress in epochs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// The same rate throughout.
    Constant {
        /// The rate.
        lr: f64,
    },
    /// The paper's restarts: each period starts at `max` and decreases geometrically to `min`
    /// at its end, then restarts at `max`.
    Restarts {
        /// Rate at each (re)start.
        max: f64,
        /// Rate at the end of each period.
        min: f64,
        /// Epochs per period (the paper: 60 or 80).
        period_epochs: f64,
    },
    /// `lr` until the first drop, then each drop's rate from its epoch on (SPEC §6: 1e-4 for 30
    /// epochs, then 1e-5).
    Steps {
        /// The initial rate.
        lr: f64,
        /// `(epoch, rate)` pairs, in increasing epoch.
        drops: Vec<(f64, f64)>,
    },
}

impl Schedule {
    /// The paper's CIFAR schedule with a given period.
    pub fn paper_restarts(period_epochs: f64) -> Self {
        Schedule::Restarts { max: 1e-3, min: 1e-5, period_epochs }
    }

    /// The rate at `progress` epochs (fractional within an epoch).
    pub fn lr(&self, progress: f64) -> f64 {
        match self {
            Schedule::Constant { lr } => *lr,
            Schedule::Restarts { max, min, period_epochs } => {
                let period = period_epochs.max(f64::MIN_POSITIVE);
                let frac = (progress / period).fract();
                max * (min / max).powf(frac)
            }
            Schedule::Steps { lr, drops } => {
                drops.iter().rfind(|(e, _)| progress >= *e).map_or(*lr, |(_, r)| *r)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_decrease_geometrically_and_restart() {
        let s = Schedule::paper_restarts(60.0);
        assert!((s.lr(0.0) - 1e-3).abs() < 1e-15);
        assert!((s.lr(30.0) - 1e-4).abs() < 1e-12, "half way is the geometric mean");
        assert!(s.lr(59.99) < 1.01e-5);
        assert!((s.lr(60.0) - 1e-3).abs() < 1e-15, "restart");
        let steps = Schedule::Steps { lr: 1e-4, drops: vec![(30.0, 1e-5)] };
        assert_eq!((steps.lr(29.9), steps.lr(30.0)), (1e-4, 1e-5));
    }
}

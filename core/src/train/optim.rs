//! Optimisers: RMSprop (the paper's), SGD with momentum, and Adam, with PyTorch's update rules
//! so that runs compare one to one with `torch.optim`.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

/// Which optimiser, with its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// `v = α v + (1 - α) g²; θ -= lr g / (sqrt(v) + ε)` (`torch.optim.RMSprop`).
    Rmsprop {
        /// Smoothing constant α.
        alpha: f64,
        /// ε added to the denominator.
        eps: f64,
    },
    /// `b = μ b + g; θ -= lr b` (`torch.optim.SGD` with momentum, no dampening).
    Sgd {
        /// Momentum μ.
        momentum: f64,
    },
    /// Adam (`torch.optim.Adam`, no weight decay).
    Adam {
        /// β1.
        beta1: f64,
        /// β2.
        beta2: f64,
        /// ε.
        eps: f64,
    },
}

impl OptimizerConfig {
    /// The paper's RMSprop (ρ = 0.9, ε = 1e-8; SPEC §6).
    pub const PAPER_RMSPROP: OptimizerConfig = OptimizerConfig::Rmsprop { alpha: 0.9, eps: 1e-8 };

    /// The same rule for the GPU's optimiser kernel.
    pub fn gpu_rule(self) -> crate::gpu::UpdateRule {
        use crate::gpu::UpdateRule;
        match self {
            Self::Rmsprop { alpha, eps } => UpdateRule::Rmsprop { alpha, eps },
            Self::Sgd { momentum } => UpdateRule::Sgd { momentum },
            Self::Adam { beta1, beta2, eps } => UpdateRule::Adam { beta1, beta2, eps },
        }
    }
}

/// An optimiser over a set of variables.
pub struct Optimizer {
    config: OptimizerConfig,
    vars: Vec<Var>,
    /// Per-variable state (RMSprop: square average; SGD: momentum buffer; Adam: the first and
    /// second moments stacked, `[2, ...shape]`).
    state: Vec<Option<Tensor>>,
    /// Steps taken (Adam's bias correction).
    steps: usize,
    lr: f64,
}

impl std::fmt::Debug for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Optimizer")
            .field("config", &self.config)
            .field("lr", &self.lr)
            .finish_non_exhaustive()
    }
}

impl Optimizer {
    /// An optimiser of `vars` with learning rate `lr`.
    ///
    /// # Errors
    /// None at present (kept fallible for optimisers that allocate state up front).
    pub fn new(config: OptimizerConfig, vars: Vec<Var>, lr: f64) -> Result<Self> {
        let state = vec![None; vars.len()];
        Ok(Self { config, vars, state, steps: 0, lr })
    }

    /// The learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.lr
    }

    /// Sets the learning rate (for schedules).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// Steps taken (Adam's bias correction counts them).
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The optimiser's configuration.
    pub fn config(&self) -> OptimizerConfig {
        self.config
    }

    /// The per-variable state, in the order of the variables (for checkpoints).
    pub fn state(&self) -> &[Option<Tensor>] {
        &self.state
    }

    /// Restores the state saved by [`Optimizer::state`] after `steps` steps.
    ///
    /// # Errors
    /// A message when the number of entries or a shape does not fit the variables.
    pub fn restore_state(
        &mut self,
        state: Vec<Option<Tensor>>,
        steps: usize,
    ) -> std::result::Result<(), String> {
        if state.len() != self.vars.len() {
            return Err(format!("{} optimiser states for {} variables", state.len(), self.vars.len()));
        }
        for (i, (s, v)) in state.iter().zip(&self.vars).enumerate() {
            if let Some(s) = s {
                let expect: Vec<usize> = match self.config {
                    OptimizerConfig::Adam { .. } => [&[2][..], v.dims()].concat(),
                    _ => v.dims().to_vec(),
                };
                if s.dims() != expect.as_slice() {
                    return Err(format!("state {i} has shape {:?}, expected {expect:?}", s.dims()));
                }
            }
        }
        self.state = state;
        self.steps = steps;
        Ok(())
    }

    /// Applies one update from the gradients; variables without a gradient are left alone.
    ///
    /// # Errors
    /// Candle errors.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.steps += 1;
        for (var, state) in self.vars.iter().zip(self.state.iter_mut()) {
            let Some(g) = grads.get(var) else { continue };
            match self.config {
                OptimizerConfig::Rmsprop { alpha, eps } => {
                    let sq = match state.take() {
                        Some(s) => ((s * alpha)? + (g.sqr()? * (1.0 - alpha))?)?,
                        None => (g.sqr()? * (1.0 - alpha))?,
                    };
                    let update = (g / (sq.sqrt()? + eps)?)?;
                    var.set(&(var.as_tensor() - (update * self.lr)?)?)?;
                    *state = Some(sq);
                }
                OptimizerConfig::Sgd { momentum } => {
                    let buf = match state.take() {
                        Some(b) if momentum > 0.0 => ((b * momentum)? + g)?,
                        _ => g.clone(),
                    };
                    var.set(&(var.as_tensor() - (&buf * self.lr)?)?)?;
                    *state = Some(buf);
                }
                OptimizerConfig::Adam { beta1, beta2, eps } => {
                    let (m, v) = match state.take() {
                        Some(s) => (
                            ((s.get(0)? * beta1)? + (g * (1.0 - beta1))?)?,
                            ((s.get(1)? * beta2)? + (g.sqr()? * (1.0 - beta2))?)?,
                        ),
                        None => ((g * (1.0 - beta1))?, (g.sqr()? * (1.0 - beta2))?),
                    };
                    let t = self.steps as i32;
                    let m_hat = (&m / (1.0 - beta1.powi(t)))?;
                    let v_hat = (&v / (1.0 - beta2.powi(t)))?;
                    let update = (m_hat / (v_hat.sqrt()? + eps)?)?;
                    var.set(&(var.as_tensor() - (update * self.lr)?)?)?;
                    *state = Some(Tensor::stack(&[m, v], 0)?);
                }
            }
        }
        Ok(())
    }
}

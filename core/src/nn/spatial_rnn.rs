//! A bidirectional pair of 1D spatial RNNs along one axis (SPEC §1-2): left↔right or top↔bottom.
//!
//! Every row (column) of every image is an independent sequence; the pair turns a feature map
//! `[B, C, H, W]` into the scan layout `[N, T, C]` (`N = B·H` rows of length `T = W`, or
//! `N = B·W` columns of length `T = H`), applies the input projection once for all positions
//! (eq. 7), runs both directions and merges them. On f32 CPU tensors the whole pair is one fused
//! op ([`super::kernels::pair_op`]); elsewhere the projection and permutes are candle ops and the scan is
//! the fused scan op on CUDA ([`super::kernels::scan_op`]) or the composed reference
//! ([`super::scan_reference`]).
//!
//! Two ways to own the input projection (both needed, SPEC §2):
//! - [`RnnPair::new`]: each direction owns `U`, `b` (a 1x1 projection; CIFAR networks). Weights
//!   `<prefix>.<dir>.u.weight` `[G·D, C]`, `<prefix>.<dir>.u.bias`, `<prefix>.<dir>.v.weight`
//!   `[G·D, D]`, and for vanilla + LN `<prefix>.<dir>.ln.weight`, `<prefix>.<dir>.ln.bias`.
//! - [`RnnPair::shared`]: both directions read one projection computed by the caller (the
//!   pre-trained convolution in the FCN insertion); each direction owns
//!   `<prefix>.v_<dir>.weight`.

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

pub use super::cell::Merge;
use super::forward::{join_name, Forward};
use super::kernels::pair_op::{PairOp, PairOpOutput};
use super::scan::{scan, ScanBackend};
use super::{Axis, Cell};

/// Where a pair's input projection comes from.
#[derive(Debug, Clone)]
enum Projection {
    /// Each direction owns `U` (`[G·D, C]`) and `b` (the variables themselves: concatenated at
    /// each forward, so that loading new values into them takes effect).
    Own { weight: [Tensor; 2], bias: [Tensor; 2] },
    /// The caller passes the projection (one, shared by both directions).
    Shared,
}

/// A bidirectional pair of spatial RNNs along one axis.
#[derive(Debug, Clone)]
pub struct RnnPair {
    axis: Axis,
    cell: Cell,
    hidden: usize,
    prefix: String,
    projection: Projection,
    /// `[2, G·D, D]` view built from the two directions' `V`.
    v: [Tensor; 2],
    /// Gain and bias (`[D]` each) per direction (vanilla + LN only).
    ln: Option<[[Tensor; 2]; 2]>,
}

/// `[B, C, H, W]` to the scan layout `[N, T, C]` along `axis`.
pub fn to_scan_layout(x: &Tensor, axis: Axis) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    match axis {
        Axis::Horizontal => x.permute((0, 2, 3, 1))?.reshape((b * h, w, c)),
        Axis::Vertical => x.permute((0, 3, 2, 1))?.reshape((b * w, h, c)),
    }
}

/// The scan layout `[N, T, C]` back to `[B, C, H, W]` (a strided view).
pub fn from_scan_layout(x: &Tensor, axis: Axis, (b, h, w): (usize, usize, usize)) -> Result<Tensor> {
    let c = x.dim(2)?;
    match axis {
        Axis::Horizontal => x.reshape((b, h, w, c))?.permute((0, 3, 1, 2)),
        Axis::Vertical => x.reshape((b, w, h, c))?.permute((0, 3, 2, 1)),
    }
}

/// Merges the two direction maps `[B, D, H, W]` of a pair.
///
/// # Errors
/// Candle errors.
pub fn merge_maps(a: &Tensor, b: &Tensor, merge: Merge) -> Result<Tensor> {
    match merge {
        Merge::Sum => a + b,
        Merge::Mean => (a + b)? * 0.5,
        Merge::Concat => Tensor::cat(&[a, b], 1),
    }
}

fn uniform(bound: f64) -> Init {
    Init::Uniform { lo: -bound, up: bound }
}

impl RnnPair {
    /// A pair whose directions each own their input projection from `in_channels` channels.
    /// `U`, `b` and `V` start uniform in `±1/sqrt(fan_in)` (PyTorch's RNN default), LayerNorm
    /// gain at 1 and bias at 0.
    ///
    /// # Errors
    /// When `vb` holds tensors of other shapes.
    pub fn new(axis: Axis, cell: Cell, in_channels: usize, hidden: usize, vb: &VarBuilder) -> Result<Self> {
        let gd = cell.gates() * hidden;
        let (mut ws, mut bs) = (Vec::new(), Vec::new());
        for dir in axis.directions() {
            let u = vb.pp(dir.name()).pp("u");
            let bound = 1.0 / (in_channels as f64).sqrt();
            ws.push(u.get_with_hints((gd, in_channels), "weight", uniform(bound))?);
            bs.push(u.get_with_hints(gd, "bias", uniform(bound))?);
        }
        let pair = |v: Vec<Tensor>| -> [Tensor; 2] { [v[0].clone(), v[1].clone()] };
        let projection = Projection::Own { weight: pair(ws), bias: pair(bs) };
        let v_init = uniform(1.0 / (hidden as f64).sqrt());
        let v = axis
            .directions()
            .map(|dir| vb.pp(dir.name()).pp("v").get_with_hints((gd, hidden), "weight", v_init));
        let ln = if cell == Cell::VanillaLn {
            let mut per_dir = Vec::new();
            for dir in axis.directions() {
                let ln = vb.pp(dir.name()).pp("ln");
                let g = ln.get_with_hints(hidden, "weight", Init::Const(1.0))?;
                let b = ln.get_with_hints(hidden, "bias", Init::Const(0.0))?;
                per_dir.push([g, b]);
            }
            Some([per_dir[0].clone(), per_dir[1].clone()])
        } else {
            None
        };
        let [v0, v1] = v;
        Ok(Self { axis, cell, hidden, prefix: vb.prefix(), projection, v: [v0?, v1?], ln })
    }

    /// A pair that reads a projection shared by both directions (vanilla cell), with each
    /// direction's recurrence `<prefix>.v_<dir>.weight` starting at exactly zero (SPEC §4).
    ///
    /// # Errors
    /// When `vb` holds tensors of other shapes.
    pub fn shared(axis: Axis, hidden: usize, vb: &VarBuilder) -> Result<Self> {
        let v = axis.directions().map(|dir| {
            vb.pp(format!("v_{}", dir.name())).get_with_hints((hidden, hidden), "weight", Init::Const(0.0))
        });
        let [v0, v1] = v;
        Ok(Self {
            axis,
            cell: Cell::Vanilla,
            hidden,
            prefix: vb.prefix(),
            projection: Projection::Shared,
            v: [v0?, v1?],
            ln: None,
        })
    }

    /// The axis this pair scans along.
    pub fn axis(&self) -> Axis {
        self.axis
    }

    /// The hidden size `D`.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// The recurrence of direction `k` (`[G·D, D]`).
    pub fn v(&self, k: usize) -> &Tensor {
        &self.v[k]
    }

    /// The packed parameters of the fused op: `U`, `b` (own projection), `V`, LayerNorm.
    fn packed_params(&self) -> Result<Tensor> {
        let mut parts = Vec::new();
        if let Projection::Own { weight, bias } = &self.projection {
            parts.extend(weight.iter().map(Tensor::flatten_all));
            parts.extend(bias.iter().map(Tensor::flatten_all));
        }
        parts.extend(self.v.iter().map(Tensor::flatten_all));
        if let Some(ln) = &self.ln {
            for [g, b] in ln {
                parts.push(g.flatten_all());
                parts.push(b.flatten_all());
            }
        }
        let parts = parts.into_iter().collect::<Result<Vec<_>>>()?;
        Tensor::cat(&parts, 0)
    }

    /// Runs the pair on `x` (`[B, C, H, W]`) and merges its two maps. With an own projection `x`
    /// is the layer input; with a shared one it is the projection `U * X + b` itself
    /// (`[B, G·D, H, W]`). Records `<prefix>.<dir>` (`[B, D, H, W]`) for both directions when
    /// capturing.
    ///
    /// # Errors
    /// Shape mismatches.
    pub fn forward(&self, x: &Tensor, merge: Merge, fwd: &mut Forward) -> Result<Tensor> {
        let c = x.dim(1)?;
        let gd = self.cell.gates() * self.hidden;
        let expect = match &self.projection {
            Projection::Own { weight, .. } => weight[0].dim(1)?,
            Projection::Shared => gd,
        };
        if c != expect {
            candle_core::bail!("{}: input has {c} channels, expected {expect}", self.prefix);
        }
        let [da, db] = self.axis.directions().map(|d| join_name(&self.prefix, d.name()));
        if fwd.backend.fused_for(x)? {
            let own = match &self.projection {
                Projection::Own { .. } => Some(c),
                Projection::Shared => None,
            };
            let params = self.packed_params()?;
            let x = x.contiguous()?;
            if fwd.is_capturing() {
                let op = PairOp::new(self.cell, self.axis, self.hidden, own, PairOpOutput::Directions);
                let maps = x.apply_op2(&params, op)?;
                let (a, b) = (maps.get(0)?, maps.get(1)?);
                fwd.record(&da, || Ok(a.clone()))?;
                fwd.record(&db, || Ok(b.clone()))?;
                merge_maps(&a, &b, merge)
            } else {
                x.apply_op2(
                    &params,
                    PairOp::new(self.cell, self.axis, self.hidden, own, PairOpOutput::Merged(merge)),
                )
            }
        } else {
            let (a, b) = self.forward_composed(x, fwd.backend)?;
            fwd.record(&da, || Ok(a.clone()))?;
            fwd.record(&db, || Ok(b.clone()))?;
            merge_maps(&a, &b, merge)
        }
    }

    /// Both directions' maps `[B, D, H, W]`, the projection and permutes composed of candle ops,
    /// the scan by [`scan`] (the fused scan op on CUDA, the step-by-step reference otherwise).
    fn forward_composed(&self, x: &Tensor, backend: ScanBackend) -> Result<(Tensor, Tensor)> {
        let (b, _, h, w) = x.dims4()?;
        let seq = to_scan_layout(x, self.axis)?; // [N, T, C]
        let (n, t, c) = seq.dims3()?;
        let gd = self.cell.gates() * self.hidden;
        let xi = match &self.projection {
            Projection::Own { weight, bias } => seq
                .reshape((n * t, c))?
                .matmul(&Tensor::cat(weight, 0)?.t()?)?
                .broadcast_add(&Tensor::cat(bias, 0)?)?
                .reshape((n, t, 2, gd))?
                .permute((2, 0, 1, 3))?,
            Projection::Shared => seq.unsqueeze(0)?,
        };
        let v = Tensor::stack(&self.v, 0)?;
        let ln = match &self.ln {
            Some([a, b]) => Some(Tensor::stack(&[Tensor::stack(a, 0)?, Tensor::stack(b, 0)?], 0)?),
            None => None,
        };
        let hs = scan(backend, self.cell, &xi.contiguous()?, &v, ln.as_ref(), &[false, true])?;
        Ok((
            from_scan_layout(&hs.get(0)?, self.axis, (b, h, w))?,
            from_scan_layout(&hs.get(1)?, self.axis, (b, h, w))?,
        ))
    }
}

//! Recurrences over training: every recurrence matrix of a run's snapshots (its `step-NNNNNNNN/`
//! checkpoints, and the model it started from), with each matrix's spectrum at each step, how far
//! it moved from the start (`‖V − V₀‖ / ‖V₀‖`, and `V − V₀` itself), how different the two
//! directions of a pair are (`‖V_a − V_b‖ / mean(‖V_a‖, ‖V_b‖)`), and the top eigenvectors as
//! per-channel bars. What training changed in the recurrences, not one spectrum at one moment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nalgebra::{Complex, DMatrix, DVector};

use super::contribution::is_recurrence;
use super::recurrence::{analyse, gate_blocks, Spectrum};
use crate::error::{Error, Result};
use crate::limits;

/// One matrix (one gate block of a GRU) at one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixAt {
    /// The snapshot's global step (0: the model the run started from).
    pub step: usize,
    /// The matrix, `[D, D]` row-major.
    pub values: Vec<f32>,
    /// Its spectrum.
    pub spectrum: Spectrum,
    /// `‖V − V₀‖_F / ‖V₀‖_F` against the first snapshot (`‖V − V₀‖_F` when `V₀ = 0`).
    pub change: f64,
}

/// One matrix through the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// The weight name (`conv5.v_lr.weight`, `stage2.0.lrnn.lr.v.weight`).
    pub name: String,
    /// `v` (vanilla cell) or the GRU gate (`z`, `r`, `h`).
    pub gate: &'static str,
    /// `D`.
    pub size: usize,
    /// One entry per snapshot, by step.
    pub at: Vec<MatrixAt>,
}

impl Track {
    /// `V − V₀` at snapshot `i` (row-major `[D, D]`).
    pub fn delta(&self, i: usize) -> Vec<f32> {
        match (self.at.first(), self.at.get(i)) {
            (Some(a), Some(b)) => b.values.iter().zip(&a.values).map(|(x, y)| x - y).collect(),
            _ => Vec::new(),
        }
    }

    /// A readable label: `conv5.v_lr` (`… [z]` for a GRU gate).
    pub fn label(&self) -> String {
        let base = self.name.strip_suffix(".weight").unwrap_or(&self.name);
        if self.gate == "v" {
            base.to_string()
        } else {
            format!("{base} [{}]", self.gate)
        }
    }

    /// The other direction of this matrix's pair, by name (`lr` ↔ `rl`, `tb` ↔ `bt`).
    pub fn partner_name(&self) -> Option<String> {
        for (a, b) in [("lr", "rl"), ("rl", "lr"), ("tb", "bt"), ("bt", "tb")] {
            for (pre, post) in
                [(format!("v_{a}."), format!("v_{b}.")), (format!(".{a}.v."), format!(".{b}.v."))]
            {
                if self.name.contains(&pre) {
                    return Some(self.name.replacen(&pre, &post, 1));
                }
            }
            if let Some(stem) = self.name.strip_prefix(&format!("{a}.v.")) {
                return Some(format!("{b}.v.{stem}"));
            }
        }
        None
    }
}

/// A pair's two directions compared at each snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct PairDifference {
    /// The first direction's track (`lr` or `tb`).
    pub first: usize,
    /// The other's (`rl` or `bt`).
    pub second: usize,
    /// `‖V_a − V_b‖_F / mean(‖V_a‖_F, ‖V_b‖_F)` per snapshot (0 when both are zero).
    pub difference: Vec<f64>,
}

/// Every recurrence through a run.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// The snapshots' steps, increasing.
    pub steps: Vec<usize>,
    /// Where each snapshot was read from.
    pub sources: Vec<PathBuf>,
    /// One track per matrix (and gate), by name.
    pub tracks: Vec<Track>,
    /// The pairs found among the tracks.
    pub pairs: Vec<PairDifference>,
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt()
}

/// One snapshot: its step, where it was read from, and its recurrence matrices by name (values
/// row-major with their shape `[D, D]` or `[3D, D]`).
pub type Snapshot = (usize, PathBuf, Matrices);

/// Recurrence matrices by weight name: values row-major with their shape.
pub type Matrices = BTreeMap<String, (Vec<f32>, (usize, usize))>;

/// The history of `snapshots`: `(step, recurrence weights by name)` in any order; the weights
/// are `[D, D]` (vanilla) or `[3D, D]` (GRU) row-major with their shape. `progress(matrices
/// analysed, in all)` is called after each snapshot (its matrices are decomposed on every core);
/// `false` stops (an error saying so).
///
/// # Errors
/// No snapshot; a matrix missing from a snapshot or of another shape than in the first; a stop.
pub fn history(
    mut snapshots: Vec<Snapshot>,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<History> {
    snapshots.sort_by_key(|s| s.0);
    let Some((_, first_path, first)) = snapshots.first() else {
        return Err(Error::Invalid("no snapshots with recurrence matrices".into()));
    };
    if first.is_empty() {
        return Err(Error::file(first_path, "has no recurrence matrix"));
    }
    let mut tracks = Vec::new();
    for (name, (_, (rows, d))) in first {
        for (gate, _) in gate_blocks(&vec![0.0; rows * d], *rows, *d) {
            tracks.push(Track { name: name.clone(), gate, size: *d, at: Vec::new() });
        }
    }
    let total = tracks.len() * snapshots.len();
    let mut done = 0;
    for (step, path, weights) in &snapshots {
        // This snapshot's blocks, checked against the first snapshot's shapes.
        let mut blocks = Vec::with_capacity(tracks.len());
        for t in &tracks {
            let (values, shape) = weights
                .get(&t.name)
                .ok_or_else(|| Error::tensor(path, &t.name, "missing here but in the first snapshot"))?;
            let (_, fshape) = &first[&t.name];
            if shape != fshape {
                return Err(Error::tensor(
                    path,
                    &t.name,
                    format!("shape {shape:?}, {fshape:?} in the first snapshot"),
                ));
            }
            let block = gate_blocks(values, shape.0, shape.1)
                .into_iter()
                .find(|(g, _)| *g == t.gate)
                .map(|(_, b)| b.to_vec())
                .unwrap_or_default();
            blocks.push(block);
        }
        // The decompositions (seconds each for a 1024-wide V) on every core.
        let spectra: Vec<Spectrum> = {
            use rayon::prelude::*;
            blocks.par_iter().zip(tracks.par_iter()).map(|(b, t)| analyse(b, t.size)).collect()
        };
        for ((t, block), spectrum) in tracks.iter_mut().zip(blocks).zip(spectra) {
            let start = t.at.first().map_or(block.as_slice(), |a| a.values.as_slice());
            let diff: Vec<f32> = block.iter().zip(start).map(|(a, b)| a - b).collect();
            let base = norm(start);
            let change = if base > 0.0 { norm(&diff) / base } else { norm(&diff) };
            t.at.push(MatrixAt { step: *step, values: block, spectrum, change });
        }
        done += tracks.len();
        if !progress(done, total) {
            return Err(Error::Invalid("recurrence history: stopped".into()));
        }
    }
    let mut pairs = Vec::new();
    for (i, t) in tracks.iter().enumerate() {
        let Some(other) = t.partner_name() else { continue };
        let Some(j) = tracks.iter().position(|u| u.name == other && u.gate == t.gate) else { continue };
        if j <= i {
            continue;
        }
        let difference =
            t.at.iter()
                .zip(&tracks[j].at)
                .map(|(a, b)| {
                    let d: Vec<f32> = a.values.iter().zip(&b.values).map(|(x, y)| x - y).collect();
                    let scale = (norm(&a.values) + norm(&b.values)) / 2.0;
                    if scale > 0.0 {
                        norm(&d) / scale
                    } else {
                        0.0
                    }
                })
                .collect();
        pairs.push(PairDifference { first: i, second: j, difference });
    }
    Ok(History {
        steps: snapshots.iter().map(|s| s.0).collect(),
        sources: snapshots.iter().map(|s| s.1.clone()).collect(),
        tracks,
        pairs,
    })
}

/// The recurrence matrices of a weights file (safetensors), as f32 with their shapes.
///
/// # Errors
/// An unreadable or malformed file; a recurrence that is not a matrix.
pub fn read_recurrences(path: &Path) -> Result<Matrices> {
    use candle_core::safetensors::Load;
    let bytes = crate::io::read_file(path)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::file(path, format!("not a safetensors file: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        if !is_recurrence(&name) {
            continue;
        }
        let &[rows, d] = view.shape() else {
            return Err(Error::tensor(
                path,
                &name,
                format!("a recurrence must be a matrix, got {:?}", view.shape()),
            ));
        };
        if rows != d && rows != 3 * d {
            return Err(Error::tensor(
                path,
                &name,
                format!("shape [{rows}, {d}] is neither [D, D] nor [3D, D]"),
            ));
        }
        if d > limits::MAX_CHANNELS {
            return Err(Error::tensor(
                path,
                &name,
                format!("{d} channels; at most {}", limits::MAX_CHANNELS),
            ));
        }
        let t = view
            .load(&candle_core::Device::Cpu)
            .and_then(|t| t.to_dtype(candle_core::DType::F32))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| Error::tensor(path, &name, e.to_string()))?;
        if t.iter().any(|v| !v.is_finite()) {
            return Err(Error::tensor(path, &name, "holds NaN or infinite values"));
        }
        out.insert(name, (t, (rows, d)));
    }
    Ok(out)
}

/// The snapshots of a run folder: every `step-NNNNNNNN/weights.safetensors`, and the model the
/// run started from (step 0) when its `state.json` names one (`init_from`) that still exists.
/// At most `max` snapshots, evenly spread, the first and last kept.
///
/// `progress` and a stop as in [`history`].
///
/// # Errors
/// Not a run folder (no snapshot), unreadable weights, a stop.
pub fn read_run(dir: &Path, max: usize, progress: &mut dyn FnMut(usize, usize) -> bool) -> Result<History> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut found: Vec<(usize, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let step = crate::train::checkpoint::checkpoint_step(&p)?;
            p.join("weights.safetensors").is_file().then_some((step, p))
        })
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(Error::file(dir, "no snapshots (step-NNNNNNNN/ folders with weights): not a run folder"));
    }
    // The start: the folder the run was initialised from.
    if found.first().map(|f| f.0) != Some(0) {
        let start = found
            .first()
            .and_then(|(_, p)| crate::io::read_file(&p.join("state.json")).ok())
            .and_then(|b| serde_json::from_slice::<crate::train::trainer::RunState>(&b).ok())
            .and_then(|s| s.config.init_from)
            .and_then(|p| crate::train::checkpoint::Checkpoint::resolve(&p).ok())
            .filter(|p| p.join("weights.safetensors").is_file());
        if let Some(p) = start {
            found.insert(0, (0, p));
        }
    }
    let picked = spread(&found, max.max(2));
    let mut snapshots = Vec::with_capacity(picked.len());
    for (step, p) in picked {
        let w = p.join("weights.safetensors");
        snapshots.push((step, p.clone(), read_recurrences(&w)?));
    }
    history(snapshots, progress)
}

/// At most `max` items of `all`, evenly spread, the first and last kept.
fn spread<T: Clone>(all: &[T], max: usize) -> Vec<T> {
    if all.len() <= max {
        return all.to_vec();
    }
    (0..max).map(|i| all[(i * (all.len() - 1) + (max - 1) / 2) / (max - 1)].clone()).collect()
}

/// One eigenvector: its eigenvalue and the per-channel bars.
#[derive(Debug, Clone, PartialEq)]
pub struct Eigenvector {
    /// The eigenvalue `(re, im)`.
    pub eigenvalue: (f64, f64),
    /// Per channel: the real part after turning the vector so its largest component is real and
    /// positive, divided by that component (a real eigenvector's signs; in `[-1, 1]`).
    pub bars: Vec<f64>,
    /// Per channel: the modulus, divided by the largest (in `[0, 1]`).
    pub magnitude: Vec<f64>,
}

/// The eigenvectors of the `k` largest eigenvalues (one of each complex-conjugate pair) of the
/// `n x n` matrix `values` with `spectrum`, by inverse iteration on `V − λ I` (nalgebra has no
/// eigenvectors of general real matrices).
pub fn top_eigenvectors(values: &[f32], n: usize, spectrum: &Spectrum, k: usize) -> Vec<Eigenvector> {
    let m = DMatrix::from_row_iterator(n, n, values.iter().map(|&v| Complex::new(f64::from(v), 0.0)));
    let mut out = Vec::new();
    for &(re, im) in &spectrum.eigenvalues {
        if out.len() >= k {
            break;
        }
        if im < -1e-12 {
            continue; // the conjugate of one already taken
        }
        // A shift a little off the eigenvalue keeps V − λI invertible.
        let scale = spectrum.spectral_radius.max(1e-12);
        let lambda = Complex::new(re + 1e-7 * scale, im);
        let shifted = &m - DMatrix::from_diagonal_element(n, n, lambda);
        let lu = shifted.lu();
        let mut x = DVector::from_fn(n, |i, _| Complex::new(1.0 + 0.1 * i as f64, 0.0));
        let mut ok = true;
        for _ in 0..4 {
            match lu.solve(&x) {
                Some(y) => {
                    let nrm = y.norm();
                    if !nrm.is_finite() || nrm == 0.0 {
                        ok = false;
                        break;
                    }
                    x = y / Complex::new(nrm, 0.0);
                }
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        let (imax, big) =
            x.iter()
                .enumerate()
                .fold((0, 0.0), |(bi, bm), (i, c)| if c.norm() > bm { (i, c.norm()) } else { (bi, bm) });
        if big == 0.0 {
            continue;
        }
        let turn = x[imax].conj() / Complex::new(big * big, 0.0);
        let aligned: Vec<Complex<f64>> = x.iter().map(|c| c * turn).collect();
        out.push(Eigenvector {
            eigenvalue: (re, im),
            bars: aligned.iter().map(|c| c.re).collect(),
            magnitude: x.iter().map(|c| c.norm() / big).collect(),
        });
    }
    out
}

impl History {
    /// `history.csv`: one line per snapshot and matrix.
    pub fn csv(&self) -> String {
        let mut s = String::from(
            "step,matrix,gate,size,spectral_radius,memory_length,largest_singular_value,change_from_start\n",
        );
        for t in &self.tracks {
            for a in &t.at {
                let mem = a.spectrum.memory_length.map_or("inf".to_string(), |m| format!("{m:.6}"));
                s.push_str(&format!(
                    "{},{},{},{},{:.6},{mem},{:.6},{:.6}\n",
                    a.step,
                    t.name,
                    t.gate,
                    t.size,
                    a.spectrum.spectral_radius,
                    a.spectrum.singular_values.first().copied().unwrap_or(0.0),
                    a.change
                ));
            }
        }
        s
    }

    /// `eigenvalues.csv`: every eigenvalue of every matrix at every snapshot.
    pub fn eigenvalues_csv(&self) -> String {
        let mut s = String::from("step,matrix,gate,re,im\n");
        for t in &self.tracks {
            for a in &t.at {
                for (re, im) in &a.spectrum.eigenvalues {
                    s.push_str(&format!("{},{},{},{re},{im}\n", a.step, t.name, t.gate));
                }
            }
        }
        s
    }

    /// `pairs.csv`: how different the two directions of each pair are at each snapshot.
    pub fn pairs_csv(&self) -> String {
        let mut s = String::from("step,first,second,gate,relative_difference\n");
        for p in &self.pairs {
            let (a, b) = (&self.tracks[p.first], &self.tracks[p.second]);
            for (step, d) in self.steps.iter().zip(&p.difference) {
                s.push_str(&format!("{step},{},{},{},{d:.6}\n", a.name, b.name, a.gate));
            }
        }
        s
    }

    /// The chart of every matrix's spectral radius against the step.
    pub fn radius_chart(&self, title: &str) -> super::plot::Chart {
        use super::plot::{Chart, Rule, Series, OKABE_ITO};
        Chart {
            title: title.to_string(),
            x_label: "training step".into(),
            y_label: "spectral radius".into(),
            categories: Vec::new(),
            series: self
                .tracks
                .iter()
                .enumerate()
                .map(|(i, t)| Series {
                    name: t.label(),
                    colour: OKABE_ITO[i % OKABE_ITO.len()],
                    dashed: i >= OKABE_ITO.len(),
                    points: t
                        .at
                        .iter()
                        .map(|a| (a.step as f64, Some(a.spectrum.spectral_radius).filter(|r| r.is_finite())))
                        .collect(),
                })
                .collect(),
            rules: vec![Rule { label: "ρ = 1: no decay".into(), y: 1.0 }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(step: usize, v: &[f32], w: &[f32]) -> Snapshot {
        let mut m = BTreeMap::new();
        m.insert("conv5.v_lr.weight".to_string(), (v.to_vec(), (2, 2)));
        m.insert("conv5.v_rl.weight".to_string(), (w.to_vec(), (2, 2)));
        (step, PathBuf::from(format!("step-{step}")), m)
    }

    #[test]
    fn changes_pairs_and_spectra_by_hand() {
        // V₀ = 0.5 I, then diag(0.5, 0.8): ‖ΔV‖ / ‖V₀‖ = 0.3 / (0.5 √2).
        let h = history(
            vec![
                snap(10, &[0.5, 0.0, 0.0, 0.8], &[0.5, 0.0, 0.0, 0.5]),
                snap(0, &[0.5, 0.0, 0.0, 0.5], &[0.5, 0.0, 0.0, 0.5]),
            ],
            &mut |_, _| true,
        )
        .unwrap();
        assert_eq!(h.steps, [0, 10]);
        let lr = &h.tracks[0];
        assert_eq!(lr.label(), "conv5.v_lr");
        assert_eq!(lr.at[0].change, 0.0);
        assert!((lr.at[1].change - 0.3 / (0.5 * 2f64.sqrt())).abs() < 1e-6);
        assert!((lr.at[1].spectrum.spectral_radius - 0.8).abs() < 1e-6);
        let delta = lr.delta(1);
        assert_eq!(&delta[..3], &[0.0, 0.0, 0.0]);
        assert!((delta[3] - 0.3).abs() < 1e-6);
        // The pair: identical at the start, then ‖diag(0, 0.3)‖ / mean(‖·‖).
        assert_eq!(h.pairs.len(), 1);
        let mean = ((0.25f64 + 0.64).sqrt() + 0.5 * 2f64.sqrt()) / 2.0;
        assert_eq!(h.pairs[0].difference[0], 0.0);
        assert!((h.pairs[0].difference[1] - 0.3 / mean).abs() < 1e-6, "{:?}", h.pairs);
        assert!(h.csv().lines().count() == 1 + 2 * 2);
    }

    #[test]
    fn partners_by_name() {
        let t = |name: &str| Track { name: name.into(), gate: "v", size: 1, at: vec![] };
        assert_eq!(t("fc1.v_tb.weight").partner_name().as_deref(), Some("fc1.v_bt.weight"));
        assert_eq!(
            t("stage2.0.lrnn.rl.v.weight").partner_name().as_deref(),
            Some("stage2.0.lrnn.lr.v.weight")
        );
        assert_eq!(t("lr.v.weight").partner_name().as_deref(), Some("rl.v.weight"));
        assert_eq!(t("head.weight").partner_name(), None);
    }

    #[test]
    fn eigenvectors_of_known_matrices() {
        // [[2, 1], [0, 1]]: λ = 2 with (1, 0), λ = 1 with (1, −1)/√2.
        let v = [2.0f32, 1.0, 0.0, 1.0];
        let s = analyse(&v, 2);
        let e = top_eigenvectors(&v, 2, &s, 2);
        assert_eq!(e.len(), 2);
        assert!((e[0].eigenvalue.0 - 2.0).abs() < 1e-9);
        assert!((e[0].bars[0] - 1.0).abs() < 1e-6 && e[0].bars[1].abs() < 1e-6, "{e:?}");
        assert!((e[1].bars[0] + e[1].bars[1]).abs() < 1e-6 && e[1].bars[0].abs() > 0.99, "{e:?}");
        // A rotation by 90°: eigenvalues ±i, one of the pair taken, both channels equally large.
        let r = [0.0f32, -1.0, 1.0, 0.0];
        let e = top_eigenvectors(&r, 2, &analyse(&r, 2), 3);
        assert_eq!(e.len(), 1);
        assert!((e[0].magnitude[0] - 1.0).abs() < 1e-6 && (e[0].magnitude[1] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn spread_keeps_the_ends() {
        let all: Vec<usize> = (0..100).collect();
        let s = spread(&all, 5);
        assert_eq!((s.len(), s[0], s[4]), (5, 0, 99));
    }
}

//! Receptive field against depth (Luo et al. 2016; Araujo et al. 2019): for every captured layer
//! of a model, the theoretical receptive field's side (from [`super::rf_table`]) and the sides of
//! the centred squares holding 50% and 99% of the centre unit's effective receptive field
//! ([`super::erf`]), for the model and for the CNN it is made of (every recurrence at zero) on
//! the same inputs. The CNN's effective field grows slower than its theoretical one; an L-RNN
//! layer reaches the whole image.
//!
//! One forward pass per input captures every layer; each layer's centre unit then has its own
//! backward pass, so a model with `L` captured layers costs one forward and `L` backward passes
//! per input and per curve. [`rf_depth_on_gpu`] runs the same passes through wgpu (each a
//! forward up to the layer and its backward, in one command buffer).

use std::collections::BTreeMap;

use candle_core::{DType, Tensor, Var};

use super::contribution::RecurrenceScale;
use super::erf::Erf;
use super::rf_table::{rf_table, rf_table_without_recurrence, RfRow};
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, GpuModel, GradientSeed};
use crate::models::Model;
use crate::nn::Forward;

/// Where the backward passes of an rf-depth curve run.
trait CentreGradients {
    /// For each map of `layers` (capture names, or `output`) of `model` on `input`: the map's
    /// dimensions and the gradient of its centre unit (as `channels` picks; `None` where the
    /// map lacks that channel) with respect to `input`. `changed`: the model's weights changed
    /// since the last call (its CNN's curve: every recurrence at zero). `step()` after each
    /// layer's backward pass; `false` stops with an error.
    fn centre_gradients(
        &mut self,
        model: &Model,
        input: &Tensor,
        layers: (&[&str], Channels),
        changed: bool,
        step: &mut dyn FnMut() -> bool,
    ) -> Result<Vec<(Vec<usize>, Option<Tensor>)>>;
}

/// The error of a stop asked for through the progress callback.
fn stopped() -> Error {
    Error::Invalid("rf-depth: stopped".into())
}

/// candle's autograd on the model's device: one forward pass capturing every layer, then a
/// backward pass per layer.
struct OnCandle;

impl CentreGradients for OnCandle {
    fn centre_gradients(
        &mut self,
        model: &Model,
        input: &Tensor,
        (layers, channels): (&[&str], Channels),
        _changed: bool,
        step: &mut dyn FnMut() -> bool,
    ) -> Result<Vec<(Vec<usize>, Option<Tensor>)>> {
        let x = Var::from_tensor(&input.to_dtype(DType::F32)?)?;
        let mut fwd = Forward::eval().capturing();
        let output = model.forward(x.as_tensor(), &mut fwd)?;
        let mut maps: BTreeMap<String, Tensor> = fwd.take_captured();
        maps.insert("output".into(), output);
        layers
            .iter()
            .map(|layer| {
                // (a row without a map keeps the image's centre and no field)
                let Some(map) = maps.get(*layer) else { return Ok((vec![], None)) };
                let grad = match centre_unit(map, channels)? {
                    Some(unit) => unit.backward()?.get(x.as_tensor()).cloned(),
                    None => None,
                };
                if !step() {
                    return Err(stopped());
                }
                Ok((map.dims().to_vec(), grad))
            })
            .collect()
    }
}

/// wgpu: the model uploaded (again when its weights change), each layer's centre unit seeded
/// (the mean over channels as one seed) and walked back to the input.
struct OnGpu<'a> {
    ctx: &'a GpuContext,
    gpu: Option<GpuModel>,
}

impl CentreGradients for OnGpu<'_> {
    fn centre_gradients(
        &mut self,
        model: &Model,
        input: &Tensor,
        (layers, channels): (&[&str], Channels),
        changed: bool,
        step: &mut dyn FnMut() -> bool,
    ) -> Result<Vec<(Vec<usize>, Option<Tensor>)>> {
        if changed || self.gpu.is_none() {
            self.gpu = None;
            self.gpu = Some(GpuModel::upload(self.ctx, model)?);
        }
        let Some(gpu) = self.gpu.as_mut() else { return Err(Error::Gpu("the model is not uploaded".into())) };
        let shapes = gpu.map_shapes(self.ctx, input)?;
        let classifies = gpu.classifies();
        layers
            .iter()
            .map(|&layer| {
                let Some([b, c, h, w]) = shapes.iter().find(|(n, _)| n == layer).map(|(_, s)| *s) else {
                    return if step() { Ok((vec![], None)) } else { Err(stopped()) };
                };
                // (a classifier's scores are `[B, classes]` on the CPU, `[B, classes, 1, 1]` here)
                let dims = if layer == "output" && classifies { vec![b, c] } else { vec![b, c, h, w] };
                let channel = match channels {
                    Channels::Mean => None,
                    Channels::One(k) if k < c => Some(k),
                    Channels::One(_) => return if step() { Ok((dims, None)) } else { Err(stopped()) },
                };
                let seed = GradientSeed { layer, channel, y: h / 2, x: w / 2 };
                let (g, _) = gpu.input_gradient(self.ctx, input, &seed)?;
                if !step() {
                    return Err(stopped());
                }
                Ok((dims, Some(g)))
            })
            .collect()
    }
}

/// Which unit of each layer: the centre unit of the mean over every channel, or one channel's
/// (layers with fewer channels are left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Channels {
    /// The mean of every channel at the centre.
    #[default]
    Mean,
    /// One channel at the centre.
    One(usize),
}

/// One layer of the plot.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthRow {
    /// The layer's capture name (`conv3_3`, `stage2.0`, `fc6`, `output`).
    pub name: String,
    /// What it is (`conv 3x3`, `L-RNN pair (horizontal)`, …).
    pub kind: String,
    /// The theoretical field's larger side in input pixels (an axis the field covers wholly
    /// counts as the input's extent along it); may exceed the input.
    pub theoretical: f64,
    /// The same inside the image: each axis clipped to the input's extent (what the plot shows,
    /// so that a field of 404 px over a 96 px image reads as the whole image, as it is).
    pub theoretical_in_image: f64,
    /// Whether the theoretical field is the whole image.
    pub whole_image: bool,
    /// Side of the centred square holding 50% of the ERF (`None`: the unit's gradient vanished
    /// on every input, or the layer lacks the chosen channel).
    pub erf50: Option<usize>,
    /// Side of the centred square holding 99% of the ERF.
    pub erf99: Option<usize>,
}

/// The plot's data.
#[derive(Debug, Clone, PartialEq)]
pub struct RfDepth {
    /// Input height and width.
    pub input: (usize, usize),
    /// The model's layers in forward order.
    pub model: Vec<DepthRow>,
    /// The same layers with every recurrence at zero (`None` for a model without recurrences:
    /// it is its own CNN).
    pub cnn: Option<Vec<DepthRow>>,
}

/// The model's and its CNN's receptive fields against depth on `inputs` (each `[1, C, H, W]`,
/// the same size). `progress(done, total)` is called after every backward pass; returning
/// `false` stops the work (an error saying so). The model's recurrences are restored, also on
/// error.
///
/// # Errors
/// No inputs, inputs of different sizes, a stop asked for, candle errors.
pub fn rf_depth(
    model: &Model,
    inputs: &[Tensor],
    channels: Channels,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<RfDepth> {
    rf_depth_with(model, inputs, channels, progress, &mut OnCandle)
}

/// [`rf_depth`] with every backward pass through wgpu on `ctx` (the model uploaded once per
/// curve); the same table within rounding.
///
/// # Errors
/// As [`rf_depth`]; [`Error::Gpu`] when the GPU cannot (a buffer past the adapter's limits, a
/// device error): the caller may fall back to [`rf_depth`].
pub fn rf_depth_on_gpu(
    ctx: &GpuContext,
    model: &Model,
    inputs: &[Tensor],
    channels: Channels,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<RfDepth> {
    rf_depth_with(model, inputs, channels, progress, &mut OnGpu { ctx, gpu: None })
}

fn rf_depth_with(
    model: &Model,
    inputs: &[Tensor],
    channels: Channels,
    progress: &mut dyn FnMut(usize, usize) -> bool,
    source: &mut dyn CentreGradients,
) -> Result<RfDepth> {
    let Some(first) = inputs.first() else { return Err(Error::Invalid("rf-depth: no inputs".into())) };
    let (_, _, h, w) = first.dims4()?;
    if let Some(odd) = inputs.iter().find(|x| x.dims4().map(|d| (d.2, d.3)).ok() != Some((h, w))) {
        return Err(Error::Invalid(format!(
            "rf-depth: every input must be {h}x{w}; one is {:?}",
            odd.dims()
        )));
    }
    let mut scale = RecurrenceScale::of(model)?;
    let has_cnn = !scale.is_empty();
    let graph = model.graph();
    let tables = [Some(rf_table(graph)), has_cnn.then(|| rf_table_without_recurrence(graph))];
    // The layers a forward pass captures: the graph's capture names (the scan directions'
    // maps have no row of their own).
    let captured: Vec<&String> = graph.nodes.iter().filter_map(|n| n.capture.as_ref()).collect();
    // A captured name may head several rows (an inserted pair is named after the convolution it
    // follows): the map is the last op's, so the last row of each name is kept.
    let pick = |table: &[RfRow]| -> Vec<RfRow> {
        table
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                (r.name == "output" || captured.contains(&&r.name))
                    && !table[i + 1..].iter().any(|later| later.name == r.name)
            })
            .map(|(_, r)| r.clone())
            .collect()
    };
    let total = tables.iter().flatten().map(|t| pick(t).len()).sum::<usize>() * inputs.len();
    let mut done = 0;
    let mut curves = Vec::new();
    for (k, table) in tables.iter().enumerate() {
        let Some(table) = table else { continue };
        let rows = pick(table);
        if k == 1 {
            scale.set(0.0)?;
        }
        let result = curve((model, &mut *source), inputs, &rows, channels, (h, w), &mut |n| {
            done += n;
            progress(done, total)
        });
        if k == 1 {
            scale.restore()?;
        }
        curves.push(result?);
    }
    let mut curves = curves.into_iter();
    let model_rows = curves.next().unwrap_or_default();
    Ok(RfDepth { input: (h, w), model: model_rows, cnn: curves.next() })
}

/// One curve: the ERF of each row's centre unit, averaged over `inputs`.
/// (`source` runs the backward passes; the first call of a curve is told the weights changed.)
fn curve(
    (model, source): (&Model, &mut dyn CentreGradients),
    inputs: &[Tensor],
    rows: &[RfRow],
    channels: Channels,
    (h, w): (usize, usize),
    step: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<DepthRow>> {
    let mut sums: Vec<Option<Vec<f64>>> = vec![None; rows.len()];
    let mut centres = vec![((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0); rows.len()];
    let layers: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    for (i, input) in inputs.iter().enumerate() {
        let found = source.centre_gradients(model, input, (&layers, channels), i == 0, &mut || step(1))?;
        for (((row, sum), centre), (dims, grad)) in
            rows.iter().zip(sums.iter_mut()).zip(centres.iter_mut()).zip(found)
        {
            *centre = centre_of(row, &dims, (h, w));
            if let Some(g) = grad {
                let g: Vec<f32> = g.abs()?.sum(0)?.sum(0)?.flatten_all()?.to_vec1()?;
                let acc = sum.get_or_insert_with(|| vec![0.0; h * w]);
                for (a, v) in acc.iter_mut().zip(g) {
                    *a += f64::from(v);
                }
            }
        }
    }
    let side = |e: &super::rf_table::Extent, n: usize| e.size.unwrap_or(n as f64);
    Ok(rows
        .iter()
        .zip(sums)
        .zip(centres)
        .map(|((row, sum), centre)| {
            let (erf50, erf99) = match sum {
                Some(acc) => {
                    let peak = acc.iter().fold(0f64, |m, v| m.max(*v));
                    let erf = Erf {
                        map: acc.iter().map(|v| if peak > 0.0 { (v / peak) as f32 } else { 0.0 }).collect(),
                        height: h,
                        width: w,
                        centre,
                    };
                    (erf.side_holding(0.5), erf.side_holding(0.99))
                }
                None => (None, None),
            };
            DepthRow {
                name: row.name.clone(),
                kind: row.kind.clone(),
                theoretical: side(&row.height, h).max(side(&row.width, w)),
                theoretical_in_image: side(&row.height, h)
                    .min(h as f64)
                    .max(side(&row.width, w).min(w as f64)),
                whole_image: row.height.size.is_none() && row.width.size.is_none(),
                erf50,
                erf99,
            }
        })
        .collect())
}

/// The centre unit of `map` as a scalar to differentiate, or `None` when the chosen channel is
/// not in the map.
fn centre_unit(map: &Tensor, channels: Channels) -> Result<Option<Tensor>> {
    let picked = |m: &Tensor, dim: usize| -> Result<Option<Tensor>> {
        Ok(match channels {
            Channels::Mean => Some(m.mean_keepdim(dim)?),
            Channels::One(c) if c < m.dim(dim)? => Some(m.narrow(dim, c, 1)?),
            Channels::One(_) => None,
        })
    };
    Ok(match map.rank() {
        4 => {
            let (_, _, mh, mw) = map.dims4()?;
            picked(map, 1)?.map(|m| m.narrow(2, mh / 2, 1)?.narrow(3, mw / 2, 1)?.sum_all()).transpose()?
        }
        2 => picked(map, 1)?.map(|m| m.sum_all()).transpose()?,
        _ => None,
    })
}

/// The centre unit's position in input pixels: the first unit's centre plus the unit's index
/// times the jump (Araujo et al.), kept inside the input; the input's centre for a map without
/// positions (class scores).
fn centre_of(row: &RfRow, map: &[usize], (h, w): (usize, usize)) -> (f32, f32) {
    let at = |e: &super::rf_table::Extent, units: usize, n: usize| {
        (e.start + (units / 2) as f64 * e.jump).clamp(0.0, n.saturating_sub(1) as f64) as f32
    };
    match *map {
        [_, _, mh, mw] => (at(&row.height, mh, h), at(&row.width, mw, w)),
        _ => ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0),
    }
}

/// The first line of an rf-depth CSV.
pub const CSV_HEADER: &str = "depth,layer,kind,theoretical,theoretical_in_image,erf50,erf99,\
                              theoretical_cnn,theoretical_in_image_cnn,erf50_cnn,erf99_cnn\n";

impl RfDepth {
    /// The table as CSV ([`CSV_HEADER`]): sides in input pixels, `whole` for a theoretical field
    /// that is the whole image, empty where there is no value (no CNN, a vanished gradient).
    pub fn csv(&self) -> String {
        let num = |v: Option<usize>| v.map_or(String::new(), |v| v.to_string());
        let theo = |r: &DepthRow| {
            let total = if r.whole_image { "whole".to_string() } else { format!("{}", r.theoretical) };
            format!("{total},{}", r.theoretical_in_image)
        };
        let mut s = String::from(CSV_HEADER);
        for (i, r) in self.model.iter().enumerate() {
            let cnn = self.cnn.as_ref().and_then(|c| c.get(i));
            s.push_str(&format!(
                "{i},{},{},{},{},{},{},{},{}\n",
                r.name,
                r.kind.replace(',', ";"),
                theo(r),
                num(r.erf50),
                num(r.erf99),
                cnn.map_or(",".to_string(), theo),
                cnn.map_or(String::new(), |c| num(c.erf50)),
                cnn.map_or(String::new(), |c| num(c.erf99)),
            ));
        }
        s
    }

    /// The plot: theoretical (dashed), 50% and 99% ERF sides over the layers, for the model and
    /// its CNN, with the input's side as a reference line.
    pub fn chart(&self, title: &str) -> super::plot::Chart {
        use super::plot::{Chart, Rule, Series, OKABE_ITO};
        let points = |rows: &[DepthRow], f: &dyn Fn(&DepthRow) -> Option<f64>| {
            rows.iter().enumerate().map(|(i, r)| (i as f64, f(r))).collect::<Vec<_>>()
        };
        let theo = |r: &DepthRow| Some(r.theoretical_in_image);
        let e50 = |r: &DepthRow| r.erf50.map(|v| v as f64);
        let e99 = |r: &DepthRow| r.erf99.map(|v| v as f64);
        let mut series = Vec::new();
        let curves =
            [("model", Some(&self.model), OKABE_ITO[0]), ("CNN (V = 0)", self.cnn.as_ref(), OKABE_ITO[1])];
        for (who, rows, colour) in curves {
            let Some(rows) = rows else { continue };
            let lighter = colour.map(|c| ((u16::from(c) + 255) / 2) as u8);
            series.push(Series {
                name: format!("{who}: theoretical (inside the image)"),
                colour,
                dashed: true,
                points: points(rows, &theo),
            });
            series.push(Series {
                name: format!("{who}: ERF 99%"),
                colour,
                dashed: false,
                points: points(rows, &e99),
            });
            series.push(Series {
                name: format!("{who}: ERF 50%"),
                colour: lighter,
                dashed: false,
                points: points(rows, &e50),
            });
        }
        let (h, w) = self.input;
        Chart {
            title: title.to_string(),
            x_label: "layer (forward order)".into(),
            y_label: "side of the field (input pixels)".into(),
            categories: self.model.iter().map(|r| r.name.clone()).collect(),
            series,
            rules: vec![Rule { label: format!("the image ({h}x{w})"), y: h.max(w) as f64 }],
        }
    }
}

//! Running a model on a wgpu device: weights uploaded once, intermediate buffers kept and reused
//! between calls of the same size, every layer's and scan direction's map captured on request,
//! and only what is asked for read back.
//!
//! Built so far for plain convnets (`{"kind": "convnet"}`: the context-task networks, with or
//! without inserted L-RNN pairs): convolution + ReLU, 2x2 max-pooling, inserted vanilla pairs
//! with the mean merge, global max or mean pooling, the linear head. The CIFAR networks (GRU and
//! LayerNorm cells, BatchNorm, fusions) and the FCNs are refused with a message saying so.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use wgpu::util::DeviceExt;

use super::context::GpuContext;
use super::kernels::{groups_for, submit_and_read, Kernel, Kernels, MAX_HIDDEN};
use crate::error::{Error, Result};
use crate::io::ModelDesc;
use crate::models::convnet::LayerSpec;
use crate::models::Model;
use crate::nn::{Axis, GlobalPool};

struct ConvWeights {
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
    cin: usize,
    cout: usize,
    kernel: usize,
}

enum Op {
    Conv { conv: ConvWeights, relu: bool },
    Pair { conv: ConvWeights, v: wgpu::Buffer, axis: Axis },
    MaxPool,
}

/// A model's weights on the GPU, ready to run.
pub struct GpuModel {
    ops: Vec<(String, Op)>,
    head: (wgpu::Buffer, wgpu::Buffer, usize, usize),
    pool: GlobalPool,
    in_channels: usize,
    kernels: Kernels,
    /// Intermediate buffers by name, reused while their size fits.
    scratch: BTreeMap<String, wgpu::Buffer>,
}

/// What one GPU forward pass gives back.
#[derive(Debug)]
pub struct GpuOutput {
    /// Class scores `[B, classes]`.
    pub scores: Tensor,
    /// Captured maps in forward order (`<layer>`, and `<layer>.<dir>` for an inserted pair's
    /// directions), each `[B, C, H, W]`; empty unless asked for.
    pub captured: Vec<(String, Tensor)>,
}

fn upload(ctx: &GpuContext, name: &str, t: &Tensor) -> Result<wgpu::Buffer> {
    let values: Vec<f32> = t.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1()?;
    Ok(ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(name),
        contents: &values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
        usage: wgpu::BufferUsages::STORAGE,
    }))
}

fn get<'a>(weights: &'a BTreeMap<String, Tensor>, name: &str) -> Result<&'a Tensor> {
    weights.get(name).ok_or_else(|| Error::Invalid(format!("the model has no weight `{name}`")))
}

/// The scratch buffer `name` of `floats` values: the kept one when its size matches.
fn scratch(
    kept: &mut BTreeMap<String, wgpu::Buffer>,
    ctx: &GpuContext,
    name: &str,
    floats: usize,
) -> Result<wgpu::Buffer> {
    let bytes = (floats.max(1) * 4) as u64;
    if bytes > ctx.max_binding() {
        return Err(Error::Gpu(format!(
            "{name} needs {} MiB, more than the {} MiB one buffer may hold on {}",
            bytes >> 20,
            ctx.max_binding() >> 20,
            ctx.describe()
        )));
    }
    if let Some(b) = kept.get(name).filter(|b| b.size() == bytes) {
        return Ok(b.clone());
    }
    let b = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(name),
        size: bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    kept.insert(name.to_string(), b.clone());
    Ok(b)
}

impl GpuModel {
    /// Uploads `model`'s weights.
    ///
    /// # Errors
    /// [`Error::Gpu`] for a model kind the GPU path does not run yet, or a pair wider than the
    /// scan kernel holds; candle errors reading the weights.
    pub fn upload(ctx: &GpuContext, model: &Model) -> Result<Self> {
        let ModelDesc::Convnet(cfg) = model.desc() else {
            return Err(Error::Gpu(format!(
                "{} does not run on the GPU path yet: it runs plain convnets (the context-task networks); \
                 the CIFAR networks and FCNs are still to come (issue #6)",
                model.desc().display_name()
            )));
        };
        let weights = model.weights()?;
        let mut ops = Vec::new();
        let mut channels = cfg.in_channels;
        for spec in &cfg.layers {
            match spec {
                LayerSpec::Conv { name, out, kernel, relu } => {
                    let conv = ConvWeights {
                        weight: upload(ctx, name, get(&weights, &format!("{name}.weight"))?)?,
                        bias: upload(ctx, name, get(&weights, &format!("{name}.bias"))?)?,
                        cin: channels,
                        cout: *out,
                        kernel: *kernel,
                    };
                    let op = match cfg.inserted(name) {
                        Some(axis) => {
                            if *out > MAX_HIDDEN {
                                return Err(Error::Gpu(format!(
                                    "{name}: {out} hidden units, the scan kernel holds at most {MAX_HIDDEN}"
                                )));
                            }
                            let [a, b] = axis.directions();
                            let va = get(&weights, &format!("{name}.v_{}.weight", a.name()))?;
                            let vb = get(&weights, &format!("{name}.v_{}.weight", b.name()))?;
                            let v = Tensor::cat(&[va, vb], 0)?;
                            Op::Pair { conv, v: upload(ctx, name, &v)?, axis }
                        }
                        None => Op::Conv { conv, relu: *relu },
                    };
                    ops.push((name.clone(), op));
                    channels = *out;
                }
                LayerSpec::MaxPool { name } => ops.push((name.clone(), Op::MaxPool)),
            }
        }
        let head = (
            upload(ctx, "head.weight", get(&weights, "head.weight")?)?,
            upload(ctx, "head.bias", get(&weights, "head.bias")?)?,
            channels,
            cfg.classes,
        );
        Ok(Self {
            ops,
            head,
            pool: cfg.pool,
            in_channels: cfg.in_channels,
            kernels: Kernels::new(&ctx.device),
            scratch: BTreeMap::new(),
        })
    }

    /// Runs the model on `x` (`[B, C, H, W]`, H and W divisible by 2 for each pooling).
    ///
    /// # Errors
    /// [`Error::Gpu`] when the input does not fit, a buffer exceeds the adapter's limits, or the
    /// device reports an error or is lost.
    pub fn forward(&mut self, ctx: &GpuContext, x: &Tensor, capture: bool) -> Result<GpuOutput> {
        let (b, c, mut h, mut w) = x.dims4()?;
        if c != self.in_channels {
            return Err(Error::Gpu(format!(
                "the input has {c} channels, the model takes {}",
                self.in_channels
            )));
        }
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let kept = &mut self.scratch;
        let kernels = &self.kernels;
        let dev = &ctx.device;
        let input = scratch(kept, ctx, "input", b * c * h * w)?;
        let values: Vec<f32> = x.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1()?;
        ctx.queue.write_buffer(&input, 0, &values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
        let mut encoder =
            dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        let mut cur = input;
        let mut channels = c;
        let mut captured: Vec<(String, wgpu::Buffer, [usize; 4])> = Vec::new();
        let u = |v: usize| v as u32;
        for (name, op) in &self.ops {
            let (out, shape) = match op {
                Op::Conv { conv, relu } => {
                    let (k, cout) = (conv.kernel, conv.cout);
                    let n = b * cout * h * w;
                    let out = scratch(kept, ctx, name, n)?;
                    let params = [b, conv.cin, h, w, cout, k, k / 2, 1, h, w, usize::from(*relu), 0].map(u);
                    let bufs = [&cur, &conv.weight, &conv.bias, &out];
                    kernels.dispatch(dev, &mut encoder, Kernel::Conv2d, &params, &bufs, groups_for(n));
                    (out, [b, cout, h, w])
                }
                Op::Pair { conv, v, axis } => {
                    let (k, d) = (conv.kernel, conv.cout);
                    let n = b * d * h * w;
                    let xi = scratch(kept, ctx, &format!("{name}.xi"), n)?;
                    let hd = scratch(kept, ctx, &format!("{name}.directions"), 2 * n)?;
                    let out = scratch(kept, ctx, name, n)?;
                    let params = [b, conv.cin, h, w, d, k, k / 2, 1, h, w, 0, 0].map(u);
                    let g = groups_for(n);
                    kernels.dispatch(
                        dev,
                        &mut encoder,
                        Kernel::Conv2d,
                        &params,
                        &[&cur, &conv.weight, &conv.bias, &xi],
                        g,
                    );
                    let vertical = usize::from(*axis == Axis::Vertical);
                    let sequences = b * if vertical == 1 { w } else { h };
                    let params = [b, d, h, w, vertical, 0, 0, 0].map(u);
                    kernels.dispatch(
                        dev,
                        &mut encoder,
                        Kernel::ScanPair,
                        &params,
                        &[&xi, v, &hd],
                        (u(sequences), 2),
                    );
                    kernels.dispatch(dev, &mut encoder, Kernel::Mean2, &[u(n), 0, 0, 0], &[&hd, &out], g);
                    if capture {
                        for (j, dir) in axis.directions().iter().enumerate() {
                            let part = scratch(kept, ctx, &format!("{name}.{}", dir.name()), n)?;
                            encoder.copy_buffer_to_buffer(&hd, (j * n * 4) as u64, &part, 0, (n * 4) as u64);
                            captured.push((format!("{name}.{}", dir.name()), part, [b, d, h, w]));
                        }
                    }
                    (out, [b, d, h, w])
                }
                Op::MaxPool => {
                    let n = b * channels * (h / 2) * (w / 2);
                    let out = scratch(kept, ctx, name, n)?;
                    let params = [b * channels, h, w, 0].map(u);
                    kernels.dispatch(
                        dev,
                        &mut encoder,
                        Kernel::MaxPool2,
                        &params,
                        &[&cur, &out],
                        groups_for(n),
                    );
                    (h, w) = (h / 2, w / 2);
                    (out, [b, channels, h, w])
                }
            };
            channels = shape[1];
            if capture {
                captured.push((name.clone(), out.clone(), shape));
            }
            cur = out;
        }
        let (head_w, head_b, inputs, classes) = (&self.head.0, &self.head.1, self.head.2, self.head.3);
        let pooled = scratch(kept, ctx, "pooled", b * inputs)?;
        let mode = u32::from(self.pool == GlobalPool::Avg);
        let params = [u(b * inputs), u(h * w), mode, 0];
        kernels.dispatch(
            dev,
            &mut encoder,
            Kernel::GlobalPool,
            &params,
            &[&cur, &pooled],
            groups_for(b * inputs),
        );
        let scores = scratch(kept, ctx, "scores", b * classes)?;
        let params = [u(b), u(inputs), u(classes), 0];
        let bufs = [&pooled, head_w, head_b, &scores];
        kernels.dispatch(dev, &mut encoder, Kernel::Linear, &params, &bufs, groups_for(b * classes));
        // Read back the scores and what was captured, through one staging buffer.
        let mut wanted: Vec<(String, wgpu::Buffer, Vec<usize>)> =
            vec![("scores".into(), scores, vec![b, classes])];
        wanted.extend(captured.into_iter().map(|(n, buf, s)| (n, buf, s.to_vec())));
        let bufs: Vec<&wgpu::Buffer> = wanted.iter().map(|(_, buf, _)| buf).collect();
        let bytes = submit_and_read(ctx, encoder, &bufs, scope, oom)?;
        let floats: Vec<f32> =
            bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let mut at = 0;
        let mut tensors = Vec::with_capacity(wanted.len());
        for (name, buf, shape) in wanted {
            let n = (buf.size() / 4) as usize;
            tensors.push((name, Tensor::from_vec(floats[at..at + n].to_vec(), shape, &Device::Cpu)?));
            at += n;
        }
        let scores = tensors.remove(0).1;
        Ok(GpuOutput { scores, captured: tensors })
    }
}

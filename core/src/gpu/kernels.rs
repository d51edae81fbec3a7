//! The WGSL kernels (embedded from `shaders/` at build time), their pipelines, and one helper to
//! record a dispatch.

use std::sync::OnceLock;

use super::context::{GpuContext, Scopes};
use super::params::KernelParams;
use crate::error::{Error, Result};

/// The shaders' sources by name, as embedded.
pub const SHADERS: [(&str, &str); 21] = [
    ("conv2d", include_str!("../../../shaders/conv2d.wgsl")),
    ("pool2d", include_str!("../../../shaders/pool2d.wgsl")),
    ("scan_pair", include_str!("../../../shaders/scan_pair.wgsl")),
    ("combine", include_str!("../../../shaders/combine.wgsl")),
    ("affine", include_str!("../../../shaders/affine.wgsl")),
    ("upsample", include_str!("../../../shaders/upsample.wgsl")),
    ("global_pool", include_str!("../../../shaders/global_pool.wgsl")),
    ("colour_map", include_str!("../../../shaders/colour_map.wgsl")),
    ("label_colour", include_str!("../../../shaders/label_colour.wgsl")),
    ("conv_transpose", include_str!("../../../shaders/conv_transpose.wgsl")),
    ("crop", include_str!("../../../shaders/crop.wgsl")),
    ("scan_step", include_str!("../../../shaders/scan_step.wgsl")),
    ("pool2d_backward", include_str!("../../../shaders/pool2d_backward.wgsl")),
    ("upsample_backward", include_str!("../../../shaders/upsample_backward.wgsl")),
    ("weight_grad", include_str!("../../../shaders/weight_grad.wgsl")),
    ("global_pool_backward", include_str!("../../../shaders/global_pool_backward.wgsl")),
    ("softmax_xent", include_str!("../../../shaders/softmax_xent.wgsl")),
    ("optimizer", include_str!("../../../shaders/optimizer.wgsl")),
    ("batch_norm", include_str!("../../../shaders/batch_norm.wgsl")),
    ("scan_pair_backward", include_str!("../../../shaders/scan_pair_backward.wgsl")),
    ("gru_pair_backward", include_str!("../../../shaders/gru_pair_backward.wgsl")),
];

/// The kernels, in the order of [`SHADERS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// `conv2d.wgsl` (also linear layers)
    Conv2d,
    /// `pool2d.wgsl`
    Pool2d,
    /// `scan_pair.wgsl`
    ScanPair,
    /// `combine.wgsl`
    Combine,
    /// `affine.wgsl`
    Affine,
    /// `upsample.wgsl`
    Upsample,
    /// `global_pool.wgsl`
    GlobalPool,
    /// `colour_map.wgsl`
    ColourMap,
    /// `label_colour.wgsl`
    LabelColour,
    /// `conv_transpose.wgsl`
    ConvTranspose,
    /// `crop.wgsl`
    Crop,
    /// `scan_step.wgsl`
    ScanStep,
    /// `pool2d_backward.wgsl`
    Pool2dBackward,
    /// `upsample_backward.wgsl`
    UpsampleBackward,
    /// `weight_grad.wgsl`
    WeightGrad,
    /// `global_pool_backward.wgsl`
    GlobalPoolBackward,
    /// `softmax_xent.wgsl`
    SoftmaxXent,
    /// `optimizer.wgsl`
    Optimizer,
    /// `batch_norm.wgsl`
    BatchNorm,
    /// `scan_pair_backward.wgsl`
    ScanPairBackward,
    /// `gru_pair_backward.wgsl`
    GruPairBackward,
}

/// The largest hidden size the scan kernel holds in workgroup memory.
pub const MAX_HIDDEN: usize = 1024;

/// Invocations per workgroup of the element-wise kernels.
const GROUP: u32 = 64;

/// The kernels, each compiled the first time it is dispatched.
pub struct Kernels {
    pipelines: [OnceLock<wgpu::ComputePipeline>; SHADERS.len()],
}

impl Default for Kernels {
    fn default() -> Self {
        Self::new()
    }
}

impl Kernels {
    /// No kernel compiled yet.
    pub fn new() -> Self {
        Self { pipelines: std::array::from_fn(|_| OnceLock::new()) }
    }

    fn pipeline(&self, device: &wgpu::Device, kernel: Kernel) -> &wgpu::ComputePipeline {
        self.pipelines[kernel as usize].get_or_init(|| {
            let (name, src) = SHADERS[kernel as usize];
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                cache: None,
            })
        })
    }

    /// Records one dispatch of the kernel of `params` (its typed uniform block, binding 0) with
    /// storage `buffers` at bindings 1.., over `groups` workgroups (`(x, y, z)`), in its own
    /// compute pass (timestamped at both ends when the profiler asks).
    pub(crate) fn dispatch<P: KernelParams>(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        params: &P,
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32, u32),
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) {
        let device = &ctx.device;
        let kernel = P::KERNEL;
        let pipeline = self.pipeline(device, kernel);
        let name = SHADERS[kernel as usize].0;
        let uniform = ctx.buffer_with("params", bytemuck::bytes_of(params), wgpu::BufferUsages::UNIFORM);
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() });
        }
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(name),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(name),
            timestamp_writes: timestamps,
        });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
    }
}

/// The kernel's name (its shader file's stem).
pub(crate) fn kernel_name(kernel: Kernel) -> &'static str {
    SHADERS[kernel as usize].0
}

/// Workgroups `(x, y, 1)` covering `n` invocations of an element-wise kernel (64 per group; `y`
/// rows when `x` would pass the 65,535 limit).
pub fn groups_for(n: usize) -> (u32, u32, u32) {
    let (x, y) = fold(n.div_ceil(GROUP as usize));
    (x, y, 1)
}

/// `groups` workgroups as a grid `(x, y)` with `x` within the 65,535 limit.
pub fn fold(groups: usize) -> (u32, u32) {
    let groups = groups.max(1);
    let x = groups.min(65_535);
    (x as u32, groups.div_ceil(x) as u32)
}

/// Submits `encoder` with copies of `buffers` into one staging buffer, waits, checks the error
/// scopes the caller opened before recording (out-of-memory, then validation: popped in reverse)
/// and returns the buffers' bytes one after the other.
///
/// # Errors
/// [`Error::Gpu`] for a device error, running out of memory, or a lost device.
pub(crate) fn submit_and_read(
    ctx: &GpuContext,
    mut encoder: wgpu::CommandEncoder,
    buffers: &[&wgpu::Buffer],
    scopes: Scopes,
) -> Result<Vec<u8>> {
    let Scopes { validation, oom } = scopes;
    let total: u64 = buffers.iter().map(|b| b.size()).sum();
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("read-back"),
        size: total.max(4),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut offset = 0;
    for b in buffers {
        encoder.copy_buffer_to_buffer(b, 0, &staging, offset, b.size());
        offset += b.size();
    }
    ctx.queue.submit(Some(encoder.finish()));
    let slice = staging.slice(..);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| Error::Gpu(format!("{}: {e}", ctx.describe())))?;
    if let Some(e) = pollster::block_on(oom.pop()) {
        return Err(Error::Gpu(format!("{} ran out of memory: {e}", ctx.describe())));
    }
    if let Some(e) = pollster::block_on(validation.pop()) {
        return Err(Error::Gpu(format!("{}: {e}", ctx.describe())));
    }
    rx.recv()
        .map_err(|_| Error::Gpu("the device was lost while reading back".into()))?
        .map_err(|e| Error::Gpu(format!("cannot read back from {}: {e}", ctx.describe())))?;
    let bytes = slice
        .get_mapped_range()
        .map_err(|e| Error::Gpu(format!("cannot read back from {}: {e}", ctx.describe())))?
        .to_vec();
    staging.unmap();
    Ok(bytes[..total as usize].to_vec())
}

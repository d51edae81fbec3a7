//! Colouring on the GPU: maps through `shaders/colour_map.wgsl` (the same colours as
//! [`crate::colour::ColourMap`]) and label maps in the VOC palette through
//! `shaders/label_colour.wgsl` ([`super::GpuModel::segment`], which colours an FCN's labels where
//! its scores already are).

use super::context::GpuContext;
use super::kernels::{groups_for, submit_and_read};
use super::params::ColourMapParams;
use crate::colour::ColourMap;
use crate::error::Result;

/// `values` coloured with `map` over `range` as RGBA8 bytes (alpha 255), four per value.
///
/// # Errors
/// [`crate::Error::Gpu`] for a device error or a lost device.
pub fn paint(ctx: &GpuContext, values: &[f32], map: ColourMap, range: (f32, f32)) -> Result<Vec<u8>> {
    let scopes = ctx.error_scopes();
    let n = values.len();
    ctx.check_alive()?;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let input = ctx.buffer_with("values", &bytes, wgpu::BufferUsages::STORAGE);
    let out = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("rgba"),
        size: (n.max(1) * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let id = match map {
        ColourMap::Viridis => 0,
        ColourMap::Grey => 1,
        ColourMap::Diverging => 2,
        ColourMap::Cividis => 3,
    };
    let params = ColourMapParams { n: n as u32, map: id, lo: range.0, hi: range.1 };
    let mut encoder =
        ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("colour map") });
    ctx.kernels.dispatch(ctx, &mut encoder, &params, &[&input, &out], groups_for(n), None);
    let mut bytes = submit_and_read(ctx, encoder, &[&out], scopes)?;
    bytes.truncate(4 * n);
    Ok(bytes)
}

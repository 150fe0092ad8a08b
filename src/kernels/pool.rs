//! Global max pooling: each channel's maximum over an image's positions, and its backward
//! (the quality classifiers' colour trunk: shape is read wherever the shape is).

use crate::gpu::template::fill;
use crate::gpu::{Gpu, GpuBuffer, Launch, Result};

const SOURCE: &str = include_str!("../../shaders/pool.wgsl");
const FAMILY: &str = "pool";
/// Invocations per workgroup: named here once and filled into the WGSL (`$WG`).
const WG: u32 = 64;

/// Binding slots of the family's storage buffers (0 is the uniform block), named once.
mod slot {
    pub const X: u32 = 1;
    pub const Y: u32 = 2;
    pub const DY: u32 = 3;
    pub const DX: u32 = 4;
}

fn source() -> Result<String> {
    let slots = [("SLOT_X", slot::X), ("SLOT_Y", slot::Y), ("SLOT_DY", slot::DY), ("SLOT_DX", slot::DX)];
    let values: Vec<(&str, String)> = std::iter::once(("WG", WG.to_string())).chain(slots.iter().map(|(k, v)| (*k, v.to_string()))).collect();
    fill(FAMILY, SOURCE, &values)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    positions: u32,
    channels: u32,
    _pad: u32,
}

/// Checks the shapes: x and dx rows × (positions·channels), y and dy rows × channels.
fn params(name: &str, rows: usize, positions: usize, channels: usize, images: &[(&str, &GpuBuffer)], pooled: &[(&str, &GpuBuffer)]) -> Result<Params> {
    let r = super::nonempty(name, rows)?;
    let p = super::nonempty(name, positions)?;
    let c = super::nonempty(name, channels)?;
    super::nonempty(name, rows * positions * channels)?;
    for (what, b) in images {
        super::expect_f32(name, what, b)?;
        super::expect_len(name, &format!("{what} ({rows}x{positions}x{channels})"), b, rows * positions * channels)?;
    }
    for (what, b) in pooled {
        super::expect_f32(name, what, b)?;
        super::expect_len(name, &format!("{what} ({rows}x{channels})"), b, rows * channels)?;
    }
    Ok(Params { rows: r, positions: p, channels: c, _pad: 0 })
}

/// y[r, c] = max over positions q of x[r, q·channels + c].
pub fn position_max(gpu: &Gpu, rows: usize, positions: usize, channels: usize, x: &GpuBuffer, y: &GpuBuffer) -> Result<Launch> {
    let name = format!("position_max {rows}x{positions}x{channels}");
    let params = params(&name, rows, positions, channels, &[("x", x)], &[("y", y)])?;
    let pipeline = gpu.pipeline("pool/position_max", source, "position_max")?;
    gpu.launch_at(name, pipeline, &params, &[(slot::X, x), (slot::Y, y)], gpu.grid_1d((params.rows * params.channels).div_ceil(WG)))
}

/// dx: dy[r, c] at the first position of channel c's maximum in row r, 0 elsewhere.
pub fn position_max_backward(gpu: &Gpu, rows: usize, positions: usize, channels: usize, x: &GpuBuffer, dy: &GpuBuffer, dx: &GpuBuffer) -> Result<Launch> {
    let name = format!("position_max_backward {rows}x{positions}x{channels}");
    let params = params(&name, rows, positions, channels, &[("x", x), ("dx", dx)], &[("dy", dy)])?;
    let pipeline = gpu.pipeline("pool/position_max_backward", source, "position_max_backward")?;
    gpu.launch_at(name, pipeline, &params, &[(slot::X, x), (slot::DY, dy), (slot::DX, dx)], gpu.grid_1d((params.rows * params.channels).div_ceil(WG)))
}

//! cast: f32 → f16 storage, for the operands of the mixed-precision step's matmuls.

use crate::gpu::template::fill;
use crate::gpu::{Gpu, GpuBuffer, GpuError, Launch, Result};
use crate::types::DType;

const SOURCE: &str = include_str!("../../shaders/cast.wgsl");
const FAMILY: &str = "cast";
/// Invocations per workgroup: named here once and filled into the WGSL (`$WG`).
const WG: u32 = 256;

/// The family's WGSL with its workgroup sizes filled in.
fn source() -> Result<String> {
    fill(FAMILY, SOURCE, &[("WG", WG.to_string())])
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    _pad: [u32; 3],
}

/// Prepares `dst = f16(src)` (same length; `dst` in F16, which needs SHADER_F16).
pub fn to_f16(gpu: &Gpu, src: &GpuBuffer, dst: &GpuBuffer) -> Result<Launch> {
    let name = format!("to_f16 n={}", src.len);
    let n = super::nonempty(&name, src.len)?;
    super::expect_f32(&name, "source", src)?;
    super::expect_len(&name, "destination", dst, src.len)?;
    if dst.dtype != DType::F16 {
        return Err(GpuError::shape(&name, format!("destination is {:?}, expected F16", dst.dtype)));
    }
    if !gpu.features.shader_f16 {
        return Err(GpuError::Unsupported { kernel: name, feature: "SHADER_F16".into() });
    }
    let pipeline = gpu.pipeline("cast/to_f16", source, "to_f16")?;
    gpu.launch(name, pipeline, &Params { n, _pad: [0; 3] }, &[src, dst], gpu.grid_1d(n.div_ceil(WG)))
}

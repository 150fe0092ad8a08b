//! KL(N(μ, σ²) ‖ N(0, I)): per sample, batch mean, and backward.

use crate::gpu::template::fill;
use crate::gpu::{Gpu, GpuBuffer, Launch, Result};

use super::reduce;

const SOURCE: &str = include_str!("../../shaders/kl.wgsl");
const FAMILY: &str = "kl";
/// Invocations per workgroup: named here once and filled into the WGSL (`$WG`).
const WG: u32 = 256;
/// Invocations per workgroup of the per-row entry points (`$WG_ROWS` in the WGSL).
const WG_ROWS: u32 = 64;

/// Binding slots of the family's storage buffers (0 is the uniform block), named once:
/// the WGSL's `@binding($SLOT_…)` markers are filled from here.
mod slot {
    pub const MU: u32 = 1;
    pub const LOGVAR: u32 = 2;
    pub const KL: u32 = 3;
    pub const DLOSS: u32 = 4;
    pub const DMU: u32 = 5;
    pub const DLOGVAR: u32 = 6;
}

fn slot_values() -> Vec<(&'static str, String)> {
    [
        ("SLOT_MU", slot::MU),
        ("SLOT_LOGVAR", slot::LOGVAR),
        ("SLOT_KL", slot::KL),
        ("SLOT_DLOSS", slot::DLOSS),
        ("SLOT_DMU", slot::DMU),
        ("SLOT_DLOGVAR", slot::DLOGVAR),
    ]
    .iter()
    .map(|(k, v)| (*k, v.to_string()))
    .collect()
}

/// The family's WGSL with its workgroup sizes filled in.
fn source() -> Result<String> {
    fill(FAMILY, SOURCE, &[vec![("WG", WG.to_string()), ("WG_ROWS", WG_ROWS.to_string())], slot_values()].concat())
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    scale: f32,
    _pad: u32,
}

fn check(name: &str, batch: usize, latent: usize, bufs: &[(&str, &GpuBuffer)]) -> Result<(u32, u32)> {
    let r = super::nonempty(name, batch)?;
    let c = super::nonempty(name, latent)?;
    for (what, b) in bufs {
        super::expect_f32(name, what, b)?;
        super::expect_len(name, &format!("{what} ({batch}x{latent})"), b, batch * latent)?;
    }
    Ok((r, c))
}

/// kl[r] = −½·Σ_j (1 + logσ²[r,j] − μ[r,j]² − exp(logσ²[r,j])) for a batch×latent pair.
pub fn kl_per_sample(gpu: &Gpu, batch: usize, latent: usize, mu: &GpuBuffer, logvar: &GpuBuffer, kl: &GpuBuffer) -> Result<Launch> {
    let name = format!("kl_per_sample {batch}x{latent}");
    let (rows, cols) = check(&name, batch, latent, &[("mu", mu), ("logvar", logvar)])?;
    super::expect_len(&name, "kl", kl, batch)?;
    let pipeline = gpu.pipeline("kl/kl_per_sample", source, "kl_per_sample")?;
    let params = Params { rows, cols, scale: 1.0, _pad: 0 };
    gpu.launch_at(name, pipeline, &params, &[(slot::MU, mu), (slot::LOGVAR, logvar), (slot::KL, kl)], gpu.grid_1d(rows.div_ceil(WG_ROWS)))
}

/// Scratch of `kl_mean` for a batch: the per-sample KL, then its partial sums.
pub fn kl_mean_scratch_lens(batch: usize) -> Vec<usize> {
    vec![batch.max(1), reduce::scratch_len(batch)]
}

/// loss[0] = mean over the batch of the per-sample KL: per-sample kernel, then the
/// deterministic reduction with scale 1/batch. `scratch` as `kl_mean_scratch_lens` says.
pub fn kl_mean(gpu: &Gpu, batch: usize, latent: usize, mu: &GpuBuffer, logvar: &GpuBuffer, loss: &GpuBuffer, scratch: &[GpuBuffer]) -> Result<Vec<Launch>> {
    let name = format!("kl_mean {batch}x{latent}");
    let per_sample = super::losses::scratch_at(scratch, 0, &name)?;
    if per_sample.len < batch {
        return Err(crate::gpu::GpuError::shape(&name, format!("scratch 0 has {} elements, needs {batch}", per_sample.len)));
    }
    let per_sample = &GpuBuffer { len: batch, ..per_sample.clone() };
    let mut launches = vec![kl_per_sample(gpu, batch, latent, mu, logvar, per_sample)?];
    launches.extend(reduce::mean(gpu, per_sample, loss, super::losses::scratch_at(scratch, 1, &name)?)?);
    Ok(launches)
}

/// For L = scale·Σ_r kl[r]: dμ = g·scale·μ, dlogσ² = g·scale·½(exp(logσ²) − 1), g = dloss[0].
/// The batch mean has scale = 1/batch.
#[allow(clippy::too_many_arguments)]
pub fn kl_backward(
    gpu: &Gpu,
    batch: usize,
    latent: usize,
    mu: &GpuBuffer,
    logvar: &GpuBuffer,
    dloss: &GpuBuffer,
    scale: f32,
    dmu: &GpuBuffer,
    dlogvar: &GpuBuffer,
) -> Result<Launch> {
    let name = format!("kl_backward {batch}x{latent}");
    let (rows, cols) = check(&name, batch, latent, &[("mu", mu), ("logvar", logvar), ("dmu", dmu), ("dlogvar", dlogvar)])?;
    super::expect_len(&name, "upstream gradient", dloss, 1)?;
    let pipeline = gpu.pipeline("kl/kl_backward", source, "kl_backward")?;
    let params = Params { rows, cols, scale, _pad: 0 };
    let groups = gpu.grid_1d((rows * cols).div_ceil(WG));
    gpu.launch_at(name, pipeline, &params, &[(slot::MU, mu), (slot::LOGVAR, logvar), (slot::DLOSS, dloss), (slot::DMU, dmu), (slot::DLOGVAR, dlogvar)], groups)
}

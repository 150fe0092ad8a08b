//! KL(N(μ, σ²) ‖ N(0, I)): per sample, batch mean, and backward.

use crate::gpu::{Gpu, GpuBuffer, Launch, Result};

use super::reduce;

const SOURCE: &str = include_str!("../../shaders/kl.wgsl");

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
    let pipeline = gpu.pipeline("kl/kl_per_sample", || Ok(SOURCE.to_string()), "kl_per_sample")?;
    let params = Params { rows, cols, scale: 1.0, _pad: 0 };
    gpu.launch_at(name, pipeline, &params, &[(1, mu), (2, logvar), (3, kl)], gpu.grid_1d(rows.div_ceil(64)))
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
    let pipeline = gpu.pipeline("kl/kl_backward", || Ok(SOURCE.to_string()), "kl_backward")?;
    let params = Params { rows, cols, scale, _pad: 0 };
    let groups = gpu.grid_1d((rows * cols).div_ceil(256));
    gpu.launch_at(name, pipeline, &params, &[(1, mu), (2, logvar), (4, dloss), (5, dmu), (6, dlogvar)], groups)
}

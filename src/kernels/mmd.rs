//! MMD² between a batch of codes and a batch of prior draws under the inverse multiquadric
//! kernel (the Wasserstein autoencoder's latent penalty): forward as per-row shares then the
//! deterministic reduction, backward through per-pair weights. The formulas are in
//! shaders/mmd.wgsl; the twin is `reference::mmd`.

use crate::gpu::template::fill;
use crate::gpu::{Gpu, GpuBuffer, GpuError, Launch, Result};

use super::reduce;

const SOURCE: &str = include_str!("../../shaders/mmd.wgsl");
const FAMILY: &str = "mmd";
/// Invocations per workgroup (`$WG` in the WGSL).
const WG: u32 = 256;
/// Invocations per workgroup of the per-row entry point (`$WG_ROWS`).
const WG_ROWS: u32 = 64;

/// Binding slots of the family's storage buffers (0 is the uniform block), named once.
mod slot {
    pub const Z: u32 = 1;
    pub const PRIOR: u32 = 2;
    pub const ROWS: u32 = 3;
    pub const DLOSS: u32 = 4;
    pub const WEIGHTS: u32 = 5;
    pub const DZ: u32 = 6;
}

fn source() -> Result<String> {
    let slots = [
        ("SLOT_Z", slot::Z),
        ("SLOT_PRIOR", slot::PRIOR),
        ("SLOT_ROWS", slot::ROWS),
        ("SLOT_DLOSS", slot::DLOSS),
        ("SLOT_WEIGHTS", slot::WEIGHTS),
        ("SLOT_DZ", slot::DZ),
    ];
    let mut values: Vec<(&str, String)> = slots.iter().map(|(k, v)| (*k, v.to_string())).collect();
    values.push(("WG", WG.to_string()));
    values.push(("WG_ROWS", WG_ROWS.to_string()));
    fill(FAMILY, SOURCE, &values)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    d: u32,
    c: f32,
    _pad: u32,
}

/// The kernel's scale for codes of `d` dimensions: C = 2d, the expected ‖a − b‖² of two
/// draws from N(0, I_d) (Tolstikhin et al.'s choice for a unit-variance prior).
pub fn kernel_scale(d: usize) -> f32 {
    2.0 * d as f32
}

/// Checks z and the prior draws (n × d each, n ≥ 2: the unbiased estimate divides by n − 1).
fn check(name: &str, n: usize, d: usize, z: &GpuBuffer, prior: &GpuBuffer) -> Result<Params> {
    if n < 2 {
        return Err(GpuError::shape(name, format!("{n} row: the unbiased MMD needs at least 2 rows")));
    }
    // The pair weights index n² elements twice over in u32.
    if (n as u64) * (n as u64) * 2 > u32::MAX as u64 {
        return Err(GpuError::shape(name, format!("{n} rows: n² pair weights exceed u32 indexing")));
    }
    let rows = super::nonempty(name, n)?;
    let cols = super::nonempty(name, d)?;
    for (what, b) in [("z", z), ("prior draws", prior)] {
        super::expect_f32(name, what, b)?;
        super::expect_len(name, &format!("{what} ({n}x{d})"), b, n * d)?;
    }
    Ok(Params { n: rows, d: cols, c: kernel_scale(d), _pad: 0 })
}

/// rows[i] = row i's share of MMD² (their sum is MMD²).
pub fn mmd_rows(gpu: &Gpu, n: usize, d: usize, z: &GpuBuffer, prior: &GpuBuffer, rows: &GpuBuffer) -> Result<Launch> {
    let name = format!("mmd_rows {n}x{d}");
    let params = check(&name, n, d, z, prior)?;
    super::expect_len(&name, "rows", rows, n)?;
    let pipeline = gpu.pipeline("mmd/mmd_rows", source, "mmd_rows")?;
    gpu.launch_at(name, pipeline, &params, &[(slot::Z, z), (slot::PRIOR, prior), (slot::ROWS, rows)], gpu.grid_1d(params.n.div_ceil(WG_ROWS)))
}

/// Scratch of `mmd`: the per-row shares, then the reduction's partial sums.
pub fn mmd_scratch_lens(n: usize) -> Vec<usize> {
    vec![n.max(1), reduce::scratch_len(n)]
}

/// loss[0] = MMD²(z, prior): the per-row shares, then their deterministic sum.
pub fn mmd(gpu: &Gpu, n: usize, d: usize, z: &GpuBuffer, prior: &GpuBuffer, loss: &GpuBuffer, scratch: &[GpuBuffer]) -> Result<Vec<Launch>> {
    let name = format!("mmd {n}x{d}");
    let shares = super::losses::scratch_at(scratch, 0, &name)?;
    if shares.len < n {
        return Err(GpuError::shape(&name, format!("scratch 0 has {} elements, needs {n}", shares.len)));
    }
    let shares = &GpuBuffer { len: n, ..shares.clone() };
    let mut launches = vec![mmd_rows(gpu, n, d, z, prior, shares)?];
    launches.extend(reduce::sum(gpu, shares, loss, super::losses::scratch_at(scratch, 1, &name)?)?);
    Ok(launches)
}

/// Scratch of `mmd_backward`: the pair weights w_zz then w_zp, n² each.
pub fn mmd_backward_scratch_lens(n: usize) -> Vec<usize> {
    vec![2 * n * n]
}

/// dz = dloss[0]·∂MMD²/∂z (the prior draws get no gradient): pair weights, then each element.
#[allow(clippy::too_many_arguments)]
pub fn mmd_backward(
    gpu: &Gpu,
    n: usize,
    d: usize,
    z: &GpuBuffer,
    prior: &GpuBuffer,
    dloss: &GpuBuffer,
    dz: &GpuBuffer,
    scratch: &[GpuBuffer],
) -> Result<Vec<Launch>> {
    let name = format!("mmd_backward {n}x{d}");
    let params = check(&name, n, d, z, prior)?;
    super::expect_f32(&name, "dz", dz)?;
    super::expect_len(&name, &format!("dz ({n}x{d})"), dz, n * d)?;
    super::expect_len(&name, "upstream gradient", dloss, 1)?;
    let weights = super::losses::scratch_at(scratch, 0, &name)?;
    if weights.len < 2 * n * n {
        return Err(GpuError::shape(&name, format!("scratch 0 has {} elements, needs {}", weights.len, 2 * n * n)));
    }
    let weights_pipeline = gpu.pipeline("mmd/mmd_pair_weights", source, "mmd_pair_weights")?;
    let backward_pipeline = gpu.pipeline("mmd/mmd_backward", source, "mmd_backward")?;
    Ok(vec![
        gpu.launch_at(
            format!("mmd_pair_weights {n}x{d}"),
            weights_pipeline,
            &params,
            &[(slot::Z, z), (slot::PRIOR, prior), (slot::WEIGHTS, weights)],
            gpu.grid_1d((params.n * params.n).div_ceil(WG)),
        )?,
        gpu.launch_at(
            name,
            backward_pipeline,
            &params,
            &[(slot::Z, z), (slot::PRIOR, prior), (slot::DLOSS, dloss), (slot::WEIGHTS, weights), (slot::DZ, dz)],
            gpu.grid_1d((params.n * params.d).div_ceil(WG)),
        )?,
    ])
}

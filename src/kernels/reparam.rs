//! reparameterisation: z = μ + ε·exp(½·logσ²) with ε from Philox4x32-10 + Box–Muller on
//! the GPU, keyed by (seed, step, stream); backward to μ and logσ².

use crate::gpu::template::fill;
use crate::gpu::{Gpu, GpuBuffer, Launch, Result};
use crate::types::RngKey;

const SOURCE: &str = include_str!("../../shaders/reparam.wgsl");
const FAMILY: &str = "reparam";
/// Invocations per workgroup: named here once and filled into the WGSL (`$WG`).
const WG: u32 = 64;

/// The family's WGSL with its workgroup sizes filled in.
fn source() -> Result<String> {
    fill(FAMILY, SOURCE, &[("WG", WG.to_string())])
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
    stream: u32,
    step_lo: u32,
    step_hi: u32,
    first_block: u32,
    _pad1: u32,
}

impl Params {
    pub fn new(n: usize, key: RngKey) -> Self {
        Self::from_block(n, key, 0)
    }

    /// Drawing from Philox block `first_block` on: the numbers of elements 4·first_block …
    /// of the sequence for `key`.
    pub fn from_block(n: usize, key: RngKey, first_block: u32) -> Self {
        Params {
            n: n as u32,
            seed_lo: key.seed as u32,
            seed_hi: (key.seed >> 32) as u32,
            stream: key.stream,
            step_lo: key.step as u32,
            step_hi: (key.step >> 32) as u32,
            first_block,
            _pad1: 0,
        }
    }
}

fn pipeline(gpu: &Gpu, entry: &str) -> Result<std::sync::Arc<wgpu::ComputePipeline>> {
    gpu.pipeline(&format!("reparam/{entry}"), source, entry)
}

fn check(name: &str, n: usize, bufs: &[(&str, &GpuBuffer)]) -> Result<u32> {
    let n32 = super::nonempty(name, n)?;
    for (what, b) in bufs {
        super::expect_f32(name, what, b)?;
        super::expect_len(name, what, b, n)?;
    }
    Ok(n32)
}

/// z = μ + ε·exp(½·logσ²); also writes ε, which the backward needs. A new step needs
/// only `set_key` on the returned launch.
pub fn reparam_forward(gpu: &Gpu, key: RngKey, mu: &GpuBuffer, logvar: &GpuBuffer, z: &GpuBuffer, eps: &GpuBuffer) -> Result<Launch> {
    let name = format!("reparam_forward n={}", mu.len);
    let n = check(&name, mu.len, &[("mu", mu), ("logvar", logvar), ("z", z), ("eps", eps)])?;
    let params = Params::new(mu.len, key);
    let groups = gpu.grid_1d(n.div_ceil(4).div_ceil(WG));
    gpu.launch_at(name, pipeline(gpu, "reparam_forward")?, &params, &[(1, mu), (2, logvar), (3, z), (4, eps)], groups)
}

/// out = ε ~ N(0, 1), the same numbers `reparam_forward` draws for this key.
pub fn randn(gpu: &Gpu, key: RngKey, out: &GpuBuffer) -> Result<Launch> {
    let name = format!("randn n={}", out.len);
    let n = check(&name, out.len, &[("out", out)])?;
    let groups = gpu.grid_1d(n.div_ceil(4).div_ceil(WG));
    gpu.launch_at(name, pipeline(gpu, "randn")?, &Params::new(out.len, key), &[(4, out)], groups)
}

/// Rewrites the RNG key of a prepared `reparam_forward` or `randn` launch (e.g. for the
/// next step).
pub fn set_key(gpu: &Gpu, launch: &Launch, n: usize, key: RngKey) {
    set_key_from(gpu, launch, n, key, 0);
}

/// As `set_key`, drawing from Philox block `first_block` on (elements 4·first_block … of
/// the key's sequence): how a data-parallel replica draws its own rows of a batch.
pub fn set_key_from(gpu: &Gpu, launch: &Launch, n: usize, key: RngKey, first_block: u32) {
    launch.write_params(gpu, &Params::from_block(n, key, first_block));
}

/// dμ = dz; dlogσ² = dz·ε·½·exp(½·logσ²).
pub fn reparam_backward(gpu: &Gpu, logvar: &GpuBuffer, eps: &GpuBuffer, dz: &GpuBuffer, dmu: &GpuBuffer, dlogvar: &GpuBuffer) -> Result<Launch> {
    let name = format!("reparam_backward n={}", dz.len);
    let n = check(&name, dz.len, &[("logvar", logvar), ("eps", eps), ("dz", dz), ("dmu", dmu), ("dlogvar", dlogvar)])?;
    let params = Params::new(dz.len, RngKey { seed: 0, step: 0, stream: 0 });
    let groups = gpu.grid_1d(n.div_ceil(WG));
    gpu.launch_at(name, pipeline(gpu, "reparam_backward")?, &params, &[(2, logvar), (4, eps), (5, dz), (6, dmu), (7, dlogvar)], groups)
}

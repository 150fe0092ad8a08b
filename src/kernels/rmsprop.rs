//! RMSProp with L2 weight decay over a flat parameter buffer (one dispatch per parameter
//! group); it keeps one state buffer, the running mean square of the gradient.

use crate::gpu::template::fill;
use crate::gpu::{Gpu, GpuBuffer, Launch, Result};
use crate::types::RmsPropParams;

const SOURCE: &str = include_str!("../../shaders/rmsprop.wgsl");
const FAMILY: &str = "rmsprop";
/// Invocations per workgroup: named here once and filled into the WGSL (`$WG`).
const WG: u32 = 256;

/// The family's WGSL with its workgroup sizes filled in.
fn source() -> Result<String> {
    fill(FAMILY, SOURCE, &[("WG", WG.to_string())])
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    n: u32,
    lr: f32,
    rho: f32,
    eps: f32,
    weight_decay: f32,
    grad_scale: f32,
    _pad: [u32; 2],
}

/// Updates `param` and the mean square `v` in place from `grad`.
pub fn rmsprop(gpu: &Gpu, hp: RmsPropParams, grad: &GpuBuffer, param: &GpuBuffer, v: &GpuBuffer) -> Result<Launch> {
    let name = format!("rmsprop n={}", param.len);
    let n = super::nonempty(&name, param.len)?;
    for (what, b) in [("grad", grad), ("param", param), ("v", v)] {
        super::expect_f32(&name, what, b)?;
        super::expect_len(&name, what, b, param.len)?;
    }
    if !(0.0..1.0).contains(&hp.rho) {
        return Err(crate::gpu::GpuError::shape(&name, format!("rho {} must be in [0, 1)", hp.rho)));
    }
    let pipeline = gpu.pipeline("rmsprop/rmsprop", source, "rmsprop")?;
    gpu.launch(name, pipeline, &uniform(&hp, param.len), &[grad, param, v], gpu.grid_1d(n.div_ceil(WG)))
}

/// Rewrites the hyper-parameters (e.g. a decayed rate) of a prepared launch.
pub fn set_params(gpu: &Gpu, launch: &Launch, n: usize, hp: RmsPropParams) {
    launch.write_params(gpu, &uniform(&hp, n));
}

fn uniform(hp: &RmsPropParams, n: usize) -> Uniform {
    Uniform { n: n as u32, lr: hp.lr, rho: hp.rho, eps: hp.eps, weight_decay: hp.weight_decay, grad_scale: hp.grad_scale, _pad: [0; 2] }
}

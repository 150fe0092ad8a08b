//! Adam with bias correction and optional decoupled weight decay, over a flat parameter
//! buffer (one dispatch per parameter group).

use crate::gpu::template::fill;
use crate::gpu::{Gpu, GpuBuffer, Launch, Result};
use crate::types::AdamParams;

const SOURCE: &str = include_str!("../../shaders/adam.wgsl");
const FAMILY: &str = "adam";
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
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bc1: f32,
    bc2: f32,
    grad_scale: f32,
    _pad: [u32; 3],
}

/// Updates `param`, `m` and `v` in place from `grad`.
pub fn adam(gpu: &Gpu, hp: AdamParams, grad: &GpuBuffer, param: &GpuBuffer, m: &GpuBuffer, v: &GpuBuffer) -> Result<Launch> {
    let name = format!("adam n={}", param.len);
    let n = super::nonempty(&name, param.len)?;
    for (what, b) in [("grad", grad), ("param", param), ("m", m), ("v", v)] {
        super::expect_f32(&name, what, b)?;
        super::expect_len(&name, what, b, param.len)?;
    }
    if hp.step == 0 {
        return Err(crate::gpu::GpuError::shape(&name, "step counts from 1"));
    }
    let pipeline = gpu.pipeline("adam/adam", source, "adam")?;
    gpu.launch(name, pipeline, &uniform(&hp, param.len), &[grad, param, m, v], gpu.grid_1d(n.div_ceil(WG)))
}

/// Rewrites the hyper-parameters (typically the step) of a prepared launch.
pub fn set_params(gpu: &Gpu, launch: &Launch, n: usize, hp: AdamParams) {
    launch.write_params(gpu, &uniform(&hp, n));
}

/// The kernel's uniform for `n` elements (bias corrections computed in f64 on the host).
fn uniform(hp: &AdamParams, n: usize) -> Uniform {
    let (bc1, bc2) = hp.bias_corrections();
    Uniform {
        n: n as u32,
        lr: hp.lr,
        beta1: hp.beta1,
        beta2: hp.beta2,
        eps: hp.eps,
        weight_decay: hp.weight_decay,
        bc1: bc1 as f32,
        bc2: bc2 as f32,
        grad_scale: hp.grad_scale,
        _pad: [0; 3],
    }
}

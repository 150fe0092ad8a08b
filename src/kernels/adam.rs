//! Adam with bias correction and optional decoupled weight decay, over a flat parameter
//! buffer (one dispatch per parameter group).

use crate::gpu::{Gpu, GpuBuffer, Launch, Result};

const SOURCE: &str = include_str!("../../shaders/adam.wgsl");

/// Hyper-parameters; `step` is t, counted from 1.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AdamParams {
    pub n: u32,
    pub step: u32,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub _pad: u32,
}

impl AdamParams {
    /// PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8, no weight decay.
    pub fn new(lr: f32) -> Self {
        AdamParams { n: 0, step: 1, lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, _pad: 0 }
    }
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
    let pipeline = gpu.pipeline("adam/adam", || SOURCE.to_string(), "adam")?;
    let params = AdamParams { n, ..hp };
    gpu.launch(name, pipeline, &params, &[grad, param, m, v], gpu.grid_1d(n.div_ceil(256)))
}

/// Rewrites the hyper-parameters (typically the step) of a prepared launch.
pub fn set_params(gpu: &Gpu, launch: &Launch, n: usize, hp: AdamParams) {
    launch.write_params(gpu, &AdamParams { n: n as u32, ..hp });
}

//! Adam with bias correction and optional decoupled weight decay, over a flat parameter
//! buffer (one dispatch per parameter group).

use crate::gpu::{Gpu, GpuBuffer, Launch, Result};

const SOURCE: &str = include_str!("../../shaders/adam.wgsl");

/// Hyper-parameters; `step` is t, counted from 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamParams {
    pub step: u32,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Multiplies each gradient before use: 1/S undoes a loss scale S (the f16 step).
    pub grad_scale: f32,
}

impl AdamParams {
    /// PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8, no weight decay.
    pub fn new(lr: f32) -> Self {
        AdamParams { step: 1, lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, grad_scale: 1.0 }
    }

    /// (1 − β₁ᵗ, 1 − β₂ᵗ), in f64.
    pub fn bias_corrections(&self) -> (f64, f64) {
        let t = self.step as i32;
        (1.0 - (self.beta1 as f64).powi(t), 1.0 - (self.beta2 as f64).powi(t))
    }

    fn uniform(&self, n: usize) -> Uniform {
        let (bc1, bc2) = self.bias_corrections();
        Uniform {
            n: n as u32,
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            bc1: bc1 as f32,
            bc2: bc2 as f32,
            grad_scale: self.grad_scale,
            _pad: [0; 3],
        }
    }
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
    let pipeline = gpu.pipeline("adam/adam", || SOURCE.to_string(), "adam")?;
    gpu.launch(name, pipeline, &hp.uniform(param.len), &[grad, param, m, v], gpu.grid_1d(n.div_ceil(256)))
}

/// Rewrites the hyper-parameters (typically the step) of a prepared launch.
pub fn set_params(gpu: &Gpu, launch: &Launch, n: usize, hp: AdamParams) {
    launch.write_params(gpu, &hp.uniform(n));
}

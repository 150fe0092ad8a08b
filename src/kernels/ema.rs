//! An exponential moving average of a parameter buffer, updated after each of the group's
//! optimiser steps (one dispatch per averaged group): the weights samples are drawn with
//! when `optim.decoder_ema` is on.

use crate::gpu::template::fill;
use crate::gpu::{Gpu, GpuBuffer, GpuError, Launch, Result};

const SOURCE: &str = include_str!("../../shaders/ema.wgsl");
const FAMILY: &str = "ema";
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
    decay: f32,
    _pad: [u32; 2],
}

/// The decay of the `t`-th update (t from 1) of an average whose decay is `decay`:
/// min(decay, (1 + t)/(10 + t)), TensorFlow's `ExponentialMovingAverage` with
/// `num_updates`. An average that started from the initial weights with 0.999 would still
/// hold 39 % of them after a 937-step epoch; with the warm-up it averages about the last t/9
/// updates until t/9 reaches the 1/(1 − decay) of the full decay (t ≈ 9,000 at 0.999).
pub fn decay_at(decay: f32, t: u32) -> f32 {
    let t = t.max(1) as f64;
    (decay as f64).min((1.0 + t) / (10.0 + t)) as f32
}

/// Moves `avg` toward `param` by (1 − decay), in place.
pub fn ema(gpu: &Gpu, decay: f32, param: &GpuBuffer, avg: &GpuBuffer) -> Result<Launch> {
    let name = format!("ema n={}", param.len);
    let n = super::nonempty(&name, param.len)?;
    for (what, b) in [("param", param), ("avg", avg)] {
        super::expect_f32(&name, what, b)?;
        super::expect_len(&name, what, b, param.len)?;
    }
    check_decay(&name, decay)?;
    let pipeline = gpu.pipeline("ema/ema", source, "ema")?;
    gpu.launch(name, pipeline, &uniform(decay, param.len), &[param, avg], gpu.grid_1d(n.div_ceil(WG)))
}

/// Rewrites the decay of a prepared launch (the warm-up changes it every update).
pub fn set_decay(gpu: &Gpu, launch: &Launch, n: usize, decay: f32) {
    launch.write_params(gpu, &uniform(decay, n));
}

fn check_decay(name: &str, decay: f32) -> Result<()> {
    if !(0.0..1.0).contains(&decay) {
        return Err(GpuError::shape(name, format!("decay {decay} must be in [0, 1)")));
    }
    Ok(())
}

fn uniform(decay: f32, n: usize) -> Uniform {
    Uniform { n: n as u32, decay, _pad: [0; 2] }
}

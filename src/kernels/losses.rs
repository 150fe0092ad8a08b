//! losses: binary cross-entropy on probabilities (clamped) and on logits (stable form),
//! squared error between two feature tensors; forward (a reduction to one scalar) and
//! backward (scaled by an upstream gradient held in a one-element buffer).

use crate::gpu::{Gpu, GpuBuffer, Launch, Result};

use super::reduce::{reduce_to_scalar, Term, LOSS_TERMS_WGSL};
use super::ACTIVATIONS_WGSL;

const SOURCE: &str = include_str!("../../shaders/losses.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

/// loss[0] = scale · Σ −[t·log p + (1−t)·log(1−p)], p clamped to [1e-7, 1 − 1e-7].
pub fn bce_prob(gpu: &Gpu, p: &GpuBuffer, t: &GpuBuffer, scale: f32, loss: &GpuBuffer) -> Result<Vec<Launch>> {
    reduce_to_scalar(gpu, Term::BceProb, p, Some(t), scale, loss)
}

/// loss[0] = scale · Σ BCE(σ(l), t), computed from logits without overflow.
pub fn bce_logits(gpu: &Gpu, logits: &GpuBuffer, t: &GpuBuffer, scale: f32, loss: &GpuBuffer) -> Result<Vec<Launch>> {
    reduce_to_scalar(gpu, Term::BceLogits, logits, Some(t), scale, loss)
}

/// loss[0] = scale · Σ (a − b)².
pub fn sq_err(gpu: &Gpu, a: &GpuBuffer, b: &GpuBuffer, scale: f32, loss: &GpuBuffer) -> Result<Vec<Launch>> {
    reduce_to_scalar(gpu, Term::SqErr, a, Some(b), scale, loss)
}

fn backward(gpu: &Gpu, entry: &str, a: &GpuBuffer, b: &GpuBuffer, dloss: &GpuBuffer, scale: f32, da: &GpuBuffer, db: Option<&GpuBuffer>) -> Result<Launch> {
    let name = format!("{entry} n={}", a.len);
    let n = super::nonempty(&name, a.len)?;
    for (what, buf) in [("prediction", a), ("target", b), ("gradient", da)].into_iter().chain(db.map(|d| ("second gradient", d))) {
        super::expect_f32(&name, what, buf)?;
        super::expect_len(&name, what, buf, a.len)?;
    }
    super::expect_len(&name, "upstream gradient", dloss, 1)?;
    let pipeline = gpu.pipeline(
        &format!("losses/{entry}"),
        || format!("{ACTIVATIONS_WGSL}\n{LOSS_TERMS_WGSL}\n{SOURCE}"),
        entry,
    )?;
    let mut slots = vec![(1, a), (2, b), (3, dloss), (4, da)];
    if let Some(db) = db {
        slots.push((5, db));
    }
    let params = Params { n, scale, _pad0: 0, _pad1: 0 };
    gpu.launch_at(name, pipeline, &params, &slots, gpu.grid_1d(n.div_ceil(256)))
}

/// dp = dloss · scale · (p̂ − t) / (p̂(1 − p̂)), p̂ the clamped probability.
pub fn bce_prob_backward(gpu: &Gpu, p: &GpuBuffer, t: &GpuBuffer, dloss: &GpuBuffer, scale: f32, dp: &GpuBuffer) -> Result<Launch> {
    backward(gpu, "bce_prob_backward", p, t, dloss, scale, dp, None)
}

/// dl = dloss · scale · (σ(l) − t).
pub fn bce_logits_backward(gpu: &Gpu, logits: &GpuBuffer, t: &GpuBuffer, dloss: &GpuBuffer, scale: f32, dl: &GpuBuffer) -> Result<Launch> {
    backward(gpu, "bce_logits_backward", logits, t, dloss, scale, dl, None)
}

/// da = dloss · scale · 2(a − b), db = −da.
pub fn sq_err_backward(gpu: &Gpu, a: &GpuBuffer, b: &GpuBuffer, dloss: &GpuBuffer, scale: f32, da: &GpuBuffer, db: &GpuBuffer) -> Result<Launch> {
    backward(gpu, "sq_err_backward", a, b, dloss, scale, da, Some(db))
}

//! losses: binary cross-entropy on probabilities (clamped) and on logits (stable form),
//! squared error between two feature tensors, softmax cross-entropy over rows; forward (a
//! reduction to one scalar) and backward (scaled by an upstream gradient held in a
//! one-element buffer).

use crate::gpu::template::fill;
use crate::gpu::{Gpu, GpuBuffer, Launch, Result};

use super::reduce::{self, reduce_to_scalar, Term, LOSS_TERMS_WGSL};
use super::ACTIVATIONS_WGSL;

const SOURCE: &str = include_str!("../../shaders/losses.wgsl");
/// Invocations per workgroup: named here once and filled into the WGSL (`$WG`).
const WG: u32 = 256;
/// Invocations per workgroup of the per-row entry points (`$WG_ROWS` in the WGSL).
const WG_ROWS: u32 = 64;

/// Binding slots of the family's storage buffers (0 is the uniform block), named once:
/// the WGSL's `@binding($SLOT_…)` markers are filled from here.
mod slot {
    pub const A: u32 = 1;
    pub const B: u32 = 2;
    pub const DLOSS: u32 = 3;
    pub const DA: u32 = 4;
    pub const DB: u32 = 5;
}

fn slot_values() -> Vec<(&'static str, String)> {
    [("SLOT_A", slot::A), ("SLOT_B", slot::B), ("SLOT_DLOSS", slot::DLOSS), ("SLOT_DA", slot::DA), ("SLOT_DB", slot::DB)]
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect()
}

/// The family's WGSL (after the activations and loss terms it calls), sizes filled in.
fn source() -> Result<String> {
    let own = fill("losses", SOURCE, &[vec![("WG", WG.to_string()), ("WG_ROWS", WG_ROWS.to_string())], slot_values()].concat())?;
    Ok(format!("{ACTIVATIONS_WGSL}\n{LOSS_TERMS_WGSL}\n{own}"))
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    scale: f32,
    cols: u32,
    _pad: u32,
}

/// Scratch of the elementwise losses over `n` values: the reduction's partial sums.
pub fn scratch_lens(n: usize) -> Vec<usize> {
    vec![reduce::scratch_len(n)]
}

/// loss[0] = scale · Σ −[t·log p + (1−t)·log(1−p)], p clamped to [1e-7, 1 − 1e-7].
pub fn bce_prob(gpu: &Gpu, p: &GpuBuffer, t: &GpuBuffer, scale: f32, loss: &GpuBuffer, scratch: &[GpuBuffer]) -> Result<Vec<Launch>> {
    reduce_to_scalar(gpu, Term::BceProb, p, Some(t), scale, loss, scratch_at(scratch, 0, "bce_prob")?)
}

/// loss[0] = scale · Σ BCE(σ(l), t), computed from logits without overflow.
pub fn bce_logits(gpu: &Gpu, logits: &GpuBuffer, t: &GpuBuffer, scale: f32, loss: &GpuBuffer, scratch: &[GpuBuffer]) -> Result<Vec<Launch>> {
    reduce_to_scalar(gpu, Term::BceLogits, logits, Some(t), scale, loss, scratch_at(scratch, 0, "bce_logits")?)
}

/// loss[0] = scale · Σ (a − b)².
pub fn sq_err(gpu: &Gpu, a: &GpuBuffer, b: &GpuBuffer, scale: f32, loss: &GpuBuffer, scratch: &[GpuBuffer]) -> Result<Vec<Launch>> {
    reduce_to_scalar(gpu, Term::SqErr, a, Some(b), scale, loss, scratch_at(scratch, 0, "sq_err")?)
}

/// The `i`th scratch buffer, or an error naming the kernel.
pub(crate) fn scratch_at<'a>(scratch: &'a [GpuBuffer], i: usize, kernel: &str) -> Result<&'a GpuBuffer> {
    scratch.get(i).ok_or_else(|| crate::gpu::GpuError::shape(kernel, format!("needs {} scratch buffers, got {}", i + 1, scratch.len())))
}

fn backward(gpu: &Gpu, entry: &str, a: &GpuBuffer, b: &GpuBuffer, dloss: &GpuBuffer, scale: f32, da: &GpuBuffer, db: Option<&GpuBuffer>) -> Result<Launch> {
    let name = format!("{entry} n={}", a.len);
    let n = super::nonempty(&name, a.len)?;
    for (what, buf) in [("prediction", a), ("target", b), ("gradient", da)].into_iter().chain(db.map(|d| ("second gradient", d))) {
        super::expect_f32(&name, what, buf)?;
        super::expect_len(&name, what, buf, a.len)?;
    }
    super::expect_len(&name, "upstream gradient", dloss, 1)?;
    let pipeline = gpu.pipeline(&format!("losses/{entry}"), source, entry)?;
    let mut slots = vec![(slot::A, a), (slot::B, b), (slot::DLOSS, dloss), (slot::DA, da)];
    if let Some(db) = db {
        slots.push((slot::DB, db));
    }
    let params = Params { n, scale, cols: 0, _pad: 0 };
    gpu.launch_at(name, pipeline, &params, &slots, gpu.grid_1d(n.div_ceil(WG)))
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

fn softmax_check(name: &str, rows: usize, cols: usize, bufs: &[(&str, &GpuBuffer)]) -> Result<(u32, u32)> {
    let r = super::nonempty(name, rows)?;
    let c = super::nonempty(name, cols)?;
    for (what, b) in bufs {
        super::expect_f32(name, what, b)?;
        super::expect_len(name, &format!("{what} ({rows}x{cols})"), b, rows * cols)?;
    }
    Ok((r, c))
}

fn softmax_pipeline(gpu: &Gpu, entry: &str) -> Result<std::sync::Arc<wgpu::ComputePipeline>> {
    gpu.pipeline(&format!("losses/{entry}"), source, entry)
}

/// Scratch of `softmax_ce` over `rows` rows: the per-row losses, then their partial sums.
pub fn softmax_ce_scratch_lens(rows: usize) -> Vec<usize> {
    vec![rows.max(1), reduce::scratch_len(rows)]
}

/// loss[0] = scale · Σ_rows (logsumexp(l_r) − Σ_j t_rj·l_rj) for rows×cols logits and target
/// distributions (one-hot labels). Per-row losses, then the deterministic reduction.
pub fn softmax_ce(
    gpu: &Gpu,
    rows: usize,
    cols: usize,
    logits: &GpuBuffer,
    t: &GpuBuffer,
    scale: f32,
    loss: &GpuBuffer,
    scratch: &[GpuBuffer],
) -> Result<Vec<Launch>> {
    let name = format!("softmax_ce {rows}x{cols}");
    let (r, c) = softmax_check(&name, rows, cols, &[("logits", logits), ("targets", t)])?;
    super::expect_len(&name, "loss", loss, 1)?;
    let per_row = scratch_at(scratch, 0, &name)?;
    super::expect_f32(&name, "scratch", per_row)?;
    if per_row.len < rows {
        return Err(crate::gpu::GpuError::shape(&name, format!("scratch 0 has {} elements, needs {rows}", per_row.len)));
    }
    let per_row = &GpuBuffer { len: rows, ..per_row.clone() };
    let params = Params { n: r, scale: 1.0, cols: c, _pad: 0 };
    let partials = scratch_at(scratch, 1, &name)?;
    let first = gpu.launch_at(
        name,
        softmax_pipeline(gpu, "softmax_ce_rows")?,
        &params,
        &[(slot::A, logits), (slot::B, t), (slot::DA, per_row)],
        gpu.grid_1d(r.div_ceil(WG_ROWS)),
    )?;
    let mut launches = vec![first];
    launches.extend(reduce_to_scalar(gpu, Term::Sum, per_row, None, scale, loss, partials)?);
    Ok(launches)
}

/// dl = dloss · scale · (softmax(l) − t) per row.
pub fn softmax_ce_backward(
    gpu: &Gpu,
    rows: usize,
    cols: usize,
    logits: &GpuBuffer,
    t: &GpuBuffer,
    dloss: &GpuBuffer,
    scale: f32,
    dl: &GpuBuffer,
) -> Result<Launch> {
    let name = format!("softmax_ce_backward {rows}x{cols}");
    let (r, c) = softmax_check(&name, rows, cols, &[("logits", logits), ("targets", t), ("gradient", dl)])?;
    super::expect_len(&name, "upstream gradient", dloss, 1)?;
    let params = Params { n: r, scale, cols: c, _pad: 0 };
    gpu.launch_at(
        name,
        softmax_pipeline(gpu, "softmax_ce_backward")?,
        &params,
        &[(slot::A, logits), (slot::B, t), (slot::DLOSS, dloss), (slot::DA, dl)],
        gpu.grid_1d(r.div_ceil(WG_ROWS)),
    )
}

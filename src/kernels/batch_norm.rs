//! batch_norm over a rows×channels matrix (NHWC: rows = batch·height·width; or a linear
//! layer's batch×features): training forward (batch statistics, saved for the backward,
//! and running statistics updated on the GPU with a momentum), evaluation forward (running
//! statistics), and backward to x, γ and β — each with the layer's activation fused:
//! y = act(γ·x̂ + β), and the backward takes dy·act' through y in its own passes (an
//! activation of its own would cost a pass over the tensor each way).

use crate::gpu::template::fill;
use crate::gpu::{Gpu, GpuBuffer, GpuError, Launch, Result};
use crate::types::Act;

const SOURCE: &str = include_str!("../../shaders/batch_norm.wgsl");
const FAMILY: &str = "batch_norm";
/// Invocations per workgroup of the elementwise entry points (`$WG`).
const WG: u32 = 256;
/// Rows each invocation of a reduction's first pass sums for its channel (`$RP`): ⌈rows/64⌉
/// partials per channel, each over a run of that channel's column.
const RP: u32 = 64;

/// Binding slots (0 is the uniform block), named once and filled into the WGSL.
mod slot {
    pub const X: u32 = 1;
    pub const GAMMA: u32 = 2;
    pub const BETA: u32 = 3;
    pub const MEAN: u32 = 4;
    pub const INVSTD: u32 = 5;
    pub const RUN_MEAN: u32 = 6;
    pub const RUN_VAR: u32 = 7;
    pub const Y: u32 = 8;
    pub const DY: u32 = 9;
    pub const DX: u32 = 10;
    pub const DGAMMA: u32 = 11;
    pub const DBETA: u32 = 12;
    pub const PARTIALS: u32 = 13;
}

/// The bodies of the shader's `activate(v)` and `dpre(i)`: activations.wgsl's functions, the
/// same the elementwise kernels call, so a fused layer computes an unfused one's values.
fn act_bodies(act: Act) -> (&'static str, &'static str) {
    match act {
        Act::None => ("return v;", "return dy[i];"),
        Act::Relu => ("return act_relu(v);", "return act_relu_backward(y[i], dy[i]);"),
        Act::LeakyRelu(_) => ("return act_leaky_relu(v, p.alpha);", "return act_leaky_relu_backward(y[i], dy[i], p.alpha);"),
        Act::Tanh => ("return act_tanh(v);", "return act_tanh_backward(y[i], dy[i]);"),
        Act::Sigmoid => ("return act_sigmoid(v);", "return act_sigmoid_backward(y[i], dy[i]);"),
    }
}

fn source(channels: u32, act: Act) -> Result<String> {
    let slots = [
        ("SLOT_X", slot::X),
        ("SLOT_GAMMA", slot::GAMMA),
        ("SLOT_BETA", slot::BETA),
        ("SLOT_MEAN", slot::MEAN),
        ("SLOT_INVSTD", slot::INVSTD),
        ("SLOT_RUN_MEAN", slot::RUN_MEAN),
        ("SLOT_RUN_VAR", slot::RUN_VAR),
        ("SLOT_Y", slot::Y),
        ("SLOT_DY", slot::DY),
        ("SLOT_DX", slot::DX),
        ("SLOT_DGAMMA", slot::DGAMMA),
        ("SLOT_DBETA", slot::DBETA),
        ("SLOT_PARTIALS", slot::PARTIALS),
    ];
    let (act_body, dpre_body) = act_bodies(act);
    let mut values: Vec<(&str, String)> =
        vec![("WG", WG.to_string()), ("RP", RP.to_string()), ("CH", channels.to_string()), ("ACT", act_body.into()), ("DPRE", dpre_body.into())];
    values.extend(slots.iter().map(|(k, v)| (*k, v.to_string())));
    Ok(format!("{}\n{}", super::ACTIVATIONS_WGSL, fill(FAMILY, SOURCE, &values)?))
}

/// A pipeline of `entry` for `channels` channels and `act`: the cache key names both.
fn pipeline(gpu: &Gpu, entry: &str, channels: u32, act: Act) -> Result<std::sync::Arc<wgpu::ComputePipeline>> {
    gpu.pipeline(&format!("batch_norm/{entry}/{channels}/{}", act.name()), || source(channels, act), entry)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    channels: u32,
    eps: f32,
    momentum: f32,
    alpha: f32,
    pad: [u32; 3],
}

/// ε and the running statistics' momentum (PyTorch's defaults: 1e-5 and 0.1; Larsen et
/// al.'s code keeps its own, set by the model), and the activation that follows the
/// normalisation (`Act::None`: plain batch norm).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormSettings {
    pub eps: f32,
    pub momentum: f32,
    pub act: Act,
}

impl Default for BatchNormSettings {
    fn default() -> Self {
        BatchNormSettings { eps: 1e-5, momentum: 0.1, act: Act::None }
    }
}

fn params(name: &str, rows: usize, channels: usize, s: BatchNormSettings) -> Result<Params> {
    let r = super::nonempty(name, rows)?;
    let c = super::nonempty(name, channels)?;
    if rows.checked_mul(channels).is_none_or(|n| n > u32::MAX as usize) {
        return Err(GpuError::shape(name, "rows × channels exceeds u32"));
    }
    if !(s.eps.is_finite() && s.eps > 0.0 && s.momentum.is_finite() && (0.0..=1.0).contains(&s.momentum)) {
        return Err(GpuError::shape(name, format!("ε {} must be > 0 and the momentum {} in [0, 1]", s.eps, s.momentum)));
    }
    Ok(Params { rows: r, channels: c, eps: s.eps, momentum: s.momentum, alpha: s.act.alpha(), pad: [0; 3] })
}

fn lens(name: &str, bufs: &[(&str, &GpuBuffer, usize)]) -> Result<()> {
    for (what, b, n) in bufs {
        super::expect_f32(name, what, b)?;
        super::expect_len(name, what, b, *n)?;
    }
    Ok(())
}

/// Elements of scratch the forward and the backward need for `rows`×`channels`: two values
/// per run of `RP` rows and channel (the first passes' partials).
pub fn scratch_len(rows: usize, channels: usize) -> usize {
    2 * rows.div_ceil(RP as usize) * channels
}

fn check_partials(name: &str, partials: &GpuBuffer, rows: usize, channels: usize) -> Result<()> {
    super::expect_f32(name, "scratch", partials)?;
    if partials.len < scratch_len(rows, channels) {
        return Err(GpuError::shape(name, format!("scratch has {} elements, needs {}", partials.len, scratch_len(rows, channels))));
    }
    Ok(())
}

/// One invocation per (run of rows, channel): every pass but the combinations.
fn partial_grid(gpu: &Gpu, rows: usize, channels: usize) -> [u32; 3] {
    gpu.grid_1d(((rows.div_ceil(RP as usize) * channels) as u32).div_ceil(WG))
}

/// Training forward: batch mean and 1/√(var + ε) into `mean` and `invstd` (kept for the
/// backward), running statistics updated in place, then y = act(γ·x̂ + β). `partials` holds at
/// least `scratch_len(rows, channels)` elements; its contents are overwritten.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward(
    gpu: &Gpu,
    rows: usize,
    channels: usize,
    s: BatchNormSettings,
    x: &GpuBuffer,
    gamma: &GpuBuffer,
    beta: &GpuBuffer,
    running_mean: &GpuBuffer,
    running_var: &GpuBuffer,
    mean: &GpuBuffer,
    invstd: &GpuBuffer,
    y: &GpuBuffer,
    partials: &GpuBuffer,
) -> Result<Vec<Launch>> {
    let name = format!("batch_norm {rows}x{channels}");
    let p = params(&name, rows, channels, s)?;
    let (n, c) = (rows * channels, channels);
    lens(
        &name,
        &[
            ("x", x, n),
            ("y", y, n),
            ("gamma", gamma, c),
            ("beta", beta, c),
            ("running mean", running_mean, c),
            ("running var", running_var, c),
            ("mean", mean, c),
            ("invstd", invstd, c),
        ],
    )?;
    check_partials(&name, partials, rows, channels)?;
    // The statistics do not depend on the activation: one pipeline serves every layer.
    let partial = pipeline(gpu, "bn_stats_partial", p.channels, Act::None)?;
    let combine = pipeline(gpu, "bn_stats_combine", p.channels, Act::None)?;
    let forward = pipeline(gpu, "bn_forward", p.channels, s.act)?;
    let slots_combine = [(slot::PARTIALS, partials), (slot::MEAN, mean), (slot::INVSTD, invstd), (slot::RUN_MEAN, running_mean), (slot::RUN_VAR, running_var)];
    let slots_fwd = [(slot::X, x), (slot::GAMMA, gamma), (slot::BETA, beta), (slot::MEAN, mean), (slot::INVSTD, invstd), (slot::Y, y)];
    Ok(vec![
        gpu.launch_at(format!("{name} statistics (partials)"), partial, &p, &[(slot::X, x), (slot::PARTIALS, partials)], partial_grid(gpu, rows, channels))?,
        gpu.launch_at(format!("{name} statistics"), combine, &p, &slots_combine, gpu.grid_1d(p.channels.div_ceil(WG)))?,
        gpu.launch_at(name, forward, &p, &slots_fwd, partial_grid(gpu, rows, channels))?,
    ])
}

/// Evaluation forward: y = act(γ·(x − running mean)/√(running var + ε) + β).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward_eval(
    gpu: &Gpu,
    rows: usize,
    channels: usize,
    s: BatchNormSettings,
    x: &GpuBuffer,
    gamma: &GpuBuffer,
    beta: &GpuBuffer,
    running_mean: &GpuBuffer,
    running_var: &GpuBuffer,
    y: &GpuBuffer,
) -> Result<Launch> {
    let name = format!("batch_norm eval {rows}x{channels}");
    let p = params(&name, rows, channels, s)?;
    let (n, c) = (rows * channels, channels);
    lens(&name, &[("x", x, n), ("y", y, n), ("gamma", gamma, c), ("beta", beta, c), ("running mean", running_mean, c), ("running var", running_var, c)])?;
    let forward = pipeline(gpu, "bn_forward_eval", p.channels, s.act)?;
    let slots = [(slot::X, x), (slot::GAMMA, gamma), (slot::BETA, beta), (slot::RUN_MEAN, running_mean), (slot::RUN_VAR, running_var), (slot::Y, y)];
    gpu.launch_at(name, forward, &p, &slots, partial_grid(gpu, rows, channels))
}

/// Backward of the training forward: with d = dy·act' (read through the forward's output
/// `y`, which an activation needs and `Act::None` does not), dβ = Σ d, dγ = Σ d·x̂ per
/// channel, then dx = γ·invstd/R·(R·d − dβ − x̂·dγ), from the saved mean and invstd
/// (`partials`: see `batch_norm_forward`).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    gpu: &Gpu,
    rows: usize,
    channels: usize,
    act: Act,
    x: &GpuBuffer,
    y: Option<&GpuBuffer>,
    dy: &GpuBuffer,
    gamma: &GpuBuffer,
    mean: &GpuBuffer,
    invstd: &GpuBuffer,
    dx: &GpuBuffer,
    dgamma: &GpuBuffer,
    dbeta: &GpuBuffer,
    partials: &GpuBuffer,
) -> Result<Vec<Launch>> {
    let name = format!("batch_norm backward {rows}x{channels}");
    let p = params(&name, rows, channels, BatchNormSettings { act, ..BatchNormSettings::default() })?;
    let (n, c) = (rows * channels, channels);
    lens(
        &name,
        &[("x", x, n), ("dy", dy, n), ("dx", dx, n), ("gamma", gamma, c), ("mean", mean, c), ("invstd", invstd, c), ("dgamma", dgamma, c), ("dbeta", dbeta, c)],
    )?;
    // act' is read through y: an activation needs it, and none binds nothing there.
    let y = match (act, y) {
        (Act::None, _) => None,
        (_, Some(y)) => {
            lens(&name, &[("y", y, n)])?;
            Some(y)
        }
        (_, None) => return Err(GpuError::shape(&name, format!("the backward through {} needs the forward's output y", act.name()))),
    };
    check_partials(&name, partials, rows, channels)?;
    let partial = pipeline(gpu, "bn_backward_partial", p.channels, act)?;
    let combine = pipeline(gpu, "bn_backward_combine", p.channels, Act::None)?;
    let input = pipeline(gpu, "bn_backward_input", p.channels, act)?;
    let mut slots_partial = vec![(slot::X, x), (slot::DY, dy), (slot::MEAN, mean), (slot::INVSTD, invstd), (slot::PARTIALS, partials)];
    let slots_combine = [(slot::PARTIALS, partials), (slot::DGAMMA, dgamma), (slot::DBETA, dbeta)];
    // dβ and dγ reach pass 3 through the partials (see the shader).
    let mut slots_input =
        vec![(slot::X, x), (slot::DY, dy), (slot::GAMMA, gamma), (slot::MEAN, mean), (slot::INVSTD, invstd), (slot::PARTIALS, partials), (slot::DX, dx)];
    if let Some(y) = y {
        slots_partial.push((slot::Y, y));
        slots_input.push((slot::Y, y));
    }
    Ok(vec![
        gpu.launch_at(format!("{name} (γ, β partials)"), partial, &p, &slots_partial, partial_grid(gpu, rows, channels))?,
        gpu.launch_at(format!("{name} (γ, β)"), combine, &p, &slots_combine, gpu.grid_1d(p.channels.div_ceil(WG)))?,
        gpu.launch_at(format!("{name} (x)"), input, &p, &slots_input, partial_grid(gpu, rows, channels))?,
    ])
}

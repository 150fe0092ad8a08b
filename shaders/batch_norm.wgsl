// batch_norm over a rows×channels matrix (NHWC with rows = batch·height·width, or a linear
// layer's batch×features): per-channel statistics of the batch in training, the running
// statistics in evaluation; learnable scale γ and shift β.
//
// Statistics take two passes over the channel inside one workgroup — the mean, then the
// mean of squared deviations from it — so that a large common offset (mean 1e4, spread 1)
// does not cancel as E[x²] − E[x]² would in f32. The tree reductions run in a fixed order:
// the results are the same bits every run.

struct Params {
    rows: u32,
    channels: u32,
    eps: f32,
    momentum: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding($SLOT_X) var<storage, read> x: array<f32>;
@group(0) @binding($SLOT_GAMMA) var<storage, read> gamma: array<f32>;
@group(0) @binding($SLOT_BETA) var<storage, read> beta: array<f32>;
@group(0) @binding($SLOT_MEAN) var<storage, read_write> mean: array<f32>;
@group(0) @binding($SLOT_INVSTD) var<storage, read_write> invstd: array<f32>;
@group(0) @binding($SLOT_RUN_MEAN) var<storage, read_write> run_mean: array<f32>;
@group(0) @binding($SLOT_RUN_VAR) var<storage, read_write> run_var: array<f32>;
@group(0) @binding($SLOT_Y) var<storage, read_write> y: array<f32>;
@group(0) @binding($SLOT_DY) var<storage, read> dy: array<f32>;
@group(0) @binding($SLOT_DX) var<storage, read_write> dx: array<f32>;
@group(0) @binding($SLOT_DGAMMA) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding($SLOT_DBETA) var<storage, read_write> dbeta: array<f32>;

const WG: u32 = $WGu;
const WG_CH: u32 = $WG_CHu;

var<workgroup> part: array<f32, WG_CH>;
var<workgroup> part2: array<f32, WG_CH>;

// Sums part[0..WG_CH) (and part2) into element 0, in a fixed order.
fn reduce_parts(lid: u32) {
    for (var width = WG_CH / 2u; width > 0u; width >>= 1u) {
        workgroupBarrier();
        if (lid < width) {
            part[lid] += part[lid + width];
            part2[lid] += part2[lid + width];
        }
    }
    workgroupBarrier();
}

// One workgroup per channel: batch mean and 1/√(var + ε) (saved for the backward), and the
// running statistics moved towards the batch's by `momentum` (variance unbiased, as
// PyTorch keeps it).
@compute @workgroup_size($WG_CH)
fn bn_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let c = wid.x;
    let lid = lid3.x;
    var s = 0.0;
    for (var r = lid; r < p.rows; r += WG_CH) {
        s += x[r * p.channels + c];
    }
    part[lid] = s;
    part2[lid] = 0.0;
    reduce_parts(lid);
    let m = part[0] / f32(p.rows);
    workgroupBarrier();
    var q = 0.0;
    for (var r = lid; r < p.rows; r += WG_CH) {
        let d = x[r * p.channels + c] - m;
        q += d * d;
    }
    part[lid] = q;
    reduce_parts(lid);
    if (lid == 0u) {
        let biased = part[0] / f32(p.rows);
        let unbiased = select(biased, part[0] / f32(p.rows - 1u), p.rows > 1u);
        mean[c] = m;
        invstd[c] = inverseSqrt(biased + p.eps);
        run_mean[c] = (1.0 - p.momentum) * run_mean[c] + p.momentum * m;
        run_var[c] = (1.0 - p.momentum) * run_var[c] + p.momentum * unbiased;
    }
}

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// y = γ·(x − mean)·invstd + β with the batch's statistics.
@compute @workgroup_size($WG)
fn bn_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.rows * p.channels) {
        return;
    }
    let c = i % p.channels;
    y[i] = gamma[c] * (x[i] - mean[c]) * invstd[c] + beta[c];
}

// y = γ·(x − running mean)/√(running var + ε) + β: evaluation.
@compute @workgroup_size($WG)
fn bn_forward_eval(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.rows * p.channels) {
        return;
    }
    let c = i % p.channels;
    y[i] = gamma[c] * (x[i] - run_mean[c]) * inverseSqrt(run_var[c] + p.eps) + beta[c];
}

// One workgroup per channel: dβ = Σ dy, dγ = Σ dy·x̂ with x̂ = (x − mean)·invstd.
@compute @workgroup_size($WG_CH)
fn bn_backward_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let c = wid.x;
    let lid = lid3.x;
    var sb = 0.0;
    var sg = 0.0;
    for (var r = lid; r < p.rows; r += WG_CH) {
        let i = r * p.channels + c;
        sb += dy[i];
        sg += dy[i] * (x[i] - mean[c]) * invstd[c];
    }
    part[lid] = sb;
    part2[lid] = sg;
    reduce_parts(lid);
    if (lid == 0u) {
        dbeta[c] = part[0];
        dgamma[c] = part2[0];
    }
}

// dx = γ·invstd/R · (R·dy − dβ − x̂·dγ), R = rows: the batch statistics' own gradients
// folded in.
@compute @workgroup_size($WG)
fn bn_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.rows * p.channels) {
        return;
    }
    let c = i % p.channels;
    let r = f32(p.rows);
    let xhat = (x[i] - mean[c]) * invstd[c];
    dx[i] = gamma[c] * invstd[c] / r * (r * dy[i] - dbeta[c] - xhat * dgamma[c]);
}

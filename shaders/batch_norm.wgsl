// batch_norm over a rows×channels matrix (NHWC with rows = batch·height·width, or a linear
// layer's batch×features): per-channel statistics of the batch in training, the running
// statistics in evaluation; learnable scale γ and shift β; then the layer's activation,
// fused (y = act(γ·x̂ + β)), so that the normalised values never make a trip through memory
// of their own, and the backward takes act' through y in the same passes as its sums.
//
// The per-channel sums run in two levels, so that many workgroups share a channel and
// every read is contiguous across neighbouring invocations (neighbouring channels of one
// row): invocation (q, c) reduces rows [q·RP, (q + 1)·RP) of channel c into a partial, then
// one invocation per channel combines its partials in order. A partial of the statistics is
// its rows' mean and sum of squared deviations from that mean (two passes over rows the
// invocation has just read), combined by Chan et al.'s pairwise update: a large common
// offset (mean 1e4, spread 1) does not cancel as E[x²] − E[x]² would in f32. Fixed orders
// throughout: the results are the same bits every run.

struct Params {
    rows: u32,
    channels: u32, // also compiled in as CH (see below)
    eps: f32,
    momentum: f32,
    alpha: f32, // LeakyReLU slope
    pad0: u32,
    pad1: u32,
    pad2: u32,
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
// Two values per (partial, channel): see the passes below.
@group(0) @binding($SLOT_PARTIALS) var<storage, read_write> partials: array<f32>;

const WG: u32 = $WGu;
// Rows per partial.
const RP: u32 = $RPu;
// Channels, compiled in: the elementwise passes take every element's channel as i % CH,
// which a CPU adapter computes by a multiply when CH is a constant and by a scalar
// division per lane when it is not (the passes ran at a third of `add`'s GB/s).
const CH: u32 = $CHu;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// The fused activation (activations.wgsl's functions, as the matmul epilogue calls them).
fn activate(v: f32) -> f32 {
    $ACT
}

// dy·act'(pre-activation) of element i, read through the output y[i] as the activations'
// own backward does; just dy[i] without an activation (y then unbound).
fn dpre(i: u32) -> f32 {
    $DPRE
}

fn parts() -> u32 {
    return (p.rows + RP - 1u) / RP;
}

// Rows of partial q: [q·RP, min((q + 1)·RP, rows)).
fn part_end(q: u32) -> u32 {
    return min((q + 1u) * RP, p.rows);
}

// Statistics, pass 1: invocation (q, c) writes its rows' mean and Σ (x − that mean)².
@compute @workgroup_size($WG)
fn bn_stats_partial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = index(gid, nwg);
    if (t >= parts() * CH) {
        return;
    }
    let c = t % CH;
    let q = t / CH;
    let r1 = part_end(q);
    var s = 0.0;
    for (var r = q * RP; r < r1; r++) {
        s += x[r * CH + c];
    }
    let m = s / f32(r1 - q * RP);
    var ss = 0.0;
    for (var r = q * RP; r < r1; r++) {
        let d = x[r * CH + c] - m;
        ss += d * d;
    }
    partials[2u * t] = m;
    partials[2u * t + 1u] = ss;
}

// Statistics, pass 2, one invocation per channel: the partials combined in order (count n,
// mean m, sum of squared deviations m2), then the batch mean and 1/√(var + ε) (saved for
// the backward), and the running statistics moved towards the batch's by `momentum`
// (variance unbiased, as PyTorch keeps it).
@compute @workgroup_size($WG)
fn bn_stats_combine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = index(gid, nwg);
    if (c >= CH) {
        return;
    }
    var n = 0.0;
    var m = 0.0;
    var m2 = 0.0;
    for (var q = 0u; q < parts(); q++) {
        let i = 2u * (q * CH + c);
        let nb = f32(part_end(q) - q * RP);
        let nn = n + nb;
        let d = partials[i] - m;
        m += d * (nb / nn);
        m2 += partials[i + 1u] + d * d * (n / nn * nb);
        n = nn;
    }
    let biased = m2 / f32(p.rows);
    let unbiased = select(biased, m2 / f32(p.rows - 1u), p.rows > 1u);
    mean[c] = m;
    invstd[c] = inverseSqrt(biased + p.eps);
    run_mean[c] = (1.0 - p.momentum) * run_mean[c] + p.momentum * m;
    run_var[c] = (1.0 - p.momentum) * run_var[c] + p.momentum * unbiased;
}

// The elementwise passes run as the reductions do, invocation (q, c) over rows
// [q·RP, (q + 1)·RP) of channel c: the channel's values load once, not once per element
// (per-element gathers of four channel arrays held the pass to a third of `add`'s GB/s).

// y = act(γ·(x − mean)·invstd + β) with the batch's statistics.
@compute @workgroup_size($WG)
fn bn_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = index(gid, nwg);
    if (t >= parts() * CH) {
        return;
    }
    let c = t % CH;
    let q = t / CH;
    let g = gamma[c];
    let m = mean[c];
    let inv = invstd[c];
    let b = beta[c];
    for (var r = q * RP; r < part_end(q); r++) {
        let i = r * CH + c;
        y[i] = activate(g * (x[i] - m) * inv + b);
    }
}

// y = act(γ·(x − running mean)/√(running var + ε) + β): evaluation.
@compute @workgroup_size($WG)
fn bn_forward_eval(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = index(gid, nwg);
    if (t >= parts() * CH) {
        return;
    }
    let c = t % CH;
    let q = t / CH;
    let g = gamma[c];
    let m = run_mean[c];
    let inv = inverseSqrt(run_var[c] + p.eps);
    let b = beta[c];
    for (var r = q * RP; r < part_end(q); r++) {
        let i = r * CH + c;
        y[i] = activate(g * (x[i] - m) * inv + b);
    }
}

// The backward sees d = dy·act' (`dpre`) where an unfused layer's would see its dy.

// Backward, pass 1: invocation (q, c) sums d and d·x̂ (x̂ = (x − mean)·invstd) over its rows.
@compute @workgroup_size($WG)
fn bn_backward_partial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = index(gid, nwg);
    if (t >= parts() * CH) {
        return;
    }
    let c = t % CH;
    let q = t / CH;
    let m = mean[c];
    let inv = invstd[c];
    var sb = 0.0;
    var sg = 0.0;
    for (var r = q * RP; r < part_end(q); r++) {
        let i = r * CH + c;
        let d = dpre(i);
        sb += d;
        sg += d * (x[i] - m) * inv;
    }
    partials[2u * t] = sb;
    partials[2u * t + 1u] = sg;
}

// Backward, pass 2, one invocation per channel: dβ = Σ d and dγ = Σ d·x̂, the partials in order;
// also into the channel's first partial (read by this invocation alone), where pass 3 reads
// them: so that pass 3 binds 8 storage buffers with y (WebGPU's default limit), not 10.
@compute @workgroup_size($WG)
fn bn_backward_combine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = index(gid, nwg);
    if (c >= CH) {
        return;
    }
    var sb = 0.0;
    var sg = 0.0;
    for (var q = 0u; q < parts(); q++) {
        let i = 2u * (q * CH + c);
        sb += partials[i];
        sg += partials[i + 1u];
    }
    dbeta[c] = sb;
    dgamma[c] = sg;
    partials[2u * c] = sb;
    partials[2u * c + 1u] = sg;
}

// dx = γ·invstd/R · (R·d − dβ − x̂·dγ), R = rows: the batch statistics' own gradients
// folded in.
@compute @workgroup_size($WG)
fn bn_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = index(gid, nwg);
    if (t >= parts() * CH) {
        return;
    }
    let c = t % CH;
    let q = t / CH;
    let rr = f32(p.rows);
    let m = mean[c];
    let inv = invstd[c];
    let scale = gamma[c] * inv / rr;
    let db = partials[2u * c];
    let dg = partials[2u * c + 1u];
    for (var r = q * RP; r < part_end(q); r++) {
        let i = r * CH + c;
        let xhat = (x[i] - m) * inv;
        dx[i] = scale * (rr * dpre(i) - db - xhat * dg);
    }
}

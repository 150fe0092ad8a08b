// losses, backward: d/d(prediction) of  L = scale · Σ term(a[i], b[i]),  times the upstream
// gradient dloss[0] (a one-element buffer, so that loss weights set in the graph need no
// recompilation). The forwards are reductions over the same terms (reduce.wgsl).

struct Params {
    n: u32,     // elements, or rows for the softmax entries
    scale: f32,
    cols: u32,  // classes per row (softmax entries)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding($SLOT_A) var<storage, read> a: array<f32>;       // prediction (p, logits, features)
@group(0) @binding($SLOT_B) var<storage, read> b: array<f32>;       // target
@group(0) @binding($SLOT_DLOSS) var<storage, read> dloss: array<f32>;   // upstream gradient, 1 element
@group(0) @binding($SLOT_DA) var<storage, read_write> da: array<f32>;
@group(0) @binding($SLOT_DB) var<storage, read_write> db: array<f32>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * $WGu;
}

@compute @workgroup_size($WG)
fn bce_prob_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { da[i] = dloss[0] * p.scale * grad_bce_prob(a[i], b[i]); }
}

@compute @workgroup_size($WG)
fn bce_logits_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { da[i] = dloss[0] * p.scale * grad_bce_logits(a[i], b[i]); }
}

// Both sides of the squared error get a gradient: db = −da.
@compute @workgroup_size($WG)
fn sq_err_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) {
        let g = dloss[0] * p.scale * grad_sq_err(a[i], b[i]);
        da[i] = g;
        db[i] = -g;
    }
}

// Softmax cross-entropy over rows of logits (p.n rows of p.cols classes), against target
// distributions t (one-hot labels): per row, logsumexp(l) − Σ_j t_j·l_j, computed with the
// row maximum subtracted so that exp never overflows. One invocation per row: rows are
// short (10 classes), and the reduction to a scalar is the shared tree (reduce.wgsl).
// Per-row losses go to `da` (one per row), then through the shared reduction.

fn row_max(r: u32) -> f32 {
    var m = a[r * p.cols];
    for (var j = 1u; j < p.cols; j++) {
        m = max(m, a[r * p.cols + j]);
    }
    return m;
}

fn row_log_sum_exp(r: u32, m: f32) -> f32 {
    var s = 0.0;
    for (var j = 0u; j < p.cols; j++) {
        s += exp(a[r * p.cols + j] - m);
    }
    return m + log(s);
}

@compute @workgroup_size($WG_ROWS)
fn softmax_ce_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * $WG_ROWSu;
    if (r >= p.n) { return; }
    let lse = row_log_sum_exp(r, row_max(r));
    var dot = 0.0;
    var mass = 0.0;
    for (var j = 0u; j < p.cols; j++) {
        dot += b[r * p.cols + j] * a[r * p.cols + j];
        mass += b[r * p.cols + j];
    }
    da[r] = mass * lse - dot;
}

// dl = dloss · scale · (softmax(l)·Σt − t), for each row (Σt = 1 for labels).
@compute @workgroup_size($WG_ROWS)
fn softmax_ce_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * $WG_ROWSu;
    if (r >= p.n) { return; }
    let lse = row_log_sum_exp(r, row_max(r));
    var mass = 0.0;
    for (var j = 0u; j < p.cols; j++) {
        mass += b[r * p.cols + j];
    }
    let g = dloss[0] * p.scale;
    for (var j = 0u; j < p.cols; j++) {
        let i = r * p.cols + j;
        da[i] = g * (exp(a[i] - lse) * mass - b[i]);
    }
}

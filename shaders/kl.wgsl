// KL(N(μ, σ²) ‖ N(0, I)) per sample: −½·Σ_j (1 + logσ² − μ² − exp(logσ²)) over the latent
// dimension. The batch mean is the generic reduction (reduce.wgsl) with scale 1/B: a
// workgroup tree in a fixed order.

struct Params {
    rows: u32, // batch
    cols: u32, // latent dimension
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding($SLOT_MU) var<storage, read> mu: array<f32>;
@group(0) @binding($SLOT_LOGVAR) var<storage, read> logvar: array<f32>;
@group(0) @binding($SLOT_KL) var<storage, read_write> kl: array<f32>;
@group(0) @binding($SLOT_DLOSS) var<storage, read> dloss: array<f32>;
@group(0) @binding($SLOT_DMU) var<storage, read_write> dmu: array<f32>;
@group(0) @binding($SLOT_DLOGVAR) var<storage, read_write> dlogvar: array<f32>;

@compute @workgroup_size($WG_ROWS)
fn kl_per_sample(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * $WG_ROWSu;
    if (r >= p.rows) { return; }
    var s = 0.0;
    for (var j = 0u; j < p.cols; j++) {
        let m = mu[r * p.cols + j];
        let lv = logvar[r * p.cols + j];
        s += 1.0 + lv - m * m - exp(lv);
    }
    kl[r] = -0.5 * s;
}

// For L = scale · Σ_r kl[r] (scale = 1/B for the batch mean):
// dμ = g·scale·μ;  dlogσ² = g·scale·½(exp(logσ²) − 1), g = dloss[0].
@compute @workgroup_size($WG)
fn kl_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * $WGu;
    if (i >= p.rows * p.cols) { return; }
    let g = dloss[0] * p.scale;
    dmu[i] = g * mu[i];
    dlogvar[i] = g * 0.5 * (exp(logvar[i]) - 1.0);
}

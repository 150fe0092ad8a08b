// MMD² between the rows of z (the batch's codes) and of p (draws from the prior), n rows of
// d values each, under the inverse multiquadric kernel k(a, b) = C/(C + ‖a − b‖²) — the
// unbiased estimate of Tolstikhin et al. (2018), the Wasserstein autoencoder's penalty:
//
//   MMD² = a·Σ_{i≠j} k(z_i, z_j) + a·Σ_{i≠j} k(p_i, p_j) − (2/n²)·Σ_{i,j} k(z_i, p_j),
//   a = 1/(n(n − 1)).
//
// Forward: each invocation sums row i's share of the three sums in a fixed j order
// (mmd_rows); the generic reduction (reduce.wgsl) adds the rows. Backward (p is a draw, no
// gradient): with ∂k(a, b)/∂a = −2C/(C + ‖a − b‖²)²·(a − b),
//
//   dz_i = g·Σ_j [ w_zz(i, j)·(z_i − z_j) + w_zp(i, j)·(z_i − p_j) ],
//   w_zz(i, j) = −4aC/(C + ‖z_i − z_j‖²)² (i ≠ j; 0 on the diagonal; the 2 counts (i, j) and (j, i)),
//   w_zp(i, j) = 4C/(n²·(C + ‖z_i − p_j‖²)²),
//
// the weights per pair first (mmd_pair_weights, O(n²d)), then each element of dz from its
// row of weights (mmd_backward, O(n) each) — O(n²d) in all rather than O(n²d²).

struct Params {
    n: u32,
    d: u32,
    c: f32, // the kernel's scale C
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding($SLOT_Z) var<storage, read> z: array<f32>;
@group(0) @binding($SLOT_PRIOR) var<storage, read> prior: array<f32>;
@group(0) @binding($SLOT_ROWS) var<storage, read_write> rows: array<f32>;
@group(0) @binding($SLOT_DLOSS) var<storage, read> dloss: array<f32>;
@group(0) @binding($SLOT_WEIGHTS) var<storage, read_write> weights: array<f32>;
@group(0) @binding($SLOT_DZ) var<storage, read_write> dz: array<f32>;

fn dist2_zz(i: u32, j: u32) -> f32 {
    var s = 0.0;
    for (var k = 0u; k < p.d; k++) {
        let t = z[i * p.d + k] - z[j * p.d + k];
        s += t * t;
    }
    return s;
}

fn dist2_pp(i: u32, j: u32) -> f32 {
    var s = 0.0;
    for (var k = 0u; k < p.d; k++) {
        let t = prior[i * p.d + k] - prior[j * p.d + k];
        s += t * t;
    }
    return s;
}

fn dist2_zp(i: u32, j: u32) -> f32 {
    var s = 0.0;
    for (var k = 0u; k < p.d; k++) {
        let t = z[i * p.d + k] - prior[j * p.d + k];
        s += t * t;
    }
    return s;
}

// rows[i] = a·Σ_{j≠i} (k(z_i, z_j) + k(p_i, p_j)) − (2/n²)·Σ_j k(z_i, p_j).
@compute @workgroup_size($WG_ROWS)
fn mmd_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * $WG_ROWSu;
    if (i >= p.n) { return; }
    let n = f32(p.n);
    let a = 1.0 / (n * (n - 1.0));
    let cross = 2.0 / (n * n);
    var s = 0.0;
    for (var j = 0u; j < p.n; j++) {
        if (j != i) {
            s += a * (p.c / (p.c + dist2_zz(i, j)) + p.c / (p.c + dist2_pp(i, j)));
        }
        s -= cross * (p.c / (p.c + dist2_zp(i, j)));
    }
    rows[i] = s;
}

// weights[i·n + j] = w_zz(i, j), weights[n² + i·n + j] = w_zp(i, j).
@compute @workgroup_size($WG)
fn mmd_pair_weights(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * $WGu;
    if (t >= p.n * p.n) { return; }
    let i = t / p.n;
    let j = t % p.n;
    let n = f32(p.n);
    let a = 1.0 / (n * (n - 1.0));
    var w_zz = 0.0;
    if (i != j) {
        let q = p.c + dist2_zz(i, j);
        w_zz = -4.0 * a * p.c / (q * q);
    }
    let q = p.c + dist2_zp(i, j);
    weights[t] = w_zz;
    weights[p.n * p.n + t] = 4.0 * p.c / (n * n * q * q);
}

// dz[i, k] = g·Σ_j [w_zz(i, j)·(z[i, k] − z[j, k]) + w_zp(i, j)·(z[i, k] − p[j, k])].
@compute @workgroup_size($WG)
fn mmd_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * $WGu;
    if (e >= p.n * p.d) { return; }
    let i = e / p.d;
    let k = e % p.d;
    let zi = z[e];
    var s = 0.0;
    for (var j = 0u; j < p.n; j++) {
        s += weights[i * p.n + j] * (zi - z[j * p.d + k]) + weights[p.n * p.n + i * p.n + j] * (zi - prior[j * p.d + k]);
    }
    dz[e] = dloss[0] * s;
}

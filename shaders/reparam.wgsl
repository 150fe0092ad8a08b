// reparameterisation: z = μ + ε·exp(½·logσ²), ε ~ N(0, 1) drawn here, on the GPU.
//
// ε comes from Philox4x32-10 (Salmon et al. 2011), a counter-based generator: the four
// words for counter (i, stream, step_lo, step_hi) under key (seed_lo, seed_hi) are a pure
// function of those numbers, so a run is reproducible and no generator state is stored.
// Each invocation turns one Philox block into four normals by Box–Muller and writes
// elements 4i … 4i+3. `first_block` shifts the counter: a replica that holds rows r·n …
// of a batch split over several processes draws exactly those rows' numbers.

struct Params {
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
    stream: u32,
    step_lo: u32,
    step_hi: u32,
    first_block: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> mu: array<f32>;
@group(0) @binding(2) var<storage, read> logvar: array<f32>;
@group(0) @binding(3) var<storage, read_write> z: array<f32>;
@group(0) @binding(4) var<storage, read_write> eps: array<f32>;
@group(0) @binding(5) var<storage, read> dz: array<f32>;
@group(0) @binding(6) var<storage, read_write> dmu: array<f32>;
@group(0) @binding(7) var<storage, read_write> dlogvar: array<f32>;

// (hi, lo) of the 64-bit product a·b; WGSL has no 32×32→64 multiply.
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let ll = a_lo * b_lo;
    let hl = a_hi * b_lo;
    let lh = a_lo * b_hi;
    let hh = a_hi * b_hi;
    let cross = (ll >> 16u) + (hl & 0xffffu) + lh;
    let hi = hh + (hl >> 16u) + (cross >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var round = 0u; round < 10u; round++) {
        let p0 = mulhilo(0xD2511F53u, c.x);
        let p1 = mulhilo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
        k += vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

// Two normals from two words: u1 ∈ (0, 1] (never 0, so the log is finite), u2 ∈ [0, 1),
// each from the top 24 bits, exact in f32. The angle 2π·u2 is taken as θ + π with
// θ ∈ [−π, π): WGSL bounds cos and sin (2^-11 absolute) only on [−π, π], and Chromium's
// compiler on SwiftShader is measurably looser outside it.
fn box_muller(x: u32, y: u32) -> vec2<f32> {
    let u1 = (f32(x >> 8u) + 1.0) * (1.0 / 16777216.0);
    let u2 = f32(y >> 8u) * (1.0 / 16777216.0);
    let r = sqrt(-2.0 * log(u1));
    let theta = 6.283185307179586 * u2 - 3.141592653589793;
    return vec2<f32>(-r * cos(theta), -r * sin(theta));
}

fn normals(block: u32) -> vec4<f32> {
    let bits = philox4x32_10(vec4<u32>(block + p.first_block, p.stream, p.step_lo, p.step_hi), vec2<u32>(p.seed_lo, p.seed_hi));
    return vec4<f32>(box_muller(bits.x, bits.y), box_muller(bits.z, bits.w));
}

fn block_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * $WGu;
}

@compute @workgroup_size($WG)
fn reparam_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let block = block_index(gid, nwg);
    if (block * 4u >= p.n) { return; }
    let e = normals(block);
    for (var j = 0u; j < 4u; j++) {
        let i = block * 4u + j;
        if (i < p.n) {
            eps[i] = e[j];
            z[i] = mu[i] + e[j] * exp(0.5 * logvar[i]);
        }
    }
}

// dμ = dz;  dlogσ² = dz · ε · ½·exp(½·logσ²)
@compute @workgroup_size($WG)
fn reparam_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * $WGu;
    if (i >= p.n) { return; }
    dmu[i] = dz[i];
    dlogvar[i] = dz[i] * eps[i] * 0.5 * exp(0.5 * logvar[i]);
}

// eps = ε: plain standard normals (the prior samples z_p of a VAE-GAN step). Its loop
// mirrors reparam_forward's without sharing a function: a function that touches z, μ and
// logσ² would put them in this entry point's (automatic) binding layout.
@compute @workgroup_size($WG)
fn randn(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let block = block_index(gid, nwg);
    if (block * 4u >= p.n) { return; }
    let e = normals(block);
    for (var j = 0u; j < 4u; j++) {
        let i = block * 4u + j;
        if (i < p.n) {
            eps[i] = e[j];
        }
    }
}

//! Twins of `kernels::reparam`: the same Philox4x32-10 bits, Box–Muller in f64.

use crate::types::RngKey;

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (counter, key);
    for _ in 0..10 {
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

pub fn box_muller(x: u32, y: u32) -> (f64, f64) {
    let u1 = ((x >> 8) as f64 + 1.0) / 16_777_216.0;
    let u2 = (y >> 8) as f64 / 16_777_216.0;
    let r = (-2.0 * u1.ln()).sqrt();
    // The kernel's form: 2π·u2 = θ + π, θ ∈ [−π, π).
    let theta = std::f64::consts::TAU * u2 - std::f64::consts::PI;
    (-r * theta.cos(), -r * theta.sin())
}

/// The n standard normals the GPU draws for `key`.
pub fn normals(n: usize, key: RngKey) -> Vec<f64> {
    normals_from(n, key, 0)
}

/// The n standard normals the GPU draws for `key` from Philox block `first_block` on.
pub fn normals_from(n: usize, key: RngKey, first_block: u32) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 3);
    for block in first_block..first_block + n.div_ceil(4) as u32 {
        let counter = [block, key.stream, key.step as u32, (key.step >> 32) as u32];
        let bits = philox4x32_10(counter, [key.seed as u32, (key.seed >> 32) as u32]);
        let (a, b) = box_muller(bits[0], bits[1]);
        let (c, d) = box_muller(bits[2], bits[3]);
        out.extend([a, b, c, d]);
    }
    out.truncate(n);
    out
}

/// (z, ε) with z = μ + ε·exp(½·logσ²).
pub fn reparam_forward(key: RngKey, mu: &[f64], logvar: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let eps = normals(mu.len(), key);
    let z = mu.iter().zip(logvar).zip(&eps).map(|((m, lv), e)| m + e * (0.5 * lv).exp()).collect();
    (z, eps)
}

/// (dμ, dlogσ²).
pub fn reparam_backward(logvar: &[f64], eps: &[f64], dz: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let dlv = dz.iter().zip(eps).zip(logvar).map(|((g, e), lv)| g * e * 0.5 * (0.5 * lv).exp()).collect();
    (dz.to_vec(), dlv)
}

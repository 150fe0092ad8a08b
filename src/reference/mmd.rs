//! Twins of `kernels::mmd`, in f64, with the WGSL's formulas and summation order.

fn row(x: &[f64], i: usize, d: usize) -> &[f64] {
    &x[i * d..(i + 1) * d]
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Row i's share of MMD²: a·Σ_{j≠i} (k(z_i, z_j) + k(p_i, p_j)) − (2/n²)·Σ_j k(z_i, p_j).
pub fn mmd_rows(n: usize, d: usize, z: &[f64], prior: &[f64], c: f64) -> Vec<f64> {
    let k = |a: &[f64], b: &[f64]| c / (c + dist2(a, b));
    let (nf, a) = (n as f64, 1.0 / (n as f64 * (n as f64 - 1.0)));
    (0..n)
        .map(|i| {
            let mut s = 0.0;
            for j in 0..n {
                if j != i {
                    s += a * (k(row(z, i, d), row(z, j, d)) + k(row(prior, i, d), row(prior, j, d)));
                }
                s -= 2.0 / (nf * nf) * k(row(z, i, d), row(prior, j, d));
            }
            s
        })
        .collect()
}

/// MMD²(z, prior): the sum of the row shares.
pub fn mmd(n: usize, d: usize, z: &[f64], prior: &[f64], c: f64) -> f64 {
    super::reduce::sum(&mmd_rows(n, d, z, prior, c))
}

/// dz = dloss·∂MMD²/∂z.
pub fn mmd_backward(n: usize, d: usize, z: &[f64], prior: &[f64], c: f64, dloss: f64) -> Vec<f64> {
    let (nf, a) = (n as f64, 1.0 / (n as f64 * (n as f64 - 1.0)));
    let mut dz = vec![0.0; n * d];
    for i in 0..n {
        for j in 0..n {
            let w_zz = if i == j {
                0.0
            } else {
                let q = c + dist2(row(z, i, d), row(z, j, d));
                -4.0 * a * c / (q * q)
            };
            let q = c + dist2(row(z, i, d), row(prior, j, d));
            let w_zp = 4.0 * c / (nf * nf * q * q);
            for k in 0..d {
                dz[i * d + k] += dloss * (w_zz * (z[i * d + k] - z[j * d + k]) + w_zp * (z[i * d + k] - prior[j * d + k]));
            }
        }
    }
    dz
}

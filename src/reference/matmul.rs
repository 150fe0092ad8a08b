//! Twin of `kernels::matmul`.

use super::{elementwise::activate, Act, Trans};

/// C[M,N] = act(op(A)·op(B) + bias), row-major; A is M×K (K×M for TN), B is K×N (N×K for NT).
#[allow(clippy::too_many_arguments)]
pub fn matmul(m: usize, n: usize, k: usize, trans: Trans, a: &[f64], b: &[f64], bias: Option<&[f64]>, act: Act) -> Vec<f64> {
    let at = |r: usize, kk: usize| if trans == Trans::TN { a[kk * m + r] } else { a[r * k + kk] };
    let bt = |kk: usize, c: usize| if trans == Trans::NT { b[c * k + kk] } else { b[kk * n + c] };
    let mut out = vec![0.0; m * n];
    for r in 0..m {
        for c in 0..n {
            let mut s = 0.0;
            for kk in 0..k {
                s += at(r, kk) * bt(kk, c);
            }
            if let Some(bias) = bias {
                s += bias[c];
            }
            out[r * n + c] = activate(act, s);
        }
    }
    out
}

//! Twin of `kernels::adam`.

use crate::types::AdamParams;

/// One Adam step in place.
pub fn adam(hp: &AdamParams, grad: &[f64], param: &mut [f64], m: &mut [f64], v: &mut [f64]) {
    let (b1, b2) = (hp.beta1 as f64, hp.beta2 as f64);
    let (bc1, bc2) = hp.bias_corrections();
    for i in 0..param.len() {
        let g = grad[i] * hp.grad_scale as f64;
        m[i] = b1 * m[i] + (1.0 - b1) * g;
        v[i] = b2 * v[i] + (1.0 - b2) * g * g;
        let update = (m[i] / bc1) / ((v[i] / bc2).sqrt() + hp.eps as f64) + hp.weight_decay as f64 * param[i];
        param[i] -= hp.lr as f64 * update;
    }
}

//! Twin of `kernels::rmsprop`.

use crate::types::RmsPropParams;

/// One RMSProp step in place.
pub fn rmsprop(hp: &RmsPropParams, grad: &[f64], param: &mut [f64], v: &mut [f64]) {
    let rho = hp.rho as f64;
    for i in 0..param.len() {
        let g = grad[i] * hp.grad_scale as f64 + hp.weight_decay as f64 * param[i];
        v[i] = rho * v[i] + (1.0 - rho) * g * g;
        param[i] -= hp.lr as f64 * g / (v[i].sqrt() + hp.eps as f64);
    }
}

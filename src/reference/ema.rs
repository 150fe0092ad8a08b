//! Twin of `kernels::ema`.

/// One update of the moving average in place: avg ← avg + (1 − decay)·(param − avg).
pub fn ema(decay: f32, param: &[f64], avg: &mut [f64]) {
    let keep = decay as f64;
    for (a, p) in avg.iter_mut().zip(param) {
        *a += (1.0 - keep) * (p - *a);
    }
}

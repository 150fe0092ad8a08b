//! Twins of `kernels::pool`: the maximum of each channel over an image's positions (NHWC
//! rows), the first position of the maximum winning ties.

/// The first position of the maximum of channel `c` in row `r`.
fn argmax(x: &[f64], r: usize, positions: usize, channels: usize, c: usize) -> usize {
    let at = |q: usize| x[(r * positions + q) * channels + c];
    (1..positions).fold(0, |best, q| if at(q) > at(best) { q } else { best })
}

/// y[r, c] = max over positions q of x[r, q·channels + c].
pub fn position_max(x: &[f64], rows: usize, positions: usize, channels: usize) -> Vec<f64> {
    (0..rows * channels)
        .map(|i| {
            let (r, c) = (i / channels, i % channels);
            x[(r * positions + argmax(x, r, positions, channels, c)) * channels + c]
        })
        .collect()
}

/// dx: dy[r, c] at each channel's maximum, 0 elsewhere.
pub fn position_max_backward(x: &[f64], dy: &[f64], rows: usize, positions: usize, channels: usize) -> Vec<f64> {
    let mut dx = vec![0.0; x.len()];
    for r in 0..rows {
        for c in 0..channels {
            dx[(r * positions + argmax(x, r, positions, channels, c)) * channels + c] = dy[r * channels + c];
        }
    }
    dx
}

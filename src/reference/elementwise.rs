//! Twins of `kernels::elementwise`.

use super::Act;

pub fn activate(act: Act, x: f64) -> f64 {
    match act {
        Act::None => x,
        Act::Relu => x.max(0.0),
        Act::LeakyRelu(a) => {
            if x > 0.0 {
                x
            } else {
                a as f64 * x
            }
        }
        Act::Tanh => x.tanh(),
        Act::Sigmoid => 1.0 / (1.0 + (-x).exp()),
    }
}

/// y = act(x).
pub fn activation_forward(act: Act, x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| activate(act, v)).collect()
}

/// dx = dy·act'; `saved` is x for ReLU/LeakyReLU, y for tanh/sigmoid (as on the GPU).
pub fn activation_backward(act: Act, saved: &[f64], dy: &[f64]) -> Vec<f64> {
    saved
        .iter()
        .zip(dy)
        .map(|(&s, &g)| match act {
            Act::None => g,
            Act::Relu => {
                if s > 0.0 {
                    g
                } else {
                    0.0
                }
            }
            Act::LeakyRelu(a) => {
                if s > 0.0 {
                    g
                } else {
                    a as f64 * g
                }
            }
            Act::Tanh => g * (1.0 - s * s),
            Act::Sigmoid => g * s * (1.0 - s),
        })
        .collect()
}

pub fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

pub fn axpy(x: &[f64], alpha: f64, y: &[f64]) -> Vec<f64> {
    x.iter().zip(y).map(|(a, b)| a + alpha * b).collect()
}

/// `out` with `n` elements of `x` from `src_offset` written at `dst_offset`.
pub fn copy(x: &[f64], src_offset: usize, out: &mut [f64], dst_offset: usize, n: usize) {
    out[dst_offset..dst_offset + n].copy_from_slice(&x[src_offset..src_offset + n]);
}

pub fn scale(alpha: f64, x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| alpha * v).collect()
}

pub fn fill(value: f64, n: usize) -> Vec<f64> {
    vec![value; n]
}

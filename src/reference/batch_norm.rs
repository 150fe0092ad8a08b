//! CPU twins of the batch_norm family, in f64, over a rows×channels matrix, with the fused
//! activation as the elementwise twins compute it.

use super::elementwise::{activate, activation_backward};
use crate::types::Act;

/// Batch statistics of each channel: (mean, 1/√(biased var + ε), unbiased var).
pub fn batch_norm_stats(rows: usize, channels: usize, eps: f64, x: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; channels];
    let mut invstd = vec![0.0; channels];
    let mut unbiased = vec![0.0; channels];
    for c in 0..channels {
        let m = (0..rows).map(|r| x[r * channels + c]).sum::<f64>() / rows as f64;
        let q: f64 = (0..rows).map(|r| (x[r * channels + c] - m).powi(2)).sum();
        mean[c] = m;
        invstd[c] = 1.0 / (q / rows as f64 + eps).sqrt();
        unbiased[c] = if rows > 1 { q / (rows - 1) as f64 } else { q };
    }
    (mean, invstd, unbiased)
}

/// Training forward, y = act(γ·x̂ + β): (y, mean, invstd, new running mean, new running var).
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn batch_norm_forward(
    rows: usize,
    channels: usize,
    eps: f64,
    momentum: f64,
    act: Act,
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    running: (&[f64], &[f64]),
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mean, invstd, unbiased) = batch_norm_stats(rows, channels, eps, x);
    let y =
        (0..rows * channels).map(|i| activate(act, gamma[i % channels] * (x[i] - mean[i % channels]) * invstd[i % channels] + beta[i % channels])).collect();
    let run_mean = (0..channels).map(|c| (1.0 - momentum) * running.0[c] + momentum * mean[c]).collect();
    let run_var = (0..channels).map(|c| (1.0 - momentum) * running.1[c] + momentum * unbiased[c]).collect();
    (y, mean, invstd, run_mean, run_var)
}

/// Evaluation forward with the running statistics, y = act(γ·(x − mean)/√(var + ε) + β).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward_eval(channels: usize, eps: f64, act: Act, x: &[f64], gamma: &[f64], beta: &[f64], run_mean: &[f64], run_var: &[f64]) -> Vec<f64> {
    let c = |i: usize| i % channels;
    x.iter().enumerate().map(|(i, &v)| activate(act, gamma[c(i)] * (v - run_mean[c(i)]) / (run_var[c(i)] + eps).sqrt() + beta[c(i)])).collect()
}

/// Backward of the training forward: (dx, dγ, dβ). With an activation, `y` is the forward's
/// output, through which act' is read (as on the GPU); without one it is not needed.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    rows: usize,
    channels: usize,
    eps: f64,
    act: Act,
    x: &[f64],
    y: Option<&[f64]>,
    dy: &[f64],
    gamma: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let dpre = match (act, y) {
        (Act::None, _) => dy.to_vec(),
        (_, Some(y)) => activation_backward(act, y, dy),
        (_, None) => panic!("batch_norm_backward through {}: the forward's output y is needed", act.name()),
    };
    let dy = &dpre[..];
    let (mean, invstd, _) = batch_norm_stats(rows, channels, eps, x);
    let xhat = |i: usize| (x[i] - mean[i % channels]) * invstd[i % channels];
    let mut dgamma = vec![0.0; channels];
    let mut dbeta = vec![0.0; channels];
    for i in 0..rows * channels {
        dbeta[i % channels] += dy[i];
        dgamma[i % channels] += dy[i] * xhat(i);
    }
    let r = rows as f64;
    let dx = (0..rows * channels)
        .map(|i| {
            let c = i % channels;
            gamma[c] * invstd[c] / r * (r * dy[i] - dbeta[c] - xhat(i) * dgamma[c])
        })
        .collect();
    (dx, dgamma, dbeta)
}

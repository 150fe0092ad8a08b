//! Twins of `kernels::kl`.

pub fn kl_per_sample(batch: usize, latent: usize, mu: &[f64], logvar: &[f64]) -> Vec<f64> {
    (0..batch)
        .map(|r| {
            -0.5 * (0..latent)
                .map(|j| {
                    let (m, lv) = (mu[r * latent + j], logvar[r * latent + j]);
                    1.0 + lv - m * m - lv.exp()
                })
                .sum::<f64>()
        })
        .collect()
}

pub fn kl_mean(batch: usize, latent: usize, mu: &[f64], logvar: &[f64]) -> f64 {
    super::reduce::mean(&kl_per_sample(batch, latent, mu, logvar))
}

/// (dμ, dlogσ²) of scale·Σ kl.
pub fn kl_backward(mu: &[f64], logvar: &[f64], dloss: f64, scale: f64) -> (Vec<f64>, Vec<f64>) {
    let g = dloss * scale;
    (mu.iter().map(|m| g * m).collect(), logvar.iter().map(|lv| g * 0.5 * (lv.exp() - 1.0)).collect())
}

//! Fitting the mixture prior (`model::prior`) to a trained model: the encoder reads every
//! training image, one z ~ q(z|x) is drawn per image, and EM fits the mixture to those codes.

use crate::data::Dataset;
use crate::gpu::Gpu;
use crate::model::prior::{Fit, GaussianMixture};
use crate::model::ModelConfig;

use super::eval::Encoder;
use super::{Result, TrainError};

/// Fits a `k`-component mixture to codes of `set` under the weights `values` gives (a
/// checkpoint's), at most `iterations` EM rounds; `seed` draws the codes and starts EM.
pub fn fit_prior(
    gpu: &Gpu,
    config: &ModelConfig,
    values: &dyn Fn(&str) -> Option<Vec<f32>>,
    set: &Dataset,
    k: usize,
    iterations: usize,
    seed: u64,
) -> Result<(GaussianMixture, Fit)> {
    use rand::{Rng, SeedableRng};
    let mut encoder = Encoder::new(gpu, config, 500.min(set.count.max(1)))?;
    encoder.load(values)?;
    let (mu, logvar) = encoder.encode_all(set)?;
    // One z per image from its posterior, as training decodes them: the mixture should cover
    // where the decoder was trained, not only the posterior means.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let z: Vec<f32> = mu.iter().zip(&logvar).map(|(&m, &lv)| m + (0.5 * lv).exp() * rng.sample::<f32, _>(rand_distr::StandardNormal)).collect();
    GaussianMixture::fit(&z, config.latent, k, iterations, seed).map_err(TrainError::Invalid)
}

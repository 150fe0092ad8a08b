//! Re-estimating the decoder's batch-norm running statistics on prior samples: after
//! training, the decoder's running statistics describe the batches it was trained on (with
//! `decoder_bn_stats = "both"`, posterior and prior passes mixed), while sampling decodes
//! z ~ N(0, I) alone. Decoding many batches of prior codes with batch norm in train mode
//! moves each running mean and variance toward the prior batches' own (PyTorch's rule:
//! momentum 0.1, unbiased variance), as re-estimating BN statistics after training does.
//! `vaegan restat` does it to a checkpoint; a run with `optim.decoder_ema` does it to its
//! averaged weights at every checkpoint (their statistics were never tracked in training).
//! A conditioned decoder reads labels beside its codes: each prior batch takes rows drawn
//! uniformly from the training labels, as training decodes its prior codes with the batch's
//! own labels — the same distribution.

use crate::data::Attributes;
use crate::gpu::Gpu;
use crate::graph::gpu_exec::NamedTensors;
use crate::graph::{ExecOptions, GpuExecutor};
use crate::model::{build_decode_in, ModelConfig, Phase};

use super::eval::fixed_normals;
use super::{Result, TrainError};

/// Batches of prior codes a run re-estimates its averaged decoder's statistics on: with
/// momentum 0.1, 0.9⁵⁰ = 0.5 % of the starting statistics (the last weights') remain.
pub const AVERAGE_BATCHES: usize = 50;

/// The decoder's running statistics (name, [rows, cols], values) after `batches` batches of
/// `batch` codes z ~ N(0, I) from `seed`, starting from the weights and statistics `values`
/// gives (a checkpoint's). A conditioned model needs `labels` (the training set's) to draw
/// each code's labels from. A decoder without batch norm is refused.
#[cfg(not(target_arch = "wasm32"))]
pub fn decoder_stats_on_prior(
    gpu: &Gpu,
    config: &ModelConfig,
    values: &dyn Fn(&str) -> Option<Vec<f32>>,
    labels: Option<&Attributes>,
    batches: usize,
    batch: usize,
    seed: u64,
) -> Result<NamedTensors> {
    let stats = pollster::block_on(prior_statistics(gpu, config, values, labels, batches, batch, seed))?;
    if stats.is_empty() {
        return Err(TrainError::Invalid("this decoder has no batch norm: it has no running statistics to re-estimate".into()));
    }
    Ok(stats)
}

/// As `decoder_stats_on_prior`, without blocking (the browser's way); a decoder without
/// batch norm gives no statistics.
pub async fn prior_statistics(
    gpu: &Gpu,
    config: &ModelConfig,
    values: &dyn Fn(&str) -> Option<Vec<f32>>,
    labels: Option<&Attributes>,
    batches: usize,
    batch: usize,
    seed: u64,
) -> Result<NamedTensors> {
    if batches == 0 || batch < 2 {
        return Err(TrainError::Invalid(format!("{batches} batches of {batch}: need at least 1 batch of at least 2 codes (a batch variance)")));
    }
    let k = config.conditions.len();
    let labels = match labels {
        _ if k == 0 => None,
        Some(t) if t.len() == k && t.values.len() >= k => Some(t),
        Some(t) => {
            return Err(TrainError::Invalid(format!(
                "the model is conditioned on {k} labels but {} has {} labels for {} images: the prior codes' labels are drawn from the training labels",
                t.source,
                t.len(),
                t.values.len() / t.len().max(1)
            )))
        }
        None => {
            return Err(TrainError::Invalid(format!(
                "the model is conditioned on {k} labels: re-estimating its decoder's statistics on prior codes needs the training labels to draw the codes' labels from"
            )))
        }
    };
    let graph = build_decode_in(config, batch, Phase::Train)?;
    if graph.graph.state.is_empty() {
        return Ok(vec![]);
    }
    let mut exec = GpuExecutor::new(gpu, graph.graph.clone(), ExecOptions::default())?;
    exec.load_params(&[0], values, None)?;
    exec.load_state(values)?;
    for b in 0..batches {
        exec.set_input(graph.z, &fixed_normals(batch, config.latent, seed.wrapping_add(b as u64)))?;
        if let (Some(table), Some(y)) = (labels, graph.y) {
            exec.set_input(y, &drawn_rows(table, batch, seed.wrapping_add(b as u64)))?;
        }
        exec.step()?;
    }
    Ok(exec.read_state_async().await?)
}

/// `n` rows of `table` (0/1 per label) drawn uniformly with replacement from `seed`: the
/// labels of a batch of prior codes.
pub fn drawn_rows(table: &Attributes, n: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let k = table.len();
    let count = table.values.len() / k;
    // Another stream than the codes' (`fixed_normals` seeds with the same number).
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x6c61_6265_6c73_0000);
    (0..n)
        .flat_map(|_| {
            let r = rng.random_range(0..count);
            table.values[r * k..(r + 1) * k].iter().map(|&v| v as f32)
        })
        .collect()
}

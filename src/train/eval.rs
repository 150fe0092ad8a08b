//! Evaluation and generation from a model's weights: test-set negative ELBO (BCE summed
//! over pixels + KL, in nats per image, the measure of the classic PyTorch VAE example),
//! pixel error of reconstructions, the discriminator's accuracy on real vs generated
//! images, reconstructions and decoded samples.

use crate::data::Dataset;
use crate::gpu::Gpu;
use crate::graph::{ExecOptions, GpuExecutor};
use crate::model::{build_decode, build_eval, DecodeGraph, EvalGraph, ModelConfig};
use crate::types::Scaling;

use super::Result;

#[derive(Clone, Copy, Debug, Default)]
pub struct EvalResult {
    /// Test images evaluated (whole batches of the evaluation batch size).
    pub images: usize,
    /// Σ over pixels of BCE(Dec(z), x), mean per image (nats); None for tanh outputs.
    pub bce: Option<f64>,
    /// KL(q(z|x) ‖ N(0, I)) per image (nats).
    pub kl: f64,
    /// bce + kl: the negative ELBO, nats per image.
    pub nelbo: Option<f64>,
    /// Mean squared error per pixel of Dec(μ), in the data's range.
    pub mse: f64,
    /// Share of real test images with D(x) > 0 and of generated ones with D(x_p) < 0.
    pub d_accuracy: Option<f64>,
}

pub struct Evaluator<'g> {
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    gpu: &'g Gpu,
    pub config: ModelConfig,
    graph: EvalGraph,
    exec: GpuExecutor<'g>,
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    scaling: Scaling,
}

/// A conditioned model's labels for every image of `set` (count × labels, 0 or 1), from
/// the set's labels file or IDX classes (`super::conditioning_labels`); None for an
/// unconditioned model.
pub fn label_rows(config: &ModelConfig, set: &Dataset) -> Result<Option<Vec<f32>>> {
    Ok(super::conditioning_labels(config, set)?.map(|t| t.values.iter().map(|&v| v as f32).collect()))
}

/// Rows `range` of `rows` (k values each), the last repeated cyclically from the range's
/// start until `batch` rows (a short batch padded as its images are).
fn padded_rows(rows: &[f32], k: usize, range: std::ops::Range<usize>, batch: usize) -> Vec<f32> {
    let n = range.len();
    if n == 0 {
        return vec![0.0; batch * k];
    }
    (0..batch).flat_map(|b| rows[(range.start + b % n) * k..(range.start + b % n + 1) * k].iter().copied()).collect()
}

/// Scales u8 images to the model's range on the host.
pub fn scale_images(set: &Dataset, range: std::ops::Range<usize>, s: Scaling) -> Vec<f32> {
    set.images[range.start * set.dim()..range.end * set.dim()].iter().map(|&b| b as f32 * s.scale + s.offset).collect()
}

impl<'g> Evaluator<'g> {
    /// An evaluator at `batch`, or at the largest batch whose tensors fit one storage
    /// binding when `batch` does not (`batch()` says which).
    pub fn new(gpu: &'g Gpu, config: &ModelConfig, batch: usize, seed: u64) -> Result<Self> {
        let mut graph = build_eval(config, batch)?;
        let (limit, largest) = (gpu.binding_limit(), graph.graph.largest_tensor_bytes());
        if largest > limit {
            // Every tensor grows with the batch: the largest batch that fits, by proportion.
            let fits = ((batch as u64 * limit) / largest).max(1) as usize;
            log::info!("evaluation batch {batch} needs a {largest}-byte tensor, over the binding limit of {limit}: evaluating in batches of {fits}");
            graph = build_eval(config, fits)?;
        }
        let exec = GpuExecutor::new(gpu, graph.graph.clone(), ExecOptions { seed, reuse: true, update: None, ..Default::default() })?;
        Ok(Evaluator { gpu, config: config.clone(), graph, exec, scaling: super::scaling_for(config.output_act) })
    }

    pub fn batch(&self) -> usize {
        self.graph.batch
    }

    /// Loads every weight and running statistic by name (a checkpoint's, or a trainer's).
    pub fn load(&self, values: &dyn Fn(&str) -> Option<Vec<f32>>) -> Result<()> {
        let groups: Vec<usize> = (0..self.exec.graph.groups.len()).collect();
        self.exec.load_params(&groups, values, None)?;
        self.exec.load_state(values)?;
        Ok(())
    }

    /// Runs over the test set in whole batches (the remainder of fewer than one batch is left out).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn evaluate(&mut self, test: &Dataset) -> Result<EvalResult> {
        let b = self.graph.batch;
        let batches = test.count / b;
        if batches == 0 {
            return Err(super::TrainError::Invalid(format!("the test set has {} images, fewer than the evaluation batch of {b}", test.count)));
        }
        let (mut bce, mut kl, mut mse, mut correct) = (0.0f64, 0.0f64, 0.0f64, 0usize);
        let labels = label_rows(&self.config, test)?;
        for i in 0..batches {
            self.exec.set_input(self.graph.x, &scale_images(test, i * b..(i + 1) * b, self.scaling))?;
            if let (Some(y), Some(rows)) = (self.graph.y, &labels) {
                self.exec.set_input(y, &padded_rows(rows, self.config.conditions.len(), i * b..(i + 1) * b, b))?;
            }
            self.exec.step_with(true, None)?;
            let out = self.exec.wait_outputs()?;
            let (_, values) = out.last().ok_or_else(|| super::TrainError::Invalid("no evaluation output".into()))?;
            let get = |n: &str| values.iter().find(|(k, _)| k == n).map(|(_, v)| *v as f64).unwrap_or(f64::NAN);
            bce += get("bce");
            kl += get("kl");
            mse += get("mse");
            if let Some(logits) = self.graph.logits {
                let l = self.exec.read(logits)?;
                correct += l[..b].iter().filter(|&&v| v > 0.0).count() + l[b..].iter().filter(|&&v| v < 0.0).count();
            }
        }
        let n = batches as f64;
        let bce = (self.config.output_act == crate::types::Act::Sigmoid).then_some(bce / n);
        Ok(EvalResult {
            images: batches * b,
            bce,
            kl: kl / n,
            nelbo: bce.map(|x| x + kl / n),
            mse: mse / n,
            d_accuracy: self.graph.logits.map(|_| correct as f64 / (2 * batches * b) as f64),
        })
    }

    /// Dec(μ(x)) for the first `n` images of `set` (n ≤ the evaluation batch), in [0, 1].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn reconstruct(&mut self, set: &Dataset, n: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let n = n.min(self.graph.batch).min(set.count);
        let labels = label_rows(&self.config, set)?;
        let rec = self.reconstruct_range(set, labels.as_deref(), 0..n)?;
        Ok((self.to_unit(&scale_images(set, 0..n, self.scaling)), rec))
    }

    /// Dec(μ(x)) for every image of `set`, in [0, 1], a batch at a time.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn reconstruct_all(&mut self, set: &Dataset) -> Result<Vec<f32>> {
        let b = self.graph.batch;
        let mut out = Vec::with_capacity(set.count * set.dim());
        // A conditioned model's labels, as floats once for the whole set.
        let labels = label_rows(&self.config, set)?;
        for start in (0..set.count).step_by(b) {
            out.extend(self.reconstruct_range(set, labels.as_deref(), start..(start + b).min(set.count))?);
        }
        Ok(out)
    }

    /// Dec(μ(x)) for the images in `range` (at most one batch; a short one is padded by
    /// repeating its images, whose reconstructions are dropped), in [0, 1]; `labels` are
    /// `label_rows` of `set` for a conditioned model.
    #[cfg(not(target_arch = "wasm32"))]
    fn reconstruct_range(&mut self, set: &Dataset, labels: Option<&[f32]>, range: std::ops::Range<usize>) -> Result<Vec<f32>> {
        let (b, n) = (self.graph.batch, range.len());
        if let (Some(y), Some(rows)) = (self.graph.y, labels) {
            self.exec.set_input(y, &padded_rows(rows, self.config.conditions.len(), range.clone(), b))?;
        }
        let first = scale_images(set, range, self.scaling);
        let mut x = first.clone();
        while x.len() < b * set.dim() {
            let take = (b * set.dim() - x.len()).min(first.len());
            x.extend_from_slice(&first[..take]);
        }
        self.exec.set_input(self.graph.x, &x)?;
        self.exec.step()?;
        self.gpu.wait()?;
        let rec = self.exec.read(self.graph.reconstruction)?;
        Ok(self.to_unit(&rec[..n * set.dim()]))
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn to_unit(&self, v: &[f32]) -> Vec<f32> {
        v.iter().map(|&p| (p - self.scaling.offset) / (255.0 * self.scaling.scale)).collect()
    }
}

/// The decoder alone, for samples and latent walks.
pub struct Decoder<'g> {
    graph: DecodeGraph,
    exec: GpuExecutor<'g>,
    scaling: Scaling,
    /// Labels per code (batch × labels) for a conditioned model (`condition`).
    labels: Option<Vec<f32>>,
    pub batch: usize,
}

impl<'g> Decoder<'g> {
    pub fn new(gpu: &'g Gpu, config: &ModelConfig, batch: usize) -> Result<Self> {
        let graph = build_decode(config, batch)?;
        let exec = GpuExecutor::new(gpu, graph.graph.clone(), ExecOptions::default())?;
        Ok(Decoder { graph, exec, scaling: super::scaling_for(config.output_act), labels: None, batch })
    }

    /// The labels a conditioned model decodes with: `rows` (m × labels, 0 or 1 each; m ≥ 1),
    /// code b of every batch taking row b mod m. Refused for an unconditioned model.
    pub fn condition(&mut self, rows: &[f32]) -> Result<()> {
        let Some(y) = self.graph.y else {
            return Err(super::TrainError::Invalid("the model is not conditioned: it decodes codes alone".into()));
        };
        let k = self.graph.graph.shape(y).cols;
        if rows.is_empty() || !rows.len().is_multiple_of(k) {
            return Err(super::TrainError::Invalid(format!("{} label values do not make rows of the model's {k} labels", rows.len())));
        }
        let m = rows.len() / k;
        self.labels = Some(padded_rows(rows, k, 0..m, self.batch));
        Ok(())
    }

    /// Whether the model decodes with labels (`condition`).
    pub fn conditioned(&self) -> bool {
        self.graph.y.is_some()
    }

    pub fn load(&self, values: &dyn Fn(&str) -> Option<Vec<f32>>) -> Result<()> {
        self.exec.load_params(&[0], values, None)?;
        self.exec.load_state(values)?;
        Ok(())
    }

    /// Images in [0, 1] for latent codes z (batch × latent).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn decode(&mut self, z: &[f32]) -> Result<Vec<f32>> {
        pollster::block_on(self.decode_async(z))
    }

    /// `decode` without blocking (the browser's way).
    pub async fn decode_async(&mut self, z: &[f32]) -> Result<Vec<f32>> {
        let out = self.decode_raw_async(z).await?;
        Ok(self.scale_to_unit(&out))
    }

    /// The decoder's raw output mapped to [0, 1] (for pictures).
    pub fn scale_to_unit(&self, raw: &[f32]) -> Vec<f32> {
        raw.iter().map(|&p| (p - self.scaling.offset) / (255.0 * self.scaling.scale)).collect()
    }

    /// The decoder's own output for z (batch × h·w·c, NHWC, in the output activation's
    /// range): what an exported decoder must reproduce.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn decode_raw(&mut self, z: &[f32]) -> Result<Vec<f32>> {
        pollster::block_on(self.decode_raw_async(z))
    }

    pub async fn decode_raw_async(&mut self, z: &[f32]) -> Result<Vec<f32>> {
        if let Some(y) = self.graph.y {
            let labels = self.labels.as_ref().ok_or_else(|| super::TrainError::Invalid("a conditioned model decodes with labels: none were given".into()))?;
            self.exec.set_input(y, labels)?;
        }
        self.exec.set_input(self.graph.z, z)?;
        self.exec.step()?;
        Ok(self.exec.read_async(self.graph.images).await?)
    }
}

/// Labels for `n` samples of a model conditioned on `k` labels: sample i has label i mod k
/// alone (a grid with k columns shows a column per label).
pub fn cycled_labels(n: usize, k: usize) -> Vec<f32> {
    (0..n).flat_map(|i| (0..k).map(move |j| if j == i % k { 1.0 } else { 0.0 })).collect()
}

/// `n` × `latent` standard normals from `seed` (on the host: fixed codes for sample grids).
pub fn fixed_normals(n: usize, latent: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n * latent).map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal)).collect()
}

/// The encoder alone (batch norm in eval mode): (μ, logσ²) of images.
#[cfg(not(target_arch = "wasm32"))]
pub struct Encoder<'g> {
    graph: crate::model::EncodeGraph,
    exec: GpuExecutor<'g>,
    scaling: Scaling,
    latent: usize,
    pub batch: usize,
}

#[cfg(not(target_arch = "wasm32"))]
impl<'g> Encoder<'g> {
    pub fn new(gpu: &'g Gpu, config: &ModelConfig, batch: usize) -> Result<Self> {
        let graph = crate::model::build_encode(config, batch)?;
        let exec = GpuExecutor::new(gpu, graph.graph.clone(), ExecOptions::default())?;
        Ok(Encoder { graph, exec, scaling: super::scaling_for(config.output_act), latent: config.latent, batch })
    }

    pub fn load(&self, values: &dyn Fn(&str) -> Option<Vec<f32>>) -> Result<()> {
        self.exec.load_params(&[0], values, None)?;
        self.exec.load_state(values)?;
        Ok(())
    }

    /// (μ, logσ²) of every image of `set` (count × latent each), a batch at a time; a short
    /// last batch is padded with its own images, whose codes are dropped.
    pub fn encode_all(&mut self, set: &Dataset) -> Result<(Vec<f32>, Vec<f32>)> {
        let (b, d) = (self.batch, set.dim());
        let (mut mu, mut logvar) = (Vec::new(), Vec::new());
        for start in (0..set.count).step_by(b) {
            let end = (start + b).min(set.count);
            let first = scale_images(set, start..end, self.scaling);
            let mut x = first.clone();
            while x.len() < b * d {
                let take = (b * d - x.len()).min(first.len());
                x.extend_from_slice(&first[..take]);
            }
            self.exec.set_input(self.graph.x, &x)?;
            self.exec.step()?;
            let latent = self.latent;
            mu.extend_from_slice(&self.exec.read(self.graph.mu)?[..(end - start) * latent]);
            logvar.extend_from_slice(&self.exec.read(self.graph.logvar)?[..(end - start) * latent]);
        }
        Ok((mu, logvar))
    }
}

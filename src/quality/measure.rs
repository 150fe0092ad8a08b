//! A checkpoint's sample quality in the classifier's eyes: the Fréchet distance of its
//! samples from the prior and of its reconstructions, each against the test images, with
//! the floor (training against test images) and the samples' class coverage.
//!
//! The two distances tell apart the two ways samples fail. Reconstructions decode codes the
//! encoder gives; samples decode z ~ N(0, I). A decoder that draws well but whose encoder
//! leaves parts of the prior uncovered ("holes": codes no image maps near) has a small
//! reconstruction distance and a large sample distance; a decoder that draws badly has both
//! large.

use super::classifier::{coverage, Classifier, ClassifierWeights, Coverage};
use super::frechet::{frechet_distance, FeatureStats};
use crate::checkpoint::Checkpoint;
use crate::data::Split;
use crate::gpu::Gpu;
use crate::model::GaussianMixture;
use crate::train::eval::{fixed_normals, scale_images, Decoder, Evaluator};
use crate::train::{Result, TrainError};
use crate::types::Scaling;

#[derive(Clone, Debug)]
pub struct Quality {
    /// Samples decoded from z ~ N(0, I).
    pub samples: usize,
    pub test_images: usize,
    /// Training images compared for the floor (as many as the test images, or fewer).
    pub train_images: usize,
    /// Samples against test images.
    pub frechet_samples: f64,
    /// Dec(μ(x)) of the test images against the test images.
    pub frechet_reconstructions: f64,
    /// Training against test images: what a perfect model would score.
    pub frechet_floor: f64,
    pub coverage: Coverage,
}

/// Decodes `n` samples whose codes `seed` draws (from `prior`, or N(0, I) without one),
/// reconstructs the test set through `evaluator` (a checkpoint's, loaded), and compares
/// both with the test images.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    gpu: &Gpu,
    ck: &Checkpoint,
    evaluator: &mut Evaluator,
    split: &Split,
    n: usize,
    seed: u64,
    prior: Option<&GaussianMixture>,
    weights: &ClassifierWeights,
) -> Result<Quality> {
    if n < 2 {
        return Err(TrainError::Invalid("sample quality needs at least 2 samples for a covariance".into()));
    }
    if split.test.count < 2 || split.train.count < 2 {
        return Err(TrainError::Invalid(format!(
            "sample quality compares feature covariances: it needs at least 2 test and 2 training images ({} has {} and {})",
            split.test.source, split.test.count, split.train.count
        )));
    }
    if split.test.dim() != super::classifier::WIDTHS[0] {
        return Err(TrainError::Invalid(format!(
            "sample quality uses the MNIST classifier (28x28 grey images); this model's images are {}x{}x{}",
            split.test.height, split.test.width, split.test.channels
        )));
    }
    let c = &ck.config.model;
    let mut clf = Classifier::new(gpu, 500, 0)?;
    clf.load(weights)?;
    let stats = |clf: &mut Classifier, images: &[f32]| -> Result<(FeatureStats, Vec<f32>)> {
        let r = clf.read(images)?;
        Ok((FeatureStats::from_rows(&r.features, clf.feature_dim()), r.probs))
    };

    let batch = 500.min(n);
    let mut decoder = Decoder::new(gpu, c, batch)?;
    decoder.load(&|name| ck.tensor(name))?;
    // A conditioned model's samples take the test images' labels, in order.
    if let Some(rows) = crate::train::eval::label_rows(c, &split.test)? {
        decoder.condition(&rows)?;
    }
    let count = n.div_ceil(batch) * batch;
    let z = match prior {
        Some(p) => p.sample(count, seed),
        None => fixed_normals(count, c.latent, seed),
    };
    let mut samples = Vec::with_capacity(n.div_ceil(batch) * batch * c.input);
    for chunk in z.chunks(batch * c.latent) {
        samples.extend(decoder.decode(chunk)?);
    }
    samples.truncate(n * c.input);
    let (generated, probs) = stats(&mut clf, &samples)?;

    let (test, _) = stats(&mut clf, &scale_images(&split.test, 0..split.test.count, Scaling::UNIT))?;
    let (reconstructions, _) = stats(&mut clf, &evaluator.reconstruct_all(&split.test)?)?;
    let train_images = split.train.count.min(split.test.count);
    let (train, _) = stats(&mut clf, &scale_images(&split.train, 0..train_images, Scaling::UNIT))?;
    Ok(Quality {
        samples: n,
        test_images: split.test.count,
        train_images,
        frechet_samples: frechet_distance(&generated, &test),
        frechet_reconstructions: frechet_distance(&reconstructions, &test),
        frechet_floor: frechet_distance(&train, &test),
        coverage: coverage(&probs),
    })
}

/// The Fréchet distance of `n` samples from N(0, I) — the same codes every epoch — to the
/// test images, in the classifier's features, at each epoch's end of `vaegan train`
/// (`train::run::SampleQuality`): a user sees sample quality move, not only losses. The
/// test images' statistics are taken once. A Fréchet distance estimated from fewer samples
/// is biased upwards: compare the epoch figures with each other, and `eval --quality`'s
/// (10,000 samples by default) with its own.
pub struct EpochFrechet<'g> {
    classifier: Classifier<'g>,
    decoder: Decoder<'g>,
    z: Vec<f32>,
    n: usize,
    batch: usize,
    latent: usize,
    input: usize,
    test: FeatureStats,
}

impl<'g> EpochFrechet<'g> {
    /// For a model of `c` whose test set is `test`; refused unless the images are MNIST's
    /// shape (28×28 grey, what the classifier reads) and `n` ≥ 2.
    pub fn new(gpu: &'g Gpu, c: &crate::model::ModelConfig, test: &crate::data::Dataset, weights: &ClassifierWeights, n: usize, seed: u64) -> Result<Self> {
        let test_images = test;
        if n < 2 || test.count < 2 {
            return Err(TrainError::Invalid(format!("sample quality needs at least 2 samples and 2 test images for a covariance ({n} and {})", test.count)));
        }
        if test.dim() != super::classifier::WIDTHS[0] || test.channels != 1 {
            return Err(TrainError::Invalid(format!(
                "sample quality uses the MNIST classifier (28x28 grey images); these images are {}x{}x{}",
                test.height, test.width, test.channels
            )));
        }
        let mut classifier = Classifier::new(gpu, 500, 0)?;
        classifier.load(weights)?;
        let r = classifier.read(&scale_images(test, 0..test.count, Scaling::UNIT))?;
        let test = FeatureStats::from_rows(&r.features, classifier.feature_dim());
        let batch = 500.min(n);
        let mut decoder = Decoder::new(gpu, c, batch)?;
        if let Some(rows) = crate::train::eval::label_rows(c, test_images)? {
            decoder.condition(&rows)?;
        }
        let z = fixed_normals(n.div_ceil(batch) * batch, c.latent, seed);
        Ok(EpochFrechet { classifier, decoder, z, n, batch, latent: c.latent, input: c.input, test })
    }
}

impl crate::train::run::SampleQuality for EpochFrechet<'_> {
    fn frechet_samples(&mut self, params: &dyn Fn(&str) -> Option<Vec<f32>>) -> Result<f64> {
        self.decoder.load(params)?;
        let mut samples = Vec::with_capacity(self.z.len() / self.latent * self.input);
        for chunk in self.z.chunks(self.batch * self.latent) {
            samples.extend(self.decoder.decode(chunk)?);
        }
        samples.truncate(self.n * self.input);
        let r = self.classifier.read(&samples)?;
        Ok(frechet_distance(&FeatureStats::from_rows(&r.features, self.classifier.feature_dim()), &self.test))
    }
}

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
    let c = &ck.config.model;
    let mut clf = Classifier::with(gpu, weights, 500)?;
    clf.check_shape(split.test.shape(), "this model's images")?;
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
        coverage: coverage(&weights.spec, &probs),
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
    /// For a model of `c` whose test set is `test`; refused unless the images are of the
    /// shape the classifier reads and `n` ≥ 2.
    pub fn new(gpu: &'g Gpu, c: &crate::model::ModelConfig, test: &crate::data::Dataset, weights: &ClassifierWeights, n: usize, seed: u64) -> Result<Self> {
        let test_images = test;
        if n < 2 || test.count < 2 {
            return Err(TrainError::Invalid(format!("sample quality needs at least 2 samples and 2 test images for a covariance ({n} and {})", test.count)));
        }
        let mut classifier = Classifier::with(gpu, weights, 500)?;
        classifier.check_shape(test.shape(), "these images")?;
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

/// How a classifier reads edited images (`vaegan edit --measure`): the share that now have
/// the target — every added attribute's class, and not a removed category's (a removed
/// binary attribute: its "not" class) — the same share of the plain reconstructions, the
/// share of edits whose untouched factors stay the image's own, and of reconstructions
/// read with all their own labels.
#[derive(Clone, Debug)]
pub struct EditScore {
    pub images: usize,
    /// The target, as printed: "7", "red", "not circle", joined by " and ".
    pub target: String,
    pub after: f64,
    pub before: f64,
    /// The heads no edit touches, and the share of edits that keep them all; None when the
    /// edit touches every head (MNIST's one).
    pub kept: Option<(Vec<String>, f64)>,
    pub own: f64,
}

/// What an edit should make the classifier read: per head, nothing, a class the edited
/// images must have (an added attribute; a removed binary one's "not" class), or a class
/// they must not have (a removed category with no added one in its head).
#[derive(Clone, Debug)]
pub struct EditTargets {
    heads: Vec<Option<(usize, bool)>>,
}

impl EditTargets {
    /// The targets of `--add` / `--remove` (attribute names of the labels) for a classifier
    /// of `spec`; refused where the classifier has no head for a name, or two added names
    /// are classes of one head.
    pub fn new(spec: &super::classifier::Spec, add: &[String], remove: &[String]) -> Result<Self> {
        let locate = |name: &str| -> Result<(usize, usize)> {
            spec.heads.iter().enumerate().find_map(|(h, head)| head.attributes.iter().position(|a| a == name).map(|c| (h, c))).ok_or_else(|| {
                TrainError::Invalid(format!(
                    "the classifier predicts no attribute {name:?} (its heads: {})",
                    spec.heads.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })
        };
        let mut heads: Vec<Option<(usize, bool)>> = vec![None; spec.heads.len()];
        for name in add {
            let (h, c) = locate(name)?;
            let class = if spec.heads[h].binary { 1 } else { c };
            if let Some((other, true)) = heads[h] {
                if other != class {
                    return Err(TrainError::Invalid(format!(
                        "--add {} and {}: both are classes of {:?}, and an image has one",
                        spec.heads[h].classes[other], spec.heads[h].classes[class], spec.heads[h].name
                    )));
                }
            }
            heads[h] = Some((class, true));
        }
        for name in remove {
            let (h, c) = locate(name)?;
            match (spec.heads[h].binary, heads[h]) {
                (true, _) => heads[h] = Some((0, true)),
                (false, Some((_, true))) => {}
                (false, _) => heads[h] = Some((c, false)),
            }
        }
        Ok(EditTargets { heads })
    }
}

/// Scores edits of the images whose attributes are `table` (their labels, in order):
/// `reconstructions` and `edited` (n × the classifier's input, in [0, 1]).
pub fn score_edits(clf: &mut Classifier, targets: &EditTargets, table: &crate::data::Attributes, reconstructions: &[f32], edited: &[f32]) -> Result<EditScore> {
    let spec = clf.spec.clone();
    let targets = &targets.heads;
    if targets.len() != spec.heads.len() {
        return Err(TrainError::Invalid("edit targets made for another classifier".into()));
    }
    let n = table.count();
    let truth = spec.classes_of(table)?;
    let k = spec.heads.len();
    let read = |clf: &mut Classifier, images: &[f32]| -> Result<Vec<usize>> {
        let r = clf.read(images)?;
        Ok(clf.predictions(&r.probs))
    };
    let (edits, recons) = (read(clf, edited)?, read(clf, reconstructions)?);
    let hits = |p: &[usize]| targets.iter().enumerate().all(|(h, t)| t.is_none_or(|(c, is)| (p[h] == c) == is));
    let share = |count: usize| count as f64 / n.max(1) as f64;
    let after = share((0..n).filter(|&i| hits(&edits[i * k..(i + 1) * k])).count());
    let before = share((0..n).filter(|&i| hits(&recons[i * k..(i + 1) * k])).count());
    let untouched: Vec<usize> = (0..k).filter(|&h| targets[h].is_none()).collect();
    let kept = (!untouched.is_empty()).then(|| {
        let names = untouched.iter().map(|&h| spec.heads[h].name.clone()).collect();
        (names, share((0..n).filter(|&i| untouched.iter().all(|&h| edits[i * k + h] == truth[i * k + h])).count()))
    });
    let own = share((0..n).filter(|&i| recons[i * k..(i + 1) * k] == truth[i * k..(i + 1) * k]).count());
    let target = targets
        .iter()
        .enumerate()
        .filter_map(|(h, t)| t.map(|(c, is)| format!("{}{}", if is { "" } else { "not " }, spec.heads[h].classes[c])))
        .collect::<Vec<_>>()
        .join(" and ");
    Ok(EditScore { images: n, target, after, before, kept, own })
}

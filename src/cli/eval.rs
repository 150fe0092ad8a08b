//! `vaegan eval`: test-set negative ELBO, reconstruction error and discriminator accuracy
//! of a checkpoint; with --quality, Fréchet distance and class coverage of its samples.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use super::common::{checkpoint_evaluator, load_checkpoint, CheckpointArgs};
use super::DeviceArgs;
use crate::checkpoint::Checkpoint;
use crate::data::Split;
use crate::train::eval::{fixed_normals, Decoder};

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    ck: CheckpointArgs,
    #[arg(long)]
    data: Option<PathBuf>,
    /// Test images per batch (the test set is evaluated in whole batches).
    #[arg(long, default_value_t = 250)]
    batch: usize,
    #[arg(long)]
    test_limit: Option<usize>,
    /// Also measure sample quality: Fréchet distance in the MNIST classifier's features,
    /// class coverage and confidence of generated samples.
    #[arg(long)]
    quality: bool,
    /// Samples to generate for --quality.
    #[arg(short, long, default_value_t = 10_000)]
    n: usize,
    /// Classifier weights for --quality (default: the one shipped in datasets/classifier).
    #[arg(long)]
    classifier: Option<PathBuf>,
    /// Seed of the generated samples' latent codes.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

pub fn run(device: &DeviceArgs, args: &EvalArgs) -> anyhow::Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let ck = load_checkpoint(&args.ck.checkpoint)?;
    let c = &ck.config.model;
    let gpu = device.open()?;
    let (split, path, mut ev) = checkpoint_evaluator(&gpu, &ck, args.data.as_deref(), args.batch, args.test_limit)?;
    let r = ev.evaluate(&split.test)?;
    println!("checkpoint: step {}, epoch {}, {:?} {}", ck.step, ck.epoch, c.mode, path.display());
    if let Some(n) = r.nelbo {
        println!("test negative ELBO: {n:.2} nats/image (BCE {:.2} + KL {:.2})", r.bce.unwrap_or(f64::NAN), r.kl);
    }
    println!("reconstruction pixel MSE: {:.5}", r.mse);
    if let Some(a) = r.d_accuracy {
        println!("discriminator accuracy (real vs generated): {:.1}%", 100.0 * a);
    }
    println!("images evaluated: {}", r.images);
    if args.quality {
        quality(&gpu, &ck, &split, args)?;
    }
    Ok(())
}

/// Generates `args.n` samples and compares them with the test set in the classifier's eyes.
fn quality(gpu: &crate::gpu::Gpu, ck: &Checkpoint, split: &Split, args: &EvalArgs) -> anyhow::Result<()> {
    use crate::quality::classifier::{coverage, Classifier, ClassifierWeights};
    use crate::quality::{frechet_distance, FeatureStats};
    if args.n < 2 {
        bail!("-n must be at least 2 for a covariance");
    }
    let path = args.classifier.clone().unwrap_or_else(crate::quality::classifier::default_path);
    let weights = ClassifierWeights::load(&path).map_err(anyhow::Error::msg)?;
    if split.test.dim() != 784 {
        bail!("--quality uses the MNIST classifier (28x28 images); this model's images are {}x{}", split.test.height, split.test.width);
    }
    let mut clf = Classifier::new(gpu, 500, 0)?;
    clf.load(&weights)?;
    let dim = clf.feature_dim();
    let c = &ck.config.model;
    let batch = 500.min(args.n);
    let mut decoder = Decoder::new(gpu, c, batch)?;
    decoder.load(&|name| ck.tensor(name))?;
    let z = fixed_normals(args.n.div_ceil(batch) * batch, c.latent, args.seed);
    let mut samples = Vec::with_capacity(args.n * c.input);
    for chunk in z.chunks(batch * c.latent) {
        samples.extend(decoder.decode(chunk)?);
    }
    samples.truncate(args.n * c.input);
    let generated = clf.read(&samples)?;
    let test_images = crate::train::eval::scale_images(&split.test, 0..split.test.count, crate::types::Scaling::UNIT);
    let test = clf.read(&test_images)?;
    let n_train = split.train.count.min(split.test.count);
    let train_images = crate::train::eval::scale_images(&split.train, 0..n_train, crate::types::Scaling::UNIT);
    let train = clf.read(&train_images)?;
    let (g_stats, t_stats, tr_stats) =
        (FeatureStats::from_rows(&generated.features, dim), FeatureStats::from_rows(&test.features, dim), FeatureStats::from_rows(&train.features, dim));
    let cov = coverage(&generated.probs);
    println!("sample quality (classifier {}, test accuracy {:.2}%):", path.display(), 100.0 * weights.test_accuracy);
    println!("  Fréchet distance, {} samples vs {} test images: {:.3}", args.n, split.test.count, frechet_distance(&g_stats, &t_stats));
    println!("  Fréchet distance, {n_train} training vs test images (the floor): {:.3}", frechet_distance(&tr_stats, &t_stats));
    println!("  predicted classes 0-9: {:?}", cov.histogram);
    println!("  class entropy: {:.3} nats (uniform: {:.3})", cov.entropy, (10f64).ln());
    println!("  samples classified with confidence >= 0.9: {:.1}%", 100.0 * cov.confident);
    Ok(())
}

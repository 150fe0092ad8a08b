//! `vaegan eval`: test-set negative ELBO, reconstruction error and discriminator accuracy
//! of a checkpoint; with --quality, Fréchet distance and class coverage of its samples.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use super::common::{checkpoint_evaluator, load_checkpoint, load_prior, CheckpointArgs};
use super::DeviceArgs;
use crate::checkpoint::Checkpoint;
use crate::data::Split;
use crate::model::GaussianMixture;
use crate::train::eval::Evaluator;

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
    /// Also measure sample quality: Fréchet distance in a classifier's features (MNIST's for
    /// 28x28 grey models, the shapes set's for 32x32 RGB), class coverage and confidence of
    /// generated samples.
    #[arg(long)]
    quality: bool,
    /// Samples to generate for --quality.
    #[arg(short, long, default_value_t = 10_000)]
    n: usize,
    /// Classifier weights for --quality (default: the one shipped in datasets/classifier for
    /// the model's image shape).
    #[arg(long)]
    classifier: Option<PathBuf>,
    /// Seed of the generated samples' latent codes.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// For --quality: draw z from the Gaussian mixture `vaegan prior` fitted (its default
    /// file, or FILE) instead of N(0, I).
    #[arg(long, num_args = 0..=1, value_name = "FILE")]
    prior: Option<Option<PathBuf>>,
}

pub fn run(device: &DeviceArgs, args: &EvalArgs) -> anyhow::Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let ck = load_checkpoint(&args.ck)?;
    let c = &ck.config.model;
    if args.prior.is_some() && !args.quality {
        bail!("--prior chooses where --quality's samples come from: add --quality");
    }
    let prior = load_prior(&args.prior, &args.ck.checkpoint, &ck)?;
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
        quality(&gpu, &ck, &mut ev, &split, prior.as_ref(), args)?;
    }
    Ok(())
}

/// Sample quality: what `quality::measure` finds, printed.
fn quality(gpu: &crate::gpu::Gpu, ck: &Checkpoint, ev: &mut Evaluator, split: &Split, prior: Option<&GaussianMixture>, args: &EvalArgs) -> anyhow::Result<()> {
    use crate::quality::ClassifierWeights;
    let path = args.classifier.clone().unwrap_or_else(|| crate::quality::classifier::default_for(ck.config.model.image));
    let weights = ClassifierWeights::load(&path).map_err(anyhow::Error::msg)?;
    let q = crate::quality::measure(gpu, ck, ev, split, args.n, args.seed, prior, &weights)?;
    println!("sample quality (classifier {}, test accuracy {:.2}%):", path.display(), 100.0 * weights.test_accuracy);
    let from = if prior.is_some() { "z from the fitted prior" } else { "z ~ N(0, I)" };
    println!("  Fréchet distance, {} samples ({from}) vs {} test images: {:.3}", q.samples, q.test_images, q.frechet_samples);
    println!("  Fréchet distance, reconstructions Dec(μ) of the test images vs the test images: {:.3}", q.frechet_reconstructions);
    println!("  Fréchet distance, {} training vs test images (the floor): {:.3}", q.train_images, q.frechet_floor);
    print!("{}", coverage_lines(&weights.spec, &q.coverage));
    Ok(())
}

/// The samples' coverage as the classifier sees it: MNIST's per-digit counts and class
/// entropy, or for a classifier of several heads the combinations covered, their entropy
/// and the confident share per head.
fn coverage_lines(spec: &crate::quality::classifier::Spec, c: &crate::quality::classifier::Coverage) -> String {
    let mut out = String::new();
    if let [head] = &spec.heads[..] {
        // MNIST's digits read as a range, as they always have: "predicted classes 0-9".
        let numbered = head.classes.iter().enumerate().all(|(i, c)| *c == i.to_string());
        let classes = if numbered { format!("0-{}", head.classes.len() - 1) } else { head.classes.join(" ") };
        out += &format!("  predicted classes {classes}: {:?}\n", c.histogram);
        out += &format!("  class entropy: {:.3} nats (uniform: {:.3})\n", c.entropy, c.uniform_entropy);
        out += &format!("  samples classified with confidence >= 0.9: {:.1}%\n", 100.0 * c.confident);
        return out;
    }
    let names: Vec<&str> = spec.heads.iter().map(|h| h.name.as_str()).collect();
    if !c.histogram.is_empty() {
        let covered = c.histogram.iter().filter(|&&h| h > 0).count();
        out += &format!("  {} combinations covered: {covered} of {}\n", names.join(" × "), c.histogram.len());
        out += &format!(
            "  combination entropy: {:.3} nats (uniform: {:.3}; {:.3} of it)\n",
            c.entropy,
            c.uniform_entropy,
            c.entropy / c.uniform_entropy.max(f64::MIN_POSITIVE)
        );
    }
    for (h, share) in spec.heads.iter().zip(&c.head_confident) {
        out += &format!("  samples whose {} is classified with confidence >= 0.9: {:.1}%\n", h.name, 100.0 * share);
    }
    out += &format!("  samples confident (>= 0.9) on every head: {:.1}%\n", 100.0 * c.confident);
    out
}

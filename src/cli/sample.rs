//! `vaegan sample`: decode samples (or latent walks) from a checkpoint into a PNG grid.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use super::common::{load_checkpoint, load_prior, CheckpointArgs};
use super::DeviceArgs;
use crate::pictures;
use crate::train::eval::{fixed_normals, Decoder};

#[derive(Args, Debug)]
pub struct SampleArgs {
    #[command(flatten)]
    ck: CheckpointArgs,
    /// Number of samples.
    #[arg(short, long, default_value_t = 64)]
    n: usize,
    /// Instead of independent samples: rows of walks between two random latent points.
    #[arg(long)]
    walk: bool,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Draw z from the Gaussian mixture `vaegan prior` fitted (its default file, or FILE)
    /// instead of N(0, I).
    #[arg(long, num_args = 0..=1, value_name = "FILE")]
    prior: Option<Option<PathBuf>>,
    #[arg(long, default_value = "samples.png")]
    out: PathBuf,
    /// Also write the latent codes and the decoder's raw output as safetensors: "z"
    /// [n, latent] and "images" [n, channels, height, width] in the output activation's
    /// range (the layout of an exported decoder's output, to compare with it), and for a
    /// conditioned model the "labels" [n, labels] they were decoded with.
    #[arg(long)]
    raw: Option<PathBuf>,
    /// A conditioned model's labels for every sample, comma-separated names (`7`, or
    /// `red,square`): those labels 1, the others 0. Without it a conditioned model's
    /// sample i takes label i mod (number of labels) alone, a column per label.
    #[arg(long, value_name = "LABELS")]
    condition: Option<String>,
    /// For a model conditioned on MNIST's digits: how often the MNIST classifier reads each
    /// sample as the digit it was conditioned on (per digit, and overall), and the paper's
    /// attribute similarity (mean cosine of the requested one-hot label and the classifier's
    /// probabilities). With --condition, one digit.
    #[arg(long)]
    measure: bool,
}

/// The table `--measure` prints: per requested digit, the samples and the share the
/// classifier reads as it; overall; and the mean cosine similarity of each requested one-hot
/// label with the classifier's probabilities (Larsen et al.'s attribute similarity).
fn conditioned_scores(labels: &[f32], probs: &[f32], classes: usize) -> String {
    use crate::quality::classifier::argmax;
    let (mut count, mut hits) = (vec![0usize; classes], vec![0usize; classes]);
    let mut cosine = 0.0f64;
    let rows = labels.chunks(classes).zip(probs.chunks(classes));
    for (want, p) in rows.clone() {
        let target = argmax(want);
        count[target] += 1;
        hits[target] += usize::from(argmax(p) == target);
        let norm = p.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        cosine += p[target] as f64 / norm.max(1e-12);
    }
    let n = rows.count();
    let mut out = String::from("digit  samples  classified as it\n");
    for d in (0..classes).filter(|&d| count[d] > 0) {
        out += &format!("{d:>5}  {:>7}  {:>16.1} %\n", count[d], 100.0 * hits[d] as f64 / count[d] as f64);
    }
    out += &format!("  all  {n:>7}  {:>16.1} %\n", 100.0 * hits.iter().sum::<usize>() as f64 / n as f64);
    out += &format!("attribute similarity (mean cosine of the requested label and the classifier's probabilities): {:.3}\n", cosine / n as f64);
    out
}

/// The labels of `n` samples of a model conditioned on `names`: `condition`'s labels for
/// every sample, or sample i the label i mod k alone. Names are checked against the model's.
fn sample_labels(names: &[String], condition: Option<&str>, n: usize) -> anyhow::Result<Vec<f32>> {
    let k = names.len();
    match condition {
        Some(list) => {
            let mut row = vec![0.0; k];
            for want in list.split(',').map(str::trim) {
                let Some(i) = names.iter().position(|name| name == want) else {
                    bail!("--condition {want:?}: the model's labels are {}", names.join(", "));
                };
                row[i] = 1.0;
            }
            Ok(row.repeat(n))
        }
        None => Ok(crate::train::eval::cycled_labels(n, k)),
    }
}

pub fn run(device: &DeviceArgs, args: &SampleArgs) -> anyhow::Result<()> {
    if args.n == 0 {
        bail!("-n must be at least 1");
    }
    let ck = load_checkpoint(&args.ck.checkpoint)?;
    let c = &ck.config.model;
    let prior = load_prior(&args.prior, &args.ck.checkpoint, &ck)?;
    let gpu = device.open()?;
    let draw = |n: usize, seed: u64| match &prior {
        Some(p) => p.sample(n, seed),
        None => fixed_normals(n, c.latent, seed),
    };
    let names = &c.conditions;
    if names.is_empty() && args.condition.is_some() {
        bail!("--condition: the model in {} is not conditioned (train with --conditioned)", args.ck.checkpoint.display());
    }
    let digits: Vec<String> = (0..crate::quality::classifier::CLASSES).map(|d| d.to_string()).collect();
    if args.measure {
        if c.image != [28, 28, 1] || *names != digits {
            bail!(
                "--measure scores samples with the MNIST classifier: it needs a 28×28 grey model conditioned on the digits 0–9 (train --conditioned on MNIST)"
            );
        }
        if args.condition.as_deref().is_some_and(|d| !digits.iter().any(|x| x == d)) {
            bail!("--measure needs --condition to name one digit (0–9), or no --condition (every digit in turn)");
        }
    }
    let (z, n, cols) = if args.walk {
        // Rows of 10 steps from a to b: z = (1 − t)·a + t·b.
        let rows = args.n.div_ceil(10).max(1);
        let ends = draw(2 * rows, args.seed);
        let mut z = vec![];
        for r in 0..rows {
            let (a, b) = (&ends[2 * r * c.latent..(2 * r + 1) * c.latent], &ends[(2 * r + 1) * c.latent..(2 * r + 2) * c.latent]);
            for k in 0..10 {
                let t = k as f32 / 9.0;
                z.extend(a.iter().zip(b).map(|(x, y)| (1.0 - t) * x + t * y));
            }
        }
        (z, rows * 10, 10)
    } else {
        // A conditioned model without --condition: a column per label (up to 16 labels).
        let cols = if !names.is_empty() && args.condition.is_none() && names.len() <= 16 { names.len() } else { (args.n as f64).sqrt().ceil() as usize };
        (draw(args.n, args.seed), args.n, cols)
    };
    let mut decoder = Decoder::new(&gpu, c, n)?;
    decoder.load(&|name| ck.tensor(name))?;
    let labels = if names.is_empty() { vec![] } else { sample_labels(names, args.condition.as_deref(), n)? };
    if !names.is_empty() {
        decoder.condition(&labels)?;
    }
    let raw = decoder.decode_raw(&z)?;
    let images = decoder.scale_to_unit(&raw);
    pictures::grid_png(&args.out, &images, n, c.image, cols)?;
    if let Some(path) = &args.raw {
        let [h, w, ch] = c.image;
        let nchw = crate::export::nhwc_to_nchw(&raw, n, ch, h, w);
        let mut entries = vec![("z", vec![n, c.latent], &z), ("images", vec![n, ch, h, w], &nchw)];
        if !names.is_empty() {
            entries.push(("labels", vec![n, names.len()], &labels));
        }
        let views = entries
            .iter()
            .map(|(name, dims, v)| {
                Ok((name.to_string(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, dims.clone(), bytemuck::cast_slice(v))?))
            })
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
        let bytes = safetensors::tensor::serialize(views, None)?;
        super::export::write_atomically(path, &bytes)?;
        eprintln!("wrote {} (z and the raw images)", path.display());
    }
    let from = if prior.is_some() { "the fitted prior" } else { "N(0, I)" };
    let labelled = match (names.is_empty(), &args.condition) {
        (true, _) => String::new(),
        (false, Some(list)) => format!(", labels {list}"),
        (false, None) => format!(", sample i labelled {}[i mod {}]", "{".to_string() + &names.join(", ") + "}", names.len()),
    };
    eprintln!("wrote {} ({n} {}, z from {from}{labelled})", args.out.display(), if args.walk { "images: latent walks" } else { "samples" });
    if args.measure {
        use crate::quality::classifier::{self, Classifier, ClassifierWeights};
        let weights = ClassifierWeights::load(&classifier::default_path()).map_err(anyhow::Error::msg)?;
        let mut cl = Classifier::with(&gpu, &weights, 250.min(n))?;
        let probs = cl.read(&images)?.probs;
        print!("{}", conditioned_scores(&labels, &probs, classifier::CLASSES));
    }
    Ok(())
}

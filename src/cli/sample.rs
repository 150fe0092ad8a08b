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
    /// range (the layout of an exported decoder's output, to compare with it).
    #[arg(long)]
    raw: Option<PathBuf>,
    /// A conditioned model's labels for every sample, comma-separated names (`7`, or
    /// `red,square`): those labels 1, the others 0. Without it a conditioned model's
    /// sample i takes label i mod (number of labels) alone, a column per label.
    #[arg(long, value_name = "LABELS")]
    condition: Option<String>,
    /// With --condition naming one MNIST digit: the share of the samples the MNIST
    /// classifier reads as that digit.
    #[arg(long)]
    measure: bool,
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
        None => Ok((0..n).flat_map(|i| (0..k).map(move |j| if j == i % k { 1.0 } else { 0.0 })).collect()),
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
    if args.measure {
        match args.condition.as_deref().map(|d| d.parse::<usize>()) {
            Some(Ok(d)) if c.image == [28, 28, 1] && d < crate::quality::classifier::CLASSES => {}
            _ => bail!("--measure needs a 28×28 grey model and --condition naming one digit (0–9): the share of samples the MNIST classifier reads as it"),
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
    if !names.is_empty() {
        decoder.condition(&sample_labels(names, args.condition.as_deref(), n)?)?;
    }
    let raw = decoder.decode_raw(&z)?;
    let images = decoder.scale_to_unit(&raw);
    pictures::grid_png(&args.out, &images, n, c.image, cols)?;
    if let Some(path) = &args.raw {
        let [h, w, ch] = c.image;
        let nchw = crate::export::nhwc_to_nchw(&raw, n, ch, h, w);
        let entries = [("z", vec![n, c.latent], &z), ("images", vec![n, ch, h, w], &nchw)];
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
    let labels = match (names.is_empty(), &args.condition) {
        (true, _) => String::new(),
        (false, Some(list)) => format!(", labels {list}"),
        (false, None) => format!(", sample i labelled {}[i mod {}]", "{".to_string() + &names.join(", ") + "}", names.len()),
    };
    eprintln!("wrote {} ({n} {}, z from {from}{labels})", args.out.display(), if args.walk { "images: latent walks" } else { "samples" });
    if args.measure {
        use crate::quality::classifier::{self, argmax, Classifier, ClassifierWeights};
        let target: usize = args.condition.as_deref().unwrap_or_default().parse()?;
        let weights = ClassifierWeights::load(&classifier::default_path()).map_err(anyhow::Error::msg)?;
        let mut cl = Classifier::new(&gpu, 250.min(n), 1)?;
        cl.load(&weights)?;
        let probs = cl.read(&images)?.probs;
        let hits = probs.chunks(classifier::CLASSES).filter(|p| argmax(p) == target).count();
        println!("samples conditioned on {target}: {n}; classified as {target}: {:.1} %", 100.0 * hits as f64 / n as f64);
    }
    Ok(())
}

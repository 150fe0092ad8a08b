//! `vaegan sample`: decode samples (or latent walks) from a checkpoint into a PNG grid.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use super::common::{load_checkpoint, load_prior, CheckpointArgs};
use super::DeviceArgs;
use crate::pictures;
use crate::quality::conditioned::{self, ConditionScore, LabelMap};
use crate::quality::{Classifier, ClassifierWeights};
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
    /// For a conditioned model: how a classifier whose heads predict the model's labels
    /// (the shipped one for its image shape: MNIST's digits, the shapes set's factors; or
    /// --classifier) reads the samples — per factor, the share read as the class asked for;
    /// the share read with every class asked for; and Larsen et al.'s attribute similarity
    /// (mean cosine of the requested and the predicted attribute vectors), beside the same
    /// figure for the test images and their own labels. Without --condition the samples
    /// cycle through every combination of the factors (MNIST: every digit); with it, through
    /// those of the factors it leaves free.
    #[arg(long)]
    measure: bool,
    /// Classifier weights for --measure (default: the shipped one for the model's image shape).
    #[arg(long, requires = "measure")]
    classifier: Option<PathBuf>,
}

/// The table `--measure` prints: per conditioned factor, per requested class the samples
/// and the share read as it, then the factor overall; the share read with every requested
/// class (several factors); the attribute similarity of the test images (when they load)
/// and, last, of the samples.
fn conditioned_scores(score: &ConditionScore, test_similarity: Result<f64, String>) -> String {
    let mut out = String::new();
    for table in &score.heads {
        let (name, rows) = table;
        let width = rows.iter().map(|r| r.0.chars().count()).chain([name.chars().count(), 3]).max().unwrap_or(3);
        out += &format!("{name:>width$}  samples  read as it\n");
        for (class, asked, hit) in rows.iter().filter(|r| r.1 > 0) {
            out += &format!("{class:>width$}  {asked:>7}  {:>8.1} %\n", 100.0 * *hit as f64 / *asked as f64);
        }
        let asked: usize = rows.iter().map(|r| r.1).sum();
        out += &format!("{:>width$}  {asked:>7}  {:>8.1} %\n", "all", 100.0 * ConditionScore::head_share(table));
    }
    if score.heads.len() > 1 {
        out += &format!("every requested factor: {:.1} % of {} samples\n", 100.0 * score.all, score.samples);
    }
    match test_similarity {
        Ok(s) => out += &format!("attribute similarity of the test images with their own labels (the classifier's ceiling): {s:.3}\n"),
        Err(why) => out += &format!("attribute similarity of the test images: not measured ({why})\n"),
    }
    out += &format!("attribute similarity (mean cosine of the requested labels and the classifier's predicted attributes): {:.3}\n", score.similarity);
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
    let ck = load_checkpoint(&args.ck)?;
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
    // --measure: the classifier and what the model's labels mean to it, before any work.
    let measure = if args.measure {
        if names.is_empty() {
            bail!(
                "--measure scores a conditioned model's samples against their labels: the model in {} is not conditioned (train with --conditioned)",
                args.ck.checkpoint.display()
            );
        }
        if args.walk {
            bail!("--measure scores samples drawn with labels: leave out --walk");
        }
        let path = args.classifier.clone().unwrap_or_else(|| crate::quality::classifier::default_for(c.image));
        let weights = ClassifierWeights::load(&path).map_err(anyhow::Error::msg)?;
        if weights.spec.image != c.image {
            bail!("--measure: {} reads {:?} images, the model makes {:?} (--classifier names another)", path.display(), weights.spec.image, c.image);
        }
        let map = LabelMap::new(&weights.spec, names).map_err(|e| anyhow::anyhow!("--measure with {}: {e}", path.display()))?;
        let fixed: Vec<&str> = args.condition.as_deref().map(|l| l.split(',').map(str::trim).collect()).unwrap_or_default();
        let (labels, free) = map.combinations(names, &fixed, args.n).map_err(|e| anyhow::anyhow!("--condition {e}"))?;
        Some((weights, map, labels, free))
    } else {
        None
    };
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
        // A conditioned model without --condition: a column per label (up to 16 labels);
        // measured, a row per class of the slowest cycling factor (the shapes set: a row per
        // background, its shape × colour combinations across).
        let square = (args.n as f64).sqrt().ceil() as usize;
        let cols = match &measure {
            Some((_, _, _, free)) if free.len() > 1 => free[..free.len() - 1].iter().product::<usize>().min(32),
            Some((_, _, _, free)) if free.len() == 1 && free[0] <= 16 => free[0],
            Some(_) => square,
            None if !names.is_empty() && args.condition.is_none() && names.len() <= 16 => names.len(),
            None => square,
        };
        (draw(args.n, args.seed), args.n, cols)
    };
    let mut decoder = Decoder::new(&gpu, c, n)?;
    decoder.load(&|name| ck.tensor(name))?;
    let labels = match &measure {
        Some((_, _, labels, _)) => labels.clone(),
        None if names.is_empty() => vec![],
        None => sample_labels(names, args.condition.as_deref(), n)?,
    };
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
        say!("wrote {} (z and the raw images)", path.display());
    }
    let from = if prior.is_some() { "the fitted prior" } else { "N(0, I)" };
    let labelled = match (names.is_empty(), &args.condition) {
        (true, _) => String::new(),
        (false, condition) if measure.is_some() => {
            let (_, map, _, _) = measure.as_ref().expect("measuring");
            let heads: Vec<&str> = (0..map.spec.heads.len()).filter(|&h| map.conditioned(h)).map(|h| map.spec.heads[h].name.as_str()).collect();
            match condition {
                Some(list) => format!(", labels {list}, the other factors of {} cycling", heads.join(" × ")),
                None => format!(", labels cycling through the combinations of {}", heads.join(" × ")),
            }
        }
        (false, Some(list)) => format!(", labels {list}"),
        (false, None) => format!(", sample i labelled {}[i mod {}]", "{".to_string() + &names.join(", ") + "}", names.len()),
    };
    say!("wrote {} ({n} {}, z from {from}{labelled})", args.out.display(), if args.walk { "images: latent walks" } else { "samples" });
    if let Some((weights, map, _, _)) = &measure {
        let mut cl = Classifier::with(&gpu, weights, 250.min(n))?;
        let probs = cl.read(&images)?.probs;
        let test = test_similarity(&mut cl, &ck, map);
        print!("{}", conditioned_scores(&conditioned::score(map, &labels, &probs), test));
    }
    Ok(())
}

/// The attribute similarity of the checkpoint's test images with their own labels: what
/// the classifier reads from real images, the ceiling for samples. An error says why not.
fn test_similarity(cl: &mut Classifier, ck: &crate::checkpoint::Checkpoint, map: &LabelMap) -> Result<f64, String> {
    use super::common::{image_options, load_data, DataArgs};
    let image = image_options(ck.config.model.image, &DataArgs::default(), ck.crop).map_err(|e| e.to_string())?;
    let split = load_data(std::path::Path::new(&ck.data), image, ck.seed, None, None, &DataArgs::default(), crate::data::Labels::IfFound)
        .map_err(|e| format!("{e:#}"))?;
    let table = split.test.attribute_table().ok_or_else(|| format!("{} has no labels", ck.data))?;
    let names = &ck.config.model.conditions;
    let columns: Vec<usize> = names.iter().map(|n| table.find(n)).collect::<Result<_, _>>()?;
    let table = &table;
    let labels: Vec<f32> = (0..table.count()).flat_map(|i| columns.iter().map(move |&a| if table.has(i, a) { 1.0 } else { 0.0 })).collect();
    let images = crate::train::eval::scale_images(&split.test, 0..split.test.count, crate::types::Scaling::UNIT);
    let probs = cl.read(&images).map_err(|e| e.to_string())?.probs;
    Ok(conditioned::score(map, &labels, &probs).similarity)
}

//! `vaegan attributes`: visual attribute vectors of a checkpoint (mean code of the training
//! images with an attribute minus the mean of those without; `model::attributes`), and
//! `vaegan edit`: test images, their reconstructions, and the reconstructions with vectors
//! added or removed, as a grid like Larsen et al.'s figure; `--measure` scores the edits
//! with the shipped classifier for the model's images (MNIST's digits, the shapes set's factors).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;

use super::common::{at_least_one, image_options, load_checkpoint, load_data, CheckpointArgs, DataArgs};
use super::DeviceArgs;
use crate::checkpoint::Checkpoint;
use crate::data::{Labels, Split};
use crate::model::AttributeVectors;
use crate::pictures;
use crate::quality::classifier::{self, Classifier, ClassifierWeights};

#[derive(Args, Debug)]
pub struct AttributesArgs {
    #[command(flatten)]
    ck: CheckpointArgs,
    /// The data set (default: the one the checkpoint was trained on); its labelled training
    /// images are encoded.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The labels file of a folder of images: CelebA's list_attr_celeba.txt format, or a CSV
    /// with a `file` column (default: one inside the folder; IDX sets use their label files).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Where to write them (default: attributes.safetensors in the run folder, or
    /// <name>.attributes.safetensors beside a checkpoint file).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct EditArgs {
    #[command(flatten)]
    ck: CheckpointArgs,
    /// Attributes to add (comma-separated or repeated), by name: `--add 7`, `--add red`.
    #[arg(long, value_delimiter = ',')]
    add: Vec<String>,
    /// Attributes to remove.
    #[arg(long, value_delimiter = ',')]
    remove: Vec<String>,
    /// How much of each vector to add.
    #[arg(long, default_value_t = 1.0)]
    scale: f32,
    /// Test images in the grid: the first that lack every added attribute and have every
    /// removed one.
    #[arg(short, long, default_value_t = 8)]
    n: usize,
    /// The vectors (default: those `vaegan attributes` wrote for this checkpoint).
    #[arg(long)]
    vectors: Option<PathBuf>,
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Also score the edits of every such test image with the shipped classifier for the
    /// model's images (MNIST's digits for 28×28 grey, the shapes set's shape, colour and
    /// background for 32×32 RGB): the share now classified with the added attributes (and
    /// without the removed ones), and the share whose other factors stay their own.
    #[arg(long)]
    measure: bool,
    #[arg(long, default_value = "edit.png")]
    out: PathBuf,
}

/// A conditioned model's attributes are its labels: it is sampled with them
/// (`vaegan sample --condition`), not edited by vectors in its codes.
fn refuse_conditioned(ck: &Checkpoint, path: &Path) -> anyhow::Result<()> {
    if !ck.config.model.conditions.is_empty() {
        bail!(
            "the model in {} is conditioned on labels: choose them with `vaegan sample --condition`; attribute vectors are for unconditioned models",
            path.display()
        );
    }
    Ok(())
}

/// attributes.safetensors in a run folder, or <name>.attributes.safetensors beside a file.
fn default_vectors_path(checkpoint: &Path) -> PathBuf {
    if checkpoint.is_dir() {
        checkpoint.join("attributes.safetensors")
    } else {
        let stem = checkpoint.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "checkpoint".into());
        checkpoint.with_file_name(format!("{stem}.attributes.safetensors"))
    }
}

/// The checkpoint's data (or `data`) with labels, which must be there.
fn labelled_data(ck: &Checkpoint, data: Option<&Path>, labels: Option<&Path>) -> anyhow::Result<(Split, PathBuf)> {
    let path = data.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(&ck.data));
    let image = image_options(ck.config.model.image, &DataArgs::default(), ck.crop)?;
    let split = load_data(&path, image, ck.seed, None, None, &DataArgs::default(), Labels::Required(labels.map(Path::to_path_buf)))?;
    Ok((split, path))
}

pub fn run_attributes(device: &DeviceArgs, args: &AttributesArgs) -> anyhow::Result<()> {
    let ck = load_checkpoint(&args.ck)?;
    refuse_conditioned(&ck, &args.ck.checkpoint)?;
    let (split, path) = labelled_data(&ck, args.data.as_deref(), args.labels.as_deref())?;
    let gpu = device.open()?;
    say!("encoding {} labelled training images of {}…", split.train.count, path.display());
    let v = crate::train::attributes::attribute_vectors(&gpu, &ck.config.model, &|n| ck.tensor(n), &split.train, ck.step)?;
    let out = args.out.clone().unwrap_or_else(|| default_vectors_path(&args.ck.checkpoint));
    v.save(&out).with_context(|| format!("{}: cannot write", out.display()))?;
    println!("{:<24} {:>8} {:>8} {:>8}", "attribute", "with", "without", "|v|");
    for (k, name) in v.names.iter().enumerate() {
        let norm = v.vector(k).iter().map(|x| x * x).sum::<f32>().sqrt();
        let norm = if v.with[k] == 0 || v.without[k] == 0 { "-".to_string() } else { format!("{norm:.3}") };
        println!("{name:<24} {:>8} {:>8} {norm:>8}", v.with[k], v.without[k]);
    }
    println!("wrote {} ({} vectors of {}, step {})", out.display(), v.names.len(), v.latent, v.step);
    Ok(())
}

pub fn run_edit(device: &DeviceArgs, args: &EditArgs) -> anyhow::Result<()> {
    at_least_one("n", args.n)?;
    if args.add.is_empty() && args.remove.is_empty() {
        bail!("nothing to edit: give --add and/or --remove with attribute names (`vaegan attributes` lists them)");
    }
    if !args.scale.is_finite() {
        bail!("--scale {}: expected a finite number", args.scale);
    }
    let ck = load_checkpoint(&args.ck)?;
    refuse_conditioned(&ck, &args.ck.checkpoint)?;
    let c = &ck.config.model;
    let vectors_path = args.vectors.clone().unwrap_or_else(|| default_vectors_path(&args.ck.checkpoint));
    if !vectors_path.exists() {
        bail!("{}: no attribute vectors; run `vaegan attributes --checkpoint {}` first", vectors_path.display(), args.ck.checkpoint.display());
    }
    let v = AttributeVectors::load(&vectors_path).map_err(anyhow::Error::msg)?;
    if v.latent != c.latent || v.step != ck.step {
        bail!(
            "{}: vectors of a latent of {} at step {}, but the checkpoint has a latent of {} at step {}: run `vaegan attributes` again",
            vectors_path.display(),
            v.latent,
            v.step,
            c.latent,
            ck.step
        );
    }
    let find = |names: &[String]| -> anyhow::Result<Vec<usize>> {
        names.iter().map(|n| v.find(n).map_err(|e| anyhow::anyhow!("{}: {e}", vectors_path.display()))).collect()
    };
    let (add, remove) = (find(&args.add)?, find(&args.remove)?);
    let (split, path) = labelled_data(&ck, args.data.as_deref(), args.labels.as_deref())?;
    let test = &split.test;
    let table = test.attribute_table().expect("labels required");
    let column = |name: &str| table.find(name).map_err(|e| anyhow::anyhow!("{e}"));
    let (add_t, remove_t) =
        (args.add.iter().map(|n| column(n)).collect::<anyhow::Result<Vec<_>>>()?, args.remove.iter().map(|n| column(n)).collect::<anyhow::Result<Vec<_>>>()?);
    let eligible: Vec<usize> = (0..test.count).filter(|&i| add_t.iter().all(|&a| !table.has(i, a)) && remove_t.iter().all(|&a| table.has(i, a))).collect();
    if eligible.is_empty() {
        bail!("{}: no test image lacks every added attribute and has every removed one", path.display());
    }
    let shown = if args.measure { eligible.clone() } else { eligible[..args.n.min(eligible.len())].to_vec() };
    let set = test.pick(&shown);
    let gpu = device.open()?;
    // --measure: the classifier and what the edits should make it read, refused before any
    // work (by the labels' own names of the attributes: `column=value` resolved).
    let measuring = if args.measure {
        let classifier = measure_classifier(&gpu, c.image)?;
        let names = |ids: &[usize]| -> Vec<String> { ids.iter().map(|&a| table.names[a].clone()).collect() };
        let targets = crate::quality::EditTargets::new(&classifier.spec, &names(&add_t), &names(&remove_t))?;
        Some((classifier, targets))
    } else {
        None
    };
    let shift = v.shift(&add, &remove, args.scale);
    let e = crate::train::attributes::edit(&gpu, c, &|n| ck.tensor(n), &set, &shift)?;
    // The grid: blocks of up to 16 columns, each three rows: originals, reconstructions, edits.
    let n = args.n.min(shown.len());
    let (dim, cols) = (set.dim(), n.min(16));
    let originals = crate::train::eval::scale_images(&set, 0..n, crate::types::Scaling::UNIT);
    let blank = vec![40.0 / 255.0; dim];
    let mut cells = vec![];
    for block in (0..n).step_by(cols) {
        for source in [&originals, &e.reconstructions, &e.edited] {
            for i in block..block + cols {
                cells.extend_from_slice(if i < n { &source[i * dim..(i + 1) * dim] } else { &blank });
            }
        }
    }
    pictures::grid_png(&args.out, &cells, cells.len() / dim, c.image, cols)?;
    let what = |names: &[String], sign: &str| names.iter().map(|n| format!("{sign}{n}")).collect::<Vec<_>>().join(" ");
    say!(
        "wrote {}: {n} test images (row 1), their reconstructions (row 2) and with {} {} ×{} (row 3)",
        args.out.display(),
        what(&args.add, "+"),
        what(&args.remove, "−"),
        args.scale
    );
    if let Some((mut classifier, targets)) = measuring {
        let score = crate::quality::score_edits(&mut classifier, &targets, &set.attribute_table().expect("labels required"), &e.reconstructions, &e.edited)?;
        println!("test images edited: {} (every one that lacks the added attributes and has the removed ones)", score.images);
        println!("classified as {} after the edit: {:.1} %", score.target, 100.0 * score.after);
        println!("classified as {} before it (reconstructions): {:.1} %", score.target, 100.0 * score.before);
        if let Some((heads, kept)) = &score.kept {
            println!("edits that keep their own {}: {:.1} %", heads.join(" and "), 100.0 * kept);
        }
        println!("reconstructions classified with all their own labels: {:.1} %", 100.0 * score.own);
    }
    Ok(())
}

/// `--measure` scores with the shipped classifier for the model's images (MNIST's digits,
/// the shapes set's factors), which must read them.
fn measure_classifier<'g>(gpu: &'g crate::gpu::Gpu, image: [usize; 3]) -> anyhow::Result<Classifier<'g>> {
    let path = classifier::default_for(image);
    let weights = ClassifierWeights::load(&path).map_err(anyhow::Error::msg)?;
    let cl = Classifier::with(gpu, &weights, 250)?;
    cl.check_shape(image, "this model's images").with_context(|| format!("--measure scores edits with {}", path.display()))?;
    Ok(cl)
}

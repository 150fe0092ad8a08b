//! `vaegan classifier`: trains a quality classifier with vaegan's own kernels — MNIST's
//! (the default) or one for a labelled folder, a head per factor of its labels file (the
//! shapes set's: shape, colour, background).

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use super::common::{image_options, load_data, positive, DataArgs};
use super::DeviceArgs;
use crate::data;

#[derive(Args, Debug)]
pub struct ClassifierArgs {
    /// Labelled data: IDX files with labels (default: the shipped MNIST), or a folder of
    /// images with a labels file (the shapes set's factors.csv, CelebA's list_attr_celeba.txt
    /// or a CSV with a `file` column).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Side of the images the classifier reads (folder images are resampled to it; IDX
    /// images keep their own). Folder images are read as RGB, IDX ones as grey, unless
    /// --channels says otherwise.
    #[arg(long, default_value_t = 28)]
    size: usize,
    #[command(flatten)]
    images: DataArgs,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 128)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write the weights (default: datasets/classifier/mnist-classifier.safetensors
    /// for the default data, else classifier.safetensors).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `vaegan classifier`: trains the quality classifier with vaegan's own kernels.
pub fn run(device: &DeviceArgs, args: &ClassifierArgs) -> anyhow::Result<()> {
    positive("lr", Some(args.lr))?;
    if args.batch == 0 || args.epochs == 0 {
        bail!("--batch and --epochs must be at least 1");
    }
    if !(8..=1024).contains(&args.size) {
        bail!("--size {}: expected a side from 8 to 1024 pixels", args.size);
    }
    let path = args.data.clone().unwrap_or_else(data::default_mnist);
    // IDX images are grey; a folder's are read as RGB unless --channels 1.
    let channels = if data::is_idx_folder(&path) { 1 } else { 3 };
    let image = image_options([args.size, args.size, channels], &args.images, data::Crop::Centre)?;
    let split = load_data(&path, image, args.seed, None, None, &args.images, data::Labels::Required(None))?;
    let spec = crate::quality::classifier::Spec::for_data(&split.train)?;
    let out = match (&args.out, &args.data) {
        (Some(out), _) => out.clone(),
        (None, None) => PathBuf::from("datasets/classifier/mnist-classifier.safetensors"),
        (None, Some(_)) => PathBuf::from("classifier.safetensors"),
    };
    let heads: Vec<String> = spec.heads.iter().map(|h| format!("{} ({})", h.name, h.classes.len())).collect();
    say!("data: {} — {} training and {} test images of {:?}; heads: {}", path.display(), split.train.count, split.test.count, spec.image, heads.join(", "));
    let gpu = device.open()?;
    say!("adapter: {}", gpu.describe());
    let show = |acc: &crate::quality::classifier::Accuracy| {
        let per: Vec<String> = spec.heads.iter().zip(&acc.heads).map(|(h, a)| format!("{} {:.2}%", h.name, 100.0 * a)).collect();
        if per.len() == 1 {
            format!("{:.2}%", 100.0 * acc.all)
        } else {
            format!("{:.2}% on every head ({})", 100.0 * acc.all, per.join(", "))
        }
    };
    let weights = crate::quality::classifier::train(&gpu, &split.train, &split.test, args.epochs, args.batch, args.lr, args.seed, |e, acc| {
        say!("epoch {e}/{}: test accuracy {}", args.epochs, show(acc));
    })?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    weights.save(&out).with_context(|| format!("{}: cannot write", out.display()))?;
    let acc = crate::quality::classifier::Accuracy { heads: weights.head_accuracy.clone(), all: weights.test_accuracy };
    say!("wrote {} (test accuracy {})", out.display(), show(&acc));
    Ok(())
}

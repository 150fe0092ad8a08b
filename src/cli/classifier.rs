//! `vaegan classifier`: trains the MNIST classifier that `eval --quality` uses, with
//! vaegan's own kernels.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use super::common::{load_data, positive};
use super::DeviceArgs;
use crate::data;

#[derive(Args, Debug)]
pub struct ClassifierArgs {
    /// Labelled IDX data (default: the shipped MNIST).
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 128)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write the weights.
    #[arg(long, default_value = "datasets/classifier/mnist-classifier.safetensors")]
    out: PathBuf,
}

/// `vaegan classifier`: trains the quality classifier with vaegan's own kernels.
pub fn run(device: &DeviceArgs, args: &ClassifierArgs) -> anyhow::Result<()> {
    positive("lr", Some(args.lr))?;
    if args.batch == 0 || args.epochs == 0 {
        bail!("--batch and --epochs must be at least 1");
    }
    let path = args.data.clone().unwrap_or_else(data::default_mnist);
    let split = load_data(&path, crate::data::ImageOptions::grey(28), args.seed, None, None, &Default::default(), crate::data::Labels::Required(None))?;
    let gpu = device.open()?;
    eprintln!("adapter: {}", gpu.describe());
    let weights = crate::quality::classifier::train(&gpu, &split.train, &split.test, args.epochs, args.batch, args.lr, args.seed, |e, acc| {
        eprintln!("epoch {e}/{}: test accuracy {:.2}%", args.epochs, 100.0 * acc);
    })?;
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    weights.save(&args.out).with_context(|| format!("{}: cannot write", args.out.display()))?;
    eprintln!("wrote {} (test accuracy {:.2}%)", args.out.display(), 100.0 * weights.test_accuracy);
    Ok(())
}

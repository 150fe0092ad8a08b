//! What several subcommands share: argument checks, loading data and checkpoints.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;

use crate::checkpoint::{self, Checkpoint};
use crate::data::{self, Split};
use crate::train::eval::Evaluator;
use crate::train::limited;

/// Rejects a flag's value that is not a positive finite number, naming the flag.
pub fn positive(name: &str, v: Option<f32>) -> anyhow::Result<()> {
    if let Some(v) = v {
        if !(v.is_finite() && v > 0.0) {
            bail!("--{name} {v}: must be a positive number");
        }
    }
    Ok(())
}

/// Rejects a count flag of 0, naming the flag.
pub fn at_least_one(name: &str, v: usize) -> anyhow::Result<()> {
    if v == 0 {
        bail!("--{name} 0: must be at least 1");
    }
    Ok(())
}

/// A data set at the model's image side, limited to the first images when asked.
pub fn load_data(path: &Path, size: usize, seed: u64, limit: Option<usize>, test_limit: Option<usize>) -> anyhow::Result<Split> {
    let split = data::load(path, size, seed)?;
    let mut split = limited(split, limit, test_limit);
    split.train.source = path.display().to_string();
    Ok(split)
}

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    /// A run folder (its checkpoint.safetensors) or a checkpoint file.
    #[arg(long)]
    pub checkpoint: PathBuf,
}

pub fn load_checkpoint(path: &Path) -> anyhow::Result<Checkpoint> {
    let file = if path.is_dir() { checkpoint::path_in(path) } else { path.to_path_buf() };
    Ok(Checkpoint::load(&file)?)
}

/// Side of the model's square images.
pub fn image_side(c: &crate::model::ModelConfig) -> anyhow::Result<usize> {
    let side = (c.input as f64).sqrt().round() as usize;
    if side * side != c.input {
        bail!("the model's {} pixels are not a square image", c.input);
    }
    Ok(side)
}

/// A checkpoint's test data (from --data or where it was trained) and an evaluator with
/// its weights, at `batch` (capped by the test set).
pub fn checkpoint_evaluator<'g>(
    gpu: &'g crate::gpu::Gpu,
    ck: &Checkpoint,
    data: Option<&Path>,
    batch: usize,
    test_limit: Option<usize>,
) -> anyhow::Result<(Split, PathBuf, Evaluator<'g>)> {
    let side = image_side(&ck.config.model)?;
    let path = data.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(&ck.data));
    let split = load_data(&path, side, ck.seed, None, test_limit)?;
    let ev = Evaluator::new(gpu, &ck.config.model, batch.min(split.test.count), ck.seed)?;
    ev.load(&|name| ck.param(name))?;
    Ok((split, path, ev))
}

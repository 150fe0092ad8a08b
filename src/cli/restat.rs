//! `vaegan restat`: the decoder's batch-norm running statistics re-estimated on prior
//! samples z ~ N(0, I) (`train::restat`), written as a new checkpoint beside the old one,
//! which is left as it was.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use super::common::{at_least_one, checkpoint_labels, load_checkpoint, CheckpointArgs};
use super::DeviceArgs;
use crate::checkpoint;

#[derive(Args, Debug)]
pub struct RestatArgs {
    #[command(flatten)]
    ck: CheckpointArgs,
    /// Batches of prior codes decoded (each moves the statistics 10 % of the way to its own).
    #[arg(long, default_value_t = 100)]
    batches: usize,
    /// Codes per batch.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Seed of the prior codes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A conditioned model's training data, whose labels the prior codes take (default: the
    /// data the checkpoint was trained on).
    #[arg(long)]
    data: Option<PathBuf>,
    /// The new checkpoint (default: checkpoint.prior-stats.safetensors beside the old one).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(device: &DeviceArgs, args: &RestatArgs) -> anyhow::Result<()> {
    at_least_one("batches", args.batches)?;
    if args.batch < 2 {
        bail!("--batch {}: a batch variance needs at least 2 codes", args.batch);
    }
    let source = if args.ck.checkpoint.is_dir() { checkpoint::path_in(&args.ck.checkpoint) } else { args.ck.checkpoint.clone() };
    let out = args.out.clone().unwrap_or_else(|| source.with_file_name("checkpoint.prior-stats.safetensors"));
    if out.canonicalize().ok().is_some_and(|o| source.canonicalize().ok() == Some(o)) {
        bail!("--out {}: that is the checkpoint being read; write the re-estimated one elsewhere (nothing saved is overwritten)", out.display());
    }
    let mut ck = load_checkpoint(&args.ck)?;
    let labels = checkpoint_labels(&ck, args.data.as_deref())?;
    let gpu = device.open()?;
    let stats = crate::train::restat::decoder_stats_on_prior(&gpu, &ck.config.model, &|n| ck.tensor(n), labels.as_ref(), args.batches, args.batch, args.seed)?;
    let mut moved = 0.0f64;
    // A run with an averaged decoder samples with the average: its statistics are the ones
    // re-estimated (the last weights', with --live-weights).
    let target = if ck.average.is_empty() { &mut ck.state } else { &mut ck.average };
    for (name, shape, values) in stats {
        let slot = target.iter_mut().find(|(n, _, _)| *n == name).with_context(|| format!("the checkpoint has no running statistic {name}"))?;
        moved = moved.max(slot.2.iter().zip(&values).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max));
        *slot = (name, shape, values);
    }
    ck.save(&out).with_context(|| format!("{}: cannot write", out.display()))?;
    println!("decoder batch norm: running statistics re-estimated on {} batches of {} codes z ~ N(0, I) (largest change {moved:.4})", args.batches, args.batch);
    println!("wrote {} (step {}; sample or evaluate it with --checkpoint {})", out.display(), ck.step, out.display());
    Ok(())
}

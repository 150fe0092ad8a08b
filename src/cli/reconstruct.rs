//! `vaegan reconstruct`: test images beside their reconstructions, as a PNG grid.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use super::common::{checkpoint_evaluator, load_checkpoint, CheckpointArgs};
use super::DeviceArgs;
use crate::pictures;

#[derive(Args, Debug)]
pub struct ReconstructArgs {
    #[command(flatten)]
    ck: CheckpointArgs,
    /// Test images to reconstruct.
    #[arg(short, long, default_value_t = 32)]
    n: usize,
    /// The data set (default: the one the checkpoint was trained on).
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, default_value = "reconstructions.png")]
    out: PathBuf,
}

pub fn run(device: &DeviceArgs, args: &ReconstructArgs) -> anyhow::Result<()> {
    if args.n == 0 {
        bail!("-n must be at least 1");
    }
    let ck = load_checkpoint(&args.ck)?;
    let gpu = device.open()?;
    let (split, _, mut ev) = checkpoint_evaluator(&gpu, &ck, args.data.as_deref(), args.n, None)?;
    let (orig, rec) = ev.reconstruct(&split.test, args.n)?;
    let n = orig.len() / ck.config.model.input;
    pictures::pairs_png(&args.out, &orig, &rec, n, ck.config.model.image, 8)?;
    say!("wrote {}: {n} test images, each beside its reconstruction Dec(μ)", args.out.display());
    Ok(())
}

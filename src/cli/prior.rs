//! `vaegan prior`: fit a Gaussian-mixture prior to the codes a checkpoint's encoder gives the
//! training images (`model::prior`), for `sample --prior` and `eval --quality --prior`.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::common::{at_least_one, checkpoint_evaluator, default_prior_path, load_checkpoint, CheckpointArgs};
use super::DeviceArgs;

#[derive(Args, Debug)]
pub struct PriorArgs {
    #[command(flatten)]
    ck: CheckpointArgs,
    /// Mixture components.
    #[arg(short, long, default_value_t = 50)]
    k: usize,
    /// EM rounds at most (it stops earlier when a round gains under 1e-6 nats per code).
    #[arg(long, default_value_t = 100)]
    iterations: usize,
    /// Seed of the codes drawn from q(z|x) and of EM's starting means.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The data set (default: the one the checkpoint was trained on); its training images
    /// are encoded.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where to write it (default: prior.safetensors in the run folder, or
    /// <name>.prior.safetensors beside a checkpoint file).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(device: &DeviceArgs, args: &PriorArgs) -> anyhow::Result<()> {
    at_least_one("k", args.k)?;
    at_least_one("iterations", args.iterations)?;
    let ck = load_checkpoint(&args.ck)?;
    let gpu = device.open()?;
    let (split, path, _) = checkpoint_evaluator(&gpu, &ck, args.data.as_deref(), 1, Some(1))?;
    let start = Instant::now();
    say!("encoding {} training images of {} and fitting {} components…", split.train.count, path.display(), args.k);
    let (mut prior, fit) = crate::train::prior::fit_prior(&gpu, &ck.config.model, &|n| ck.tensor(n), &split.train, args.k, args.iterations, args.seed)?;
    prior.step = ck.step;
    let out = args.out.clone().unwrap_or_else(|| default_prior_path(&args.ck.checkpoint));
    prior.save(&out).map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", out.display()))?;
    println!("codes: {} (one z ~ q(z|x) per training image), latent {}", split.train.count, prior.latent);
    println!("mean log-likelihood per code: {:.2} nats under the mixture, {:.2} under N(0, I)", fit.log_likelihood, fit.standard_normal_log_likelihood);
    println!("EM rounds: {}, {:.1} s", fit.iterations, start.elapsed().as_secs_f64());
    println!("wrote {} ({} components, fitted to step {})", out.display(), prior.k(), prior.step);
    Ok(())
}

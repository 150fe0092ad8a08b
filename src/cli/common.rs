//! What several subcommands share: argument checks, loading data and checkpoints.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::bail;
use clap::Args;

use crate::checkpoint::{self, Checkpoint};
use crate::data::{self, Split};
use crate::train::eval::Evaluator;
use crate::train::limited;
use crate::train::parallel::{self, Collective};

/// A rate with at least two significant digits: 2016, 21, 2.4, 0.13 (a CPU adapter runs
/// celeba64 at a fraction of a sample a second, which `{:.0}` would print as 0).
pub fn rate(x: f64) -> String {
    if !x.is_finite() || x <= 0.0 || x >= 10.0 {
        return format!("{x:.0}");
    }
    let decimals = |v: f64| (1 - v.log10().floor() as i32).clamp(1, 6) as usize;
    // Rounding may carry into the next decade (9.96 → 10.0, 0.0996 → 0.100): the
    // decimals follow the rounded value.
    let d = decimals(x);
    let rounded: f64 = format!("{x:.d$}").parse().unwrap_or(x);
    if rounded >= 10.0 {
        return format!("{x:.0}");
    }
    let d = decimals(rounded);
    format!("{x:.d$}")
}

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

/// How a data folder is read: the flags train, eval and reconstruct share.
#[derive(Args, Debug, Clone, Default)]
pub struct DataArgs {
    /// Channels of folder images: 1 (grey) or 3 (RGB). Default: the model's.
    #[arg(long)]
    pub channels: Option<usize>,
    /// Crop of folder images before resampling: centre (the largest centred region of the
    /// model's aspect ratio) or larsen (Larsen et al.'s 148×148 face crop of CelebA's
    /// aligned 178×218 images).
    #[arg(long)]
    pub crop: Option<data::Crop>,
    /// Where decoded folders are cached (default: VAEGAN_CACHE_DIR, else ~/.cache/vaegan).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

/// The image options for a model of shape [h, w, c], with `--channels` and `--crop` applied.
pub fn image_options(shape: [usize; 3], args: &DataArgs, crop: data::Crop) -> anyhow::Result<data::ImageOptions> {
    let channels = args.channels.unwrap_or(shape[2]);
    if channels != 1 && channels != 3 {
        bail!("--channels {channels}: expected 1 (grey) or 3 (RGB)");
    }
    Ok(data::ImageOptions { height: shape[0], width: shape[1], channels, crop: args.crop.unwrap_or(crop) })
}

/// A data set (IDX, or a folder decoded through the cache with progress on stderr),
/// limited to the first images when asked.
/// `labels` says which labels it wants (a labels file found in a folder that does not fit
/// is only a warning unless they are required).
pub fn load_data(
    path: &Path,
    image: data::ImageOptions,
    seed: u64,
    limit: Option<usize>,
    test_limit: Option<usize>,
    args: &DataArgs,
    labels: data::Labels,
) -> anyhow::Result<Split> {
    let bar = indicatif::ProgressBar::hidden();
    let last_line = std::sync::Mutex::new(0usize);
    let progress = |done: usize, total: usize| {
        if bar.is_hidden() && std::io::stderr().is_terminal() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_style(indicatif::ProgressStyle::with_template("decoding images into the cache {wide_bar} {pos}/{len} {eta}").unwrap());
        }
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        // Without a terminal, a line per tenth.
        let tenth = done * 10 / total.max(1);
        let mut last = last_line.lock().unwrap();
        if !std::io::stderr().is_terminal() && tenth > *last {
            *last = tenth;
            say!("decoding images into the cache: {done}/{total}");
        }
    };
    let options = data::LoadOptions { image, seed, cache_dir: args.cache_dir.clone(), progress: &progress, labels };
    let loaded = data::load(path, &options)?;
    bar.finish_and_clear();
    match &loaded.cache {
        Some(data::CacheStatus::Built(p)) => say!("decoded images cached in {}", p.display()),
        Some(data::CacheStatus::Unwritable(p, why)) => say!("warning: cannot write the image cache {} ({why}); the next run decodes again", p.display()),
        _ => {}
    }
    if let Some(w) = &loaded.labels_warning {
        say!("warning: {w}");
    }
    let mut split = limited(loaded.split, limit, test_limit);
    split.train.source = path.display().to_string();
    Ok(split)
}

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    /// A run folder (its checkpoint.safetensors) or a checkpoint file.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Decode with the decoder's last weights instead of their average (a run trained with
    /// --decoder-ema keeps both; the average is the default).
    #[arg(long)]
    pub live_weights: bool,
}

/// The checkpoint `args` names (the decoder's last weights with --live-weights).
pub fn load_checkpoint(args: &CheckpointArgs) -> anyhow::Result<Checkpoint> {
    let path = &args.checkpoint;
    let file = if path.is_dir() { checkpoint::path_in(path) } else { path.to_path_buf() };
    let ck = Checkpoint::load(&file)?;
    Ok(if args.live_weights { ck.live() } else { ck })
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
    let path = data.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(&ck.data));
    let image = image_options(ck.config.model.image, &DataArgs::default(), ck.crop)?;
    let split = load_data(&path, image, ck.seed, None, test_limit, &DataArgs::default(), data::Labels::IfFound)?;
    let ev = Evaluator::new(gpu, &ck.config.model, batch.min(split.test.count), ck.seed)?;
    ev.load(&|name| ck.tensor(name))?;
    Ok((split, path, ev))
}

/// The training labels of a conditioned checkpoint's data (`data`, default the data it was
/// trained on), which its prior codes draw their labels from; None for an unconditioned one.
pub fn checkpoint_labels(ck: &Checkpoint, data: Option<&Path>) -> anyhow::Result<Option<data::Attributes>> {
    if ck.config.model.conditions.is_empty() {
        return Ok(None);
    }
    let path = data.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(&ck.data));
    let image = image_options(ck.config.model.image, &DataArgs::default(), ck.crop)?;
    let split = load_data(&path, image, ck.seed, ck.limit, ck.test_limit, &DataArgs::default(), data::Labels::Required(None))?;
    Ok(crate::train::conditioning_labels(&ck.config.model, &split.train)?)
}

/// The processes of this run: one, or those `mpirun` started (the `mpi` feature).
pub fn processes() -> anyhow::Result<Rc<dyn Collective>> {
    let Some((_, size)) = parallel::launched_by_mpirun() else { return Ok(Rc::new(parallel::Single)) };
    #[cfg(feature = "mpi")]
    {
        let _ = size;
        let mpi = parallel::Mpi::init().ok_or_else(|| anyhow::anyhow!("started by mpirun, but MPI could not be initialised"))?;
        Ok(Rc::new(mpi))
    }
    #[cfg(not(feature = "mpi"))]
    {
        if size > 1 {
            bail!("started by mpirun as one of {size} processes, but this vaegan was built without MPI: build it with `cargo build --release --features mpi`");
        }
        Ok(Rc::new(parallel::Single))
    }
}

/// Where `vaegan prior` writes a checkpoint's prior unless told: prior.safetensors in a run
/// folder, or <name>.prior.safetensors beside a checkpoint file.
pub fn default_prior_path(checkpoint: &Path) -> PathBuf {
    if checkpoint.is_dir() {
        checkpoint.join("prior.safetensors")
    } else {
        let stem = checkpoint.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "checkpoint".into());
        checkpoint.with_file_name(format!("{stem}.prior.safetensors"))
    }
}

/// The prior `--prior [FILE]` asks for (None: N(0, I)), checked against the checkpoint: the
/// same latent size, and fitted to this very step (a prior of an earlier encoder describes
/// codes the decoder has moved on from).
pub fn load_prior(arg: &Option<Option<PathBuf>>, checkpoint_arg: &Path, ck: &Checkpoint) -> anyhow::Result<Option<crate::model::GaussianMixture>> {
    let Some(file) = arg else { return Ok(None) };
    let path = file.clone().unwrap_or_else(|| default_prior_path(checkpoint_arg));
    if !path.is_file() {
        bail!("{}: no such prior; `vaegan prior --checkpoint {}` fits and writes one", path.display(), checkpoint_arg.display());
    }
    let prior = crate::model::GaussianMixture::load(&path).map_err(anyhow::Error::msg)?;
    if prior.latent != ck.config.model.latent {
        bail!("{}: a prior of {} latent dimensions, but the checkpoint's model has {}", path.display(), prior.latent, ck.config.model.latent);
    }
    if prior.step != ck.step {
        bail!(
            "{}: fitted to the checkpoint at step {}, but this checkpoint is at step {}: run `vaegan prior --checkpoint {}` again",
            path.display(),
            prior.step,
            ck.step,
            checkpoint_arg.display()
        );
    }
    Ok(Some(prior))
}

#[cfg(test)]
mod tests {
    use super::rate;

    #[test]
    fn rates_keep_two_significant_digits() {
        let cases = [(2016.4, "2016"), (21.3, "21"), (9.96, "10"), (0.0996, "0.10"), (2.44, "2.4"), (0.1337, "0.13"), (0.0042, "0.0042"), (0.0, "0")];
        for (x, want) in cases {
            assert_eq!(rate(x), want, "{x}");
        }
    }
}

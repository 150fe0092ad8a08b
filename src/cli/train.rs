//! `vaegan train`: parses the flags, opens the data, the device and the trainer, prints
//! what the run tells it and maps how the run ended to an exit code. The epochs
//! themselves run in `train::run`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;

use super::common::{at_least_one, image_options, load_data, positive, processes, DataArgs};
use super::DeviceArgs;
use crate::checkpoint::{self, Checkpoint};
use crate::data;
use crate::model::{Mode, RunConfig};
use crate::train::eval::EvalResult;
use crate::train::parallel::{self, Collective};
use crate::train::run::{run_epochs, Event, Outcome, RunPlan, SampleQuality};
use crate::train::Trainer;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// A folder of IDX files (MNIST, Fashion-MNIST, KMNIST naming) or of PNG and JPEG
    /// images (searched recursively, resampled to the model's size). Default: the MNIST
    /// shipped in datasets/mnist.
    #[arg(long)]
    data: Option<PathBuf>,
    #[command(flatten)]
    data_args: DataArgs,
    /// Model preset: mnist-mlp (dense VAE-GAN), mnist-conv (convolutional VAE-GAN, 28×28),
    /// shapes32 (mnist-conv's networks on 32×32 RGB, for `make-dataset shapes --size 32`),
    /// celeba64 (Larsen et al.'s 64×64 colour model), seed (the seed document's model,
    /// fixed) or pytorch-vae (the classic PyTorch VAE).
    #[arg(long, default_value = "mnist-mlp")]
    preset: String,
    /// A TOML config (`preset = "…"`, then [model] and [optim] overrides); replaces --preset.
    #[arg(long)]
    config: Option<PathBuf>,
    /// vae-gan or vae (default: the preset's).
    #[arg(long)]
    mode: Option<Mode>,
    /// Total epochs to reach (a resumed run continues up to this many).
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Learning rate of every group (overrides the config's).
    #[arg(long)]
    lr: Option<f32>,
    /// Learning rate of the discriminator alone.
    #[arg(long)]
    lr_discriminator: Option<f32>,
    /// Dimensions of the code z (overrides the config's; mnist-conv's 8 gave better
    /// samples from the prior than 32 on MNIST, at a slightly higher −ELBO).
    #[arg(long)]
    latent: Option<usize>,
    /// Weight of L_llike in the decoder's objective.
    #[arg(long)]
    gamma: Option<f32>,
    /// Weight of the pixel BCE term (vae-gan).
    #[arg(long)]
    pixel_weight: Option<f32>,
    /// Weight of the KL term in the encoder's objective (β; 1 is the ELBO).
    #[arg(long)]
    kl_weight: Option<f32>,
    /// The generated images the discriminator and the decoder's GAN term see: both
    /// (reconstructions and prior samples, the paper), prior (the authors' final code) or
    /// reconstructions.
    #[arg(long)]
    gan_fakes: Option<crate::model::GanFakes>,
    /// Weight λ of MMD²(q(z), N(0, I)) in the encoder's objective: pulls the codes of the
    /// data onto the prior that samples are drawn from (0: off).
    #[arg(long)]
    latent_mmd: Option<f32>,
    /// Weight of an adversarial autoencoder's term in the encoder's objective: a latent
    /// discriminator learns to tell prior draws from codes, and the encoder to fool it (0: off).
    #[arg(long)]
    latent_adversary: Option<f32>,
    /// Which decoder passes move its batch-norm running statistics, the ones samples are
    /// decoded with: both, prior or posterior (conv models with a pass per batch).
    #[arg(long)]
    decoder_bn_stats: Option<crate::model::BnStats>,
    /// Larsen et al.'s discriminator/decoder balancing.
    #[arg(long)]
    balance: bool,
    /// Attribute-conditioned generation (Larsen et al.'s conditional VAE-GAN): the decoder
    /// and the discriminator read each image's labels (IDX classes, or a labels file beside
    /// the folder) beside z and the image; `vaegan sample --condition` then picks them.
    #[arg(long)]
    conditioned: bool,
    /// f32, or f16: mixed precision — matmuls read f16 copies of their operands (SHADER_F16
    /// needed), with f32 master weights, Adam and accumulation. May change on --resume.
    #[arg(long)]
    precision: Option<crate::types::Precision>,
    /// Keep an exponential moving average of the decoder's weights with this decay per
    /// update (e.g. 0.999; 0: off) and sample, evaluate and export with it (its batch-norm
    /// statistics re-estimated on prior codes); training goes on with the last weights,
    /// which `--live-weights` selects later. May change on --resume. Default: the config's
    /// (`optim.decoder_ema`: 0.999 in the mnist-conv preset, off elsewhere).
    #[arg(long)]
    decoder_ema: Option<f32>,
    /// Seeds weights, data order and every random draw: a run is reproducible on one adapter.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output folder: checkpoint, sample grids, reconstructions, metrics.csv, loss curves.
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// Continue the run in this folder exactly where it stopped.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Train on the first N training images only.
    #[arg(long)]
    limit: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Test images per evaluation batch.
    #[arg(long, default_value_t = 250)]
    eval_batch: usize,
    /// Each epoch, the Fréchet distance of this many samples from N(0, I) to the test images
    /// in a shipped classifier's features (metrics.csv's fd_samples, TensorBoard, the epoch
    /// line), for 28x28 grey data (MNIST's classifier) and 32x32 RGB (the shapes set's); 0
    /// turns it off.
    #[arg(long, env = "VAEGAN_FD_SAMPLES", default_value_t = 2000)]
    fd_samples: usize,
    /// Keep the training set on the GPU only when it takes at most this many MiB (default:
    /// the adapter's storage binding limit); a larger set streams batch by batch.
    #[arg(long)]
    gpu_data_mib: Option<u64>,
}

/// The output folder, created and checked to be writable.
fn prepare_out(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the output folder", dir.display()))?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"ok").with_context(|| format!("{}: the output folder is not writable", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// The per-epoch Fréchet distance of `n` N(0, I) samples, where it applies: images of a
/// shape a shipped classifier reads (28x28 grey: MNIST's; 32x32 RGB: the shapes set's)
/// and that classifier at hand; a note where not.
fn epoch_frechet<'g>(
    gpu: &'g crate::gpu::Gpu,
    model: &crate::model::ModelConfig,
    test: &crate::data::Dataset,
    n: usize,
    seed: u64,
) -> anyhow::Result<Option<crate::quality::EpochFrechet<'g>>> {
    use crate::quality::classifier::{default_for, SHIPPED};
    if n == 0 || !SHIPPED.iter().any(|(shape, _)| *shape == test.shape()) {
        return Ok(None);
    }
    if n == 1 {
        bail!("--fd-samples 1: a Fréchet distance needs at least 2 samples (0 turns it off)");
    }
    if test.count < 2 {
        say!("note: no sample Fréchet distance per epoch: the test set has {} image(s), a covariance needs 2", test.count);
        return Ok(None);
    }
    let path = default_for(test.shape());
    if !path.is_file() {
        say!("note: no sample Fréchet distance per epoch: the classifier {} is not here", path.display());
        return Ok(None);
    }
    let weights = crate::quality::ClassifierWeights::load(&path).map_err(anyhow::Error::msg)?;
    // Codes of their own, the same every epoch (not the sample grid's).
    Ok(Some(crate::quality::EpochFrechet::new(gpu, model, test, &weights, n, seed ^ 0xfd5a)?))
}

/// How a run ended, for the exit code.
enum Ended {
    Done,
    Interrupted,
}

pub fn run(device: &DeviceArgs, args: &TrainArgs) -> anyhow::Result<()> {
    let collective = processes()?;
    let ended = run_as(device, args, collective.clone());
    let several = collective.size() > 1;
    match ended {
        Ok(Ended::Done) => {
            collective.barrier();
            Ok(())
        }
        Ok(Ended::Interrupted) => {
            collective.barrier();
            // MPI is finalised when the last handle goes.
            drop(collective);
            std::process::exit(130)
        }
        // A failing rank ends them all: the others would wait for it forever. The last
        // checkpoint is whole (written to a temporary file, then renamed).
        Err(e) if several => {
            say!(
                "error (rank {} of {}): {e:#}
stopping every rank; the last checkpoint on disk is whole",
                collective.rank(),
                collective.size()
            );
            collective.abort(1)
        }
        Err(e) => Err(e),
    }
}

fn run_as(device: &DeviceArgs, args: &TrainArgs, collective: Rc<dyn Collective>) -> anyhow::Result<Ended> {
    let (rank, ranks) = (collective.rank(), collective.size());
    let leader = rank == 0;
    positive("lr", args.lr)?;
    positive("lr-discriminator", args.lr_discriminator)?;
    if let Some(g) = args.gamma {
        if !(g.is_finite() && g >= 0.0) {
            bail!("--gamma {g}: must be a number of at least 0");
        }
    }
    for (name, w) in
        [("pixel-weight", args.pixel_weight), ("kl-weight", args.kl_weight), ("latent-mmd", args.latent_mmd), ("latent-adversary", args.latent_adversary)]
    {
        if let Some(w) = w {
            if !(w.is_finite() && w >= 0.0) {
                bail!("--{name} {w}: must be a number of at least 0");
            }
        }
    }
    at_least_one("batch", args.batch)?;
    at_least_one("eval-batch", args.eval_batch)?;
    if args.limit == Some(0) {
        bail!("--limit 0: must be at least 1 (or left out for every training image)");
    }
    if args.test_limit == Some(0) {
        bail!("--test-limit 0: must be at least 1 (or left out for every test image)");
    }
    let resume = match &args.resume {
        Some(dir) => Some(Checkpoint::load(&checkpoint::path_in(dir))?),
        None => None,
    };
    // A resumed run keeps what it was started with: config, batch, seed, data and limits.
    let (config, batch, seed, out, data_path, limit, test_limit) = match &resume {
        Some(ck) => {
            let data_path = args.data.clone().unwrap_or_else(|| PathBuf::from(&ck.data));
            (ck.config.clone(), ck.batch, ck.seed, args.resume.clone().unwrap(), data_path, ck.limit, ck.test_limit.or(args.test_limit))
        }
        None => {
            let mut config = match &args.config {
                Some(file) => {
                    let text = std::fs::read_to_string(file).with_context(|| format!("{}: cannot read", file.display()))?;
                    RunConfig::from_toml(&text, &file.display().to_string()).map_err(anyhow::Error::msg)?
                }
                None => RunConfig::preset(&args.preset).map_err(anyhow::Error::msg)?,
            };
            if let Some(mode) = args.mode {
                config.set_mode(mode);
            }
            if let Some(lr) = args.lr {
                config.optim.lr_encoder = lr;
                config.optim.lr_decoder = lr;
                config.optim.lr_discriminator = lr;
            }
            if let Some(lr) = args.lr_discriminator {
                config.optim.lr_discriminator = lr;
            }
            if let Some(n) = args.latent {
                config.model.latent = n;
            }
            if let Some(g) = args.gamma {
                config.model.gamma = g;
            }
            if let Some(w) = args.pixel_weight {
                config.model.pixel_weight = w;
            }
            if let Some(w) = args.kl_weight {
                config.model.kl_weight = w;
            }
            if let Some(f) = args.gan_fakes {
                config.model.gan_fakes = f;
            }
            if let Some(w) = args.latent_mmd {
                config.model.latent_mmd = w;
            }
            if let Some(w) = args.latent_adversary {
                config.model.latent_adversary = w;
            }
            if let Some(s) = args.decoder_bn_stats {
                config.model.decoder_bn_stats = s;
            }
            config.optim.balance |= args.balance;
            let data_path = args.data.clone().unwrap_or_else(data::default_mnist);
            (config, args.batch, args.seed, args.out.clone(), data_path, args.limit, args.test_limit)
        }
    };
    let mut config = config;
    if let Some(p) = args.precision {
        config.optim.precision = p;
    }
    if let Some(d) = args.decoder_ema {
        config.optim.decoder_ema = d;
    }
    if args.gpu_data_mib == Some(0) {
        bail!("--gpu-data-mib 0: must be at least 1 (a smaller budget streams every batch anyway)");
    }
    let crop = resume.as_ref().map(|ck| ck.crop).unwrap_or(data::Crop::Centre);
    let data_args = if resume.is_some() { DataArgs { channels: None, crop: None, ..args.data_args.clone() } } else { args.data_args.clone() };
    let image = image_options(config.model.image, &data_args, crop)?;
    let conditioned = args.conditioned || !config.model.conditions.is_empty();
    let labels = if conditioned { crate::data::Labels::Required(None) } else { crate::data::Labels::IfFound };
    let split = load_data(&data_path, image, seed, limit, test_limit, &data_args, labels)?;
    if args.conditioned && resume.is_none() {
        let table = split.train.attribute_table().ok_or_else(|| anyhow::anyhow!("--conditioned: {} has no labels", data_path.display()))?;
        config.model.conditions = table.names;
    }
    if resume.is_none() {
        // Folders are resampled to the preset's size; IDX sets bring their own, which a
        // dense model adopts and a convolutional one (its strides fixed) must match.
        let [h, w, _] = config.model.image;
        if config.model.arch == crate::model::Arch::Conv && (split.train.height, split.train.width) != (h, w) {
            bail!(
                "the {} model takes {h}x{w} images; {} holds {}x{} (IDX sets keep their size, image folders are resampled to the model's)",
                args.config.as_ref().map_or(args.preset.clone(), |c| c.display().to_string()),
                data_path.display(),
                split.train.height,
                split.train.width
            );
        }
        config.model.set_image(split.train.height, split.train.width, split.train.channels);
    }
    config.validate().map_err(|e| anyhow::anyhow!("config: {e}"))?;
    if batch > split.train.count {
        bail!("--batch {batch} is larger than the {} training images", split.train.count);
    }
    if !batch.is_multiple_of(ranks) {
        bail!("--batch {batch} (the global batch) does not split evenly over {ranks} processes: use a multiple of {ranks}");
    }
    if leader {
        prepare_out(&out)?;
        std::fs::write(out.join("config.toml"), config.to_toml()).with_context(|| format!("{}: cannot write", out.join("config.toml").display()))?;
    }

    let gpu = if ranks > 1 { device.open_for_rank(parallel::local_rank())? } else { device.open()? };
    if ranks > 1 {
        say!("rank {rank} of {ranks} (pid {}): adapter {}, {} of each batch of {batch}", std::process::id(), gpu.describe(), batch / ranks);
    } else {
        say!("adapter: {}", gpu.describe());
    }
    if leader {
        say!(
            "data: {} — {} training and {} test images of {}x{}x{}",
            data_path.display(),
            split.train.count,
            split.test.count,
            split.train.height,
            split.train.width,
            split.train.channels
        );
    }
    let binding = gpu.binding_limit();
    let budget = args.gpu_data_mib.map(|m| m.saturating_mul(1 << 20)).unwrap_or(binding).min(binding);
    let mut trainer = Trainer::replica(&gpu, config, batch, seed, &split.train, resume.as_ref(), budget, collective)?;
    trainer.data_limit = limit;
    trainer.test_limit = test_limit;
    trainer.crop = image.crop;
    if trainer.streams() && leader {
        say!(
            "data: {:.0} MiB of training images exceed the GPU data budget of {:.0} MiB: streaming {} batches ahead from host memory",
            crate::train::feed::resident_bytes(&split.train) as f64 / 1048576.0,
            budget as f64 / 1048576.0,
            crate::train::feed::RING
        );
    }

    // Ctrl-C (or SIGTERM): finish the step, checkpoint, exit 130. A second one exits at
    // once; checkpoints are written atomically, so nothing on disk is corrupted.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                say!("\nsecond interrupt: exiting now (the last checkpoint on disk is intact)");
                std::process::exit(130);
            }
            say!("\ninterrupt: finishing the step and writing a checkpoint (again to exit at once)");
        });
    }

    let plan = RunPlan { out: &out, epochs: args.epochs, test: &split.test, eval_batch: args.eval_batch, samples: 64, resumed: resume.is_some() };
    let mut quality = if leader { epoch_frechet(&gpu, &trainer.config.model, &split.test, args.fd_samples, seed)? } else { None };
    let mut printer = Printer::new();
    let outcome = run_epochs(&mut trainer, &plan, quality.as_mut().map(|q| q as &mut dyn SampleQuality), &stop, |e| printer.event(e))?;
    drop(quality);
    printer.clear();
    drop(trainer);
    match outcome {
        _ if !leader => Ok(if matches!(outcome, Outcome::Interrupted { .. }) { Ended::Interrupted } else { Ended::Done }),
        Outcome::Finished { curves } => {
            say!("wrote {} and the per-epoch grids, metrics.csv and checkpoint in {}", curves.display(), out.display());
            Ok(Ended::Done)
        }
        Outcome::AlreadyDone => Ok(Ended::Done),
        Outcome::Interrupted { checkpoint, step, epoch, step_in_epoch, steps, during_evaluation } => {
            if during_evaluation {
                say!("interrupted during the epoch's evaluation; checkpoint: {}", checkpoint.display());
            } else {
                say!("stopped at step {step} (epoch {epoch}, step {step_in_epoch} of {steps}); checkpoint: {}", checkpoint.display());
            }
            say!("continue with: vaegan train --resume {}", out.display());
            Ok(Ended::Interrupted)
        }
    }
}

/// Prints a run's events: a progress bar on a terminal; plain lines otherwise (a log, a
/// pipe), one per phase and about ten per epoch for the steps, so that a log shows where
/// the run is.
struct Printer {
    bar: Option<indicatif::ProgressBar>,
    terminal: bool,
    epoch: usize,
    epochs: usize,
    last_tenth: usize,
}

impl Printer {
    fn new() -> Self {
        Printer { bar: None, terminal: std::io::stderr().is_terminal(), epoch: 0, epochs: 0, last_tenth: 0 }
    }

    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Repaired(r) => say!("warning: {r}"),
            Event::AlreadyDone { done, asked } => say!("{done} epochs already done (asked for {asked}): nothing to train"),
            Event::EpochStarted { epoch, epochs, step_in_epoch, steps } => {
                (self.epoch, self.epochs, self.last_tenth) = (epoch, epochs, step_in_epoch * 10 / steps.max(1));
                if self.terminal {
                    let bar = indicatif::ProgressBar::new(steps as u64);
                    bar.set_style(
                        indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:28}] {pos}/{len} steps {msg} ETA {eta}")
                            .expect("a valid template")
                            .progress_chars("=> "),
                    );
                    bar.set_prefix(format!("{epoch}/{epochs}"));
                    bar.set_position(step_in_epoch as u64);
                    self.bar = Some(bar);
                } else {
                    say!("epoch {epoch}/{epochs}: training from step {step_in_epoch} of {steps}");
                }
            }
            Event::Step { step_in_epoch, steps, samples_per_s, losses } => {
                // Formatted only when shown: this runs after every step.
                let text = || losses.map(|v| v.iter().map(|(n, x)| format!("{n} {x:.3}")).collect::<Vec<_>>().join(" ")).unwrap_or_default();
                if let Some(bar) = &self.bar {
                    bar.set_position(step_in_epoch as u64);
                    if step_in_epoch % 10 == 0 {
                        bar.set_message(format!("{} samples/s | {}", super::common::rate(samples_per_s), text()));
                    }
                } else if step_in_epoch * 10 / steps.max(1) > self.last_tenth && step_in_epoch < steps {
                    self.last_tenth = step_in_epoch * 10 / steps.max(1);
                    say!(
                        "epoch {}/{}: step {step_in_epoch} of {steps}, {} samples/s | {}",
                        self.epoch,
                        self.epochs,
                        super::common::rate(samples_per_s),
                        text()
                    );
                }
            }
            Event::CheckpointWriting { epoch } => {
                self.clear();
                if !self.terminal {
                    say!("epoch {epoch}/{}: writing the checkpoint", self.epochs);
                }
            }
            Event::CheckpointWritten { epoch, path } => {
                if !self.terminal {
                    say!("epoch {epoch}/{}: checkpoint written to {}", self.epochs, path.display());
                }
            }
            Event::Evaluating { epoch } => {
                if !self.terminal {
                    say!("epoch {epoch}/{}: evaluating on the test set", self.epochs);
                }
            }
            Event::EpochDone(s) => {
                let skipped = s.skipped.map(|[d, g]| format!(" | balancing skipped D {d} and decoder {g} updates")).unwrap_or_default();
                let live = s.fd_samples_live.map(|fd| format!(" (last weights {fd:.2})")).unwrap_or_default();
                let fd = s.fd_samples.map(|fd| format!(" | samples FD {fd:.2}{live}")).unwrap_or_default();
                let means = s.train_means.iter().map(|(n, v)| format!("{n} {v:.4}")).collect::<Vec<_>>().join(" ");
                say!(
                    "epoch {}/{}: {:.1}s, {} samples/s | train {means} | test {}{fd}{skipped}",
                    s.epoch,
                    s.epochs,
                    s.seconds,
                    super::common::rate(s.samples_per_s),
                    describe(s.test)
                );
            }
        }
    }
}

fn describe(r: &EvalResult) -> String {
    let mut parts = vec![];
    if let Some(n) = r.nelbo {
        parts.push(format!("−ELBO {n:.2} nats/image (BCE {:.2} + KL {:.2})", r.bce.unwrap_or(f64::NAN), r.kl));
    } else {
        parts.push(format!("KL {:.2}", r.kl));
    }
    parts.push(format!("pixel MSE {:.5}", r.mse));
    if let Some(a) = r.d_accuracy {
        parts.push(format!("D accuracy {:.1}%", 100.0 * a));
    }
    format!("{} on {} images", parts.join(", "), r.images)
}

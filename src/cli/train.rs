//! `vaegan train`, `vaegan sample`, `vaegan reconstruct`, `vaegan eval`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;

use super::DeviceArgs;
use crate::checkpoint::{self, Checkpoint};
use crate::data::{self, Split};
use crate::model::{Mode, RunConfig};
use crate::pictures;
use crate::train::eval::{fixed_normals, Decoder, EvalResult, Evaluator};
use crate::train::{limited, Trainer};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// A folder of IDX files (MNIST, Fashion-MNIST, KMNIST naming) or of PNG images.
    /// Default: the MNIST shipped in datasets/mnist.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Model preset: mnist-mlp (VAE-GAN) or pytorch-vae (the classic PyTorch VAE).
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
    /// Weight of L_llike in the decoder's objective.
    #[arg(long)]
    gamma: Option<f32>,
    /// Weight of the pixel BCE term (vae-gan).
    #[arg(long)]
    pixel_weight: Option<f32>,
    /// Larsen et al.'s discriminator/decoder balancing.
    #[arg(long)]
    balance: bool,
    /// f32, or f16: mixed precision — matmuls read f16 copies of their operands (SHADER_F16
    /// needed), with f32 master weights, Adam and accumulation. May change on --resume.
    #[arg(long)]
    precision: Option<crate::graph::gpu_exec::Precision>,
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
}

fn positive(name: &str, v: Option<f32>) -> anyhow::Result<()> {
    if let Some(v) = v {
        if !(v.is_finite() && v > 0.0) {
            bail!("--{name} {v}: must be a positive number");
        }
    }
    Ok(())
}

fn load_data(path: &Path, size: usize, seed: u64, limit: Option<usize>, test_limit: Option<usize>) -> anyhow::Result<Split> {
    let split = data::load(path, size, seed)?;
    let mut split = limited(split, limit, test_limit);
    split.train.source = path.display().to_string();
    Ok(split)
}

/// The output folder, created and checked to be writable.
fn prepare_out(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the output folder", dir.display()))?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"ok").with_context(|| format!("{}: the output folder is not writable", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn append(path: &Path, header: &str, row: &str) -> anyhow::Result<()> {
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("{}: cannot write", path.display()))?;
    if new {
        writeln!(f, "{header}")?;
    }
    writeln!(f, "{row}")?;
    Ok(())
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.4}")).unwrap_or_default()
}

pub fn train(device: &DeviceArgs, args: &TrainArgs) -> anyhow::Result<()> {
    positive("lr", args.lr)?;
    positive("lr-discriminator", args.lr_discriminator)?;
    if args.batch == 0 {
        bail!("--batch 0: the batch size must be at least 1");
    }
    let resume = match &args.resume {
        Some(dir) => Some(Checkpoint::load(&checkpoint::path_in(dir))?),
        None => None,
    };
    let (config, batch, seed, out, data_path, limit) = match &resume {
        Some(ck) => {
            let data_path = args.data.clone().unwrap_or_else(|| PathBuf::from(&ck.data));
            (ck.config.clone(), ck.batch, ck.seed, args.resume.clone().unwrap(), data_path, ck.limit)
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
            if let Some(g) = args.gamma {
                config.model.gamma = g;
            }
            if let Some(w) = args.pixel_weight {
                config.model.pixel_weight = w;
            }
            config.optim.balance |= args.balance;
            (config, args.batch, args.seed, args.out.clone(), args.data.clone().unwrap_or_else(data::default_mnist), args.limit)
        }
    };
    let mut config = config;
    if let Some(p) = args.precision {
        config.optim.precision = p;
    }
    let side = (config.model.input as f64).sqrt().round() as usize;
    let split = load_data(&data_path, side.max(1), seed, limit, args.test_limit)?;
    if resume.is_none() {
        config.model.input = split.train.dim();
    }
    config.validate().map_err(|e| anyhow::anyhow!("config: {e}"))?;
    if batch > split.train.count {
        bail!("--batch {batch} is larger than the {} training images", split.train.count);
    }
    prepare_out(&out)?;
    std::fs::write(out.join("config.toml"), config.to_toml())?;

    let gpu = device.open()?;
    eprintln!("adapter: {}", gpu.describe());
    eprintln!(
        "data: {} — {} training and {} test images of {}x{}",
        data_path.display(), split.train.count, split.test.count, split.train.height, split.train.width
    );
    let mut trainer = Trainer::new(&gpu, config.clone(), batch, seed, &split.train, resume.as_ref())?;
    trainer.data_limit = limit;
    let eval_batch = args.eval_batch.min(split.test.count).max(1);
    let mut evaluator = Evaluator::new(&gpu, &config.model, eval_batch, seed)?;
    let n_samples = 64;
    let mut decoder = Decoder::new(&gpu, &config.model, n_samples)?;
    let z_fixed = fixed_normals(n_samples, config.model.latent, seed ^ 0x5a5a);

    // Ctrl-C (or SIGTERM): finish the step, checkpoint, exit 130. A second one exits at
    // once; checkpoints are written atomically, so nothing on disk is corrupted.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond interrupt: exiting now (the last checkpoint on disk is intact)");
                std::process::exit(130);
            }
            eprintln!("\ninterrupt: finishing the step and writing a checkpoint (again to exit at once)");
        });
    }

    let names: Vec<String> = trainer.step_graph.losses.iter().map(|(n, _)| n.clone()).collect();
    let metrics_header = format!(
        "epoch,step,seconds,samples_per_s,{},test_nelbo,test_bce,test_kl,test_mse,d_accuracy",
        names.iter().map(|n| format!("train_{n}")).collect::<Vec<_>>().join(",")
    );
    let losses_header = format!("step,{}", names.join(","));
    if trainer.completed_epochs() >= args.epochs {
        eprintln!("{} epochs already done (asked for {}): nothing to train", trainer.completed_epochs(), args.epochs);
    }
    while trainer.completed_epochs() < args.epochs {
        trainer.advance_if_done()?;
        let epoch = trainer.position.epoch;
        let first_step = trainer.exec.step;
        let t0 = Instant::now();
        let bar = indicatif::ProgressBar::new(trainer.steps_per_epoch as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:28}] {pos}/{len} steps {msg} ETA {eta}")
                .expect("template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, args.epochs));
        bar.set_position(trainer.position.step_in_epoch as u64);
        let finished = trainer.run_epoch(&stop, |t| {
            bar.set_position(t.position.step_in_epoch as u64);
            if t.position.step_in_epoch % 10 == 0 {
                let rate = (t.exec.step - first_step) as f64 * t.batch as f64 / t0.elapsed().as_secs_f64();
                let losses = t.history.last().map(|(_, v)| v.iter().map(|(n, x)| format!("{n} {x:.3}")).collect::<Vec<_>>().join(" ")).unwrap_or_default();
                bar.set_message(format!("{rate:.0} samples/s | {losses}"));
            }
        });
        bar.finish_and_clear();
        let finished = match finished {
            Ok(f) => f,
            Err(e) => {
                write_history(&out, &losses_header, &mut trainer)?;
                return Err(e.into());
            }
        };
        let path = trainer.save_checkpoint(&out)?;
        write_history(&out, &losses_header, &mut trainer)?;
        if !finished {
            eprintln!("stopped at step {} (epoch {}, step {} of {}); checkpoint: {}", trainer.exec.step, epoch + 1, trainer.position.step_in_epoch, trainer.steps_per_epoch, path.display());
            eprintln!("continue with: vaegan train --resume {}", out.display());
            std::process::exit(130);
        }
        let seconds = t0.elapsed().as_secs_f64();
        let steps = trainer.exec.step - first_step;
        let rate = steps as f64 * batch as f64 / seconds;
        let train_means = mean_since(&out, first_step)?;

        // Pictures and evaluation with the epoch's weights.
        let params = trainer.exec.read_params()?;
        let lookup = |n: &str| params.iter().find(|(k, _, _)| k == n).map(|(_, _, v)| v.clone());
        evaluator.load(&lookup)?;
        decoder.load(&lookup)?;
        let result = evaluator.evaluate(&split.test)?;
        let (h, w) = (split.train.height, split.train.width);
        let samples = decoder.decode(&z_fixed)?;
        pictures::grid_png(&out.join(format!("samples_epoch_{:03}.png", epoch + 1)), &samples, n_samples, h, w, 8)?;
        let (orig, rec) = evaluator.reconstruct(&split.test, 32.min(eval_batch))?;
        let shown = orig.len() / (h * w);
        pictures::pairs_png(&out.join(format!("reconstructions_epoch_{:03}.png", epoch + 1)), &orig, &rec, shown, h, w, 8)?;

        let row = format!(
            "{},{},{seconds:.2},{rate:.1},{},{},{},{:.4},{:.6},{}",
            epoch + 1,
            trainer.exec.step,
            names.iter().map(|n| train_means.iter().find(|(k, _)| k == n).map(|(_, v)| format!("{v:.5}")).unwrap_or_default()).collect::<Vec<_>>().join(","),
            fmt_opt(result.nelbo),
            fmt_opt(result.bce),
            result.kl,
            result.mse,
            fmt_opt(result.d_accuracy)
        );
        append(&out.join("metrics.csv"), &metrics_header, &row)?;
        let skipped = if config.optim.balance { format!(" | balancing skipped D {} and decoder {} updates", trainer.skipped[0], trainer.skipped[1]) } else { String::new() };
        eprintln!(
            "epoch {}/{}: {:.1}s, {:.0} samples/s | train {} | test {}{skipped}",
            epoch + 1,
            args.epochs,
            seconds,
            rate,
            train_means.iter().map(|(n, v)| format!("{n} {v:.4}")).collect::<Vec<_>>().join(" "),
            describe(&result)
        );
        if stop.load(Ordering::SeqCst) && trainer.completed_epochs() < args.epochs {
            eprintln!("interrupted during the epoch's evaluation; checkpoint: {}", path.display());
            eprintln!("continue with: vaegan train --resume {}", out.display());
            std::process::exit(130);
        }
    }
    let curves = out.join("loss_curves.png");
    write_curves(&out.join("losses.csv"), &curves)?;
    eprintln!("wrote {} and the per-epoch grids, metrics.csv and checkpoint in {}", curves.display(), out.display());
    Ok(())
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

/// Appends the read-back losses to losses.csv and forgets them.
fn write_history(out: &Path, header: &str, trainer: &mut Trainer) -> anyhow::Result<()> {
    for (step, values) in trainer.history.drain(..) {
        let row = format!("{step},{}", values.iter().map(|(_, v)| format!("{v}")).collect::<Vec<_>>().join(","));
        append(&out.join("losses.csv"), header, &row)?;
    }
    Ok(())
}

/// Reads losses.csv: (names, rows of (step, values)).
fn read_losses(path: &Path) -> anyhow::Result<(Vec<String>, Vec<(f64, Vec<f64>)>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut lines = text.lines();
    let names: Vec<String> = lines.next().unwrap_or("").split(',').skip(1).map(str::to_string).collect();
    let rows = lines
        .filter_map(|l| {
            let mut it = l.split(',').map(|x| x.parse::<f64>().unwrap_or(f64::NAN));
            let step = it.next()?;
            Some((step, it.collect()))
        })
        .collect();
    Ok((names, rows))
}

fn mean_since(out: &Path, after_step: u64) -> anyhow::Result<Vec<(String, f64)>> {
    let (names, rows) = read_losses(&out.join("losses.csv"))?;
    let recent: Vec<&Vec<f64>> = rows.iter().filter(|(s, _)| *s > after_step as f64).map(|(_, v)| v).collect();
    Ok(names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), recent.iter().map(|v| v[i]).sum::<f64>() / recent.len().max(1) as f64))
        .collect())
}

fn write_curves(losses: &Path, png: &Path) -> anyhow::Result<()> {
    let (names, rows) = read_losses(losses)?;
    let series: Vec<(String, Vec<(f64, f64)>)> =
        names.iter().enumerate().map(|(i, n)| (n.clone(), rows.iter().map(|(s, v)| (*s, v[i])).collect())).collect();
    pictures::curves_png(png, &series)?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    /// A run folder (its checkpoint.safetensors) or a checkpoint file.
    #[arg(long)]
    checkpoint: PathBuf,
}

fn load_checkpoint(path: &Path) -> anyhow::Result<Checkpoint> {
    let file = if path.is_dir() { checkpoint::path_in(path) } else { path.to_path_buf() };
    Ok(Checkpoint::load(&file)?)
}

/// Side of the model's square images.
fn image_side(c: &crate::model::ModelConfig) -> anyhow::Result<usize> {
    let side = (c.input as f64).sqrt().round() as usize;
    if side * side != c.input {
        bail!("the model's {} pixels are not a square image", c.input);
    }
    Ok(side)
}

/// A checkpoint's test data (from --data or where it was trained) and an evaluator with
/// its weights, at `batch` (capped by the test set).
fn checkpoint_evaluator<'g>(
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
    #[arg(long, default_value = "samples.png")]
    out: PathBuf,
}

pub fn sample(device: &DeviceArgs, args: &SampleArgs) -> anyhow::Result<()> {
    if args.n == 0 {
        bail!("-n must be at least 1");
    }
    let ck = load_checkpoint(&args.ck.checkpoint)?;
    let c = &ck.config.model;
    let side = image_side(c)?;
    let gpu = device.open()?;
    let (z, n, cols) = if args.walk {
        // Rows of 10 steps from a to b: z = (1 − t)·a + t·b.
        let rows = args.n.div_ceil(10).max(1);
        let ends = fixed_normals(2 * rows, c.latent, args.seed);
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
        (fixed_normals(args.n, c.latent, args.seed), args.n, (args.n as f64).sqrt().ceil() as usize)
    };
    let mut decoder = Decoder::new(&gpu, c, n)?;
    decoder.load(&|name| ck.param(name))?;
    let images = decoder.decode(&z)?;
    pictures::grid_png(&args.out, &images, n, side, side, cols)?;
    eprintln!("wrote {} ({n} {})", args.out.display(), if args.walk { "images: latent walks" } else { "samples" });
    Ok(())
}

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

pub fn reconstruct(device: &DeviceArgs, args: &ReconstructArgs) -> anyhow::Result<()> {
    if args.n == 0 {
        bail!("-n must be at least 1");
    }
    let ck = load_checkpoint(&args.ck.checkpoint)?;
    let side = image_side(&ck.config.model)?;
    let gpu = device.open()?;
    let (split, _, mut ev) = checkpoint_evaluator(&gpu, &ck, args.data.as_deref(), args.n, None)?;
    let (orig, rec) = ev.reconstruct(&split.test, args.n)?;
    let n = orig.len() / (side * side);
    pictures::pairs_png(&args.out, &orig, &rec, n, side, side, 8)?;
    eprintln!("wrote {}: {n} test images, each beside its reconstruction Dec(μ)", args.out.display());
    Ok(())
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    ck: CheckpointArgs,
    #[arg(long)]
    data: Option<PathBuf>,
    /// Test images per batch (the test set is evaluated in whole batches).
    #[arg(long, default_value_t = 250)]
    batch: usize,
    #[arg(long)]
    test_limit: Option<usize>,
    /// Also measure sample quality: Fréchet distance in the MNIST classifier's features,
    /// class coverage and confidence of generated samples.
    #[arg(long)]
    quality: bool,
    /// Samples to generate for --quality.
    #[arg(short, long, default_value_t = 10_000)]
    n: usize,
    /// Classifier weights for --quality (default: the one shipped in datasets/classifier).
    #[arg(long)]
    classifier: Option<PathBuf>,
    /// Seed of the generated samples' latent codes.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

pub fn eval(device: &DeviceArgs, args: &EvalArgs) -> anyhow::Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let ck = load_checkpoint(&args.ck.checkpoint)?;
    let c = &ck.config.model;
    let gpu = device.open()?;
    let (split, path, mut ev) = checkpoint_evaluator(&gpu, &ck, args.data.as_deref(), args.batch, args.test_limit)?;
    let r = ev.evaluate(&split.test)?;
    println!("checkpoint: step {}, epoch {}, {:?} {}", ck.step, ck.epoch, c.mode, path.display());
    if let Some(n) = r.nelbo {
        println!("test negative ELBO: {n:.2} nats/image (BCE {:.2} + KL {:.2})", r.bce.unwrap_or(f64::NAN), r.kl);
    }
    println!("reconstruction pixel MSE: {:.5}", r.mse);
    if let Some(a) = r.d_accuracy {
        println!("discriminator accuracy (real vs generated): {:.1}%", 100.0 * a);
    }
    println!("images evaluated: {}", r.images);
    if args.quality {
        quality(&gpu, &ck, &split, args)?;
    }
    Ok(())
}

/// Generates `args.n` samples and compares them with the test set in the classifier's eyes.
fn quality(gpu: &crate::gpu::Gpu, ck: &Checkpoint, split: &Split, args: &EvalArgs) -> anyhow::Result<()> {
    use crate::quality::classifier::{coverage, Classifier, ClassifierWeights};
    use crate::quality::{frechet_distance, FeatureStats};
    if args.n < 2 {
        bail!("-n must be at least 2 for a covariance");
    }
    let path = args.classifier.clone().unwrap_or_else(crate::quality::classifier::default_path);
    let weights = ClassifierWeights::load(&path).map_err(anyhow::Error::msg)?;
    if split.test.dim() != 784 {
        bail!("--quality uses the MNIST classifier (28x28 images); this model's images are {}x{}", split.test.height, split.test.width);
    }
    let mut clf = Classifier::new(gpu, 500, 0)?;
    clf.load(&weights)?;
    let dim = clf.feature_dim();
    let c = &ck.config.model;
    let batch = 500.min(args.n);
    let mut decoder = Decoder::new(gpu, c, batch)?;
    decoder.load(&|name| ck.param(name))?;
    let z = fixed_normals(args.n.div_ceil(batch) * batch, c.latent, args.seed);
    let mut samples = Vec::with_capacity(args.n * c.input);
    for chunk in z.chunks(batch * c.latent) {
        samples.extend(decoder.decode(chunk)?);
    }
    samples.truncate(args.n * c.input);
    let generated = clf.read(&samples)?;
    let test_images = crate::train::eval::scale_images(&split.test, 0..split.test.count, crate::data::gpu::Scaling::UNIT);
    let test = clf.read(&test_images)?;
    let n_train = split.train.count.min(split.test.count);
    let train_images = crate::train::eval::scale_images(&split.train, 0..n_train, crate::data::gpu::Scaling::UNIT);
    let train = clf.read(&train_images)?;
    let (g_stats, t_stats, tr_stats) = (
        FeatureStats::from_rows(&generated.features, dim),
        FeatureStats::from_rows(&test.features, dim),
        FeatureStats::from_rows(&train.features, dim),
    );
    let cov = coverage(&generated.probs);
    println!("sample quality (classifier {}, test accuracy {:.2}%):", path.display(), 100.0 * weights.test_accuracy);
    println!("  Fréchet distance, {} samples vs {} test images: {:.3}", args.n, split.test.count, frechet_distance(&g_stats, &t_stats));
    println!("  Fréchet distance, {n_train} training vs test images (the floor): {:.3}", frechet_distance(&tr_stats, &t_stats));
    println!("  predicted classes 0-9: {:?}", cov.histogram);
    println!("  class entropy: {:.3} nats (uniform: {:.3})", cov.entropy, (10f64).ln());
    println!("  samples classified with confidence >= 0.9: {:.1}%", 100.0 * cov.confident);
    Ok(())
}

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
pub fn classifier(device: &DeviceArgs, args: &ClassifierArgs) -> anyhow::Result<()> {
    positive("lr", Some(args.lr))?;
    if args.batch == 0 || args.epochs == 0 {
        bail!("--batch and --epochs must be at least 1");
    }
    let path = args.data.clone().unwrap_or_else(data::default_mnist);
    let split = load_data(&path, 28, args.seed, None, None)?;
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

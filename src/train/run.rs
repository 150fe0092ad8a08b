//! A run, from its first epoch to its last: this is where an epoch ends. Each epoch takes
//! its steps, writes the checkpoint, appends the read-back losses to `losses.csv`,
//! evaluates on the test set with the epoch's weights, draws the sample and
//! reconstruction grids and appends a row to `metrics.csv`; the run ends with the loss
//! curves. The same numbers and pictures go to TensorBoard (`tensorboard.rs`). An interrupt (the `stop` flag) ends the current step, writes a checkpoint and
//! returns. The caller hears about every phase through [`Event`]s and prints them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use web_time::Instant;

use super::eval::{fixed_normals, Decoder, EvalResult, Evaluator};
use super::logs::{CsvLog, Repair, Row};
use super::tensorboard::{self, EventWriter};
use super::{Result, TrainError, Trainer};
use crate::data::Dataset;
use crate::pictures;

/// What a run does besides stepping.
pub struct RunPlan<'a> {
    /// The run folder.
    pub out: &'a Path,
    /// Epochs to reach (a resumed run continues up to this many).
    pub epochs: usize,
    /// The test set, evaluated after every epoch.
    pub test: &'a Dataset,
    /// Test images per evaluation batch.
    pub eval_batch: usize,
    /// Samples in each epoch's grid (decoded from the same fixed codes every epoch).
    pub samples: usize,
    /// True when the trainer continues a checkpoint of this folder: the side files are
    /// reopened (and repaired); otherwise they start anew.
    pub resumed: bool,
}

/// Sample quality at each epoch's end, with the epoch's weights: the Fréchet distance of
/// samples decoded from z ~ N(0, I) to the test images. The quality layer implements it
/// (`quality::EpochFrechet`, in a shipped classifier's features); the run only asks, and
/// writes the answer to `metrics.csv` (`fd_samples`), TensorBoard and the epoch line.
pub trait SampleQuality {
    /// `params` looks the epoch's parameters and running statistics up by name.
    fn frechet_samples(&mut self, params: &dyn Fn(&str) -> Option<Vec<f32>>) -> Result<f64>;
}

/// Means of the losses read back during an epoch, and the test evaluation after it.
pub struct EpochSummary<'a> {
    pub epoch: usize,
    pub epochs: usize,
    pub seconds: f64,
    pub samples_per_s: f64,
    pub train_means: &'a [(String, f64)],
    pub test: &'a EvalResult,
    /// Discriminator and decoder updates skipped by the balancing (when it is on).
    pub skipped: Option<[u64; 2]>,
    /// The Fréchet distance of N(0, I) samples, where the run measures it (`SampleQuality`):
    /// from the averaged decoder when the run keeps one (`optim.decoder_ema`).
    pub fd_samples: Option<f64>,
    /// The same from the decoder's last weights, when the run keeps an average.
    pub fd_samples_live: Option<f64>,
}

/// What happens during a run, in order. Epochs are counted from 1 here.
pub enum Event<'a> {
    /// A side file held a bad tail or rows past the checkpoint; they were dropped.
    Repaired(&'a Repair),
    /// The epochs asked for are already done: nothing to train.
    AlreadyDone {
        done: usize,
        asked: usize,
    },
    EpochStarted {
        epoch: usize,
        epochs: usize,
        step_in_epoch: usize,
        steps: usize,
    },
    /// After each step; `losses` are the latest read back (a few steps old: readbacks are
    /// asynchronous).
    Step {
        step_in_epoch: usize,
        steps: usize,
        samples_per_s: f64,
        losses: Option<&'a [(String, f32)]>,
    },
    CheckpointWriting {
        epoch: usize,
    },
    CheckpointWritten {
        epoch: usize,
        path: &'a Path,
    },
    Evaluating {
        epoch: usize,
    },
    EpochDone(EpochSummary<'a>),
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every epoch asked for is done; the loss curves are at `curves`.
    Finished { curves: PathBuf },
    /// Nothing was left to train.
    AlreadyDone,
    /// Interrupted: the checkpoint at `checkpoint` continues it.
    Interrupted { checkpoint: PathBuf, step: u64, epoch: usize, step_in_epoch: usize, steps: usize, during_evaluation: bool },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |err| TrainError::Io { path: path.display().to_string(), err }
}

/// How an interrupted run stands, for the caller to print.
fn interrupted(trainer: &Trainer, checkpoint: PathBuf, epoch: usize, during_evaluation: bool) -> Outcome {
    Outcome::Interrupted {
        checkpoint,
        step: trainer.exec.step,
        epoch,
        step_in_epoch: trainer.position.step_in_epoch,
        steps: trainer.steps_per_epoch,
        during_evaluation,
    }
}

/// A replica other than rank 0: the same steps, and the same questions to the others at the
/// same points as `run_epochs` asks them (whether to stop, each step and after each epoch);
/// no files, no evaluation. Rank 0's evaluation holds the others at their next step.
fn follow_epochs(trainer: &mut Trainer, plan: &RunPlan, stop: &AtomicBool) -> Result<Outcome> {
    if trainer.completed_epochs() >= plan.epochs {
        return Ok(Outcome::AlreadyDone);
    }
    let checkpoint = crate::checkpoint::path_in(plan.out);
    while trainer.completed_epochs() < plan.epochs {
        trainer.advance_if_done()?;
        let epoch = trainer.position.epoch + 1;
        let finished = trainer.run_epoch(stop, |_| {})?;
        trainer.history.clear();
        if !finished {
            return Ok(interrupted(trainer, checkpoint, epoch, false));
        }
        if trainer.collective.any(stop.load(Ordering::SeqCst)) && trainer.completed_epochs() < plan.epochs {
            return Ok(interrupted(trainer, checkpoint, epoch, true));
        }
    }
    Ok(Outcome::Finished { curves: plan.out.join("loss_curves.png") })
}

fn cell(v: Option<f64>, decimals: usize) -> String {
    v.map(|x| format!("{x:.decimals$}")).unwrap_or_default()
}

/// Runs `trainer` up to `plan.epochs`, telling `on_event` what happens. Of data-parallel
/// replicas, rank 0 does all of this; the others only step (`follow_epochs`).
pub fn run_epochs<'g>(
    trainer: &mut Trainer<'g>,
    plan: &RunPlan,
    mut quality: Option<&mut dyn SampleQuality>,
    stop: &AtomicBool,
    mut on_event: impl FnMut(Event),
) -> Result<Outcome> {
    if trainer.collective.rank() != 0 {
        return follow_epochs(trainer, plan, stop);
    }
    let gpu = trainer.gpu;
    let config = trainer.config.clone();
    let names: Vec<String> = trainer.step_graph.losses.iter().map(|(n, _)| n.clone()).collect();
    let losses = CsvLog::new(plan.out.join("losses.csv"), format!("step,{}", names.join(",")));
    let metrics = CsvLog::new(
        plan.out.join("metrics.csv"),
        format!(
            "epoch,step,seconds,samples_per_s,{},test_nelbo,test_bce,test_kl,test_mse,d_accuracy,fd_samples,fd_samples_live",
            names.iter().map(|n| format!("train_{n}")).collect::<Vec<_>>().join(",")
        ),
    );
    // The loss history of the whole run, for the epoch means and the curves.
    let mut history: Vec<Row> = if plan.resumed {
        let (rows, repair) = losses.reopen(trainer.exec.step).map_err(io(&losses.path))?;
        if let Some(r) = &repair {
            on_event(Event::Repaired(r));
        }
        let (_, repair) = metrics.reopen(trainer.completed_epochs() as u64).map_err(io(&metrics.path))?;
        if let Some(r) = &repair {
            on_event(Event::Repaired(r));
        }
        rows
    } else {
        losses.create().map_err(io(&losses.path))?;
        metrics.create().map_err(io(&metrics.path))?;
        vec![]
    };
    // TensorBoard's copy: the losses as they are read back, the rest at each epoch's end.
    let mut board = EventWriter::open(plan.out, plan.resumed.then_some(trainer.exec.step)).map_err(io(&plan.out.join(tensorboard::FILE_NAME)))?;
    if board.kept == 0 {
        board.send(tensorboard::text(trainer.exec.step, "config", &format!("```toml\n{}\n```", config.to_toml())));
    }
    let loss_tags: Vec<String> = names.iter().map(|n| format!("loss/{n}")).collect();
    let board_losses = |board: &EventWriter, rows: &[(u64, Vec<(String, f32)>)]| {
        for (step, values) in rows {
            let tagged: Vec<(String, f32)> = loss_tags.iter().cloned().zip(values.iter().map(|(_, v)| *v)).collect();
            board.send(tensorboard::scalars(*step, &tagged));
        }
    };
    if trainer.completed_epochs() >= plan.epochs {
        on_event(Event::AlreadyDone { done: trainer.completed_epochs(), asked: plan.epochs });
        return Ok(Outcome::AlreadyDone);
    }

    let eval_batch = plan.eval_batch.min(plan.test.count).max(1);
    let mut evaluator = Evaluator::new(gpu, &config.model, eval_batch, trainer.seed)?;
    let mut decoder = Decoder::new(gpu, &config.model, plan.samples)?;
    // A conditioned model's samples take the test images' labels, in order.
    if let Some(rows) = super::eval::label_rows(&config.model, plan.test)? {
        decoder.condition(&rows)?;
    }
    let z_fixed = fixed_normals(plan.samples, config.model.latent, trainer.seed ^ 0x5a5a);
    let shape = plan.test.shape();
    let dim = plan.test.dim();

    while trainer.completed_epochs() < plan.epochs {
        trainer.advance_if_done()?;
        let epoch = trainer.position.epoch + 1;
        let epoch_start_step = trainer.exec.step - trainer.position.step_in_epoch as u64;
        let first_step = trainer.exec.step;
        let t0 = Instant::now();
        on_event(Event::EpochStarted { epoch, epochs: plan.epochs, step_in_epoch: trainer.position.step_in_epoch, steps: trainer.steps_per_epoch });
        let mut sent = 0;
        let finished = trainer.run_epoch(stop, |t| {
            board_losses(&board, &t.history[sent..]);
            sent = t.history.len();
            let rate = (t.exec.step - first_step) as f64 * t.batch as f64 / t0.elapsed().as_secs_f64();
            let losses = t.history.last().map(|(_, v)| v.as_slice());
            on_event(Event::Step { step_in_epoch: t.position.step_in_epoch, steps: t.steps_per_epoch, samples_per_s: rate, losses });
        });
        // The losses read back so far go to disk whatever happened (a diverged run's too).
        let save_losses = |trainer: &mut Trainer, history: &mut Vec<Row>| -> Result<()> {
            board_losses(&board, &trainer.history[sent.min(trainer.history.len())..]);
            for (step, values) in trainer.history.drain(..) {
                let row: Row = (step, values.iter().map(|(_, v)| Some(*v as f64)).collect());
                losses.append(&format!("{step},{}", values.iter().map(|(_, v)| v.to_string()).collect::<Vec<_>>().join(","))).map_err(io(&losses.path))?;
                history.push(row);
            }
            Ok(())
        };
        let finished = match finished {
            Ok(f) => f,
            Err(e) => {
                save_losses(trainer, &mut history)?;
                return Err(e);
            }
        };
        on_event(Event::CheckpointWriting { epoch });
        let ck = trainer.checkpoint()?;
        let path = crate::checkpoint::path_in(plan.out);
        ck.save(&path)?;
        on_event(Event::CheckpointWritten { epoch, path: &path });
        save_losses(trainer, &mut history)?;
        if !finished {
            return Ok(interrupted(trainer, path, epoch, false));
        }
        let seconds = t0.elapsed().as_secs_f64();
        let samples_per_s = (trainer.exec.step - first_step) as f64 * trainer.batch as f64 / seconds;
        // Means over the epoch's read-back losses (a resumed epoch's earlier rows included).
        let epoch_rows: Vec<&Row> = history.iter().filter(|(s, _)| *s > epoch_start_step).collect();
        let train_means: Vec<(String, f64)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let vals: Vec<f64> = epoch_rows.iter().filter_map(|(_, v)| v[i]).collect();
                (n.clone(), if vals.is_empty() { f64::NAN } else { vals.iter().sum::<f64>() / vals.len() as f64 })
            })
            .collect();

        // Evaluation and pictures with the epoch's weights, as the checkpoint gives them to
        // every later use of the model (the decoder's average, where the run keeps one).
        on_event(Event::Evaluating { epoch });
        let lookup = |n: &str| ck.tensor(n);
        evaluator.load(&lookup)?;
        decoder.load(&lookup)?;
        let test = evaluator.evaluate(plan.test)?;
        let samples = decoder.decode(&z_fixed)?;
        let grid = plan.out.join(format!("samples_epoch_{epoch:03}.png"));
        pictures::grid_png(&grid, &samples, plan.samples, shape, 8).map_err(io(&grid))?;
        let fd_samples = match quality.as_deref_mut() {
            Some(q) => Some(q.frechet_samples(&lookup)?),
            None => None,
        };
        // Beside it, the last weights' samples: what the average gains, in the same run.
        let fd_samples_live = match quality.as_deref_mut() {
            Some(q) if !ck.average.is_empty() => Some(q.frechet_samples(&|n| ck.param(n).or_else(|| ck.state(n)))?),
            _ => None,
        };
        let (orig, rec) = evaluator.reconstruct(plan.test, 32.min(evaluator.batch()))?;
        let pairs = plan.out.join(format!("reconstructions_epoch_{epoch:03}.png"));
        pictures::pairs_png(&pairs, &orig, &rec, orig.len() / dim, shape, 8).map_err(io(&pairs))?;

        let row = format!(
            "{epoch},{},{seconds:.2},{samples_per_s:.1},{},{},{},{:.4},{:.6},{},{},{}",
            trainer.exec.step,
            train_means.iter().map(|(_, v)| cell(v.is_finite().then_some(*v), 5)).collect::<Vec<_>>().join(","),
            cell(test.nelbo, 4),
            cell(test.bce, 4),
            test.kl,
            test.mse,
            cell(test.d_accuracy, 4),
            cell(fd_samples, 4),
            cell(fd_samples_live, 4)
        );
        metrics.append(&row).map_err(io(&metrics.path))?;
        let step = trainer.exec.step;
        let mut epoch_scalars = vec![("epoch/seconds".to_string(), seconds as f32), ("epoch/samples_per_s".to_string(), samples_per_s as f32)];
        for (name, v) in [("nelbo", test.nelbo), ("bce", test.bce), ("kl", Some(test.kl)), ("mse", Some(test.mse)), ("d_accuracy", test.d_accuracy)] {
            if let Some(v) = v {
                epoch_scalars.push((format!("test/{name}"), v as f32));
            }
        }
        if let Some(fd) = fd_samples {
            epoch_scalars.push(("quality/fd_samples".to_string(), fd as f32));
        }
        if let Some(fd) = fd_samples_live {
            epoch_scalars.push(("quality/fd_samples_live".to_string(), fd as f32));
        }
        board.send(tensorboard::scalars(step, &epoch_scalars));
        for (tag, path) in [("samples", &grid), ("reconstructions", &pairs)] {
            let png = std::fs::read(path).map_err(io(path))?;
            let size = pictures::png_size(&png).map_err(io(path))?;
            board.send(tensorboard::image(step, tag, png, size));
        }
        let skipped = config.optim.balance.then_some(trainer.skipped);
        on_event(Event::EpochDone(EpochSummary {
            epoch,
            epochs: plan.epochs,
            seconds,
            samples_per_s,
            train_means: &train_means,
            test: &test,
            skipped,
            fd_samples,
            fd_samples_live,
        }));
        // Every replica asks at the same point (see `follow_epochs`).
        if trainer.collective.any(stop.load(Ordering::SeqCst)) && trainer.completed_epochs() < plan.epochs {
            return Ok(interrupted(trainer, path, epoch, true));
        }
    }
    let curves = plan.out.join("loss_curves.png");
    let series: Vec<(String, Vec<(f64, f64)>)> =
        names.iter().enumerate().map(|(i, n)| (n.clone(), history.iter().filter_map(|(s, v)| v[i].map(|x| (*s as f64, x))).collect())).collect();
    pictures::curves_png(&curves, &series).map_err(io(&curves))?;
    board.close().map_err(io(&board.path))?;
    Ok(Outcome::Finished { curves })
}

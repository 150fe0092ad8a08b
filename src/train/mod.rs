//! Training: the step graph on the GPU fed by the GPU-resident data set, epochs of
//! permuted batches, balancing, evaluation, pictures, metrics and checkpoints.

#[cfg(not(target_arch = "wasm32"))]
pub mod attributes;
pub mod eval;
pub mod feed;
pub mod logs;
pub mod parallel;
#[cfg(not(target_arch = "wasm32"))]
pub mod prior;
pub mod restat;
#[cfg(not(target_arch = "wasm32"))]
pub mod run;
#[cfg(not(target_arch = "wasm32"))]
pub mod tensorboard;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::checkpoint::Checkpoint;
use crate::data::gpu::GpuDataset;
use crate::data::{Dataset, Split};
use crate::gpu::Gpu;
use crate::graph::{ExecOptions, GpuExecutor};
use crate::model::{build_step, Mode, RunConfig, StepGraph};
use crate::types::Act;
use crate::types::Scaling;

use feed::Shard;
use parallel::Collective;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Graph(#[from] crate::graph::GraphError),
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error("training diverged at step {step}: loss {loss} is {value}; the last good checkpoint is kept")]
    Diverged { step: u64, loss: String, value: f32 },
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// How the data's bytes map to the model's output range.
pub fn scaling_for(output: Act) -> Scaling {
    if output == Act::Tanh {
        Scaling::SYMMETRIC
    } else {
        Scaling::UNIT
    }
}

/// Epoch `epoch`'s order of the training images: a shuffle drawn from (seed, epoch) alone,
/// so that a resumed run draws the same.
pub fn permutation(seed: u64, epoch: usize, n: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let key = seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(key));
    order
}

/// The labels a conditioned model trains on: the data's attribute table (a labels file
/// beside the folder, or IDX classes as "0" … "9"), whose names must be the model's
/// conditions in order. None for an unconditioned model.
pub fn conditioning_labels(model: &crate::model::ModelConfig, set: &Dataset) -> Result<Option<crate::data::Attributes>> {
    if model.conditions.is_empty() {
        return Ok(None);
    }
    let Some(table) = set.attribute_table() else {
        return Err(TrainError::Invalid(format!(
            "the model is conditioned on {} labels but {} has none: put a labels file beside the images (CelebA's list_attr_celeba.txt or a CSV with a `file` column), or use IDX data with its labels file",
            model.conditions.len(),
            set.source
        )));
    };
    if table.names != model.conditions {
        return Err(TrainError::Invalid(format!(
            "the model is conditioned on the labels [{}] but {} has [{}]",
            model.conditions.join(", "),
            table.source,
            table.names.join(", ")
        )));
    }
    Ok(Some(table))
}

/// Where training stands: enough to continue exactly.
#[derive(Clone, Debug, Default)]
pub struct Position {
    pub epoch: usize,
    pub step_in_epoch: usize,
}

pub struct Trainer<'g> {
    pub gpu: &'g Gpu,
    pub config: RunConfig,
    pub batch: usize,
    pub seed: u64,
    pub data_source: String,
    pub data_limit: Option<usize>,
    pub test_limit: Option<usize>,
    /// The crop the folder images were read with (kept in checkpoints for resume).
    pub crop: crate::data::Crop,
    pub step_graph: StepGraph,
    pub exec: GpuExecutor<'g>,
    feed: feed::Feed,
    /// Training images and values per image.
    count: usize,
    dim: usize,
    gather: usize,
    /// The prelude launch that gathers the batch's labels (conditioned models).
    gather_labels: Option<usize>,
    /// The training labels a conditioned model with an averaged decoder draws its prior
    /// codes' labels from, to re-estimate the average's statistics at each checkpoint.
    prior_labels: Option<crate::data::Attributes>,
    scaling: Scaling,
    pub steps_per_epoch: usize,
    pub position: Position,
    /// Read losses back every this many steps (every step when balancing).
    pub readback_every: usize,
    /// (step, [(name, value)]) for every readback so far.
    pub history: Vec<(u64, Vec<(String, f32)>)>,
    /// Which groups the balancing let train at the last step (encoder, decoder, discriminator).
    pub last_update: Vec<bool>,
    /// Steps whose discriminator / decoder update the balancing skipped.
    pub skipped: [u64; 2],
    /// The discriminator's losses at the newest step read back, (step, d_real, d_fake):
    /// what the balancing decides the next step's updates from. Kept apart from `history`
    /// (which the run drains at every epoch's end) and saved in checkpoints, so that a
    /// balanced run's decisions depend on the seed alone, not on when readbacks land.
    pub balance_losses: Option<(u64, f32, f32)>,
    /// This replica's rows of each global batch (all of them in a single process).
    pub shard: Shard,
    /// The processes of the run (`parallel::Single` for one).
    pub collective: Rc<dyn Collective>,
}

impl<'g> Trainer<'g> {
    /// A trainer on `train`; with `resume`, weights, Adam state, position and config come
    /// from the checkpoint. The set stays on the GPU when it fits one storage binding.
    pub fn new(gpu: &'g Gpu, config: RunConfig, batch: usize, seed: u64, train: &Dataset, resume: Option<&Checkpoint>) -> Result<Self> {
        Self::with_budget(gpu, config, batch, seed, train, resume, gpu.binding_limit())
    }

    /// As `new`, streaming the set (`feed`) when it takes more than `data_budget` bytes on
    /// the GPU.
    pub fn with_budget(
        gpu: &'g Gpu,
        config: RunConfig,
        batch: usize,
        seed: u64,
        train: &Dataset,
        resume: Option<&Checkpoint>,
        data_budget: u64,
    ) -> Result<Self> {
        Self::replica(gpu, config, batch, seed, train, resume, data_budget, Rc::new(parallel::Single))
    }

    /// As `with_budget`, as one of `collective.size()` data-parallel replicas: `batch` is the
    /// global batch, of which this replica takes its share (`feed::Shard`); the gradients
    /// are averaged over the replicas before every update.
    pub fn replica(
        gpu: &'g Gpu,
        config: RunConfig,
        batch: usize,
        seed: u64,
        train: &Dataset,
        resume: Option<&Checkpoint>,
        data_budget: u64,
        collective: Rc<dyn Collective>,
    ) -> Result<Self> {
        config.validate().map_err(TrainError::Invalid)?;
        if config.model.image != train.shape() {
            let [h, w, c] = config.model.image;
            return Err(TrainError::Invalid(format!(
                "the model takes {h}x{w} images with {c} channel(s) but the images of {} are {}x{} with {}",
                train.source, train.height, train.width, train.channels
            )));
        }
        if batch == 0 || batch > train.count {
            return Err(TrainError::Invalid(format!("batch size {batch} must be between 1 and the {} training images", train.count)));
        }
        let shard = Shard { index: collective.rank(), count: collective.size() };
        if !batch.is_multiple_of(shard.count) {
            return Err(TrainError::Invalid(format!(
                "the global batch {batch} does not split evenly over {} processes: use a multiple of {}",
                shard.count, shard.count
            )));
        }
        let local = shard.rows(batch);
        let labels = conditioning_labels(&config.model, train)?;
        let step_graph = build_step(&config.model, local, seed)?;
        // The largest tensor must fit one storage binding: say which batch would.
        let (largest, limit) = (step_graph.graph.largest_tensor_bytes(), gpu.binding_limit());
        if largest > limit {
            let fits = (batch as u64 * limit / largest).max(1);
            return Err(TrainError::Invalid(format!(
                "batch {local} (per process) needs a {largest}-byte tensor, over the adapter's storage binding limit of {limit} bytes; a batch of {fits} or less fits"
            )));
        }
        let names: Vec<String> = step_graph.graph.groups.iter().map(|g| g.name.clone()).collect();
        let epoch = resume.map(|ck| ck.epoch).unwrap_or(0);
        let rules = names.iter().map(|n| config.optim.rule(n, epoch)).collect();
        let mut exec =
            GpuExecutor::new(gpu, step_graph.graph.clone(), ExecOptions { seed, reuse: true, update: Some(rules), precision: config.optim.precision })?;
        let mut position = Position::default();
        if let Some(ck) = resume {
            if ck.batch != batch {
                return Err(TrainError::Invalid(format!("the checkpoint was trained at batch {}, not {batch}", ck.batch)));
            }
            let groups: Vec<usize> = (0..exec.graph.groups.len()).collect();
            exec.load_params(&groups, &|n| ck.param(n), Some((&|n| ck.moment_m(n), &|n| ck.moment_v(n))))?;
            exec.load_state(&|n| ck.state(n))?;
            if ck.updates.len() != exec.updates.len() {
                return Err(TrainError::Invalid(format!("the checkpoint has Adam state for {} groups, the model {}", ck.updates.len(), exec.updates.len())));
            }
            exec.updates = ck.updates.clone();
            exec.step = ck.step;
            position = Position { epoch: ck.epoch, step_in_epoch: ck.step_in_epoch };
        }
        // The decoder's averaged weights: the checkpoint's average, or (a new run, or one
        // that turns averaging on at this resume) the weights it starts from.
        if config.optim.decoder_ema > 0.0 {
            exec.average_group(step_graph.decoder, config.optim.decoder_ema)?;
            if let Some(ck) = resume.filter(|ck| !ck.average.is_empty()) {
                exec.load_averages(&|n| ck.averaged(n))?;
            }
        }
        exec.set_replica(shard.index, shard.count)?;
        let feed = feed::Feed::new(gpu, train, labels.as_ref(), batch, shard, seed, data_budget, &position)?;
        let scaling = scaling_for(config.model.output_act);
        let (gather, gather_labels) = {
            let (data, label_data, perm) = feed.gather_inputs(gpu)?;
            let gather = exec.push_prelude(data.gather(gpu, &perm, local, 0, scaling, exec.view(step_graph.x))?);
            let gather_labels = match (label_data, step_graph.y) {
                (Some(l), Some(y)) => Some(exec.push_prelude(l.gather(gpu, &perm, local, 0, Scaling::IDENTITY, exec.view(y))?)),
                _ => None,
            };
            (gather, gather_labels)
        };
        let steps_per_epoch = train.count / batch;
        let groups = exec.graph.groups.len();
        let balance = config.optim.balance && config.model.mode == Mode::VaeGan;
        let prior_labels = labels.filter(|_| config.optim.decoder_ema > 0.0);
        let mut trainer = Trainer {
            gpu,
            batch,
            seed,
            data_source: train.source.clone(),
            data_limit: None,
            test_limit: None,
            crop: resume.map(|ck| ck.crop).unwrap_or(crate::data::Crop::Centre),
            step_graph,
            exec,
            feed,
            count: train.count,
            dim: train.dim(),
            gather,
            gather_labels,
            prior_labels,
            scaling,
            steps_per_epoch,
            position,
            readback_every: if balance { 1 } else { 10 },
            history: vec![],
            last_update: vec![true; groups],
            skipped: [0, 0],
            balance_losses: resume.and_then(|ck| ck.balance_losses),
            shard,
            collective,
            config,
        };
        // Balancing reads every step's losses back: a step must never go without its readback
        // because every staging buffer is in flight.
        trainer.exec.wait_for_readback |= balance;
        trainer.start_epoch()?;
        Ok(trainer)
    }

    fn start_epoch(&mut self) -> Result<()> {
        // The learning rates of this epoch (the per-epoch decay).
        for gi in 0..self.exec.graph.groups.len() {
            let name = self.exec.graph.groups[gi].name.clone();
            self.exec.set_lr(gi, self.config.optim.lr_of(&name, self.position.epoch));
        }
        self.feed.start_epoch(self.gpu, self.seed, self.position.epoch)
    }

    /// Which groups to update this step. Larsen et al.'s balancing, from the discriminator's
    /// losses at the previous step: natively it waits for that step's readback (one step
    /// of GPU work), so the decisions are the same in every run of a seed and after a
    /// resume. The browser cannot block: there the newest losses read back decide, which
    /// may be a step or two older. The first step of a run (or of a resume from a
    /// checkpoint without them) updates every group.
    fn updates(&mut self) -> Result<Vec<bool>> {
        let groups = self.exec.graph.groups.len();
        let mut update = vec![true; groups];
        if !(self.config.optim.balance && self.step_graph.discriminator.is_some()) {
            return Ok(update);
        }
        let previous = self.exec.step;
        if cfg!(not(target_arch = "wasm32")) && previous > 0 && self.balance_losses.is_none_or(|(s, _, _)| s < previous) {
            self.collect(true)?;
            // Older losses would make the decision depend on timing, not on the seed.
            if self.balance_losses.is_none_or(|(s, _, _)| s < previous) {
                return Err(TrainError::Invalid(format!(
                    "the losses of step {previous} did not read back, and the balancing decides step {} from them",
                    previous + 1
                )));
            }
        }
        let Some((_, real, fake)) = self.balance_losses else { return Ok(update) };
        let (eq, margin) = (self.config.optim.equilibrium, self.config.optim.margin);
        let mut train_dis = !(real < eq - margin || fake < eq - margin);
        let mut train_dec = !(real > eq + margin || fake > eq + margin);
        if !train_dis && !train_dec {
            train_dis = true;
            train_dec = true;
        }
        if !train_dis {
            self.skipped[0] += 1;
        }
        if !train_dec {
            self.skipped[1] += 1;
        }
        update[self.step_graph.decoder] = train_dec;
        update[self.step_graph.discriminator.unwrap()] = train_dis;
        Ok(update)
    }

    /// One training step (no waiting for the GPU).
    pub fn step(&mut self) -> Result<()> {
        self.advance_if_done()?;
        let start = self.feed.before_step(self.gpu, &self.position, self.batch, self.shard)?;
        let rows = self.shard.rows(self.batch);
        self.exec.prelude(self.gather).write_params(self.gpu, &GpuDataset::params(rows, self.dim, start, self.scaling));
        if let Some(k) = self.gather_labels {
            let labels = self.config.model.conditions.len();
            self.exec.prelude(k).write_params(self.gpu, &GpuDataset::params(rows, labels, start, Scaling::IDENTITY));
        }
        let mut update = self.updates()?;
        // Every `readback_every` steps, and at the last step of an epoch so that every
        // epoch has losses to average however few steps it has.
        let last_of_epoch = self.position.step_in_epoch + 1 == self.steps_per_epoch;
        let readback = last_of_epoch || (self.exec.step + 1).is_multiple_of(self.readback_every as u64);
        if self.shard.count > 1 {
            // Every replica takes rank 0's choice of updates, and the mean gradient.
            self.collective.broadcast(&mut update);
            let collective = self.collective.clone();
            self.exec.step_reduced(readback, Some(&update), &mut |_, grads| {
                collective.mean(grads);
                Ok(())
            })?;
        } else {
            self.exec.step_with(readback, Some(&update))?;
        }
        self.last_update = update;
        self.position.step_in_epoch += 1;
        self.collect(false)?;
        Ok(())
    }

    /// Gathers finished readbacks (waiting for the GPU when `wait`), checking for divergence.
    pub fn collect(&mut self, wait: bool) -> Result<()> {
        let got = if wait { self.exec.wait_outputs()? } else { self.exec.poll_outputs()? };
        for (step, values) in got {
            if let Some((name, v)) = values.iter().find(|(_, v)| !v.is_finite()) {
                return Err(TrainError::Diverged { step, loss: name.clone(), value: *v });
            }
            let get = |n: &str| values.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
            if let (Some(real), Some(fake)) = (get("d_real"), get("d_fake")) {
                if self.balance_losses.is_none_or(|(s, _, _)| s < step) {
                    self.balance_losses = Some((step, real, fake));
                }
            }
            self.history.push((step, values));
        }
        Ok(())
    }

    /// True when batches stream from the host (the set exceeds the GPU data budget).
    pub fn streams(&self) -> bool {
        self.feed.is_streamed()
    }

    /// Training images.
    pub fn train_count(&self) -> usize {
        self.count
    }

    /// True when the current epoch's steps are all taken.
    pub fn epoch_done(&self) -> bool {
        self.position.step_in_epoch >= self.steps_per_epoch
    }

    /// Epochs whose steps are all taken.
    pub fn completed_epochs(&self) -> usize {
        self.position.epoch + self.epoch_done() as usize
    }

    /// Moves to the next epoch if this one is done (new permutation).
    pub fn advance_if_done(&mut self) -> Result<()> {
        if self.epoch_done() {
            self.position = Position { epoch: self.position.epoch + 1, step_in_epoch: 0 };
            self.start_epoch()?;
        }
        Ok(())
    }

    /// Runs the rest of the current epoch; stops early (returning false) when `stop` is set.
    pub fn run_epoch(&mut self, stop: &AtomicBool, mut on_step: impl FnMut(&Self)) -> Result<bool> {
        self.advance_if_done()?;
        while !self.epoch_done() {
            // Every replica stops at the same step.
            if self.collective.any(stop.load(Ordering::SeqCst)) {
                // Every readback in, for the checkpoint (the balancing's last losses).
                self.collect(true)?;
                return Ok(false);
            }
            self.step()?;
            on_step(self);
        }
        self.collect(true)?;
        Ok(true)
    }

    /// The current state as a checkpoint (waits for the GPU).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        pollster::block_on(self.checkpoint_async())
    }

    /// The current state as a checkpoint, once the GPU has copied it out.
    pub async fn checkpoint_async(&self) -> Result<Checkpoint> {
        self.gpu.wait()?;
        let params = self.exec.read_params_async().await?;
        let (m, v) = self.exec.read_moments_async().await?;
        let state = self.exec.read_state_async().await?;
        let average = self.average_async(&state).await?;
        // An epoch whose steps are all taken counts as completed.
        let (epoch, step_in_epoch) = if self.epoch_done() { (self.position.epoch + 1, 0) } else { (self.position.epoch, self.position.step_in_epoch) };
        Ok(Checkpoint {
            config: self.config.clone(),
            step: self.exec.step,
            epoch,
            step_in_epoch,
            updates: self.exec.updates.clone(),
            seed: self.seed,
            batch: self.batch,
            data: self.data_source.clone(),
            limit: self.data_limit,
            test_limit: self.test_limit,
            crop: self.crop,
            balance_losses: self.balance_losses,
            params,
            state,
            adam_m: m,
            adam_v: v,
            average,
        })
    }

    /// The decoder's averaged weights with running statistics re-estimated for them on
    /// `restat::AVERAGE_BATCHES` batches of prior codes, starting from the last weights'
    /// statistics (`state`); empty when the run keeps no average. The codes are drawn from
    /// the seed and the step, so a resumed run writes the same.
    async fn average_async(&self, state: &crate::graph::gpu_exec::NamedTensors) -> Result<crate::graph::gpu_exec::NamedTensors> {
        if self.config.optim.decoder_ema == 0.0 {
            return Ok(vec![]);
        }
        let mut average = self.exec.read_averages_async().await?;
        let find = |n: &str| average.iter().chain(state).find(|(k, _, _)| k == n).map(|(_, _, v)| v.clone());
        let seed = self.seed ^ self.exec.step.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let stats =
            restat::prior_statistics(self.gpu, &self.config.model, &find, self.prior_labels.as_ref(), restat::AVERAGE_BATCHES, self.batch.max(2), seed).await?;
        average.extend(stats);
        Ok(average)
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn save_checkpoint(&self, dir: &std::path::Path) -> Result<std::path::PathBuf> {
        let path = crate::checkpoint::path_in(dir);
        self.checkpoint()?.save(&path)?;
        Ok(path)
    }
}

/// The training set resized to `limit` images (None: all).
pub fn limited(split: Split, limit: Option<usize>, test_limit: Option<usize>) -> Split {
    let train = match limit {
        Some(n) => split.train.truncate(n),
        None => split.train,
    };
    let test = match test_limit {
        Some(n) => split.test.truncate(n),
        None => split.test,
    };
    Split { train, test }
}

//! How batches reach the step.
//!
//! - Resident: the whole training set is on the GPU as u8 (four to a word); each epoch
//!   uploads its permutation, and the gather kernel picks and scales each batch. No host
//!   work per step.
//! - Streamed, for sets larger than the GPU data budget (CelebA at 64×64×3 is 2.5 GB;
//!   lavapipe binds at most 128 MiB): a background thread walks the same (seed, epoch)
//!   permutations over the u8 images in host memory and packs each batch's bytes, up to
//!   `RING` batches ahead, into a bounded queue; each step takes the next and writes it
//!   to the one batch buffer on the GPU (a queue write, ordered before the step's
//!   commands). The same gather kernel then scales it through the identity permutation,
//!   so the step's inputs are bit-identical to the resident path's. The GPU holds one
//!   batch of bytes; the host thread only copies rows (decoding happened when the cache
//!   was built), so the step does not wait on it.
//!
//! A conditioned model's labels (one byte, 0 or 1, per attribute and image) take the same
//! road beside the images: resident and gathered through the same permutation, or packed
//! into each streamed batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::data::gpu::{pack, GpuDataset};
use crate::data::{Attributes, Dataset};
use crate::gpu::{Gpu, GpuBuffer};
use crate::types::DType;

use super::{permutation, Position, Result, TrainError};

/// Batches the background thread prepares ahead of the step.
pub const RING: usize = 4;

/// Bytes `set` takes on the GPU when resident (u8, packed in u32 words).
pub fn resident_bytes(set: &Dataset) -> u64 {
    set.images.len().div_ceil(4) as u64 * 4
}

/// Which rows of every global batch this process trains on: under data-parallel training
/// each of `count` replicas takes an equal, contiguous share of each batch of the same
/// (seed, epoch) permutation, so that together they cover every sample of an epoch once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Rows of a global batch of `batch` that this shard holds.
    pub fn rows(&self, batch: usize) -> usize {
        batch / self.count
    }

    /// This shard's first row within a global batch.
    pub fn first(&self, batch: usize) -> usize {
        self.index * self.rows(batch)
    }
}

/// One prepared batch: where it belongs and its packed bytes.
struct Batch {
    position: (usize, usize),
    words: Vec<u32>,
    /// The batch's labels (conditioned models), packed the same way.
    labels: Option<Vec<u32>>,
}

pub struct Stream {
    rx: Option<Receiver<Batch>>,
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Stream {
    /// Starts preparing batches from `start` on.
    fn spawn(set: &Dataset, labels: Option<&Attributes>, batch: usize, shard: Shard, seed: u64, start: Position) -> Stream {
        let (tx, rx) = sync_channel::<Batch>(RING);
        let stop = Arc::new(AtomicBool::new(false));
        let (images, count, dim) = (set.images.clone(), set.count, set.dim());
        let labels: Option<(Vec<u8>, usize)> = labels.map(|a| (a.values.clone(), a.len()));
        let steps = count / batch;
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("vaegan-feed".into())
            .spawn(move || {
                let (rows, first_row) = (shard.rows(batch), shard.first(batch));
                let mut bytes = vec![0u8; rows * dim];
                let mut label_bytes = vec![0u8; rows * labels.as_ref().map_or(0, |l| l.1)];
                let (mut epoch, mut first) = (start.epoch, start.step_in_epoch);
                loop {
                    let perm = permutation(seed, epoch, count);
                    for step in first..steps {
                        if stop2.load(Ordering::Relaxed) {
                            return;
                        }
                        for b in 0..rows {
                            let i = perm[step * batch + first_row + b] as usize;
                            bytes[b * dim..(b + 1) * dim].copy_from_slice(&images[i * dim..(i + 1) * dim]);
                            if let Some((values, k)) = &labels {
                                label_bytes[b * k..(b + 1) * k].copy_from_slice(&values[i * k..(i + 1) * k]);
                            }
                        }
                        let batch = Batch { position: (epoch, step), words: pack(&bytes), labels: labels.as_ref().map(|_| pack(&label_bytes)) };
                        if tx.send(batch).is_err() {
                            return;
                        }
                    }
                    epoch += 1;
                    first = 0;
                }
            })
            .expect("spawning the feeder thread");
        Stream { rx: Some(rx), thread: Some(thread), stop }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver fails the thread's pending send: it returns.
        self.rx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub enum Feed {
    Resident { data: GpuDataset, labels: Option<GpuDataset>, perm: GpuBuffer },
    Streamed { batch_data: GpuDataset, batch_labels: Option<GpuDataset>, stream: Stream },
}

impl Feed {
    /// The resident feed when `set` fits `budget` bytes, else the streamed one starting at
    /// `start`. Returns the feed and the permutation buffer its gather reads.
    /// `batch` is the global batch; this process feeds its `shard` of it. `labels`: a
    /// conditioned model's, one row per image of `set`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(gpu: &Gpu, set: &Dataset, labels: Option<&Attributes>, batch: usize, shard: Shard, seed: u64, budget: u64, start: &Position) -> Result<Feed> {
        if resident_bytes(set) <= budget {
            let data = GpuDataset::upload(gpu, set)?;
            let perm = data.permutation_buffer(gpu)?;
            let labels = labels.map(|a| GpuDataset::upload_rows(gpu, &format!("labels {}", a.source), &a.values, set.count, a.len())).transpose()?;
            return Ok(Feed::Resident { data, labels, perm });
        }
        let rows = shard.rows(batch);
        let words = (rows * set.dim()).div_ceil(4);
        let batch_data = GpuDataset { data: gpu.zeros("streamed batch", words, DType::U32)?, labels: None, count: rows, dim: set.dim() };
        let batch_labels = match labels {
            Some(a) => {
                Some(GpuDataset { data: gpu.zeros("streamed labels", (rows * a.len()).div_ceil(4), DType::U32)?, labels: None, count: rows, dim: a.len() })
            }
            None => None,
        };
        Ok(Feed::Streamed { batch_data, batch_labels, stream: Stream::spawn(set, labels, batch, shard, seed, start.clone()) })
    }

    pub fn is_streamed(&self) -> bool {
        matches!(self, Feed::Streamed { .. })
    }

    /// What the gather launches read: the data, the labels (conditioned models) and the
    /// permutation both index. The streamed feed's permutation is the identity over the batch.
    pub fn gather_inputs(&self, gpu: &Gpu) -> Result<(&GpuDataset, Option<&GpuDataset>, GpuBuffer)> {
        match self {
            Feed::Resident { data, labels, perm } => Ok((data, labels.as_ref(), perm.clone())),
            Feed::Streamed { batch_data, batch_labels, .. } => {
                let identity = gpu.upload_u32("identity permutation", &(0..batch_data.count as u32).collect::<Vec<_>>())?;
                Ok((batch_data, batch_labels.as_ref(), identity))
            }
        }
    }

    /// At an epoch's start: the resident feed uploads the epoch's permutation.
    pub fn start_epoch(&self, gpu: &Gpu, seed: u64, epoch: usize) -> Result<()> {
        if let Feed::Resident { data, perm, .. } = self {
            gpu.write_u32(perm, &permutation(seed, epoch, data.count))?;
        }
        Ok(())
    }

    /// Before step `step_in_epoch` of `epoch`: the streamed feed uploads its batch.
    /// Returns the gather's start row in the permutation (of this shard's rows).
    pub fn before_step(&self, gpu: &Gpu, at: &Position, batch: usize, shard: Shard) -> Result<usize> {
        match self {
            Feed::Resident { .. } => Ok(at.step_in_epoch * batch + shard.first(batch)),
            Feed::Streamed { batch_data, batch_labels, stream } => {
                let rx = stream.rx.as_ref().expect("the receiver lives as long as the stream");
                let b = rx.recv().map_err(|_| TrainError::Invalid("the data feeder thread stopped".into()))?;
                if b.position != (at.epoch, at.step_in_epoch) {
                    return Err(TrainError::Invalid(format!(
                        "the data feeder prepared epoch {} step {} for epoch {} step {}",
                        b.position.0, b.position.1, at.epoch, at.step_in_epoch
                    )));
                }
                gpu.write_u32(&batch_data.data, &b.words)?;
                if let (Some(buffer), Some(words)) = (batch_labels, &b.labels) {
                    gpu.write_u32(&buffer.data, words)?;
                }
                Ok(0)
            }
        }
    }
}

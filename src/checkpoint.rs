//! Checkpoints in safetensors: every weight under its readable name
//! ("encoder.0.weight"), Adam's moments as "adam.m.<name>" and "adam.v.<name>", the
//! decoder's averaged weights and their statistics as "average.<name>" (`optim.decoder_ema`),
//! and in the
//! metadata the run's config (TOML), step, epoch, position in the epoch, Adam's per-group
//! step counts and the seed. The RNG is counter-based (Philox keyed by seed, step and
//! stream; epoch permutations drawn from (seed, epoch)), so these numbers are its state.
//!
//! Writing is atomic: a temporary file in the same folder, flushed to disk, then renamed
//! over the old one, so a crash or a full disk never leaves a half-written checkpoint.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::model::RunConfig;

pub const FORMAT: &str = "vaegan-checkpoint-1";
pub const FILE_NAME: &str = "checkpoint.safetensors";

#[derive(Debug, thiserror::Error)]
#[error("{file}: {detail}")]
pub struct CheckpointError {
    pub file: String,
    pub detail: String,
}

fn err(path: &Path, detail: impl Into<String>) -> CheckpointError {
    CheckpointError { file: path.display().to_string(), detail: detail.into() }
}

pub type Tensors = Vec<(String, [usize; 2], Vec<f32>)>;

#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub config: RunConfig,
    /// Steps taken (the RNG's step counter).
    pub step: u64,
    /// Epochs completed.
    pub epoch: usize,
    /// Steps taken inside the current (incomplete) epoch.
    pub step_in_epoch: usize,
    /// Adam's t per group.
    pub updates: Vec<u32>,
    pub seed: u64,
    pub batch: usize,
    /// The data set trained on (the path given to --data) and how many of its training
    /// images were used (--limit), so that a resumed run sees the same batches.
    pub data: String,
    pub limit: Option<usize>,
    /// How many test images were evaluated (--test-limit), kept for the same reason.
    pub test_limit: Option<usize>,
    /// The crop of folder images (absent in older checkpoints: centre).
    pub crop: crate::data::Crop,
    /// The discriminator's losses at the last step read back, (step, d_real, d_fake), for a
    /// balanced run's next decision (`Trainer::balance_losses`; absent in older checkpoints
    /// and unbalanced runs).
    pub balance_losses: Option<(u64, f32, f32)>,
    pub params: Tensors,
    /// Batch norm's running statistics (under their names, as PyTorch's buffers).
    pub state: Tensors,
    pub adam_m: Tensors,
    pub adam_v: Tensors,
    /// The decoder's averaged weights and the running statistics re-estimated for them on
    /// prior codes (`optim.decoder_ema`; empty when it is off). `tensor` — what every use
    /// of the trained model loads — prefers them; resuming training takes `param`/`state`.
    pub average: Tensors,
}

/// Where a run folder keeps its checkpoint.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

impl Checkpoint {
    fn find(list: &Tensors, name: &str) -> Option<Vec<f32>> {
        list.iter().find(|(n, _, _)| n == name).map(|(_, _, v)| v.clone())
    }

    pub fn param(&self, name: &str) -> Option<Vec<f32>> {
        Self::find(&self.params, name)
    }
    pub fn state(&self, name: &str) -> Option<Vec<f32>> {
        Self::find(&self.state, name)
    }
    /// A parameter or a state tensor by name (what an evaluation graph loads): the
    /// decoder's averaged one where the run keeps an average.
    pub fn tensor(&self, name: &str) -> Option<Vec<f32>> {
        self.averaged(name).or_else(|| self.param(name)).or_else(|| self.state(name))
    }
    /// The decoder's averaged weight or re-estimated statistic by name (None without).
    pub fn averaged(&self, name: &str) -> Option<Vec<f32>> {
        Self::find(&self.average, name)
    }
    /// The same checkpoint with the decoder's last weights in place of their average
    /// (`--live-weights`): the model as training left it.
    pub fn live(self) -> Checkpoint {
        let mut config = self.config.clone();
        // Consistent as a file too (what `restat` writes): no average, none promised.
        config.optim.decoder_ema = 0.0;
        Checkpoint { average: vec![], config, ..self }
    }
    pub fn moment_m(&self, name: &str) -> Option<Vec<f32>> {
        Self::find(&self.adam_m, name)
    }
    pub fn moment_v(&self, name: &str) -> Option<Vec<f32>> {
        Self::find(&self.adam_v, name)
    }

    /// The bytes of the safetensors file.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let mut metadata = HashMap::new();
        metadata.insert("format".to_string(), FORMAT.to_string());
        metadata.insert("config".to_string(), self.config.to_toml());
        metadata.insert("step".to_string(), self.step.to_string());
        metadata.insert("epoch".to_string(), self.epoch.to_string());
        metadata.insert("step_in_epoch".to_string(), self.step_in_epoch.to_string());
        metadata.insert("updates".to_string(), self.updates.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(","));
        metadata.insert("seed".to_string(), self.seed.to_string());
        metadata.insert("batch".to_string(), self.batch.to_string());
        metadata.insert("data".to_string(), self.data.clone());
        metadata.insert("limit".to_string(), self.limit.map(|l| l.to_string()).unwrap_or_default());
        metadata.insert("test_limit".to_string(), self.test_limit.map(|l| l.to_string()).unwrap_or_default());
        metadata.insert("crop".to_string(), self.crop.to_string());
        // f32's Display is the shortest text that reads back to the same bits.
        metadata.insert("balance_losses".to_string(), self.balance_losses.map(|(s, r, f)| format!("{s},{r},{f}")).unwrap_or_default());
        let mut entries: Vec<(String, [usize; 2], Vec<u8>)> = vec![];
        for (prefix, list) in [("", &self.params), ("", &self.state), ("adam.m.", &self.adam_m), ("adam.v.", &self.adam_v), ("average.", &self.average)] {
            for (name, shape, values) in list {
                entries.push((format!("{prefix}{name}"), *shape, bytemuck::cast_slice(values).to_vec()));
            }
        }
        let views: Vec<(String, TensorView)> = entries
            .iter()
            .map(|(n, s, b)| Ok((n.clone(), TensorView::new(Dtype::F32, s.to_vec(), b).map_err(|e| e.to_string())?)))
            .collect::<Result<_, String>>()?;
        safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| e.to_string())
    }

    /// Writes atomically: `<path>.tmp`, fsync, rename over `path`, fsync the folder.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let bytes = self.to_bytes().map_err(|e| err(path, format!("cannot serialise: {e}")))?;
        let tmp = path.with_extension("safetensors.tmp");
        let write = || -> std::io::Result<()> {
            {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&bytes)?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent() {
                if let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }) {
                    let _ = d.sync_all();
                }
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(path, format!("cannot write the checkpoint ({e}); the previous checkpoint, if any, is intact"))
        })
    }

    pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
        Self::from_bytes(&bytes, path)
    }

    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint, CheckpointError> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| err(path, format!("not a readable safetensors file: {e}")))?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| err(path, format!("bad header: {e}")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |key: &str| meta.get(key).cloned().ok_or_else(|| err(path, format!("metadata key {key:?} is missing: not a vaegan checkpoint?")));
        let format = get("format")?;
        if format.starts_with("vaegan-torch") {
            return Err(err(path, "a PyTorch export (`vaegan export --format torch`), not a vaegan checkpoint: load it with docs/vaegan_torch.py"));
        }
        if format != FORMAT {
            return Err(err(path, format!("format {format:?}, expected {FORMAT:?}")));
        }
        let number = |key: &str| -> Result<u64, CheckpointError> { get(key)?.parse().map_err(|_| err(path, format!("metadata {key:?} is not a number"))) };
        let optional_number = |key: &str| -> Result<Option<usize>, CheckpointError> {
            match meta.get(key).map(String::as_str) {
                None | Some("") => Ok(None),
                Some(l) => l.parse().map(Some).map_err(|_| err(path, format!("metadata {key:?} is not a number"))),
            }
        };
        let config = RunConfig::from_toml(&get("config")?, &format!("{} (metadata \"config\")", path.display())).map_err(|e| err(path, e))?;
        let updates_text = get("updates")?;
        let updates = if updates_text.is_empty() {
            vec![]
        } else {
            updates_text
                .split(',')
                .map(|u| u.parse::<u32>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| err(path, "metadata \"updates\" is not a list of numbers"))?
        };
        let expected_state = crate::model::state_shapes(&config.model).map_err(|e| err(path, format!("config: {e}")))?;
        let mut params = vec![];
        let mut state = vec![];
        let mut adam_m = vec![];
        let mut adam_v = vec![];
        let mut average = vec![];
        let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
        names.sort();
        for name in names {
            let view = st.tensor(&name).map_err(|e| err(path, format!("tensor {name}: {e}")))?;
            if view.dtype() != Dtype::F32 {
                return Err(err(path, format!("tensor {name} is {:?}, expected F32", view.dtype())));
            }
            let shape: [usize; 2] = match view.shape() {
                [r, c] => [*r, *c],
                other => return Err(err(path, format!("tensor {name} has shape {other:?}, expected 2 dimensions"))),
            };
            let values: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(err(path, format!("tensor {name} holds {} at element {i}: the weights are corrupt (a diverged run?)", values[i])));
            }
            if let Some(p) = name.strip_prefix("adam.m.") {
                adam_m.push((p.to_string(), shape, values));
            } else if let Some(p) = name.strip_prefix("adam.v.") {
                adam_v.push((p.to_string(), shape, values));
            } else if let Some(p) = name.strip_prefix("average.") {
                average.push((p.to_string(), shape, values));
            } else if expected_state.iter().any(|(n, _)| *n == name) {
                state.push((name, shape, values));
            } else {
                params.push((name, shape, values));
            }
        }
        // The tensors must be exactly the model's: every parameter with its shape, and
        // Adam's two moments for each.
        let expected = crate::model::param_shapes(&config.model).map_err(|e| err(path, format!("config: {e}")))?;
        for (list, what, expected) in
            [(&params, "weights", &expected), (&state, "running statistics", &expected_state), (&adam_m, "Adam m", &expected), (&adam_v, "Adam v", &expected)]
        {
            for (name, shape) in expected {
                match list.iter().find(|(n, _, _)| n == name) {
                    None => return Err(err(path, format!("{what} of {name} are missing (the config's model has it)"))),
                    Some((_, s, _)) if s != shape => {
                        return Err(err(path, format!("{what} of {name} are {}x{}, the config's model needs {}x{}", s[0], s[1], shape[0], shape[1])))
                    }
                    _ => {}
                }
            }
            if let Some((name, _, _)) = list.iter().find(|(n, _, _)| !expected.iter().any(|(e, _)| e == n)) {
                return Err(err(path, format!("tensor {name} is not part of the config's model")));
            }
        }
        // The average: exactly the decoder's weights and running statistics when the config
        // keeps one, nothing otherwise.
        let decoder: Vec<(String, [usize; 2])> = expected.iter().chain(&expected_state).filter(|(n, _)| n.starts_with("decoder.")).cloned().collect();
        if config.optim.decoder_ema > 0.0 {
            for (name, shape) in &decoder {
                match average.iter().find(|(n, _, _)| n == name) {
                    None => {
                        return Err(err(path, format!("the average of {name} is missing (the config has optim.decoder_ema = {})", config.optim.decoder_ema)))
                    }
                    Some((_, s, _)) if s != shape => {
                        return Err(err(path, format!("the average of {name} is {}x{}, the config's model needs {}x{}", s[0], s[1], shape[0], shape[1])))
                    }
                    _ => {}
                }
            }
        }
        if let Some((name, _, _)) = average.iter().find(|(n, _, _)| config.optim.decoder_ema == 0.0 || !decoder.iter().any(|(d, _)| d == n)) {
            return Err(err(
                path,
                format!("tensor average.{name} is not an averaged decoder tensor of the config's model (optim.decoder_ema = {})", config.optim.decoder_ema),
            ));
        }
        let groups = config.model.groups();
        if updates.len() != groups {
            return Err(err(path, format!("metadata \"updates\" has {} entries, the model has {groups} parameter groups", updates.len())));
        }
        Ok(Checkpoint {
            config,
            step: number("step")?,
            epoch: number("epoch")? as usize,
            step_in_epoch: number("step_in_epoch")? as usize,
            updates,
            seed: number("seed")?,
            batch: number("batch")? as usize,
            data: get("data")?,
            limit: optional_number("limit")?,
            // Absent from checkpoints written before it was recorded.
            test_limit: optional_number("test_limit")?,
            crop: match meta.get("crop") {
                None => crate::data::Crop::Centre,
                Some(c) => c.parse().map_err(|e: String| err(path, format!("metadata \"crop\": {e}")))?,
            },
            balance_losses: match meta.get("balance_losses").map(String::as_str) {
                None | Some("") => None,
                Some(text) => Some(parse_balance_losses(text).ok_or_else(|| {
                    err(path, format!("metadata \"balance_losses\" is {text:?}: expected step,d_real,d_fake (a whole number and two finite numbers)"))
                })?),
            },
            params,
            state,
            adam_m,
            adam_v,
            average,
        })
    }
}

/// "step,d_real,d_fake" as written by `to_bytes`.
fn parse_balance_losses(text: &str) -> Option<(u64, f32, f32)> {
    let mut parts = text.split(',');
    let step = parts.next()?.parse().ok()?;
    let real: f32 = parts.next()?.parse().ok()?;
    let fake: f32 = parts.next()?.parse().ok()?;
    (parts.next().is_none() && real.is_finite() && fake.is_finite()).then_some((step, real, fake))
}

//! The browser page's side of vaegan (wasm32 only): the same trainer, executor, kernels and
//! checkpoint format as the command line, on the page's WebGPU adapter.
//!
//! The page (`src/web/page/`) drives it: it fetches the shipped MNIST from its own origin,
//! creates a `Session`, then loops `steps(k)` → `await settle()` → `losses()`, asking for a
//! sample grid every few hundred steps. Nothing here blocks: a step only records and
//! submits; readbacks complete while the page awaits (the browser maps buffers between
//! tasks), so a step never waits for the GPU and the tab stays responsive.
//!
//! Like the CLI, this layer parses and reports; training is `train::Trainer`'s.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::rc::Rc;

use wasm_bindgen::prelude::*;

use crate::checkpoint::Checkpoint;
use crate::data::idx;
use crate::gpu::{Gpu, GpuOptions};
use crate::model::RunConfig;
use crate::train::eval::{cycled_labels, fixed_normals, Decoder};
use crate::train::Trainer;

/// Samples in the page's grid (8 × 8) and the seed of their fixed codes.
const GRID: usize = 64;
const GRID_SEED: u64 = 7;

/// Sets up panic messages on the browser console (once, when the module loads).
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

thread_local! {
    /// The page's one device, opened on first use and kept for the page's life: trainers
    /// borrow it, and a page that restarts training reuses it.
    static GPU: RefCell<Option<&'static Gpu>> = const { RefCell::new(None) };
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

async fn gpu() -> Result<&'static Gpu, JsError> {
    if let Some(g) = GPU.with(|g| *g.borrow()) {
        return Ok(g);
    }
    // No autotuning in the browser: it would time kernels by waiting for them.
    let gpu = Gpu::request(&GpuOptions::default()).await.map_err(js_error)?;
    let gpu: &'static Gpu = Box::leak(Box::new(gpu));
    GPU.with(|g| *g.borrow_mut() = Some(gpu));
    Ok(gpu)
}

/// What the device offers the kernels (the page names the adapter from the browser's own
/// `GPUAdapterInfo`: wgpu leaves the name empty on the web). Opens the device if need be.
#[wasm_bindgen]
pub async fn adapter() -> Result<String, JsError> {
    let gpu = gpu().await?;
    let yes = |b: bool| if b { "yes" } else { "no" };
    Ok(format!(
        "WebGPU, {:?}; shader-f16 {}, subgroups {}; storage bindings up to {} MiB",
        gpu.info.device_type,
        yes(gpu.features.shader_f16),
        yes(gpu.features.subgroup),
        gpu.limits.max_storage_buffer_binding_size >> 20
    ))
}

/// The presets the page offers: those whose images are MNIST's 28×28 grey.
#[wasm_bindgen]
pub fn presets() -> Vec<String> {
    ["mnist-mlp", "mnist-conv", "seed", "pytorch-vae"].iter().map(|s| s.to_string()).collect()
}

/// A picture for a canvas: RGBA bytes, `width` × `height`.
#[wasm_bindgen]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    rgba: Vec<u8>,
}

#[wasm_bindgen]
impl Picture {
    #[wasm_bindgen(getter)]
    pub fn rgba(&self) -> Vec<u8> {
        self.rgba.clone()
    }
}

struct Inner {
    trainer: Trainer<'static>,
    decoder: Decoder<'static>,
    /// Fixed codes: the grid shows the same samples as training goes on.
    z: Vec<f32>,
    /// The grid's samples and columns (a conditioned model's: a column per label).
    grid: (usize, usize),
    /// History entries already handed to the page.
    reported: usize,
}

/// One training run in the page.
#[wasm_bindgen]
pub struct Session {
    inner: Rc<RefCell<Inner>>,
    gpu: &'static Gpu,
}

#[wasm_bindgen]
impl Session {
    /// A new run of `preset` (or, with `checkpoint`'s bytes, the run saved there, continued
    /// exactly: its config, batch and seed win over the other arguments) on the MNIST files'
    /// bytes. `lr` 0 keeps the preset's rates; `limit` 0 trains on every image;
    /// `conditioned`: the decoder and discriminator read each image's digit (Larsen et al.'s
    /// conditional VAE-GAN), and the grid shows a column per digit.
    #[allow(clippy::too_many_arguments)]
    pub async fn create(
        preset: String,
        batch: usize,
        lr: f32,
        seed: u32,
        limit: usize,
        train_images: Vec<u8>,
        train_labels: Vec<u8>,
        conditioned: bool,
        checkpoint: Option<Vec<u8>>,
    ) -> Result<Session, JsError> {
        let gpu = gpu().await?;
        let images_name = Path::new("datasets/mnist/train-images.idx3-ubyte.gz");
        let labels_name = Path::new("datasets/mnist/train-labels.idx1-ubyte.gz");
        let train = idx::images_from_bytes(&train_images, images_name, Some((&train_labels, labels_name))).map_err(js_error)?;
        let ck = match &checkpoint {
            Some(bytes) => Some(Checkpoint::from_bytes(bytes, Path::new("the loaded checkpoint")).map_err(js_error)?),
            None => None,
        };
        let (config, batch, seed, limit) = match &ck {
            Some(ck) => (ck.config.clone(), ck.batch, ck.seed, ck.limit),
            None => {
                let mut config = RunConfig::preset(&preset).map_err(js_error)?;
                if !(lr >= 0.0 && lr.is_finite()) {
                    return Err(JsError::new(&format!("learning rate {lr}: must be a positive number (leave it empty for the preset's)")));
                }
                if lr > 0.0 {
                    config.optim.lr_encoder = lr;
                    config.optim.lr_decoder = lr;
                    config.optim.lr_discriminator = lr;
                }
                if conditioned {
                    config.model.conditions = train.attribute_table().map(|t| t.names).unwrap_or_default();
                }
                (config, batch, seed as u64, (limit > 0).then_some(limit))
            }
        };
        let [h, w, c] = config.model.image;
        if [h, w, c] != [train.height, train.width, 1] {
            return Err(JsError::new(&format!("the page trains on MNIST (28x28 grey); this model takes {h}x{w}x{c} images")));
        }
        let train = match limit {
            Some(n) => train.truncate(n),
            None => train,
        };
        let model = config.model.clone();
        let mut trainer = Trainer::new(gpu, config, batch, seed, &train, ck.as_ref()).map_err(js_error)?;
        trainer.data_source = "datasets/mnist".into();
        trainer.data_limit = limit;
        // A conditioned model's grid: a column per label (sample i takes label i mod k alone).
        let k = model.conditions.len();
        let grid = if k == 0 {
            (GRID, 8)
        } else {
            let cols = if k <= 16 { k } else { 8 };
            (GRID / cols * cols, cols)
        };
        let mut decoder = Decoder::new(gpu, &model, grid.0).map_err(js_error)?;
        if k > 0 {
            decoder.condition(&cycled_labels(grid.0, k)).map_err(js_error)?;
        }
        let z = fixed_normals(grid.0, model.latent, GRID_SEED);
        Ok(Session { inner: Rc::new(RefCell::new(Inner { trainer, decoder, z, grid, reported: 0 })), gpu })
    }

    fn inner(&self) -> Result<std::cell::RefMut<'_, Inner>, JsError> {
        self.inner.try_borrow_mut().map_err(|_| JsError::new("the session is busy (a sample grid or checkpoint is being read); await it first"))
    }

    /// Records and submits `n` training steps; returns at once.
    pub fn steps(&self, n: usize) -> Result<(), JsError> {
        let mut inner = self.inner()?;
        for _ in 0..n {
            inner.trainer.step().map_err(js_error)?;
        }
        Ok(())
    }

    /// Resolves when the GPU has finished what was submitted: the page awaits it between
    /// batches of steps, so that work does not pile up and readbacks complete (`losses`
    /// then collects them).
    pub fn settle(&self) -> js_sys::Promise {
        let gpu = self.gpu;
        wasm_bindgen_futures::future_to_promise(async move {
            let (tx, rx) = futures_channel::oneshot::channel();
            gpu.queue.on_submitted_work_done(move || {
                let _ = tx.send(());
            });
            rx.await.map_err(|e| JsValue::from(js_error(e)))?;
            gpu.check_uncaptured("training").map_err(|e| JsValue::from(js_error(e)))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The losses read back since the last call, as JSON: `[[step, {"name": value, …}], …]`.
    pub fn losses(&self) -> Result<String, JsError> {
        let mut inner = self.inner()?;
        inner.trainer.collect(false).map_err(js_error)?;
        let new: Vec<(u64, BTreeMap<&str, f32>)> =
            inner.trainer.history[inner.reported..].iter().map(|(s, v)| (*s, v.iter().map(|(n, x)| (n.as_str(), *x)).collect())).collect();
        let json = serde_json::to_string(&new).map_err(js_error)?;
        inner.reported = inner.trainer.history.len();
        Ok(json)
    }

    /// Steps taken so far (a JavaScript number: exact up to 2^53).
    pub fn step(&self) -> Result<f64, JsError> {
        Ok(self.inner()?.trainer.exec.step as f64)
    }

    /// The epoch being trained (from 0) and the steps of an epoch.
    pub fn epoch(&self) -> Result<usize, JsError> {
        Ok(self.inner()?.trainer.position.epoch)
    }

    pub fn steps_per_epoch(&self) -> Result<usize, JsError> {
        Ok(self.inner()?.trainer.steps_per_epoch)
    }

    pub fn batch(&self) -> Result<usize, JsError> {
        Ok(self.inner()?.trainer.batch)
    }

    /// The run's config as TOML (what a checkpoint records).
    pub fn config(&self) -> Result<String, JsError> {
        Ok(self.inner()?.trainer.config.to_toml())
    }

    /// The fixed-z sample grid (8 × 8) from the current weights, as RGBA.
    // The session stays borrowed across the readbacks on purpose: a `steps` call meanwhile
    // is refused as busy (try_borrow) instead of changing the weights being read.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn samples(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut guard = inner.try_borrow_mut().map_err(|_| JsValue::from_str("busy"))?;
            let inner = &mut *guard;
            let fail = |e: crate::train::TrainError| JsValue::from(js_error(e));
            let params = inner.trainer.exec.read_params_async().await.map_err(|e| fail(e.into()))?;
            let state = inner.trainer.exec.read_state_async().await.map_err(|e| fail(e.into()))?;
            let values: HashMap<String, Vec<f32>> = params.into_iter().chain(state).map(|(n, _, v)| (n, v)).collect();
            inner.decoder.load(&|n| values.get(n).cloned()).map_err(fail)?;
            let images = inner.decoder.decode_async(&inner.z).await.map_err(fail)?;
            let (n, cols) = inner.grid;
            let (width, height, grey) = crate::pictures::grid_pixels(&images, n, inner.trainer.config.model.image, cols);
            let rgba = grey.iter().flat_map(|&v| [v, v, v, 255]).collect();
            Ok(JsValue::from(Picture { width: width as u32, height: height as u32, rgba }))
        })
    }

    /// The checkpoint's bytes (the CLI's safetensors format: `vaegan sample --checkpoint`
    /// and `vaegan train --resume` read it).
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn checkpoint(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let guard = inner.try_borrow().map_err(|_| JsValue::from_str("busy"))?;
            let ck = guard.trainer.checkpoint_async().await.map_err(|e| JsValue::from(js_error(e)))?;
            let bytes = ck.to_bytes().map_err(|e| JsValue::from(js_error(e)))?;
            Ok(js_sys::Uint8Array::from(&bytes[..]).into())
        })
    }
}

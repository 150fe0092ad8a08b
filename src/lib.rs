//! vaegan: a training engine for VAE-GANs on hand-written WGSL compute kernels.
//!
//! - [`gpu`]: adapter choice, device, buffers, pipeline cache, launches, error scopes;
//! - [`kernels`]: one wrapper per WGSL kernel family (`shaders/`);
//! - [`reference`]: the CPU twin of every kernel, in f64, under the same names;
//! - [`cli`]: the `vaegan` command line.

// Kernel wrappers take their operands as separate buffers, named: clearer than a struct.
#![allow(clippy::too_many_arguments)]
// In the browser wgpu's handles are neither Send nor Sync (one thread); the Arcs that share
// them natively are plain reference counts there.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

pub mod checkpoint;
#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
pub mod data;
pub mod export;
pub mod gpu;
pub mod graph;
pub mod kernels;
pub mod model;
pub mod nn;
pub mod pictures;
#[cfg(not(target_arch = "wasm32"))]
pub mod quality;
pub mod reference;
pub mod tensor_file;
pub mod train;
pub mod types;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use gpu::{Gpu, GpuBuffer, GpuError, GpuOptions, Launch};
pub use types::{Act, DType, Precision, Trans};

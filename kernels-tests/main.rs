//! Kernel tests: every WGSL kernel against its CPU twin (f64) on fresh random inputs with
//! NaN-poisoned outputs, every backward against central finite differences. They run on a
//! real driver: lavapipe (Vulkan on the CPU) by default, `VAEGAN_TEST_BACKEND=gl` for GL.
//! The kernel families also run in a browser (`browser.rs`); the rest is native only.
#![cfg(not(target_arch = "wasm32"))]

#[macro_use]
mod common;

mod adam;
mod batch_norm;
mod cli;
mod contract;
mod conv2d;
mod data;
mod device;
mod elementwise;
mod ema;
mod export;
mod f16;
mod fuzz;
mod graph;
mod hostile;
mod interrupt;
mod kl;
mod labels;
mod losses;
mod matmul;
mod mmd;
mod parallel;
mod pool;
mod presets;
mod prior;
mod quality;
mod reduce;
mod reparam;
mod resume;
mod rmsprop;
mod train;
mod translate;

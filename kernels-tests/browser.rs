//! The kernel tests in a browser: the same kernel-family files as the native harness
//! (`main.rs`), compiled to wasm32 and run by wasm-bindgen-test in headless Chromium on its
//! WebGPU adapter (SwiftShader here), where Chromium compiles our WGSL with its own
//! compiler (Tint), not naga. Natively this file is empty; `kernels-tests/browser/run.sh`
//! builds and runs it, then the page's end-to-end test.
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

#[macro_use]
mod common;

mod adam;
mod batch_norm;
mod conv2d;
mod data;
mod elementwise;
mod ema;
mod f16;
mod kl;
mod losses;
mod matmul;
mod mmd;
mod pool;
mod reduce;
mod reparam;
mod rmsprop;

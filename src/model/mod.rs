//! Models as graphs: the VAE-GAN of Larsen et al. (2016) and the plain VAE, their
//! configuration (presets `mnist-mlp` and `pytorch-vae`, TOML files).

pub mod config;
pub mod vaegan;

pub use config::{Mode, ModelConfig, OptimConfig, RunConfig};
pub use vaegan::{build_decode, build_eval, build_step, param_shapes, DecodeGraph, EvalGraph, StepGraph};

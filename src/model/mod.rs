//! Models as graphs: the VAE-GAN of Larsen et al. (2016) and the plain VAE, as dense
//! networks or as the authors' convolutional ones (`conv.rs`), and their configuration
//! (presets `mnist-mlp`, `mnist-conv`, `celeba64`, `seed`, `pytorch-vae`; TOML files), and
//! the Gaussian-mixture prior fitted to a trained encoder's codes (`prior.rs`), and visual
//! attribute vectors in that code space (`attributes.rs`).

pub mod attributes;
pub mod config;
pub mod conv;
pub mod prior;
pub mod vaegan;

pub use attributes::AttributeVectors;
pub use config::{Arch, BnStats, GanFakes, Mode, ModelConfig, OptimConfig, Optimizer, RunConfig};
pub use conv::Phase;
pub use prior::GaussianMixture;
pub use vaegan::{
    build_decode, build_decode_in, build_discriminate, build_encode, build_eval, build_step, param_shapes, state_shapes, step_flops_per_sample, DecodeGraph,
    DiscriminateGraph, EncodeGraph, EvalGraph, StepGraph,
};

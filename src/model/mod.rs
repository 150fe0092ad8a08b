//! Models as step graphs: the VAE-GAN of Larsen et al. (2016) and the plain VAE, with the
//! presets `mnist-mlp` and `pytorch-vae`.

pub mod vaegan;

pub use vaegan::{build_step, Mode, ModelConfig, StepGraph};

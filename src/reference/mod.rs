//! CPU twins of every kernel, in f64, under the same names as `crate::kernels`. They are
//! written for clarity, not speed: the ground truth for kernel tests and for
//! finite-difference checks of every backward.

pub mod adam;
pub mod batch_norm;
pub mod cast;
pub mod conv2d;
pub mod data;
pub mod elementwise;
pub mod ema;
pub mod kl;
pub mod losses;
pub mod matmul;
pub mod mmd;
pub mod pool;
pub mod reduce;
pub mod reparam;
pub mod rmsprop;

pub use crate::types::{Act, Trans};

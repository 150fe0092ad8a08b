//! One Rust wrapper per WGSL kernel family: it checks shapes, picks the variant, binds the
//! buffers and returns launches ready to record. Each has a CPU twin of the same name in
//! `crate::reference`.

pub mod adam;
pub mod autotune;
pub mod batch_norm;
pub mod cast;
pub mod conv2d;
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

use crate::gpu::{GpuBuffer, GpuError, Result};

pub(crate) const ACTIVATIONS_WGSL: &str = include_str!("../../shaders/activations.wgsl");

/// Checks that a buffer holds exactly `want` elements.
pub(crate) fn expect_len(kernel: &str, what: &str, buf: &GpuBuffer, want: usize) -> Result<()> {
    if buf.len != want {
        return Err(GpuError::shape(kernel, format!("{what} has {} elements, expected {want}", buf.len)));
    }
    Ok(())
}

pub(crate) fn expect_f32(kernel: &str, what: &str, buf: &GpuBuffer) -> Result<()> {
    if buf.dtype != crate::types::DType::F32 {
        return Err(GpuError::shape(kernel, format!("{what} is {:?}, expected F32", buf.dtype)));
    }
    Ok(())
}

pub(crate) fn nonempty(kernel: &str, n: usize) -> Result<u32> {
    if n == 0 {
        return Err(GpuError::shape(kernel, "length must be at least 1"));
    }
    u32::try_from(n).map_err(|_| GpuError::shape(kernel, format!("length {n} exceeds u32")))
}

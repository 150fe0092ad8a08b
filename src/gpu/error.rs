//! Errors of the device layer. Every wgpu validation or out-of-memory error is caught by
//! an error scope and turned into one of these, naming the kernel and the shapes involved,
//! so that a user sees "matmul 64x784·784x512: buffer too small" rather than a panic.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum GpuError {
    #[error("no GPU adapter found on backend(s) {backends}. {hint}")]
    NoAdapter { backends: String, hint: String },

    #[error("no adapter matches --adapter {wanted:?}; available: {available}")]
    AdapterNotFound { wanted: String, available: String },

    #[error("unknown backend {0:?}: expected one of vulkan, metal, dx12, gl")]
    UnknownBackend(String),

    #[error("could not open a device on {adapter}: {detail}")]
    RequestDevice { adapter: String, detail: String },

    #[error("{kernel}: {detail}")]
    Shape { kernel: String, detail: String },

    #[error("{kernel}: the adapter lacks {feature}")]
    Unsupported { kernel: String, feature: String },

    #[error("{kernel}: validation error: {detail}")]
    Validation { kernel: String, detail: String },

    #[error("{kernel}: out of GPU memory ({detail})")]
    OutOfMemory { kernel: String, detail: String },

    #[error("{kernel}: internal GPU error: {detail}")]
    Internal { kernel: String, detail: String },

    #[error("{what}: {detail}")]
    Device { what: String, detail: String },
}

impl GpuError {
    /// Wraps a wgpu error caught by a scope, naming what was being done.
    pub fn from_wgpu(kernel: &str, err: wgpu::Error) -> Self {
        let kernel = kernel.to_string();
        match err {
            wgpu::Error::OutOfMemory { source } => GpuError::OutOfMemory { kernel, detail: source.to_string() },
            wgpu::Error::Validation { description, .. } => GpuError::Validation { kernel, detail: description },
            wgpu::Error::Internal { description, .. } => GpuError::Internal { kernel, detail: description },
        }
    }

    pub fn shape(kernel: &str, detail: impl Into<String>) -> Self {
        GpuError::Shape { kernel: kernel.to_string(), detail: detail.into() }
    }
}

pub type Result<T, E = GpuError> = std::result::Result<T, E>;

//! Storage buffers as typed views: a wgpu buffer, a byte offset and an element count.
//! Views let a later planner place many tensors in one allocation.

use std::sync::Arc;

use half::f16;
use wgpu::util::DeviceExt;

use super::{Gpu, GpuError, Result};
use crate::types::DType;

/// A typed view into a storage buffer.
#[derive(Clone, Debug)]
pub struct GpuBuffer {
    pub buffer: Arc<wgpu::Buffer>,
    /// Byte offset of element 0 (a multiple of the adapter's storage offset alignment).
    pub offset: u64,
    /// Number of elements.
    pub len: usize,
    pub dtype: DType,
}

/// Bytes bound for `len` elements: rounded up to 16 so that vec4 views of f32 and f16
/// data, and odd-length f16 tensors, are always legal bindings.
pub fn bound_bytes(len: usize, dtype: DType) -> u64 {
    (len as u64 * dtype.size()).max(1).next_multiple_of(16)
}

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

impl GpuBuffer {
    pub fn bytes(&self) -> u64 {
        bound_bytes(self.len, self.dtype)
    }

    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: &self.buffer, offset: self.offset, size: std::num::NonZeroU64::new(self.bytes()) })
    }
}

impl Gpu {
    fn check_size(&self, what: &str, len: usize, dtype: DType) -> Result<()> {
        let bytes = bound_bytes(len, dtype);
        let max = self.binding_limit();
        if bytes > max {
            return Err(GpuError::OutOfMemory {
                kernel: what.to_string(),
                detail: format!("{len} elements of {dtype:?} need {bytes} bytes, over the adapter's storage binding limit of {max} bytes"),
            });
        }
        Ok(())
    }

    /// A zero-filled buffer of `len` elements.
    pub fn zeros(&self, label: &str, len: usize, dtype: DType) -> Result<GpuBuffer> {
        self.check_size(label, len, dtype)?;
        let buffer = self.scoped(label, || {
            self.device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size: bound_bytes(len, dtype), usage: USAGE, mapped_at_creation: false })
        })?;
        Ok(GpuBuffer { buffer: Arc::new(buffer), offset: 0, len, dtype })
    }

    fn upload_bytes(&self, label: &str, bytes: &[u8], len: usize, dtype: DType) -> Result<GpuBuffer> {
        self.check_size(label, len, dtype)?;
        let mut padded = bytes.to_vec();
        padded.resize(bound_bytes(len, dtype) as usize, 0);
        let buffer =
            self.scoped(label, || self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents: &padded, usage: USAGE }))?;
        Ok(GpuBuffer { buffer: Arc::new(buffer), offset: 0, len, dtype })
    }

    pub fn upload_f32(&self, label: &str, data: &[f32]) -> Result<GpuBuffer> {
        self.upload_bytes(label, bytemuck::cast_slice(data), data.len(), DType::F32)
    }

    pub fn upload_u32(&self, label: &str, data: &[u32]) -> Result<GpuBuffer> {
        self.upload_bytes(label, bytemuck::cast_slice(data), data.len(), DType::U32)
    }

    /// Uploads as f16 (round to nearest even). Fails where the device has no SHADER_F16.
    pub fn upload_f16(&self, label: &str, data: &[f32]) -> Result<GpuBuffer> {
        if !self.features.shader_f16 {
            return Err(GpuError::Unsupported { kernel: label.to_string(), feature: "SHADER_F16".into() });
        }
        let halves: Vec<f16> = data.iter().map(|&x| f16::from_f32(x)).collect();
        self.upload_bytes(label, bytemuck::cast_slice(&halves), data.len(), DType::F16)
    }

    /// f16 storage where the adapter has it, f32 elsewhere: the fallback that lets
    /// half-precision code run on every adapter.
    pub fn upload_half_or_f32(&self, label: &str, data: &[f32]) -> Result<GpuBuffer> {
        if self.features.shader_f16 {
            self.upload_f16(label, data)
        } else {
            self.upload_f32(label, data)
        }
    }

    /// Overwrites a buffer's contents from the host.
    pub fn write_f32(&self, buf: &GpuBuffer, data: &[f32]) -> Result<()> {
        if buf.dtype != DType::F32 || data.len() != buf.len {
            return Err(GpuError::shape("write_f32", format!("buffer holds {} {:?}, got {} f32", buf.len, buf.dtype, data.len())));
        }
        self.queue.write_buffer(&buf.buffer, buf.offset, bytemuck::cast_slice(data));
        Ok(())
    }

    pub fn write_u32(&self, buf: &GpuBuffer, data: &[u32]) -> Result<()> {
        if buf.dtype != DType::U32 || data.len() != buf.len {
            return Err(GpuError::shape("write_u32", format!("buffer holds {} {:?}, got {} u32", buf.len, buf.dtype, data.len())));
        }
        self.queue.write_buffer(&buf.buffer, buf.offset, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Fills every element with NaN, so that an element a kernel fails to write shows up.
    pub fn poison(&self, buf: &GpuBuffer) {
        let bytes: Vec<u8> = match buf.dtype {
            DType::F32 | DType::U32 => f32::NAN.to_bits().to_le_bytes().repeat((buf.bytes() / 4) as usize),
            DType::F16 => f16::NAN.to_bits().to_le_bytes().repeat((buf.bytes() / 2) as usize),
        };
        self.queue.write_buffer(&buf.buffer, buf.offset, &bytes);
    }

    /// Copies a buffer back to the host and waits for it.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn download_bytes(&self, buf: &GpuBuffer) -> Result<Vec<u8>> {
        pollster::block_on(self.download_bytes_async(buf))
    }

    /// Copies a buffer back to the host; resolves once the copy is mapped. In the browser
    /// this yields to the page's event loop; natively it waits for the queue.
    pub async fn download_bytes_async(&self, buf: &GpuBuffer) -> Result<Vec<u8>> {
        let size = buf.bytes();
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("download"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.scoped("download", || {
            let mut enc = self.device.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(&buf.buffer, buf.offset, &staging, 0, size);
            self.queue.submit([enc.finish()]);
        })?;
        self.read_staging_async(&staging, "download").await
    }

    /// Maps a MAP_READ buffer whose copy was submitted, waits, and returns its bytes.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_staging(&self, staging: &wgpu::Buffer, what: &str) -> Result<Vec<u8>> {
        pollster::block_on(self.read_staging_async(staging, what))
    }

    /// Maps a MAP_READ buffer whose copy was submitted and returns its bytes once mapped.
    pub async fn read_staging_async(&self, staging: &wgpu::Buffer, what: &str) -> Result<Vec<u8>> {
        let fail = |e: String| GpuError::Device { what: what.into(), detail: e };
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        // Natively the callback runs inside this poll; the browser's device polls itself.
        self.wait()?;
        rx.await.map_err(|e| fail(e.to_string()))?.map_err(|e| fail(e.to_string()))?;
        let data = staging.get_mapped_range(..).map_err(|e| fail(e.to_string()))?.to_vec();
        staging.unmap();
        self.check_uncaptured(what)?;
        Ok(data)
    }

    /// Downloads as f32 (f16 buffers are widened).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn download_f32(&self, buf: &GpuBuffer) -> Result<Vec<f32>> {
        pollster::block_on(self.download_f32_async(buf))
    }

    pub async fn download_f32_async(&self, buf: &GpuBuffer) -> Result<Vec<f32>> {
        let bytes = self.download_bytes_async(buf).await?;
        Ok(match buf.dtype {
            DType::F32 => bytemuck::cast_slice::<u8, f32>(&bytes)[..buf.len].to_vec(),
            DType::U32 => bytemuck::cast_slice::<u8, u32>(&bytes)[..buf.len].iter().map(|&x| x as f32).collect(),
            DType::F16 => bytemuck::cast_slice::<u8, f16>(&bytes)[..buf.len].iter().map(|x| x.to_f32()).collect(),
        })
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn download_u32(&self, buf: &GpuBuffer) -> Result<Vec<u32>> {
        pollster::block_on(self.download_u32_async(buf))
    }

    pub async fn download_u32_async(&self, buf: &GpuBuffer) -> Result<Vec<u32>> {
        let bytes = self.download_bytes_async(buf).await?;
        Ok(bytemuck::cast_slice::<u8, u32>(&bytes)[..buf.len].to_vec())
    }
}

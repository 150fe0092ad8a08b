//! The data set on the GPU: uploaded once as u8 (packed four to a u32 word: MNIST's
//! training set is 47 MB this way, 188 MB as f32), with batches gathered by a kernel
//! through a permutation uploaded once per epoch.

use crate::gpu::template::fill;
use crate::gpu::{Gpu, GpuBuffer, GpuError, Launch, Result};
use crate::types::{DType, Scaling};

use super::Dataset;

const SOURCE: &str = include_str!("../../shaders/data.wgsl");
const FAMILY: &str = "data";
/// Invocations per workgroup: named here once and filled into the WGSL (`$WG`).
const WG: u32 = 256;

/// The family's WGSL with its workgroup sizes filled in.
fn source() -> Result<String> {
    fill(FAMILY, SOURCE, &[("WG", WG.to_string())])
}

pub struct GpuDataset {
    pub data: GpuBuffer,
    /// Labels, one per u32, where the data set has them.
    pub labels: Option<GpuBuffer>,
    pub count: usize,
    pub dim: usize,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GatherParams {
    pub batch: u32,
    pub dim: u32,
    pub start: u32,
    pub binarize: u32,
    pub scale: f32,
    pub offset: f32,
    pub _pad: [u32; 2],
}

/// Packs bytes four to a u32 word (little-endian), as the gather kernel reads them.
pub fn pack(bytes: &[u8]) -> Vec<u32> {
    bytes.chunks(4).map(|c| c.iter().enumerate().fold(0u32, |w, (k, &b)| w | (b as u32) << (8 * k))).collect()
}

impl GpuDataset {
    pub fn upload(gpu: &Gpu, set: &Dataset) -> Result<GpuDataset> {
        let words = pack(&set.images);
        let data = gpu.upload_u32(&format!("data set {}", set.source), &words).map_err(|e| match e {
            GpuError::OutOfMemory { kernel, detail } => GpuError::OutOfMemory {
                kernel,
                detail: format!("{detail}; the data set has {} images of {} pixels: use fewer (--limit)", set.count, set.dim()),
            },
            other => other,
        })?;
        let labels = match &set.labels {
            Some(l) => Some(gpu.upload_u32("labels", &l.iter().map(|&x| x as u32).collect::<Vec<_>>())?),
            None => None,
        };
        Ok(GpuDataset { data, labels, count: set.count, dim: set.dim() })
    }

    /// Rows of `dim` bytes each (a conditioned model's labels, 0 or 1 per attribute), for
    /// `gather` with `Scaling::IDENTITY`.
    pub fn upload_rows(gpu: &Gpu, label: &str, bytes: &[u8], count: usize, dim: usize) -> Result<GpuDataset> {
        if bytes.len() != count * dim {
            return Err(GpuError::shape(label, format!("{} bytes for {count} rows of {dim}", bytes.len())));
        }
        Ok(GpuDataset { data: gpu.upload_u32(label, &pack(bytes))?, labels: None, count, dim })
    }

    /// A permutation buffer for `gather` (uploaded each epoch with `Gpu::write_u32`).
    pub fn permutation_buffer(&self, gpu: &Gpu) -> Result<GpuBuffer> {
        gpu.zeros("permutation", self.count, DType::U32)
    }

    /// out[b, :] = scaled image perm[start + b], for b < batch. `start` changes per step:
    /// rewrite it with `set_start`.
    pub fn gather(&self, gpu: &Gpu, perm: &GpuBuffer, batch: usize, start: usize, scaling: Scaling, out: &GpuBuffer) -> Result<Launch> {
        let name = format!("gather batch={batch} dim={}", self.dim);
        if out.len != batch * self.dim || batch == 0 {
            return Err(GpuError::shape(&name, format!("output has {} elements, expected {}", out.len, batch * self.dim)));
        }
        if perm.len != self.count || perm.dtype != DType::U32 {
            return Err(GpuError::shape(&name, format!("permutation has {} entries, expected {} u32", perm.len, self.count)));
        }
        let pipeline = gpu.pipeline("data/gather", source, "gather")?;
        let params = Self::params(batch, self.dim, start, scaling);
        let n = (batch * self.dim) as u32;
        gpu.launch(name, pipeline, &params, &[&self.data, perm, out], gpu.grid_1d(n.div_ceil(WG)))
    }

    /// out[b, :] = one-hot label of image perm[start + b] over `classes` classes.
    pub fn gather_labels(&self, gpu: &Gpu, perm: &GpuBuffer, batch: usize, start: usize, classes: usize, out: &GpuBuffer) -> Result<Launch> {
        let name = format!("gather_labels batch={batch} classes={classes}");
        let labels = self.labels.as_ref().ok_or_else(|| GpuError::shape(&name, "the data set has no labels"))?;
        if out.len != batch * classes || batch == 0 || classes == 0 {
            return Err(GpuError::shape(&name, format!("output has {} elements, expected {}", out.len, batch * classes)));
        }
        let pipeline = gpu.pipeline("data/gather_labels", source, "gather_labels")?;
        let params = Self::params(batch, classes, start, Scaling::UNIT);
        let n = (batch * classes) as u32;
        gpu.launch(name, pipeline, &params, &[labels, perm, out], gpu.grid_1d(n.div_ceil(WG)))
    }

    pub fn params(batch: usize, dim: usize, start: usize, s: Scaling) -> GatherParams {
        GatherParams { batch: batch as u32, dim: dim as u32, start: start as u32, binarize: s.binarize as u32, scale: s.scale, offset: s.offset, _pad: [0; 2] }
    }
}

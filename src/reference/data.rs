//! Twin of `data::gpu::GpuDataset::gather`.

use crate::types::Scaling;

/// The batch the GPU gathers: images perm[start..start + batch], scaled.
pub fn gather(images: &[u8], dim: usize, perm: &[u32], batch: usize, start: usize, s: Scaling) -> Vec<f64> {
    let mut out = Vec::with_capacity(batch * dim);
    for b in 0..batch {
        let img = perm[start + b] as usize;
        for &px in &images[img * dim..(img + 1) * dim] {
            let v = if s.binarize {
                if px > 127 {
                    255.0
                } else {
                    0.0
                }
            } else {
                px as f64
            };
            out.push(v * s.scale as f64 + s.offset as f64);
        }
    }
    out
}

/// One-hot labels of the batch the GPU gathers.
pub fn gather_labels(labels: &[u8], perm: &[u32], batch: usize, start: usize, classes: usize) -> Vec<f64> {
    let mut out = vec![0.0; batch * classes];
    for b in 0..batch {
        let c = labels[perm[start + b] as usize] as usize;
        if c < classes {
            out[b * classes + c] = 1.0;
        }
    }
    out
}

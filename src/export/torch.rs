//! A `Net`'s weights as a PyTorch state dict in safetensors: `weight` [out, in] or
//! [out, in, k, k] (`nn.ConvTranspose2d`: [in, out, k, k]), `bias` [out], batch norm's
//! `running_mean`, `running_var` and `num_batches_tracked` (int64, the steps trained), so
//! that `docs/vaegan_torch.py`'s modules take it with `load_state_dict` unchanged. The
//! metadata holds the model's config as JSON, from which those modules build themselves.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, TensorView};

use super::Net;
use crate::model::ModelConfig;

pub const FORMAT: &str = "vaegan-torch-1";

/// The safetensors bytes of one or more networks: each net's tensors under
/// `<prefix><name>`, the prefix empty for one part or `<part>.` for several.
pub fn to_safetensors(nets: &[Net], config: &ModelConfig, step: u64) -> Result<Vec<u8>, String> {
    let several = nets.len() > 1;
    let tracked = (step as i64).to_le_bytes();
    let mut entries: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = vec![];
    for net in nets {
        let prefix = if several { format!("{}.", net.part) } else { String::new() };
        for t in &net.tensors {
            entries.push((format!("{prefix}{}", t.name), t.dims.clone(), Dtype::F32, bytemuck::cast_slice(&t.data).to_vec()));
        }
        for bn in &net.batch_norms {
            entries.push((format!("{prefix}{bn}.num_batches_tracked"), vec![], Dtype::I64, tracked.to_vec()));
        }
    }
    let mut metadata = HashMap::new();
    metadata.insert("format".to_string(), FORMAT.to_string());
    metadata.insert("config".to_string(), serde_json::to_string(config).map_err(|e| e.to_string())?);
    metadata.insert("parts".to_string(), nets.iter().map(|n| n.part.name()).collect::<Vec<_>>().join(","));
    metadata.insert("step".to_string(), step.to_string());
    let views: Vec<(String, TensorView)> =
        entries.iter().map(|(n, d, t, b)| Ok((n.clone(), TensorView::new(*t, d.clone(), b).map_err(|e| e.to_string())?))).collect::<Result<_, String>>()?;
    safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| e.to_string())
}

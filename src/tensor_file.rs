//! Small safetensors files of f32 tensors tagged with a "format" in their metadata (the
//! MNIST classifier, the fitted prior): written atomically, read with every problem an
//! error that names the file and what was expected.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A file read whole, its format tag checked.
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
    pub meta: HashMap<String, String>,
}

impl TensorFile {
    /// Reads `path`, which must carry metadata "format" = `format`; `kind` names what it
    /// should be ("vaegan prior") and `hint`, if any, how to make one.
    pub fn read(path: &Path, format: &str, kind: &str, hint: Option<&str>) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        Self::parse(bytes, path, format, kind, hint)
    }

    /// `read` of a file's bytes (`path` names it in errors): what the fuzz targets call.
    pub fn parse(bytes: Vec<u8>, path: &Path, format: &str, kind: &str, hint: Option<&str>) -> Result<Self, String> {
        let fail = |e: String| format!("{}: {e}", path.display());
        safetensors::SafeTensors::deserialize(&bytes).map_err(|e| fail(format!("not a readable safetensors file: {e}")))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| fail(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(format) {
            let hint = hint.map(|h| format!("; {h}")).unwrap_or_default();
            return Err(fail(format!("not a {kind} (metadata \"format\" should be {format:?}{hint})")));
        }
        Ok(TensorFile { path: path.to_path_buf(), bytes, meta })
    }

    /// The file's size in bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// `e`, prefixed with the file.
    pub fn fail(&self, e: impl std::fmt::Display) -> String {
        format!("{}: {e}", self.path.display())
    }

    /// An f32 tensor's shape and values, every value finite.
    pub fn tensor(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
        let st = safetensors::SafeTensors::deserialize(&self.bytes).map_err(|e| self.fail(e))?;
        let view = st.tensor(name).map_err(|_| self.fail(format!("tensor {name} is missing")))?;
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(self.fail(format!("tensor {name} is {:?}, expected F32", view.dtype())));
        }
        let values: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(self.fail(format!("tensor {name} holds non-finite values")));
        }
        Ok((view.shape().to_vec(), values))
    }
}

/// Writes f32 `tensors` (name, shape, values) with `meta` plus "format" = `format`, to a
/// temporary file renamed over `path`, so a reader never sees half a file.
pub fn write(path: &Path, format: &str, meta: &[(&str, String)], tensors: &[(&str, Vec<usize>, &[f32])]) -> std::io::Result<()> {
    let views = tensors
        .iter()
        .map(|(name, dims, v)| Ok((name.to_string(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, dims.clone(), bytemuck::cast_slice(v))?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(std::io::Error::other)?;
    let mut all: HashMap<String, String> = meta.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    all.insert("format".to_string(), format.to_string());
    let bytes = safetensors::tensor::serialize(views, Some(all)).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

//! The pipeline cache: each kernel variant (source + entry point) compiles once per process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Gpu, Result};

#[derive(Default)]
pub struct PipelineCache {
    map: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
}

impl Gpu {
    /// The pipeline for `entry` in the WGSL `source`, compiled on first use under `key`.
    /// Layouts are derived from the shader ("auto"), so each entry point binds exactly
    /// the resources it uses.
    pub fn pipeline(&self, key: &str, source: impl FnOnce() -> Result<String>, entry: &str) -> Result<Arc<wgpu::ComputePipeline>> {
        if let Some(p) = self.pipelines.map.lock().unwrap().get(key) {
            return Ok(p.clone());
        }
        let source = source()?;
        let pipeline = self.scoped(&format!("compiling {key}"), || {
            let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(key), source: wgpu::ShaderSource::Wgsl(source.into()) });
            self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(key),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        })?;
        let pipeline = Arc::new(pipeline);
        self.pipelines.map.lock().unwrap().insert(key.to_string(), pipeline.clone());
        Ok(pipeline)
    }

    /// How many distinct pipelines this process compiled.
    pub fn pipelines_compiled(&self) -> usize {
        self.pipelines.map.lock().unwrap().len()
    }
}

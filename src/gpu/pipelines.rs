//! The pipeline cache: each kernel variant (source + entry point) compiles once per process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Gpu, Result};

#[derive(Default)]
pub struct PipelineCache {
    map: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
    /// What each was compiled from: (key, entry point, WGSL), in compile order — for
    /// translating every shader this process made to other back ends' languages
    /// (kernels-tests/translate.rs). A few KiB each.
    sources: Mutex<Vec<PipelineSource>>,
}

/// The WGSL a pipeline was compiled from, with its cache key and entry point.
#[derive(Clone, Debug)]
pub struct PipelineSource {
    pub key: String,
    pub entry: String,
    pub wgsl: String,
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
        self.pipelines.sources.lock().unwrap().push(PipelineSource { key: key.to_string(), entry: entry.to_string(), wgsl: source.clone() });
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

    /// The source of every pipeline this process compiled, in order.
    pub fn pipeline_sources(&self) -> Vec<PipelineSource> {
        self.pipelines.sources.lock().unwrap().clone()
    }

    /// How many distinct pipelines this process compiled.
    pub fn pipelines_compiled(&self) -> usize {
        self.pipelines.map.lock().unwrap().len()
    }
}

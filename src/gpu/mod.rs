//! The device layer: adapter choice, the device and its optional features, buffers,
//! the pipeline cache, launches and error scopes.

pub mod buffer;
pub mod error;
pub mod launch;
pub mod pipelines;
pub mod select;
pub mod template;
pub mod timing;
pub mod tuning;

pub use buffer::GpuBuffer;
pub use error::{GpuError, Result};
pub use launch::Launch;

use std::sync::{Arc, Mutex};

/// How to open a device.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Backend list ("vulkan", "gl", ...); `None` means `WGPU_BACKEND` or all.
    pub backend: Option<String>,
    /// Adapter index or name substring; `None` means `WGPU_ADAPTER_NAME` or the first.
    pub adapter: Option<String>,
    /// Do not use SHADER_F16 even where present (tests the f32 fallback).
    pub disable_f16: bool,
    /// Tune the matmul tile per shape class on first use (cached on disk); off: the
    /// adapter class's default tile.
    pub autotune: bool,
    /// The tuning cache file (None: `tuning::default_path()`).
    pub autotune_cache: Option<std::path::PathBuf>,
    /// Say on stderr what tuning does (the CLI sets it).
    pub autotune_verbose: bool,
    /// Request WebGPU's default limits (8 storage buffers per stage, 128 MiB per binding,
    /// 16 KiB of workgroup memory, 256 invocations per workgroup) instead of the adapter's:
    /// the floor every WebGPU device guarantees, to check that the kernels fit it.
    pub default_limits: bool,
}

/// The optional features we use, each requested only when the adapter has it.
#[derive(Clone, Copy, Debug, Default)]
pub struct OptionalFeatures {
    pub shader_f16: bool,
    pub subgroup: bool,
    /// The subgroup size when the adapter has subgroups of one fixed size (0 otherwise):
    /// kernels that hand values between lanes are written for a known lane count.
    pub subgroup_size: u32,
    pub timestamp_query: bool,
    pub timestamp_inside_passes: bool,
}

/// How the adapter executes compute: decides kernel tilings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterClass {
    /// Invocations are SIMD lanes of CPU cores (lavapipe, llvmpipe, SwiftShader):
    /// barriers are expensive, registers spill to cache cheaply.
    Cpu,
    /// A discrete, integrated or virtual GPU.
    Gpu,
}

/// An open device with everything a kernel needs.
pub struct Gpu {
    pub adapter: wgpu::Adapter,
    pub info: wgpu::AdapterInfo,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub limits: wgpu::Limits,
    pub features: OptionalFeatures,
    pub class: AdapterClass,
    pipelines: pipelines::PipelineCache,
    /// Matmul tile choices, when autotuning is on.
    /// Tuning choices that persist across processes (None: autotuning is off).
    pub tuner: Option<tuning::TuningCache>,
    /// The GEMM tile every kernel without a tile of its own uses instead of the class default
    /// and autotuning, as `kernels::matmul::Tile` writes it; set, checked, by `Tile::force_on`.
    pub forced_tile: Option<String>,
    /// Errors that escaped every scope (wgpu would panic on them by default).
    uncaptured: Arc<Mutex<Vec<String>>>,
}

impl Gpu {
    /// Opens the adapter chosen by `opts` and a device with the optional features it has.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(opts: &GpuOptions) -> Result<Gpu> {
        let backends = select::backends_from(opts.backend.as_deref())?;
        let instance = select::make_instance(backends);
        let adapters = select::list_adapters(&instance, backends);
        let adapter = select::pick_adapter(adapters, opts.adapter.as_deref(), backends)?;
        Self::from_adapter(adapter, opts)
    }

    /// Opens the browser's WebGPU adapter (the page's `navigator.gpu`).
    #[cfg(target_arch = "wasm32")]
    pub async fn request(opts: &GpuOptions) -> Result<Gpu> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::BROWSER_WEBGPU;
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() })
            .await
            .map_err(|e| GpuError::NoAdapter {
                backends: "webgpu".into(),
                hint: format!("{e}: this browser has no WebGPU adapter (Chrome/Edge 113+, Firefox 141+ on Windows, Safari 26; headless Chromium needs --enable-unsafe-webgpu)"),
            })?;
        Self::from_adapter_async(adapter, opts).await
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_adapter(adapter: wgpu::Adapter, opts: &GpuOptions) -> Result<Gpu> {
        pollster::block_on(Self::from_adapter_async(adapter, opts))
    }

    pub async fn from_adapter_async(adapter: wgpu::Adapter, opts: &GpuOptions) -> Result<Gpu> {
        let info = adapter.get_info();
        let have = adapter.features();
        let mut wanted = wgpu::Features::empty();
        let mut features = OptionalFeatures::default();
        if have.contains(wgpu::Features::SHADER_F16) && !opts.disable_f16 {
            wanted |= wgpu::Features::SHADER_F16;
            features.shader_f16 = true;
        }
        if have.contains(wgpu::Features::SUBGROUP) {
            wanted |= wgpu::Features::SUBGROUP;
            features.subgroup = true;
            if info.subgroup_min_size == info.subgroup_max_size {
                features.subgroup_size = info.subgroup_min_size;
            }
        }
        if have.contains(wgpu::Features::TIMESTAMP_QUERY) {
            wanted |= wgpu::Features::TIMESTAMP_QUERY;
            features.timestamp_query = true;
            let inside = wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
            if have.contains(inside) {
                wanted |= inside;
                features.timestamp_inside_passes = true;
            }
        }
        // Ask for the adapter's own limits: large storage bindings matter for data sets.
        let limits = if opts.default_limits { wgpu::Limits::default() } else { adapter.limits() };
        let desc = wgpu::DeviceDescriptor { label: Some("vaegan"), required_features: wanted, required_limits: limits.clone(), ..Default::default() };
        let (device, queue) = adapter.request_device(&desc).await.map_err(|e| GpuError::RequestDevice { adapter: info.name.clone(), detail: e.to_string() })?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("uncaptured wgpu error: {e}");
            sink.lock().unwrap().push(e.to_string());
        }));
        let lost_name = info.name.clone();
        device.set_device_lost_callback(move |reason, message| {
            // Dropping the device at exit also "loses" it; only report the unexpected.
            if reason != wgpu::DeviceLostReason::Destroyed {
                eprintln!(
                    "error: the GPU device {lost_name} was lost ({reason:?}): {message}. Restart; if it recurs, try a smaller --batch or another --adapter."
                );
            }
        });
        let class = match info.device_type {
            wgpu::DeviceType::Cpu => AdapterClass::Cpu,
            _ => AdapterClass::Gpu,
        };
        Ok(Gpu {
            adapter,
            info,
            device,
            queue,
            limits,
            features,
            class,
            pipelines: pipelines::PipelineCache::default(),
            tuner: opts.autotune.then(|| {
                let mut t = tuning::TuningCache::new(opts.autotune_cache.clone().or_else(tuning::default_path));
                t.verbose = opts.autotune_verbose;
                t
            }),
            forced_tile: None,
            uncaptured,
        })
    }

    /// One line naming the adapter, for logs and benchmark headers.
    pub fn describe(&self) -> String {
        format!("{} ({:?}, {:?}, driver {} {})", self.info.name, self.info.backend, self.info.device_type, self.info.driver, self.info.driver_info)
    }

    /// Runs `f` inside validation and out-of-memory error scopes and reports what they
    /// caught as an error naming `what`.
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        // Scopes pop innermost first; both pops are issued here, in order.
        let (v, o) = (validation.pop(), oom.pop());
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(e) = pollster::block_on(v).or(pollster::block_on(o)) {
            return Err(GpuError::from_wgpu(what, e));
        }
        // The browser answers only after we yield to its event loop, and nothing may block
        // there: the scope's error is kept and reported by the next scope or readback.
        #[cfg(target_arch = "wasm32")]
        {
            let sink = self.uncaptured.clone();
            let what = what.to_string();
            wasm_bindgen_futures::spawn_local(async move {
                let (v, o) = (v.await, o.await);
                if let Some(e) = v.or(o) {
                    sink.lock().unwrap().push(format!("{what}: {e}"));
                }
            });
        }
        self.check_uncaptured(what)?;
        Ok(value)
    }

    /// Fails with the oldest error that escaped every scope (or, in the browser, one that a
    /// scope caught after it returned), if any.
    pub fn check_uncaptured(&self, what: &str) -> Result<()> {
        let mut errors = self.uncaptured.lock().unwrap();
        if !errors.is_empty() {
            let e = errors.remove(0);
            return Err(GpuError::Device { what: what.to_string(), detail: e });
        }
        Ok(())
    }

    /// Waits until the queue is idle.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| GpuError::Device { what: "waiting for the GPU".into(), detail: e.to_string() })
    }

    /// Live GPU buffers and their bytes, as wgpu counts them (for checking that long runs
    /// do not grow).
    pub fn buffer_stats(&self) -> (i64, i64) {
        let c = self.device.get_internal_counters();
        (c.hal.buffers.read() as i64, c.hal.buffer_memory.read() as i64)
    }

    /// The most bytes one tensor may take: what a storage binding and a buffer both allow.
    pub fn binding_limit(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size)
    }

    /// The largest workgroup count per dispatch dimension.
    pub fn max_groups(&self) -> u32 {
        self.limits.max_compute_workgroups_per_dimension
    }

    /// Splits `groups` workgroups over x and y when x alone would exceed the limit.
    /// Kernels recover the linear index as `wid.x + wid.y * nwg.x`.
    pub fn grid_1d(&self, groups: u32) -> [u32; 3] {
        let max = self.max_groups();
        if groups <= max {
            [groups.max(1), 1, 1]
        } else {
            [max, groups.div_ceil(max), 1]
        }
    }
}

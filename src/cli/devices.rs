//! `vaegan devices`: every adapter on every backend, what it is and what it can do.

use super::DeviceArgs;
use crate::gpu::select;

pub fn run(args: &DeviceArgs) -> anyhow::Result<()> {
    let backends = select::backends_from(args.backend.as_deref())?;
    let instance = select::make_instance(backends);
    let adapters = select::list_adapters(&instance, backends);
    if adapters.is_empty() {
        anyhow::bail!("no adapter found on {}. {}", select::backends_name(backends), select::install_hint());
    }
    for (i, adapter) in adapters.iter().enumerate() {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let features = adapter.features();
        println!("[{i}] {}", info.name);
        println!("    backend: {:?}   type: {:?}", info.backend, info.device_type);
        println!("    driver: {} {}", info.driver, info.driver_info);
        println!("    vendor: 0x{:04x}   device: 0x{:04x}", info.vendor, info.device);
        println!(
            "    max storage binding: {} MiB   max buffer: {} MiB   storage buffers/stage: {}",
            limits.max_storage_buffer_binding_size >> 20,
            limits.max_buffer_size >> 20,
            limits.max_storage_buffers_per_shader_stage
        );
        println!(
            "    workgroup: max size {}x{}x{}, max invocations {}, shared memory {} KiB, max groups/dim {}",
            limits.max_compute_workgroup_size_x,
            limits.max_compute_workgroup_size_y,
            limits.max_compute_workgroup_size_z,
            limits.max_compute_invocations_per_workgroup,
            limits.max_compute_workgroup_storage_size >> 10,
            limits.max_compute_workgroups_per_dimension
        );
        if info.subgroup_min_size > 0 {
            println!("    subgroup size: {}..{}", info.subgroup_min_size, info.subgroup_max_size);
        }
        let optional = [
            (wgpu::Features::SHADER_F16, "SHADER_F16"),
            (wgpu::Features::SUBGROUP, "SUBGROUP"),
            (wgpu::Features::TIMESTAMP_QUERY, "TIMESTAMP_QUERY"),
            (wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES, "TIMESTAMP_QUERY_INSIDE_PASSES"),
            (wgpu::Features::SHADER_F64, "SHADER_F64"),
            (wgpu::Features::SHADER_FLOAT32_ATOMIC, "SHADER_FLOAT32_ATOMIC"),
            (wgpu::Features::PIPELINE_CACHE, "PIPELINE_CACHE"),
        ];
        let names: Vec<&str> = optional.iter().filter(|(f, _)| features.contains(*f)).map(|(_, n)| *n).collect();
        println!("    optional features: {}", if names.is_empty() { "none".to_string() } else { names.join(" ") });
    }
    Ok(())
}

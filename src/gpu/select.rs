//! Choosing a backend and an adapter: `--backend vulkan|metal|dx12|gl` (or `WGPU_BACKEND`)
//! and `--adapter <index or name substring>` (or `WGPU_ADAPTER_NAME`).

use super::error::{GpuError, Result};

/// Parses a backend list such as "vulkan", "gl" or "vulkan,gl". Aliases: vk, gles, opengl, mtl, d3d12.
pub fn parse_backends(text: &str) -> Result<wgpu::Backends> {
    let mut out = wgpu::Backends::empty();
    for part in text.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()) {
        out |= match part.as_str() {
            "vulkan" | "vk" => wgpu::Backends::VULKAN,
            "metal" | "mtl" => wgpu::Backends::METAL,
            "dx12" | "d3d12" => wgpu::Backends::DX12,
            "gl" | "gles" | "opengl" => wgpu::Backends::GL,
            "all" => wgpu::Backends::all(),
            _ => return Err(GpuError::UnknownBackend(part)),
        };
    }
    if out.is_empty() {
        return Err(GpuError::UnknownBackend(text.to_string()));
    }
    Ok(out)
}

/// The backends to use: the explicit choice, else `WGPU_BACKEND`, else every native backend
/// (GL last: wgpu ranks adapters and we prefer Vulkan/Metal/DX12 when several exist).
pub fn backends_from(choice: Option<&str>) -> Result<wgpu::Backends> {
    match choice.map(str::to_string).or_else(|| std::env::var("WGPU_BACKEND").ok()) {
        Some(text) => parse_backends(&text),
        None => Ok(wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12 | wgpu::Backends::GL),
    }
}

pub fn backends_name(b: wgpu::Backends) -> String {
    let mut names = vec![];
    for (flag, name) in [(wgpu::Backends::VULKAN, "vulkan"), (wgpu::Backends::METAL, "metal"), (wgpu::Backends::DX12, "dx12"), (wgpu::Backends::GL, "gl")] {
        if b.contains(flag) {
            names.push(name);
        }
    }
    names.join(",")
}

pub fn make_instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    // Validation layers are slow and often missing; wgpu's own validation stays on.
    desc.flags = wgpu::InstanceFlags::empty();
    wgpu::Instance::new(desc)
}

/// Every adapter on the given backends, in a stable order: Vulkan, Metal, DX12, GL,
/// then discrete before integrated before CPU.
#[cfg(not(target_arch = "wasm32"))]
pub fn list_adapters(instance: &wgpu::Instance, backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
    adapters.sort_by_key(|a| {
        let info = a.get_info();
        let backend_rank = match info.backend {
            wgpu::Backend::Vulkan => 0,
            wgpu::Backend::Metal => 1,
            wgpu::Backend::Dx12 => 2,
            wgpu::Backend::Gl => 3,
            _ => 4,
        };
        let type_rank = match info.device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        };
        (backend_rank, type_rank)
    });
    adapters
}

/// Picks an adapter: by index into `list_adapters`' order or by a case-insensitive
/// substring of its name; the first one when nothing is asked.
pub fn pick_adapter(adapters: Vec<wgpu::Adapter>, wanted: Option<&str>, backends: wgpu::Backends) -> Result<wgpu::Adapter> {
    if adapters.is_empty() {
        return Err(GpuError::NoAdapter { backends: backends_name(backends), hint: install_hint() });
    }
    let wanted = wanted.map(str::to_string).or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok());
    let Some(wanted) = wanted else {
        return Ok(adapters.into_iter().next().unwrap());
    };
    let available =
        adapters.iter().enumerate().map(|(i, a)| format!("[{i}] {} ({:?})", a.get_info().name, a.get_info().backend)).collect::<Vec<_>>().join(", ");
    if let Ok(index) = wanted.trim().parse::<usize>() {
        return adapters.into_iter().nth(index).ok_or(GpuError::AdapterNotFound { wanted, available });
    }
    let needle = wanted.to_ascii_lowercase();
    adapters.into_iter().find(|a| a.get_info().name.to_ascii_lowercase().contains(&needle)).ok_or(GpuError::AdapterNotFound { wanted, available })
}

/// What to tell a user who has no adapter at all.
pub fn install_hint() -> String {
    "Install a GPU driver; with no GPU, Mesa's CPU drivers work: \
     `apt-get install -y mesa-vulkan-drivers` (Vulkan on lavapipe) or \
     `apt-get install -y libegl1 libgl1-mesa-dri` (GL on llvmpipe, with --backend gl)."
        .to_string()
}

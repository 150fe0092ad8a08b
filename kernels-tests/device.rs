//! The device layer: backend and adapter choice, clear errors, NaN poisoning.

use vaegan::gpu::select;
use vaegan::{DType, GpuError, GpuOptions};

use crate::common::*;

#[test]
fn backends_parse_with_aliases_and_refuse_unknown_names() {
    assert_eq!(select::parse_backends("vulkan").unwrap(), wgpu::Backends::VULKAN);
    assert_eq!(select::parse_backends("gl,VK").unwrap(), wgpu::Backends::GL | wgpu::Backends::VULKAN);
    assert_eq!(select::parse_backends("dx12").unwrap(), wgpu::Backends::DX12);
    assert_eq!(select::parse_backends("metal").unwrap(), wgpu::Backends::METAL);
    let err = select::parse_backends("cuda").unwrap_err();
    assert!(matches!(err, GpuError::UnknownBackend(_)) && err.to_string().contains("vulkan, metal, dx12, gl"), "{err}");
}

#[test]
fn an_adapter_that_does_not_exist_is_a_clear_error() {
    let backend = std::env::var("VAEGAN_TEST_BACKEND").unwrap_or_else(|_| "vulkan".into());
    let opts = GpuOptions { backend: Some(backend), adapter: Some("no-such-gpu-9000".into()), disable_f16: false, ..Default::default() };
    let err = vaegan::Gpu::new(&opts).err().expect("no adapter has that name");
    let text = err.to_string();
    assert!(text.contains("no-such-gpu-9000") && text.contains("available: [0]"), "{text}");
    let opts = GpuOptions { adapter: Some("99".into()), ..opts };
    assert!(matches!(vaegan::Gpu::new(&opts), Err(GpuError::AdapterNotFound { .. })));
}

#[test]
fn the_test_adapter_is_found_by_name_substring() {
    let name = gpu().info.name.clone();
    let needle: String = name.chars().take(5).collect();
    let backend = std::env::var("VAEGAN_TEST_BACKEND").unwrap_or_else(|_| "vulkan".into());
    let g = vaegan::Gpu::new(&GpuOptions { backend: Some(backend), adapter: Some(needle.to_uppercase()), disable_f16: false, ..Default::default() }).unwrap();
    assert_eq!(g.info.name, name);
}

#[test]
fn poison_fills_nan_and_roundtrips_are_exact() {
    let g = gpu();
    let buf = g.zeros("p", 13, DType::F32).unwrap();
    g.poison(&buf);
    assert!(g.download_f32(&buf).unwrap().iter().all(|v| v.is_nan()));
    let data: Vec<f32> = (0..13).map(|i| i as f32 * 0.5 - 3.0).collect();
    g.write_f32(&buf, &data).unwrap();
    assert_eq!(g.download_f32(&buf).unwrap(), data);
    assert!(g.write_f32(&buf, &data[..5]).is_err());
    let ints = g.upload_u32("u", &[1, 2, 3]).unwrap();
    assert_eq!(g.download_u32(&ints).unwrap(), vec![1, 2, 3]);
}

#[test]
fn a_buffer_over_the_binding_limit_is_refused_with_the_limit_named() {
    let g = gpu();
    let max = g.limits.max_storage_buffer_binding_size.min(g.limits.max_buffer_size);
    let too_many = (max / 4 + 1) as usize;
    let err = g.zeros("huge", too_many, DType::F32).expect_err("over the limit");
    assert!(err.to_string().contains(&max.to_string()), "{err}");
}

/// A validation error inside wgpu (here a bind group whose buffer is smaller than the
/// shader needs is not possible through our wrappers, so we call wgpu directly) is caught
/// by the error scope and named, not a panic.
#[test]
fn wgpu_validation_errors_become_named_errors() {
    let g = gpu();
    let err = g
        .scoped("deliberately bad buffer", || {
            g.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("bad"),
                size: 16,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        })
        .expect_err("MAP_READ with STORAGE is invalid");
    assert!(matches!(err, GpuError::Validation { .. }), "{err:?}");
    assert!(err.to_string().contains("deliberately bad buffer"), "{err}");
}

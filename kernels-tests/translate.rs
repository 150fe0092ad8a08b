//! What a Metal, DX12 or Vulkan GPU's shader compiler would be given: every pipeline source
//! the engine makes — each kernel family, every matmul tile of both adapter classes in every
//! layout, epilogue and operand type, the convolutions' gathered GEMMs and narrow kernel,
//! the training steps and evaluation graphs of every preset in f32 and f16, the data
//! gather — parsed and validated by naga (the version wgpu uses) and translated to MSL
//! (what wgpu's Metal backend compiles), HLSL shader model 6.2 (DX12) and SPIR-V (Vulkan),
//! the SPIR-V then checked by `spirv-val` where it is installed (Debian's spirv-tools; CI
//! installs it and sets `VAEGAN_TEST_REQUIRE_SPIRV_VAL`, so a missing validator fails there).
//! A source that one back end cannot take fails the test with its pipeline's name.
//!
//! Also: under `VAEGAN_TEST_DEFAULT_LIMITS=1` the device really has WebGPU's default limits.

use std::collections::BTreeSet;

use vaegan::data::gpu::GpuDataset;
use vaegan::data::Dataset;
use vaegan::graph::{ExecOptions, GpuExecutor};
use vaegan::kernels::matmul::{matmul, MatmulSpec, Tile};
use vaegan::kernels::{autotune, conv2d};
use vaegan::model::{build_decode, build_discriminate, build_encode, build_eval, build_step, RunConfig};
use vaegan::types::{Act, ConvGeom, DType, Precision, Scaling, Trans};
use vaegan::Gpu;

use crate::common::*;

/// Makes every pipeline the engine can create on `dev` (without running any).
fn make_every_pipeline(dev: &Gpu) {
    let f32s = |n: usize| dev.upload_f32("x", &vec![0.5; n]).unwrap();
    let f16s = |n: usize| dev.upload_f16("x", &vec![0.5; n]).unwrap();
    // Every candidate tile of both classes (the GPU class's shared tiles included: they are
    // what a real GPU runs) that this device can run, and the forced/default ones.
    let mut tiles: Vec<Tile> = [vaegan::gpu::AdapterClass::Cpu, vaegan::gpu::AdapterClass::Gpu].into_iter().flat_map(autotune::class_candidates).collect();
    tiles.push(Tile::default_for(dev));
    tiles.push(Tile::class_default(dev));
    tiles.retain(|t| t.check(dev).is_ok());
    tiles.dedup();
    let (m, n, k) = (6, 8, 12);
    let c = dev.zeros("c", m * n, DType::F32).unwrap();
    let bias = f32s(n);
    // Each tile's register block in every layout and operand type; the epilogues (bias and
    // each activation, the same text on every tile) on the first tile.
    for (i, &tile) in tiles.iter().enumerate() {
        for trans in [Trans::NN, Trans::NT, Trans::TN] {
            // f16 operands only where the adapter has SHADER_F16 (GL's llvmpipe has not).
            let dtypes: &[DType] = if dev.features.shader_f16 { &[DType::F32, DType::F16] } else { &[DType::F32] };
            for &dtype in dtypes {
                let (a, b) = if dtype == DType::F16 { (f16s(m * k), f16s(k * n)) } else { (f32s(m * k), f32s(k * n)) };
                let acts: &[Act] =
                    if i == 0 && trans == Trans::NN { &[Act::None, Act::Relu, Act::LeakyRelu(0.2), Act::Tanh, Act::Sigmoid] } else { &[Act::None] };
                for &act in acts {
                    let spec = MatmulSpec::new(m, n, k, trans).act(act).tile(tile);
                    matmul(dev, &spec, &a, &b, (act != Act::None).then_some(&bias), &c).unwrap();
                }
            }
        }
        // A convolution's gathered GEMMs on this tile: forward (channels in quads and not),
        // the stride phases of the input gradient, the weight gradient.
        for g in [ConvGeom::conv(2, (9, 7, 4), 6, (5, 5), 2, 2).unwrap(), ConvGeom::conv(1, (6, 5, 3), 5, (3, 3), 1, 1).unwrap()] {
            let (x, w, y) = (f32s(g.input_len()), f32s(g.weight_len()), f32s(g.output_len()));
            conv2d::conv2d_forward_tiled(dev, &g, Act::Relu, &x, &w, Some(&f32s(g.out_c)), &y, tile).unwrap();
        }
    }
    // Every convolution role on the device's default tile, both input-gradient paths.
    for g in [
        ConvGeom::conv(2, (9, 7, 4), 6, (5, 5), 2, 2).unwrap(),
        ConvGeom::conv(1, (6, 5, 3), 5, (3, 3), 1, 1).unwrap(),
        ConvGeom::conv(2, (8, 8, 8), 4, (4, 4), 2, 1).unwrap(),
    ] {
        let (x, w, y) = (f32s(g.input_len()), f32s(g.weight_len()), f32s(g.output_len()));
        for path in [conv2d::InputPath::Gemm, conv2d::InputPath::Narrow] {
            conv2d::conv2d_backward_input_via(dev, &g, path, &y, &w, &x).unwrap();
            conv2d::conv_transpose2d_forward_via(dev, &g, Act::Sigmoid, path, &y, &w, Some(&f32s(g.in_c)), &x).unwrap();
        }
        conv2d::conv2d_backward_weight(dev, &g, &x, &y, &w).unwrap();
    }
    // The models: training steps (f32 and f16), evaluation, decoding, encoding, discriminating.
    for preset in ["mnist-mlp", "pytorch-vae", "mnist-conv", "celeba64"] {
        let run = RunConfig::preset(preset).unwrap();
        let c = &run.model;
        let mut precisions = vec![Precision::F32];
        if dev.features.shader_f16 {
            precisions.push(Precision::F16);
        }
        for precision in precisions {
            let step = build_step(c, 2, 1).unwrap();
            let update = Some(step.graph.groups.iter().map(|g| run.optim.rule(&g.name, 0)).collect());
            GpuExecutor::new(dev, step.graph, ExecOptions { seed: 1, reuse: true, update, precision }).unwrap();
        }
        let mut graphs = vec![build_eval(c, 2).unwrap().graph, build_decode(c, 2).unwrap().graph, build_encode(c, 2).unwrap().graph];
        graphs.extend(build_discriminate(c, 2).unwrap().map(|d| d.graph));
        for graph in graphs {
            GpuExecutor::new(dev, graph, ExecOptions { seed: 1, reuse: true, update: None, precision: Precision::F32 }).unwrap();
        }
    }
    // The recipe's optional latent penalty (the mmd family) in a training step.
    let mut run = RunConfig::preset("mnist-mlp").unwrap();
    run.model.latent_mmd = 1.0;
    GpuExecutor::new(dev, build_step(&run.model, 2, 1).unwrap().graph, ExecOptions { seed: 1, reuse: true, update: None, precision: Precision::F32 }).unwrap();
    // The decoder's weight average (`optim.decoder_ema`).
    vaegan::kernels::ema::ema(dev, 0.999, &f32s(8), &f32s(8)).unwrap();
    // The data set's gather, images and labels.
    let set = Dataset {
        images: vec![7u8; 4 * 12].into(),
        labels: Some(vec![1, 2, 3, 4]),
        attributes: None,
        count: 4,
        height: 3,
        width: 4,
        channels: 1,
        source: "test".into(),
    };
    let data = GpuDataset::upload(dev, &set).unwrap();
    let perm = data.permutation_buffer(dev).unwrap();
    data.gather(dev, &perm, 2, 0, Scaling::UNIT, &dev.zeros("batch", 2 * 12, DType::F32).unwrap()).unwrap();
    data.gather_labels(dev, &perm, 2, 0, 10, &dev.zeros("labels", 2 * 10, DType::F32).unwrap()).unwrap();
    // Global max pooling (the colour classifiers' trunk) and its backward.
    let (x, y) = (f32s(2 * 3 * 4), f32s(2 * 4));
    vaegan::kernels::pool::position_max(dev, 2, 3, 4, &x, &y).unwrap();
    vaegan::kernels::pool::position_max_backward(dev, 2, 3, 4, &x, &y, &f32s(2 * 3 * 4)).unwrap();
}

/// naga's validator with what the engine may use: f16, subgroups in compute.
fn validate(module: &naga::Module) -> Result<naga::valid::ModuleInfo, String> {
    use naga::valid::{Capabilities, SubgroupOperationSet, ValidationFlags, Validator};
    let mut v = Validator::new(ValidationFlags::all(), Capabilities::SHADER_FLOAT16 | Capabilities::SUBGROUP);
    v.subgroup_stages(naga::valid::ShaderStages::COMPUTE);
    v.subgroup_operations(SubgroupOperationSet::all());
    v.validate(module).map_err(|e| format!("{e:?}"))
}

/// MSL 2.4 (Metal), HLSL shader model 6.2 (DX12: f16 needs 6.2, wave intrinsics 6.0),
/// SPIR-V 1.3 (Vulkan 1.1: subgroup operations). Returns the SPIR-V words.
fn translate(module: &naga::Module, info: &naga::valid::ModuleInfo) -> Result<Vec<u32>, String> {
    use naga::back::{hlsl, msl, spv};
    let msl_options = msl::Options { lang_version: (2, 4), ..Default::default() };
    msl::write_string(module, info, &msl_options, &msl::PipelineOptions::default()).map_err(|e| format!("MSL: {e}"))?;
    let hlsl_options = hlsl::Options { shader_model: hlsl::ShaderModel::V6_2, ..Default::default() };
    let mut text = String::new();
    hlsl::Writer::new(&mut text, &hlsl_options, &hlsl::PipelineOptions::default()).write(module, info, None).map_err(|e| format!("HLSL: {e}"))?;
    let spv_options = spv::Options { lang_version: (1, 3), ..Default::default() };
    spv::write_vec(module, info, &spv_options, None).map_err(|e| format!("SPIR-V: {e}"))
}

/// `spirv-val` on the words, where the tool is installed: None without it.
fn spirv_val(words: &[u32], dir: &std::path::Path, i: usize) -> Option<Result<(), String>> {
    let path = dir.join(format!("{i}.spv"));
    std::fs::write(&path, words.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let out = std::process::Command::new("spirv-val").arg("--target-env").arg("vulkan1.1").arg(&path).output().ok()?;
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(format!("spirv-val: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    })
}

#[test]
fn every_pipeline_translates_to_msl_hlsl_and_valid_spirv() {
    let dev = fresh_gpu(false);
    let t0 = std::time::Instant::now();
    make_every_pipeline(&dev);
    let sources = dev.pipeline_sources();
    eprintln!("made {} pipelines in {:.1} s", sources.len(), t0.elapsed().as_secs_f64());
    // Every kernel family's file reached a pipeline (by its first line, which each source
    // made from it carries).
    let shaders = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for entry in std::fs::read_dir(&shaders).unwrap() {
        let path = entry.unwrap().path();
        // The f16 cast exists only for the mixed-precision step, on adapters with SHADER_F16;
        // the subgroup matmul only where subgroups have 8 lanes (both hold on lavapipe, where
        // CI runs this test).
        if (path.ends_with("cast.wgsl") && !dev.features.shader_f16)
            || (path.ends_with("matmul_subgroup.wgsl") && dev.features.subgroup_size != vaegan::kernels::matmul::SUBGROUP_LANES)
        {
            continue;
        }
        let first = std::fs::read_to_string(&path).unwrap().lines().next().unwrap().to_string();
        assert!(sources.iter().any(|s| s.wgsl.contains(&first)), "no pipeline was made from {}", path.display());
    }
    let kinds: BTreeSet<&str> =
        sources.iter().filter(|s| s.key.starts_with("matmul/")).filter_map(|s| ["subgroup", "shared", "@"].into_iter().find(|k| s.key.contains(k))).collect();
    assert!(kinds.contains("shared") && kinds.contains("@"), "matmul kinds made: {kinds:?}");
    let require_val = std::env::var("VAEGAN_TEST_REQUIRE_SPIRV_VAL").is_ok();
    let dir = tempfile::tempdir().unwrap();
    let mut seen = BTreeSet::new();
    let (mut translated, mut validated, mut failures) = (0, 0, vec![]);
    for (i, s) in sources.iter().enumerate() {
        if !seen.insert(s.wgsl.clone()) {
            continue;
        }
        let result = naga::front::wgsl::parse_str(&s.wgsl)
            .map_err(|e| format!("WGSL: {}", e.emit_to_string(&s.wgsl)))
            .and_then(|module| validate(&module).and_then(|info| translate(&module, &info)))
            .and_then(|words| match spirv_val(&words, dir.path(), i) {
                Some(r) => r.map(|_| true),
                None if require_val => Err("spirv-val is not installed (VAEGAN_TEST_REQUIRE_SPIRV_VAL is set)".into()),
                None => Ok(false),
            });
        match result {
            Ok(was_validated) => {
                translated += 1;
                validated += was_validated as usize;
            }
            Err(e) => failures.push(format!("{} (entry {}): {e}", s.key, s.entry)),
        }
    }
    assert!(failures.is_empty(), "{} of {} sources failed:\n{}", failures.len(), seen.len(), failures.join("\n"));
    eprintln!("{translated} distinct pipeline sources (of {} pipelines) translated to MSL, HLSL and SPIR-V; {validated} checked by spirv-val", sources.len());
    assert!(translated > 100, "only {translated} sources");
}

#[test]
fn default_limits_are_honoured_when_asked() {
    let dev = fresh_gpu(false);
    if default_limits() {
        assert_eq!(dev.limits.max_storage_buffers_per_shader_stage, 8);
        assert_eq!(dev.limits.max_compute_workgroup_storage_size, 16384);
        assert_eq!(gpu().limits.max_compute_invocations_per_workgroup, 256);
    } else {
        assert!(dev.limits.max_storage_buffers_per_shader_stage >= 8);
    }
}

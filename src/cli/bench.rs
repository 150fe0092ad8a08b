//! `vaegan bench`: throughput on the adapter at hand, next to that adapter's own measured
//! ceilings. Sections: `--ceiling` (a large copy's GB/s, the best matmul GFLOP/s over the
//! tiles), `--kernels` (matmul at square and model shapes, elementwise, reduction, Adam),
//! `--step` (whole training steps); all when none is named. `--json` for machines.
//! Kernel times come from GPU timestamp queries where the adapter has them (the host clock
//! otherwise, and the output says which): the median of several passes after a warm-up.

use std::time::Instant;

use clap::Args;
use serde::Serialize;

use super::DeviceArgs;
use crate::gpu::{Gpu, GpuBuffer, Launch};
use crate::graph::ops::ConvRole;
use crate::kernels::adam;
use crate::kernels::batch_norm::{self, BatchNormSettings};
use crate::kernels::matmul::{self, MatmulSpec, Tile};
use crate::kernels::{elementwise, reduce};
use crate::types::{Act, AdamParams, ConvGeom, DType, Precision, Trans};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Measure the adapter's ceilings (with no section named, every section runs).
    #[arg(long)]
    ceiling: bool,
    /// Time the kernels.
    #[arg(long)]
    kernels: bool,
    /// Time whole training steps of mnist-mlp (vae-gan and vae), mnist-conv and celeba64.
    #[arg(long)]
    step: bool,
    /// Time whole trainer steps with the data set resident on the GPU and streamed from the
    /// host (mnist-conv, celeba64).
    #[arg(long)]
    feed: bool,
    /// Time every convolution GEMM of --preset's training step (default celeba64, Larsen et
    /// al.'s 64×64 model): forwards, input and weight gradients, each beside a dense matmul
    /// of the same M×N×K, at --conv-batch (also part of --kernels).
    #[arg(long)]
    conv: bool,
    /// Batch of the --conv shapes (default: 16 on a CPU adapter, 64 on a GPU).
    #[arg(long)]
    conv_batch: Option<usize>,
    /// Data-parallel steps (run it under `mpirun -np N`, with the `mpi` feature): each
    /// group's gradient all-reduced across the ranks, for mnist-mlp and celeba64 (or
    /// --models) at --batches per rank; per step, the wall time, the host's time in the all-reduce
    /// (waiting for the other ranks included) and the gradient bytes. Alone, it measures
    /// the reduced step's own overhead (read back, write back) with one process.
    #[arg(long)]
    allreduce: bool,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// Small sizes and few samples: seconds, for checking that the bench works.
    #[arg(long)]
    quick: bool,
    /// Square matmul sizes (M = N = K).
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Batch sizes for the model's matmul shapes and for --step.
    #[arg(long, value_delimiter = ',')]
    batches: Option<Vec<usize>>,
    /// Matmul tiles to compare: TMxTN@WXxWY (register), TMxTN@8/subgroup (8 lanes across the columns), TMxTN@4x2/subgroup (4 across, 2 row groups) or
    /// TMxTN@WXxWY/shared, e.g. 16x16@8x8,32x8@8/subgroup,4x4@16x16/shared; default: the adapter's.
    #[arg(long, value_delimiter = ',')]
    tiles: Vec<String>,
    /// Timed samples per kernel (the median is reported).
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// Timed steps per configuration for --step, --feed and --allreduce [default: 20; 3 with
    /// --quick]. Given, it wins over --quick's.
    #[arg(long)]
    steps: Option<usize>,
    /// The models --step times, of mnist-mlp (its vae-gan and vae), mnist-conv and celeba64
    /// (comma-separated); default: all of them (celeba64 not with --quick).
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
    /// Also time f16-storage matmul and the mixed-precision (`--precision f16`) training step
    /// where the adapter has SHADER_F16.
    #[arg(long)]
    f16: bool,
    /// Time every dispatch of one training step of --preset alone (at the first of
    /// --batches, default 256) and print where the step's time goes, by kernel.
    #[arg(long)]
    profile: bool,
    /// The model --profile and --conv time [default: mnist-mlp for --profile, celeba64 for
    /// --conv].
    #[arg(long)]
    preset: Option<String>,
}

impl BenchArgs {
    /// The model --conv times: --preset, else Larsen et al.'s 64×64 model.
    fn conv_preset(&self) -> &str {
        self.preset.as_deref().unwrap_or("celeba64")
    }
    /// The model --profile times: --preset, else mnist-mlp.
    fn profile_preset(&self) -> &str {
        self.preset.as_deref().unwrap_or("mnist-mlp")
    }
}

#[derive(Serialize, Default)]
struct Report {
    adapter: String,
    backend: String,
    device_type: String,
    driver: String,
    clock: String,
    ceiling: Option<Ceiling>,
    kernels: Vec<KernelRow>,
    convs: Vec<ConvRow>,
    steps: Vec<StepRow>,
    feeds: Vec<FeedRow>,
}

/// A training step with the data set resident on the GPU against the same step fed by the
/// background thread (the set over the GPU data budget).
#[derive(Serialize)]
struct FeedRow {
    model: String,
    batch: usize,
    steps: usize,
    resident_ms: f64,
    streamed_ms: f64,
    /// streamed / resident − 1.
    overhead: f64,
}

/// One convolution GEMM of a preset's step, and a dense matmul of its M×N×K.
#[derive(Serialize)]
struct ConvRow {
    /// The layers that run it, with what it is to each: "encoder.conv1 dx, decoder.deconv0 fwd".
    layer: String,
    kernel: String,
    geometry: String,
    gemm: String,
    microseconds: f64,
    gflop_s: f64,
    matmul_gflop_s: f64,
    of_matmul: f64,
}

#[derive(Serialize, Clone)]
struct Ceiling {
    /// A copy kernel over `copy_bytes` bytes: (read + written) bytes per second / 1e9.
    copy_gb_s: f64,
    copy_bytes: u64,
    /// The best f32 matmul over the tiles tried, at `matmul_size`³.
    matmul_gflop_s: f64,
    matmul_size: usize,
    matmul_tile: String,
}

#[derive(Serialize)]
struct KernelRow {
    kernel: String,
    shape: String,
    dtype: String,
    tile: Option<String>,
    microseconds: f64,
    gflop_s: Option<f64>,
    gb_s: Option<f64>,
    /// Of the matching ceiling: GFLOP/s of the best matmul, or GB/s of the copy.
    of_ceiling: Option<f64>,
}

#[derive(Serialize)]
struct StepRow {
    model: String,
    /// What the matmuls read: f32, or f16 (mixed precision, `--precision f16`).
    precision: String,
    batch: usize,
    /// How many steps the wall clock timed.
    steps: usize,
    samples_per_s: f64,
    ms_per_step: f64,
    dispatches: usize,
    record_ms: f64,
    record_share: f64,
    submit_share: f64,
    gflop_s: f64,
}

use crate::kernels::matmul::pattern as filler;

/// Seconds per matmul of `spec` (operands in `dtype`).
fn time_matmul(gpu: &Gpu, spec: MatmulSpec, dtype: DType, samples: usize) -> anyhow::Result<f64> {
    let (na, nb) = (spec.m * spec.k, spec.k * spec.n);
    let (a, b) = match dtype {
        DType::F16 => (gpu.upload_f16("A", &filler(na))?, gpu.upload_f16("B", &filler(nb))?),
        _ => (gpu.upload_f32("A", &filler(na))?, gpu.upload_f32("B", &filler(nb))?),
    };
    let c = gpu.zeros("C", spec.m * spec.n, DType::F32)?;
    let launch = matmul::matmul(gpu, &spec, &a, &b, None, &c)?;
    Ok(gpu.median_time(&[&launch], samples)?)
}

fn time_one(gpu: &Gpu, launches: &[Launch], samples: usize) -> anyhow::Result<f64> {
    let refs: Vec<&Launch> = launches.iter().collect();
    Ok(gpu.median_time(&refs, samples)?)
}

pub fn run(device: &DeviceArgs, args: &BenchArgs) -> anyhow::Result<()> {
    let collective = super::common::processes()?;
    if collective.size() > 1 && !args.allreduce {
        anyhow::bail!("under mpirun, bench measures data-parallel steps only: add --allreduce");
    }
    if args.allreduce {
        let gpu = if collective.size() > 1 { device.open_for_rank(crate::train::parallel::local_rank())? } else { device.open()? };
        return bench_allreduce(&gpu, args, &*collective);
    }
    let gpu = device.open()?;
    if args.profile {
        return profile_step(&gpu, args);
    }
    let all = !args.ceiling && !args.kernels && !args.step && !args.conv && !args.feed;
    let mut report = Report {
        adapter: gpu.info.name.clone(),
        backend: format!("{:?}", gpu.info.backend),
        device_type: format!("{:?}", gpu.info.device_type),
        driver: format!("{} {}", gpu.info.driver, gpu.info.driver_info).trim().to_string(),
        clock: gpu.clock().name().to_string(),
        ..Default::default()
    };
    let samples = if args.quick { 3 } else { args.samples };
    if !args.json {
        println!("adapter: {}", gpu.describe());
        println!("timing: {}, median of {samples} samples", gpu.clock().name());
    }
    let tiles: Vec<Tile> = if args.tiles.is_empty() {
        vec![Tile::default_for(&gpu)]
    } else {
        let parsed = args.tiles.iter().map(|t| t.parse::<Tile>().map_err(|e| anyhow::anyhow!("--tiles: {e}")));
        parsed.collect::<anyhow::Result<_>>()?
    };
    for tile in &tiles {
        tile.check(&gpu).map_err(|e| anyhow::anyhow!("--tiles: {e}"))?;
    }

    if all || args.ceiling {
        let ceiling = measure_ceiling(&gpu, args.quick, samples)?;
        if !args.json {
            println!();
            println!(
                "ceilings: copy {:.1} GB/s over {} MiB; best f32 matmul {:.1} GFLOP/s at {}³ (tile {})",
                ceiling.copy_gb_s,
                ceiling.copy_bytes >> 20,
                ceiling.matmul_gflop_s,
                ceiling.matmul_size,
                ceiling.matmul_tile
            );
        }
        report.ceiling = Some(ceiling);
    }
    if all || args.kernels {
        report.kernels = bench_kernels(&gpu, args, &tiles, samples, report.ceiling.as_ref())?;
        if !args.json {
            println!();
            println!("{:<22} {:<26} {:>5} {:>18} {:>11} {:>9} {:>8} {:>9}", "kernel", "shape", "dtype", "tile", "µs", "GFLOP/s", "GB/s", "ceiling");
            for r in &report.kernels {
                let f = |v: Option<f64>, p: usize| v.map(|x| format!("{x:.p$}")).unwrap_or_else(|| "-".into());
                println!(
                    "{:<22} {:<26} {:>5} {:>18} {:>11.1} {:>9} {:>8} {:>9}",
                    r.kernel,
                    r.shape,
                    r.dtype,
                    r.tile.clone().unwrap_or_default(),
                    r.microseconds,
                    f(r.gflop_s, 1),
                    f(r.gb_s, 1),
                    r.of_ceiling.map(|x| format!("{:.0}%", 100.0 * x)).unwrap_or_else(|| "-".into())
                );
            }
        }
    }
    if all || args.conv || args.kernels {
        report.convs = bench_convs(&gpu, args, samples)?;
        if !args.json {
            println!();
            println!(
                "convolutions of the {} step (implicit GEMMs, tiles as the step takes them) beside a dense matmul of the same M×N×K, f32",
                args.conv_preset()
            );
            println!("(a transposed layer runs its adjoint convolution's GEMMs: its fwd is that geometry's input gradient, its dx that forward)");
            println!("{:<18} {:<36} {:<18} {:>10} {:>9} {:>9} {:>9}  layers", "kernel", "geometry", "M×N×K", "µs", "GFLOP/s", "matmul", "of matmul");
            for r in &report.convs {
                println!(
                    "{:<18} {:<36} {:<18} {:>10.1} {:>9.1} {:>9.1} {:>8.0}%  {}",
                    r.kernel,
                    r.geometry,
                    r.gemm,
                    r.microseconds,
                    r.gflop_s,
                    r.matmul_gflop_s,
                    100.0 * r.of_matmul,
                    r.layer
                );
            }
        }
    }
    if all || args.step {
        report.steps = bench_steps(&gpu, args)?;
        if !args.json {
            println!();
            println!(
                "training step: Adam on every group; wall clock to the last step's completion; record = the host's own work, submit = inside queue.submit"
            );
            println!(
                "{:<20} {:>5} {:>6} {:>11} {:>9} {:>11} {:>15} {:>10} {:>9}",
                "model", "prec", "batch", "samples/s", "ms/step", "dispatches", "record ms (%)", "submit %", "GFLOP/s"
            );
            for r in &report.steps {
                println!(
                    "{:<20} {:>5} {:>6} {:>11} {:>9.2} {:>11} {:>7.2} ({:>4.1}%) {:>9.1}% {:>9.1}",
                    r.model,
                    r.precision,
                    r.batch,
                    // Two significant digits: celeba64 on a CPU adapter runs at ~0.3 samples/s.
                    super::common::rate(r.samples_per_s),
                    r.ms_per_step,
                    r.dispatches,
                    r.record_ms,
                    100.0 * r.record_share,
                    100.0 * r.submit_share,
                    r.gflop_s
                );
            }
        }
    }
    if all || args.feed {
        report.feeds = bench_feed(&gpu, args)?;
        if !args.json {
            println!();
            println!("data feed: trainer steps with the set resident on the GPU, and streamed by the background thread (wall clock, mean per step)");
            println!("{:<12} {:>6} {:>6} {:>13} {:>13} {:>9}", "model", "batch", "steps", "resident ms", "streamed ms", "overhead");
            for r in &report.feeds {
                println!("{:<12} {:>6} {:>6} {:>13.1} {:>13.1} {:>8.1}%", r.model, r.batch, r.steps, r.resident_ms, r.streamed_ms, 100.0 * r.overhead);
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// Data-parallel steps: the reduced step on every rank, the gradients averaged by the
/// collective; rank 0 prints.
fn bench_allreduce(gpu: &Gpu, args: &BenchArgs, collective: &dyn crate::train::parallel::Collective) -> anyhow::Result<()> {
    use crate::graph::{ExecOptions, GpuExecutor};
    use crate::model::{build_step, RunConfig};
    let ranks = collective.size();
    let leader = collective.rank() == 0;
    let cpu = gpu.info.device_type == wgpu::DeviceType::Cpu;
    let steps = args.steps.map_or(
        if args.quick {
            3
        } else if cpu {
            10
        } else {
            20
        },
        |s| s.max(1),
    );
    let mut models = vec![("mnist-mlp", vec![64, 256]), ("celeba64", if cpu { vec![4] } else { vec![16, 64] })];
    if let Some(wanted) = &args.models {
        if let Some(bad) = wanted.iter().find(|w| !models.iter().any(|m| m.0 == w.as_str())) {
            anyhow::bail!("--models with --allreduce: unknown model {bad:?}; expected some of mnist-mlp, celeba64");
        }
        models.retain(|m| wanted.iter().any(|w| w == m.0));
    }
    let text = leader && !args.json;
    if text {
        println!("adapter (rank 0): {}; {ranks} rank(s)", gpu.describe());
        println!("data-parallel steps, mean of {steps}: wall ms per step, of which the host waited in the all-reduce (the other ranks included)");
        println!("{:<10} {:>11} {:>12} {:>9} {:>14} {:>12} {:>12}", "model", "batch/rank", "grad MB", "ms/step", "all-reduce ms", "compute ms", "samples/s");
    }
    let mut rows = vec![];
    for (name, batches) in models {
        let run_config = RunConfig::preset(name).map_err(anyhow::Error::msg)?;
        let config = &run_config.model;
        for batch in args.batches.clone().unwrap_or(batches) {
            let step = build_step(config, batch, 1)?;
            let names: Vec<String> = step.graph.groups.iter().map(|g| g.name.clone()).collect();
            let update = Some(names.iter().map(|n| run_config.optim.rule(n, 0)).collect());
            let grad_bytes: usize = step.graph.groups.iter().flat_map(|g| &g.params).map(|&p| step.graph.shape(p).len() * 4).sum();
            let mut exec = GpuExecutor::new(gpu, step.graph, ExecOptions { seed: 1, reuse: true, update, precision: run_config.optim.precision })?;
            exec.set_replica(collective.rank(), ranks)?;
            let data: Vec<f32> = (0..batch * config.input).map(|i| ((i * 37 + collective.rank()) % 256) as f32 / 255.0).collect();
            exec.set_input(step.x, &data)?;
            let mut reduce = |_: usize, g: &mut [f32]| -> crate::graph::Result<()> {
                collective.mean(g);
                Ok(())
            };
            exec.step_reduced(false, None, &mut reduce)?;
            gpu.wait()?;
            collective.barrier();
            let mut reducing = 0.0;
            let t0 = Instant::now();
            for _ in 0..steps {
                exec.step_reduced(false, None, &mut reduce)?;
                reducing += exec.last_reduce.as_secs_f64();
            }
            gpu.wait()?;
            let secs = t0.elapsed().as_secs_f64() / steps as f64;
            let reducing = reducing / steps as f64;
            let row = AllreduceRow {
                model: name.to_string(),
                batch_per_rank: batch,
                ranks,
                grad_mb: grad_bytes as f64 / 1e6,
                ms_per_step: secs * 1e3,
                allreduce_ms: reducing * 1e3,
                compute_ms: (secs - reducing) * 1e3,
                samples_per_s: (batch * ranks) as f64 / secs,
            };
            if text {
                println!(
                    "{name:<10} {batch:>11} {:>12.1} {:>9.1} {:>14.1} {:>12.1} {:>12}",
                    row.grad_mb,
                    row.ms_per_step,
                    row.allreduce_ms,
                    row.compute_ms,
                    super::common::rate(row.samples_per_s)
                );
            }
            rows.push(row);
        }
    }
    if leader && args.json {
        let report = serde_json::json!({ "adapter": gpu.describe(), "ranks": ranks, "steps": steps, "allreduce": rows });
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// One data-parallel configuration of `--allreduce`.
#[derive(Serialize)]
struct AllreduceRow {
    model: String,
    batch_per_rank: usize,
    ranks: usize,
    grad_mb: f64,
    ms_per_step: f64,
    /// The host's wait in the all-reduce, the other ranks included.
    allreduce_ms: f64,
    compute_ms: f64,
    samples_per_s: f64,
}

/// One of the three GEMMs of a convolution geometry (a transposed convolution runs its
/// adjoint's: its forward is the adjoint's input gradient and its input gradient the adjoint's
/// forward), with the layers of the step that run it.
struct StepConv {
    geom: ConvGeom,
    role: ConvRole,
    /// "decoder.deconv0 fwd", "encoder.conv1 dw", …
    layers: Vec<String>,
}

/// Every distinct convolution GEMM of `preset`'s training step at `batch`, in the order the
/// step first runs it: the forwards, then the backward's input and weight gradients. Layers
/// that share a geometry share its kernels (mnist-conv's encoder.conv1, discriminator.conv1
/// and the adjoint of decoder.deconv0), so each GEMM is timed once and names them all.
fn step_convs(preset: &str, batch: usize) -> anyhow::Result<Vec<StepConv>> {
    use crate::graph::Op;
    use crate::model::{build_step, RunConfig};
    let config = RunConfig::preset(preset).map_err(anyhow::Error::msg)?.model;
    let graph = build_step(&config, batch, 1)?.graph;
    let layer = |w: usize| graph.tensors[w].name.trim_end_matches(".weight").to_string();
    // (geometry, transposed, layer) of every convolution layer, from its forward.
    let mut forwards: Vec<(ConvGeom, bool, String)> = vec![];
    for node in &graph.nodes {
        if let Op::Conv2d { geom, .. } | Op::ConvTranspose2d { geom, .. } = node.op {
            let entry = (geom, matches!(node.op, Op::ConvTranspose2d { .. }), layer(node.inputs[1]));
            if !forwards.contains(&entry) {
                forwards.push(entry);
            }
        }
    }
    // What a role of the adjoint geometry is to a layer.
    let what = |transposed: bool, role: ConvRole| match (transposed, role) {
        (false, ConvRole::Forward) | (true, ConvRole::InputGrad) => "fwd",
        (false, ConvRole::InputGrad) | (true, ConvRole::Forward) => "dx",
        (_, ConvRole::WeightGrad) => "dw",
    };
    let mut convs: Vec<StepConv> = vec![];
    for node in &graph.nodes {
        // (geometry, GEMM role, the weight it reads where it reads one).
        let (geom, role, weight) = match node.op {
            Op::Conv2d { geom, .. } => (geom, ConvRole::Forward, Some(node.inputs[1])),
            Op::ConvTranspose2d { geom, .. } => (geom, ConvRole::InputGrad, Some(node.inputs[1])),
            Op::ConvGemm { geom, role: ConvRole::WeightGrad } => (geom, ConvRole::WeightGrad, None),
            Op::ConvGemm { geom, role } => (geom, role, Some(node.inputs[1])),
            _ => continue,
        };
        // A weight gradient reads no weight: every layer of its geometry computes one.
        let names: Vec<String> = forwards
            .iter()
            .filter(|(g, _, name)| *g == geom && weight.is_none_or(|w| layer(w) == *name))
            .map(|(_, t, name)| format!("{name} {}", what(*t, role)))
            .collect();
        let i = match convs.iter().position(|c| c.geom == geom && c.role == role) {
            Some(i) => i,
            None => {
                convs.push(StepConv { geom, role, layers: vec![] });
                convs.len() - 1
            }
        };
        for n in names {
            if !convs[i].layers.contains(&n) {
                convs[i].layers.push(n);
            }
        }
    }
    Ok(convs)
}

fn bench_convs(gpu: &Gpu, args: &BenchArgs, samples: usize) -> anyhow::Result<Vec<ConvRow>> {
    use crate::kernels::conv2d;
    let batch = args.conv_batch.unwrap_or(match (args.quick, gpu.class) {
        (true, _) => 2,
        (false, crate::gpu::AdapterClass::Cpu) => 16,
        (false, crate::gpu::AdapterClass::Gpu) => 64,
    });
    let preset = args.conv_preset();
    let mut convs = step_convs(preset, batch)?;
    if convs.is_empty() {
        anyhow::bail!("--conv: the {preset} step has no convolutions");
    }
    if args.quick {
        // The first GEMM of each role, and the first input gradient narrow enough for the
        // narrow kernel (timed beside the GEMM): seconds, and every kernel family.
        let narrow = |c: &StepConv| c.role == ConvRole::InputGrad && c.geom.in_c <= conv2d::NARROW_MAX_CHANNELS;
        let mut kept: Vec<(ConvRole, bool)> = vec![];
        convs.retain(|c| {
            let first_of_role = !kept.iter().any(|(r, _)| *r == c.role);
            let first_narrow = narrow(c) && !kept.iter().any(|(_, n)| *n);
            (first_of_role || first_narrow) && {
                kept.push((c.role, narrow(c)));
                true
            }
        });
    }
    let mut rows = vec![];
    for StepConv { geom: g, role, layers } in convs {
        let (x, w, y) =
            (gpu.upload_f32("x", &filler(g.input_len()))?, gpu.upload_f32("w", &filler(g.weight_len()))?, gpu.upload_f32("y", &filler(g.output_len()))?);
        let (m_in, m_out, k_in, k_out) = (g.batch * g.in_h * g.in_w, g.batch * g.out_h * g.out_w, g.k_h * g.k_w * g.in_c, g.k_h * g.k_w * g.out_c);
        // (kernel, launches, M, N, K). Stride-2 input gradients are one launch per stride phase.
        let kernels = match role {
            ConvRole::Forward => vec![("forward", vec![conv2d::conv2d_forward(gpu, &g, Act::None, &x, &w, None, &y)?], m_out, g.out_c, k_in)],
            ConvRole::InputGrad => {
                let auto = conv2d::conv2d_backward_input(gpu, &g, &y, &w, &x)?;
                let narrow = auto.iter().any(|l| l.name.contains("narrow"));
                let mut k = vec![("input grad", auto, m_in, g.in_c, k_out)];
                // Where the input gradient may take the narrow kernel, the path the automatic
                // choice did not take beside it.
                if g.in_c <= conv2d::NARROW_MAX_CHANNELS {
                    let (path, what) = if narrow { (conv2d::InputPath::Gemm, "input grad, GEMM") } else { (conv2d::InputPath::Narrow, "input grad, narrow") };
                    k.push((what, conv2d::conv2d_backward_input_via(gpu, &g, path, &y, &w, &x)?, m_in, g.in_c, k_out));
                }
                k
            }
            ConvRole::WeightGrad => vec![("weight grad", vec![conv2d::conv2d_backward_weight(gpu, &g, &x, &y, &w)?], k_in, g.out_c, m_out)],
        };
        for (kernel, launches, m, n, k) in kernels {
            let secs = gpu.median_time(&launches.iter().collect::<Vec<_>>(), samples)?;
            let spec = MatmulSpec::new(m, n, k, Trans::NN);
            let gflop_s = spec.flops() / secs / 1e9;
            // The dense comparison materialises A (M×K) and C (M×N), which the implicit GEMM
            // never does: where they would exceed a storage binding, time fewer rows (the
            // rate is per row: the same GFLOP/s).
            let limit = (gpu.limits.max_storage_buffer_binding_size / 4) as usize;
            let rows_fit = (limit / k.max(n)).min(m).max(1);
            let dense = MatmulSpec::new(rows_fit, n, k, Trans::NN);
            let matmul_gflop_s = dense.flops() / time_matmul(gpu, dense, DType::F32, samples)? / 1e9;
            rows.push(ConvRow {
                layer: layers.join(", "),
                kernel: kernel.to_string(),
                geometry: g.to_string(),
                gemm: format!("{m}x{n}x{k}"),
                microseconds: secs * 1e6,
                gflop_s,
                matmul_gflop_s,
                of_matmul: gflop_s / matmul_gflop_s,
            });
        }
    }
    Ok(rows)
}

fn measure_ceiling(gpu: &Gpu, quick: bool, samples: usize) -> anyhow::Result<Ceiling> {
    let n = if quick { 1 << 20 } else { 1 << 24 };
    let n = n.min((gpu.limits.max_storage_buffer_binding_size / 4) as usize);
    let src = gpu.upload_f32("copy source", &filler(n))?;
    let dst = gpu.zeros("copy destination", n, DType::F32)?;
    let copy = elementwise::copy(gpu, &src, 0, &dst, 0, n)?;
    let secs = gpu.median_time(&[&copy], samples)?;
    let bytes = 8 * n as u64;
    // Large enough to fill the adapter: 1024³ keeps a CPU adapter busy for ~30 ms, a GPU
    // needs 4096³ to reach its peak.
    let size = match (quick, gpu.class) {
        (true, _) => 256,
        (false, crate::gpu::AdapterClass::Cpu) => 1024,
        (false, crate::gpu::AdapterClass::Gpu) => 4096,
    };
    let candidates = crate::kernels::autotune::candidates_for(gpu, size);
    let mut best = (0.0, candidates[0]);
    for tile in candidates {
        let spec = MatmulSpec::new(size, size, size, Trans::NN).tile(tile);
        let g = spec.flops() / time_matmul(gpu, spec, DType::F32, samples)? / 1e9;
        if g > best.0 {
            best = (g, tile);
        }
    }
    Ok(Ceiling { copy_gb_s: bytes as f64 / secs / 1e9, copy_bytes: bytes, matmul_gflop_s: best.0, matmul_size: size, matmul_tile: best.1.to_string() })
}

fn bench_kernels(gpu: &Gpu, args: &BenchArgs, tiles: &[Tile], samples: usize, ceiling: Option<&Ceiling>) -> anyhow::Result<Vec<KernelRow>> {
    let mut rows = vec![];
    let sizes = args.sizes.clone().unwrap_or_else(|| if args.quick { vec![128] } else { vec![256, 512, 1024, 2048] });
    let batches = args.batches.clone().unwrap_or_else(|| if args.quick { vec![16] } else { vec![64, 256, 1024] });
    let mut shapes: Vec<(String, MatmulSpec)> = sizes.iter().map(|&s| ("matmul A·B".to_string(), MatmulSpec::new(s, s, s, Trans::NN))).collect();
    for &b in &batches {
        // mnist-mlp's first layer, 784→512: forward, dX, dW.
        shapes.push(("matmul fwd x·W".into(), MatmulSpec::new(b, 512, 784, Trans::NN)));
        shapes.push(("matmul dX = dY·Wᵀ".into(), MatmulSpec::new(b, 784, 512, Trans::NT)));
        shapes.push(("matmul dW = xᵀ·dY".into(), MatmulSpec::new(784, 512, b, Trans::TN)));
    }
    let mut dtypes = vec![DType::F32];
    if args.f16 && gpu.features.shader_f16 {
        dtypes.push(DType::F16);
    }
    for (label, spec) in &shapes {
        for tile in tiles {
            for &dtype in &dtypes {
                let secs = time_matmul(gpu, spec.tile(*tile), dtype, samples)?;
                let gflops = spec.flops() / secs / 1e9;
                rows.push(KernelRow {
                    kernel: label.clone(),
                    shape: format!("{}x{}x{}", spec.m, spec.n, spec.k),
                    dtype: format!("{dtype:?}").to_lowercase(),
                    tile: Some(tile.to_string()),
                    microseconds: secs * 1e6,
                    gflop_s: Some(gflops),
                    gb_s: None,
                    of_ceiling: ceiling.map(|c| gflops / c.matmul_gflop_s),
                });
            }
        }
    }
    // Memory-bound kernels: GB/s of bytes read + written, against the copy.
    let n = if args.quick { 1 << 18 } else { 1 << 22 };
    let x = gpu.upload_f32("x", &filler(n))?;
    let y = gpu.upload_f32("y", &filler(n))?;
    let out = gpu.zeros("out", n, DType::F32)?;
    let scalar = gpu.zeros("sum", 1, DType::F32)?;
    let partials = gpu.zeros("partial sums", reduce::scratch_len(n), DType::F32)?;
    let params = if args.quick { 100_000 } else { 1_625_425 }; // mnist-mlp's parameter count
    let p: Vec<GpuBuffer> = (0..4).map(|i| gpu.upload_f32(&format!("adam {i}"), &filler(params))).collect::<Result<_, _>>()?;
    let ch: Vec<GpuBuffer> = (0..8).map(|i| gpu.upload_f32(&format!("bn {i}"), &vec![1.0; 64])).collect::<Result<_, _>>()?;
    let bn_partials = gpu.zeros("batch_norm partials", batch_norm::scratch_len(n / 64, 64), DType::F32)?;
    let bn_fwd =
        batch_norm::batch_norm_forward(gpu, n / 64, 64, BatchNormSettings::default(), &x, &ch[0], &ch[1], &ch[2], &ch[3], &ch[4], &ch[5], &out, &bn_partials)?;
    let bn_bwd = batch_norm::batch_norm_backward(gpu, n / 64, 64, Act::None, &x, None, &y, &ch[0], &ch[4], &ch[5], &out, &ch[6], &ch[7], &bn_partials)?;
    let memory: Vec<(&str, String, Vec<Launch>, u64)> = vec![
        ("relu_forward", format!("{n}"), vec![elementwise::activation_forward(gpu, Act::Relu, &x, &out)?], 8 * n as u64),
        ("sigmoid_backward", format!("{n}"), vec![elementwise::activation_backward(gpu, Act::Sigmoid, &x, &y, &out)?], 12 * n as u64),
        ("add", format!("{n}"), vec![elementwise::add(gpu, &x, &y, &out)?], 12 * n as u64),
        ("reduce sum", format!("{n}"), reduce::sum(gpu, &x, &scalar, &partials)?, 4 * n as u64),
        ("column_sum", format!("{}x512", n / 512), vec![reduce::column_sum(gpu, &x, n / 512, 512, &GpuBuffer { len: 512, ..out.clone() })?], 4 * n as u64),
        ("adam", format!("{params}"), vec![adam::adam(gpu, AdamParams::new(1e-4), &p[0], &p[1], &p[2], &p[3])?], 28 * params as u64),
        // Batch norm over 64 channels (the 64×64 model's widths): the statistics read x
        // twice, the normalisation reads it once more and writes y; the backward reads x and
        // dy for the reduction and again with dx written.
        ("batch_norm fwd", format!("{}x64", n / 64), bn_fwd, 16 * n as u64),
        ("batch_norm bwd", format!("{}x64", n / 64), bn_bwd, 20 * n as u64),
    ];
    // And their passes alone: the statistics (partials and their combination), the
    // normalisation; the backward's (γ, β) sums, its dx.
    let bn_partials_2 = gpu.zeros("batch_norm partials", batch_norm::scratch_len(n / 64, 64), DType::F32)?;
    let mut fwd = batch_norm::batch_norm_forward(
        gpu,
        n / 64,
        64,
        BatchNormSettings::default(),
        &x,
        &ch[0],
        &ch[1],
        &ch[2],
        &ch[3],
        &ch[4],
        &ch[5],
        &out,
        &bn_partials_2,
    )?;
    let mut bwd = batch_norm::batch_norm_backward(gpu, n / 64, 64, Act::None, &x, None, &y, &ch[0], &ch[4], &ch[5], &out, &ch[6], &ch[7], &bn_partials_2)?;
    let (normalise, dx) = (fwd.split_off(2), bwd.split_off(2));
    let mut memory = memory;
    memory.push(("batch_norm fwd: statistics", format!("{}x64", n / 64), fwd, 8 * n as u64));
    memory.push(("batch_norm fwd: normalise", format!("{}x64", n / 64), normalise, 8 * n as u64));
    memory.push(("batch_norm bwd: γ, β", format!("{}x64", n / 64), bwd, 8 * n as u64));
    memory.push(("batch_norm bwd: dx", format!("{}x64", n / 64), dx, 12 * n as u64));
    for (kernel, shape, launches, bytes) in memory {
        let secs = time_one(gpu, &launches, samples)?;
        let gbs = bytes as f64 / secs / 1e9;
        rows.push(KernelRow {
            kernel: kernel.into(),
            shape,
            dtype: "f32".into(),
            tile: None,
            microseconds: secs * 1e6,
            gflop_s: None,
            gb_s: Some(gbs),
            of_ceiling: ceiling.map(|c| gbs / c.copy_gb_s),
        });
    }
    Ok(rows)
}

/// Training steps: samples/s, ms/step, dispatches/step and the host's share of a step.
fn bench_steps(gpu: &Gpu, args: &BenchArgs) -> anyhow::Result<Vec<StepRow>> {
    use crate::graph::{ExecOptions, GpuExecutor};
    use crate::model::{build_step, Mode, ModelConfig, RunConfig};
    let batches = args.batches.clone().unwrap_or_else(|| if args.quick { vec![16] } else { vec![64, 256, 1024] });
    let steps = args.steps.map_or(if args.quick { 3 } else { 20 }, |s| s.max(1));
    let mut precisions = vec![Precision::F32];
    if args.f16 && gpu.features.shader_f16 {
        precisions.push(Precision::F16);
    }
    let mut rows = vec![];
    // The conv models cost 10–100× the dense one per sample: on a CPU adapter they run at
    // batches 8 and 64 (8 alone with --quick, where celeba64 is left out).
    let cpu = gpu.info.device_type == wgpu::DeviceType::Cpu;
    let conv_batches = args.batches.clone().unwrap_or_else(|| {
        if args.quick {
            vec![8]
        } else if cpu {
            vec![8, 64]
        } else {
            vec![64]
        }
    });
    let mut models = vec![
        ("mnist-mlp vae-gan", RunConfig::preset("mnist-mlp").map_err(anyhow::Error::msg)?, batches.clone()),
        ("mnist-mlp vae", RunConfig::preset("pytorch-vae").map_err(anyhow::Error::msg)?, batches.clone()),
        ("mnist-conv", RunConfig::preset("mnist-conv").map_err(anyhow::Error::msg)?, conv_batches.clone()),
    ];
    models[1].1.model = ModelConfig { mode: Mode::Vae, ..ModelConfig::mnist_mlp() };
    if !args.quick || args.models.is_some() {
        models.push(("celeba64", RunConfig::preset("celeba64").map_err(anyhow::Error::msg)?, conv_batches));
    }
    if let Some(wanted) = &args.models {
        let known: Vec<&str> = models.iter().map(|m| m.0.split(' ').next().unwrap_or(m.0)).collect();
        if let Some(bad) = wanted.iter().find(|w| !known.contains(&w.as_str())) {
            anyhow::bail!("--models: unknown model {bad:?}; expected some of mnist-mlp, mnist-conv, celeba64");
        }
        models.retain(|m| wanted.iter().any(|w| m.0.split(' ').next() == Some(w.as_str())));
    }
    for ((label, run_config, model_batches), precision) in models.iter().flat_map(|m| precisions.iter().map(move |p| (m, *p))) {
        let config = &run_config.model;
        for &batch in model_batches {
            let step = build_step(config, batch, 1)?;
            let names: Vec<String> = step.graph.groups.iter().map(|g| g.name.clone()).collect();
            let update = Some(names.iter().map(|n| run_config.optim.rule(n, 0)).collect());
            let mut exec = GpuExecutor::new(gpu, step.graph, ExecOptions { seed: 1, reuse: true, update, precision })?;
            let data: Vec<f32> = (0..batch * config.input).map(|i| ((i * 37) % 256) as f32 / 255.0).collect();
            exec.set_input(step.x, &data)?;
            for _ in 0..3 {
                exec.step()?;
            }
            gpu.wait()?;
            let (mut host, mut record) = (0.0, 0.0);
            let t0 = Instant::now();
            for i in 0..steps {
                exec.step_with(i % 10 == 0, None)?;
                host += exec.last_timing.host.as_secs_f64();
                record += exec.last_timing.record.as_secs_f64();
                exec.poll_outputs()?;
            }
            gpu.wait()?;
            let secs = t0.elapsed().as_secs_f64() / steps as f64;
            let (host, record) = (host / steps as f64, record / steps as f64);
            rows.push(StepRow {
                model: label.to_string(),
                precision: precision.name().into(),
                batch,
                steps,
                samples_per_s: batch as f64 / secs,
                ms_per_step: secs * 1e3,
                dispatches: exec.dispatches_per_step(),
                record_ms: record * 1e3,
                record_share: record / secs,
                submit_share: (host - record).max(0.0) / secs,
                gflop_s: crate::model::step_flops_per_sample(config, batch)? * batch as f64 / secs / 1e9,
            });
        }
    }
    Ok(rows)
}

/// Each dispatch of a VAE-GAN step timed alone, summed by kernel (the launch name up to the
/// first space or digit), largest first.
/// Resident against streamed trainer steps on a synthetic set of 8 batches.
fn bench_feed(gpu: &Gpu, args: &BenchArgs) -> anyhow::Result<Vec<FeedRow>> {
    use crate::data::Dataset;
    use crate::model::RunConfig;
    use crate::train::Trainer;
    let cpu = gpu.info.device_type == wgpu::DeviceType::Cpu;
    let mut cases = vec![("mnist-conv", if args.quick { 8 } else { 64 })];
    if !args.quick {
        cases.push(("celeba64", if cpu { 8 } else { 64 }));
    }
    let mut rows = vec![];
    for (preset, batch) in cases {
        let batch = args.batches.as_ref().and_then(|b| b.first().copied()).unwrap_or(batch);
        let config = RunConfig::preset(preset).map_err(anyhow::Error::msg)?;
        let [h, w, c] = config.model.image;
        let count = 8 * batch;
        let images: Vec<u8> = (0..count * h * w * c).map(|i| ((i * 7919) % 251) as u8).collect();
        let set = Dataset { images: images.into(), labels: None, attributes: None, count, height: h, width: w, channels: c, source: "synthetic".into() };
        // A few steps of the 64×64 model take a minute on a CPU adapter.
        let steps = match args.steps {
            Some(s) => s.max(1),
            None if args.quick => 3,
            None if cpu && preset == "celeba64" => 6,
            None => 20,
        };
        let time = |budget: u64| -> anyhow::Result<f64> {
            let mut t = Trainer::with_budget(gpu, config.clone(), batch, 1, &set, None, budget)?;
            for _ in 0..2 {
                t.step()?;
            }
            gpu.wait()?;
            let t0 = Instant::now();
            for _ in 0..steps {
                t.step()?;
            }
            gpu.wait()?;
            Ok(t0.elapsed().as_secs_f64() / steps as f64)
        };
        let resident = time(u64::MAX)?;
        let streamed = time(1)?;
        rows.push(FeedRow {
            model: preset.into(),
            batch,
            steps,
            resident_ms: resident * 1e3,
            streamed_ms: streamed * 1e3,
            overhead: streamed / resident - 1.0,
        });
    }
    Ok(rows)
}

fn profile_step(gpu: &Gpu, args: &BenchArgs) -> anyhow::Result<()> {
    use crate::graph::{ExecOptions, GpuExecutor};
    use crate::model::{build_step, RunConfig};
    let batch = args.batches.as_ref().and_then(|b| b.first().copied()).unwrap_or(256);
    let preset = args.profile_preset();
    let run_config = RunConfig::preset(preset).map_err(anyhow::Error::msg)?;
    let config = &run_config.model;
    let step = build_step(config, batch, 1)?;
    let update = Some(step.graph.groups.iter().map(|g| run_config.optim.rule(&g.name, 0)).collect());
    let exec = GpuExecutor::new(gpu, step.graph, ExecOptions { seed: 1, reuse: true, update, ..Default::default() })?;
    let launches = exec.step_launches();
    let mut by_kernel: Vec<(String, f64, usize)> = vec![];
    let mut total = 0.0;
    for l in &launches {
        let t = gpu.median_time(&[l], if args.quick { 1 } else { 3 })?;
        total += t;
        // "matmul nt 256x784x512 …" → "matmul nt"; "relu_backward n=…" → "relu_backward".
        let mut kernel = l.name.split(' ').take_while(|t| !t.contains('=') && !t.contains(|c: char| c.is_ascii_digit())).collect::<Vec<_>>().join(" ");
        if kernel.is_empty() {
            // Convolutions are named by their geometry: keep the role and the shape.
            kernel = l.name.clone();
        }
        match by_kernel.iter_mut().find(|(k, _, _)| *k == kernel) {
            Some(e) => {
                e.1 += t;
                e.2 += 1;
            }
            None => by_kernel.push((kernel, t, 1)),
        }
    }
    by_kernel.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    println!("adapter: {}", gpu.describe());
    println!(
        "{} {:?} step at batch {batch}: {} dispatches, each timed alone ({}): {:.1} ms in all",
        preset,
        config.mode,
        launches.len(),
        gpu.clock().name(),
        total * 1e3
    );
    println!("{:<28} {:>10} {:>8} {:>7}", "kernel", "ms", "share", "count");
    for (k, t, n) in by_kernel {
        println!("{k:<28} {:>10.2} {:>7.1}% {n:>7}", t * 1e3, 100.0 * t / total);
    }
    Ok(())
}

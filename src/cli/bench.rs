//! `vaegan bench`: kernel throughput on the chosen adapter. Times are host-clock around
//! submit + wait of a pass holding many dispatches of one kernel, so that per-submit cost
//! is amortised; each figure is the median of several such samples after a warm-up.

use std::time::Instant;

use clap::Args;

use super::DeviceArgs;
use crate::gpu::{DType, Gpu, Launch};
use crate::kernels::matmul::{self, MatmulSpec, Tile, Trans};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Time the matmul kernels (with no section named, every section runs).
    #[arg(long)]
    kernels: bool,
    /// Time whole training steps of mnist-mlp (vae-gan and vae).
    #[arg(long)]
    step: bool,
    /// Batch sizes for --step.
    #[arg(long, value_delimiter = ',', default_values_t = vec![64, 256])]
    batches: Vec<usize>,
    /// Timed steps per configuration for --step.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Square matmul sizes to time (M = N = K).
    #[arg(long, value_delimiter = ',', default_values_t = vec![256, 512, 1024])]
    sizes: Vec<usize>,
    /// Also time the reference model's layer shapes (forward and both gradient products).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    model_shapes: bool,
    /// Register tiles to compare, as TMxTN or TMxTN@WXxWY with a workgroup shape
    /// (e.g. 8x8,16x16@4x16); default: the adapter's.
    #[arg(long, value_delimiter = ',')]
    tiles: Vec<String>,
    /// Timed samples per kernel (the median is reported).
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// Also time f16-storage matmul where the adapter has SHADER_F16.
    #[arg(long)]
    f16: bool,
}

fn parse_tile(text: &str, default: Tile) -> anyhow::Result<Tile> {
    let bad = || anyhow::anyhow!("--tiles: expected TMxTN or TMxTN@WXxWY such as 16x16@8x8, got {text:?}");
    let pair = |t: &str| -> anyhow::Result<(u32, u32)> {
        let (a, b) = t.split_once('x').ok_or_else(bad)?;
        Ok((a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?))
    };
    let (block, wg) = match text.split_once('@') {
        Some((b, w)) => (b, Some(w)),
        None => (text, None),
    };
    let (tm, tn) = pair(block)?;
    let (wg_x, wg_y) = match wg {
        Some(w) => pair(w)?,
        None => (default.wg_x, default.wg_y),
    };
    Ok(Tile { tm, tn, wg_x, wg_y })
}

/// Median seconds per dispatch of `launch`.
pub fn time_launch(gpu: &Gpu, launch: &Launch, samples: usize) -> anyhow::Result<f64> {
    gpu.run([launch])?; // warm-up (and compile)
    let t0 = Instant::now();
    gpu.run([launch])?;
    let once = t0.elapsed().as_secs_f64();
    // Enough dispatches per sample that a sample lasts ~0.2 s.
    let reps = ((0.2 / once.max(1e-6)) as usize).clamp(1, 200);
    let batch: Vec<&Launch> = std::iter::repeat_n(launch, reps).collect();
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples.max(1) {
        let t = Instant::now();
        gpu.submit(&batch);
        gpu.wait()?;
        times.push(t.elapsed().as_secs_f64() / reps as f64);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok(times[times.len() / 2])
}

fn bench_matmul(gpu: &Gpu, spec: MatmulSpec, dtype: DType, samples: usize) -> anyhow::Result<f64> {
    let (ar, br) = match spec.trans {
        Trans::NN => (spec.m * spec.k, spec.k * spec.n),
        Trans::NT => (spec.m * spec.k, spec.n * spec.k),
        Trans::TN => (spec.k * spec.m, spec.k * spec.n),
    };
    let fill = |n: usize| (0..n).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect::<Vec<f32>>();
    let (a, b) = match dtype {
        DType::F16 => (gpu.upload_f16("A", &fill(ar))?, gpu.upload_f16("B", &fill(br))?),
        _ => (gpu.upload_f32("A", &fill(ar))?, gpu.upload_f32("B", &fill(br))?),
    };
    let c = gpu.zeros("C", spec.m * spec.n, DType::F32)?;
    let launch = matmul::matmul(gpu, &spec, &a, &b, None, &c)?;
    let secs = time_launch(gpu, &launch, samples)?;
    Ok(spec.flops() / secs / 1e9)
}

pub fn run(device: &DeviceArgs, args: &BenchArgs) -> anyhow::Result<()> {
    let gpu = device.open()?;
    println!("adapter: {}", gpu.describe());
    let all = !args.kernels && !args.step;
    if all || args.kernels {
        bench_kernels(&gpu, args)?;
    }
    if all || args.step {
        bench_steps(&gpu, args)?;
    }
    Ok(())
}

/// Training steps: samples/s, ms/step, dispatches/step and the host's share of a step.
fn bench_steps(gpu: &Gpu, args: &BenchArgs) -> anyhow::Result<()> {
    use crate::graph::{ExecOptions, GpuExecutor};
    use crate::kernels::adam::AdamParams;
    use crate::model::{build_step, Mode, ModelConfig};
    println!();
    println!("training step: {} timed steps after 3 warm-up, Adam on every group, wall clock to the last step's completion", args.steps);
    println!(
        "{:<20} {:>6} {:>11} {:>9} {:>11} {:>15} {:>9} {:>9}",
        "model", "batch", "samples/s", "ms/step", "dispatches", "record ms (%)", "+submit %", "GFLOP/s"
    );
    for (label, config) in [("mnist-mlp vae-gan", ModelConfig::mnist_mlp()), ("mnist-mlp vae", ModelConfig { mode: Mode::Vae, ..ModelConfig::mnist_mlp() })] {
        for &batch in &args.batches {
            let step = build_step(&config, batch, 1)?;
            let groups = step.graph.groups.len();
            let mut exec = GpuExecutor::new(gpu, step.graph, ExecOptions { seed: 1, reuse: true, adam: Some(vec![AdamParams::new(1e-4); groups]) })?;
            let data: Vec<f32> = (0..batch * config.input).map(|i| ((i * 37) % 256) as f32 / 255.0).collect();
            exec.set_input(step.x, &data)?;
            for _ in 0..3 {
                exec.step()?;
            }
            gpu.wait()?;
            let mut host = std::time::Duration::ZERO;
            let mut record = std::time::Duration::ZERO;
            let t0 = Instant::now();
            for i in 0..args.steps {
                exec.step_with(i % 10 == 0, None)?;
                host += exec.last_timing.host;
                record += exec.last_timing.record;
                exec.poll_outputs()?;
            }
            gpu.wait()?;
            let secs = t0.elapsed().as_secs_f64() / args.steps as f64;
            let host_share = host.as_secs_f64() / args.steps as f64 / secs;
            let record_share = record.as_secs_f64() / args.steps as f64 / secs;
            let gflops = config.flops_per_sample() * batch as f64 / secs / 1e9;
            println!(
                "{label:<20} {batch:>6} {:>11.0} {:>9.2} {:>11} {:>7.2} ({:>4.1}%) {:>8.1}% {gflops:>9.1}",
                batch as f64 / secs,
                secs * 1e3,
                exec.dispatches_per_step(),
                record.as_secs_f64() * 1e3 / args.steps as f64,
                100.0 * record_share,
                100.0 * host_share
            );
        }
    }
    Ok(())
}

fn bench_kernels(gpu: &Gpu, args: &BenchArgs) -> anyhow::Result<()> {
    let gpu = gpu;
    println!("matmul timing: host clock around submit + wait, median of {} samples", args.samples);
    let default = Tile::default_for(gpu.class);
    let tiles: Vec<Tile> = if args.tiles.is_empty() {
        vec![default]
    } else {
        args.tiles.iter().map(|t| parse_tile(t, default)).collect::<anyhow::Result<_>>()?
    };
    let mut shapes: Vec<(String, MatmulSpec)> = args
        .sizes
        .iter()
        .map(|&s| (format!("{s}³ nn"), MatmulSpec::new(s, s, s, Trans::NN)))
        .collect();
    if args.model_shapes {
        // mnist-mlp's first layer, 784→512, at batch 64 and 256: forward, dX, dW.
        for batch in [64, 256] {
            shapes.push((format!("fwd {batch}x784·784x512"), MatmulSpec::new(batch, 512, 784, Trans::NN)));
            shapes.push((format!("dX {batch}x512·(784x512)ᵀ"), MatmulSpec::new(batch, 784, 512, Trans::NT)));
            shapes.push((format!("dW ({batch}x784)ᵀ·{batch}x512"), MatmulSpec::new(784, 512, batch, Trans::TN)));
        }
    }
    let mut dtypes = vec![DType::F32];
    if args.f16 && gpu.features.shader_f16 {
        dtypes.push(DType::F16);
    }
    println!("{:<28} {:>6} {:>12} {:>10}", "matmul", "dtype", "tile", "GFLOP/s");
    for (label, spec) in &shapes {
        for tile in &tiles {
            for &dtype in &dtypes {
                let gflops = bench_matmul(gpu, spec.tile(*tile), dtype, args.samples)?;
                let tile_name = format!("{}x{}@{}x{}", tile.tm, tile.tn, tile.wg_x, tile.wg_y);
                println!("{label:<28} {:>6} {tile_name:>12} {gflops:>10.1}", format!("{dtype:?}").to_lowercase());
            }
        }
    }
    Ok(())
}

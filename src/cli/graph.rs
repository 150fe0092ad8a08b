//! `vaegan graph`: build a model's step graph, plan it, and show it.

use clap::Args;

use crate::graph::{dump, plan::Plan};
use crate::model::{build_step, Mode, RunConfig};

#[derive(Args, Debug)]
pub struct GraphArgs {
    /// A preset: mnist-mlp, pytorch-vae, mnist-conv, celeba64, …
    #[arg(long, default_value = "mnist-mlp")]
    preset: String,
    /// Training mode, vae-gan or vae (default: the preset's).
    #[arg(long)]
    mode: Option<Mode>,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Print every node: op, tensors with shapes and buffers, forward or which backward.
    #[arg(long)]
    dump: bool,
    /// Write Graphviz to this file (render with `dot -Tsvg FILE -o step.svg`).
    #[arg(long)]
    dot: Option<std::path::PathBuf>,
    /// Write the model's config to this file as JSON, as `export --format torch` stores it,
    /// with the optimiser's settings under "optim" (docs/vaegan_torch.py builds its modules
    /// from it; kernels-tests/python/pytorch_step.py times the same step in PyTorch).
    #[arg(long)]
    config_json: Option<std::path::PathBuf>,
    /// f32, or f16: plan the f16 copies mixed precision adds.
    #[arg(long, default_value = "f32")]
    precision: crate::types::Precision,
}

pub fn run(args: &GraphArgs) -> anyhow::Result<()> {
    if args.batch == 0 {
        anyhow::bail!("--batch must be at least 1");
    }
    let mut run_config = RunConfig::preset(&args.preset).map_err(anyhow::Error::msg)?;
    if let Some(mode) = args.mode {
        run_config.set_mode(mode);
    }
    let config = run_config.model.clone();
    let step = build_step(&config, args.batch, 1)?;
    let g = &step.graph;
    // 256-byte binding alignment: the common value on GPUs (the executor asks the adapter).
    let plan = Plan::new(g, 64, true, args.precision);
    if args.dump {
        println!("{}", dump::text(g, Some(&plan)));
    }
    if let Some(path) = &args.config_json {
        // The model's config as the export stores it, with the optimiser's under "optim".
        let mut json = serde_json::to_value(&config)?;
        json["optim"] = serde_json::to_value(&run_config.optim)?;
        std::fs::write(path, serde_json::to_string_pretty(&json)?).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.dot {
        std::fs::write(path, dump::dot(g)).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    let forward = g.forward_nodes().count();
    let params: usize = g.params().map(|p| g.shape(p).len()).sum();
    println!("{} {:?} at batch {}: {} parameters in {} groups", args.preset, config.mode, args.batch, params, g.groups.len());
    println!("nodes: {} ({forward} forward, {} backward)", g.nodes.len(), g.nodes.len() - forward);
    println!("tensors: {}, buffer slots after reuse: {}", g.tensors.len(), plan.slots.len());
    let (memory, naive) = (plan.memory(g), plan.naive_bytes(g));
    let mib = |b: u64| b as f64 / 1048576.0;
    println!(
        "memory: planned {:.2} MiB vs {:.2} MiB with a buffer per tensor ({:.0}%)",
        mib(memory.total()),
        mib(naive),
        100.0 * memory.total() as f64 / naive as f64
    );
    println!(
        "  slots (tensors and kernel scratch) {:.2} | parameters, gradients, Adam {:.2} | f16 copies {:.2} | inputs, constants {:.2} | loss readback {:.4} MiB",
        mib(memory.slots),
        mib(memory.groups),
        mib(memory.half),
        mib(memory.inputs),
        mib(memory.readback)
    );
    println!("  plus one uniform block of 16 to 48 bytes per dispatch (per-launch parameters)");
    println!("work: {:.1} MFLOP per sample per step", crate::model::step_flops_per_sample(&config, args.batch)? / 1e6);
    Ok(())
}

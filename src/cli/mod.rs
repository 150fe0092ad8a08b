//! The `vaegan` command line.

/// `eprintln!`, but the line reaches stderr in one write. Stderr is unbuffered, so
/// `eprintln!` writes each formatted piece apart; under `mpirun`, which merges the ranks'
/// output, another rank's line then lands inside this one (CI saw rank 1's line inside
/// rank 0's "epoch 2/50: training from step …").
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::say_line(format_args!($($arg)*))
    };
}

/// One stderr line in one write (`say!`, and main's `error:` line).
pub fn say_line(args: std::fmt::Arguments) {
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), format!("{args}\n").as_bytes());
}

mod attributes;
mod bench;
mod classifier;
mod common;
mod devices;
mod eval;
mod export;
mod graph;
mod make_dataset;
mod prior;
mod reconstruct;
mod restat;
mod sample;
mod train;
pub mod web;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::gpu::{Gpu, GpuOptions};

#[derive(Parser)]
#[command(name = "vaegan", version, about = "Train VAE-GANs on hand-written WGSL kernels, on any GPU")]
struct Cli {
    #[command(flatten)]
    device: DeviceArgs,
    #[command(subcommand)]
    command: Command,
}

/// Which adapter to run on.
#[derive(Args, Clone, Debug)]
pub struct DeviceArgs {
    /// Backend(s): vulkan, metal, dx12, gl (comma-separated). Default: WGPU_BACKEND, else all.
    #[arg(long, global = true)]
    backend: Option<String>,
    /// Adapter index (as listed by `vaegan devices`) or a substring of its name.
    /// Default: WGPU_ADAPTER_NAME, else the first.
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// Use each adapter class's default matmul tile instead of tuning per shape on first
    /// use (tunings are cached in ~/.cache/vaegan/autotune.json, or VAEGAN_CACHE_DIR).
    #[arg(long, global = true)]
    no_autotune: bool,
}

impl DeviceArgs {
    /// The adapter of the `local_rank`-th process on this machine: `--adapter` when given
    /// (the same for all), else adapter `local_rank` modulo the adapters there are, so
    /// that processes spread over a machine's GPUs.
    pub fn open_for_rank(&self, local_rank: usize) -> anyhow::Result<Gpu> {
        if self.adapter.is_some() || std::env::var_os("WGPU_ADAPTER_NAME").is_some() {
            return self.open();
        }
        let backends = crate::gpu::select::backends_from(self.backend.as_deref())?;
        let count = crate::gpu::select::list_adapters(&crate::gpu::select::make_instance(backends), backends).len().max(1);
        DeviceArgs { adapter: Some((local_rank % count).to_string()), ..self.clone() }.open()
    }

    pub fn open(&self) -> anyhow::Result<Gpu> {
        let mut gpu = Gpu::new(&GpuOptions {
            backend: self.backend.clone(),
            adapter: self.adapter.clone(),
            disable_f16: false,
            autotune: !self.no_autotune && std::env::var("VAEGAN_AUTOTUNE").map_or(true, |v| v != "0"),
            autotune_cache: None,
            autotune_verbose: true,
            // What a browser or the smallest WebGPU device guarantees, to try a model there.
            default_limits: std::env::var("VAEGAN_DEFAULT_LIMITS").is_ok_and(|v| v == "1"),
        })?;
        // One tile for every GEMM, instead of the class default and autotuning: for timing a
        // tile, and for the tests (which run on the cheapest tile to compile).
        if let Ok(text) = std::env::var("VAEGAN_TILE") {
            let tile: crate::kernels::matmul::Tile = text.parse().map_err(|e| anyhow::anyhow!("VAEGAN_TILE: {e}"))?;
            tile.force_on(&mut gpu).map_err(|e| anyhow::anyhow!("VAEGAN_TILE={text}: {e}"))?;
        }
        Ok(gpu)
    }
}

#[derive(Subcommand)]
enum Command {
    /// List every adapter on every backend with its limits and optional features.
    Devices,
    /// Measure kernel and training-step throughput on the chosen adapter.
    Bench(bench::BenchArgs),
    /// Build a model's step graph and show its ops, buffers and memory plan.
    Graph(graph::GraphArgs),
    /// Train a VAE-GAN (or VAE) on MNIST, any IDX data set or a folder of PNG and JPEG images.
    Train(train::TrainArgs),
    /// Decode samples (or latent walks) from a checkpoint into a PNG grid.
    Sample(sample::SampleArgs),
    /// Fit a Gaussian-mixture prior to the codes a checkpoint's encoder gives the training
    /// images, to sample from instead of N(0, I) (`sample --prior`, `eval --quality --prior`).
    Prior(prior::PriorArgs),
    /// Visual attribute vectors: for each labelled attribute, the mean code of training
    /// images that have it minus the mean of those that do not (for `edit`).
    Attributes(attributes::AttributesArgs),
    /// Test images, their reconstructions, and the reconstructions with attribute vectors
    /// added or removed (`--add 7 --remove 3`, `--add red`), as a PNG grid.
    Edit(attributes::EditArgs),
    /// Re-estimate the decoder's batch-norm running statistics on prior samples z ~ N(0, I),
    /// into a new checkpoint beside the old one (for sampling).
    Restat(restat::RestatArgs),
    /// Test images beside their reconstructions, as a PNG grid.
    Reconstruct(reconstruct::ReconstructArgs),
    /// Test-set negative ELBO, reconstruction error and discriminator accuracy; with
    /// --quality, Fréchet distance and class coverage of generated samples.
    Eval(eval::EvalArgs),
    /// Train the MNIST classifier used by `eval --quality`.
    Classifier(classifier::ClassifierArgs),
    /// A checkpoint's encoder, decoder or discriminator as an ONNX model, or as a PyTorch
    /// state dict (`--format torch`) for docs/vaegan_torch.py.
    Export(export::ExportArgs),
    /// Write a data set vaegan makes itself: `make-dataset shapes --out DIR -n N`.
    MakeDataset(make_dataset::MakeDatasetArgs),
    /// Serve the browser page that trains in a tab on WebGPU (build it with
    /// `bash src/web/build.sh`).
    Web(web::WebArgs),
}

pub fn main() -> anyhow::Result<()> {
    // Negative numbers are values, not flags: `--lr -1` reaches the check that names the
    // flag instead of a bare usage line.
    let command = Cli::command().allow_negative_numbers(true).mut_subcommands(|c| c.allow_negative_numbers(true));
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Devices => devices::run(&cli.device),
        Command::Bench(args) => bench::run(&cli.device, &args),
        Command::Graph(args) => graph::run(&args),
        Command::Train(args) => train::run(&cli.device, &args),
        Command::Sample(args) => sample::run(&cli.device, &args),
        Command::Prior(args) => prior::run(&cli.device, &args),
        Command::Attributes(args) => attributes::run_attributes(&cli.device, &args),
        Command::Edit(args) => attributes::run_edit(&cli.device, &args),
        Command::Restat(args) => restat::run(&cli.device, &args),
        Command::Reconstruct(args) => reconstruct::run(&cli.device, &args),
        Command::Eval(args) => eval::run(&cli.device, &args),
        Command::Classifier(args) => classifier::run(&cli.device, &args),
        Command::Export(args) => export::run(&args),
        Command::MakeDataset(args) => make_dataset::run(&args),
        Command::Web(args) => web::run(&args),
    }
}

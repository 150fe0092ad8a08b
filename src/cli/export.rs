//! `vaegan export`: a checkpoint's network as an ONNX model or a PyTorch state dict.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};

use super::common::{load_checkpoint, CheckpointArgs};
use crate::export::{self, Part};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An ONNX model (opset 17, dynamic batch): inputs and outputs NCHW images, z, μ,
    /// logσ², features and logits (docs/export.md).
    Onnx,
    /// A safetensors state dict in PyTorch's conventions, for docs/vaegan_torch.py.
    Torch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PartArg {
    Encoder,
    Decoder,
    Discriminator,
    /// Every network the model has, each under its own prefix (torch format only).
    All,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    ck: CheckpointArgs,
    /// Which network.
    #[arg(long, value_enum, default_value = "decoder")]
    part: PartArg,
    #[arg(long, value_enum, default_value = "onnx")]
    format: Format,
    /// The file to write (written to a temporary file, then renamed).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let ck = load_checkpoint(&args.ck)?;
    let c = &ck.config.model;
    let parts: Vec<Part> = match args.part {
        PartArg::Encoder => vec![Part::Encoder],
        PartArg::Decoder => vec![Part::Decoder],
        PartArg::Discriminator => vec![Part::Discriminator],
        PartArg::All if args.format == Format::Onnx => {
            bail!("--part all: an ONNX file holds one network; export encoder, decoder and discriminator one by one")
        }
        PartArg::All => Part::ALL.into_iter().filter(|&p| p != Part::Discriminator || c.mode == crate::model::Mode::VaeGan).collect(),
    };
    let source = args.ck.checkpoint.display().to_string();
    let nets = parts
        .iter()
        .map(|&p| export::network(c, p, &|name| ck.tensor(name)).with_context(|| format!("{source}: cannot export the {p}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bytes = match args.format {
        Format::Onnx => {
            let metadata = [("vaegan.config", ck.config.to_toml()), ("vaegan.step", ck.step.to_string()), ("vaegan.part", parts[0].to_string())];
            export::onnx::to_onnx(&nets[0], c.output_act, &metadata)
        }
        Format::Torch => export::torch::to_safetensors(&nets, c, ck.step).map_err(|e| anyhow::anyhow!("cannot serialise: {e}"))?,
    };
    write_atomically(&args.out, &bytes)?;
    let what: Vec<String> = nets.iter().map(|n| format!("{} ({} tensors, {} layers)", n.part, n.tensors.len(), n.nodes.len())).collect();
    say!("wrote {} ({:?}): {}", args.out.display(), args.format, what.join(", "));
    Ok(())
}

/// An output file written atomically (an interrupted export never leaves half a file),
/// its error naming the file.
pub fn write_atomically(out: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::train::logs::write_atomically(out, bytes).map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", out.display()))
}

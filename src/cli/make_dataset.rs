//! `vaegan make-dataset`: writes a data set vaegan makes itself (today: `shapes`).

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use crate::data::shapes;

#[derive(Args, Debug)]
pub struct MakeDatasetArgs {
    /// Which set: shapes (coloured shapes on coloured backgrounds, factors in factors.csv).
    kind: String,
    /// A new or empty folder to write into.
    #[arg(long)]
    out: PathBuf,
    /// Number of images.
    #[arg(short, long, default_value_t = 10_000)]
    n: usize,
    /// Side of the square images.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// The set is the same for the same seed, on every machine.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn run(args: &MakeDatasetArgs) -> anyhow::Result<()> {
    if args.kind != "shapes" {
        bail!("unknown data set {:?}: expected shapes", args.kind);
    }
    let t0 = std::time::Instant::now();
    let n = shapes::write(&args.out, args.n, args.size, args.seed)?;
    say!("wrote {n} images of {}x{} and factors.csv to {} in {:.1}s", args.size, args.size, args.out.display(), t0.elapsed().as_secs_f64());
    Ok(())
}

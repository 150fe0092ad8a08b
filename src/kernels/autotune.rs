//! Autotuning the matmul's register tile (and, per convolution, whether its input gradient
//! runs as a GEMM or on the narrow kernel: `conv2d::InputPath`): on first use of a shape class (layout, operand
//! type, and M, N, K rounded up to powers of two) on an adapter, a few candidate tiles are
//! timed on the real shape and the fastest is kept — in memory, and in a JSON file keyed by
//! adapter, driver and shape class (the gpu layer's `TuningCache`), so the next process starts
//! tuned. Every tile computes
//! each output with the same chain of FMAs over k, so the choice changes speed, never bits.

use super::matmul::{Kind, Tile};
use crate::gpu::{AdapterClass, Gpu};
use crate::types::{DType, Trans};

/// The tiles tried on an adapter: those of its class that it can run.
pub fn candidates(gpu: &Gpu) -> Vec<Tile> {
    class_candidates(gpu.class).into_iter().filter(|t| t.check(gpu).is_ok()).collect()
}

/// The candidates worth timing on a product of `n` columns: a subgroup tile with row groups
/// only where its column span covers N (wider, it repeats the 8-across tile's work with a
/// select per broadcast), so that the extra candidates cost tuning time only where they
/// can win.
pub fn candidates_for(gpu: &Gpu, n: usize) -> Vec<Tile> {
    candidates(gpu).into_iter().filter(|t| t.wg_y == 1 || t.kind != Kind::Subgroup || n <= (t.tn * t.wg_x) as usize).collect()
}

/// The tiles worth trying on a class of adapter.
pub fn class_candidates(class: AdapterClass) -> Vec<Tile> {
    let r = Tile::register;
    let s = Tile::shared;
    match class {
        AdapterClass::Cpu => vec![
            Tile::subgroup(32, 8),
            Tile::subgroup(16, 8),
            Tile::subgroup(32, 4),
            Tile::subgroup(24, 8),
            Tile::subgroup_rows(32, 4, 4, 2),
            Tile::subgroup_rows(24, 4, 4, 2),
            r(16, 16, 8, 8),
            r(8, 16, 8, 8),
        ],
        AdapterClass::Gpu => vec![s(4, 4, 16, 16), s(8, 8, 16, 16), s(4, 8, 16, 16), s(8, 4, 16, 16), s(8, 8, 8, 8), r(4, 4, 16, 16), r(8, 8, 8, 8)],
    }
}

/// Bumped when the set of kernels changes, so that choices made among older candidates are
/// made again.
const VERSION: &str = "v3";

fn bucket(x: usize) -> usize {
    x.next_power_of_two()
}

/// The key of a convolution's choice between kernels (`what`, e.g. "conv input gradient"),
/// per exact geometry: a model has a handful, each chosen once per adapter and driver.
pub fn conv_key(gpu: &Gpu, what: &str, g: &crate::types::ConvGeom) -> String {
    format!("{VERSION}|{}|{} {}|{:?}|{what}|{g}", gpu.info.name, gpu.info.driver, gpu.info.driver_info, gpu.info.backend)
}

pub fn key(gpu: &Gpu, trans: Trans, dtype: DType, m: usize, n: usize, k: usize) -> String {
    format!(
        "{VERSION}|{}|{} {}|{:?}|{}|{:?}|m{}n{}k{}",
        gpu.info.name,
        gpu.info.driver,
        gpu.info.driver_info,
        gpu.info.backend,
        trans.name(),
        dtype,
        bucket(m),
        bucket(n),
        bucket(k)
    )
}

//! matmul: C[M,N] = act(op(A)·op(B) + bias) with op(A) ∈ {A, Aᵀ}, op(B) ∈ {B, Bᵀ}.
//!
//! A layer's forward is `Y = act(X·W + b)` (NN); its backward products are
//! `dX = dY·Wᵀ` (NT) and `dW = Xᵀ·dY` (TN). The WGSL is a template in four files —
//! `shaders/matmul_common.wgsl` (bindings, loaders, epilogue) and one entry point per kind,
//! `matmul_register.wgsl`, `matmul_subgroup.wgsl`, `matmul_shared.wgsl`; this module
//! unrolls the register block into it for the chosen tile and layout.

use std::fmt::Write;

use crate::gpu::template::{fill, has_marker};
use crate::gpu::{AdapterClass, Gpu, GpuBuffer, GpuError, Launch, Result};
use crate::types::{Act, DType, Trans};

use super::ACTIVATIONS_WGSL;

const COMMON: &str = include_str!("../../shaders/matmul_common.wgsl");
const REGISTER: &str = include_str!("../../shaders/matmul_register.wgsl");
const SUBGROUP: &str = include_str!("../../shaders/matmul_subgroup.wgsl");
const SHARED: &str = include_str!("../../shaders/matmul_shared.wgsl");

/// How a matmul variant shares operands between invocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Each invocation loads its own operands: no workgroup memory, no barriers.
    Register,
    /// A workgroup is one subgroup of 8 lanes: `wg_x` lanes across the columns times `wg_y`
    /// groups of `tm` rows; A values travel between lanes by subgroupBroadcast (CPU-like
    /// adapters with a fixed subgroup of 8).
    Subgroup,
    /// Operand slices staged in workgroup memory, then register blocks (GPUs).
    Shared,
}

/// A matmul variant's blocking: the register block each invocation computes (`tm` × `tn`,
/// both multiples of 4), the workgroup shape and the kind. Written `16x16@8x8` (register),
/// `32x8@8/subgroup` (tm × tn per lane, 8 lanes across the columns), `32x4@4x2/subgroup`
/// (4 lanes across the columns, 2 groups of 32 rows) or `4x4@16x16/shared`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tile {
    pub tm: u32,
    pub tn: u32,
    pub wg_x: u32,
    pub wg_y: u32,
    pub kind: Kind,
}

/// The K slice a shared-memory workgroup stages per barrier.
const SHARED_BK: u32 = 16;
/// The subgroup size the broadcast kernel is written for (lavapipe's on AVX2).
pub const SUBGROUP_LANES: u32 = 8;

impl Tile {
    pub const fn register(tm: u32, tn: u32, wg_x: u32, wg_y: u32) -> Tile {
        Tile { tm, tn, wg_x, wg_y, kind: Kind::Register }
    }
    pub const fn subgroup(tm: u32, tn: u32) -> Tile {
        Tile { tm, tn, wg_x: SUBGROUP_LANES, wg_y: 1, kind: Kind::Subgroup }
    }
    /// A subgroup tile whose 8 lanes are `wg_x` across the columns by `wg_y` groups of `tm`
    /// rows: for products narrower than 8 lanes' columns (N ≤ 16 at tn = 4), where lanes
    /// laid across N alone would compute clamped columns that the store masks.
    pub const fn subgroup_rows(tm: u32, tn: u32, wg_x: u32, wg_y: u32) -> Tile {
        Tile { tm, tn, wg_x, wg_y, kind: Kind::Subgroup }
    }
    pub const fn shared(tm: u32, tn: u32, wg_x: u32, wg_y: u32) -> Tile {
        Tile { tm, tn, wg_x, wg_y, kind: Kind::Shared }
    }

    /// The tile of every GEMM that names none: the device's forced tile (`VAEGAN_TILE`, see
    /// `force_on`) where one is set, else the adapter class's default.
    pub fn default_for(gpu: &Gpu) -> Tile {
        Tile::forced(gpu).unwrap_or_else(|| Tile::class_default(gpu))
    }

    /// The device's forced tile (`VAEGAN_TILE`, `force_on`), if one is set.
    fn forced(gpu: &Gpu) -> Option<Tile> {
        gpu.forced_tile.as_deref().and_then(|t| t.parse().ok())
    }

    /// The tile of a product with `n` columns that no tuning chose (tuning off, its budget
    /// spent, a product under a MFLOP, the browser): the forced tile where one is set, else
    /// the class default as it applies to `n` columns (`for_columns`).
    pub fn untuned(gpu: &Gpu, n: usize) -> Tile {
        Tile::forced(gpu).unwrap_or_else(|| Tile::class_default(gpu).for_columns(n))
    }

    /// A class default as it applies to a product of `n` columns: the 8-lane subgroup
    /// default, 32x8, computes 64 columns a workgroup, so at N ≤ 32 half its lanes or more
    /// (three quarters at N = 16, the width of most of mnist-conv's convolutions) compute
    /// clamped copies that the store masks; there 32x4 (32 columns) ran 1.3–3× faster
    /// (BENCHMARKS.md, "The untuned tile of a narrow product"), and at N ≤ 16 its lanes in
    /// two row groups of 24 rows (16 columns) 1.0–1.4× faster again ("Subgroup lanes in row
    /// groups"). Other tiles are kept.
    pub fn for_columns(self, n: usize) -> Tile {
        match n {
            _ if self != Tile::subgroup(32, 8) => self,
            0..=16 => Tile::subgroup_rows(24, 4, 4, 2),
            17..=32 => Tile::subgroup(32, 4),
            _ => self,
        }
    }

    /// Defaults measured on lavapipe (BENCHMARKS.md) and the textbook choice for GPUs.
    pub fn class_default(gpu: &Gpu) -> Tile {
        match gpu.class {
            AdapterClass::Cpu if gpu.features.subgroup_size == SUBGROUP_LANES => Tile::subgroup(32, 8),
            AdapterClass::Cpu => Tile::register(16, 16, 8, 8),
            AdapterClass::Gpu => Tile::shared(4, 4, 16, 16),
        }
    }

    /// Makes this tile the device's default for every GEMM that names none, dense or
    /// gathered, with no autotuning: for measuring one tile, and for the tests, which run on
    /// a tile that compiles in a tenth of the time (tiles change speed, never bits:
    /// `matmul::all_tiles_give_the_same_bits`). Refused, with the reason, where the adapter
    /// cannot run it.
    pub fn force_on(self, gpu: &mut Gpu) -> Result<()> {
        self.check(gpu)?;
        gpu.forced_tile = Some(self.to_string());
        Ok(())
    }

    /// Rows and columns of C one workgroup computes.
    fn span(&self) -> (u32, u32) {
        (self.tm * self.wg_y, self.tn * self.wg_x)
    }

    /// Whether this adapter can run the tile, and why not.
    pub fn check(&self, gpu: &Gpu) -> Result<()> {
        let bad = |why: String| Err(GpuError::shape("matmul", format!("tile {self}: {why}")));
        if self.tm < 4 || !self.tm.is_multiple_of(4) || self.tn < 4 || !self.tn.is_multiple_of(4) || self.wg_x == 0 || self.wg_y == 0 {
            return bad("tm and tn must be multiples of 4, the workgroup at least 1×1".into());
        }
        let invocations = self.wg_x * self.wg_y;
        if invocations > gpu.limits.max_compute_invocations_per_workgroup
            || self.wg_x > gpu.limits.max_compute_workgroup_size_x
            || self.wg_y > gpu.limits.max_compute_workgroup_size_y
        {
            return bad(format!("workgroup exceeds the adapter's {} invocations", gpu.limits.max_compute_invocations_per_workgroup));
        }
        match self.kind {
            Kind::Register => Ok(()),
            Kind::Subgroup => {
                if gpu.features.subgroup_size != SUBGROUP_LANES {
                    return bad(format!(
                        "needs subgroups of exactly {SUBGROUP_LANES} lanes; this adapter's are {}",
                        if gpu.features.subgroup_size == 0 { "unavailable or of varying size".to_string() } else { gpu.features.subgroup_size.to_string() }
                    ));
                }
                // tm a multiple of 8: row r of every row group is then loaded by the same lane
                // (r mod 8), so one broadcast index serves all groups (`subgroup_body`).
                if invocations != SUBGROUP_LANES || !self.tm.is_multiple_of(SUBGROUP_LANES) {
                    return bad(format!("a subgroup tile has {SUBGROUP_LANES} lanes (columns × row groups) and tm a multiple of {SUBGROUP_LANES}"));
                }
                Ok(())
            }
            Kind::Shared => {
                let (bm, bn) = self.span();
                let bytes = (bm + bn) * SHARED_BK * 4;
                if bytes > gpu.limits.max_compute_workgroup_storage_size {
                    return bad(format!("needs {bytes} bytes of workgroup memory, the adapter has {}", gpu.limits.max_compute_workgroup_storage_size));
                }
                // Each invocation copies a whole number of quads of each slice.
                if !(bm * SHARED_BK / 4).is_multiple_of(invocations) || !(bn * SHARED_BK / 4).is_multiple_of(invocations) {
                    return bad(format!("the {bm}×{SHARED_BK} and {SHARED_BK}×{bn} slices do not split evenly over {invocations} invocations"));
                }
                Ok(())
            }
        }
    }
}

impl std::fmt::Display for Tile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Kind::Register => write!(f, "{}x{}@{}x{}", self.tm, self.tn, self.wg_x, self.wg_y),
            Kind::Subgroup if self.wg_y == 1 => write!(f, "{}x{}@{}/subgroup", self.tm, self.tn, self.wg_x),
            Kind::Subgroup => write!(f, "{}x{}@{}x{}/subgroup", self.tm, self.tn, self.wg_x, self.wg_y),
            Kind::Shared => write!(f, "{}x{}@{}x{}/shared", self.tm, self.tn, self.wg_x, self.wg_y),
        }
    }
}

impl std::str::FromStr for Tile {
    type Err = String;
    /// Parses what `Display` writes; a register tile may leave out its workgroup (8x8).
    fn from_str(text: &str) -> std::result::Result<Tile, String> {
        let bad = || {
            format!("expected TMxTN[@WXxWY], TMxTN@8[xWY]/subgroup or TMxTN@WXxWY/shared (e.g. 16x16@8x8, 32x8@8/subgroup, 32x4@4x2/subgroup, 4x4@16x16/shared), got {text:?}")
        };
        let (body, kind) = match text.trim().split_once('/') {
            None => (text.trim(), Kind::Register),
            Some((b, "subgroup")) => (b, Kind::Subgroup),
            Some((b, "shared")) => (b, Kind::Shared),
            Some(_) => return Err(bad()),
        };
        let num = |t: &str| t.trim().parse::<u32>().map_err(|_| bad());
        let pair = |t: &str| -> std::result::Result<(u32, u32), String> {
            let (a, b) = t.split_once('x').ok_or_else(bad)?;
            Ok((num(a)?, num(b)?))
        };
        let (block, wg) = match body.split_once('@') {
            Some((b, w)) => (b, Some(w)),
            None => (body, None),
        };
        let (tm, tn) = pair(block)?;
        Ok(match (kind, wg) {
            (Kind::Subgroup, Some(w)) if !w.contains('x') => Tile { tm, tn, wg_x: num(w)?, wg_y: 1, kind },
            (Kind::Subgroup, None) => Tile::subgroup(tm, tn),
            (_, Some(w)) => {
                let (wg_x, wg_y) = pair(w)?;
                Tile { tm, tn, wg_x, wg_y, kind }
            }
            (Kind::Register, None) => Tile::register(tm, tn, 8, 8),
            (Kind::Shared, None) => Tile::shared(tm, tn, 16, 16),
        })
    }
}

/// One matmul: shapes, layout and epilogue.
#[derive(Clone, Copy, Debug)]
pub struct MatmulSpec {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans: Trans,
    pub act: Act,
    /// `None`: the adapter's default tile.
    pub tile: Option<Tile>,
}

impl MatmulSpec {
    pub fn new(m: usize, n: usize, k: usize, trans: Trans) -> Self {
        MatmulSpec { m, n, k, trans, act: Act::None, tile: None }
    }
    pub fn act(mut self, act: Act) -> Self {
        self.act = act;
        self
    }
    pub fn tile(mut self, tile: Tile) -> Self {
        self.tile = Some(tile);
        self
    }
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }
    /// Stored (rows, cols) of A and B.
    fn stored_a(&self) -> (usize, usize) {
        if self.trans.flags().0 {
            (self.k, self.m)
        } else {
            (self.m, self.k)
        }
    }
    fn stored_b(&self) -> (usize, usize) {
        if self.trans.flags().1 {
            (self.n, self.k)
        } else {
            (self.k, self.n)
        }
    }
}

/// How an operand is read: a dense row-major matrix, or gathered from a convolution's
/// tensors by the loaders in `shaders/conv2d.wgsl` (the implicit GEMM; see `conv2d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Operand {
    Dense,
    /// A = im2col(x): the forward's input patches.
    ConvInput,
    /// A = dy gathered for the input gradient (a transposed convolution's forward).
    ConvOutputGrad,
    /// B = the weights re-indexed for the input gradient.
    ConvWeightT,
    /// Aᵀ with A = im2col(x) stored K×M: the weight gradient's input patches (read as TN,
    /// so that quads run along the contiguous channels).
    ConvInputK,
    /// A = dy gathered for one stride phase of the input gradient (its rows stored to every
    /// stride-th row of dx).
    ConvOutputGradPhase,
    /// B = that phase's taps of the weights.
    ConvWeightTPhase,
    /// B = the weights for the input gradient stored N×K (read NT): row ci, k = (kh, kw,
    /// c_out), so that a quad along k is four contiguous c_out of one tap. Taken where
    /// c_out is a multiple of 4 (one vec4 load a quad, where `ConvWeightT`'s quads along
    /// c_in are four loads c_out apart).
    ConvWeightNK,
    /// B = that, over one stride phase's taps.
    ConvWeightNKPhase,
}

impl Operand {
    fn loader(self) -> &'static str {
        match self {
            Operand::Dense => "",
            Operand::ConvInput => "conv_input",
            Operand::ConvOutputGrad => "conv_output_grad",
            Operand::ConvWeightT => "conv_weight_t",
            Operand::ConvInputK => "conv_input_k",
            Operand::ConvOutputGradPhase => "conv_output_grad_phase",
            Operand::ConvWeightTPhase => "conv_weight_t_phase",
            Operand::ConvWeightNK => "conv_weight_nk",
            Operand::ConvWeightNKPhase => "conv_weight_nk_phase",
        }
    }
}

/// A GEMM whose operands are gathered from a convolution's tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gathered {
    pub a: Operand,
    pub b: Operand,
    pub geom: crate::types::ConvGeom,
    /// The stride phase of an input gradient split by phases.
    pub phase: Option<super::conv2d::Phase>,
}

impl Gathered {
    /// The four-at-a-time loader of A, where every quad lies inside one tap's channels.
    fn a_quad_loader(&self) -> Option<&'static str> {
        match self.a {
            Operand::ConvInput if self.geom.in_c.is_multiple_of(4) => Some("conv_input_quad"),
            Operand::ConvOutputGrad if self.geom.out_c.is_multiple_of(4) => Some("conv_output_grad_quad"),
            Operand::ConvInputK if self.geom.in_c.is_multiple_of(4) => Some("conv_input_k_quad"),
            Operand::ConvOutputGradPhase if self.geom.out_c.is_multiple_of(4) => Some("conv_output_grad_phase_quad"),
            _ => None,
        }
    }

    /// The four-at-a-time loader of B (stored N×K), where every quad lies inside one tap's
    /// output channels.
    fn b_quad_loader(&self) -> Option<&'static str> {
        match self.b {
            Operand::ConvWeightNK if self.geom.out_c.is_multiple_of(4) => Some("conv_weight_nk_quad"),
            Operand::ConvWeightNKPhase if self.geom.out_c.is_multiple_of(4) => Some("conv_weight_nk_phase_quad"),
            _ => None,
        }
    }
}

/// Everything that selects a compiled variant.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Variant {
    /// Convolution loaders instead of dense ones (NN, TN for the weight gradient, NT for
    /// the input gradient's B stored N×K).
    gathered: Option<Gathered>,
    trans: Trans,
    tile: Tile,
    dtype: DType,
    vec_a: bool,
    vec_b: bool,
    bias: bool,
    /// The activation of the epilogue (a LeakyReLU's slope is a uniform, not part of it).
    act: Act,
}

impl Variant {
    fn key(&self) -> String {
        let conv = match self.gathered {
            None => String::new(),
            Some(g) => format!("conv/{}/{}/{}/{:?}/", g.a.loader(), g.b.loader(), g.geom, g.phase),
        };
        format!(
            "matmul/{conv}{}/{}/{:?}/va{}/vb{}/bias{}/{}",
            self.trans.name(),
            self.tile,
            self.dtype,
            self.vec_a as u8,
            self.vec_b as u8,
            self.bias as u8,
            self.act.name()
        )
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    alpha: f32,
}

/// WGSL for loading a vec4 of four consecutive elements, and one element, from `buf`.
fn loaders(buf: &str, vec: bool) -> (String, String) {
    if vec {
        (
            format!("let r = min(row, rows - 1u); let c = min(col, cols - 4u); return vec4<f32>({buf}[(r * cols + c) / 4u]);"),
            format!("let i = min(row, rows - 1u) * cols + min(col, cols - 1u); return f32({buf}[i / 4u][i % 4u]);"),
        )
    } else {
        (
            format!(
                "let base = min(row, rows - 1u) * cols; let last = cols - 1u;
    return vec4<f32>(f32({buf}[base + min(col, last)]), f32({buf}[base + min(col + 1u, last)]),
                     f32({buf}[base + min(col + 2u, last)]), f32({buf}[base + min(col + 3u, last)]));"
            ),
            format!("return f32({buf}[min(row, rows - 1u) * cols + min(col, cols - 1u)]);"),
        )
    }
}

const LANES: [&str; 4] = ["x", "y", "z", "w"];

/// The WGSL lines of one variant's entry point, filled into its template's $-markers.
#[derive(Default)]
struct Body {
    declare: String,
    step4: String,
    step1: String,
    load: String,
    inner: String,
    store: String,
}

/// Accumulators `acc{r}_{q}` (row r, column quad q) and their masked stores; `col(q)` is
/// the WGSL column of quad q, `row(r)` the row of r.
fn accumulators(b: &mut Body, tm: usize, tn4: usize, row: impl Fn(usize) -> String, col: impl Fn(usize) -> String) {
    for r in 0..tm {
        for q in 0..tn4 {
            writeln!(b.declare, "    var acc{r}_{q} = vec4<f32>(0.0);").unwrap();
            writeln!(b.store, "    store({}, {}, acc{r}_{q});", row(r), col(q)).unwrap();
        }
    }
}

/// Loads of op(B) for four steps of k into `b{i}_{q}` (k + i, quad q) and for one step into
/// `t{q}`, as vec4s along whichever dimension is contiguous, transposed in registers for NT.
fn load_b(b: &mut Body, tb: bool, tn4: usize, col: impl Fn(usize) -> String) {
    if tb {
        for q in 0..tn4 {
            for j in 0..4 {
                writeln!(b.step4, "        let bt{q}_{j} = b_quad({} + {j}u, k, p.n, p.k);", col(q)).unwrap();
            }
            for (i, l) in LANES.iter().enumerate() {
                writeln!(b.step4, "        let b{i}_{q} = vec4<f32>(bt{q}_0.{l}, bt{q}_1.{l}, bt{q}_2.{l}, bt{q}_3.{l});").unwrap();
            }
        }
    } else {
        for i in 0..4 {
            for q in 0..tn4 {
                writeln!(b.step4, "        let b{i}_{q} = b_quad(k + {i}u, {}, p.k, p.n);", col(q)).unwrap();
            }
        }
    }
    for q in 0..tn4 {
        let one = |j: usize| {
            if tb {
                format!("b_one({} + {j}u, k, p.n, p.k)", col(q))
            } else {
                format!("b_one(k, {} + {j}u, p.k, p.n)", col(q))
            }
        };
        writeln!(b.step1, "        let t{q} = vec4<f32>({}, {}, {}, {});", one(0), one(1), one(2), one(3)).unwrap();
    }
}

/// FMAs of one row's A value `a` at step i (or the tail, i = None) into its accumulators.
fn fmas(out: &mut String, r: usize, tn4: usize, a: &str, i: Option<usize>) {
    for q in 0..tn4 {
        let bv = match i {
            Some(i) => format!("b{i}_{q}"),
            None => format!("t{q}"),
        };
        writeln!(out, "        acc{r}_{q} = fma(vec4<f32>({a}), {bv}, acc{r}_{q});").unwrap();
    }
}

/// Register kernel: each invocation loads its own TM rows of op(A).
fn register_body(v: &Variant, b: &mut Body) {
    let (ta, tb) = v.trans.flags();
    let (tm, tn4) = (v.tile.tm as usize, v.tile.tn as usize / 4);
    accumulators(b, tm, tn4, |r| format!("row0 + {r}u"), |q| format!("col0 + {}u", 4 * q));
    if ta {
        for q in 0..tm / 4 {
            for i in 0..4 {
                writeln!(b.step4, "        let at{q}_{i} = a_quad(k + {i}u, row0 + {}u, p.k, p.m);", 4 * q).unwrap();
            }
            for (j, l) in LANES.iter().enumerate() {
                writeln!(b.step4, "        let a{} = vec4<f32>(at{q}_0.{l}, at{q}_1.{l}, at{q}_2.{l}, at{q}_3.{l});", 4 * q + j).unwrap();
            }
        }
    } else {
        for r in 0..tm {
            writeln!(b.step4, "        let a{r} = a_quad(row0 + {r}u, k, p.m, p.k);").unwrap();
        }
    }
    load_b(b, tb, tn4, |q| format!("col0 + {}u", 4 * q));
    for r in 0..tm {
        for (i, l) in LANES.iter().enumerate() {
            fmas(&mut b.step4, r, tn4, &format!("a{r}.{l}"), Some(i));
        }
        let load = if ta { format!("a_one(k, row0 + {r}u, p.k, p.m)") } else { format!("a_one(row0 + {r}u, k, p.m, p.k)") };
        writeln!(b.step1, "        let s{r} = {load};").unwrap();
    }
    for r in 0..tm {
        fmas(&mut b.step1, r, tn4, &format!("s{r}"), None);
    }
}

/// Subgroup kernel: lane l loads rows l, l + 8, … of the workgroup's tm·wg_y rows (for Aᵀ:
/// k + l/2 and rows 4·(l % 2)…+3 of each group of 8), and every lane takes each of its row
/// group's rows from the lane that loaded it. With row groups (wg_y > 1) a lane's row r is
/// row y·tm + r of the workgroup (y = its group): loaded by the same lane for every y (tm is
/// a multiple of 8) into a different register, so each group's value is one broadcast and
/// the lane selects its own.
fn subgroup_body(v: &Variant, b: &mut Body) {
    let (ta, tb) = v.trans.flags();
    let (tm, tn4) = (v.tile.tm as usize, v.tile.tn as usize / 4);
    let (wg_x, wg_y) = (v.tile.wg_x as usize, v.tile.wg_y as usize);
    let lanes = SUBGROUP_LANES as usize;
    let col = |q: usize| format!("col0 + {}u", 4 * wg_x * q);
    accumulators(b, tm, tn4, |r| format!("row0 + {r}u"), col);
    for g in 0..tm * wg_y / lanes {
        let (quad, one) = if ta {
            (
                format!("a_quad(k + lane / 2u, rows0 + {}u + 4u * (lane % 2u), p.k, p.m)", lanes * g),
                format!("a_one(k, rows0 + {}u + lane, p.k, p.m)", lanes * g),
            )
        } else {
            (format!("a_quad(rows0 + {}u + lane, k, p.m, p.k)", lanes * g), format!("a_one(rows0 + {}u + lane, k, p.m, p.k)", lanes * g))
        };
        writeln!(b.step4, "        let ag{g} = {quad};").unwrap();
        writeln!(b.step1, "        let ag{g} = {one};").unwrap();
    }
    load_b(b, tb, tn4, col);
    // The value of row r (of the lane's group) from register `part` of lane `from`.
    let take = |r: usize, part: &str, from: usize| {
        let mut v = format!("subgroupBroadcast(ag{}{part}, {from}u)", r / lanes);
        for y in 1..wg_y {
            v = format!("select({v}, subgroupBroadcast(ag{}{part}, {from}u), ly == {y}u)", (y * tm + r) / lanes);
        }
        v
    };
    for r in 0..tm {
        let rr = r % lanes;
        for i in 0..4 {
            // Which lane holds (row r, k + i), and in which component.
            let (lane, comp) = if ta { (2 * i + rr / 4, rr % 4) } else { (rr, i) };
            writeln!(b.step4, "        let s{r}_{i} = {};", take(r, &format!(".{}", LANES[comp]), lane)).unwrap();
            fmas(&mut b.step4, r, tn4, &format!("s{r}_{i}"), Some(i));
        }
        writeln!(b.step1, "        let s{r} = {};", take(r, "", rr)).unwrap();
        fmas(&mut b.step1, r, tn4, &format!("s{r}"), None);
    }
}

/// Shared kernel: the copy of op(A)'s BM×BK and op(B)'s BK×BN slices into workgroup
/// memory (k-major, zero past K), and the inner step over one kk.
fn shared_body(v: &Variant, b: &mut Body) {
    let (ta, tb) = v.trans.flags();
    let (tm, tn4) = (v.tile.tm as usize, v.tile.tn as usize / 4);
    let (bm, bn) = v.tile.span();
    let (bm4, bn4, bk4) = (bm / 4, bn / 4, SHARED_BK / 4);
    let threads = v.tile.wg_x * v.tile.wg_y;
    accumulators(b, tm, tn4, |r| format!("row0 + lid.y * {}u + {r}u", tm), |q| format!("col0 + lid.x * {}u + {}u", v.tile.tn, 4 * q));
    for j in 0..bm * SHARED_BK / 4 / threads {
        let i = format!("tid + {}u", j * threads);
        if ta {
            // Stored K×M: a quad along m at one k goes straight into row kk of the slice.
            writeln!(
                b.load,
                "        {{ let i = {i}; let kk = i / {bm4}u; let v = a_quad(k0 + kk, row0 + 4u * (i % {bm4}u), p.k, p.m);
            tile_a[i] = select(v, vec4<f32>(0.0), k0 + kk >= p.k); }}"
            )
            .unwrap();
        } else {
            // Stored M×K: a quad along k at one m is scattered over four rows of the slice.
            writeln!(
                b.load,
                "        {{ let i = {i}; let m = i / {bk4}u; let kq = 4u * (i % {bk4}u); let v = zero_past_k(a_quad(row0 + m, k0 + kq, p.m, p.k), k0 + kq);
            for (var j = 0u; j < 4u; j++) {{ tile_a[(kq + j) * {bm4}u + m / 4u][m % 4u] = v[j]; }} }}"
            )
            .unwrap();
        }
    }
    for j in 0..bn * SHARED_BK / 4 / threads {
        let i = format!("tid + {}u", j * threads);
        if tb {
            writeln!(
                b.load,
                "        {{ let i = {i}; let n = i / {bk4}u; let kq = 4u * (i % {bk4}u); let v = zero_past_k(b_quad(col0 + n, k0 + kq, p.n, p.k), k0 + kq);
            for (var j = 0u; j < 4u; j++) {{ tile_b[(kq + j) * {bn4}u + n / 4u][n % 4u] = v[j]; }} }}"
            )
            .unwrap();
        } else {
            writeln!(
                b.load,
                "        {{ let i = {i}; let kk = i / {bn4}u; let v = b_quad(k0 + kk, col0 + 4u * (i % {bn4}u), p.k, p.n);
            tile_b[i] = select(v, vec4<f32>(0.0), k0 + kk >= p.k); }}"
            )
            .unwrap();
        }
    }
    for q in 0..tm / 4 {
        writeln!(b.inner, "            let a{q} = tile_a[kk * {bm4}u + lid.y * {}u + {q}u];", tm / 4).unwrap();
    }
    for q in 0..tn4 {
        writeln!(b.inner, "            let b0_{q} = tile_b[kk * {bn4}u + lid.x * {tn4}u + {q}u];").unwrap();
    }
    for r in 0..tm {
        let mut line = String::new();
        fmas(&mut line, r, tn4, &format!("a{}.{}", r / 4, LANES[r % 4]), Some(0));
        b.inner.push_str(&line.replace("        acc", "            acc"));
    }
}

/// The WGSL source of a variant: the common part and the kind's entry point with its
/// register block unrolled.
fn source(v: &Variant) -> Result<String> {
    let scalar = if v.dtype == DType::F16 { "f16" } else { "f32" };
    let elem = |vec: bool| if vec { format!("vec4<{scalar}>") } else { scalar.to_string() };
    let (a_quad, a_one) = match v.gathered {
        Some(g) if g.a != Operand::Dense => {
            // Rows past M are clamped (masked at the store); a transposed A's rows are K,
            // where its loader returns zeros instead.
            let clamp = !v.trans.flags().0;
            let (mut quad, one) = gathered_loaders(g.a.loader(), clamp);
            // Quads of four channels from one tap: one address computation, where the
            // channel count allows (quads start at multiples of 4).
            if let Some(f) = g.a_quad_loader() {
                let row = if clamp { "min(row, rows - 1u)" } else { "row" };
                quad = format!("return {f}({row}, col);");
            }
            (quad, one)
        }
        _ => loaders("a", v.vec_a),
    };
    let (b_quad, b_one) = match v.gathered {
        Some(g) if g.b != Operand::Dense => {
            // B's rows (N, stored N×K) are clamped by its loaders, as the store masks them.
            let (mut quad, one) = gathered_loaders(g.b.loader(), false);
            if let Some(f) = g.b_quad_loader() {
                quad = format!("return {f}(row, col);");
            }
            (quad, one)
        }
        _ => loaders("b", v.vec_b),
    };
    let act = act_body(v.act);
    let mut body = Body::default();
    let entry = match v.tile.kind {
        Kind::Register => {
            register_body(v, &mut body);
            REGISTER
        }
        Kind::Subgroup => {
            subgroup_body(v, &mut body);
            SUBGROUP
        }
        Kind::Shared => {
            shared_body(v, &mut body);
            SHARED
        }
    };
    let (bm, bn) = v.tile.span();
    let template = format!("{COMMON}\n{entry}");
    let mut values: Vec<(&str, String)> = vec![
        ("A_ELEM", elem(v.vec_a)),
        ("B_ELEM", elem(v.vec_b)),
        ("BIAS_DECL", if v.bias { "@group(0) @binding(4) var<storage, read> bias: array<f32>;".into() } else { String::new() }),
        ("BIAS_ADD", if v.bias { " + bias[cj]".into() } else { String::new() }),
        ("C_ROW", if v.gathered.is_some_and(|g| g.a == Operand::ConvOutputGradPhase) { "conv_phase_row(row)".into() } else { "row".into() }),
        ("A_QUAD", a_quad),
        ("B_AT", if v.vec_b { "return f32(b[i / 4u][i % 4u]);".into() } else { "return f32(b[i]);".to_string() }),
        (
            "B_QUAD_AT",
            if v.vec_b {
                "return vec4<f32>(b[i / 4u]);".into()
            } else {
                "return vec4<f32>(f32(b[i]), f32(b[i + 1u]), f32(b[i + 2u]), f32(b[i + 3u]));".to_string()
            },
        ),
        ("A_AT", if v.vec_a { "return f32(a[i / 4u][i % 4u]);".into() } else { "return f32(a[i]);".to_string() }),
        (
            "A_QUAD_AT",
            if v.vec_a {
                "return vec4<f32>(a[i / 4u]);".into()
            } else {
                "return vec4<f32>(f32(a[i]), f32(a[i + 1u]), f32(a[i + 2u]), f32(a[i + 3u]));".to_string()
            },
        ),
        ("B_QUAD", b_quad),
        ("A_ONE", a_one),
        ("B_ONE", b_one),
        ("ACT", act.into()),
        ("DECLARE", body.declare),
        ("STEP4", body.step4),
        ("STEP1", body.step1),
        ("LOAD", body.load),
        ("INNER", body.inner),
        ("STORE", body.store),
    ];
    let sizes: Vec<(&str, u32)> = vec![
        ("WG_X", v.tile.wg_x),
        ("WG_Y", v.tile.wg_y),
        ("LANES", SUBGROUP_LANES),
        ("SPAN", bn),
        ("BM", bm),
        ("BN", bn),
        ("BK", SHARED_BK),
        ("QA", bm * SHARED_BK / 4),
        ("QB", bn * SHARED_BK / 4),
        ("TM", v.tile.tm),
        ("TN", v.tile.tn),
    ];
    values.extend(sizes.into_iter().map(|(k, n)| (k, n.to_string())));
    // The three kinds' templates share these values and each uses a subset of them.
    let used: Vec<(&str, String)> = values.into_iter().filter(|(k, _)| has_marker(&template, k)).collect();
    let text = fill("matmul", &template, &used)?;
    let conv = match v.gathered {
        Some(g) => {
            let mut used: Vec<&str> = [g.a, g.b].iter().filter(|o| **o != Operand::Dense).map(|o| o.loader()).collect();
            used.extend(g.a_quad_loader());
            used.extend(g.b_quad_loader());
            super::conv2d::loaders_wgsl(&g.geom, g.phase, &used)?
        }
        None => String::new(),
    };
    // `enable` must come first in a module.
    let enable = if v.dtype == DType::F16 { "enable f16;\n" } else { "" };
    Ok(format!("{enable}{ACTIVATIONS_WGSL}\n{text}\n{conv}"))
}

/// The body of an epilogue's `fn activate(x: f32) -> f32` (activations.wgsl's functions;
/// a LeakyReLU's α is the uniform `p.alpha`, so one pipeline serves every slope).
pub(crate) fn act_body(act: Act) -> &'static str {
    match act {
        Act::None => "return x;",
        Act::Relu => "return act_relu(x);",
        Act::LeakyRelu(_) => "return act_leaky_relu(x, p.alpha);",
        Act::Tanh => "return act_tanh(x);",
        Act::Sigmoid => "return act_sigmoid(x);",
    }
}

/// WGSL bodies of a_quad/a_one or b_quad/b_one that call a convolution loader
/// `f(row, col)`; `clamp_row`: rows past the end are clamped (an NN A's rows are M).
fn gathered_loaders(f: &str, clamp_row: bool) -> (String, String) {
    let row = if clamp_row { "min(row, rows - 1u)" } else { "row" };
    (format!("let r = {row}; return vec4<f32>({f}(r, col), {f}(r, col + 1u), {f}(r, col + 2u), {f}(r, col + 3u));"), format!("return {f}({row}, col);"))
}

/// Prepares `c = act(op(a)·op(b) + bias)`. `a` and `b` are both f32 or both f16 (f16
/// needs SHADER_F16; accumulation is f32 either way); `bias` and `c` are f32.
pub fn matmul(gpu: &Gpu, spec: &MatmulSpec, a: &GpuBuffer, b: &GpuBuffer, bias: Option<&GpuBuffer>, c: &GpuBuffer) -> Result<Launch> {
    let name = format!("matmul {} {}x{}x{}{} {}", spec.trans.name(), spec.m, spec.n, spec.k, if bias.is_some() { " +bias" } else { "" }, spec.act.name());
    gemm(gpu, name, spec, None, a, b, bias, c)
}

/// The matmul with optionally gathered operands (the caller checks gathered operands'
/// lengths against the convolution's geometry).
pub(crate) fn gemm(
    gpu: &Gpu,
    name: String,
    spec: &MatmulSpec,
    gathered: Option<Gathered>,
    a: &GpuBuffer,
    b: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    c: &GpuBuffer,
) -> Result<Launch> {
    if spec.m == 0 || spec.n == 0 || spec.k == 0 {
        return Err(GpuError::shape(&name, "M, N and K must be at least 1"));
    }
    let (ar, ac) = spec.stored_a();
    let (br, bc) = spec.stored_b();
    let (a_dense, b_dense) = gathered.map_or((true, true), |g| (g.a == Operand::Dense, g.b == Operand::Dense));
    // Gathered operands are read as NN, except the weight gradient's A (TN) and the input
    // gradient's B stored N×K (NT).
    if let Some(g) = gathered {
        let want = match (g.a, g.b) {
            (Operand::ConvInputK, _) => Trans::TN,
            (_, Operand::ConvWeightNK | Operand::ConvWeightNKPhase) => Trans::NT,
            _ => Trans::NN,
        };
        if spec.trans != want {
            return Err(GpuError::shape(&name, format!("gathered operands {:?}/{:?} are read as {}", g.a, g.b, want.name())));
        }
    }
    if a_dense {
        super::expect_len(&name, &format!("A ({ar}x{ac})"), a, ar * ac)?;
    }
    if b_dense {
        super::expect_len(&name, &format!("B ({br}x{bc})"), b, br * bc)?;
    }
    // A stride phase writes its rows into the whole input gradient.
    match gathered.filter(|g| g.phase.is_some()) {
        Some(g) => super::expect_len(&name, "C (the whole input gradient)", c, g.geom.input_len())?,
        None => super::expect_len(&name, &format!("C ({}x{})", spec.m, spec.n), c, spec.m * spec.n)?,
    }
    super::expect_f32(&name, "C", c)?;
    if let Some(bias) = bias {
        super::expect_len(&name, "bias", bias, spec.n)?;
        super::expect_f32(&name, "bias", bias)?;
    }
    if a.dtype != b.dtype || a.dtype == DType::U32 {
        return Err(GpuError::shape(&name, format!("A is {:?} and B is {:?}: both must be F32 or both F16", a.dtype, b.dtype)));
    }
    if a.dtype == DType::F16 && !gpu.features.shader_f16 {
        return Err(GpuError::Unsupported { kernel: name, feature: "SHADER_F16".into() });
    }
    if spec.m.max(spec.n).max(spec.k) > u32::MAX as usize / 2
        || ar * ac > u32::MAX as usize
        || br * bc > u32::MAX as usize
        || a.len.max(b.len) > u32::MAX as usize
    {
        return Err(GpuError::shape(&name, "matrix too large for 32-bit indexing"));
    }
    let tile = match (spec.tile, gathered) {
        (Some(t), _) => t,
        (None, Some(g)) => tuned_gathered_tile(gpu, spec, g, a, b, c)?,
        (None, None) => tuned_tile(gpu, spec, a.dtype)?,
    };
    tile.check(gpu).map_err(|e| match e {
        GpuError::Shape { detail, .. } => GpuError::shape(&name, detail),
        e => e,
    })?;
    let variant = Variant {
        gathered,
        trans: spec.trans,
        tile,
        dtype: a.dtype,
        // A gathered by a quad loader reads whole quads of channels (starting at multiples
        // of 4): bound as vec4s, one load each.
        vec_a: if a_dense { ac % 4 == 0 } else { gathered.is_some_and(|g| g.a_quad_loader().is_some()) && a.len.is_multiple_of(4) },
        vec_b: if b_dense { bc % 4 == 0 } else { gathered.is_some_and(|g| g.b_quad_loader().is_some()) && b.len.is_multiple_of(4) },
        bias: bias.is_some(),
        act: spec.act,
    };
    let pipeline = gpu.pipeline(&variant.key(), || source(&variant), "matmul")?;
    let params = Params { m: spec.m as u32, n: spec.n as u32, k: spec.k as u32, alpha: spec.act.alpha() };
    let (rows, cols) = tile.span();
    let groups_x = (spec.n as u32).div_ceil(cols);
    let groups_y = (spec.m as u32).div_ceil(rows);
    let mut buffers = vec![a, b, c];
    if let Some(bias) = bias {
        buffers.push(bias);
    }
    gpu.launch(name, pipeline, &params, &buffers, [groups_x, groups_y, 1])
}

/// Deterministic values in [−0.5, 0.5) for timing runs (autotune, bench).
pub fn pattern(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect()
}

/// The tile for a spec without one: `Tile::untuned`, or with autotuning on, the fastest
/// candidate for its shape class (timed now on first use, then cached).
fn tuned_tile(gpu: &Gpu, spec: &MatmulSpec, dtype: DType) -> Result<Tile> {
    let default = Tile::untuned(gpu, spec.n);
    let Some(tuner) = gpu.tuner.as_ref().filter(|_| gpu.forced_tile.is_none()) else { return Ok(default) };
    let key = super::autotune::key(gpu, spec.trans, dtype, spec.m, spec.n, spec.k);
    if let Some(t) = tuner.cached(&key).and_then(|t| t.parse::<Tile>().ok()) {
        return Ok(t);
    }
    // Shapes that matter first: tiny products (under a MFLOP) keep the default, where any
    // tile is as fast as launching it; and once this process's budget is spent, the rest
    // keep it too, unrecorded, so that a later run tunes them.
    if spec.flops() < 1e6 || tuner.budget_left().is_zero() {
        return Ok(default);
    }
    let started = web_time::Instant::now();
    let best = fastest_tile(gpu, spec, dtype, default)?;
    log::info!("autotune {key}: {:?}", best.1);
    let what = format!("{} {}x{}x{} {dtype:?}", spec.trans.name(), spec.m, spec.n, spec.k);
    tuner.report(&what, &best.1.to_string(), started.elapsed());
    tuner.record(key, best.1.to_string());
    Ok(best.1)
}

/// The tile of a convolution's GEMM (`gathered`) without one: as `tuned_tile`, but per exact
/// geometry, role and stride phase (a model has a few dozen, each tuned once per adapter),
/// timed on scratch tensors of the operands' sizes.
fn tuned_gathered_tile(gpu: &Gpu, spec: &MatmulSpec, gathered: Gathered, a: &GpuBuffer, b: &GpuBuffer, c: &GpuBuffer) -> Result<Tile> {
    let default = Tile::untuned(gpu, spec.n);
    let Some(tuner) = gpu.tuner.as_ref().filter(|_| gpu.forced_tile.is_none()) else { return Ok(default) };
    let what = format!("{}/{} {}x{}x{} {:?}", gathered.a.loader(), gathered.b.loader(), spec.m, spec.n, spec.k, a.dtype);
    let key = super::autotune::conv_key(gpu, &what, &gathered.geom);
    if let Some(t) = tuner.cached(&key).and_then(|t| t.parse::<Tile>().ok()) {
        return Ok(t);
    }
    if spec.flops() < 1e6 || tuner.budget_left().is_zero() {
        return Ok(default);
    }
    let started = web_time::Instant::now();
    let best = fastest_gathered_tile(gpu, spec, gathered, a, b, c, default)?;
    log::info!("autotune {key}: {:?}", best.1);
    tuner.report(&format!("conv {} {what}", gathered.geom), &best.1.to_string(), started.elapsed());
    tuner.record(key, best.1.to_string());
    Ok(best.1)
}

/// Times every candidate tile on a convolution's GEMM, on scratch copies of its operands'
/// sizes, and returns (seconds, the fastest).
#[cfg(not(target_arch = "wasm32"))]
fn fastest_gathered_tile(gpu: &Gpu, spec: &MatmulSpec, gathered: Gathered, a: &GpuBuffer, b: &GpuBuffer, c: &GpuBuffer, default: Tile) -> Result<(f64, Tile)> {
    let upload = |what: &str, n: usize| match a.dtype {
        DType::F16 => gpu.upload_f16(what, &pattern(n)),
        _ => gpu.upload_f32(what, &pattern(n)),
    };
    let (ta, tb) = (upload("tune A", a.len)?, upload("tune B", b.len)?);
    let tc = gpu.zeros("tune C", c.len, DType::F32)?;
    let mut best = (f64::INFINITY, default);
    for tile in super::autotune::candidates_for(gpu, spec.n) {
        let launch = gemm(gpu, "tuning".into(), &spec.tile(tile), Some(gathered), &ta, &tb, None, &tc)?;
        let t = time_launches(gpu, &[&launch])?;
        if t < best.0 {
            best = (t, tile);
        }
    }
    Ok(best)
}

#[cfg(target_arch = "wasm32")]
fn fastest_gathered_tile(_: &Gpu, _: &MatmulSpec, _: Gathered, _: &GpuBuffer, _: &GpuBuffer, _: &GpuBuffer, default: Tile) -> Result<(f64, Tile)> {
    Ok((f64::NAN, default))
}

/// Seconds per run of `launches`: the best of three passes of ~10 ms, after one that
/// compiles and warms up — enough to rank tiles, short enough that a step's dozen shape
/// classes tune in seconds even on a CPU adapter.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn time_launches(gpu: &Gpu, launches: &[&Launch]) -> Result<f64> {
    let once = gpu.time_pass(launches, 1)?.max(1e-7);
    let reps = ((0.01 / once) as usize).clamp(1, 64);
    let mut t = f64::INFINITY;
    for _ in 0..3 {
        t = t.min(gpu.time_pass(launches, reps)? / reps as f64);
    }
    Ok(t)
}

/// Times every candidate tile on `spec` and returns (seconds, the fastest).
#[cfg(not(target_arch = "wasm32"))]
fn fastest_tile(gpu: &Gpu, spec: &MatmulSpec, dtype: DType, default: Tile) -> Result<(f64, Tile)> {
    let (na, nb) = (spec.m * spec.k, spec.k * spec.n);
    let fill = pattern;
    let (a, b) = match dtype {
        DType::F16 => (gpu.upload_f16("tune A", &fill(na))?, gpu.upload_f16("tune B", &fill(nb))?),
        _ => (gpu.upload_f32("tune A", &fill(na))?, gpu.upload_f32("tune B", &fill(nb))?),
    };
    let c = gpu.zeros("tune C", spec.m * spec.n, DType::F32)?;
    let mut best = (f64::INFINITY, default);
    for tile in super::autotune::candidates_for(gpu, spec.n) {
        let launch = matmul(gpu, &spec.tile(tile), &a, &b, None, &c)?;
        let t = time_launches(gpu, &[&launch])?;
        if t < best.0 {
            best = (t, tile);
        }
    }
    Ok(best)
}

/// The browser cannot wait for a timing: its adapter keeps the class default.
#[cfg(target_arch = "wasm32")]
fn fastest_tile(_: &Gpu, _: &MatmulSpec, _: DType, default: Tile) -> Result<(f64, Tile)> {
    Ok((f64::NAN, default))
}

//! matmul: C[M,N] = act(op(A)·op(B) + bias) with op(A) ∈ {A, Aᵀ}, op(B) ∈ {B, Bᵀ}.
//!
//! A layer's forward is `Y = act(X·W + b)` (NN); its backward products are
//! `dX = dY·Wᵀ` (NT) and `dW = Xᵀ·dY` (TN). The WGSL in `shaders/matmul.wgsl` is a template;
//! this module unrolls the register block into it for the chosen tile and layout.

use std::fmt::Write;

use crate::gpu::{AdapterClass, DType, Gpu, GpuBuffer, GpuError, Launch, Result};

use super::{Act, ACTIVATIONS_WGSL};

const TEMPLATE: &str = include_str!("../../shaders/matmul.wgsl");

/// Which operands are transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trans {
    /// C = A·B: A is M×K, B is K×N.
    NN,
    /// C = A·Bᵀ: A is M×K, B is N×K.
    NT,
    /// C = Aᵀ·B: A is K×M, B is K×N.
    TN,
}

impl Trans {
    fn flags(self) -> (bool, bool) {
        match self {
            Trans::NN => (false, false),
            Trans::NT => (false, true),
            Trans::TN => (true, false),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Trans::NN => "nn",
            Trans::NT => "nt",
            Trans::TN => "tn",
        }
    }
}

/// The register block each invocation computes (tm × tn, tn a multiple of 4; tm a
/// multiple of 4) and the workgroup shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tile {
    pub tm: u32,
    pub tn: u32,
    pub wg_x: u32,
    pub wg_y: u32,
}

impl Tile {
    /// Defaults measured on lavapipe (BENCHMARKS.md) and a conservative choice for GPUs.
    pub fn default_for(class: AdapterClass) -> Tile {
        match class {
            AdapterClass::Cpu => Tile { tm: 16, tn: 16, wg_x: 8, wg_y: 8 },
            AdapterClass::Gpu => Tile { tm: 4, tn: 4, wg_x: 16, wg_y: 16 },
        }
    }

    fn check(&self) -> Result<()> {
        let ok = self.tm >= 4 && self.tm % 4 == 0 && self.tn >= 4 && self.tn % 4 == 0 && self.wg_x >= 1 && self.wg_y >= 1;
        if !ok {
            return Err(GpuError::shape("matmul", format!("bad tile {self:?}: tm and tn must be multiples of 4")));
        }
        Ok(())
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
        if self.trans.flags().0 { (self.k, self.m) } else { (self.m, self.k) }
    }
    fn stored_b(&self) -> (usize, usize) {
        if self.trans.flags().1 { (self.n, self.k) } else { (self.k, self.n) }
    }
}

/// Everything that selects a compiled variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Variant {
    trans: Trans,
    tile: Tile,
    dtype: DType,
    vec_a: bool,
    vec_b: bool,
    bias: bool,
    act: &'static str,
}

impl Variant {
    fn key(&self) -> String {
        format!(
            "matmul/{}/{}x{}/wg{}x{}/{:?}/va{}/vb{}/bias{}/{}",
            self.trans.name(), self.tile.tm, self.tile.tn, self.tile.wg_x, self.tile.wg_y,
            self.dtype, self.vec_a as u8, self.vec_b as u8, self.bias as u8, self.act
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

/// The WGSL source of a variant: the template with the register block unrolled.
fn source(v: &Variant) -> String {
    let (ta, tb) = v.trans.flags();
    let (tm, tn4) = (v.tile.tm as usize, v.tile.tn as usize / 4);
    let scalar = if v.dtype == DType::F16 { "f16" } else { "f32" };
    let elem = |vec: bool| if vec { format!("vec4<{scalar}>") } else { scalar.to_string() };
    let (a_quad, a_one) = loaders("a", v.vec_a);
    let (b_quad, b_one) = loaders("b", v.vec_b);
    let act = match v.act {
        "none" => "return x;",
        "relu" => "return act_relu(x);",
        "leaky_relu" => "return act_leaky_relu(x, p.alpha);",
        "tanh" => "return act_tanh(x);",
        _ => "return act_sigmoid(x);",
    };

    let mut declare = String::new();
    let mut step4 = String::new();
    let mut step1 = String::new();
    let mut store = String::new();
    for r in 0..tm {
        for q in 0..tn4 {
            writeln!(declare, "    var acc{r}_{q} = vec4<f32>(0.0);").unwrap();
            writeln!(store, "    store(row0 + {r}u, col0 + {}u, acc{r}_{q});", 4 * q).unwrap();
        }
    }
    // Four steps of k: rows of op(A) as vec4 over k, rows of op(B) as vec4 over columns.
    if ta {
        for q in 0..tm / 4 {
            for i in 0..4 {
                writeln!(step4, "        let at{q}_{i} = a_quad(k + {i}u, row0 + {}u, p.k, p.m);", 4 * q).unwrap();
            }
            for j in 0..4 {
                let l = LANES[j];
                writeln!(step4, "        let a{} = vec4<f32>(at{q}_0.{l}, at{q}_1.{l}, at{q}_2.{l}, at{q}_3.{l});", 4 * q + j).unwrap();
            }
        }
    } else {
        for r in 0..tm {
            writeln!(step4, "        let a{r} = a_quad(row0 + {r}u, k, p.m, p.k);").unwrap();
        }
    }
    if tb {
        for q in 0..tn4 {
            for j in 0..4 {
                writeln!(step4, "        let bt{q}_{j} = b_quad(col0 + {}u, k, p.n, p.k);", 4 * q + j).unwrap();
            }
            for i in 0..4 {
                let l = LANES[i];
                writeln!(step4, "        let b{i}_{q} = vec4<f32>(bt{q}_0.{l}, bt{q}_1.{l}, bt{q}_2.{l}, bt{q}_3.{l});").unwrap();
            }
        }
    } else {
        for i in 0..4 {
            for q in 0..tn4 {
                writeln!(step4, "        let b{i}_{q} = b_quad(k + {i}u, col0 + {}u, p.k, p.n);", 4 * q).unwrap();
            }
        }
    }
    for r in 0..tm {
        for q in 0..tn4 {
            for i in 0..4 {
                writeln!(step4, "        acc{r}_{q} = fma(vec4<f32>(a{r}.{}), b{i}_{q}, acc{r}_{q});", LANES[i]).unwrap();
            }
        }
    }
    // The K % 4 tail, one k at a time.
    for r in 0..tm {
        let load = if ta { format!("a_one(k, row0 + {r}u, p.k, p.m)") } else { format!("a_one(row0 + {r}u, k, p.m, p.k)") };
        writeln!(step1, "        let s{r} = {load};").unwrap();
    }
    for q in 0..tn4 {
        let one = |j: usize| {
            let c = 4 * q + j;
            if tb { format!("b_one(col0 + {c}u, k, p.n, p.k)") } else { format!("b_one(k, col0 + {c}u, p.k, p.n)") }
        };
        writeln!(step1, "        let t{q} = vec4<f32>({}, {}, {}, {});", one(0), one(1), one(2), one(3)).unwrap();
    }
    for r in 0..tm {
        for q in 0..tn4 {
            writeln!(step1, "        acc{r}_{q} = fma(vec4<f32>(s{r}), t{q}, acc{r}_{q});").unwrap();
        }
    }

    let body = TEMPLATE
        .replace("$ENABLE", if v.dtype == DType::F16 { "enable f16;" } else { "" })
        .replace("$A_ELEM", &elem(v.vec_a))
        .replace("$B_ELEM", &elem(v.vec_b))
        .replace(
            "$BIAS_DECL",
            if v.bias { "@group(0) @binding(4) var<storage, read> bias: array<f32>;" } else { "" },
        )
        .replace("$BIAS_ADD", if v.bias { " + bias[cj]" } else { "" })
        .replace("$A_QUAD", &a_quad)
        .replace("$B_QUAD", &b_quad)
        .replace("$A_ONE", &a_one)
        .replace("$B_ONE", &b_one)
        .replace("$ACT", act)
        .replace("$WG_X", &v.tile.wg_x.to_string())
        .replace("$WG_Y", &v.tile.wg_y.to_string())
        .replace("$TM", &v.tile.tm.to_string())
        .replace("$TN", &v.tile.tn.to_string())
        .replace("$DECLARE", &declare)
        .replace("$STEP4", &step4)
        .replace("$STEP1", &step1)
        .replace("$STORE", &store);
    // `enable` must come first in a module.
    let (enable, rest) = match body.find("enable f16;") {
        Some(i) => ("enable f16;\n", body[..i].to_string() + &body[i + "enable f16;".len()..]),
        None => ("", body),
    };
    format!("{enable}{ACTIVATIONS_WGSL}\n{rest}")
}

/// Prepares `c = act(op(a)·op(b) + bias)`. `a` and `b` are both f32 or both f16 (f16
/// needs SHADER_F16; accumulation is f32 either way); `bias` and `c` are f32.
pub fn matmul(gpu: &Gpu, spec: &MatmulSpec, a: &GpuBuffer, b: &GpuBuffer, bias: Option<&GpuBuffer>, c: &GpuBuffer) -> Result<Launch> {
    let name = format!(
        "matmul {} {}x{}x{}{} {}",
        spec.trans.name(), spec.m, spec.n, spec.k, if bias.is_some() { " +bias" } else { "" }, spec.act.name()
    );
    if spec.m == 0 || spec.n == 0 || spec.k == 0 {
        return Err(GpuError::shape(&name, "M, N and K must be at least 1"));
    }
    let (ar, ac) = spec.stored_a();
    let (br, bc) = spec.stored_b();
    super::expect_len(&name, &format!("A ({ar}x{ac})"), a, ar * ac)?;
    super::expect_len(&name, &format!("B ({br}x{bc})"), b, br * bc)?;
    super::expect_len(&name, &format!("C ({}x{})", spec.m, spec.n), c, spec.m * spec.n)?;
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
    if spec.m.max(spec.n).max(spec.k) > u32::MAX as usize / 2 || ar * ac > u32::MAX as usize || br * bc > u32::MAX as usize {
        return Err(GpuError::shape(&name, "matrix too large for 32-bit indexing"));
    }
    let tile = match spec.tile {
        Some(t) => t,
        None => tuned_tile(gpu, spec, a.dtype)?,
    };
    tile.check()?;
    let variant = Variant {
        trans: spec.trans,
        tile,
        dtype: a.dtype,
        vec_a: ac % 4 == 0,
        vec_b: bc % 4 == 0,
        bias: bias.is_some(),
        act: spec.act.name(),
    };
    let pipeline = gpu.pipeline(&variant.key(), || source(&variant), "matmul")?;
    let params = Params { m: spec.m as u32, n: spec.n as u32, k: spec.k as u32, alpha: spec.act.alpha() };
    let groups_x = (spec.n as u32).div_ceil(tile.tn).div_ceil(tile.wg_x);
    let groups_y = (spec.m as u32).div_ceil(tile.tm).div_ceil(tile.wg_y);
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

/// The tile for a spec without one: the adapter class's default, or with autotuning on, the
/// fastest candidate for its shape class (timed now on first use, then cached).
fn tuned_tile(gpu: &Gpu, spec: &MatmulSpec, dtype: DType) -> Result<Tile> {
    let default = Tile::default_for(gpu.class);
    let Some(tuner) = &gpu.tuner else { return Ok(default) };
    let key = super::autotune::key(gpu, spec.trans, dtype, spec.m, spec.n, spec.k);
    if let Some(t) = tuner.cached(&key) {
        return Ok(t);
    }
    let (na, nb) = (spec.m * spec.k, spec.k * spec.n);
    let fill = pattern;
    let (a, b) = match dtype {
        DType::F16 => (gpu.upload_f16("tune A", &fill(na))?, gpu.upload_f16("tune B", &fill(nb))?),
        _ => (gpu.upload_f32("tune A", &fill(na))?, gpu.upload_f32("tune B", &fill(nb))?),
    };
    let c = gpu.zeros("tune C", spec.m * spec.n, DType::F32)?;
    let mut best = (f64::INFINITY, default);
    for tile in super::autotune::candidates(gpu.class) {
        let launch = matmul(gpu, &spec.tile(tile), &a, &b, None, &c)?;
        let once = gpu.time_pass(&[&launch], 1)?.max(1e-7); // compiles and warms up
        // Three samples of passes lasting ~10 ms: enough to rank tiles, short enough that a
        // step's dozen shape classes tune in seconds even on a CPU adapter.
        let reps = ((0.01 / once) as usize).clamp(1, 64);
        let mut t = f64::INFINITY;
        for _ in 0..3 {
            t = t.min(gpu.time_pass(&[&launch], reps)? / reps as f64);
        }
        if t < best.0 {
            best = (t, tile);
        }
    }
    log::info!("autotune {key}: {:?}", best.1);
    tuner.record(key, best.1);
    Ok(best.1)
}

/// The generated WGSL for a spec on this adapter (for inspection and `vaegan kernels`).
pub fn wgsl_for(gpu: &Gpu, spec: &MatmulSpec, dtype: DType, bias: bool) -> String {
    let (_, ac) = spec.stored_a();
    let (_, bc) = spec.stored_b();
    source(&Variant {
        trans: spec.trans,
        tile: spec.tile.unwrap_or_else(|| Tile::default_for(gpu.class)),
        dtype,
        vec_a: ac % 4 == 0,
        vec_b: bc % 4 == 0,
        bias,
        act: spec.act.name(),
    })
}

//! reduce: sum and mean to a scalar for any length (two launches past one chunk, fixed
//! order), column sums and row sums.

use crate::gpu::{Gpu, GpuBuffer, GpuError, Launch, Result};

use super::ACTIVATIONS_WGSL;
use crate::gpu::template::fill;

const SOURCE: &str = include_str!("../../shaders/reduce.wgsl");
pub(crate) const LOSS_TERMS_WGSL: &str = include_str!("../../shaders/loss_terms.wgsl");
/// Invocations per workgroup: named here once and filled into the WGSL (`$WG`).
const WG: u32 = 256;
/// Invocations per workgroup of the per-row entry points (`$WG_ROWS` in the WGSL).
const WG_ROWS: u32 = 64;

/// Binding slots of the family's storage buffers (0 is the uniform block), named once:
/// the WGSL's `@binding($SLOT_…)` markers are filled from here.
mod slot {
    pub const A: u32 = 1;
    pub const B: u32 = 2;
    pub const OUT: u32 = 3;
}

fn slot_values() -> Vec<(&'static str, String)> {
    [("SLOT_A", slot::A), ("SLOT_B", slot::B), ("SLOT_OUT", slot::OUT)].iter().map(|(k, v)| (*k, v.to_string())).collect()
}
/// Elements per workgroup in the first pass: 16 per invocation.
pub const CHUNK: u32 = WG * 16;

/// What is summed: the elements themselves or a loss term of (a[i], b[i]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Term {
    Sum,
    BceProb,
    BceLogits,
    SqErr,
}

impl Term {
    fn name(self) -> &'static str {
        match self {
            Term::Sum => "sum",
            Term::BceProb => "bce_prob",
            Term::BceLogits => "bce_logits",
            Term::SqErr => "sq_err",
        }
    }
    fn expr(self) -> &'static str {
        match self {
            Term::Sum => "a[i]",
            Term::BceProb => "term_bce_prob(a[i], b[i])",
            Term::BceLogits => "term_bce_logits(a[i], b[i])",
            Term::SqErr => "term_sq_err(a[i], b[i])",
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    chunk: u32,
    scale: f32,
    _pad: u32,
}

fn pipeline(gpu: &Gpu, term: Term, entry: &str) -> Result<std::sync::Arc<wgpu::ComputePipeline>> {
    gpu.pipeline(
        &format!("reduce/{}/{entry}", term.name()),
        || {
            Ok(format!(
                "{ACTIVATIONS_WGSL}\n{LOSS_TERMS_WGSL}\n{}",
                fill(
                    "reduce",
                    SOURCE,
                    &[vec![("TERM", term.expr().to_string()), ("WG", WG.to_string()), ("WG_ROWS", WG_ROWS.to_string())], slot_values()].concat()
                )?
            ))
        },
        entry,
    )
}

/// Elements of scratch a reduction of `n` values needs: one partial sum per chunk of
/// `CHUNK` (the caller owns it, so that a graph's planner can count and reuse it).
pub fn scratch_len(n: usize) -> usize {
    n.div_ceil(CHUNK as usize).max(1)
}

/// out[0] = scale · Σ_i term(a[i], b[i]). `b` is required for loss terms, ignored for Sum.
/// `partials` holds at least `scratch_len(a.len)` elements; its contents are overwritten.
pub fn reduce_to_scalar(gpu: &Gpu, term: Term, a: &GpuBuffer, b: Option<&GpuBuffer>, scale: f32, out: &GpuBuffer, partials: &GpuBuffer) -> Result<Vec<Launch>> {
    let name = format!("reduce {} n={}", term.name(), a.len);
    let n = super::nonempty(&name, a.len)?;
    super::expect_f32(&name, "input", a)?;
    super::expect_f32(&name, "output", out)?;
    super::expect_len(&name, "output", out, 1)?;
    super::expect_f32(&name, "scratch", partials)?;
    if partials.len < scratch_len(a.len) {
        return Err(GpuError::shape(&name, format!("scratch has {} elements, needs {}", partials.len, scratch_len(a.len))));
    }
    let b = match (term, b) {
        (Term::Sum, _) => None,
        (_, Some(b)) => {
            super::expect_f32(&name, "second operand", b)?;
            super::expect_len(&name, "second operand", b, a.len)?;
            Some(b)
        }
        (_, None) => return Err(GpuError::shape(&name, "this loss needs a second operand (target)")),
    };
    let slots = |src_a: &GpuBuffer, dst: &GpuBuffer, with_b: bool| -> Vec<(u32, GpuBuffer)> {
        let mut s = vec![(slot::A, src_a.clone())];
        if let (true, Some(b)) = (with_b, b) {
            s.push((slot::B, b.clone()));
        }
        s.push((slot::OUT, dst.clone()));
        s
    };
    let groups = n.div_ceil(CHUNK);
    let first = pipeline(gpu, term, "reduce_partial")?;
    if groups == 1 {
        let params = Params { n, chunk: CHUNK, scale, _pad: 0 };
        let s = slots(a, out, true);
        let refs: Vec<(u32, &GpuBuffer)> = s.iter().map(|(i, b)| (*i, b)).collect();
        return Ok(vec![gpu.launch_at(name, first, &params, &refs, [1, 1, 1])?]);
    }
    // Two passes: chunks → partials (unscaled), then one workgroup sums the partials.
    let partials = &GpuBuffer { len: groups as usize, ..partials.clone() };
    let params = Params { n, chunk: CHUNK, scale: 1.0, _pad: 0 };
    let s = slots(a, partials, true);
    let refs: Vec<(u32, &GpuBuffer)> = s.iter().map(|(i, b)| (*i, b)).collect();
    let pass1 = gpu.launch_at(format!("{name} (pass 1)"), first, &params, &refs, gpu.grid_1d(groups))?;
    let second = pipeline(gpu, Term::Sum, "reduce_partial")?;
    let params = Params { n: groups, chunk: groups, scale, _pad: 0 };
    let pass2 = gpu.launch_at(format!("{name} (pass 2)"), second, &params, &[(slot::A, partials), (slot::OUT, out)], [1, 1, 1])?;
    Ok(vec![pass1, pass2])
}

/// out[0] = Σ x (`partials`: see `reduce_to_scalar`).
pub fn sum(gpu: &Gpu, x: &GpuBuffer, out: &GpuBuffer, partials: &GpuBuffer) -> Result<Vec<Launch>> {
    reduce_to_scalar(gpu, Term::Sum, x, None, 1.0, out, partials)
}

/// out[0] = Σ x / len (`partials`: see `reduce_to_scalar`).
pub fn mean(gpu: &Gpu, x: &GpuBuffer, out: &GpuBuffer, partials: &GpuBuffer) -> Result<Vec<Launch>> {
    reduce_to_scalar(gpu, Term::Sum, x, None, 1.0 / x.len.max(1) as f32, out, partials)
}

fn axis_sum(gpu: &Gpu, entry: &str, x: &GpuBuffer, rows: usize, cols: usize, out: &GpuBuffer, out_len: usize) -> Result<Launch> {
    let name = format!("{entry} {rows}x{cols}");
    let r = super::nonempty(&name, rows)?;
    let c = super::nonempty(&name, cols)?;
    super::expect_f32(&name, "input", x)?;
    super::expect_f32(&name, "output", out)?;
    super::expect_len(&name, &format!("input ({rows}x{cols})"), x, rows * cols)?;
    super::expect_len(&name, "output", out, out_len)?;
    let params = Params { n: r, chunk: c, scale: 1.0, _pad: 0 };
    let pipeline = pipeline(gpu, Term::Sum, entry)?;
    gpu.launch_at(name, pipeline, &params, &[(slot::A, x), (slot::OUT, out)], gpu.grid_1d((out_len as u32).div_ceil(WG_ROWS)))
}

/// out[c] = Σ_r x[r, c] for a rows×cols matrix: the bias gradient.
pub fn column_sum(gpu: &Gpu, x: &GpuBuffer, rows: usize, cols: usize, out: &GpuBuffer) -> Result<Launch> {
    axis_sum(gpu, "column_sum", x, rows, cols, out, cols)
}

/// out[r] = Σ_c x[r, c].
pub fn row_sum(gpu: &Gpu, x: &GpuBuffer, rows: usize, cols: usize, out: &GpuBuffer) -> Result<Launch> {
    axis_sum(gpu, "row_sum", x, rows, cols, out, rows)
}

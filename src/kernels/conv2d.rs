//! conv2d and conv_transpose2d over NHWC tensors, forward and both backwards, as implicit
//! GEMMs on the matmul's kernels: the operands are gathered by the loaders of
//! `shaders/conv2d.wgsl` as the tiles load them, so no im2col buffer is made.
//!
//! | what                          | M           | N     | K           | A            | B       |
//! |-------------------------------|-------------|-------|-------------|--------------|---------|
//! | forward (+ bias, activation)  | b·oh·ow     | c_out | kh·kw·c_in  | im2col(x)    | w       |
//! | input gradient                | b·ih·iw     | c_in  | kh·kw·c_out | dy gathered  | w re-indexed |
//! | weight gradient (Aᵀ·B)        | kh·kw·c_in  | c_out | b·oh·ow     | im2col(x)    | dy      |
//!
//! A transposed convolution is the adjoint of a convolution (`ConvGeom::transposed`): its
//! forward is that convolution's input gradient, its input gradient that convolution's
//! forward, and its weight gradient that convolution's weight gradient with the roles of
//! input and output swapped. The bias gradient of either is a column sum of dy
//! (`reduce::column_sum` over b·h·w rows).
//!
//! An input gradient with c_in ≤ 4 (the image side: a transposed convolution to the
//! picture, a discriminator's first input gradient) is a GEMM with N ≤ 4, where a tile's
//! columns idle; it runs on `shaders/conv2d_narrow.wgsl` instead, a pixel per invocation,
//! with the same bits (`InputPath`).

use super::matmul::{act_body, gemm, Gathered, MatmulSpec, Operand, Tile};
use crate::gpu::template::{fill, has_marker};
use crate::gpu::{Gpu, GpuBuffer, GpuError, Launch, Result};
use crate::types::{Act, ConvGeom, DType, Trans};

const SOURCE: &str = include_str!("../../shaders/conv2d.wgsl");
const NARROW: &str = include_str!("../../shaders/conv2d_narrow.wgsl");
/// The widest c_in the narrow input gradient serves (⌈c_in/4⌉ vec4 accumulators).
pub const NARROW_MAX_CHANNELS: usize = 16;
/// Up to this c_in, `InputPath::Auto` takes the narrow kernel where nothing was timed (no
/// autotuner, a forced tile, the budget spent, the browser): on lavapipe it runs
/// mnist-conv's c_in = 1 gradients at twice the class-default GEMM's speed, and c_in = 16 at
/// a quarter (BENCHMARKS.md). With a tuner, every c_in ≤ 16 is timed both ways instead.
pub const NARROW_UNTIMED_CHANNELS: usize = 4;
/// The two input-gradient paths are timed on at most this many images of the geometry (its
/// own batch where smaller), then the choice is kept for the whole batch: both scale with
/// the batch, and timed whole, `vaegan sample -n 1000`'s decoder (a batch of 1,000) took 72
/// and 97 s of lavapipe's time on its two choices, 24 and 18 s on 64 images, against a
/// tuning budget of 30 s for a whole run (BENCHMARKS.md, "The untuned tile of a narrow product").
pub const TIMED_IMAGES: usize = 64;
/// Invocations per workgroup of the narrow kernel (pixels).
const NARROW_WG: u32 = 64;

/// How an input gradient (or a transposed convolution's forward) is computed: both paths
/// give the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputPath {
    /// For f32 tensors with c_in ≤ 16, whichever of the two the autotuner timed faster on
    /// this adapter; untimed, narrow up to 4 channels. Else the GEMM.
    Auto,
    /// The implicit GEMM on the matmul's tiles (stride phases as separate GEMMs).
    Gemm,
    /// `conv2d_narrow.wgsl`, one launch per stride phase; refused where c_in > 4 or f16.
    Narrow,
}

/// The WGSL of the loaders a variant calls (`used`), with the geometry filled in, to
/// append to a matmul variant. Only those: the others read the operands as the types this
/// variant does not declare (a dense operand may be bound as vec4).
pub(crate) fn loaders_wgsl(g: &ConvGeom, phase: Option<Phase>, used: &[&str]) -> Result<String> {
    // Unphased GEMMs carry the trivial phase (the constants are declared either way).
    let ph = phase.unwrap_or(Phase { ph: 0, pw: 0, kh0: 0, kw0: 0, th: g.k_h, tw: g.k_w, mh: g.in_h, mw: g.in_w });
    // Loaders that read through others (address helpers, scalar loaders), once each.
    let needs = |name: &str| -> &'static [&'static str] {
        match name {
            "conv_input" | "conv_input_quad" => &["conv_input_at"],
            "conv_output_grad" | "conv_output_grad_quad" => &["conv_output_grad_at"],
            "conv_output_grad_phase" | "conv_output_grad_phase_quad" => &["conv_output_grad_phase_at", "conv_phase_row"],
            "conv_input_k" => &["conv_input", "conv_input_at"],
            "conv_input_k_quad" => &["conv_input_quad", "conv_input_at"],
            "conv_weight_nk" | "conv_weight_nk_quad" => &["conv_weight_nk_at"],
            "conv_weight_nk_phase" | "conv_weight_nk_phase_quad" => &["conv_weight_nk_phase_at"],
            _ => &[],
        }
    };
    let mut names: Vec<&str> = vec![];
    for &name in used.iter().flat_map(|n| std::iter::once(n).chain(needs(n))) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let header_end =
        SOURCE.find("\n// Where im2col(x)[m, k] lives").ok_or_else(|| GpuError::shape("conv2d", "shaders/conv2d.wgsl: the loaders' section is missing"))?;
    let mut text = SOURCE[..header_end].to_string();
    for name in names {
        let at = SOURCE.find(&format!("\nfn {name}(")).ok_or_else(|| GpuError::shape("conv2d", format!("shaders/conv2d.wgsl has no fn {name}")))?;
        // The function with the comment lines above it, up to its closing brace.
        let start = SOURCE[..=at].rfind("\n\n").map_or(0, |i| i + 1);
        let end = SOURCE[at..].find("\n}\n").map(|i| at + i + 3).unwrap_or(SOURCE.len());
        text.push_str(&SOURCE[start..end]);
    }
    fill("conv2d", &text, &geometry_values(g, &ph))
}

/// The `$CV_…` values of a geometry and stride phase (conv2d.wgsl's constants; the narrow
/// kernel takes those it uses).
fn geometry_values(g: &ConvGeom, ph: &Phase) -> Vec<(&'static str, String)> {
    let v = |x: usize| format!("{x}u");
    vec![
        ("CV_B", v(g.batch)),
        ("CV_IH", v(g.in_h)),
        ("CV_IW", v(g.in_w)),
        ("CV_CI", v(g.in_c)),
        ("CV_OH", v(g.out_h)),
        ("CV_OW", v(g.out_w)),
        ("CV_CO", v(g.out_c)),
        ("CV_KH", v(g.k_h)),
        ("CV_KW", v(g.k_w)),
        ("CV_S", v(g.stride)),
        ("CV_P", v(g.pad)),
        ("CV_PH", v(ph.ph)),
        ("CV_PW", v(ph.pw)),
        ("CV_KH0", v(ph.kh0)),
        ("CV_KW0", v(ph.kw0)),
        ("CV_TH", v(ph.th)),
        ("CV_TW", v(ph.tw)),
        ("CV_MH", v(ph.mh)),
        ("CV_MW", v(ph.mw)),
    ]
}

/// One stride phase of an input gradient (see `shaders/conv2d.wgsl`): the pixels
/// (PH + S·i, PW + S·j), MH×MW of them, and the taps kh = KH0 + S·th (TH of them), kw alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Phase {
    pub ph: usize,
    pub pw: usize,
    pub kh0: usize,
    pub kw0: usize,
    pub th: usize,
    pub tw: usize,
    pub mh: usize,
    pub mw: usize,
}

impl Phase {
    /// The S² phases of `g`'s input gradient, with their pixels and taps.
    pub fn all(g: &ConvGeom) -> Vec<Phase> {
        let s = g.stride;
        let taps = |k0: usize, k: usize| if k0 >= k { 0 } else { (k - k0).div_ceil(s) };
        let mut out = vec![];
        for ph in 0..s {
            for pw in 0..s {
                let (kh0, kw0) = ((ph + g.pad) % s, (pw + g.pad) % s);
                let (mh, mw) = (g.in_h.saturating_sub(ph).div_ceil(s), g.in_w.saturating_sub(pw).div_ceil(s));
                out.push(Phase { ph, pw, kh0, kw0, th: taps(kh0, g.k_h), tw: taps(kw0, g.k_w), mh, mw });
            }
        }
        out
    }
}

fn check(name: &str, what: &str, buf: &GpuBuffer, want: usize) -> Result<()> {
    super::expect_len(name, what, buf, want)
}

/// y = act(conv(x, w) + bias): x is b×ih×iw×c_in, w kh×kw×c_in×c_out, bias c_out, y
/// b×oh×ow×c_out.
pub fn conv2d_forward(gpu: &Gpu, g: &ConvGeom, act: Act, x: &GpuBuffer, w: &GpuBuffer, bias: Option<&GpuBuffer>, y: &GpuBuffer) -> Result<Launch> {
    forward(gpu, g, act, x, w, bias, y, None)
}

/// `conv2d_forward` on a given matmul tile (tests and benchmarks compare tiles).
pub fn conv2d_forward_tiled(
    gpu: &Gpu,
    g: &ConvGeom,
    act: Act,
    x: &GpuBuffer,
    w: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    y: &GpuBuffer,
    tile: Tile,
) -> Result<Launch> {
    forward(gpu, g, act, x, w, bias, y, Some(tile))
}

fn forward(gpu: &Gpu, g: &ConvGeom, act: Act, x: &GpuBuffer, w: &GpuBuffer, bias: Option<&GpuBuffer>, y: &GpuBuffer, tile: Option<Tile>) -> Result<Launch> {
    let name = format!("conv2d {g}{} {}", if bias.is_some() { " +bias" } else { "" }, act.name());
    check(&name, "x", x, g.input_len())?;
    check(&name, "w", w, g.weight_len())?;
    check(&name, "y", y, g.output_len())?;
    let mut spec = MatmulSpec::new(g.batch * g.out_h * g.out_w, g.out_c, g.k_h * g.k_w * g.in_c, Trans::NN).act(act);
    spec.tile = tile;
    gemm(gpu, name, &spec, Some(Gathered { a: Operand::ConvInput, b: Operand::Dense, geom: *g, phase: None }), x, w, bias, y)
}

/// dx = the gradient of Σ dy·conv(x, w) with respect to x (b×ih×iw×c_in), from dy
/// (b×oh×ow×c_out, already through the activation's backward) and w. With a stride > 1
/// (and a kernel at least as large), one launch per stride phase.
pub fn conv2d_backward_input(gpu: &Gpu, g: &ConvGeom, dy: &GpuBuffer, w: &GpuBuffer, dx: &GpuBuffer) -> Result<Vec<Launch>> {
    conv2d_backward_input_via(gpu, g, InputPath::Auto, dy, w, dx)
}

/// `conv2d_backward_input` on a chosen path (tests and benchmarks compare them).
pub fn conv2d_backward_input_via(gpu: &Gpu, g: &ConvGeom, path: InputPath, dy: &GpuBuffer, w: &GpuBuffer, dx: &GpuBuffer) -> Result<Vec<Launch>> {
    let name = format!("conv2d input gradient {g}");
    check(&name, "dy", dy, g.output_len())?;
    check(&name, "w", w, g.weight_len())?;
    check(&name, "dx", dx, g.input_len())?;
    input_gemms(gpu, &name, g, Act::None, dy, w, None, dx, path)
}

/// The input-gradient GEMMs (also a transposed convolution's forward): one over every
/// pixel and tap, or one per stride phase over its pixels and taps; or the narrow kernel.
#[allow(clippy::too_many_arguments)]
fn input_gemms(
    gpu: &Gpu,
    name: &str,
    g: &ConvGeom,
    act: Act,
    dy: &GpuBuffer,
    w: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    dx: &GpuBuffer,
    path: InputPath,
) -> Result<Vec<Launch>> {
    let narrow_fits = g.in_c <= NARROW_MAX_CHANNELS && dy.dtype == DType::F32 && w.dtype == DType::F32;
    match path {
        InputPath::Narrow if !narrow_fits => {
            return Err(GpuError::shape(
                name,
                format!("the narrow input gradient needs c_in ≤ {NARROW_MAX_CHANNELS} and f32 tensors (c_in {}, {:?}/{:?})", g.in_c, dy.dtype, w.dtype),
            ))
        }
        InputPath::Narrow => return narrow(gpu, name, g, act, dy, w, bias, dx),
        InputPath::Auto if narrow_fits && narrow_is_faster(gpu, g)? => return narrow(gpu, name, g, act, dy, w, bias, dx),
        _ => {}
    }
    // A kernel smaller than the stride leaves phases without taps; those take the full gather.
    if g.stride == 1 || g.k_h < g.stride || g.k_w < g.stride {
        let (trans, b) = weights_for_input(g, Operand::ConvWeightT, Operand::ConvWeightNK);
        let spec = MatmulSpec::new(g.batch * g.in_h * g.in_w, g.in_c, g.k_h * g.k_w * g.out_c, trans).act(act);
        let gathered = Gathered { a: Operand::ConvOutputGrad, b, geom: *g, phase: None };
        return Ok(vec![gemm(gpu, name.to_string(), &spec, Some(gathered), dy, w, bias, dx)?]);
    }
    let mut launches = vec![];
    for ph in Phase::all(g).into_iter().filter(|p| p.mh > 0 && p.mw > 0) {
        let (trans, b) = weights_for_input(g, Operand::ConvWeightTPhase, Operand::ConvWeightNKPhase);
        let spec = MatmulSpec::new(g.batch * ph.mh * ph.mw, g.in_c, ph.th * ph.tw * g.out_c, trans).act(act);
        let gathered = Gathered { a: Operand::ConvOutputGradPhase, b, geom: *g, phase: Some(ph) };
        launches.push(gemm(gpu, format!("{name} phase {},{}", ph.ph, ph.pw), &spec, Some(gathered), dy, w, bias, dx)?);
    }
    Ok(launches)
}

/// How the input gradient reads w: stored N×K (NT) where c_out is a multiple of 4, so
/// that its quads along k are four contiguous output channels (one vec4 load); otherwise
/// K×N (NN), whose quads along c_in are four loads c_out apart. The same products in the
/// same order either way.
fn weights_for_input(g: &ConvGeom, kn: Operand, nk: Operand) -> (Trans, Operand) {
    if g.out_c.is_multiple_of(4) {
        (Trans::NT, nk)
    } else {
        (Trans::NN, kn)
    }
}

/// dw = the gradient with respect to w (kh×kw×c_in×c_out), from x and dy.
pub fn conv2d_backward_weight(gpu: &Gpu, g: &ConvGeom, x: &GpuBuffer, dy: &GpuBuffer, dw: &GpuBuffer) -> Result<Launch> {
    let name = format!("conv2d weight gradient {g}");
    check(&name, "x", x, g.input_len())?;
    check(&name, "dy", dy, g.output_len())?;
    check(&name, "dw", dw, g.weight_len())?;
    // dW = im2col(x)ᵀ·dy, with im2col(x) read as a K×M matrix through the loaders: Aᵀ·B.
    let spec = MatmulSpec::new(g.k_h * g.k_w * g.in_c, g.out_c, g.batch * g.out_h * g.out_w, Trans::TN);
    gemm(gpu, name, &spec, Some(Gathered { a: Operand::ConvInputK, b: Operand::Dense, geom: *g, phase: None }), x, dy, None, dw)
}

/// y = act(conv_transpose(x, w) + bias) for the transposed convolution whose adjoint is
/// `g` (`ConvGeom::transposed`): x is b×g.out_h×g.out_w×g.out_c, y b×g.in_h×g.in_w×g.in_c,
/// w kh×kw×g.in_c×g.out_c (the adjoint convolution's weights), bias g.in_c.
pub fn conv_transpose2d_forward(
    gpu: &Gpu,
    g: &ConvGeom,
    act: Act,
    x: &GpuBuffer,
    w: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    y: &GpuBuffer,
) -> Result<Vec<Launch>> {
    conv_transpose2d_forward_via(gpu, g, act, InputPath::Auto, x, w, bias, y)
}

/// `conv_transpose2d_forward` on a chosen path (tests and benchmarks compare them).
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d_forward_via(
    gpu: &Gpu,
    g: &ConvGeom,
    act: Act,
    path: InputPath,
    x: &GpuBuffer,
    w: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    y: &GpuBuffer,
) -> Result<Vec<Launch>> {
    let name = format!("conv_transpose2d {g}{} {}", if bias.is_some() { " +bias" } else { "" }, act.name());
    check(&name, "x", x, g.output_len())?;
    check(&name, "w", w, g.weight_len())?;
    check(&name, "y", y, g.input_len())?;
    if let Some(b) = bias {
        check(&name, "bias", b, g.in_c)?;
    }
    input_gemms(gpu, &name, g, act, x, w, bias, y, path)
}

/// The narrow kernel's walk along one tap's c_out channels (`$CHANNELS`): a channel at a
/// time, or where c_out is a multiple of 4 a quad at a time (dy and w bound as vec4, a0 and
/// w0 multiples of 4), its four channels' FMAs in channel order either way.
/// Unrolled taps × channel groups × c_in outputs up to which the narrow kernel is written
/// without a loop over its taps: on lavapipe (Mesa 22) a load inside any loop or branch runs
/// as a per-lane scalar loop, and unrolling the taps halved mnist-conv's narrow dispatches
/// (BENCHMARKS.md); past this the source would grow to thousands of lines per pipeline.
pub const NARROW_UNROLL: usize = 1024;

/// The narrow kernel's taps: for each tap of the phase, dy's pixel, then along its c_out
/// channels acc_ci = fma(dy[co], w[ci, co], acc_ci) for every c_in output, in co order (the
/// GEMM's k order, so the same bits). With `quads` (c_out a multiple of 4) dy and w load as
/// vec4 and the four products chain in x, y, z, w order. The taps are unrolled where the
/// body stays under `NARROW_UNROLL` groups, else a loop over them; channels always are.
fn narrow_taps(th: usize, tw: usize, quads: bool, c_in: usize, c_out: usize) -> String {
    let groups = if quads { c_out / 4 } else { c_out };
    let tap = |t: &str, u: &str, pad: &str| -> String {
        let mut body = format!("{pad}{{\n");
        let line = |body: &mut String, text: String| {
            body.push_str(pad);
            body.push_str("    ");
            body.push_str(&text);
            body.push('\n');
        };
        line(&mut body, format!("let kh = KH0 + S * {t};"));
        line(&mut body, format!("let kw = KW0 + S * {u};"));
        line(&mut body, "let y = i32(ih + P) - i32(kh);".into());
        line(&mut body, "let x = i32(iw + P) - i32(kw);".into());
        line(&mut body, "let oh = u32(max(y, 0)) / S;".into());
        line(&mut body, "let ow = u32(max(x, 0)) / S;".into());
        line(&mut body, "let reached = y >= 0 && x >= 0 && oh < OH && ow < OW;".into());
        line(&mut body, "let a0 = ((bi * OH + min(oh, OH - 1u)) * OW + min(ow, OW - 1u)) * CO;".into());
        line(&mut body, "let w0 = (kh * KW + kw) * CI * CO;".into());
        for g in 0..groups {
            if quads {
                line(&mut body, format!("let a_{g} = select(vec4<f32>(0.0), dy[a0 / 4u + {g}u], reached);"));
                for ci in 0..c_in {
                    line(&mut body, format!("let w_{g}_{ci} = w[(w0 + {ci}u * CO) / 4u + {g}u];"));
                    for c in ["x", "y", "z", "w"] {
                        line(&mut body, format!("acc_{ci} = fma(a_{g}.{c}, w_{g}_{ci}.{c}, acc_{ci});"));
                    }
                }
            } else {
                line(&mut body, format!("let a_{g} = select(0.0, dy[a0 + {g}u], reached);"));
                for ci in 0..c_in {
                    line(&mut body, format!("acc_{ci} = fma(a_{g}, w[w0 + {ci}u * CO + {g}u], acc_{ci});"));
                }
            }
        }
        body.push_str(pad);
        body.push_str("}\n");
        body
    };
    if th * tw * groups * c_in <= NARROW_UNROLL {
        (0..th).flat_map(|t| (0..tw).map(move |u| (t, u))).map(|(t, u)| tap(&format!("{t}u"), &format!("{u}u"), "    ")).collect()
    } else {
        format!("    for (var th = 0u; th < TH; th++) {{\n        for (var tw = 0u; tw < TW; tw++) {{\n{}        }}\n    }}\n", tap("th", "tw", "            "))
    }
}

/// The narrow kernel's accumulators (one f32 per c_in output) and their stores.
fn narrow_accumulators(c_in: usize, bias: bool) -> (String, String) {
    let decl = (0..c_in).map(|ci| format!("    var acc_{ci} = 0.0;")).collect::<Vec<_>>().join("\n");
    let store = (0..c_in)
        .map(|ci| format!("        dx[row * CI + {ci}u] = activate(acc_{ci}{});", if bias { format!(" + bias[{ci}]") } else { String::new() }))
        .collect::<Vec<_>>()
        .join("\n");
    (decl, store)
}

/// Whether `Auto` takes the narrow kernel for `g` (c_in ≤ 16, f32): as the autotuner found
/// when it timed both (on scratch tensors, once per geometry, recorded with the matmul
/// tiles), or where it does not time (no tuner, a forced tile, its budget spent, the
/// browser) up to `NARROW_UNTIMED_CHANNELS`.
fn narrow_is_faster(gpu: &Gpu, g: &ConvGeom) -> Result<bool> {
    let untimed = g.in_c <= NARROW_UNTIMED_CHANNELS;
    let Some(tuner) = gpu.tuner.as_ref().filter(|_| gpu.forced_tile.is_none()) else { return Ok(untimed) };
    let key = super::autotune::conv_key(gpu, "conv input gradient", g);
    if let Some(choice) = tuner.cached(&key) {
        return Ok(choice == "narrow");
    }
    if tuner.budget_left().is_zero() {
        return Ok(untimed);
    }
    let started = web_time::Instant::now();
    let Some((gemm_s, narrow_s)) = time_input_paths(gpu, g)? else { return Ok(untimed) };
    let choice = if narrow_s < gemm_s { "narrow" } else { "gemm" };
    log::info!("autotune {key}: {choice} (GEMM {:.3} ms, narrow {:.3} ms)", gemm_s * 1e3, narrow_s * 1e3);
    tuner.report(&format!("conv input gradient {g}"), choice, started.elapsed());
    tuner.record(key, choice.to_string());
    Ok(choice == "narrow")
}

/// Seconds per input gradient of `g`, at most `TIMED_IMAGES` of its images, on the GEMM (its
/// tile tuned first, where the budget allows) and on the narrow kernel (`matmul::time_launches`).
#[cfg(not(target_arch = "wasm32"))]
fn time_input_paths(gpu: &Gpu, g: &ConvGeom) -> Result<Option<(f64, f64)>> {
    let g = &ConvGeom { batch: g.batch.min(TIMED_IMAGES), ..*g };
    let dy = gpu.upload_f32("tune dy", &super::matmul::pattern(g.output_len()))?;
    let w = gpu.upload_f32("tune w", &super::matmul::pattern(g.weight_len()))?;
    let dx = gpu.zeros("tune dx", g.input_len(), DType::F32)?;
    let mut times = [0.0; 2];
    for (i, path) in [InputPath::Gemm, InputPath::Narrow].into_iter().enumerate() {
        let launches = input_gemms(gpu, "tuning", g, Act::None, &dy, &w, None, &dx, path)?;
        times[i] = super::matmul::time_launches(gpu, &launches.iter().collect::<Vec<_>>())?;
    }
    Ok(Some((times[0], times[1])))
}

/// The browser cannot wait for a timing: it keeps the GEMM.
#[cfg(target_arch = "wasm32")]
fn time_input_paths(_: &Gpu, _: &ConvGeom) -> Result<Option<(f64, f64)>> {
    Ok(None)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct NarrowParams {
    rows: u32,
    alpha: f32,
    _pad: [u32; 2],
}

/// The input gradient for c_in ≤ 4 on `conv2d_narrow.wgsl`: one launch per stride phase
/// that has pixels (a phase without taps, where the kernel is smaller than the stride,
/// stores act(bias) as the full gather's zeros would).
#[allow(clippy::too_many_arguments)]
fn narrow(gpu: &Gpu, name: &str, g: &ConvGeom, act: Act, dy: &GpuBuffer, w: &GpuBuffer, bias: Option<&GpuBuffer>, dx: &GpuBuffer) -> Result<Vec<Launch>> {
    let quads = g.out_c.is_multiple_of(4);
    let mut launches = vec![];
    for ph in Phase::all(g).into_iter().filter(|p| p.mh > 0 && p.mw > 0) {
        let key = format!("conv2d_narrow/{g}/{ph:?}/bias{}/{}", bias.is_some() as u8, act.name());
        let source = || {
            let (acc, store) = narrow_accumulators(g.in_c, bias.is_some());
            let mut values: Vec<(&str, String)> = geometry_values(g, &ph).into_iter().filter(|(k, _)| has_marker(NARROW, k)).collect();
            values.extend([
                ("WG", NARROW_WG.to_string()),
                ("CV_ELEM", if quads { "vec4<f32>" } else { "f32" }.to_string()),
                ("CV_TAPS", narrow_taps(ph.th, ph.tw, quads, g.in_c, g.out_c)),
                ("CV_ACC", acc),
                ("CV_STORE", store),
                ("ACT", act_body(act).to_string()),
                ("BIAS_DECL", if bias.is_some() { "@group(0) @binding(4) var<storage, read> bias: array<f32>;".into() } else { String::new() }),
            ]);
            Ok(format!("{}\n{}", super::ACTIVATIONS_WGSL, fill("conv2d_narrow", NARROW, &values)?))
        };
        let pipeline = gpu.pipeline(&key, source, "conv2d_narrow")?;
        let rows = g.batch * ph.mh * ph.mw;
        if rows > u32::MAX as usize / 2 || g.input_len().max(g.output_len()).max(g.weight_len()) > u32::MAX as usize {
            return Err(GpuError::shape(name, "tensors too large for 32-bit indexing"));
        }
        let params = NarrowParams { rows: rows as u32, alpha: act.alpha(), _pad: [0; 2] };
        let mut buffers = vec![dy, w, dx];
        buffers.extend(bias);
        let what = if g.stride == 1 { format!("{name} narrow") } else { format!("{name} narrow phase {},{}", ph.ph, ph.pw) };
        launches.push(gpu.launch(what, pipeline, &params, &buffers, gpu.grid_1d((rows as u32).div_ceil(NARROW_WG)))?);
    }
    Ok(launches)
}

/// dx of a transposed convolution: the adjoint convolution's forward of dy.
pub fn conv_transpose2d_backward_input(gpu: &Gpu, g: &ConvGeom, dy: &GpuBuffer, w: &GpuBuffer, dx: &GpuBuffer) -> Result<Launch> {
    conv2d_forward(gpu, g, Act::None, dy, w, None, dx).map_err(|e| rename(e, "conv_transpose2d input gradient"))
}

/// dw of a transposed convolution: the adjoint convolution's weight gradient with dy as its
/// input and x as its output gradient.
pub fn conv_transpose2d_backward_weight(gpu: &Gpu, g: &ConvGeom, x: &GpuBuffer, dy: &GpuBuffer, dw: &GpuBuffer) -> Result<Launch> {
    conv2d_backward_weight(gpu, g, dy, x, dw).map_err(|e| rename(e, "conv_transpose2d weight gradient"))
}

fn rename(e: GpuError, what: &str) -> GpuError {
    match e {
        GpuError::Shape { kernel, detail } => GpuError::shape(&format!("{what} (as {kernel})"), detail),
        e => e,
    }
}

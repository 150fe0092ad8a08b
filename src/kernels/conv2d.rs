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

use super::matmul::{gemm, Gathered, MatmulSpec, Operand, Tile};
use crate::gpu::template::fill;
use crate::gpu::{Gpu, GpuBuffer, GpuError, Launch, Result};
use crate::types::{Act, ConvGeom, Trans};

const SOURCE: &str = include_str!("../../shaders/conv2d.wgsl");

/// The WGSL of the loaders a variant calls (`used`), with the geometry filled in, to
/// append to a matmul variant. Only those: the others read the operands as the types this
/// variant does not declare (a dense operand may be bound as vec4).
pub(crate) fn loaders_wgsl(g: &ConvGeom, used: &[&str]) -> Result<String> {
    let v = |x: usize| format!("{x}u");
    // Loaders that read through others (address helpers, scalar loaders), once each.
    let needs = |name: &str| -> &'static [&'static str] {
        match name {
            "conv_input" | "conv_input_quad" => &["conv_input_at"],
            "conv_output_grad" | "conv_output_grad_quad" => &["conv_output_grad_at"],
            "conv_input_k" => &["conv_input", "conv_input_at"],
            "conv_input_k_quad" => &["conv_input_quad", "conv_input_at"],
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
    fill(
        "conv2d",
        &text,
        &[
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
        ],
    )
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
    gemm(gpu, name, &spec, Some(Gathered { a: Operand::ConvInput, b: Operand::Dense, geom: *g }), x, w, bias, y)
}

/// dx = the gradient of Σ dy·conv(x, w) with respect to x (b×ih×iw×c_in), from dy
/// (b×oh×ow×c_out, already through the activation's backward) and w.
pub fn conv2d_backward_input(gpu: &Gpu, g: &ConvGeom, dy: &GpuBuffer, w: &GpuBuffer, dx: &GpuBuffer) -> Result<Launch> {
    let name = format!("conv2d input gradient {g}");
    check(&name, "dy", dy, g.output_len())?;
    check(&name, "w", w, g.weight_len())?;
    check(&name, "dx", dx, g.input_len())?;
    let spec = MatmulSpec::new(g.batch * g.in_h * g.in_w, g.in_c, g.k_h * g.k_w * g.out_c, Trans::NN);
    gemm(gpu, name, &spec, Some(Gathered { a: Operand::ConvOutputGrad, b: Operand::ConvWeightT, geom: *g }), dy, w, None, dx)
}

/// dw = the gradient with respect to w (kh×kw×c_in×c_out), from x and dy.
pub fn conv2d_backward_weight(gpu: &Gpu, g: &ConvGeom, x: &GpuBuffer, dy: &GpuBuffer, dw: &GpuBuffer) -> Result<Launch> {
    let name = format!("conv2d weight gradient {g}");
    check(&name, "x", x, g.input_len())?;
    check(&name, "dy", dy, g.output_len())?;
    check(&name, "dw", dw, g.weight_len())?;
    // dW = im2col(x)ᵀ·dy, with im2col(x) read as a K×M matrix through the loaders: Aᵀ·B.
    let spec = MatmulSpec::new(g.k_h * g.k_w * g.in_c, g.out_c, g.batch * g.out_h * g.out_w, Trans::TN);
    gemm(gpu, name, &spec, Some(Gathered { a: Operand::ConvInputK, b: Operand::Dense, geom: *g }), x, dy, None, dw)
}

/// y = act(conv_transpose(x, w) + bias) for the transposed convolution whose adjoint is
/// `g` (`ConvGeom::transposed`): x is b×g.out_h×g.out_w×g.out_c, y b×g.in_h×g.in_w×g.in_c,
/// w kh×kw×g.in_c×g.out_c (the adjoint convolution's weights), bias g.in_c.
pub fn conv_transpose2d_forward(gpu: &Gpu, g: &ConvGeom, act: Act, x: &GpuBuffer, w: &GpuBuffer, bias: Option<&GpuBuffer>, y: &GpuBuffer) -> Result<Launch> {
    let name = format!("conv_transpose2d {g}{} {}", if bias.is_some() { " +bias" } else { "" }, act.name());
    check(&name, "x", x, g.output_len())?;
    check(&name, "w", w, g.weight_len())?;
    check(&name, "y", y, g.input_len())?;
    if let Some(b) = bias {
        check(&name, "bias", b, g.in_c)?;
    }
    let spec = MatmulSpec::new(g.batch * g.in_h * g.in_w, g.in_c, g.k_h * g.k_w * g.out_c, Trans::NN).act(act);
    gemm(gpu, name, &spec, Some(Gathered { a: Operand::ConvOutputGrad, b: Operand::ConvWeightT, geom: *g }), x, w, bias, y)
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

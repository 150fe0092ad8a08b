//! CPU twins of the conv2d family: direct loops over NHWC tensors, in f64 — the
//! definition the implicit GEMMs are checked against.

use super::elementwise::activate;
use crate::types::{Act, ConvGeom};

/// The input pixel (b, ih, iw) that output (oh, ow) reads through tap (kh, kw), if it is
/// inside the image (else the tap falls in the zero padding).
fn source(g: &ConvGeom, oh: usize, ow: usize, kh: usize, kw: usize) -> Option<(usize, usize)> {
    let ih = (oh * g.stride + kh).checked_sub(g.pad)?;
    let iw = (ow * g.stride + kw).checked_sub(g.pad)?;
    (ih < g.in_h && iw < g.in_w).then_some((ih, iw))
}

fn x_at(g: &ConvGeom, b: usize, ih: usize, iw: usize, ci: usize) -> usize {
    ((b * g.in_h + ih) * g.in_w + iw) * g.in_c + ci
}
fn y_at(g: &ConvGeom, b: usize, oh: usize, ow: usize, co: usize) -> usize {
    ((b * g.out_h + oh) * g.out_w + ow) * g.out_c + co
}
fn w_at(g: &ConvGeom, kh: usize, kw: usize, ci: usize, co: usize) -> usize {
    ((kh * g.k_w + kw) * g.in_c + ci) * g.out_c + co
}

/// Calls `f(b, oh, ow, kh, kw, ih, iw)` for every tap that reads a real input pixel.
fn for_each_tap(g: &ConvGeom, mut f: impl FnMut(usize, usize, usize, usize, usize, usize, usize)) {
    for b in 0..g.batch {
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                for kh in 0..g.k_h {
                    for kw in 0..g.k_w {
                        if let Some((ih, iw)) = source(g, oh, ow, kh, kw) {
                            f(b, oh, ow, kh, kw, ih, iw);
                        }
                    }
                }
            }
        }
    }
}

/// y = act(conv(x, w) + bias).
pub fn conv2d_forward(g: &ConvGeom, act: Act, x: &[f64], w: &[f64], bias: Option<&[f64]>) -> Vec<f64> {
    let mut y = vec![0.0; g.output_len()];
    for_each_tap(g, |b, oh, ow, kh, kw, ih, iw| {
        for co in 0..g.out_c {
            let mut s = 0.0;
            for ci in 0..g.in_c {
                s += x[x_at(g, b, ih, iw, ci)] * w[w_at(g, kh, kw, ci, co)];
            }
            y[y_at(g, b, oh, ow, co)] += s;
        }
    });
    for (i, v) in y.iter_mut().enumerate() {
        *v = activate(act, *v + bias.map_or(0.0, |bias| bias[i % g.out_c]));
    }
    y
}

/// dx for dy (the gradient at the convolution's output, before any activation).
pub fn conv2d_backward_input(g: &ConvGeom, dy: &[f64], w: &[f64]) -> Vec<f64> {
    let mut dx = vec![0.0; g.input_len()];
    for_each_tap(g, |b, oh, ow, kh, kw, ih, iw| {
        for ci in 0..g.in_c {
            for co in 0..g.out_c {
                dx[x_at(g, b, ih, iw, ci)] += dy[y_at(g, b, oh, ow, co)] * w[w_at(g, kh, kw, ci, co)];
            }
        }
    });
    dx
}

/// dw for dy.
pub fn conv2d_backward_weight(g: &ConvGeom, x: &[f64], dy: &[f64]) -> Vec<f64> {
    let mut dw = vec![0.0; g.weight_len()];
    for_each_tap(g, |b, oh, ow, kh, kw, ih, iw| {
        for ci in 0..g.in_c {
            for co in 0..g.out_c {
                dw[w_at(g, kh, kw, ci, co)] += x[x_at(g, b, ih, iw, ci)] * dy[y_at(g, b, oh, ow, co)];
            }
        }
    });
    dw
}

/// The transposed convolution whose adjoint is `g`: y (b×g.in_h×g.in_w×g.in_c) =
/// act(convᵀ(x) + bias) for x of b×g.out_h×g.out_w×g.out_c.
pub fn conv_transpose2d_forward(g: &ConvGeom, act: Act, x: &[f64], w: &[f64], bias: Option<&[f64]>) -> Vec<f64> {
    let mut y = conv2d_backward_input(g, x, w);
    for (i, v) in y.iter_mut().enumerate() {
        *v = activate(act, *v + bias.map_or(0.0, |bias| bias[i % g.in_c]));
    }
    y
}

/// dx of the transposed convolution: the adjoint convolution applied to dy.
pub fn conv_transpose2d_backward_input(g: &ConvGeom, dy: &[f64], w: &[f64]) -> Vec<f64> {
    conv2d_forward(g, Act::None, dy, w, None)
}

/// dw of the transposed convolution.
pub fn conv_transpose2d_backward_weight(g: &ConvGeom, x: &[f64], dy: &[f64]) -> Vec<f64> {
    conv2d_backward_weight(g, dy, x)
}

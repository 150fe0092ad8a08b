// conv2d as an implicit GEMM: operand loaders appended to matmul_common.wgsl and one of
// its entry points, so that a convolution runs on the matmul's tiles, register blocks and
// epilogue (bias + activation) without an im2col buffer. The host (src/kernels/conv2d.rs)
// fills in the geometry; NHWC tensors, weights k_h×k_w×in_c×out_c.
//
//   forward         C[b·oh·ow, co] = Σ_(kh,kw,ci) im2col(x)[m, k] · w[k, co]
//   input gradient  C[b·ih·iw, ci] = Σ_(kh,kw,co) dy gathered[m, k] · wᵀ[k, ci]
//                   (also the forward of a transposed convolution)
//   weight gradient C[kh·kw·ci, co] = Σ_(b,oh,ow) im2col(x)ᵀ[m, k] · dy[k, co]  (Aᵀ·B)
//
// With a stride S > 1 only taps with (ih + pad − kh) a multiple of S reach an output, so
// the input gradient is split into S² stride phases (ih mod S, iw mod S) = (PH, PW): each a
// GEMM over that phase's pixels (M = b·MH·MW) and only its taps (kh = KH0 + S·th, th < TH;
// K = TH·TW·co), stored to every S-th row. The same nonzero products in the same order as
// the full gather, at 1/S² of its work.
//
// Every loader returns 0 past K and in the padding; rows past M are clamped by the caller
// and masked at the store.

const CV_B: u32 = $CV_B;
const CV_IH: u32 = $CV_IH;
const CV_IW: u32 = $CV_IW;
const CV_CI: u32 = $CV_CI;
const CV_OH: u32 = $CV_OH;
const CV_OW: u32 = $CV_OW;
const CV_CO: u32 = $CV_CO;
const CV_KH: u32 = $CV_KH;
const CV_KW: u32 = $CV_KW;
const CV_S: u32 = $CV_S;
const CV_P: u32 = $CV_P;
const CV_PH: u32 = $CV_PH;
const CV_PW: u32 = $CV_PW;
const CV_KH0: u32 = $CV_KH0;
const CV_KW0: u32 = $CV_KW0;
const CV_TH: u32 = $CV_TH;
const CV_TW: u32 = $CV_TW;
const CV_MH: u32 = $CV_MH;
const CV_MW: u32 = $CV_MW;

// Where im2col(x)[m, k] lives in x, or −1 in the padding and past K: m = (b, oh, ow),
// k = (kh, kw, ci).
fn conv_input_at(m: u32, k: u32) -> i32 {
    if (k >= CV_KH * CV_KW * CV_CI) {
        return -1;
    }
    let bi = m / (CV_OH * CV_OW);
    let r = m % (CV_OH * CV_OW);
    let kh = k / (CV_KW * CV_CI);
    let t = k % (CV_KW * CV_CI);
    let ih = i32((r / CV_OW) * CV_S + kh) - i32(CV_P);
    let iw = i32((r % CV_OW) * CV_S + t / CV_CI) - i32(CV_P);
    if (ih < 0 || iw < 0 || ih >= i32(CV_IH) || iw >= i32(CV_IW)) {
        return -1;
    }
    return i32(((bi * CV_IH + u32(ih)) * CV_IW + u32(iw)) * CV_CI + t % CV_CI);
}

// im2col(x)[m, k]; zero in the padding.
fn conv_input(m: u32, k: u32) -> f32 {
    let i = conv_input_at(m, k);
    if (i < 0) {
        return 0.0;
    }
    return a_at(u32(i));
}

// Four consecutive k of im2col(x) from one tap (k a multiple of 4 and c_in too): one
// address computation for four contiguous channels.
fn conv_input_quad(m: u32, k: u32) -> vec4<f32> {
    let i = conv_input_at(m, k);
    if (i < 0) {
        return vec4<f32>(0.0);
    }
    return a_quad_at(u32(i));
}

// Where the gathered dy for the input gradient lives, or −1: m = (b, ih, iw),
// k = (kh, kw, co). Only taps where (ih + pad − kh) is a multiple of the stride reach an
// output.
fn conv_output_grad_at(m: u32, k: u32) -> i32 {
    if (k >= CV_KH * CV_KW * CV_CO) {
        return -1;
    }
    let bi = m / (CV_IH * CV_IW);
    let r = m % (CV_IH * CV_IW);
    let kh = k / (CV_KW * CV_CO);
    let t = k % (CV_KW * CV_CO);
    let y = i32(r / CV_IW + CV_P) - i32(kh);
    let x = i32(r % CV_IW + CV_P) - i32(t / CV_CO);
    if (y < 0 || x < 0 || u32(y) % CV_S != 0u || u32(x) % CV_S != 0u) {
        return -1;
    }
    let oh = u32(y) / CV_S;
    let ow = u32(x) / CV_S;
    if (oh >= CV_OH || ow >= CV_OW) {
        return -1;
    }
    return i32(((bi * CV_OH + oh) * CV_OW + ow) * CV_CO + t % CV_CO);
}

// dy gathered for the input gradient; zero where no output is reached.
fn conv_output_grad(m: u32, k: u32) -> f32 {
    let i = conv_output_grad_at(m, k);
    if (i < 0) {
        return 0.0;
    }
    return a_at(u32(i));
}

// Four consecutive k of the gathered dy from one tap (c_out a multiple of 4).
fn conv_output_grad_quad(m: u32, k: u32) -> vec4<f32> {
    let i = conv_output_grad_at(m, k);
    if (i < 0) {
        return vec4<f32>(0.0);
    }
    return a_quad_at(u32(i));
}

// Where the gathered dy of stride phase (PH, PW) lives, or −1: m = (b, i, j) over the
// phase's MH×MW pixels (ih = PH + S·i, iw = PW + S·j), k = (th, tw, co) over its taps.
fn conv_output_grad_phase_at(m: u32, k: u32) -> i32 {
    if (k >= CV_TH * CV_TW * CV_CO) {
        return -1;
    }
    let bi = m / (CV_MH * CV_MW);
    let r = m % (CV_MH * CV_MW);
    let th = k / (CV_TW * CV_CO);
    let t = k % (CV_TW * CV_CO);
    // Multiples of S by the choice of KH0 and KW0.
    let y = i32(CV_PH + CV_S * (r / CV_MW) + CV_P) - i32(CV_KH0 + CV_S * th);
    let x = i32(CV_PW + CV_S * (r % CV_MW) + CV_P) - i32(CV_KW0 + CV_S * (t / CV_CO));
    if (y < 0 || x < 0) {
        return -1;
    }
    let oh = u32(y) / CV_S;
    let ow = u32(x) / CV_S;
    if (oh >= CV_OH || ow >= CV_OW) {
        return -1;
    }
    return i32(((bi * CV_OH + oh) * CV_OW + ow) * CV_CO + t % CV_CO);
}

fn conv_output_grad_phase(m: u32, k: u32) -> f32 {
    let i = conv_output_grad_phase_at(m, k);
    if (i < 0) {
        return 0.0;
    }
    return a_at(u32(i));
}

fn conv_output_grad_phase_quad(m: u32, k: u32) -> vec4<f32> {
    let i = conv_output_grad_phase_at(m, k);
    if (i < 0) {
        return vec4<f32>(0.0);
    }
    return a_quad_at(u32(i));
}

// The phase's taps of w: k = (th, tw, co), n = ci (clamped: masked at store).
fn conv_weight_t_phase(k: u32, n: u32) -> f32 {
    if (k >= CV_TH * CV_TW * CV_CO) {
        return 0.0;
    }
    let th = k / (CV_TW * CV_CO);
    let t = k % (CV_TW * CV_CO);
    let kh = CV_KH0 + CV_S * th;
    let kw = CV_KW0 + CV_S * (t / CV_CO);
    return b_at(((kh * CV_KW + kw) * CV_CI + min(n, CV_CI - 1u)) * CV_CO + t % CV_CO);
}

// The row of dx that row m of phase (PH, PW) is.
fn conv_phase_row(m: u32) -> u32 {
    let bi = m / (CV_MH * CV_MW);
    let r = m % (CV_MH * CV_MW);
    return (bi * CV_IH + CV_PH + CV_S * (r / CV_MW)) * CV_IW + CV_PW + CV_S * (r % CV_MW);
}

// w re-indexed for the input gradient: k = (kh, kw, co), n = ci (clamped: masked at store).
fn conv_weight_t(k: u32, n: u32) -> f32 {
    if (k >= CV_KH * CV_KW * CV_CO) {
        return 0.0;
    }
    return b_at(((k / CV_CO) * CV_CI + min(n, CV_CI - 1u)) * CV_CO + k % CV_CO);
}

// w as the input gradient's B stored N×K (read NT): n = ci (clamped: masked at store),
// k = (kh, kw, co), so that a quad along k (k a multiple of 4, c_out too) is four
// contiguous c_out of one tap: one load where b is bound as vec4s.
fn conv_weight_nk_at(n: u32, k: u32) -> u32 {
    return ((k / CV_CO) * CV_CI + min(n, CV_CI - 1u)) * CV_CO + k % CV_CO;
}

fn conv_weight_nk(n: u32, k: u32) -> f32 {
    if (k >= CV_KH * CV_KW * CV_CO) {
        return 0.0;
    }
    return b_at(conv_weight_nk_at(n, k));
}

fn conv_weight_nk_quad(n: u32, k: u32) -> vec4<f32> {
    if (k >= CV_KH * CV_KW * CV_CO) {
        return vec4<f32>(0.0);
    }
    return b_quad_at(conv_weight_nk_at(n, k));
}

// The same over stride phase (PH, PW)'s taps: k = (th, tw, co).
fn conv_weight_nk_phase_at(n: u32, k: u32) -> u32 {
    let th = k / (CV_TW * CV_CO);
    let t = k % (CV_TW * CV_CO);
    let kh = CV_KH0 + CV_S * th;
    let kw = CV_KW0 + CV_S * (t / CV_CO);
    return ((kh * CV_KW + kw) * CV_CI + min(n, CV_CI - 1u)) * CV_CO + t % CV_CO;
}

fn conv_weight_nk_phase(n: u32, k: u32) -> f32 {
    if (k >= CV_TH * CV_TW * CV_CO) {
        return 0.0;
    }
    return b_at(conv_weight_nk_phase_at(n, k));
}

fn conv_weight_nk_phase_quad(n: u32, k: u32) -> vec4<f32> {
    if (k >= CV_TH * CV_TW * CV_CO) {
        return vec4<f32>(0.0);
    }
    return b_quad_at(conv_weight_nk_phase_at(n, k));
}

// im2col(x) as the weight gradient's A, stored K×M (k = (b, oh, ow), m = (kh, kw, ci)) and
// read transposed, so that quads run along m — four contiguous channels of one tap. Zero
// past K (rows of the K×M matrix are not clamped: the products there must vanish).
fn conv_input_k(k: u32, m: u32) -> f32 {
    if (k >= CV_B * CV_OH * CV_OW) {
        return 0.0;
    }
    return conv_input(k, m);
}

fn conv_input_k_quad(k: u32, m: u32) -> vec4<f32> {
    if (k >= CV_B * CV_OH * CV_OW) {
        return vec4<f32>(0.0);
    }
    return conv_input_quad(k, m);
}

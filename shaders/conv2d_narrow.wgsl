// conv2d input gradient (and a transposed convolution's forward) for small c_in (≤ 16): the
// image side of a model, where the implicit GEMM's N is 1 to 16 and most of a matmul
// tile's columns idle while it gathers dy one quad at a time.
//
// One invocation per pixel of one stride phase (PH, PW) (see conv2d.wgsl: pixels
// ih = PH + S·i, iw = PW + S·j, taps kh = KH0 + S·th, kw = KW0 + S·tw); it walks the
// phase's taps, finds dy's pixel once per tap, and runs along that pixel's c_out contiguous
// channels with one scalar accumulator per c_in output. The taps and channels are written out
// unrolled by the wrapper (up to a size; conv2d.rs, `narrow_taps`), and no invocation returns
// early: lavapipe runs a load inside any loop or branch as a per-lane scalar loop, which made
// this kernel twice as slow. (Vec4 accumulators, as before, also loaded each weight four
// times where c_in = 1.) The products are the GEMM's, in
// the GEMM's order k = (th, tw, co), as the same chain of FMAs from 0 (a tap that reaches
// no output contributes zeros, as the GEMM's loader returns): the two paths give the same
// bits (kernels-tests/conv2d.rs checks it).
//
// dx[b, ih, iw, ci] = act(Σ_(th,tw,co) dy[b, oh, ow, co] · w[kh, kw, ci, co] + bias[ci])

struct Params {
    rows: u32, // b·MH·MW: the phase's pixels
    alpha: f32, // LeakyReLU slope
}

@group(0) @binding(0) var<uniform> p: Params;
// f32, or vec4<f32> where c_out is a multiple of 4 (a tap's channels then load as quads).
@group(0) @binding(1) var<storage, read> dy: array<$CV_ELEM>;
@group(0) @binding(2) var<storage, read> w: array<$CV_ELEM>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
$BIAS_DECL

const WG: u32 = $WGu;
const IH: u32 = $CV_IH;
const IW: u32 = $CV_IW;
const CI: u32 = $CV_CI;
const OH: u32 = $CV_OH;
const OW: u32 = $CV_OW;
const CO: u32 = $CV_CO;
const KW: u32 = $CV_KW;
const S: u32 = $CV_S;
const P: u32 = $CV_P;
const PH: u32 = $CV_PH;
const PW: u32 = $CV_PW;
const KH0: u32 = $CV_KH0;
const KW0: u32 = $CV_KW0;
const TH: u32 = $CV_TH;
const TW: u32 = $CV_TW;
const MH: u32 = $CV_MH;
const MW: u32 = $CV_MW;

fn activate(x: f32) -> f32 {
    $ACT
}

@compute @workgroup_size($WG)
fn conv2d_narrow(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    // No early return: past the last pixel an invocation computes the last pixel again and
    // does not store (see the header).
    let m_raw = gid.x + gid.y * nwg.x * WG;
    let m = min(m_raw, p.rows - 1u);
    let bi = m / (MH * MW);
    let r = m % (MH * MW);
    let ih = PH + S * (r / MW);
    let iw = PW + S * (r % MW);
    // Output ci in acc_ci.
$CV_ACC
    // The phase's taps (th, tw), unrolled or in a loop: kh = KH0 + S·th, kw = KW0 + S·tw, so that
    // ih + P − kh and iw + P − kw are multiples of S. Per tap, along its channels
    // co = 0, 1, …: acc_ci += dy[a0 + co]·w[w0 + ci·CO + co].
$CV_TAPS
    let row = (bi * IH + ih) * IW + iw;
    if (m_raw < p.rows) {
$CV_STORE
    }
}

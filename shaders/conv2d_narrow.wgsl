// conv2d input gradient (and a transposed convolution's forward) for small c_in (≤ 16): the
// image side of a model, where the implicit GEMM's N is 1 to 16 and most of a matmul
// tile's columns idle while it gathers dy one quad at a time.
//
// One invocation per pixel of one stride phase (PH, PW) (see conv2d.wgsl: pixels
// ih = PH + S·i, iw = PW + S·j, taps kh = KH0 + S·th, kw = KW0 + S·tw); it walks the
// phase's taps, finds dy's pixel once per tap, and runs along that pixel's c_out contiguous
// channels with all c_in outputs in vec4 accumulators. The products are the GEMM's, in
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

// Vec4 accumulators per pixel: ⌈c_in / 4⌉.
const NQ: u32 = (CI + 3u) / 4u;

// Where output column j's weights start in a tap's c_in × c_out block: columns past c_in
// read c_in − 1's (finite, never stored).
fn col(j: u32) -> u32 {
    return min(j, CI - 1u) * CO;
}

fn activate(x: f32) -> f32 {
    $ACT
}

@compute @workgroup_size($WG)
fn conv2d_narrow(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let m = gid.x + gid.y * nwg.x * WG;
    if (m >= p.rows) {
        return;
    }
    let bi = m / (MH * MW);
    let r = m % (MH * MW);
    let ih = PH + S * (r / MW);
    let iw = PW + S * (r % MW);
    // Outputs ci = 4q … 4q + 3 in acc[q].
    var acc: array<vec4<f32>, NQ>;
    for (var q = 0u; q < NQ; q++) {
        acc[q] = vec4<f32>(0.0);
    }
    for (var th = 0u; th < TH; th++) {
        let kh = KH0 + S * th;
        // Multiples of S by the choice of KH0 and KW0.
        let y = i32(ih + P) - i32(kh);
        for (var tw = 0u; tw < TW; tw++) {
            let kw = KW0 + S * tw;
            let x = i32(iw + P) - i32(kw);
            let oh = u32(max(y, 0)) / S;
            let ow = u32(max(x, 0)) / S;
            let reached = y >= 0 && x >= 0 && oh < OH && ow < OW;
            let a0 = ((bi * OH + min(oh, OH - 1u)) * OW + min(ow, OW - 1u)) * CO;
            let w0 = (kh * KW + kw) * CI * CO;
            // Along the tap's channels co = 0, 1, …: acc += dy[a0 + co]·w[w0 + ci·CO + co].
$CV_CHANNELS
        }
    }
    let row = (bi * IH + ih) * IW + iw;
    for (var j = 0u; j < CI; j++) {
        dx[row * CI + j] = activate(acc[j / 4u][j % 4u]$BIAS_ADD);
    }
}

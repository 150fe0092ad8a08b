// matmul: C[M,N] = act(op(A)·op(B) + bias), op = identity or transpose, row-major storage.
//
// Each invocation owns a TM×TN block of C held in registers (TM rows × TN/4 vec4
// accumulators) and walks K four at a time: per step it loads a TM×4 tile of op(A) and a
// 4×TN tile of op(B) as vec4s along whichever dimension is contiguous in memory,
// transposing in registers where needed, then does TM·TN·4 FMAs. No workgroup memory and
// no barriers: on CPU-like adapters (lavapipe) invocations are SIMD lanes and barriers are
// expensive; on discrete GPUs neighbouring invocations share A and B rows through L1.
// A tail loop handles K % 4; edge rows and columns are clamped on load and masked on store,
// so any M, N, K ≥ 1 works.
//
// The block body is unrolled by the host (src/kernels/matmul.rs) into the $-markers below
// so that every accumulator is a named register on every driver.

$ENABLE
struct Params {
    m: u32,
    n: u32,
    k: u32,
    alpha: f32, // LeakyReLU slope
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<$A_ELEM>;
@group(0) @binding(2) var<storage, read> b: array<$B_ELEM>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
$BIAS_DECL

// Four consecutive elements (row, col..col+3) of a row-major `rows`×`cols` matrix;
// col is a multiple of 4. Rows and columns are clamped into range: loads at edges read
// real data whose products are masked when storing.
fn a_quad(row: u32, col: u32, rows: u32, cols: u32) -> vec4<f32> {
    $A_QUAD
}
fn b_quad(row: u32, col: u32, rows: u32, cols: u32) -> vec4<f32> {
    $B_QUAD
}
// One element (row, col), row clamped; col is always in range.
fn a_one(row: u32, col: u32, rows: u32, cols: u32) -> f32 {
    $A_ONE
}
fn b_one(row: u32, col: u32, rows: u32, cols: u32) -> f32 {
    $B_ONE
}

fn activate(x: f32) -> f32 {
    $ACT
}

fn store(row: u32, col: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let cj = col + j;
        if (cj < p.n) {
            c[row * p.n + cj] = activate(v[j]$BIAS_ADD);
        }
    }
}

@compute @workgroup_size($WG_X, $WG_Y, 1)
fn matmul(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * $TMu;
    let col0 = gid.x * $TNu;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
$DECLARE
    let k4 = p.k & ~3u;
    for (var k = 0u; k < k4; k += 4u) {
$STEP4
    }
    for (var k = k4; k < p.k; k += 1u) {
$STEP1
    }
$STORE
}

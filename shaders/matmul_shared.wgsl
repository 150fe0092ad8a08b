// Workgroup-memory matmul for GPUs (appended to matmul_common.wgsl).
//
// A workgroup of WX×WY invocations computes a BM×BN tile of C (BM = WY·TM, BN = WX·TN).
// K is walked $BK at a time: the invocations copy a BM×$BK slice of op(A) and a $BK×BN slice
// of op(B) into workgroup memory with vec4 loads (each global element read once per tile
// instead of once per invocation that needs it), wait at a barrier, and each then runs
// $BK steps of its TM×TN register block reading vec4s from workgroup memory. Both slices
// are stored k-major so the inner loop reads a contiguous vec4 of rows and of columns.
// Elements past K are stored as zeros (fma(0, 0, acc) = acc: the FMA chain over k is the
// other variants'); edge rows and columns are clamped on load and masked on store. No
// invocation returns early: every one must reach every barrier.

var<workgroup> tile_a: array<vec4<f32>, $QA>; // [kk][m / 4] of the BM×BK slice, k-major
var<workgroup> tile_b: array<vec4<f32>, $QB>; // [kk][n / 4] of the BK×BN slice

// A quad along k starting at k, with elements at or past K zeroed.
fn zero_past_k(v: vec4<f32>, k: u32) -> vec4<f32> {
    return select(v, vec4<f32>(0.0), vec4<u32>(k) + vec4<u32>(0u, 1u, 2u, 3u) >= vec4<u32>(p.k));
}

@compute @workgroup_size($WG_X, $WG_Y, 1)
fn matmul(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let row0 = wg.y * $BMu;
    let col0 = wg.x * $BNu;
$DECLARE
    for (var k0 = 0u; k0 < p.k; k0 += $BKu) {
$LOAD
        workgroupBarrier();
        for (var kk = 0u; kk < $BKu; kk += 1u) {
$INNER
        }
        workgroupBarrier();
    }
$STORE
}

// Register-blocked matmul (appended to matmul_common.wgsl).
//
// Each invocation owns a TM×TN block of C held in registers (TM rows × TN/4 vec4
// accumulators) and walks K four at a time: per step it loads a TM×4 tile of op(A) and a
// 4×TN tile of op(B) as vec4s along whichever dimension is contiguous in memory,
// transposing in registers where needed, then does TM·TN·4 FMAs. No workgroup memory and
// no barriers. A tail loop handles K % 4; edge rows and columns are clamped on load and
// masked on store, so any M, N, K ≥ 1 works.

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

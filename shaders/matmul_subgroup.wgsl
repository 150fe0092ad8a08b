// Subgroup-broadcast matmul for CPU-like adapters (appended to matmul_common.wgsl).
//
// On lavapipe a subgroup is the 8 SIMD lanes of one core, and a load whose address differs
// between lanes compiles into a loop over the lanes: loads, not FMAs, bound the register
// kernel there. Here a workgroup is exactly one subgroup of $LANES lanes: WG_X across the
// columns times WG_Y groups of TM rows (WG_Y = 1 but for narrow products, where lanes laid
// across N alone would compute masked columns). Lane l = (lx, ly) owns rows row0 + ly·TM …
// and the vec4 columns col0 + 4·lx + 4·WG_X·q. Per step of four k the lanes load the
// workgroup's rows' A values together — one vec4 per lane per $LANES rows — and hand them
// round with subgroupBroadcast (a register shuffle), so A costs $LANES× fewer loads than
// when every lane loads every row, and each B quad a lane loads serves all TM rows.
// All lanes run every iteration (broadcast needs the whole subgroup): edge rows and columns
// are clamped on load and masked on store, as in the register kernel.

@compute @workgroup_size($LANES, 1, 1)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let lx = lane % $WG_Xu;
    let ly = lane / $WG_Xu;
    let rows0 = wg.y * $BMu; // the workgroup's first row
    let row0 = rows0 + ly * $TMu; // the lane's
    let col0 = wg.x * $SPANu + 4u * lx;
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

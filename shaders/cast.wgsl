// to_f16: dst = f16(src), round to nearest even; values beyond ±65504 become ±inf (the
// mixed-precision step scales its loss so that gradients sit well inside f16's range).
// One invocation per element; the grid may be split over y as in elementwise.wgsl.
enable f16;

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f16>;

@compute @workgroup_size($WG)
fn to_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * $WGu;
    if (i < p.n) { dst[i] = f16(src[i]); }
}

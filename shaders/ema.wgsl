// An exponential moving average of a parameter buffer (Polyak averaging of the weights,
// as in Yazici et al. 2019 for GANs): after each update of the group,
//
//   avg ← avg + (1 − d)·(param − avg)
//
// written as a lerp so that avg stays exactly avg when param equals it (no drift from
// rounding d·avg + (1 − d)·param). The decay d of this update comes from the host (it
// warms up over the first updates; see `kernels::ema::decay_at`).
struct Params {
    n: u32,
    decay: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> param: array<f32>;
@group(0) @binding(2) var<storage, read_write> avg: array<f32>;

@compute @workgroup_size($WG)
fn ema(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * $WGu;
    if (i >= p.n) { return; }
    let a = avg[i];
    avg[i] = a + (1.0 - p.decay) * (param[i] - a);
}

// losses, backward: d/d(prediction) of  L = scale · Σ term(a[i], b[i]),  times the upstream
// gradient dloss[0] (a one-element buffer, so that loss weights set in the graph need no
// recompilation). The forwards are reductions over the same terms (reduce.wgsl).

struct Params {
    n: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;       // prediction (p, logits, features)
@group(0) @binding(2) var<storage, read> b: array<f32>;       // target
@group(0) @binding(3) var<storage, read> dloss: array<f32>;   // upstream gradient, 1 element
@group(0) @binding(4) var<storage, read_write> da: array<f32>;
@group(0) @binding(5) var<storage, read_write> db: array<f32>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

@compute @workgroup_size(256)
fn bce_prob_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { da[i] = dloss[0] * p.scale * grad_bce_prob(a[i], b[i]); }
}

@compute @workgroup_size(256)
fn bce_logits_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { da[i] = dloss[0] * p.scale * grad_bce_logits(a[i], b[i]); }
}

// Both sides of the squared error get a gradient: db = −da.
@compute @workgroup_size(256)
fn sq_err_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) {
        let g = dloss[0] * p.scale * grad_sq_err(a[i], b[i]);
        da[i] = g;
        db[i] = -g;
    }
}

// RMSProp (Tieleman & Hinton 2012) over a flat parameter buffer: one dispatch updates a
// whole parameter group, as Larsen et al. train their VAE-GAN.
//
//   g ← s·grad + λ·p   (s = 1/S undoes a loss scale; λ: L2 weight decay added to the
//                       gradient, as PyTorch's RMSprop and the authors' deeppy do)
//   v ← ρv + (1−ρ)g²
//   p ← p − lr·g / (√v + ε)

struct Params {
    n: u32,
    lr: f32,
    rho: f32,
    eps: f32,
    weight_decay: f32,
    grad_scale: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;

@compute @workgroup_size($WG)
fn rmsprop(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * $WGu;
    if (i >= p.n) { return; }
    let w = param[i];
    let g = grad[i] * p.grad_scale + p.weight_decay * w;
    let vi = p.rho * v[i] + (1.0 - p.rho) * g * g;
    v[i] = vi;
    param[i] = w - p.lr * g / (sqrt(vi) + p.eps);
}

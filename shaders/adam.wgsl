// Adam (Kingma & Ba 2015) with bias correction and optional decoupled weight decay
// (AdamW, Loshchilov & Hutter 2019), over a flat parameter buffer: one dispatch updates a
// whole parameter group.
//
//   g ← s·grad (s = 1/S undoes a loss scale S: the f16 step's gradients are S× the loss's)
//   m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
//   p ← p − lr·( m/(1−β₁ᵗ) / (sqrt(v/(1−β₂ᵗ)) + ε) + λ·p )

// The bias corrections 1 − βᵗ come from the host, computed in f64: in f32, pow(0.999, t)
// then 1 − (·) loses three digits to cancellation at small t.
struct Params {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bc1: f32, // 1 − β₁ᵗ
    bc2: f32, // 1 − β₂ᵗ
    grad_scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size($WG)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * $WGu;
    if (i >= p.n) { return; }
    let g = grad[i] * p.grad_scale;
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let update = (mi / p.bc1) / (sqrt(vi / p.bc2) + p.eps) + p.weight_decay * param[i];
    param[i] = param[i] - p.lr * update;
}

// elementwise: activations forward and backward, add, axpy, scale, fill, copy.
// One invocation per element of V: f32, or vec4<f32> where every operand's length (and a
// copy's offsets) are multiples of 4 — one vec4 load moves four floats for about the cost
// of one scalar load on a CPU adapter (BENCHMARKS.md, "Channel quads as vec4 loads"). The
// grid may be split over y when n needs more than the adapter's workgroups per dimension,
// so the index is rebuilt from both.
//
// Backward conventions (what each backward reads): tanh and sigmoid read the forward
// output y; ReLU and LeakyReLU (α > 0) test the sign, which x and y share, so they take
// either. A layer keeps only y.

alias V = $V;

struct Params {
    n: u32, // in V's
    alpha: f32, // LeakyReLU slope, or the scale factor
    value: f32, // fill value
    src_offset: u32, // copy: first element read
    dst_offset: u32, // copy: first element written
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding($SLOT_X) var<storage, read> x: array<V>;
@group(0) @binding($SLOT_DY) var<storage, read> dy: array<V>;
@group(0) @binding($SLOT_OUT) var<storage, read_write> out: array<V>;

const WG: u32 = $WGu;

// activations.wgsl's functions applied to every lane of V (written by elementwise.rs).
$LANEWISE

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size($WG)
fn relu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { out[i] = relu_f(x[i]); }
}

// dx = dy · [x > 0]
@compute @workgroup_size($WG)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { out[i] = relu_b(x[i], dy[i]); }
}

@compute @workgroup_size($WG)
fn leaky_relu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { out[i] = leaky_relu_f(x[i]); }
}

// dx = dy · (x > 0 ? 1 : α)
@compute @workgroup_size($WG)
fn leaky_relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { out[i] = leaky_relu_b(x[i], dy[i]); }
}

@compute @workgroup_size($WG)
fn tanh_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { out[i] = tanh_f(x[i]); }
}

// x holds y = tanh(input): dx = dy · (1 − y²)
@compute @workgroup_size($WG)
fn tanh_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { out[i] = tanh_b(x[i], dy[i]); }
}

@compute @workgroup_size($WG)
fn sigmoid_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { out[i] = sigmoid_f(x[i]); }
}

// x holds y = σ(input): dx = dy · y · (1 − y)
@compute @workgroup_size($WG)
fn sigmoid_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { out[i] = sigmoid_b(x[i], dy[i]); }
}

// out = x + dy (the second operand reuses the dy binding)
@compute @workgroup_size($WG)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { out[i] = x[i] + dy[i]; }
}

// out = alpha · x
@compute @workgroup_size($WG)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { out[i] = p.alpha * x[i]; }
}

// out = value
@compute @workgroup_size($WG)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { out[i] = V(p.value); }
}

// out = x + alpha · dy (weighted sums of losses; the second operand reuses the dy binding)
@compute @workgroup_size($WG)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { out[i] = x[i] + p.alpha * dy[i]; }
}

// out[dst_offset + i] = x[src_offset + i] for i < n (in V's): concatenation and slicing of
// row blocks.
@compute @workgroup_size($WG)
fn copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { out[p.dst_offset + i] = x[p.src_offset + i]; }
}

// data: gather a batch from the GPU-resident data set. Images are u8, packed four to a
// u32 word; perm is this epoch's permutation of image indices; out[b, j] is pixel j of
// image perm[start + b], scaled to the model's range (or binarised first).

struct Params {
    batch: u32,
    dim: u32,
    start: u32,
    binarize: u32,
    scale: f32,
    offset: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> data: array<u32>;
@group(0) @binding(2) var<storage, read> perm: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn byte_at(i: u32) -> u32 {
    return (data[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

@compute @workgroup_size($WG)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * $WGu;
    if (i >= p.batch * p.dim) { return; }
    let b = i / p.dim;
    let j = i % p.dim;
    var v = f32(byte_at(perm[p.start + b] * p.dim + j));
    if (p.binarize != 0u) {
        v = select(0.0, 255.0, v > 127.0);
    }
    out[i] = v * p.scale + p.offset;
}

// One-hot labels of the same batch: out[b, c] = 1 where label[perm[start + b]] = c (labels
// stored one per u32 in `data`, p.dim = the number of classes).
@compute @workgroup_size($WG)
fn gather_labels(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * $WGu;
    if (i >= p.batch * p.dim) { return; }
    let b = i / p.dim;
    let c = i % p.dim;
    out[i] = select(0.0, 1.0, data[perm[p.start + b]] == c);
}

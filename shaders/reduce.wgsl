// reduce: sums of many elements, in a fixed order so that results are bit-reproducible.
//
// reduce_partial: workgroup g sums term(i) over its chunk [g·chunk, (g+1)·chunk) — each
// invocation a strided slice, then a tree in workgroup memory — and writes scale · sum to
// out[g]. A long input takes two launches: chunks to partials, then one workgroup over the
// partials. term(i) is a plain element or a loss term (loss_terms.wgsl), so each loss's
// forward is this same reduction.
//
// column_sum / row_sum: one invocation per output, looping over the other axis (bias
// gradients are column sums of dY; per-sample losses are row sums).

struct Params {
    n: u32,     // elements (reduce_partial) or rows (axis sums)
    chunk: u32, // elements per workgroup (reduce_partial) or columns (axis sums)
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding($SLOT_A) var<storage, read> a: array<f32>;
@group(0) @binding($SLOT_B) var<storage, read> b: array<f32>;
@group(0) @binding($SLOT_OUT) var<storage, read_write> out: array<f32>;

const WG: u32 = $WGu;
var<workgroup> partial: array<f32, WG>;

fn term(i: u32) -> f32 {
    return $TERM;
}

@compute @workgroup_size($WG)
fn reduce_partial(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = wid.x + wid.y * nwg.x;
    let start = group * p.chunk;
    let end = min(start + p.chunk, p.n);
    var s = 0.0;
    for (var i = start + lid.x; i < end; i += WG) {
        s += term(i);
    }
    partial[lid.x] = s;
    workgroupBarrier();
    for (var width = WG / 2u; width > 0u; width >>= 1u) {
        if (lid.x < width) {
            partial[lid.x] += partial[lid.x + width];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u && start < p.n) {
        out[group] = p.scale * partial[0];
    }
}

// out[c] = scale · Σ_r a[r, c]   (p.n rows, p.chunk columns)
@compute @workgroup_size($WG_ROWS)
fn column_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = gid.x + gid.y * nwg.x * $WG_ROWSu;
    if (c >= p.chunk) { return; }
    var s = 0.0;
    for (var r = 0u; r < p.n; r++) {
        s += a[r * p.chunk + c];
    }
    out[c] = p.scale * s;
}

// out[r] = scale · Σ_c a[r, c]
@compute @workgroup_size($WG_ROWS)
fn row_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * $WG_ROWSu;
    if (r >= p.n) { return; }
    var s = 0.0;
    let base = r * p.chunk;
    for (var c = 0u; c < p.chunk; c++) {
        s += a[base + c];
    }
    out[r] = p.scale * s;
}

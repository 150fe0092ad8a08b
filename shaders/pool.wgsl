// pool: the maximum of each channel over an image's positions (global max pooling), and
// its backward. Images are NHWC rows: row r holds positions × channels values, position p's
// channel c at column p·channels + c.
//
// position_max: one invocation per (row, channel), scanning the positions in order; the
// first position holding the maximum wins ties, as in the backward and the CPU twin.
// position_max_backward: the same scan finds that position again; the invocation writes its
// whole column of dx — dy there, 0 elsewhere — so no two invocations write one element.

struct Params {
    rows: u32,
    positions: u32,
    channels: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding($SLOT_X) var<storage, read> x: array<f32>;
@group(0) @binding($SLOT_Y) var<storage, read_write> y: array<f32>;
@group(0) @binding($SLOT_DY) var<storage, read> dy: array<f32>;
@group(0) @binding($SLOT_DX) var<storage, read_write> dx: array<f32>;

// The first position of the maximum of channel c in row r.
fn argmax(r: u32, c: u32) -> u32 {
    let base = r * p.positions * p.channels + c;
    var best = x[base];
    var at = 0u;
    for (var q = 1u; q < p.positions; q++) {
        let v = x[base + q * p.channels];
        if (v > best) {
            best = v;
            at = q;
        }
    }
    return at;
}

@compute @workgroup_size($WG)
fn position_max(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * $WGu;
    if (i >= p.rows * p.channels) { return; }
    let r = i / p.channels;
    let c = i % p.channels;
    y[i] = x[r * p.positions * p.channels + argmax(r, c) * p.channels + c];
}

@compute @workgroup_size($WG)
fn position_max_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * $WGu;
    if (i >= p.rows * p.channels) { return; }
    let r = i / p.channels;
    let c = i % p.channels;
    let at = argmax(r, c);
    let base = r * p.positions * p.channels + c;
    for (var q = 0u; q < p.positions; q++) {
        dx[base + q * p.channels] = select(0.0, dy[i], q == at);
    }
}

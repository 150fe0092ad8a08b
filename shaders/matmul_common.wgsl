// matmul: C[M,N] = act(op(A)·op(B) + bias), op = identity or transpose, row-major storage.
//
// What every matmul variant shares: parameters, bindings, operand loaders and the
// epilogue. The host (src/kernels/matmul.rs) appends one entry point — matmul_register,
// matmul_subgroup or matmul_shared — and unrolls its register block into the template markers.
// Every variant computes each output as the same chain of FMAs over k = 0, 1, …, K−1
// followed by bias and activation, so all give the same bits.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    alpha: f32, // LeakyReLU slope
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<$A_ELEM>;
@group(0) @binding(2) var<storage, read> b: array<$B_ELEM>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
$BIAS_DECL

// Four consecutive elements (row, col..col+3) of a row-major `rows`×`cols` matrix;
// col is a multiple of 4. Rows and columns are clamped into range: loads at edges read
// real data whose products are masked when storing.
fn a_quad(row: u32, col: u32, rows: u32, cols: u32) -> vec4<f32> {
    $A_QUAD
}
fn b_quad(row: u32, col: u32, rows: u32, cols: u32) -> vec4<f32> {
    $B_QUAD
}
// Element i of a (b), and the four from i (a multiple of 4), as f32: the convolution
// loaders read through these, so that an operand bound as vec4s is read a quad at a time.
fn a_at(i: u32) -> f32 {
    $A_AT
}
fn a_quad_at(i: u32) -> vec4<f32> {
    $A_QUAD_AT
}
fn b_at(i: u32) -> f32 {
    $B_AT
}
fn b_quad_at(i: u32) -> vec4<f32> {
    $B_QUAD_AT
}
// One element (row, col), row clamped; col is always in range.
fn a_one(row: u32, col: u32, rows: u32, cols: u32) -> f32 {
    $A_ONE
}
fn b_one(row: u32, col: u32, rows: u32, cols: u32) -> f32 {
    $B_ONE
}

fn activate(x: f32) -> f32 {
    $ACT
}

// Row `row` of C is stored at row $C_ROW of c: itself, except for a stride phase of a
// convolution's input gradient, whose rows are every stride-th pixel.
fn store(row: u32, col: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let cj = col + j;
        if (cj < p.n) {
            c[$C_ROW * p.n + cj] = activate(v[j]$BIAS_ADD);
        }
    }
}


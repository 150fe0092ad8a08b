//! elementwise: activations forward and backward, add, axpy, scale, fill, copy.

use crate::gpu::template;
use crate::gpu::{Gpu, GpuBuffer, Launch, Result};

use super::ACTIVATIONS_WGSL;
use crate::types::Act;

const SOURCE: &str = include_str!("../../shaders/elementwise.wgsl");
const FAMILY: &str = "elementwise";
/// Invocations per workgroup: named here once and filled into the WGSL (`$WG`).
const WG: u32 = 256;

/// Binding slots of the family's storage buffers (0 is the uniform block), named once:
/// the WGSL's `@binding($SLOT_…)` markers are filled from here.
mod slot {
    pub const X: u32 = 1;
    pub const DY: u32 = 2;
    pub const OUT: u32 = 3;
}

fn slot_values() -> Vec<(&'static str, String)> {
    [("SLOT_X", slot::X), ("SLOT_DY", slot::DY), ("SLOT_OUT", slot::OUT)].iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// The family's WGSL (after the shared activations) with its workgroup size and element
/// type filled in: `vec4` binds every operand as vec4s (lengths multiples of 4).
fn source(vec4: bool) -> Result<String> {
    let values = [vec![("WG", WG.to_string()), ("V", if vec4 { "vec4<f32>" } else { "f32" }.to_string()), ("LANEWISE", lanewise(vec4))], slot_values()];
    Ok(format!("{ACTIVATIONS_WGSL}\n{}", template::fill(FAMILY, SOURCE, &values.concat())?))
}

/// The WGSL of `relu_f(v: V) -> V`, `relu_b(v: V, d: V) -> V` and so on: each activation
/// (forward) and its backward applied to every lane of V.
fn lanewise(vec4: bool) -> String {
    let lanes: &[&str] = if vec4 { &[".x", ".y", ".z", ".w"] } else { &[""] };
    let apply = |call: &dyn Fn(&str) -> String| {
        let each: Vec<String> = lanes.iter().map(|l| call(l)).collect();
        if vec4 {
            format!("vec4<f32>({})", each.join(", "))
        } else {
            each[0].clone()
        }
    };
    let mut out = String::new();
    for (name, f, alpha) in [("relu", "act_relu", ""), ("leaky_relu", "act_leaky_relu", ", p.alpha"), ("tanh", "act_tanh", ""), ("sigmoid", "act_sigmoid", "")]
    {
        let forward = apply(&|l| format!("{f}(v{l}{alpha})"));
        let backward = apply(&|l| format!("{f}_backward(v{l}, d{l}{alpha})"));
        out.push_str(&format!("fn {name}_f(v: V) -> V {{\n    return {forward};\n}}\nfn {name}_b(v: V, d: V) -> V {{\n    return {backward};\n}}\n"));
    }
    out
}

/// Four elements an invocation where every length and offset allows it.
fn vec4_fits(counts: &[usize]) -> bool {
    counts.iter().all(|c| c.is_multiple_of(4))
}

fn pipeline(gpu: &Gpu, entry: &str, vec4: bool) -> Result<std::sync::Arc<wgpu::ComputePipeline>> {
    let key = format!("elementwise/{entry}{}", if vec4 { "/vec4" } else { "" });
    gpu.pipeline(&key, || source(vec4), entry)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    alpha: f32,
    value: f32,
    src_offset: u32,
    dst_offset: u32,
    _pad: [u32; 3],
}

fn prepare(gpu: &Gpu, entry: &str, alpha: f32, value: f32, inputs: &[&GpuBuffer], out: &GpuBuffer) -> Result<Launch> {
    let name = format!("{entry} n={}", out.len);
    let n = super::nonempty(&name, out.len)?;
    for (i, b) in inputs.iter().chain([&out]).enumerate() {
        super::expect_f32(&name, &format!("operand {i}"), b)?;
        super::expect_len(&name, &format!("operand {i}"), b, out.len)?;
    }
    let vec4 = vec4_fits(&[out.len]);
    let pipeline = pipeline(gpu, entry, vec4)?;
    let mut buffers: Vec<&GpuBuffer> = inputs.to_vec();
    buffers.push(out);
    // Bindings are numbered x=1, dy=2, out=3; an entry that uses only x and out gets a
    // layout without 2, so its buffers bind to 1 and 3.
    let per = if vec4 { 4 } else { 1 };
    let params = Params { n: n / per, alpha, value, src_offset: 0, dst_offset: 0, _pad: [0; 3] };
    let groups = gpu.grid_1d((n / per).div_ceil(WG));
    gpu.launch_at(name, pipeline, &params, &binding_slots(inputs.len(), &buffers), groups)
}

fn binding_slots<'a>(inputs: usize, buffers: &[&'a GpuBuffer]) -> Vec<(u32, &'a GpuBuffer)> {
    match inputs {
        0 => vec![(slot::OUT, buffers[0])],
        1 => vec![(slot::X, buffers[0]), (slot::OUT, buffers[1])],
        _ => vec![(slot::X, buffers[0]), (slot::DY, buffers[1]), (slot::OUT, buffers[2])],
    }
}

/// y = act(x).
pub fn activation_forward(gpu: &Gpu, act: Act, x: &GpuBuffer, y: &GpuBuffer) -> Result<Launch> {
    match act {
        Act::None => scale(gpu, 1.0, x, y),
        Act::Relu => prepare(gpu, "relu_forward", 0.0, 0.0, &[x], y),
        Act::LeakyRelu(a) => prepare(gpu, "leaky_relu_forward", a, 0.0, &[x], y),
        Act::Tanh => prepare(gpu, "tanh_forward", 0.0, 0.0, &[x], y),
        Act::Sigmoid => prepare(gpu, "sigmoid_forward", 0.0, 0.0, &[x], y),
    }
}

/// dx = dy · act'(·). `saved` is the forward output y; for ReLU/LeakyReLU (α > 0) the
/// input x works too, as only its sign is read (see `Act::backward_reads_output`).
pub fn activation_backward(gpu: &Gpu, act: Act, saved: &GpuBuffer, dy: &GpuBuffer, dx: &GpuBuffer) -> Result<Launch> {
    match act {
        Act::None => scale(gpu, 1.0, dy, dx),
        Act::Relu => prepare(gpu, "relu_backward", 0.0, 0.0, &[saved, dy], dx),
        Act::LeakyRelu(a) => prepare(gpu, "leaky_relu_backward", a, 0.0, &[saved, dy], dx),
        Act::Tanh => prepare(gpu, "tanh_backward", 0.0, 0.0, &[saved, dy], dx),
        Act::Sigmoid => prepare(gpu, "sigmoid_backward", 0.0, 0.0, &[saved, dy], dx),
    }
}

/// out = a + b.
pub fn add(gpu: &Gpu, a: &GpuBuffer, b: &GpuBuffer, out: &GpuBuffer) -> Result<Launch> {
    prepare(gpu, "add", 0.0, 0.0, &[a, b], out)
}

/// out = x + alpha · y.
pub fn axpy(gpu: &Gpu, x: &GpuBuffer, alpha: f32, y: &GpuBuffer, out: &GpuBuffer) -> Result<Launch> {
    prepare(gpu, "axpy", alpha, 0.0, &[x, y], out)
}

/// out[dst_offset..dst_offset + n] = x[src_offset..src_offset + n].
pub fn copy(gpu: &Gpu, x: &GpuBuffer, src_offset: usize, out: &GpuBuffer, dst_offset: usize, n: usize) -> Result<Launch> {
    let name = format!("copy n={n} from {}+{src_offset} to {}+{dst_offset}", x.len, out.len);
    let n32 = super::nonempty(&name, n)?;
    super::expect_f32(&name, "source", x)?;
    super::expect_f32(&name, "destination", out)?;
    if src_offset + n > x.len || dst_offset + n > out.len {
        return Err(crate::gpu::GpuError::shape(&name, "range out of bounds"));
    }
    // Whole vec4s where the range and both buffers split into them.
    let vec4 = vec4_fits(&[n, src_offset, dst_offset, x.len, out.len]);
    let per = if vec4 { 4 } else { 1 };
    let pipeline = pipeline(gpu, "copy", vec4)?;
    let params = Params {
        n: n32 / per,
        alpha: 0.0,
        value: 0.0,
        src_offset: (src_offset / per as usize) as u32,
        dst_offset: (dst_offset / per as usize) as u32,
        _pad: [0; 3],
    };
    gpu.launch_at(name, pipeline, &params, &[(slot::X, x), (slot::OUT, out)], gpu.grid_1d((n32 / per).div_ceil(WG)))
}

/// out = alpha · x.
pub fn scale(gpu: &Gpu, alpha: f32, x: &GpuBuffer, out: &GpuBuffer) -> Result<Launch> {
    prepare(gpu, "scale", alpha, 0.0, &[x], out)
}

/// out = value everywhere.
pub fn fill(gpu: &Gpu, value: f32, out: &GpuBuffer) -> Result<Launch> {
    prepare(gpu, "fill", 0.0, value, &[], out)
}

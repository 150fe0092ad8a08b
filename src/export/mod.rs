//! Taking a trained network elsewhere: one of the model's three networks as a plain list of
//! layers in PyTorch's conventions (`Net`), written as an ONNX model (`onnx.rs`) or as a
//! safetensors state dict that `docs/vaegan_torch.py`'s modules load (`torch.rs`).
//!
//! The list is read off the same evaluation graph `vaegan sample` runs (batch norm with its
//! running statistics), not rebuilt from the config, so an export cannot drift from what
//! the engine computes. The conversions, once, for both formats:
//! - images are NCHW outside (the engine keeps NHWC rows); a dense layer that reads an
//!   image reads it flattened in C·H·W order (`nn.Flatten`), one that writes an image writes
//!   it in that order (`nn.Unflatten`): its weight rows, columns, bias and batch-norm
//!   statistics are permuted to match, so no transposes run at inference;
//! - dense weights [in, out] → [out, in]; conv weights (k_h·k_w·in_c) × out_c →
//!   [out_c, in_c, k_h, k_w]; a transposed conv's, the adjoint of that conv, the same way
//!   ([in, out, k_h, k_w] of `nn.ConvTranspose2d`); biases 1 × n → [n].

pub mod onnx;
pub mod torch;

use std::collections::HashMap;

use crate::graph::{Graph, Op, TensorId, TensorKind};
use crate::model::{Mode, ModelConfig};
use crate::types::{Act, ConvGeom};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Model(String),
    #[error("the checkpoint has no tensor {0:?}, which the config's model needs")]
    Missing(String),
    #[error("cannot export op {0} (only the ops of evaluation graphs are exported)")]
    Unsupported(String),
}

/// One of the model's networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Encoder,
    Decoder,
    Discriminator,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::Encoder, Part::Decoder, Part::Discriminator];

    pub fn name(self) -> &'static str {
        match self {
            Part::Encoder => "encoder",
            Part::Decoder => "decoder",
            Part::Discriminator => "discriminator",
        }
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Part {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Part::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| format!("unknown part {s:?}: expected encoder, decoder or discriminator"))
    }
}

/// A network input or output: its name and its dimensions after the batch (which is free).
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub name: String,
    pub dims: Vec<usize>,
}

/// The layers an export holds, in the operators ONNX and PyTorch share.
#[derive(Clone, Debug, PartialEq)]
pub enum NetOp {
    /// [x, W [out, in], b [out]?] → x·Wᵀ + b.
    Gemm,
    /// [x, W [out_c, in_c, k, k], b?]: a square-kernel convolution, zero padding `pad`.
    Conv {
        kernel: usize,
        stride: usize,
        pad: usize,
    },
    /// [x, W [in_c, out_c, k, k], b?]: the transposed convolution, `out_pad` extra rows and
    /// columns at the bottom and right (PyTorch's `output_padding`).
    ConvTranspose {
        kernel: usize,
        stride: usize,
        pad: usize,
        out_pad: usize,
    },
    /// [x, γ, β, running mean, running var] → batch norm with the running statistics.
    BatchNorm {
        eps: f32,
    },
    Act(Act),
    /// [a, b] → a + b, same shapes (a conditioned layer's x·W + y·V).
    Add,
    /// N×C×H×W → N×(C·H·W).
    Flatten,
    /// N×(C·H·W) → N×C×H×W.
    Unflatten {
        c: usize,
        h: usize,
        w: usize,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct NetNode {
    pub op: NetOp,
    pub inputs: Vec<String>,
    pub output: String,
}

/// A weight or statistic, in PyTorch's layout, under the name PyTorch's modules give it
/// (the engine's name without the network's prefix: `decoder.dense.weight` → `dense.weight`).
#[derive(Clone, Debug, PartialEq)]
pub struct NetTensor {
    pub name: String,
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

/// A network ready to write.
#[derive(Clone, Debug)]
pub struct Net {
    pub part: Part,
    pub inputs: Vec<Value>,
    pub outputs: Vec<Value>,
    pub nodes: Vec<NetNode>,
    pub tensors: Vec<NetTensor>,
    /// The batch norms' name prefixes (`dense.bn`): PyTorch's modules also keep a
    /// `num_batches_tracked` under each.
    pub batch_norms: Vec<String>,
}

/// Where a value lives while the graph is walked: a row per sample (its columns an image in
/// C·H·W order if `image`), or an N×C×H×W image.
#[derive(Clone, Copy, Debug)]
enum Layout {
    Rows { image: Option<(usize, usize, usize)> },
    Nchw { h: usize, w: usize, c: usize },
}

/// The position in H·W·C order of each element of an h×w×c image taken in C·H·W order:
/// `chw[i] = hwc_index`.
fn chw_to_hwc((h, w, c): (usize, usize, usize)) -> Vec<usize> {
    let mut order = Vec::with_capacity(h * w * c);
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                order.push((y * w + x) * c + ch);
            }
        }
    }
    order
}

/// The transposed convolution's output padding: what `ConvGeom::transposed` added to reach
/// `in_h` from `out_h`.
fn out_pad(g: &ConvGeom) -> usize {
    g.in_h + 2 * g.pad - ((g.out_h - 1) * g.stride + g.k_h)
}

/// A part's evaluation graph, its inputs (the first the data; then a conditioned model's
/// labels) and its outputs (graph tensors with the names and dimensions the export gives them).
type PartGraph = (Graph, Vec<(TensorId, Value)>, Vec<(TensorId, Value)>);

/// The evaluation graph of `part`, with its input and outputs named as the export names
/// them. Errors for a part the model lacks.
fn part_graph(c: &ModelConfig, part: Part) -> Result<PartGraph, ExportError> {
    let model = |e: crate::graph::GraphError| ExportError::Model(e.to_string());
    let [h, w, ch] = c.image;
    let image = |name: &str| Value { name: name.into(), dims: vec![ch, h, w] };
    let latent = |name: &str| Value { name: name.into(), dims: vec![c.latent] };
    // A conditioned model's labels: a second input, "labels", one 0/1 value per condition.
    let labels = |y: Option<TensorId>| y.map(|y| (y, Value { name: "labels".into(), dims: vec![c.conditions.len()] }));
    Ok(match part {
        Part::Decoder => {
            let d = crate::model::build_decode(c, 1).map_err(model)?;
            let inputs = [Some((d.z, latent("z"))), labels(d.y)].into_iter().flatten().collect();
            (d.graph, inputs, vec![(d.images, image("images"))])
        }
        Part::Encoder => {
            let e = crate::model::build_encode(c, 1).map_err(model)?;
            (e.graph, vec![(e.x, image("images"))], vec![(e.mu, latent("mu")), (e.logvar, latent("logvar"))])
        }
        Part::Discriminator => {
            let d = crate::model::build_discriminate(c, 1)
                .map_err(model)?
                .ok_or_else(|| ExportError::Model(format!("the model is a plain VAE (mode {:?}): it has no discriminator", Mode::Vae)))?;
            let features = Value { name: "features".into(), dims: vec![] };
            let inputs = [Some((d.x, image("images"))), labels(d.y)].into_iter().flatten().collect();
            (d.graph, inputs, vec![(d.features, features), (d.logits, Value { name: "logits".into(), dims: vec![1] })])
        }
    })
}

/// Reads `part` of the model `c` out of its evaluation graph, with weights from `tensor`
/// (a checkpoint's parameters and running statistics by name).
pub fn network(c: &ModelConfig, part: Part, tensor: &dyn Fn(&str) -> Option<Vec<f32>>) -> Result<Net, ExportError> {
    let (g, inputs, outputs) = part_graph(c, part)?;
    let prefix = format!("{}.", part.name());
    let torch_name = |t: TensorId| g.name(t).strip_prefix(&prefix).unwrap_or(g.name(t)).to_string();

    // Which row tensors are images (H·W·C rows): what a convolution reads, the decoder's
    // output, and back through the per-feature ops before them to the dense layer that
    // writes them.
    let mut image_rows: HashMap<TensorId, (usize, usize, usize)> = HashMap::new();
    if part == Part::Decoder {
        let [h, w, ch] = c.image;
        image_rows.insert(outputs[0].0, (h, w, ch));
    }
    let nodes: Vec<_> = g.forward_nodes().map(|(_, n)| n.clone()).collect();
    for n in &nodes {
        match &n.op {
            Op::Conv2d { geom, .. } => {
                image_rows.insert(n.inputs[0], (geom.in_h, geom.in_w, geom.in_c));
            }
            Op::ConvTranspose2d { geom, .. } => {
                image_rows.insert(n.inputs[0], (geom.out_h, geom.out_w, geom.out_c));
            }
            _ => {}
        }
    }
    for n in nodes.iter().rev() {
        if matches!(n.op, Op::Activation { .. } | Op::BatchNormEval { .. } | Op::Add) {
            if let Some(&img) = image_rows.get(&n.outputs[0]) {
                for &t in if n.op == Op::Add { &n.inputs[..2] } else { &n.inputs[..1] } {
                    image_rows.insert(t, img);
                }
            }
        }
    }

    let mut net = Net { part, inputs: inputs.iter().map(|(_, v)| v.clone()).collect(), outputs: vec![], nodes: vec![], tensors: vec![], batch_norms: vec![] };
    let mut values: HashMap<TensorId, (String, Layout)> = HashMap::new();
    let [h, w, ch] = c.image;
    for (i, (t, v)) in inputs.iter().enumerate() {
        // The data (images, or the decoder's codes), then labels as rows.
        let layout = if i == 0 && part != Part::Decoder { Layout::Nchw { h, w, c: ch } } else { Layout::Rows { image: None } };
        values.insert(*t, (v.name.clone(), layout));
    }
    let mut fresh = 0usize;
    let mut emit = |net: &mut Net, op: NetOp, inputs: Vec<String>| -> String {
        fresh += 1;
        let output = format!("t{fresh}");
        net.nodes.push(NetNode { op, inputs, output: output.clone() });
        output
    };
    let load = |t: TensorId| -> Result<Vec<f32>, ExportError> {
        let v = match g.tensors[t].kind {
            TensorKind::Param { .. } => tensor(g.name(t)),
            // Running statistics are constants of the graph that checkpoints hold.
            _ => tensor(g.name(t)).or_else(|| g.tensors[t].init.clone()),
        };
        v.ok_or_else(|| ExportError::Missing(g.name(t).to_string()))
    };

    for n in &nodes {
        let (x, layout) =
            values.get(&n.inputs[0]).cloned().ok_or_else(|| ExportError::Unsupported(format!("{} (its input is not a network value)", n.op.name())))?;
        // A bias that is a zero constant (a layer followed by batch norm) is left out.
        let has_bias = |i: usize| n.inputs.get(i).is_some_and(|&b| matches!(g.tensors[b].kind, TensorKind::Param { .. }));
        let (out, out_layout) = match &n.op {
            Op::Linear { act } => {
                let (x, in_order) = match layout {
                    Layout::Nchw { h, w, c } => (emit(&mut net, NetOp::Flatten, vec![x]), Some((h, w, c))),
                    Layout::Rows { image } => (x, image),
                };
                let (ins, outs) = (g.shape(n.inputs[1]).rows, g.shape(n.inputs[1]).cols);
                let out_order = image_rows.get(&n.outputs[0]).copied();
                let rows = in_order.map(chw_to_hwc).unwrap_or_else(|| (0..ins).collect());
                let cols = out_order.map(chw_to_hwc).unwrap_or_else(|| (0..outs).collect());
                let wv = load(n.inputs[1])?;
                // W [in, out] → [out, in], both sides in the exported order.
                let data = cols.iter().flat_map(|&o| rows.iter().map(move |&i| (i, o))).map(|(i, o)| wv[i * outs + o]).collect();
                let wname = torch_name(n.inputs[1]);
                net.tensors.push(NetTensor { name: wname.clone(), dims: vec![outs, ins], data });
                let mut inputs = vec![x, wname];
                if has_bias(2) {
                    let bv = load(n.inputs[2])?;
                    let bname = torch_name(n.inputs[2]);
                    net.tensors.push(NetTensor { name: bname.clone(), dims: vec![outs], data: cols.iter().map(|&o| bv[o]).collect() });
                    inputs.push(bname);
                }
                let mut y = emit(&mut net, NetOp::Gemm, inputs);
                if *act != Act::None {
                    y = emit(&mut net, NetOp::Act(*act), vec![y]);
                }
                (y, Layout::Rows { image: out_order })
            }
            Op::Conv2d { geom, act } | Op::ConvTranspose2d { geom, act } => {
                let transposed = matches!(n.op, Op::ConvTranspose2d { .. });
                let x = match layout {
                    Layout::Nchw { .. } => x,
                    Layout::Rows { image: Some((h, w, c)) } => emit(&mut net, NetOp::Unflatten { c, h, w }, vec![x]),
                    Layout::Rows { image: None } => return Err(ExportError::Unsupported(format!("{} on rows that are not an image", n.op.name()))),
                };
                if geom.k_h != geom.k_w {
                    return Err(ExportError::Unsupported(format!("{} with a {}x{} kernel (square kernels only)", n.op.name(), geom.k_h, geom.k_w)));
                }
                let wv = load(n.inputs[1])?;
                let (k, ci_n, co_n) = (geom.k_h, geom.in_c, geom.out_c);
                // (k_h, k_w, in_c) × out_c → [out_c, in_c, k_h, k_w]; for the transposed conv
                // this is [its input channels, its output channels, k_h, k_w], as PyTorch's.
                let mut data = Vec::with_capacity(wv.len());
                for co in 0..co_n {
                    for ci in 0..ci_n {
                        for kh in 0..k {
                            for kw in 0..geom.k_w {
                                data.push(wv[((kh * geom.k_w + kw) * ci_n + ci) * co_n + co]);
                            }
                        }
                    }
                }
                let wname = torch_name(n.inputs[1]);
                net.tensors.push(NetTensor { name: wname.clone(), dims: vec![co_n, ci_n, k, geom.k_w], data });
                let mut inputs = vec![x, wname];
                if has_bias(2) {
                    let bname = torch_name(n.inputs[2]);
                    let bv = load(n.inputs[2])?;
                    net.tensors.push(NetTensor { name: bname.clone(), dims: vec![bv.len()], data: bv });
                    inputs.push(bname);
                }
                let (op, (h, w, c)) = if transposed {
                    (NetOp::ConvTranspose { kernel: k, stride: geom.stride, pad: geom.pad, out_pad: out_pad(geom) }, (geom.in_h, geom.in_w, geom.in_c))
                } else {
                    (NetOp::Conv { kernel: k, stride: geom.stride, pad: geom.pad }, (geom.out_h, geom.out_w, geom.out_c))
                };
                let mut y = emit(&mut net, op, inputs);
                if *act != Act::None {
                    y = emit(&mut net, NetOp::Act(*act), vec![y]);
                }
                (y, Layout::Nchw { h, w, c })
            }
            Op::BatchNormEval { channels, eps, act } => {
                // Per channel of an image, or per feature of a row (permuted as the row is).
                let order = match layout {
                    Layout::Rows { image: Some(img) } => chw_to_hwc(img),
                    _ => (0..*channels).collect(),
                };
                let mut inputs = vec![x];
                for &t in &n.inputs[1..5] {
                    let v = load(t)?;
                    let name = torch_name(t);
                    net.tensors.push(NetTensor { name: name.clone(), dims: vec![*channels], data: order.iter().map(|&i| v[i]).collect() });
                    inputs.push(name);
                }
                let gamma = torch_name(n.inputs[1]);
                net.batch_norms.push(gamma.strip_suffix(".weight").unwrap_or(&gamma).to_string());
                // The fused activation is the exported graph's own node, as after a convolution.
                let mut y = emit(&mut net, NetOp::BatchNorm { eps: *eps }, inputs);
                if *act != Act::None {
                    y = emit(&mut net, NetOp::Act(*act), vec![y]);
                }
                (y, layout)
            }
            Op::Activation { act } => (if *act == Act::None { x } else { emit(&mut net, NetOp::Act(*act), vec![x]) }, layout),
            // A conditioned layer's y·V: a Gemm without bias, V [labels, out] → [out, labels],
            // its columns in the exported order of the value it is added to.
            Op::Matmul { trans: crate::types::Trans::NN } if matches!(g.tensors[n.inputs[1]].kind, TensorKind::Param { .. }) => {
                let Layout::Rows { image: None } = layout else {
                    return Err(ExportError::Unsupported(format!("{} of a value that is not a row of labels", n.op.name())));
                };
                let (ins, outs) = (g.shape(n.inputs[1]).rows, g.shape(n.inputs[1]).cols);
                let out_order = image_rows.get(&n.outputs[0]).copied();
                let cols = out_order.map(chw_to_hwc).unwrap_or_else(|| (0..outs).collect());
                let vv = load(n.inputs[1])?;
                let data = cols.iter().flat_map(|&o| (0..ins).map(move |i| (i, o))).map(|(i, o)| vv[i * outs + o]).collect();
                let vname = torch_name(n.inputs[1]);
                net.tensors.push(NetTensor { name: vname.clone(), dims: vec![outs, ins], data });
                (emit(&mut net, NetOp::Gemm, vec![x, vname]), Layout::Rows { image: out_order })
            }
            Op::Add => {
                let (b, b_layout) =
                    values.get(&n.inputs[1]).cloned().ok_or_else(|| ExportError::Unsupported("add (its second input is not a network value)".into()))?;
                let (Layout::Rows { image: ia }, Layout::Rows { image: ib }) = (layout, b_layout) else {
                    return Err(ExportError::Unsupported("add of images (only rows are added)".into()));
                };
                if ia != ib {
                    return Err(ExportError::Unsupported("add of rows in different orders".into()));
                }
                (emit(&mut net, NetOp::Add, vec![x, b]), layout)
            }
            other => return Err(ExportError::Unsupported(other.name())),
        };
        values.insert(n.outputs[0], (out, out_layout));
    }

    // Name the outputs; an image left as rows becomes N×C×H×W.
    for (t, mut v) in outputs {
        let (mut name, layout) = values.get(&t).cloned().ok_or_else(|| ExportError::Model(format!("{} is not computed by the {part}", v.name)))?;
        match layout {
            Layout::Rows { image: Some((h, w, c)) } if part == Part::Decoder => {
                name = emit(&mut net, NetOp::Unflatten { c, h, w }, vec![name]);
                v.dims = vec![c, h, w];
            }
            Layout::Nchw { h, w, c } => v.dims = vec![c, h, w],
            Layout::Rows { .. } => v.dims = vec![g.shape(t).cols],
        }
        rename(&mut net, &name, &v.name);
        net.outputs.push(v);
    }
    Ok(net)
}

/// Renames a node's output value, and every later use of it.
fn rename(net: &mut Net, from: &str, to: &str) {
    for n in &mut net.nodes {
        if n.output == from {
            n.output = to.to_string();
        }
        for i in &mut n.inputs {
            if i == from {
                *i = to.to_string();
            }
        }
    }
}

/// Runs `net` on the CPU in f64 (batch-major rows in, rows out, NCHW where it is an
/// image): the definition both writers are checked against, and what the tests compare
/// with the engine's own output.
pub fn run(net: &Net, inputs: &[(&str, &[f32])], batch: usize) -> Result<HashMap<String, Vec<f32>>, ExportError> {
    use crate::reference;
    let mut vals: HashMap<String, (Vec<f64>, Vec<usize>)> = HashMap::new();
    for v in &net.inputs {
        let data = inputs.iter().find(|(n, _)| *n == v.name).ok_or_else(|| ExportError::Model(format!("input {} not given", v.name)))?.1;
        vals.insert(v.name.clone(), (data.iter().map(|&x| x as f64).collect(), v.dims.clone()));
    }
    for t in &net.tensors {
        vals.insert(t.name.clone(), (t.data.iter().map(|&x| x as f64).collect(), t.dims.clone()));
    }
    let get = |vals: &HashMap<String, (Vec<f64>, Vec<usize>)>, n: &str| vals.get(n).cloned().ok_or_else(|| ExportError::Model(format!("value {n} is unset")));
    for node in &net.nodes {
        let (x, dims) = get(&vals, &node.inputs[0])?;
        let (y, ydims) = match &node.op {
            NetOp::Gemm => {
                let (w, wd) = get(&vals, &node.inputs[1])?;
                let b = node.inputs.get(2).map(|n| get(&vals, n)).transpose()?;
                let (o, i) = (wd[0], wd[1]);
                let mut y = vec![0.0; batch * o];
                for s in 0..batch {
                    for r in 0..o {
                        let acc: f64 = (0..i).map(|k| x[s * i + k] * w[r * i + k]).sum();
                        y[s * o + r] = acc + b.as_ref().map_or(0.0, |b| b.0[r]);
                    }
                }
                (y, vec![o])
            }
            NetOp::Conv { kernel, stride, pad } | NetOp::ConvTranspose { kernel, stride, pad, .. } => {
                let (w, wd) = get(&vals, &node.inputs[1])?;
                let b = node.inputs.get(2).map(|n| get(&vals, n)).transpose()?;
                let (c, h, wi) = (dims[0], dims[1], dims[2]);
                // Back to the engine's layout, through its CPU twin, and out again.
                let nhwc = nchw_to_nhwc(&x, batch, c, h, wi);
                let (co, ci) = (wd[0], wd[1]);
                let mut wk = vec![0.0; w.len()];
                for o in 0..co {
                    for i in 0..ci {
                        for kh in 0..*kernel {
                            for kw in 0..*kernel {
                                wk[((kh * kernel + kw) * ci + i) * co + o] = w[((o * ci + i) * kernel + kh) * kernel + kw];
                            }
                        }
                    }
                }
                let (y, (oh, ow, oc)) = if let NetOp::ConvTranspose { out_pad, .. } = node.op {
                    let geom = ConvGeom::transposed(batch, (h, wi, c), ci, (*kernel, *kernel), *stride, *pad, out_pad).map_err(ExportError::Model)?;
                    (
                        reference::conv2d::conv_transpose2d_forward(&geom, Act::None, &nhwc, &wk, b.as_ref().map(|b| b.0.as_slice())),
                        (geom.in_h, geom.in_w, geom.in_c),
                    )
                } else {
                    let geom = ConvGeom::conv(batch, (h, wi, c), co, (*kernel, *kernel), *stride, *pad).map_err(ExportError::Model)?;
                    (reference::conv2d::conv2d_forward(&geom, Act::None, &nhwc, &wk, b.as_ref().map(|b| b.0.as_slice())), (geom.out_h, geom.out_w, geom.out_c))
                };
                (nhwc_to_nchw(&y, batch, oc, oh, ow), vec![oc, oh, ow])
            }
            NetOp::BatchNorm { eps } => {
                let p: Vec<Vec<f64>> = node.inputs[1..5].iter().map(|n| get(&vals, n).map(|v| v.0)).collect::<Result<_, _>>()?;
                let ch = dims[0];
                let per = dims[1..].iter().product::<usize>().max(1);
                let y = x
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let k = (i / per) % ch;
                        (v - p[2][k]) / (p[3][k] + *eps as f64).sqrt() * p[0][k] + p[1][k]
                    })
                    .collect();
                (y, dims)
            }
            NetOp::Act(a) => (x.iter().map(|&v| reference::elementwise::activate(*a, v)).collect(), dims),
            NetOp::Add => {
                let (b, _) = get(&vals, &node.inputs[1])?;
                (x.iter().zip(&b).map(|(a, b)| a + b).collect(), dims)
            }
            NetOp::Flatten => (x, vec![dims.iter().product()]),
            NetOp::Unflatten { c, h, w } => (x, vec![*c, *h, *w]),
        };
        vals.insert(node.output.clone(), (y, ydims));
    }
    net.outputs.iter().map(|o| Ok((o.name.clone(), get(&vals, &o.name)?.0.iter().map(|&v| v as f32).collect()))).collect()
}

pub fn nchw_to_nhwc<T: Copy>(x: &[T], n: usize, c: usize, h: usize, w: usize) -> Vec<T> {
    let mut y = Vec::with_capacity(x.len());
    for s in 0..n {
        for p in 0..h * w {
            for ch in 0..c {
                y.push(x[(s * c + ch) * h * w + p]);
            }
        }
    }
    y
}

pub fn nhwc_to_nchw<T: Copy>(x: &[T], n: usize, c: usize, h: usize, w: usize) -> Vec<T> {
    let mut y = Vec::with_capacity(x.len());
    for s in 0..n {
        for ch in 0..c {
            for p in 0..h * w {
                y.push(x[(s * h * w + p) * c + ch]);
            }
        }
    }
    y
}

//! The training step as a static graph: tensors with static shapes, ops whose backward
//! rules sit next to their forwards (`ops.rs`), reverse-mode autodiff per objective and
//! parameter group (`autodiff.rs`), buffer planning by liveness (`plan.rs`), and two
//! executors of one graph: the GPU one (`gpu_exec.rs`) and the f64 CPU interpreter built
//! on the reference twins (`cpu_exec.rs`). `dump.rs` prints it as text or Graphviz.
//!
//! Building reads like the math:
//! ```text
//! let x = g.input("x", [batch, 784]);
//! let h = g.linear(x, &enc.l1, Act::Relu);
//! ```

pub mod autodiff;
pub mod cpu_exec;
pub mod dump;
pub mod gpu_exec;
pub mod ops;
pub mod plan;

pub use cpu_exec::CpuExecutor;
pub use gpu_exec::{ExecOptions, GpuExecutor};
pub use ops::{LossKind, Op};

use crate::types::{Act, ConvGeom, Trans};

pub type TensorId = usize;
pub type NodeId = usize;

/// Every tensor is a row-major matrix; scalars are 1×1 and vectors 1×n.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub rows: usize,
    pub cols: usize,
}

impl Shape {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub const SCALAR: Shape = Shape { rows: 1, cols: 1 };
}

impl From<[usize; 2]> for Shape {
    fn from([rows, cols]: [usize; 2]) -> Self {
        Shape { rows, cols }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.rows, self.cols)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum TensorKind {
    /// Written by the host (or a data kernel) before each step.
    Input,
    /// Trainable, in a parameter group; initial values in `Tensor::init`.
    Param { group: usize },
    /// Set once when the graph is planned (targets, the seed gradient 1.0).
    Const,
    /// Computed by a node.
    Value,
}

#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub shape: Shape,
    pub kind: TensorKind,
    pub producer: Option<NodeId>,
    /// Initial values of params and consts.
    pub init: Option<Vec<f32>>,
}

/// Where a node belongs: the shared forward pass, or the backward of one objective.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Section {
    Forward,
    Backward(String),
}

#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
    pub section: Section,
}

/// A group of parameters updated together by one optimizer from one objective.
#[derive(Clone, Debug)]
pub struct ParamGroup {
    pub name: String,
    pub params: Vec<TensorId>,
    /// The objective whose gradient this group follows, and the gradient tensors (one per
    /// param, same order), once `Graph::objective` has been called.
    pub objective: Option<TensorId>,
    pub grads: Vec<TensorId>,
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("graph: {0}")]
    Invalid(String),
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
}

pub type Result<T, E = GraphError> = std::result::Result<T, E>;

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub tensors: Vec<Tensor>,
    pub nodes: Vec<Node>,
    pub groups: Vec<ParamGroup>,
    /// Scalars (losses, metrics) read back after a step, with their names.
    pub outputs: Vec<(String, TensorId)>,
    /// Tensors kept readable after a step (their buffers are not reused).
    pub kept: Vec<TensorId>,
    /// Each objective's seed gradient d(objective)/d(objective) = 1: the mixed-precision
    /// executor sets it to the loss scale instead.
    pub seeds: Vec<TensorId>,
    /// Constants that are model state kernels update in place (batch norm's running
    /// statistics): saved in checkpoints with the parameters, loaded by name.
    pub state: Vec<TensorId>,
}

/// A dense layer's parameters: W (in×out) and b (1×out).
#[derive(Clone, Copy, Debug)]
pub struct LinearParams {
    pub w: TensorId,
    pub b: TensorId,
    pub inputs: usize,
    pub outputs: usize,
}

/// A convolution's parameters: W (k_h·k_w·in_c × out_c) and b (1 × out_c, or 1 × in_c for a
/// transposed convolution), with the geometry they were made for.
#[derive(Clone, Copy, Debug)]
pub struct ConvParams {
    pub w: TensorId,
    pub b: TensorId,
    pub geom: ConvGeom,
}

/// A batch norm's learnable γ and β (1 × channels, in the layer's group) and its running
/// statistics (constants of the graph that the training kernel updates in place).
#[derive(Clone, Copy, Debug)]
pub struct BatchNormParams {
    pub gamma: TensorId,
    pub beta: TensorId,
    pub running_mean: TensorId,
    pub running_var: TensorId,
    pub channels: usize,
    pub eps: f32,
    pub momentum: f32,
}

impl Graph {
    /// Bytes of the largest tensor (f32): what must fit one storage binding.
    pub fn largest_tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.shape.len() as u64 * 4).max().unwrap_or(0)
    }

    pub fn new() -> Self {
        Self::default()
    }

    pub fn shape(&self, t: TensorId) -> Shape {
        self.tensors[t].shape
    }

    pub fn name(&self, t: TensorId) -> &str {
        &self.tensors[t].name
    }

    fn tensor(&mut self, name: &str, shape: Shape, kind: TensorKind, init: Option<Vec<f32>>) -> TensorId {
        assert!(shape.rows > 0 && shape.cols > 0, "tensor {name} has an empty shape {shape}");
        self.tensors.push(Tensor { name: name.to_string(), shape, kind, producer: None, init });
        self.tensors.len() - 1
    }

    pub fn input(&mut self, name: &str, shape: impl Into<Shape>) -> TensorId {
        self.tensor(name, shape.into(), TensorKind::Input, None)
    }

    pub fn constant(&mut self, name: &str, shape: impl Into<Shape>, values: Vec<f32>) -> TensorId {
        let shape = shape.into();
        assert_eq!(values.len(), shape.len(), "constant {name}: values for {shape}");
        self.tensor(name, shape, TensorKind::Const, Some(values))
    }

    pub fn group(&mut self, name: &str) -> usize {
        self.groups.push(ParamGroup { name: name.to_string(), params: vec![], objective: None, grads: vec![] });
        self.groups.len() - 1
    }

    pub fn param(&mut self, group: usize, name: &str, shape: impl Into<Shape>, init: Vec<f32>) -> TensorId {
        let shape = shape.into();
        assert_eq!(init.len(), shape.len(), "param {name}: initial values for {shape}");
        let t = self.tensor(name, shape, TensorKind::Param { group }, Some(init));
        self.groups[group].params.push(t);
        t
    }

    /// Appends a node; output shapes are inferred by the op (checked there).
    pub fn push(&mut self, op: Op, inputs: Vec<TensorId>, section: Section) -> Vec<TensorId> {
        let in_shapes: Vec<Shape> = inputs.iter().map(|&t| self.shape(t)).collect();
        let out_shapes = op.output_shapes(&in_shapes).unwrap_or_else(|e| {
            let names: Vec<String> = inputs.iter().map(|&t| format!("{}[{}]", self.name(t), self.shape(t))).collect();
            panic!("graph: {} on {}: {e}", op.name(), names.join(", "))
        });
        let id = self.nodes.len();
        let outputs: Vec<TensorId> = out_shapes
            .iter()
            .enumerate()
            .map(|(k, &s)| {
                // "lin#8", or "dreparam#40.1" for the second output of a node.
                let name = if out_shapes.len() > 1 { format!("{}#{id}.{k}", op.short()) } else { format!("{}#{id}", op.short()) };
                let t = self.tensor(&name, s, TensorKind::Value, None);
                self.tensors[t].producer = Some(id);
                t
            })
            .collect();
        self.nodes.push(Node { op, inputs, outputs: outputs.clone(), section });
        outputs
    }

    fn forward(&mut self, op: Op, inputs: Vec<TensorId>) -> TensorId {
        self.push(op, inputs, Section::Forward)[0]
    }

    /// Renames a tensor (for dumps and errors).
    pub fn named(&mut self, t: TensorId, name: &str) -> TensorId {
        self.tensors[t].name = name.to_string();
        t
    }

    // ---- the builder API: one method per forward op ----

    /// act(x·W + b), one fused matmul.
    pub fn linear(&mut self, x: TensorId, layer: &LinearParams, act: Act) -> TensorId {
        self.forward(Op::Linear { act }, vec![x, layer.w, layer.b])
    }

    /// act(conv(x, W) + b) over NHWC images stored batch × (h·w·c).
    pub fn conv2d(&mut self, x: TensorId, layer: &ConvParams, act: Act) -> TensorId {
        self.forward(Op::Conv2d { geom: layer.geom, act }, vec![x, layer.w, layer.b])
    }

    /// act(convᵀ(x, W) + b): the adjoint of `layer.geom` (its output side to its input side).
    pub fn conv_transpose2d(&mut self, x: TensorId, layer: &ConvParams, act: Act) -> TensorId {
        self.forward(Op::ConvTranspose2d { geom: layer.geom, act }, vec![x, layer.w, layer.b])
    }

    /// act(batch norm) in training: normalised with the batch's statistics (the running ones
    /// updated as a side effect on the GPU), then the activation, fused.
    pub fn batch_norm(&mut self, x: TensorId, bn: &BatchNormParams, act: Act) -> TensorId {
        let op = Op::BatchNorm { channels: bn.channels, eps: bn.eps, momentum: bn.momentum, act };
        self.push(op, vec![x, bn.gamma, bn.beta, bn.running_mean, bn.running_var], Section::Forward)[0]
    }

    /// act(batch norm) in evaluation: normalised with the running statistics.
    pub fn batch_norm_eval(&mut self, x: TensorId, bn: &BatchNormParams, act: Act) -> TensorId {
        self.forward(Op::BatchNormEval { channels: bn.channels, eps: bn.eps, act }, vec![x, bn.gamma, bn.beta, bn.running_mean, bn.running_var])
    }

    /// Each channel's maximum over the positions of NHWC image rows: rows × `channels`.
    pub fn position_max(&mut self, x: TensorId, channels: usize) -> TensorId {
        self.forward(Op::PositionMax { channels }, vec![x])
    }

    pub fn matmul(&mut self, a: TensorId, b: TensorId, trans: Trans) -> TensorId {
        self.forward(Op::Matmul { trans }, vec![a, b])
    }

    pub fn activation(&mut self, x: TensorId, act: Act) -> TensorId {
        self.forward(Op::Activation { act }, vec![x])
    }

    pub fn add(&mut self, a: TensorId, b: TensorId) -> TensorId {
        self.forward(Op::Add, vec![a, b])
    }

    pub fn scale(&mut self, x: TensorId, alpha: f32) -> TensorId {
        self.forward(Op::Scale { alpha }, vec![x])
    }

    /// Σ cᵢ·sᵢ over scalars (a loss from weighted terms).
    pub fn weighted_sum(&mut self, terms: &[(f32, TensorId)]) -> TensorId {
        assert!(!terms.is_empty(), "weighted_sum of nothing");
        let mut acc = if terms[0].0 == 1.0 { terms[0].1 } else { self.scale(terms[0].1, terms[0].0) };
        for &(c, t) in &terms[1..] {
            acc = self.forward(Op::Axpy { alpha: c }, vec![acc, t]);
        }
        acc
    }

    /// The value of x, through which no gradient flows.
    pub fn stop_gradient(&mut self, x: TensorId) -> TensorId {
        self.forward(Op::StopGradient, vec![x])
    }

    /// Row blocks stacked: [a; b; ...].
    pub fn concat_rows(&mut self, parts: &[TensorId]) -> TensorId {
        self.forward(Op::ConcatRows, parts.to_vec())
    }

    /// Rows start..start+rows of x.
    pub fn slice_rows(&mut self, x: TensorId, start: usize, rows: usize) -> TensorId {
        self.forward(Op::SliceRows { start, rows }, vec![x])
    }

    /// (z, ε): z = μ + ε·exp(½·logσ²), ε drawn from RNG stream `stream`.
    pub fn reparam(&mut self, mu: TensorId, logvar: TensorId, stream: u32) -> (TensorId, TensorId) {
        let out = self.push(Op::Reparam { stream }, vec![mu, logvar], Section::Forward);
        (out[0], out[1])
    }

    /// Standard normals of the given shape from RNG stream `stream`.
    pub fn randn(&mut self, shape: impl Into<Shape>, stream: u32) -> TensorId {
        let shape = shape.into();
        self.forward(Op::Randn { stream, shape }, vec![])
    }

    /// MMD² between the rows of z and of `prior` (draws; no gradient flows to them), under
    /// the inverse multiquadric kernel with C = 2·cols (`kernels::mmd`).
    pub fn mmd(&mut self, z: TensorId, prior: TensorId) -> TensorId {
        self.forward(Op::Mmd, vec![z, prior])
    }

    /// Batch mean of KL(N(μ, σ²) ‖ N(0, I)).
    pub fn kl_mean(&mut self, mu: TensorId, logvar: TensorId) -> TensorId {
        self.forward(Op::KlMean, vec![mu, logvar])
    }

    /// scale · Σ loss terms of (prediction, target).
    pub fn loss(&mut self, kind: LossKind, prediction: TensorId, target: TensorId, scale: f32) -> TensorId {
        self.forward(Op::Loss { kind, scale }, vec![prediction, target])
    }

    /// Marks a constant as model state (see `Graph::state`).
    pub fn state(&mut self, t: TensorId) {
        assert_eq!(self.tensors[t].kind, TensorKind::Const, "state {} must be a constant", self.name(t));
        self.state.push(t);
    }

    /// FLOPs of every matmul and convolution in the graph (2 per multiply-add).
    pub fn flops(&self) -> f64 {
        self.nodes
            .iter()
            .map(|n| {
                let s = |i: usize| self.shape(n.inputs[i]);
                match &n.op {
                    Op::Linear { .. } => 2.0 * (s(0).rows * s(0).cols * s(1).cols) as f64,
                    Op::Matmul { trans } => {
                        let (ta, _) = trans.flags();
                        let out = self.shape(n.outputs[0]);
                        let k = if ta { s(0).rows } else { s(0).cols };
                        2.0 * (out.rows * out.cols * k) as f64
                    }
                    Op::Conv2d { geom, .. } | Op::ConvTranspose2d { geom, .. } | Op::ConvGemm { geom, .. } => geom.flops(),
                    _ => 0.0,
                }
            })
            .sum()
    }

    /// Declares a scalar to read back after each step.
    pub fn output(&mut self, name: &str, t: TensorId) {
        assert_eq!(self.shape(t), Shape::SCALAR, "output {name} must be a scalar");
        self.outputs.push((name.to_string(), t));
    }

    /// Keeps a tensor readable after the step (e.g. generated images).
    pub fn keep(&mut self, t: TensorId) {
        self.kept.push(t);
    }

    /// Makes `objective` the loss of parameter group `group`: adds its backward pass,
    /// restricted to that group's parameters, and records the gradients.
    pub fn objective(&mut self, group: usize, name: &str, objective: TensorId) -> Result<()> {
        let params = self.groups[group].params.clone();
        let grads = autodiff::grad(self, objective, &params, name)?;
        let grads = autodiff::own_gradients(self, &params, grads, name);
        self.groups[group].objective = Some(objective);
        self.groups[group].grads = grads;
        Ok(())
    }

    /// Nodes in the forward section.
    pub fn forward_nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        self.nodes.iter().enumerate().filter(|(_, n)| n.section == Section::Forward)
    }

    pub fn params(&self) -> impl Iterator<Item = TensorId> + '_ {
        self.groups.iter().flat_map(|g| g.params.iter().copied())
    }
}

//! The CPU interpreter: runs the same graph with the reference twins in f64. It is the
//! ground truth for whole-graph tests, including finite differences of objectives.

use super::ops::ConvRole;
use super::{Graph, LossKind, Op, Section, TensorId};
use crate::reference::{batch_norm, conv2d, elementwise, kl, losses, matmul, mmd, pool, reduce, reparam};
use crate::types::RngKey;
use crate::types::Trans;

pub struct CpuExecutor<'g> {
    pub graph: &'g Graph,
    pub seed: u64,
    values: Vec<Option<Vec<f64>>>,
}

impl<'g> CpuExecutor<'g> {
    /// Params and constants start from their initial values; inputs must be `set`.
    pub fn new(graph: &'g Graph, seed: u64) -> Self {
        let values = graph.tensors.iter().map(|t| t.init.as_ref().map(|v| v.iter().map(|&x| x as f64).collect())).collect();
        CpuExecutor { graph, seed, values }
    }

    pub fn set(&mut self, t: TensorId, data: Vec<f64>) {
        assert_eq!(data.len(), self.graph.shape(t).len(), "{}: wrong length", self.graph.name(t));
        self.values[t] = Some(data);
    }

    pub fn get(&self, t: TensorId) -> &[f64] {
        self.values[t].as_deref().unwrap_or_else(|| panic!("{} has no value", self.graph.name(t)))
    }

    /// Runs the nodes of step `step` (the RNG's step number); forward nodes only when
    /// `forward_only`.
    pub fn run(&mut self, step: u64, forward_only: bool) {
        for node in &self.graph.nodes {
            if forward_only && node.section != Section::Forward {
                continue;
            }
            let ins: Vec<&[f64]> = node.inputs.iter().map(|&t| self.get(t)).collect();
            let shape = |k: usize| self.graph.shape(node.inputs[k]);
            let out_shape = self.graph.shape(node.outputs[0]);
            let key = |stream: u32| RngKey { seed: self.seed, step, stream };
            let outs: Vec<Vec<f64>> = match &node.op {
                Op::Linear { act } => {
                    let (x, w) = (shape(0), shape(1));
                    vec![matmul::matmul(x.rows, w.cols, x.cols, Trans::NN, ins[0], ins[1], Some(ins[2]), *act)]
                }
                Op::Matmul { trans } => {
                    let k = if *trans == Trans::TN { shape(0).rows } else { shape(0).cols };
                    vec![matmul::matmul(out_shape.rows, out_shape.cols, k, *trans, ins[0], ins[1], None, crate::types::Act::None)]
                }
                Op::Activation { act } => vec![elementwise::activation_forward(*act, ins[0])],
                Op::ActivationBackward { act } => vec![elementwise::activation_backward(*act, ins[0], ins[1])],
                Op::Add => vec![elementwise::add(ins[0], ins[1])],
                Op::Axpy { alpha } => vec![elementwise::axpy(ins[0], *alpha as f64, ins[1])],
                Op::Scale { alpha } => vec![elementwise::scale(*alpha as f64, ins[0])],
                Op::StopGradient => vec![ins[0].to_vec()],
                Op::Fill { value, shape } => vec![elementwise::fill(*value as f64, shape.len())],
                Op::ConcatRows => {
                    let mut out = vec![0.0; out_shape.len()];
                    let mut at = 0;
                    for part in &ins {
                        elementwise::copy(part, 0, &mut out, at, part.len());
                        at += part.len();
                    }
                    vec![out]
                }
                Op::SliceRows { start, .. } => {
                    let mut out = vec![0.0; out_shape.len()];
                    elementwise::copy(ins[0], start * out_shape.cols, &mut out, 0, out_shape.len());
                    vec![out]
                }
                Op::PadRows { start, .. } => {
                    let mut out = vec![0.0; out_shape.len()];
                    elementwise::copy(ins[0], 0, &mut out, start * out_shape.cols, ins[0].len());
                    vec![out]
                }
                Op::Reparam { stream } => {
                    let (z, eps) = reparam::reparam_forward(key(*stream), ins[0], ins[1]);
                    vec![z, eps]
                }
                Op::Randn { stream, shape } => vec![reparam::normals(shape.len(), key(*stream))],
                Op::ReparamBackward => {
                    let (dmu, dlv) = reparam::reparam_backward(ins[0], ins[1], ins[2]);
                    vec![dmu, dlv]
                }
                Op::KlMean => vec![vec![kl::kl_mean(shape(0).rows, shape(0).cols, ins[0], ins[1])]],
                Op::Mmd => {
                    let c = crate::kernels::mmd::kernel_scale(shape(0).cols) as f64;
                    vec![vec![mmd::mmd(shape(0).rows, shape(0).cols, ins[0], ins[1], c)]]
                }
                Op::MmdBackward => {
                    let c = crate::kernels::mmd::kernel_scale(shape(0).cols) as f64;
                    vec![mmd::mmd_backward(shape(0).rows, shape(0).cols, ins[0], ins[1], c, ins[2][0])]
                }
                Op::KlBackward => {
                    let (dmu, dlv) = kl::kl_backward(ins[0], ins[1], ins[2][0], 1.0 / shape(0).rows as f64);
                    vec![dmu, dlv]
                }
                Op::Loss { kind, scale } => {
                    let s = *scale as f64;
                    vec![vec![match kind {
                        LossKind::BceProb => losses::bce_prob(ins[0], ins[1], s),
                        LossKind::BceLogits => losses::bce_logits(ins[0], ins[1], s),
                        LossKind::SqErr => losses::sq_err(ins[0], ins[1], s),
                        LossKind::SoftmaxCe => losses::softmax_ce(shape(0).cols, ins[0], ins[1], s),
                    }]]
                }
                Op::LossBackward { kind, scale } => {
                    let (s, g) = (*scale as f64, ins[2][0]);
                    match kind {
                        LossKind::BceProb => vec![losses::bce_prob_backward(ins[0], ins[1], g, s)],
                        LossKind::BceLogits => vec![losses::bce_logits_backward(ins[0], ins[1], g, s)],
                        LossKind::SoftmaxCe => vec![losses::softmax_ce_backward(shape(0).cols, ins[0], ins[1], g, s)],
                        LossKind::SqErr => {
                            let (da, db) = losses::sq_err_backward(ins[0], ins[1], g, s);
                            vec![da, db]
                        }
                    }
                }
                Op::ColumnSum => vec![reduce::column_sum(ins[0], shape(0).rows, shape(0).cols)],
                Op::Conv2d { geom, act } => vec![conv2d::conv2d_forward(geom, *act, ins[0], ins[1], Some(ins[2]))],
                Op::ConvTranspose2d { geom, act } => vec![conv2d::conv_transpose2d_forward(geom, *act, ins[0], ins[1], Some(ins[2]))],
                Op::ConvGemm { geom, role } => vec![match role {
                    ConvRole::Forward => conv2d::conv2d_forward(geom, crate::types::Act::None, ins[0], ins[1], None),
                    ConvRole::InputGrad => conv2d::conv2d_backward_input(geom, ins[0], ins[1]),
                    ConvRole::WeightGrad => conv2d::conv2d_backward_weight(geom, ins[0], ins[1]),
                }],
                Op::ChannelSum { channels } => vec![reduce::column_sum(ins[0], ins[0].len() / channels, *channels)],
                Op::PositionMax { channels } => vec![pool::position_max(ins[0], shape(0).rows, shape(0).cols / channels, *channels)],
                Op::PositionMaxBackward { channels } => vec![pool::position_max_backward(ins[0], ins[1], shape(0).rows, shape(0).cols / channels, *channels)],
                Op::BatchNorm { channels, eps, momentum, act } => {
                    // The running statistics are left as they are: the interpreter checks
                    // gradients, which do not depend on them.
                    let rows = ins[0].len() / channels;
                    let (y, mean, invstd, _, _) =
                        batch_norm::batch_norm_forward(rows, *channels, *eps as f64, *momentum as f64, *act, ins[0], ins[1], ins[2], (ins[3], ins[4]));
                    vec![y, mean, invstd]
                }
                Op::BatchNormEval { channels, eps, act } => {
                    vec![batch_norm::batch_norm_forward_eval(*channels, *eps as f64, *act, ins[0], ins[1], ins[2], ins[3], ins[4])]
                }
                Op::BatchNormBackward { channels, act } => {
                    // The twin recomputes the statistics from x; the ε the forward used is in
                    // its saved 1/√(var + ε): recover it so that both agree exactly.
                    let rows = ins[0].len() / channels;
                    let eps = batch_norm_eps(self.graph, node);
                    let (dx, dg, db) = batch_norm::batch_norm_backward(rows, *channels, eps, *act, ins[0], ins.get(5).copied(), ins[1], ins[2]);
                    vec![dx, dg, db]
                }
            };
            for (&t, v) in node.outputs.iter().zip(outs) {
                self.values[t] = Some(v);
            }
        }
    }
}

/// The ε of the batch norm whose saved statistics a `BatchNormBackward` node reads.
fn batch_norm_eps(graph: &Graph, node: &super::Node) -> f64 {
    let mean = node.inputs[3];
    let producer = graph.tensors[mean].producer.expect("the batch mean comes from a batch norm");
    match graph.nodes[producer].op {
        Op::BatchNorm { eps, .. } => eps as f64,
        _ => unreachable!("BatchNormBackward reads a BatchNorm's statistics"),
    }
}

//! The ops of a step: what each computes, its output shapes, and — next to it — its
//! backward rule, expressed as more ops. Ops marked "backward only" have no rule of
//! their own (we never differentiate twice).

use super::{Graph, Section, Shape, TensorId};
use crate::types::{Act, ConvGeom, Trans};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// Binary cross-entropy of probabilities (clamped to [1e-7, 1 − 1e-7]).
    BceProb,
    /// Binary cross-entropy of σ(logits), stable form.
    BceLogits,
    /// Squared error (a − b)².
    SqErr,
    /// Softmax cross-entropy of rows of logits against target distributions (one-hot labels).
    SoftmaxCe,
}

impl LossKind {
    pub fn name(self) -> &'static str {
        match self {
            LossKind::BceProb => "bce_prob",
            LossKind::BceLogits => "bce_logits",
            LossKind::SqErr => "sq_err",
            LossKind::SoftmaxCe => "softmax_ce",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// [x, W, b] → act(x·W + b): a fused matmul.
    Linear { act: Act },
    /// [a, b] → op(a)·op(b).
    Matmul { trans: Trans },
    /// [x] → act(x).
    Activation { act: Act },
    /// [a, b] → a + b.
    Add,
    /// [x, y] → x + α·y.
    Axpy { alpha: f32 },
    /// [x] → α·x.
    Scale { alpha: f32 },
    /// [] → value everywhere.
    Fill { value: f32, shape: Shape },
    /// [x] → x; no gradient flows back.
    StopGradient,
    /// [a, b, ...] → rows stacked.
    ConcatRows,
    /// [x] → rows start..start+rows.
    SliceRows { start: usize, rows: usize },
    /// [μ, logσ²] → [z, ε].
    Reparam { stream: u32 },
    /// [] → standard normals.
    Randn { stream: u32, shape: Shape },
    /// [μ, logσ²] → batch mean of the KL to N(0, I).
    KlMean,
    /// [prediction, target] → scale · Σ terms.
    Loss { kind: LossKind, scale: f32 },
    /// [z, prior draws] → MMD² between their rows (inverse multiquadric kernel, C = 2·cols).
    Mmd,

    // ---- backward only ----
    /// [y, dy] → dy·act'(x), read through the forward output y.
    ActivationBackward { act: Act },
    /// [x] → Σ over rows (1×cols): bias gradients.
    ColumnSum,
    /// [dy] → zeros of `rows` rows with dy placed at row `start` (the adjoint of a slice).
    PadRows { start: usize, rows: usize },
    /// [logσ², ε, dz] → [dμ, dlogσ²].
    ReparamBackward,
    /// [μ, logσ², dloss] → [dμ, dlogσ²] of the batch-mean KL.
    KlBackward,
    /// [z, prior draws, dloss] → dz of MMD².
    MmdBackward,
    /// [prediction, target, dloss] → d prediction (and d target for SqErr).
    LossBackward { kind: LossKind, scale: f32 },

    // ---- convolutions and batch norm: NHWC images stored as batch × (h·w·c) ----
    /// [x, W, b] → act(conv(x, W) + b): x batch × (in_h·in_w·in_c), W (k_h·k_w·in_c) × out_c,
    /// b 1 × out_c; y batch × (out_h·out_w·out_c).
    Conv2d { geom: ConvGeom, act: Act },
    /// [x, W, b] → act(convᵀ(x, W) + b), the adjoint of `geom`: x batch × (out_h·out_w·out_c),
    /// W as `geom`'s, b 1 × in_c; y batch × (in_h·in_w·in_c).
    ConvTranspose2d { geom: ConvGeom, act: Act },
    /// [x, γ, β, running mean, running var] → [y, batch mean, 1/√(var + ε)] over rows ×
    /// `channels`, y = act(γ·x̂ + β) (training; the running statistics, constants of the
    /// graph, are updated in place on the GPU).
    BatchNorm { channels: usize, eps: f32, momentum: f32, act: Act },
    /// [x, γ, β, running mean, running var] → y = act(γ·x̂ + β) with the running statistics
    /// (evaluation).
    BatchNormEval { channels: usize, eps: f32, act: Act },
    /// [a, b] → the conv GEMM of `role` without bias or activation (backward only):
    /// Forward [x, W] → y; InputGrad [dy, W] → dx; WeightGrad [x, dy] → dW.
    ConvGemm { geom: ConvGeom, role: ConvRole },
    /// [t] → 1 × `channels`: Σ over every row and pixel (a conv's bias gradient).
    ChannelSum { channels: usize },
    /// [x, dy, γ, mean, invstd] → [dx, dγ, dβ]; with an activation, the forward's output y
    /// follows as a sixth input (act' is read through it).
    BatchNormBackward { channels: usize, act: Act },
    /// [x] → rows × `channels`: each channel's maximum over a row's positions (global max
    /// pooling of NHWC images).
    PositionMax { channels: usize },
    /// [x, dy] → dx: dy at each channel's maximum (the first, on ties), 0 elsewhere.
    PositionMaxBackward { channels: usize },
}

/// Which of a convolution's three GEMMs a `ConvGemm` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvRole {
    Forward,
    InputGrad,
    WeightGrad,
}

fn expect(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

impl Op {
    pub fn name(&self) -> String {
        match self {
            Op::Linear { act } => format!("linear+{}", act.name()),
            Op::Matmul { trans } => format!("matmul {}", trans.name()),
            Op::Activation { act } => act.name().to_string(),
            Op::Add => "add".into(),
            Op::Axpy { alpha } => format!("axpy α={alpha}"),
            Op::Scale { alpha } => format!("scale α={alpha}"),
            Op::Fill { value, .. } => format!("fill {value}"),
            Op::StopGradient => "stop_gradient".into(),
            Op::ConcatRows => "concat_rows".into(),
            Op::SliceRows { start, rows } => format!("slice_rows {start}..{}", start + rows),
            Op::Reparam { stream } => format!("reparam stream {stream}"),
            Op::Randn { stream, .. } => format!("randn stream {stream}"),
            Op::KlMean => "kl_mean".into(),
            Op::Mmd => "mmd".into(),
            Op::MmdBackward => "mmd_backward".into(),
            Op::Loss { kind, scale } => format!("{} ×{scale}", kind.name()),
            Op::ActivationBackward { act } => format!("{}_backward", act.name()),
            Op::ColumnSum => "column_sum".into(),
            Op::PadRows { start, rows } => format!("pad_rows at {start} of {rows}"),
            Op::ReparamBackward => "reparam_backward".into(),
            Op::KlBackward => "kl_backward".into(),
            Op::LossBackward { kind, scale } => format!("{}_backward ×{scale}", kind.name()),
            Op::Conv2d { geom, act } => format!("conv2d+{} {geom}", act.name()),
            Op::ConvTranspose2d { geom, act } => format!(
                "conv_transpose2d+{} {}x{}x{}x{} → {}x{}x{}",
                act.name(),
                geom.batch,
                geom.out_h,
                geom.out_w,
                geom.out_c,
                geom.in_h,
                geom.in_w,
                geom.in_c
            ),
            Op::BatchNorm { channels, act, .. } => format!("batch_norm+{} {channels} channels", act.name()),
            Op::BatchNormEval { channels, act, .. } => format!("batch_norm+{} eval {channels} channels", act.name()),
            Op::ConvGemm { geom, role } => format!("conv2d {role:?} {geom}"),
            Op::ChannelSum { channels } => format!("channel_sum {channels}"),
            Op::BatchNormBackward { channels, act } => format!("batch_norm+{}_backward {channels} channels", act.name()),
            Op::PositionMax { channels } => format!("position_max {channels} channels"),
            Op::PositionMaxBackward { channels } => format!("position_max_backward {channels} channels"),
        }
    }

    /// A short stem for the names of output tensors.
    pub fn short(&self) -> &'static str {
        match self {
            Op::Linear { .. } => "lin",
            Op::Matmul { .. } => "mm",
            Op::Activation { .. } => "act",
            Op::Add => "add",
            Op::Axpy { .. } => "axpy",
            Op::Scale { .. } => "scale",
            Op::Fill { .. } => "fill",
            Op::StopGradient => "sg",
            Op::ConcatRows => "cat",
            Op::SliceRows { .. } => "slice",
            Op::Reparam { .. } => "reparam",
            Op::Randn { .. } => "randn",
            Op::KlMean => "kl",
            Op::Mmd => "mmd",
            Op::MmdBackward => "dmmd",
            Op::Loss { .. } => "loss",
            Op::ActivationBackward { .. } => "dact",
            Op::ColumnSum => "colsum",
            Op::PadRows { .. } => "pad",
            Op::Conv2d { .. } => "conv",
            Op::ConvTranspose2d { .. } => "deconv",
            Op::BatchNorm { .. } | Op::BatchNormEval { .. } => "bn",
            Op::ConvGemm { .. } => "dconv",
            Op::ChannelSum { .. } => "chsum",
            Op::BatchNormBackward { .. } => "dbn",
            Op::PositionMax { .. } => "pmax",
            Op::PositionMaxBackward { .. } => "dpmax",
            Op::ReparamBackward => "dreparam",
            Op::KlBackward => "dkl",
            Op::LossBackward { .. } => "dloss",
        }
    }

    /// Output shapes from input shapes, or what is wrong with them.
    pub fn output_shapes(&self, s: &[Shape]) -> Result<Vec<Shape>, String> {
        let arity = |n: usize| expect(s.len() == n, || format!("expects {n} inputs, got {}", s.len()));
        let same = |a: Shape, b: Shape| expect(a == b, || format!("shapes {a} and {b} differ"));
        let scalar = |a: Shape| expect(a == Shape::SCALAR, || format!("expects a scalar, got {a}"));
        Ok(match self {
            Op::Linear { .. } => {
                arity(3)?;
                expect(s[0].cols == s[1].rows, || format!("x is {} but W is {}", s[0], s[1]))?;
                expect(s[2] == Shape { rows: 1, cols: s[1].cols }, || format!("bias is {}, W is {}", s[2], s[1]))?;
                vec![Shape { rows: s[0].rows, cols: s[1].cols }]
            }
            Op::Matmul { trans } => {
                arity(2)?;
                let (m, k) = if *trans == Trans::TN { (s[0].cols, s[0].rows) } else { (s[0].rows, s[0].cols) };
                let (k2, n) = if *trans == Trans::NT { (s[1].cols, s[1].rows) } else { (s[1].rows, s[1].cols) };
                expect(k == k2, || format!("inner dimensions {k} and {k2} differ ({} · {})", s[0], s[1]))?;
                vec![Shape { rows: m, cols: n }]
            }
            Op::Activation { .. } | Op::Scale { .. } | Op::StopGradient => {
                arity(1)?;
                vec![s[0]]
            }
            Op::Add | Op::Axpy { .. } | Op::ActivationBackward { .. } => {
                arity(2)?;
                same(s[0], s[1])?;
                vec![s[0]]
            }
            Op::Fill { shape, .. } | Op::Randn { shape, .. } => {
                arity(0)?;
                vec![*shape]
            }
            Op::ConcatRows => {
                expect(!s.is_empty(), || "nothing to concatenate".into())?;
                let cols = s[0].cols;
                expect(s.iter().all(|x| x.cols == cols), || "parts have different widths".into())?;
                vec![Shape { rows: s.iter().map(|x| x.rows).sum(), cols }]
            }
            Op::SliceRows { start, rows } => {
                arity(1)?;
                expect(*rows > 0 && start + rows <= s[0].rows, || format!("rows {start}..{} of {}", start + rows, s[0]))?;
                vec![Shape { rows: *rows, cols: s[0].cols }]
            }
            Op::PadRows { start, rows } => {
                arity(1)?;
                expect(start + s[0].rows <= *rows, || format!("{} at row {start} does not fit {rows} rows", s[0]))?;
                vec![Shape { rows: *rows, cols: s[0].cols }]
            }
            Op::Reparam { .. } => {
                arity(2)?;
                same(s[0], s[1])?;
                vec![s[0], s[0]]
            }
            Op::KlMean => {
                arity(2)?;
                same(s[0], s[1])?;
                vec![Shape::SCALAR]
            }
            Op::Mmd => {
                arity(2)?;
                same(s[0], s[1])?;
                expect(s[0].rows >= 2, || format!("{}: the unbiased MMD needs at least 2 rows", s[0]))?;
                vec![Shape::SCALAR]
            }
            Op::MmdBackward => {
                arity(3)?;
                same(s[0], s[1])?;
                scalar(s[2])?;
                vec![s[0]]
            }
            Op::Loss { .. } => {
                arity(2)?;
                same(s[0], s[1])?;
                vec![Shape::SCALAR]
            }
            Op::ColumnSum => {
                arity(1)?;
                vec![Shape { rows: 1, cols: s[0].cols }]
            }
            Op::ReparamBackward => {
                arity(3)?;
                same(s[0], s[1])?;
                same(s[0], s[2])?;
                vec![s[0], s[0]]
            }
            Op::KlBackward => {
                arity(3)?;
                same(s[0], s[1])?;
                scalar(s[2])?;
                vec![s[0], s[0]]
            }
            Op::LossBackward { kind, .. } => {
                arity(3)?;
                same(s[0], s[1])?;
                scalar(s[2])?;
                if *kind == LossKind::SqErr {
                    vec![s[0], s[0]]
                } else {
                    vec![s[0]]
                }
            }
            Op::Conv2d { geom: g, .. } | Op::ConvTranspose2d { geom: g, .. } => {
                arity(3)?;
                let t = matches!(self, Op::ConvTranspose2d { .. });
                let (x_cols, y_cols, bias) = if t {
                    (g.out_h * g.out_w * g.out_c, g.in_h * g.in_w * g.in_c, g.in_c)
                } else {
                    (g.in_h * g.in_w * g.in_c, g.out_h * g.out_w * g.out_c, g.out_c)
                };
                expect(s[0] == Shape { rows: g.batch, cols: x_cols }, || format!("x is {}, {g} needs {}x{x_cols}", s[0], g.batch))?;
                expect(s[1] == Shape { rows: g.k_h * g.k_w * g.in_c, cols: g.out_c }, || {
                    format!("W is {}, {g} needs {}x{}", s[1], g.k_h * g.k_w * g.in_c, g.out_c)
                })?;
                expect(s[2] == Shape { rows: 1, cols: bias }, || format!("bias is {}, needs 1x{bias}", s[2]))?;
                vec![Shape { rows: g.batch, cols: y_cols }]
            }
            Op::ConvGemm { geom: g, role } => {
                arity(2)?;
                let (x, y, w) = (
                    Shape { rows: g.batch, cols: g.in_h * g.in_w * g.in_c },
                    Shape { rows: g.batch, cols: g.out_h * g.out_w * g.out_c },
                    Shape { rows: g.k_h * g.k_w * g.in_c, cols: g.out_c },
                );
                let (a, b, out) = match role {
                    ConvRole::Forward => (x, w, y),
                    ConvRole::InputGrad => (y, w, x),
                    ConvRole::WeightGrad => (x, y, w),
                };
                expect(s[0] == a && s[1] == b, || format!("{role:?} of {g} takes {a} and {b}, got {} and {}", s[0], s[1]))?;
                vec![out]
            }
            Op::ChannelSum { channels } => {
                arity(1)?;
                expect(*channels > 0 && s[0].len().is_multiple_of(*channels), || format!("{} is not a whole number of {channels}-channel pixels", s[0]))?;
                vec![Shape { rows: 1, cols: *channels }]
            }
            Op::BatchNorm { channels, .. } | Op::BatchNormEval { channels, .. } => {
                arity(5)?;
                expect(*channels > 0 && s[0].len().is_multiple_of(*channels), || format!("{} is not a whole number of {channels}-channel rows", s[0]))?;
                let per_channel = Shape { rows: 1, cols: *channels };
                expect(s[1..].iter().all(|x| *x == per_channel), || format!("γ, β and the running statistics must be 1x{channels}"))?;
                if matches!(self, Op::BatchNorm { .. }) {
                    vec![s[0], per_channel, per_channel]
                } else {
                    vec![s[0]]
                }
            }
            Op::PositionMax { channels } | Op::PositionMaxBackward { channels } => {
                arity(if matches!(self, Op::PositionMax { .. }) { 1 } else { 2 })?;
                expect(*channels > 0 && s[0].cols.is_multiple_of(*channels), || {
                    format!("{} rows are not a whole number of {channels}-channel positions", s[0])
                })?;
                let pooled = Shape { rows: s[0].rows, cols: *channels };
                if matches!(self, Op::PositionMax { .. }) {
                    vec![pooled]
                } else {
                    same(s[1], pooled)?;
                    vec![s[0]]
                }
            }
            Op::BatchNormBackward { channels, act } => {
                arity(if *act == Act::None { 5 } else { 6 })?;
                if *act != Act::None {
                    same(s[0], s[5])?;
                }
                same(s[0], s[1])?;
                let per_channel = Shape { rows: 1, cols: *channels };
                vec![s[0], per_channel, per_channel]
            }
        })
    }

    /// Elements of each scratch buffer the op's kernels need beside its inputs and outputs
    /// (partial sums, per-row values), given its input shapes. The planner places them in
    /// slots live for this node alone, so that every buffer a step uses is planned.
    pub fn scratch_lens(&self, s: &[Shape]) -> Vec<usize> {
        use crate::kernels::{batch_norm, kl, losses, mmd};
        match self {
            Op::KlMean => kl::kl_mean_scratch_lens(s[0].rows),
            Op::Mmd => mmd::mmd_scratch_lens(s[0].rows),
            Op::MmdBackward => mmd::mmd_backward_scratch_lens(s[0].rows),
            Op::Loss { kind: LossKind::SoftmaxCe, .. } => losses::softmax_ce_scratch_lens(s[0].rows),
            Op::Loss { .. } => losses::scratch_lens(s[0].len()),
            Op::BatchNorm { channels, .. } | Op::BatchNormBackward { channels, .. } => vec![batch_norm::scratch_len(s[0].len() / channels, *channels)],
            _ => vec![],
        }
    }

    /// True for ops that do not depend on their inputs' values for gradients (no inputs,
    /// or gradient blocked).
    pub fn blocks_gradient(&self) -> bool {
        matches!(self, Op::StopGradient | Op::Fill { .. } | Op::Randn { .. })
    }
}

/// Appends the backward of `node` to the graph: given the adjoints of its outputs
/// (`douts`, None where an output gets no gradient) and which inputs need one, returns the
/// contribution to each input's adjoint.
pub fn backward(
    g: &mut Graph,
    op: &Op,
    inputs: &[TensorId],
    outputs: &[TensorId],
    douts: &[Option<TensorId>],
    needs: &[bool],
    section: &Section,
) -> Result<Vec<Option<TensorId>>, String> {
    let emit = |g: &mut Graph, op: Op, ins: Vec<TensorId>| g.push(op, ins, section.clone());
    let mut grads = vec![None; inputs.len()];
    let Some(dy) = douts[0].or_else(|| douts.iter().flatten().next().copied()) else {
        return Ok(grads);
    };
    match op {
        Op::Linear { act } => {
            // y = act(x·W + b):  dpre = dy·act'(·);  dx = dpre·Wᵀ;  dW = xᵀ·dpre;  db = Σ_rows dpre
            let (x, w) = (inputs[0], inputs[1]);
            let dpre = if *act == Act::None { dy } else { emit(g, Op::ActivationBackward { act: *act }, vec![outputs[0], dy])[0] };
            if needs[0] {
                grads[0] = Some(emit(g, Op::Matmul { trans: Trans::NT }, vec![dpre, w])[0]);
            }
            if needs[1] {
                grads[1] = Some(emit(g, Op::Matmul { trans: Trans::TN }, vec![x, dpre])[0]);
            }
            if needs[2] {
                grads[2] = Some(emit(g, Op::ColumnSum, vec![dpre])[0]);
            }
        }
        Op::Matmul { trans } => {
            let (a, b) = (inputs[0], inputs[1]);
            // C = A·B: dA = dC·Bᵀ, dB = Aᵀ·dC.   C = A·Bᵀ: dA = dC·B, dB = dCᵀ·A.
            // C = Aᵀ·B: dA = B·dCᵀ, dB = A·dC.
            let (da, db) = match trans {
                Trans::NN => ((Trans::NT, dy, b), (Trans::TN, a, dy)),
                Trans::NT => ((Trans::NN, dy, b), (Trans::TN, dy, a)),
                Trans::TN => ((Trans::NT, b, dy), (Trans::NN, a, dy)),
            };
            if needs[0] {
                grads[0] = Some(emit(g, Op::Matmul { trans: da.0 }, vec![da.1, da.2])[0]);
            }
            if needs[1] {
                grads[1] = Some(emit(g, Op::Matmul { trans: db.0 }, vec![db.1, db.2])[0]);
            }
        }
        Op::Activation { act } => {
            grads[0] = Some(emit(g, Op::ActivationBackward { act: *act }, vec![outputs[0], dy])[0]);
        }
        Op::Add => {
            grads = vec![Some(dy), Some(dy)];
        }
        Op::Axpy { alpha } => {
            grads[0] = Some(dy);
            if needs[1] {
                grads[1] = Some(if *alpha == 1.0 { dy } else { emit(g, Op::Scale { alpha: *alpha }, vec![dy])[0] });
            }
        }
        Op::Scale { alpha } => {
            grads[0] = Some(if *alpha == 1.0 { dy } else { emit(g, Op::Scale { alpha: *alpha }, vec![dy])[0] });
        }
        Op::Fill { .. } | Op::Randn { .. } | Op::StopGradient => {}
        Op::ConcatRows => {
            let mut start = 0;
            for (i, &part) in inputs.iter().enumerate() {
                let rows = g.shape(part).rows;
                if needs[i] {
                    grads[i] = Some(emit(g, Op::SliceRows { start, rows }, vec![dy])[0]);
                }
                start += rows;
            }
        }
        Op::SliceRows { start, .. } => {
            let rows = g.shape(inputs[0]).rows;
            grads[0] = Some(emit(g, Op::PadRows { start: *start, rows }, vec![dy])[0]);
        }
        Op::Reparam { .. } => {
            // Only z carries a gradient; ε is a draw, constant for the step.
            let Some(dz) = douts[0] else { return Ok(grads) };
            let d = emit(g, Op::ReparamBackward, vec![inputs[1], outputs[1], dz]);
            grads = vec![Some(d[0]), Some(d[1])];
        }
        Op::KlMean => {
            let d = emit(g, Op::KlBackward, vec![inputs[0], inputs[1], dy]);
            grads = vec![Some(d[0]), Some(d[1])];
        }
        Op::Mmd => {
            if needs[1] {
                return Err("mmd: no gradient to the prior draws (they must be a draw or a constant)".into());
            }
            grads[0] = Some(emit(g, Op::MmdBackward, vec![inputs[0], inputs[1], dy])[0]);
        }
        Op::Loss { kind, scale } => {
            if needs[1] && *kind != LossKind::SqErr {
                return Err(format!("{}: no gradient to the target", kind.name()));
            }
            let d = emit(g, Op::LossBackward { kind: *kind, scale: *scale }, vec![inputs[0], inputs[1], dy]);
            grads[0] = Some(d[0]);
            if *kind == LossKind::SqErr {
                grads[1] = Some(d[1]);
            }
        }
        Op::Conv2d { geom, act } | Op::ConvTranspose2d { geom, act } => {
            // y = act(conv(x, W) + b): dpre = dy·act'(·); dx, dW by the GEMMs of the input and
            // weight gradients; db = Σ dpre per channel. A transposed convolution swaps the
            // roles: its forward is the input-gradient GEMM, its input gradient the forward.
            let t = matches!(op, Op::ConvTranspose2d { .. });
            let (x, w) = (inputs[0], inputs[1]);
            let dpre = if *act == Act::None { dy } else { emit(g, Op::ActivationBackward { act: *act }, vec![outputs[0], dy])[0] };
            let geom = *geom;
            if needs[0] {
                let role = if t { ConvRole::Forward } else { ConvRole::InputGrad };
                grads[0] = Some(emit(g, Op::ConvGemm { geom, role }, vec![dpre, w])[0]);
            }
            if needs[1] {
                let ins = if t { vec![dpre, x] } else { vec![x, dpre] };
                grads[1] = Some(emit(g, Op::ConvGemm { geom, role: ConvRole::WeightGrad }, ins)[0]);
            }
            if needs[2] {
                let channels = if t { geom.in_c } else { geom.out_c };
                grads[2] = Some(emit(g, Op::ChannelSum { channels }, vec![dpre])[0]);
            }
        }
        Op::BatchNorm { channels, act, .. } => {
            // The batch statistics depend on x: the backward folds their gradients in. No
            // gradient reaches the running statistics. The activation's derivative is read
            // through y, inside the backward's own passes.
            let Some(dy) = douts[0] else { return Ok(grads) };
            let mut ins = vec![inputs[0], dy, inputs[1], outputs[1], outputs[2]];
            if *act != Act::None {
                ins.push(outputs[0]);
            }
            let d = emit(g, Op::BatchNormBackward { channels: *channels, act: *act }, ins);
            grads[0] = Some(d[0]);
            grads[1] = Some(d[1]);
            grads[2] = Some(d[2]);
        }
        Op::PositionMax { channels } => {
            grads[0] = Some(emit(g, Op::PositionMaxBackward { channels: *channels }, vec![inputs[0], dy])[0]);
        }
        other => return Err(format!("{} is backward-only and has no gradient", other.name())),
    }
    Ok(grads)
}

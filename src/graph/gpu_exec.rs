//! The GPU executor: allocates the planned buffers once, prepares one launch per kernel
//! once (bind groups included), and runs a step as one compute pass in one command
//! encoder with one submission. Scalars (losses) are copied to a staging buffer and mapped
//! asynchronously, double-buffered, so a training loop never waits for the GPU.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use web_time::Instant;

use super::ops::ConvRole;
use super::plan::{Placement, Plan};
use super::{Graph, GraphError, LossKind, Op, Result, Section, TensorId, TensorKind};
use crate::gpu::{Gpu, GpuBuffer, Launch};
use crate::kernels::batch_norm::{self, BatchNormSettings};
use crate::kernels::conv2d;
use crate::kernels::matmul::{self, MatmulSpec};
use crate::kernels::reparam;
use crate::kernels::{adam, ema, rmsprop};
use crate::kernels::{cast, elementwise, kl, losses, mmd, pool, reduce};
use crate::types::{AdamParams, RngKey, UpdateRule};

/// Tensors by name with their [rows, cols] shape and values (a checkpoint's layout).
pub type NamedTensors = Vec<(String, [usize; 2], Vec<f32>)>;
/// Values looked up by a parameter's name (a checkpoint's, or another executor's).
pub type ByName<'a> = &'a dyn Fn(&str) -> Option<Vec<f32>>;
/// One readback: the step and each loss by name.
pub type Readback = (u64, Vec<(String, f32)>);
use crate::types::{Act, DType, Precision, Trans};

#[derive(Clone, Debug)]
pub struct ExecOptions {
    /// Seed of every random draw; the step number and the op's stream complete the key.
    pub seed: u64,
    /// Reuse buffers by liveness (false: one buffer per tensor, for checking).
    pub reuse: bool,
    /// The update rule per group (by group index); `None`: compute gradients only.
    pub update: Option<Vec<UpdateRule>>,
    /// Storage of the matmuls' operands.
    pub precision: Precision,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions { seed: 0, reuse: true, update: None, precision: Precision::F32 }
    }
}

/// The f16 step's static loss scale, 2¹⁰: gradients up to 64 stay finite in f16.
pub const LOSS_SCALE: f32 = 1024.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MapState {
    Idle,
    Pending,
    Ready,
}

/// One staging buffer for the step's scalars.
struct Staging {
    buffer: wgpu::Buffer,
    state: Arc<Mutex<MapState>>,
    step: u64,
}

/// Host-side timings of the last step.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepTiming {
    /// Writing per-step uniforms, recording the pass and submitting.
    pub host: Duration,
    /// Of which: writing uniforms and recording the pass (without the submit call).
    pub record: Duration,
}

/// A moving average of one group's weights (`GpuExecutor::average_group`).
struct Average {
    group: usize,
    decay: f32,
    buffer: GpuBuffer,
    launch: Launch,
}

struct GroupBuffers {
    params: GpuBuffer,
    grads: GpuBuffer,
    m: GpuBuffer,
    v: GpuBuffer,
    /// The f16 copy of `params` the matmuls read (mixed precision only).
    half: Option<GpuBuffer>,
}

pub struct GpuExecutor<'g> {
    pub gpu: &'g Gpu,
    pub graph: Graph,
    pub plan: Plan,
    pub options: ExecOptions,
    /// The plan's slot buffers (tensors' views and nodes' scratch point into them).
    slots: Vec<GpuBuffer>,
    views: Vec<Option<GpuBuffer>>,
    groups: Vec<GroupBuffers>,
    /// Launches recorded before the graph's (e.g. gathering the data batch into an input).
    prelude: Vec<Launch>,
    /// f16 copies of non-parameter matmul operands, made once per tensor and step (a tensor
    /// never changes after it is computed, and each copy has a buffer of its own).
    half_copies: std::collections::HashMap<TensorId, GpuBuffer>,
    /// The f16 copies whose cast is already recorded (each is cast once per step).
    cast_done: std::cell::RefCell<std::collections::HashSet<TensorId>>,
    /// f32 → f16 casts of every group's parameters, recorded after the prelude (mixed
    /// precision only): after an Adam update and after `load_params` alike.
    param_casts: Vec<Launch>,
    launches: Vec<Launch>,
    /// (launch index, elements, stream) of every random draw.
    rng: Vec<(usize, usize, u32)>,
    /// Each group's update launch, its length and its rule.
    optimizer: Vec<(Launch, usize, UpdateRule)>,
    /// Moving averages of groups' weights, each updated after its group's update.
    averages: Vec<Average>,
    /// Updates applied per group (Adam's t).
    pub updates: Vec<u32>,
    /// Steps run (the RNG's step number).
    pub step: u64,
    staging: Vec<Staging>,
    pub last_timing: StepTiming,
    /// When every staging buffer is still in flight, wait for one instead of skipping
    /// the readback (tests that need every step's losses).
    pub wait_for_readback: bool,
    /// Readbacks mapped and copied out, not yet handed to the caller.
    collected: Vec<(u64, Vec<(String, f32)>)>,
    /// Per group: the number of launches after which its gradient is final (the end of its
    /// objective's backward), for steps that reduce gradients across replicas.
    grad_ready: Vec<usize>,
    /// Per group: a host-readable copy of its gradient (made on first use), and the host
    /// memory the reduction works in.
    grad_staging: Vec<Option<wgpu::Buffer>>,
    grad_host: Vec<Vec<f32>>,
    /// Which rows of a batch split over `replicas` processes this one holds: its random
    /// draws are those rows' numbers of the whole batch's.
    replica: (usize, usize),
    /// Host time spent reducing gradients in the last `step_reduced`.
    pub last_reduce: Duration,
}

impl<'g> GpuExecutor<'g> {
    pub fn new(gpu: &'g Gpu, graph: Graph, options: ExecOptions) -> Result<Self> {
        if options.precision == Precision::F16 && !gpu.features.shader_f16 {
            return Err(GraphError::Invalid(format!(
                "precision f16 needs SHADER_F16, which {} ({:?}) does not have: use precision f32",
                gpu.info.name, gpu.info.backend
            )));
        }
        // Offsets into a group's buffers are bound as views: aligned in elements of 4 bytes,
        // or of 2 for the f16 copies.
        let elem_bytes = if options.precision == Precision::F16 { 2 } else { 4 };
        let align = (gpu.limits.min_storage_buffer_offset_alignment as usize / elem_bytes).max(16 / elem_bytes);
        let plan = Plan::new(&graph, align, options.reuse, options.precision);
        if let Some(rules) = &options.update {
            if rules.len() != graph.groups.len() {
                return Err(GraphError::Invalid(format!("{} update rules for {} parameter groups", rules.len(), graph.groups.len())));
            }
            if let Some(g) = graph.groups.iter().find(|g| g.grads.len() != g.params.len()) {
                return Err(GraphError::Invalid(format!("group {} has no objective: call Graph::objective first", g.name)));
            }
        }

        // Buffers, allocated once.
        let slots: Vec<GpuBuffer> = plan
            .slots
            .iter()
            .enumerate()
            .map(|(i, &bytes)| gpu.zeros(&format!("slot {i}"), (bytes / 4) as usize, DType::F32))
            .collect::<std::result::Result<_, _>>()?;
        let mut groups = vec![];
        for (gi, group) in graph.groups.iter().enumerate() {
            let n = plan.group_len[gi];
            let make = |what: &str| gpu.zeros(&format!("{} {what}", group.name), n, DType::F32);
            let half = match options.precision {
                Precision::F16 => Some(gpu.zeros(&format!("{} params f16", group.name), n, DType::F16)?),
                Precision::F32 => None,
            };
            let buffers = GroupBuffers { params: make("params")?, grads: make("grads")?, m: make("adam m")?, v: make("adam v")?, half };
            let mut flat = vec![0.0f32; n];
            for &p in &group.params {
                if let Placement::GroupParam { offset, .. } = plan.placement[p] {
                    let init = graph.tensors[p].init.as_ref().expect("params have initial values");
                    flat[offset..offset + init.len()].copy_from_slice(init);
                }
            }
            gpu.write_f32(&buffers.params, &flat)?;
            groups.push(buffers);
        }
        let mut views: Vec<Option<GpuBuffer>> = vec![None; graph.tensors.len()];
        for (t, tensor) in graph.tensors.iter().enumerate() {
            let len = tensor.shape.len();
            let at = |buf: &GpuBuffer, offset: usize| GpuBuffer { offset: buf.offset + offset as u64 * 4, len, ..buf.clone() };
            views[t] = Some(match plan.placement[t] {
                Placement::Slot(s) => GpuBuffer { len, ..slots[s].clone() },
                Placement::GroupParam { group, offset } => at(&groups[group].params, offset),
                Placement::GroupGrad { group, offset } => at(&groups[group].grads, offset),
                Placement::Const if options.precision == Precision::F16 && graph.seeds.contains(&t) => gpu.upload_f32(&tensor.name, &[LOSS_SCALE])?,
                Placement::Const => gpu.upload_f32(&tensor.name, tensor.init.as_deref().unwrap_or(&vec![0.0; len]))?,
                Placement::Input => {
                    if tensor.kind != TensorKind::Input {
                        return Err(GraphError::Invalid(format!("tensor {} was not placed", tensor.name)));
                    }
                    gpu.zeros(&tensor.name, len, DType::F32)?
                }
            });
        }

        let half_copies =
            plan.half.iter().map(|&t| Ok((t, gpu.zeros(&format!("{} f16", graph.name(t)), graph.shape(t).len(), DType::F16)?))).collect::<Result<_>>()?;
        let mut exec = GpuExecutor {
            gpu,
            plan,
            slots,
            views,
            groups,
            prelude: vec![],
            half_copies,
            cast_done: Default::default(),
            param_casts: vec![],
            launches: vec![],
            rng: vec![],
            optimizer: vec![],
            averages: vec![],
            updates: vec![0; graph.groups.len()],
            step: 0,
            staging: vec![],
            last_timing: StepTiming::default(),
            wait_for_readback: false,
            collected: vec![],
            grad_ready: vec![],
            grad_staging: vec![],
            grad_host: vec![],
            replica: (0, 1),
            last_reduce: Duration::ZERO,
            graph,
            options,
        };
        let mut section_end: std::collections::HashMap<String, usize> = Default::default();
        for id in 0..exec.graph.nodes.len() {
            exec.prepare_node(id)?;
            if let Section::Backward(name) = &exec.graph.nodes[id].section {
                section_end.insert(name.clone(), exec.launches.len());
            }
        }
        // A group's gradient is final where its objective's backward ends (every launch, for
        // a group whose objective has no section of its own).
        exec.grad_ready = exec.graph.groups.iter().map(|g| section_end.get(&g.name).copied().unwrap_or(exec.launches.len())).collect();
        exec.grad_staging = exec.graph.groups.iter().map(|_| None).collect();
        exec.grad_host = exec.graph.groups.iter().map(|_| vec![]).collect();
        for b in &exec.groups {
            if let Some(half) = &b.half {
                exec.param_casts.push(cast::to_f16(gpu, &b.params, half)?);
            }
        }
        if let Some(rules) = exec.options.update.clone() {
            for (gi, rule) in rules.into_iter().enumerate() {
                let b = &exec.groups[gi];
                let rule = rule.with_grad_scale(1.0 / exec.loss_scale());
                // RMSProp keeps its mean square in the group's second buffer (`v`); its `m`
                // stays zero.
                let launch = match rule {
                    UpdateRule::Adam(hp) => adam::adam(gpu, hp, &b.grads, &b.params, &b.m, &b.v)?,
                    UpdateRule::RmsProp(hp) => rmsprop::rmsprop(gpu, hp, &b.grads, &b.params, &b.v)?,
                };
                exec.optimizer.push((launch, b.params.len, rule));
            }
        }
        let out_bytes = (exec.graph.outputs.len().max(1) * 4) as u64;
        for _ in 0..exec.plan.readback_ring {
            exec.staging.push(Staging {
                buffer: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("scalars readback"),
                    size: out_bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                state: Arc::new(Mutex::new(MapState::Idle)),
                step: 0,
            });
        }
        Ok(exec)
    }

    pub fn view(&self, t: TensorId) -> &GpuBuffer {
        self.views[t].as_ref().expect("every tensor has a view")
    }

    /// The factor every gradient carries: 1, or `LOSS_SCALE` in mixed precision (what
    /// `read` of a gradient returns is scaled by it).
    pub fn loss_scale(&self) -> f32 {
        match self.options.precision {
            Precision::F32 => 1.0,
            Precision::F16 => LOSS_SCALE,
        }
    }

    /// A matmul operand as the matmul reads it: the tensor itself in f32; in mixed
    /// precision a view of its group's f16 copy for a parameter, else an f16 buffer of its
    /// own filled by a cast recorded before the first matmul that reads it.
    /// Bytes of the uniform blocks of every launch (each dispatch's parameters): the one
    /// kind of buffer the plan does not size, as it depends on the kernels chosen.
    pub fn uniform_bytes(&self) -> u64 {
        self.uniforms().map(|b| b.size()).sum()
    }

    /// How many uniform blocks the launches hold.
    pub fn uniform_count(&self) -> usize {
        self.uniforms().count()
    }

    fn uniforms(&self) -> impl Iterator<Item = &wgpu::Buffer> {
        let all = self.prelude.iter().chain(&self.param_casts).chain(&self.launches).chain(self.optimizer.iter().map(|(l, _, _)| l));
        all.filter_map(|l| l.params.as_ref())
    }

    fn matmul_operand(&self, t: TensorId, launches: &mut Vec<Launch>) -> Result<GpuBuffer> {
        let view = self.view(t).clone();
        if self.options.precision == Precision::F32 {
            return Ok(view);
        }
        if let Placement::GroupParam { group, offset } = self.plan.placement[t] {
            let half = self.groups[group].half.as_ref().expect("f16 copies exist in mixed precision");
            return Ok(GpuBuffer { offset: half.offset + offset as u64 * 2, len: view.len, ..half.clone() });
        }
        // The plan's f16 copy, cast where the first matmul reads it.
        let half = self.half_copies.get(&t).ok_or_else(|| GraphError::Invalid(format!("tensor {} has no planned f16 copy", self.graph.name(t))))?;
        if self.cast_done.borrow_mut().insert(t) {
            launches.push(cast::to_f16(self.gpu, &view, half)?);
        }
        Ok(half.clone())
    }

    fn prepare_node(&mut self, id: usize) -> Result<()> {
        let node = self.graph.nodes[id].clone();
        let gpu = self.gpu;
        let v = |k: usize| self.view(node.inputs[k]).clone();
        let out = |k: usize| self.view(node.outputs[k]).clone();
        let shape = |t: TensorId| self.graph.shape(t);
        // Planned scratch (see `Op::scratch_lens`), in the slots the plan chose.
        let scratch: Vec<GpuBuffer> = self.plan.scratch[id].iter().map(|&(slot, len)| GpuBuffer { len, ..self.slots[slot].clone() }).collect();
        let mut launches: Vec<Launch> = vec![];
        let mut rng = None;
        match &node.op {
            Op::Linear { act } => {
                let (x, w) = (shape(node.inputs[0]), shape(node.inputs[1]));
                let spec = MatmulSpec::new(x.rows, w.cols, x.cols, Trans::NN).act(*act);
                let (a, b) = (self.matmul_operand(node.inputs[0], &mut launches)?, self.matmul_operand(node.inputs[1], &mut launches)?);
                launches.push(matmul::matmul(gpu, &spec, &a, &b, Some(&v(2)), &out(0))?);
            }
            Op::Matmul { trans } => {
                let (a, c) = (shape(node.inputs[0]), shape(node.outputs[0]));
                let k = if *trans == Trans::TN { a.rows } else { a.cols };
                let (a, b) = (self.matmul_operand(node.inputs[0], &mut launches)?, self.matmul_operand(node.inputs[1], &mut launches)?);
                launches.push(matmul::matmul(gpu, &MatmulSpec::new(c.rows, c.cols, k, *trans), &a, &b, None, &out(0))?);
            }
            Op::Activation { act } => launches.push(elementwise::activation_forward(gpu, *act, &v(0), &out(0))?),
            Op::ActivationBackward { act } => launches.push(elementwise::activation_backward(gpu, *act, &v(0), &v(1), &out(0))?),
            Op::Add => launches.push(elementwise::add(gpu, &v(0), &v(1), &out(0))?),
            Op::Axpy { alpha } => launches.push(elementwise::axpy(gpu, &v(0), *alpha, &v(1), &out(0))?),
            Op::Scale { alpha } => launches.push(elementwise::scale(gpu, *alpha, &v(0), &out(0))?),
            Op::StopGradient => launches.push(elementwise::scale(gpu, 1.0, &v(0), &out(0))?),
            Op::Fill { value, .. } => launches.push(elementwise::fill(gpu, *value, &out(0))?),
            Op::ConcatRows => {
                let mut at = 0;
                for k in 0..node.inputs.len() {
                    let part = v(k);
                    launches.push(elementwise::copy(gpu, &part, 0, &out(0), at, part.len)?);
                    at += part.len;
                }
            }
            Op::SliceRows { start, rows } => {
                let cols = shape(node.inputs[0]).cols;
                launches.push(elementwise::copy(gpu, &v(0), start * cols, &out(0), 0, rows * cols)?);
            }
            Op::PadRows { start, .. } => {
                let cols = shape(node.inputs[0]).cols;
                launches.push(elementwise::fill(gpu, 0.0, &out(0))?);
                launches.push(elementwise::copy(gpu, &v(0), 0, &out(0), start * cols, v(0).len)?);
            }
            Op::Reparam { stream } => {
                rng = Some((v(0).len, *stream));
                let key = RngKey { seed: self.options.seed, step: 0, stream: *stream };
                launches.push(reparam::reparam_forward(gpu, key, &v(0), &v(1), &out(0), &out(1))?);
            }
            Op::Randn { stream, .. } => {
                rng = Some((out(0).len, *stream));
                let key = RngKey { seed: self.options.seed, step: 0, stream: *stream };
                launches.push(reparam::randn(gpu, key, &out(0))?);
            }
            Op::ReparamBackward => launches.push(reparam::reparam_backward(gpu, &v(0), &v(1), &v(2), &out(0), &out(1))?),
            Op::KlMean => {
                let s = shape(node.inputs[0]);
                launches.extend(kl::kl_mean(gpu, s.rows, s.cols, &v(0), &v(1), &out(0), &scratch)?);
            }
            Op::Mmd => {
                let s = shape(node.inputs[0]);
                launches.extend(mmd::mmd(gpu, s.rows, s.cols, &v(0), &v(1), &out(0), &scratch)?);
            }
            Op::MmdBackward => {
                let s = shape(node.inputs[0]);
                launches.extend(mmd::mmd_backward(gpu, s.rows, s.cols, &v(0), &v(1), &v(2), &out(0), &scratch)?);
            }
            Op::KlBackward => {
                let s = shape(node.inputs[0]);
                let scale = 1.0 / s.rows as f32;
                launches.push(kl::kl_backward(gpu, s.rows, s.cols, &v(0), &v(1), &v(2), scale, &out(0), &out(1))?);
            }
            Op::Loss { kind: LossKind::SoftmaxCe, scale } => {
                let s = shape(node.inputs[0]);
                launches.extend(losses::softmax_ce(gpu, s.rows, s.cols, &v(0), &v(1), *scale, &out(0), &scratch)?);
            }
            Op::LossBackward { kind: LossKind::SoftmaxCe, scale } => {
                let s = shape(node.inputs[0]);
                launches.push(losses::softmax_ce_backward(gpu, s.rows, s.cols, &v(0), &v(1), &v(2), *scale, &out(0))?);
            }
            Op::Loss { kind, scale } => launches.extend(match kind {
                LossKind::BceProb => losses::bce_prob(gpu, &v(0), &v(1), *scale, &out(0), &scratch)?,
                LossKind::BceLogits => losses::bce_logits(gpu, &v(0), &v(1), *scale, &out(0), &scratch)?,
                LossKind::SqErr => losses::sq_err(gpu, &v(0), &v(1), *scale, &out(0), &scratch)?,
                LossKind::SoftmaxCe => unreachable!("handled above"),
            }),
            Op::LossBackward { kind, scale } => launches.push(match kind {
                LossKind::BceProb => losses::bce_prob_backward(gpu, &v(0), &v(1), &v(2), *scale, &out(0))?,
                LossKind::BceLogits => losses::bce_logits_backward(gpu, &v(0), &v(1), &v(2), *scale, &out(0))?,
                LossKind::SqErr => losses::sq_err_backward(gpu, &v(0), &v(1), &v(2), *scale, &out(0), &out(1))?,
                LossKind::SoftmaxCe => unreachable!("handled above"),
            }),
            Op::ColumnSum => {
                let s = shape(node.inputs[0]);
                launches.push(reduce::column_sum(gpu, &v(0), s.rows, s.cols, &out(0))?);
            }
            Op::Conv2d { geom, act } => launches.push(conv2d::conv2d_forward(gpu, geom, *act, &v(0), &v(1), Some(&v(2)), &out(0))?),
            Op::ConvTranspose2d { geom, act } => launches.extend(conv2d::conv_transpose2d_forward(gpu, geom, *act, &v(0), &v(1), Some(&v(2)), &out(0))?),
            Op::ConvGemm { geom, role } => match role {
                ConvRole::Forward => launches.push(conv2d::conv2d_forward(gpu, geom, Act::None, &v(0), &v(1), None, &out(0))?),
                ConvRole::InputGrad => launches.extend(conv2d::conv2d_backward_input(gpu, geom, &v(0), &v(1), &out(0))?),
                ConvRole::WeightGrad => launches.push(conv2d::conv2d_backward_weight(gpu, geom, &v(0), &v(1), &out(0))?),
            },
            Op::PositionMax { channels } => {
                let x = shape(node.inputs[0]);
                launches.push(pool::position_max(gpu, x.rows, x.cols / channels, *channels, &v(0), &out(0))?);
            }
            Op::PositionMaxBackward { channels } => {
                let x = shape(node.inputs[0]);
                launches.push(pool::position_max_backward(gpu, x.rows, x.cols / channels, *channels, &v(0), &v(1), &out(0))?);
            }
            Op::ChannelSum { channels } => {
                let n = v(0).len;
                launches.push(reduce::column_sum(gpu, &v(0), n / channels, *channels, &out(0))?);
            }
            Op::BatchNorm { channels, eps, momentum, act } => {
                let rows = v(0).len / channels;
                let s = BatchNormSettings { eps: *eps, momentum: *momentum, act: *act };
                launches.extend(batch_norm::batch_norm_forward(
                    gpu,
                    rows,
                    *channels,
                    s,
                    &v(0),
                    &v(1),
                    &v(2),
                    &v(3),
                    &v(4),
                    &out(1),
                    &out(2),
                    &out(0),
                    &scratch[0],
                )?);
            }
            Op::BatchNormEval { channels, eps, act } => {
                let rows = v(0).len / channels;
                let s = BatchNormSettings { eps: *eps, momentum: 0.0, act: *act };
                launches.push(batch_norm::batch_norm_forward_eval(gpu, rows, *channels, s, &v(0), &v(1), &v(2), &v(3), &v(4), &out(0))?);
            }
            Op::BatchNormBackward { channels, act } => {
                let rows = v(0).len / channels;
                let y = (*act != Act::None).then(|| v(5));
                launches.extend(batch_norm::batch_norm_backward(
                    gpu,
                    rows,
                    *channels,
                    *act,
                    &v(0),
                    y.as_ref(),
                    &v(1),
                    &v(2),
                    &v(3),
                    &v(4),
                    &out(0),
                    &out(1),
                    &out(2),
                    &scratch[0],
                )?);
            }
        }
        if let Some((n, stream)) = rng {
            self.rng.push((self.launches.len(), n, stream));
        }
        self.launches.extend(launches);
        Ok(())
    }

    /// Dispatches one step records (prelude, graph kernels, one Adam per group when training).
    pub fn dispatches_per_step(&self) -> usize {
        self.prelude.len() + self.param_casts.len() + self.launches.len() + self.optimizer.len()
    }

    /// Every launch of a step in order (prelude, graph, Adam), for profiling.
    pub fn step_launches(&self) -> Vec<&Launch> {
        self.prelude.iter().chain(&self.param_casts).chain(&self.launches).chain(self.optimizer.iter().map(|(l, _, _)| l)).collect()
    }

    /// Adds a launch recorded at the start of every step, before the graph's kernels.
    pub fn push_prelude(&mut self, launch: Launch) -> usize {
        self.prelude.push(launch);
        self.prelude.len() - 1
    }

    pub fn prelude(&self, index: usize) -> &Launch {
        &self.prelude[index]
    }

    /// Every parameter by name with its shape and values (one download per group buffer).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_params(&self) -> Result<NamedTensors> {
        pollster::block_on(self.read_params_async())
    }

    pub async fn read_params_async(&self) -> Result<NamedTensors> {
        self.read_group_buffers(|b| &b.params).await
    }

    /// Adam's first and second moments by parameter name.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_moments(&self) -> Result<(NamedTensors, NamedTensors)> {
        pollster::block_on(self.read_moments_async())
    }

    pub async fn read_moments_async(&self) -> Result<(NamedTensors, NamedTensors)> {
        Ok((self.read_group_buffers(|b| &b.m).await?, self.read_group_buffers(|b| &b.v).await?))
    }

    async fn read_group_buffers(&self, which: impl Fn(&GroupBuffers) -> &GpuBuffer) -> Result<NamedTensors> {
        let mut out = vec![];
        for gi in 0..self.graph.groups.len() {
            out.extend(self.read_group_flat(gi, which(&self.groups[gi])).await?);
        }
        Ok(out)
    }

    /// A buffer laid out as group `gi`'s parameters, split into them by name.
    async fn read_group_flat(&self, gi: usize, buffer: &GpuBuffer) -> Result<NamedTensors> {
        let flat = self.gpu.download_f32_async(buffer).await?;
        let mut out = vec![];
        for &p in &self.graph.groups[gi].params {
            let Placement::GroupParam { offset, .. } = self.plan.placement[p] else { unreachable!("params live in their group") };
            let s = self.graph.shape(p);
            out.push((self.graph.name(p).to_string(), [s.rows, s.cols], flat[offset..offset + s.len()].to_vec()));
        }
        Ok(out)
    }

    /// Keeps a moving average of group `group`'s weights with `decay` (warming up as
    /// `ema::decay_at` says), updated after every update of the group; it starts from the
    /// weights the group has now (see `restart_averages`).
    pub fn average_group(&mut self, group: usize, decay: f32) -> Result<()> {
        let Some((_, n, _)) = self.optimizer.get(group) else {
            return Err(GraphError::Invalid(format!("group {group} has no update rule to average after")));
        };
        if self.averages.iter().any(|a| a.group == group) {
            return Err(GraphError::Invalid(format!("group {} is averaged already", self.graph.groups[group].name)));
        }
        let buffer = self.gpu.zeros(&format!("{} average", self.graph.groups[group].name), *n, DType::F32)?;
        let launch = ema::ema(self.gpu, decay, &self.groups[group].params, &buffer)?;
        self.averages.push(Average { group, decay, buffer, launch });
        self.restart_averages()
    }

    /// Sets every average to its group's weights now (after `load_params`, when there is no
    /// average to load).
    pub fn restart_averages(&self) -> Result<()> {
        let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("restart averages") });
        for a in &self.averages {
            let p = &self.groups[a.group].params;
            enc.copy_buffer_to_buffer(&p.buffer, p.offset, &a.buffer.buffer, a.buffer.offset, p.len as u64 * 4);
        }
        let commands = enc.finish();
        self.gpu.scoped("restart averages", || {
            self.gpu.queue.submit([commands]);
        })?;
        Ok(())
    }

    /// The averaged groups' weights by parameter name (empty without averages).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_averages(&self) -> Result<NamedTensors> {
        pollster::block_on(self.read_averages_async())
    }

    pub async fn read_averages_async(&self) -> Result<NamedTensors> {
        let mut out = vec![];
        for a in &self.averages {
            out.extend(self.read_group_flat(a.group, &a.buffer).await?);
        }
        Ok(out)
    }

    /// Sets every average from `values` (by parameter name); a missing name or a wrong
    /// length is an error naming it.
    pub fn load_averages(&self, values: ByName) -> Result<()> {
        for a in &self.averages {
            let flat = self.group_flat(a.group, values, "average")?;
            self.gpu.write_f32(&a.buffer, &flat)?;
        }
        Ok(())
    }

    /// Group `gi`'s parameters from `source` (by name) laid out as its flat buffer.
    fn group_flat(&self, gi: usize, source: ByName, what: &str) -> Result<Vec<f32>> {
        let mut flat = vec![0.0f32; self.plan.group_len[gi]];
        for &p in &self.graph.groups[gi].params {
            let name = self.graph.name(p);
            let Placement::GroupParam { offset, .. } = self.plan.placement[p] else { unreachable!("params live in their group") };
            let v = source(name).ok_or_else(|| GraphError::Invalid(format!("{what} for {name} missing")))?;
            let want = self.graph.shape(p).len();
            if v.len() != want {
                return Err(GraphError::Invalid(format!("{what} for {name}: {} values, expected {want} ({})", v.len(), self.graph.shape(p))));
            }
            flat[offset..offset + want].copy_from_slice(&v);
        }
        Ok(flat)
    }

    /// Sets every parameter of the listed groups from `values` (by name); with
    /// `moments`, Adam's m and v too. A missing name or a wrong length is an error naming it.
    pub fn load_params(&self, groups: &[usize], values: ByName, moments: Option<(ByName, ByName)>) -> Result<()> {
        for &gi in groups {
            self.gpu.write_f32(&self.groups[gi].params, &self.group_flat(gi, values, "values")?)?;
            if let Some((m, v)) = moments {
                self.gpu.write_f32(&self.groups[gi].m, &self.group_flat(gi, m, "Adam m")?)?;
                self.gpu.write_f32(&self.groups[gi].v, &self.group_flat(gi, v, "Adam v")?)?;
            }
        }
        Ok(())
    }

    /// Index of the group with this name.
    pub fn group_index(&self, name: &str) -> Option<usize> {
        self.graph.groups.iter().position(|g| g.name == name)
    }

    /// Writes an input tensor (e.g. the data batch) for the next step.
    pub fn set_input(&self, t: TensorId, data: &[f32]) -> Result<()> {
        if self.graph.tensors[t].kind != TensorKind::Input {
            return Err(GraphError::Invalid(format!("{} is not an input", self.graph.name(t))));
        }
        Ok(self.gpu.write_f32(self.view(t), data)?)
    }

    /// Reads any tensor back (blocking; for tests and checkpoints). With buffer reuse, a
    /// tensor's slot holds its value only until a later tensor overwrites it: read params,
    /// gradients, inputs, outputs, or plan with `reuse: false`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read(&self, t: TensorId) -> Result<Vec<f32>> {
        pollster::block_on(self.read_async(t))
    }

    /// `read` without blocking: resolves once the copy is mapped (the browser's way).
    pub async fn read_async(&self, t: TensorId) -> Result<Vec<f32>> {
        Ok(self.gpu.download_f32_async(self.view(t)).await?)
    }

    /// Copies out every mapped staging buffer (non-blocking) and frees it for reuse.
    fn harvest(&mut self) -> Result<()> {
        let _ = self.gpu.device.poll(wgpu::PollType::Poll);
        for s in &self.staging {
            if *s.state.lock().unwrap() != MapState::Ready {
                continue;
            }
            let values: Vec<f32> = {
                let view = s.buffer.get_mapped_range(..).map_err(|e| GraphError::Invalid(e.to_string()))?;
                bytemuck::cast_slice::<u8, f32>(&view).to_vec()
            };
            s.buffer.unmap();
            *s.state.lock().unwrap() = MapState::Idle;
            let named = self.graph.outputs.iter().zip(values).map(|((n, _), v)| (n.clone(), v)).collect();
            self.collected.push((s.step, named));
        }
        Ok(())
    }

    /// Starts mapping staging buffer `k`, which this step's outputs were copied into.
    fn map_staging(&mut self, k: usize) {
        let staging = &mut self.staging[k];
        staging.step = self.step;
        *staging.state.lock().unwrap() = MapState::Pending;
        let state = staging.state.clone();
        staging.buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            *state.lock().unwrap() = if r.is_ok() { MapState::Ready } else { MapState::Idle };
        });
    }

    fn idle_staging(&self) -> Option<usize> {
        self.staging.iter().position(|s| *s.state.lock().unwrap() == MapState::Idle)
    }

    /// Runs one step: forward, every objective's backward and (when training) Adam for each
    /// group in `update` (all when None), recorded into one pass and submitted once. With
    /// `readback`, the graph's outputs are copied for `poll_outputs` to collect later.
    pub fn step_with(&mut self, readback: bool, update: Option<&[bool]>) -> Result<()> {
        self.await_readback(readback)?;
        let t0 = Instant::now();
        let updated = self.begin_step(update);
        let optimizer = self.optimizer.iter().zip(&updated).filter(|(_, &u)| u).map(|((l, _, _), _)| l);
        let averages = self.averages.iter().filter(|a| updated[a.group]).map(|a| &a.launch);
        let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("step") });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("step"), timestamp_writes: None });
            for l in self.prelude.iter().chain(&self.param_casts).chain(&self.launches).chain(optimizer).chain(averages) {
                l.record(&mut pass);
            }
        }
        let mapped = if readback { self.copy_outputs(&mut enc) } else { None };
        let commands = enc.finish();
        let record = t0.elapsed();
        let what = format!("step {}", self.step);
        self.gpu.scoped(&what, || self.gpu.queue.submit([commands]))?;
        if let Some(k) = mapped {
            self.map_staging(k);
        }
        self.last_timing = StepTiming { host: t0.elapsed(), record };
        Ok(())
    }

    /// Before a step that reads its outputs back: collects finished readbacks, and waits
    /// for a free buffer when every one is in flight and `wait_for_readback` says so.
    fn await_readback(&mut self, readback: bool) -> Result<()> {
        if readback {
            self.harvest()?;
            // The browser maps buffers only between tasks, so waiting here would never end:
            // there a step with every buffer in flight goes without a readback.
            let may_wait = self.wait_for_readback && cfg!(not(target_arch = "wasm32"));
            while may_wait && self.idle_staging().is_none() {
                self.gpu.wait()?;
                self.harvest()?;
            }
        }
        Ok(())
    }

    /// What every step does first: advances the step and its random keys, and counts and
    /// parameterises this step's updates. Returns which groups update.
    fn begin_step(&mut self, update: Option<&[bool]>) -> Vec<bool> {
        self.step += 1;
        self.set_rng_keys();
        let updated: Vec<bool> = (0..self.groups.len()).map(|g| update.is_none_or(|u| u.get(g).copied().unwrap_or(true))).collect();
        for (gi, (launch, n, rule)) in self.optimizer.iter().enumerate() {
            if !updated[gi] {
                continue;
            }
            self.updates[gi] += 1;
            if let UpdateRule::Adam(hp) = rule {
                adam::set_params(self.gpu, launch, *n, AdamParams { step: self.updates[gi], ..*hp });
            }
        }
        for a in &self.averages {
            if updated[a.group] {
                ema::set_decay(self.gpu, &a.launch, a.buffer.len, ema::decay_at(a.decay, self.updates[a.group]));
            }
        }
        updated
    }

    /// Records copies of the graph's outputs into a free readback buffer, if there is one;
    /// returns it (to map once the commands are submitted).
    fn copy_outputs(&self, enc: &mut wgpu::CommandEncoder) -> Option<usize> {
        if self.graph.outputs.is_empty() {
            return None;
        }
        let k = self.idle_staging()?;
        for (i, &(_, t)) in self.graph.outputs.iter().enumerate() {
            let v = self.view(t);
            enc.copy_buffer_to_buffer(&v.buffer, v.offset, &self.staging[k].buffer, i as u64 * 4, 4);
        }
        Some(k)
    }

    /// This step's key on every random draw, from this replica's rows on.
    fn set_rng_keys(&self) {
        for &(launch, n, stream) in &self.rng {
            let key = RngKey { seed: self.options.seed, step: self.step, stream };
            reparam::set_key_from(self.gpu, &self.launches[launch], n, key, (self.replica.0 * n / 4) as u32);
        }
    }

    /// Makes this executor replica `index` of `replicas` that each hold an equal share of a
    /// batch's rows (data-parallel training): its random draws become its rows' numbers of
    /// the whole batch's, so the replicas together draw what one process would.
    pub fn set_replica(&mut self, index: usize, replicas: usize) -> Result<()> {
        if replicas > 1 {
            if let Some(&(_, n, _)) = self.rng.iter().find(|(_, n, _)| n % 4 != 0) {
                return Err(GraphError::Invalid(format!(
                    "a random draw of {n} numbers per replica is not a whole number of Philox blocks (4): make batch/ranks × latent a multiple of 4"
                )));
            }
        }
        self.replica = (index, replicas);
        Ok(())
    }

    /// A data-parallel step: as `step_with`, but each group's gradient is read back as soon
    /// as its objective's backward is done, handed to `reduce` (an all-reduce across
    /// replicas) and written back before the updates run. Each group's backward is its own
    /// submission, queued up front, so the GPU computes the next group's gradient while the
    /// host reduces this one's. `last_reduce` says how long the host spent in `reduce`.
    pub fn step_reduced(&mut self, readback: bool, update: Option<&[bool]>, reduce: &mut dyn FnMut(usize, &mut [f32]) -> Result<()>) -> Result<()> {
        self.await_readback(readback)?;
        let t0 = Instant::now();
        let updated = self.begin_step(update);
        let groups = self.groups.len();
        for ((staging, b), &up) in self.grad_staging.iter_mut().zip(&self.groups).zip(&updated) {
            if up && staging.is_none() {
                *staging = Some(self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("gradient readback"),
                    size: b.grads.len as u64 * 4,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }));
            }
        }
        let mut order: Vec<usize> = (0..groups).collect();
        order.sort_by_key(|&g| self.grad_ready[g]);
        let mut mapped = None;
        // One error scope over every part's recording and submission.
        let submissions = self.gpu.scoped(&format!("step {}", self.step), || {
            let mut submissions = vec![];
            let mut from = 0;
            for (k, &g) in order.iter().enumerate() {
                let to = if k + 1 == order.len() { self.launches.len() } else { self.grad_ready[g].max(from) };
                let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("step part") });
                {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("step part"), timestamp_writes: None });
                    let head: &[&[Launch]] = if k == 0 { &[&self.prelude, &self.param_casts] } else { &[] };
                    for l in head.iter().flat_map(|h| h.iter()).chain(&self.launches[from..to]) {
                        l.record(&mut pass);
                    }
                }
                // The losses come from the forward pass, which the first part holds.
                if k == 0 && readback {
                    mapped = self.copy_outputs(&mut enc);
                }
                if updated[g] {
                    let grads = &self.groups[g].grads;
                    enc.copy_buffer_to_buffer(&grads.buffer, grads.offset, self.grad_staging[g].as_ref().unwrap(), 0, grads.len as u64 * 4);
                }
                submissions.push((g, self.gpu.queue.submit([enc.finish()])));
                from = to;
            }
            submissions
        })?;
        if let Some(s) = mapped {
            self.map_staging(s);
        }
        // In the order the gradients become final: wait for one, reduce it while the GPU
        // goes on with the next, write it back (ordered before the updates' submission).
        let mut reducing = Duration::ZERO;
        for (g, index) in submissions {
            if !updated[g] {
                continue;
            }
            let buffer = self.grad_staging[g].as_ref().unwrap();
            buffer.map_async(wgpu::MapMode::Read, .., |_| {});
            self.gpu
                .device
                .poll(wgpu::PollType::Wait { submission_index: Some(index), timeout: None })
                .map_err(|e| GraphError::Invalid(format!("waiting for the gradients of group {}: {e}", self.graph.groups[g].name)))?;
            // One host buffer per group, kept: gradients are megabytes, every step.
            let values = &mut self.grad_host[g];
            {
                let view = buffer.get_mapped_range(..).map_err(|e| GraphError::Invalid(e.to_string()))?;
                values.clear();
                values.extend_from_slice(bytemuck::cast_slice::<u8, f32>(&view));
            }
            buffer.unmap();
            let t = Instant::now();
            reduce(g, values)?;
            reducing += t.elapsed();
            self.gpu.write_f32(&self.groups[g].grads, values)?;
        }
        let averages = self.averages.iter().filter(|a| updated[a.group]).map(|a| &a.launch);
        let optimizer: Vec<&Launch> = self.optimizer.iter().zip(&updated).filter(|(_, &u)| u).map(|((l, _, _), _)| l).chain(averages).collect();
        if !optimizer.is_empty() {
            let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("updates") });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("updates"), timestamp_writes: None });
                for l in optimizer {
                    l.record(&mut pass);
                }
            }
            let commands = enc.finish();
            self.gpu.scoped(&format!("step {} (updates)", self.step), || self.gpu.queue.submit([commands]))?;
        }
        self.last_reduce = reducing;
        self.last_timing = StepTiming { host: t0.elapsed(), record: t0.elapsed() };
        Ok(())
    }

    /// One step with every group updated and no readback.
    pub fn step(&mut self) -> Result<()> {
        self.step_with(false, None)
    }

    /// Collects finished readbacks without blocking: (step, [(name, value)]) for each, in
    /// step order.
    pub fn poll_outputs(&mut self) -> Result<Vec<Readback>> {
        self.harvest()?;
        let mut out: Vec<_> = self.collected.drain(..).collect();
        out.sort_by_key(|(step, _)| *step);
        Ok(out)
    }

    /// Waits for the GPU, then collects every pending readback.
    ///
    /// The GPU being idle is not enough: when another thread polls the same device, its
    /// poll may take our buffers' map callbacks and run them only after our wait has
    /// returned, so natively we keep polling until no mapping is pending. (The browser
    /// maps only between tasks: there a pending mapping stays for a later collect.)
    pub fn wait_outputs(&mut self) -> Result<Vec<Readback>> {
        self.gpu.wait()?;
        if cfg!(not(target_arch = "wasm32")) {
            let start = Instant::now();
            while self.staging.iter().any(|s| *s.state.lock().unwrap() == MapState::Pending) {
                if start.elapsed() > Duration::from_secs(60) {
                    return Err(GraphError::Invalid("a readback of the step's losses was still not mapped 60 s after the GPU went idle".into()));
                }
                std::thread::yield_now();
                self.gpu.wait()?;
            }
        }
        self.poll_outputs()
    }

    /// Sets group `group`'s learning rate (the per-epoch decay); takes effect at the next step.
    pub fn set_lr(&mut self, group: usize, lr: f32) {
        let (launch, n, rule) = &mut self.optimizer[group];
        *rule = rule.with_lr(lr);
        match *rule {
            // Adam's uniform is rewritten before every update (its step count).
            UpdateRule::Adam(_) => {}
            UpdateRule::RmsProp(hp) => rmsprop::set_params(self.gpu, launch, *n, hp),
        }
    }

    /// Group `group`'s learning rate now.
    pub fn lr(&self, group: usize) -> f32 {
        self.optimizer[group].2.lr()
    }

    /// The model's state constants (batch norm's running statistics) by name.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_state(&self) -> Result<NamedTensors> {
        pollster::block_on(self.read_state_async())
    }

    pub async fn read_state_async(&self) -> Result<NamedTensors> {
        let mut out = vec![];
        for &t in &self.graph.state {
            let s = self.graph.shape(t);
            out.push((self.graph.name(t).to_string(), [s.rows, s.cols], self.read_async(t).await?));
        }
        Ok(out)
    }

    /// Sets every state constant from `values` (by name); a missing name or a wrong length
    /// is an error naming it.
    pub fn load_state(&self, values: ByName) -> Result<()> {
        for &t in &self.graph.state {
            let name = self.graph.name(t);
            let v = values(name).ok_or_else(|| GraphError::Invalid(format!("state {name} missing")))?;
            let want = self.graph.shape(t).len();
            if v.len() != want {
                return Err(GraphError::Invalid(format!("state {name}: {} values, expected {want}", v.len())));
            }
            self.gpu.write_f32(self.view(t), &v)?;
        }
        Ok(())
    }

    /// The group's flat parameter buffer (for checkpoints and tests).
    pub fn group_params(&self, group: usize) -> &GpuBuffer {
        &self.groups[group].params
    }
}

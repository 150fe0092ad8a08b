//! The graph executor: whole-graph gradients against finite differences of the CPU
//! interpreter, GPU forward against CPU forward, buffer reuse, gradient isolation between
//! objectives, asynchronous readback and the dumps.

use vaegan::graph::plan::Plan;
use vaegan::graph::{dump, CpuExecutor, ExecOptions, GpuExecutor, Graph, LossKind, Section, TensorId};
use vaegan::model::{build_eval, build_step, Mode, ModelConfig, StepGraph};
use vaegan::types::Act;
use vaegan::types::AdamParams;

use crate::common::*;

/// Whole-graph gradients: the GPU computes in f32 through a dozen kernels; the f64 central
/// differences (step 1e-6, truncation ~1e-12, rounding ~1e-10 on losses of order 1) are
/// exact by comparison, so the error measured is the GPU's: ≤ 1e-3 relative.
const GRAPH_FD_TOL: f64 = 1e-3;
const SEED: u64 = 0x5eed;

fn tiny(mode: Mode) -> ModelConfig {
    ModelConfig {
        input: 6,
        encoder: vec![5],
        latent: 2,
        decoder: vec![5],
        discriminator: vec![4],
        mode,
        pixel_weight: 0.5,
        gamma: 0.7,
        ..ModelConfig::mnist_mlp()
    }
}

/// Runs one GPU step (gradients only) and returns the executor.
fn gpu_step<'g>(step: &StepGraph, x: &[f64], reuse: bool) -> GpuExecutor<'g> {
    gpu_step_on(step, &[(step.x, x)], reuse)
}

/// Runs one GPU step (gradients only) on the given inputs and returns the executor.
fn gpu_step_on<'g>(step: &StepGraph, inputs: &[(TensorId, &[f64])], reuse: bool) -> GpuExecutor<'g> {
    let mut exec = GpuExecutor::new(gpu(), step.graph.clone(), ExecOptions { seed: SEED, reuse, update: None, ..Default::default() }).unwrap();
    for (id, values) in inputs {
        exec.set_input(*id, &values.iter().map(|&v| v as f32).collect::<Vec<_>>()).unwrap();
    }
    exec.step_with(true, None).unwrap();
    gpu().wait().unwrap();
    exec
}

/// The value of `objective` on the CPU with parameter `p` replaced by `values`.
fn cpu_objective(graph: &Graph, x_id: TensorId, x: &[f64], p: TensorId, values: &[f64], objective: TensorId) -> f64 {
    cpu_objective_on(graph, &[(x_id, x)], p, values, objective)
}

fn cpu_objective_on(graph: &Graph, inputs: &[(TensorId, &[f64])], p: TensorId, values: &[f64], objective: TensorId) -> f64 {
    let mut cpu = CpuExecutor::new(graph, SEED);
    for (id, v) in inputs {
        cpu.set(*id, v.to_vec());
    }
    cpu.set(p, values.to_vec());
    cpu.run(1, true);
    cpu.get(objective)[0]
}

/// Every parameter of every group: GPU gradient vs finite differences of the group's own
/// objective on the CPU interpreter.
fn check_all_groups(step: &StepGraph, rng: &mut rand::rngs::StdRng) {
    let x = as_f32(&uniform(rng, step.batch * step.config.input, 0.0, 1.0));
    // A conditioned model's labels: 0 or 1 each, as the data gives them, alternating down
    // each column from a random start. A column constant over the batch would, under the
    // conv decoder's batch norm, shift every row alike and normalise away: its weights'
    // gradient is then 0 exactly, f32's rounding leaves ~1e-8, and the relative check fails
    // on noise (seen once in CI with random labels).
    let labels = step.config.conditions.len();
    let start: Vec<usize> = uniform(rng, labels, 0.0, 2.0).iter().map(|v| *v as usize).collect();
    let y: Vec<f64> = (0..step.batch * labels).map(|i| ((i / labels + start[i % labels]) % 2) as f64).collect();
    let mut inputs: Vec<(TensorId, &[f64])> = vec![(step.x, &x)];
    if let Some(y_id) = step.y {
        inputs.push((y_id, &y));
    }
    let exec = gpu_step_on(step, &inputs, true);
    let g = &step.graph;
    for group in &g.groups {
        let objective = group.objective.expect("every group has an objective");
        for (&p, &d) in group.params.iter().zip(&group.grads) {
            let p0: Vec<f64> = g.tensors[p].init.as_ref().unwrap().iter().map(|&v| v as f64).collect();
            let got: Vec<f64> = exec.read(d).unwrap().into_iter().map(|v| v as f64).collect();
            let what = format!("{} ∂{}/∂{}", group.name, g.name(objective), g.name(p));
            check_grad_tol(&what, rng, |v| cpu_objective_on(g, &inputs, p, v, objective), &p0, &got, GRAPH_FD_TOL);
        }
    }
}

#[test]
fn mlp_vae_gradients_match_finite_differences() {
    let mut rng = rng("mlp_vae_gradients_match_finite_differences");
    for batch in [1, 3] {
        let step = build_step(&tiny(Mode::Vae), batch, 11).unwrap();
        check_all_groups(&step, &mut rng);
    }
}

/// The three objectives of the VAE-GAN, each against finite differences of itself alone:
/// had L_GAN leaked into the encoder's gradient or L_llike into the discriminator's, the
/// comparison would fail.
#[test]
fn vaegan_three_objectives_match_finite_differences() {
    let mut rng = rng("vaegan_three_objectives_match_finite_differences");
    for batch in [1, 4] {
        let step = build_step(&tiny(Mode::VaeGan), batch, 12).unwrap();
        check_all_groups(&step, &mut rng);
    }
}

/// Attribute-conditioned models: the labels y reach the decoder (MLP: its first layer; conv:
/// its dense layer, before batch norm) and the discriminator (MLP: its first layer; conv: its
/// first dense layer) through their own weights, whose gradients, with every other, match
/// finite differences; a decoder or discriminator that ignored y would leave its weight's
/// gradient zero, which the check would catch as a mismatch.
#[test]
fn conditioned_models_gradients_match_finite_differences() {
    let mut rng = rng("conditioned_models_gradients_match_finite_differences");
    let names = |k: usize| (0..k).map(|i| format!("label{i}")).collect::<Vec<_>>();
    let mut mlp = tiny(Mode::VaeGan);
    mlp.conditions = names(3);
    let mut conv = tiny_conv_config();
    conv.hidden_act = vaegan::types::Act::Tanh;
    conv.dis_act = vaegan::types::Act::Tanh;
    conv.conditions = names(2);
    for (c, batch) in [(&mlp, 1), (&mlp, 4), (&conv, 3)] {
        let step = build_step(c, batch, 13).unwrap();
        let g = &step.graph;
        let has = |n: &str| g.params().any(|p| g.name(p) == n);
        assert!(has("decoder.condition.weight") && has("discriminator.condition.weight"), "the labels' weights");
        assert_eq!(g.shape(step.y.expect("a labels input")).cols, c.conditions.len());
        check_all_groups(&step, &mut rng);
        // Both networks read y: flipping the labels changes the reconstruction Dec(z, y) and
        // D's loss on the real batch, D(x, y) (a network that ignored y would pass the
        // gradient check with a zero gradient on both sides).
        let x = as_f32(&uniform(&mut rng, batch * c.input, 0.0, 1.0));
        // Rows that differ: under the conv decoder's batch norm, labels shared by the whole
        // batch shift every row alike and normalise away, as a bias would.
        let k = c.conditions.len();
        let y: Vec<f64> = (0..batch * k).map(|i| ((i + i / k) % 2) as f64).collect();
        let flipped: Vec<f64> = y.iter().map(|v| 1.0 - v).collect();
        let d_real = step.losses.iter().find(|(n, _)| n == "d_real").unwrap().1;
        let forward = |y: &[f64]| {
            let mut cpu = CpuExecutor::new(g, SEED);
            cpu.set(step.x, x.clone());
            cpu.set(step.y.unwrap(), y.to_vec());
            cpu.run(1, true);
            (cpu.get(step.reconstruction).to_vec(), cpu.get(d_real)[0])
        };
        let ((rec, real), (rec_flipped, real_flipped)) = (forward(&y), forward(&flipped));
        let moved = rec.iter().zip(&rec_flipped).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(moved > 1e-6, "the decoder ignores the labels");
        assert!((real - real_flipped).abs() > 1e-6, "the discriminator ignores the labels");
    }
    // Unconditioned models have neither the input nor the weights.
    let plain = build_step(&tiny(Mode::VaeGan), 2, 13).unwrap();
    assert!(plain.y.is_none() && !plain.graph.params().any(|p| plain.graph.name(p).contains("condition")));
}

#[test]
fn gradients_stay_in_their_objective() {
    let step = build_step(&tiny(Mode::VaeGan), 2, 1).unwrap();
    let g = &step.graph;
    let named = |name: &str| g.tensors.iter().position(|t| t.name == name).unwrap();
    let (l_gan_d, l_gan_g, l_llike) = (named("L_GAN_D"), named("L_GAN_G"), named("L_llike"));
    for node in &g.nodes {
        let Section::Backward(objective) = &node.section else { continue };
        // The seed gradient of an objective is dObjective/dObjective; no other objective's
        // loss is differentiated inside it.
        let reads_loss_grad =
            |loss: TensorId| matches!(node.op, vaegan::graph::Op::LossBackward { .. }) && node.inputs[0] != loss && node.inputs.contains(&loss);
        assert!(!reads_loss_grad(l_gan_d));
        if objective == "encoder" {
            for &t in &node.inputs {
                assert!(t != l_gan_g && t != l_gan_d, "the encoder's backward reads a GAN loss at {:?}", node.op);
            }
            assert!(!matches!(node.op, vaegan::graph::Op::LossBackward { kind: LossKind::BceLogits, .. }), "GAN loss in the encoder's backward");
        }
        if objective == "discriminator" {
            assert!(!matches!(node.op, vaegan::graph::Op::LossBackward { kind: LossKind::SqErr, .. }), "L_llike in the discriminator's backward");
            assert!(!node.inputs.contains(&l_llike));
        }
    }
}

/// A parameter reached only through stop_gradient gets an exact zero gradient, and an
/// Adam step leaves it bit-for-bit unchanged.
#[test]
fn stop_gradient_blocks_and_unreached_params_stay_unchanged() {
    let mut g = Graph::new();
    let x = g.input("x", [3, 4]);
    let grp = g.group("only");
    let blocked = vaegan::nn::linear(&mut g, grp, "blocked", 4, 2, 1);
    let open = vaegan::nn::linear(&mut g, grp, "open", 4, 2, 2);
    let a = g.linear(x, &blocked, Act::Tanh);
    let a = g.stop_gradient(a);
    let b = g.linear(x, &open, Act::Tanh);
    let s = g.add(a, b);
    let t = g.constant("t", [3, 2], vec![0.25; 6]);
    let loss = g.loss(LossKind::SqErr, s, t, 0.5);
    g.output("loss", loss);
    g.objective(grp, "only", loss).unwrap();
    let grads = g.groups[grp].grads.clone();
    let before_w = g.tensors[blocked.w].init.clone().unwrap();
    let mut exec =
        GpuExecutor::new(gpu(), g, ExecOptions { seed: 1, reuse: true, update: Some(vec![AdamParams::new(0.1).into()]), ..Default::default() }).unwrap();
    exec.set_input(x, &[0.5, -1.0, 2.0, 0.1, 0.3, 0.3, -0.7, 1.1, 0.0, 0.9, -0.2, 0.4]).unwrap();
    exec.step().unwrap();
    assert!(exec.read(grads[0]).unwrap().iter().all(|&v| v == 0.0), "gradient through stop_gradient");
    assert!(exec.read(grads[2]).unwrap().iter().any(|&v| v != 0.0), "the open path has a gradient");
    assert_eq!(exec.read(blocked.w).unwrap(), before_w, "a parameter with zero gradient moved");
}

/// Same inputs and RNG keys: every forward tensor of the GPU (planned without reuse so
/// that each can be read) equals the CPU interpreter's.
#[test]
fn gpu_forward_equals_cpu_forward() {
    let mut rng = rng("gpu_forward_equals_cpu_forward");
    let mut config = ModelConfig::mnist_mlp();
    config.pixel_weight = 1.0;
    let step = build_step(&config, 5, 3).unwrap();
    let x = as_f32(&uniform(&mut rng, 5 * 784, 0.0, 1.0));
    let exec = gpu_step(&step, &x, false);
    let mut cpu = CpuExecutor::new(&step.graph, SEED);
    cpu.set(step.x, x.clone());
    cpu.run(1, false);
    for (id, node) in step.graph.nodes.iter().enumerate() {
        for &t in &node.outputs {
            let got: Vec<f64> = exec.read(t).unwrap().into_iter().map(|v| v as f64).collect();
            let want = cpu.get(t);
            // Pre-activations may cancel; compare against the norm of the tensor, 1e-4.
            assert_close(&format!("node {id} {} -> {}", node.op.name(), step.graph.name(t)), &got, want, 1e-4);
        }
    }
}

/// A graph built so that wrong liveness would corrupt the result: `keep` is made first and
/// read last, while a chain of same-sized tensors is created and dropped in between; had
/// `keep`'s buffer been released early, the chain would overwrite it.
#[test]
fn buffer_reuse_never_aliases_a_live_tensor() {
    let mut rng = rng("buffer_reuse_never_aliases_a_live_tensor");
    let mut g = Graph::new();
    let x = g.input("x", [7, 9]);
    let keep = g.activation(x, Act::Tanh);
    let mut h = g.scale(x, 1.5);
    for i in 0..8 {
        h = if i % 2 == 0 { g.activation(h, Act::Sigmoid) } else { g.scale(h, -0.75) };
    }
    let y = g.add(keep, h);
    let y2 = g.add(y, keep);
    let plan = Plan::new(&g, 64, true, vaegan::Precision::F32);
    assert!(plan.slots.len() < g.tensors.len() - 1, "the plan must actually reuse buffers for this test to mean anything");
    assert_eq!(plan.find_alias(), None);
    let data = as_f32(&randn(&mut rng, 63));
    let mut exec = GpuExecutor::new(gpu(), g.clone(), ExecOptions::default()).unwrap();
    exec.set_input(x, &data.iter().map(|&v| v as f32).collect::<Vec<_>>()).unwrap();
    exec.step().unwrap();
    let mut cpu = CpuExecutor::new(&g, 0);
    cpu.set(x, data);
    cpu.run(1, false);
    let got: Vec<f64> = exec.read(y2).unwrap().into_iter().map(|v| v as f64).collect();
    assert_close("y2 = tanh(x) + chain(x) + tanh(x)", &got, cpu.get(y2), 1e-5);
}

#[test]
fn the_vaegan_plan_reuses_without_aliasing() {
    for batch in [64, 256] {
        let step = build_step(&ModelConfig::mnist_mlp(), batch, 1).unwrap();
        let plan = Plan::new(&step.graph, 64, true, vaegan::Precision::F32);
        assert_eq!(plan.find_alias(), None, "batch {batch}");
        let (planned, naive) = (plan.planned_bytes(&step.graph), plan.naive_bytes(&step.graph));
        assert!(planned < naive, "batch {batch}: planned {planned} ≥ naive {naive}");
    }
}

/// The plan owns every buffer a step uses: building the executor allocates exactly the
/// plan's buffers (slots with every kernel's scratch, groups, f16 copies, inputs, readback
/// ring) plus the launches' uniform blocks — nothing made on the side — and their bytes
/// are the plan's up to the driver's rounding of each allocation.
#[test]
fn the_executor_allocates_exactly_the_planned_memory() {
    let mut precisions = vec![vaegan::Precision::F32];
    if has_f16() {
        precisions.push(vaegan::Precision::F16);
    }
    for precision in precisions {
        let g = fresh_gpu(false);
        let step = build_step(&tiny(Mode::VaeGan), 8, 5).unwrap();
        g.run([]).unwrap();
        let (buffers_before, bytes_before) = g.buffer_stats();
        let exec =
            GpuExecutor::new(&g, step.graph.clone(), ExecOptions { seed: 1, reuse: true, update: Some(vec![AdamParams::new(1e-3).into(); 3]), precision })
                .unwrap();
        // A submission flushes the queue's pending writes, whose staging buffers wgpu frees then.
        g.run([]).unwrap();
        let (buffers_after, bytes_after) = g.buffer_stats();
        let memory = exec.plan.memory(&step.graph);
        assert!(memory.slots > 0 && memory.groups > 0 && memory.readback > 0);
        assert_eq!(memory.half > 0, precision == vaegan::Precision::F16);
        let scratch_nodes = exec.plan.scratch.iter().filter(|s| !s.is_empty()).count();
        assert!(scratch_nodes >= 3, "the KL and the losses plan their scratch ({scratch_nodes} nodes)");
        assert_eq!(
            (buffers_after - buffers_before) as usize,
            exec.plan.buffer_count() + exec.uniform_count(),
            "{precision:?}: buffers allocated vs planned ({} + {} uniform blocks)",
            exec.plan.buffer_count(),
            exec.uniform_count()
        );
        let (got, want) = ((bytes_after - bytes_before) as f64, (memory.total() + exec.uniform_bytes()) as f64);
        // wgpu's GL backend counts buffers but not their bytes (it reports 0): there the
        // count above is the check.
        if got > 0.0 {
            assert!((got - want).abs() <= 0.1 * want, "{precision:?}: {got} bytes allocated vs {want} planned ({memory:?})");
        }
    }
}

/// Losses come back asynchronously through a ring of staging buffers: without waiting,
/// a step whose buffers are all in flight skips its readback; with `wait_for_readback`,
/// every requested step arrives. Either way they arrive in step order.
#[test]
fn losses_are_read_back_asynchronously() {
    let step = build_step(&tiny(Mode::VaeGan), 4, 5).unwrap();
    let hp = AdamParams::new(1e-3);
    for wait in [false, true] {
        let mut exec =
            GpuExecutor::new(gpu(), step.graph.clone(), ExecOptions { seed: 1, reuse: true, update: Some(vec![hp.into(); 3]), ..Default::default() }).unwrap();
        exec.wait_for_readback = wait;
        exec.set_input(step.x, &[0.5; 24]).unwrap();
        let mut got = vec![];
        for i in 0..6 {
            exec.step_with(i % 2 == 0 || wait, None).unwrap();
            got.extend(exec.poll_outputs().unwrap());
        }
        got.extend(exec.wait_outputs().unwrap());
        let steps: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
        assert!(steps.windows(2).all(|w| w[0] < w[1]), "in step order, each once: {steps:?}");
        if wait {
            assert_eq!(steps, vec![1, 2, 3, 4, 5, 6]);
        } else {
            assert!(steps.iter().all(|s| [1, 3, 5].contains(s)) && !steps.is_empty(), "only requested steps: {steps:?}");
        }
        for (_, values) in &got {
            let names: Vec<&str> = values.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, vec!["kl", "llike", "gan_d", "gan_g", "d_real", "d_fake", "bce"]);
            assert!(values.iter().all(|(_, v)| v.is_finite()));
        }
        assert_eq!(exec.updates, vec![6, 6, 6]);
    }
}

#[test]
fn dumps_show_forward_and_every_backward() {
    let step = build_step(&ModelConfig::mnist_mlp(), 64, 1).unwrap();
    let plan = Plan::new(&step.graph, 64, true, vaegan::Precision::F32);
    let text = dump::text(&step.graph, Some(&plan));
    for needle in
        ["[forward] linear+relu", "[backward encoder]", "[backward decoder]", "[backward discriminator]", "reparam_backward", "matmul tn", "@slot", "@grads0+"]
    {
        assert!(text.contains(needle), "the dump lacks {needle:?}");
    }
    let dot = dump::dot(&step.graph);
    assert!(dot.starts_with("digraph step {") && dot.trim_end().ends_with('}'));
    assert!(dot.contains("royalblue") && dot.contains("firebrick"), "objectives get colours");
}

/// A small convolutional VAE-GAN: two convolutions and a batch norm in the encoder, a
/// linear layer, two transposed convolutions and a batch norm in the decoder, two
/// convolutions in the discriminator. Returns the graph and its input.
fn tiny_conv_vaegan(batch: usize) -> (Graph, TensorId) {
    use vaegan::nn;
    use vaegan::types::ConvGeom;
    let mut g = Graph::new();
    let x = g.input("x", [batch, 6 * 6]);
    let (enc, dec, dis) = (g.group("encoder"), g.group("decoder"), g.group("discriminator"));
    // Encoder: 6×6×1 → 3×3×3 → batch norm and sigmoid (fused) → 2×2×4 → μ, logσ² (2).
    let c1 = nn::conv2d(&mut g, enc, "enc.conv1", ConvGeom::conv(batch, (6, 6, 1), 3, (3, 3), 2, 1).unwrap(), 1);
    let bn1 = nn::batch_norm(&mut g, enc, "enc.bn1", 3);
    let c2 = nn::conv2d(&mut g, enc, "enc.conv2", ConvGeom::conv(batch, (3, 3, 3), 4, (3, 3), 2, 1).unwrap(), 2);
    let (mu_l, lv_l) = (nn::linear(&mut g, enc, "enc.mu", 16, 2, 3), nn::linear(&mut g, enc, "enc.logvar", 16, 2, 4));
    let h = g.conv2d(x, &c1, Act::Tanh);
    let h = g.batch_norm(h, &bn1, Act::Sigmoid);
    let h = g.conv2d(h, &c2, Act::Tanh);
    let (mu, logvar) = (g.linear(h, &mu_l, Act::None), g.linear(h, &lv_l, Act::None));
    let (z, _) = g.reparam(mu, logvar, 1);
    // Decoder: 2 → 2×2×4 → (transposed) 3×3×3 → batch norm → (transposed) 6×6×1, sigmoid.
    let d0 = nn::linear(&mut g, dec, "dec.fc", 2, 16, 5);
    let t1 = nn::conv_transpose2d(&mut g, dec, "dec.deconv1", ConvGeom::transposed(batch, (2, 2, 4), 3, (3, 3), 2, 1, 0).unwrap(), 6);
    let bn2 = nn::batch_norm(&mut g, dec, "dec.bn", 3);
    let t2 = nn::conv_transpose2d(&mut g, dec, "dec.deconv2", ConvGeom::transposed(batch, (3, 3, 3), 1, (3, 3), 2, 1, 1).unwrap(), 7);
    let h = g.linear(z, &d0, Act::Tanh);
    let h = g.conv_transpose2d(h, &t1, Act::Tanh);
    let h = g.batch_norm(h, &bn2, Act::None);
    let x_rec = g.conv_transpose2d(h, &t2, Act::Sigmoid);
    // Discriminator: 6×6×1 → 3×3×2 → 2×2×2 → 1 logit.
    let e1 = nn::conv2d(&mut g, dis, "dis.conv1", ConvGeom::conv(batch, (6, 6, 1), 2, (3, 3), 2, 1).unwrap(), 8);
    let e2 = nn::conv2d(&mut g, dis, "dis.conv2", ConvGeom::conv(batch, (3, 3, 2), 2, (3, 3), 2, 1).unwrap(), 9);
    let out = nn::linear(&mut g, dis, "dis.out", 8, 1, 10);
    let disc = |g: &mut Graph, input: TensorId| {
        let h = g.conv2d(input, &e1, Act::Tanh);
        let h = g.conv2d(h, &e2, Act::Tanh);
        g.linear(h, &out, Act::None)
    };
    let d_real = disc(&mut g, x);
    let d_fake = disc(&mut g, x_rec);
    let x_rec_fixed = g.stop_gradient(x_rec);
    let d_fake_fixed = disc(&mut g, x_rec_fixed);
    let (ones, zeros) = (g.constant("ones", [batch, 1], vec![1.0; batch]), g.constant("zeros", [batch, 1], vec![0.0; batch]));
    let kl = g.kl_mean(mu, logvar);
    let bce = g.loss(LossKind::BceProb, x_rec, x, 1.0 / batch as f32);
    let gan_g = g.loss(LossKind::BceLogits, d_fake, ones, 1.0 / batch as f32);
    let real = g.loss(LossKind::BceLogits, d_real, ones, 1.0 / batch as f32);
    let fake = g.loss(LossKind::BceLogits, d_fake_fixed, zeros, 1.0 / batch as f32);
    let l_enc = g.weighted_sum(&[(1.0, kl), (1.0, bce)]);
    let l_dec = g.weighted_sum(&[(1.0, bce), (0.5, gan_g)]);
    let l_dis = g.weighted_sum(&[(1.0, real), (1.0, fake)]);
    g.output("L_enc", l_enc);
    g.output("L_dec", l_dec);
    g.output("L_dis", l_dis);
    g.objective(enc, "encoder", l_enc).unwrap();
    g.objective(dec, "decoder", l_dec).unwrap();
    g.objective(dis, "discriminator", l_dis).unwrap();
    (g, x)
}

/// The whole-graph gradient check of a convolutional VAE-GAN: every parameter tensor's GPU
/// gradient (convolutions, transposed convolutions, batch norms, their biases, scales and
/// shifts) against central differences of its own group's objective on the CPU interpreter.
#[test]
fn conv_vaegan_gradients_match_finite_differences() {
    let mut rng = rng("conv_vaegan_gradients_match_finite_differences");
    for batch in [1, 2] {
        let (g, x_id) = tiny_conv_vaegan(batch);
        let x = as_f32(&uniform(&mut rng, batch * 36, 0.0, 1.0));
        let mut exec = GpuExecutor::new(gpu(), g.clone(), ExecOptions { seed: SEED, reuse: true, update: None, ..Default::default() }).unwrap();
        exec.set_input(x_id, &x.iter().map(|&v| v as f32).collect::<Vec<_>>()).unwrap();
        exec.step_with(true, None).unwrap();
        gpu().wait().unwrap();
        let dump = dump::text(&g, None);
        assert!(
            dump.contains("conv2d+tanh")
                && dump.contains("conv_transpose2d+sigmoid")
                && dump.contains("batch_norm+sigmoid 3 channels")
                && dump.contains("batch_norm+none 3 channels"),
            "{dump}"
        );
        for group in &g.groups {
            let objective = group.objective.expect("every group has an objective");
            for (&p, &d) in group.params.iter().zip(&group.grads) {
                let p0: Vec<f64> = g.tensors[p].init.as_ref().unwrap().iter().map(|&v| v as f64).collect();
                let got: Vec<f64> = exec.read(d).unwrap().into_iter().map(|v| v as f64).collect();
                let what = format!("batch {batch}: {} ∂{}/∂{}", group.name, g.name(objective), g.name(p));
                check_grad_tol(&what, &mut rng, |v| cpu_objective(&g, x_id, &x, p, v, objective), &p0, &got, GRAPH_FD_TOL);
            }
        }
    }
}

/// `mnist-conv`'s recipe on 8×8 images with a handful of channels: every op of the preset,
/// small enough for the CPU interpreter.
fn tiny_conv_config() -> ModelConfig {
    let mut c = ModelConfig::mnist_conv();
    c.set_image(8, 8, 1);
    c.kernel = 3;
    c.encoder = vec![2];
    c.encoder_dense = vec![];
    c.latent = 2;
    c.decoder = vec![3];
    c.discriminator = vec![2, 3];
    c.discriminator_dense = vec![4];
    c.latent_discriminator = vec![3];
    c
}

/// The convolutional presets' step as `model::build_step` makes it — batch norm, the
/// decoder on [z; z_p] and the discriminator on [x; x̃; x_p] at once, their slices — every
/// group's gradient against finite differences, on a model small enough for the CPU
/// interpreter.
#[test]
fn conv_preset_step_gradients_match_finite_differences() {
    let mut rng = rng("conv_preset_step_gradients_match_finite_differences");
    let mut c = tiny_conv_config();
    c.hidden_act = vaegan::types::Act::Tanh;
    c.dis_act = vaegan::types::Act::Tanh;
    for joint in [true, false] {
        c.joint_batches = joint;
        let step = build_step(&c, 3, 5).unwrap();
        check_all_groups(&step, &mut rng);
    }
}

/// The evaluation graph's D (what `metrics.csv`'s `d_accuracy` reads): a D that trains a
/// pass per batch normalises each half of [x; Dec(z_p)] by its own batch, as in training, so
/// its logits do not move when its running statistics do; a joint D reads them (eval mode).
#[test]
fn the_test_time_discriminator_normalises_as_it_trained() {
    let mut rng = rng("the_test_time_discriminator_normalises_as_it_trained");
    for joint in [false, true] {
        let mut c = tiny_conv_config();
        c.joint_batches = joint;
        let ev = build_eval(&c, 4).unwrap();
        let x = uniform(&mut rng, 4 * c.input, 0.0, 1.0);
        let logits = |shift: f64| {
            let mut cpu = CpuExecutor::new(&ev.graph, SEED);
            cpu.set(ev.x, x.clone());
            let mut moved = 0;
            for &t in &ev.graph.state {
                if ev.graph.name(t).starts_with("discriminator.") {
                    let v: Vec<f64> = cpu.get(t).iter().map(|&v| v + shift).collect();
                    cpu.set(t, v);
                    moved += 1;
                }
            }
            assert!(moved >= 4, "the tiny D has two batch norms (mean and variance each): moved {moved}");
            cpu.run(1, true);
            cpu.get(ev.logits.unwrap()).to_vec()
        };
        let (before, after) = (logits(0.0), logits(3.0));
        assert!(before.iter().chain(&after).all(|v| v.is_finite()), "{before:?} {after:?}");
        if joint {
            assert_ne!(before, after, "a joint D is read with its running statistics");
        } else {
            assert_eq!(before, after, "a per-pass D's test logits moved with its running statistics");
        }
    }
}

/// Every named scalar of one CPU forward of the step for `c` at `batch` on `x`: the outputs
/// (kl, llike, bce, gan_d, gan_g, d_real, d_fake, mmd) and the objectives (L_enc, L_dec,
/// L_vae).
fn step_values(c: &ModelConfig, batch: usize, x: &[f64]) -> std::collections::HashMap<String, f64> {
    let step = build_step(c, batch, 5).unwrap();
    let mut cpu = CpuExecutor::new(&step.graph, SEED);
    cpu.set(step.x, x.to_vec());
    cpu.run(1, false);
    let mut v: std::collections::HashMap<String, f64> = step.losses.iter().map(|(n, t)| (n.clone(), cpu.get(*t)[0])).collect();
    for t in 0..step.graph.tensors.len() {
        if ["L_enc", "L_dec", "L_vae"].contains(&step.graph.name(t)) {
            v.insert(step.graph.name(t).to_string(), cpu.get(t)[0]);
        }
    }
    v
}

/// The recipe's knobs (`kl_weight`, `pixel_weight_decoder`, `gan_fakes`, `d_fake_weight`)
/// change what each objective sums, and nothing else: the same weights, data and draws give
/// the same component losses, and each objective is their stated combination (on the CPU
/// interpreter, exact in f64); the GPU's gradients follow the changed objectives.
#[test]
fn recipe_knobs_weigh_the_objectives_as_stated() {
    use vaegan::model::GanFakes;
    let batch = 3;
    let mut rng = rng("recipe_knobs_weigh_the_objectives_as_stated");
    let x = as_f32(&uniform(&mut rng, batch * 6, 0.0, 1.0));
    let values = |c: &ModelConfig| step_values(c, batch, &x);
    let base = tiny(Mode::VaeGan);
    let knobs = |fakes: GanFakes| ModelConfig { kl_weight: 0.25, pixel_weight_decoder: Some(0.1), gan_fakes: fakes, d_fake_weight: 0.5, ..base.clone() };
    let (both, prior, recs) = (values(&knobs(GanFakes::Both)), values(&knobs(GanFakes::Prior)), values(&knobs(GanFakes::Reconstructions)));
    let default = values(&base);
    let close = |what: &str, a: f64, b: f64| assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{what}: {a} vs {b}");
    for v in [&both, &prior, &recs] {
        for name in ["kl", "llike", "bce", "d_real", "d_fake"] {
            close(&format!("{name}, the same whatever the knobs"), v[name], default[name]);
        }
        // β = 0.25 on the KL; the encoder's pixel weight stays `pixel_weight` (0.5).
        close("L_enc", v["L_enc"], 0.25 * v["kl"] + v["llike"] + base.pixel_weight as f64 * v["bce"]);
        close("L_dec", v["L_dec"], base.gamma as f64 * v["llike"] + v["gan_g"] + 0.1f32 as f64 * v["bce"]);
    }
    close("default L_enc", default["L_enc"], default["kl"] + default["llike"] + base.pixel_weight as f64 * default["bce"]);
    // D: the real batch plus each fake batch it sees at weight 0.5; d_fake = ½(d_rec + d_p).
    close("L_GAN_D, both", both["gan_d"], both["d_real"] + 0.5 * 2.0 * both["d_fake"]);
    close("L_GAN_D, prior + reconstructions", prior["gan_d"] + recs["gan_d"], 2.0 * both["d_real"] + 0.5 * 2.0 * both["d_fake"]);
    close("default L_GAN_D", default["gan_d"], default["d_real"] + 2.0 * default["d_fake"]);
    // The decoder's GAN term: the fakes it sees, each its own batch mean.
    close("L_GAN_G, prior + reconstructions = both", prior["gan_g"] + recs["gan_g"], both["gan_g"]);
    assert!((prior["gan_g"] - recs["gan_g"]).abs() > 1e-6, "the two fakes are different images");
    // The gradients of the changed objectives, on the GPU.
    check_all_groups(&build_step(&knobs(GanFakes::Prior), batch, 5).unwrap(), &mut rng);
    // And the knobs are checked where a config is read.
    for (bad, key) in [("kl_weight = -1.0", "model.kl_weight"), ("d_fake_weight = 0.0", "model.d_fake_weight"), ("gan_fakes = \"real\"", "gan_fakes")] {
        let err = vaegan::model::RunConfig::from_toml(&format!("[model]\n{bad}\n"), "k.toml").err().unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(err.contains("k.toml") && err.contains(key), "{bad}: {err}");
    }
    let ok =
        vaegan::model::RunConfig::from_toml("[model]\nkl_weight = 0.5\ngan_fakes = \"prior\"\npixel_weight_decoder = 0.1\nd_fake_weight = 0.5\n", "k.toml")
            .unwrap();
    assert_eq!((ok.model.kl_weight, ok.model.gan_fakes, ok.model.decoder_pixel_weight(), ok.model.d_fake_weight), (0.5, GanFakes::Prior, 0.1, 0.5));
}

/// `latent_mmd` adds λ·MMD²(z, z_p) and `latent_adversary` λ_a·BCE(D_z(z), 1) to the
/// encoder's objective and to nothing else (exact on the CPU interpreter); the latent
/// discriminator is a fourth group with its own objective; every group's GPU gradient
/// against finite differences of its own objective, in both modes; a batch of one, which
/// has no unbiased MMD, is refused when the step is built.
#[test]
fn latent_prior_terms_join_the_encoder_objective() {
    let mut rng = rng("latent_prior_terms_join_the_encoder_objective");
    let batch = 4;
    let x = as_f32(&uniform(&mut rng, batch * 6, 0.0, 1.0));
    let close = |what: &str, a: f64, b: f64| assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{what}: {a} vs {b}");
    for (mode, objective) in [(Mode::VaeGan, "L_enc"), (Mode::Vae, "L_vae")] {
        let base = tiny(mode);
        let with = ModelConfig { latent_mmd: 3.0, ..base.clone() };
        let (v0, v1) = (step_values(&base, batch, &x), step_values(&with, batch, &x));
        assert!(!v0.contains_key("mmd"), "{mode:?}: an mmd output with latent_mmd = 0");
        let mmd = v1["mmd"];
        assert!(mmd.is_finite() && mmd != 0.0, "{mode:?}: MMD² {mmd}");
        close(&format!("{mode:?} {objective}"), v1[objective], v0[objective] + 3.0 * mmd);
        if mode == Mode::VaeGan {
            close("L_dec unchanged", v1["L_dec"], v0["L_dec"]);
            close("L_GAN_D unchanged", v1["gan_d"], v0["gan_d"]);
        }
        check_all_groups(&build_step(&with, batch, 5).unwrap(), &mut rng);
        // The adversarial autoencoder's term, with its latent discriminator.
        let adv = ModelConfig { latent_adversary: 0.5, latent_discriminator: vec![3], ..base.clone() };
        let v2 = step_values(&adv, batch, &x);
        let (fool, gan_dz) = (v2["adv_z"], v2["gan_dz"]);
        assert!(fool.is_finite() && fool > 0.0 && gan_dz.is_finite() && gan_dz > 0.0, "{mode:?}: adv_z {fool}, gan_dz {gan_dz}");
        close(&format!("{mode:?} {objective} with the adversary"), v2[objective], v0[objective] + 0.5 * fool);
        let step = build_step(&adv, batch, 5).unwrap();
        let names: Vec<&str> = step.graph.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names.len(), adv.groups(), "{names:?}");
        assert_eq!(names.last(), Some(&"latent_discriminator"), "{names:?}");
        check_all_groups(&step, &mut rng);
        let err = build_step(&with, 1, 5).err().expect("latent_mmd at batch 1 accepted").to_string();
        assert!(err.contains("batch 1") && err.contains("model.latent_mmd"), "{err}");
    }
    for key in ["latent_mmd", "latent_adversary"] {
        let err = vaegan::model::RunConfig::from_toml(&format!("[model]\n{key} = -1.0\n"), "k.toml").expect_err("a negative weight accepted");
        assert!(err.contains("k.toml") && err.contains(&format!("model.{key}")), "{err}");
    }
}

/// `decoder_bn_stats`: which of the decoder's two passes (posterior z, then prior z_p) move
/// its batch-norm running statistics, on the GPU. From PyTorch's update r ← 0.9·r + 0.1·m,
/// running means starting at 0 and variances at 1, one step gives
/// both = 0.9·posterior + prior (means) and both = 0.9·posterior + prior − 0.9 (variances)
/// for the same weights, data and draws; and the two passes' statistics differ, so "prior"
/// and "posterior" are not the same update under two names.
#[test]
fn decoder_bn_stats_chooses_the_passes_that_move_the_running_statistics() {
    use vaegan::model::BnStats;
    let mut rng = rng("decoder_bn_stats_chooses_the_passes_that_move_the_running_statistics");
    let c = tiny_conv_config();
    assert!(!c.joint_batches, "mnist-conv runs a decoder pass per batch");
    let batch = 5;
    let x = as_f32(&uniform(&mut rng, batch * c.input, 0.0, 1.0));
    let stats = |s: BnStats| -> Vec<(String, Vec<f64>)> {
        let step = build_step(&ModelConfig { decoder_bn_stats: s, ..c.clone() }, batch, 9).unwrap();
        let exec = gpu_step(&step, &x, true);
        let state = exec.read_state().unwrap();
        state.into_iter().filter(|(n, _, _)| n.starts_with("decoder")).map(|(n, _, v)| (n, v.into_iter().map(|x| x as f64).collect())).collect()
    };
    let (both, prior, posterior) = (stats(BnStats::Both), stats(BnStats::Prior), stats(BnStats::Posterior));
    assert!(!both.is_empty(), "the decoder has batch norms");
    for (((name, b), (_, p)), (_, q)) in both.iter().zip(&prior).zip(&posterior) {
        let shift = if name.ends_with("running_var") { 0.9 } else { 0.0 };
        let want: Vec<f64> = p.iter().zip(q).map(|(p, q)| 0.9 * q + p - shift).collect();
        let magnitude: Vec<f64> = p.iter().zip(q).map(|(p, q)| 0.9 * q.abs() + p.abs() + shift).collect();
        // Two f32 updates of values ~1: a few ulp.
        assert_close_mag(&format!("{name}: both from prior and posterior"), b, &want, &magnitude, 1e-6);
        let apart = p.iter().zip(q).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
        assert!(apart > 1e-4, "{name}: the prior and posterior passes gave the same statistics ({apart:e})");
    }
    // A joint pass has one set of statistics: refused with the key named.
    let err = vaegan::model::RunConfig::from_toml("preset = \"celeba64\"\n[model]\ndecoder_bn_stats = \"prior\"\n", "k.toml")
        .expect_err("prior with joint batches accepted");
    assert!(err.contains("k.toml") && err.contains("model.decoder_bn_stats") && err.contains("joint_batches"), "{err}");
}

/// Global max pooling inside a graph (the colour classifiers' trunk): a convolution, batch
/// norm, the maximum over positions and a softmax head; every parameter's GPU gradient
/// against central differences on the CPU interpreter. Random inputs leave no ties within
/// the difference step, where the maximum is not differentiable.
#[test]
fn position_max_gradients_match_finite_differences() {
    use vaegan::nn;
    use vaegan::types::ConvGeom;
    let mut rng = rng("position_max_gradients_match_finite_differences");
    for batch in [1, 3] {
        let mut g = Graph::new();
        let x_id = g.input("x", [batch, 5 * 5 * 2]);
        let group = g.group("classifier");
        let conv = nn::conv2d_unbiased(&mut g, group, "conv", ConvGeom::conv(batch, (5, 5, 2), 4, (3, 3), 1, 1).unwrap(), false, 1);
        let bn = nn::batch_norm(&mut g, group, "bn", 4);
        let head = nn::linear(&mut g, group, "head", 4, 3, 2);
        let h = g.conv2d(x_id, &conv, Act::None);
        let h = g.batch_norm(h, &bn, Act::Tanh);
        let pooled = g.position_max(h, 4);
        let logits = g.linear(pooled, &head, Act::None);
        let targets = g.constant("targets", [batch, 3], (0..batch * 3).map(|i| if i % 3 == (i / 3) % 3 { 1.0 } else { 0.0 }).collect());
        let loss = g.loss(LossKind::SoftmaxCe, logits, targets, 1.0 / batch as f32);
        g.output("loss", loss);
        g.objective(group, "classifier", loss).unwrap();
        let x = as_f32(&uniform(&mut rng, batch * 50, 0.0, 1.0));
        let mut exec = GpuExecutor::new(gpu(), g.clone(), ExecOptions { seed: SEED, reuse: true, update: None, ..Default::default() }).unwrap();
        exec.set_input(x_id, &x.iter().map(|&v| v as f32).collect::<Vec<_>>()).unwrap();
        exec.step_with(true, None).unwrap();
        gpu().wait().unwrap();
        assert!(dump::text(&g, None).contains("position_max_backward 4 channels"));
        let group = &g.groups[0];
        for (&p, &d) in group.params.iter().zip(&group.grads) {
            let p0: Vec<f64> = g.tensors[p].init.as_ref().unwrap().iter().map(|&v| v as f64).collect();
            let got: Vec<f64> = exec.read(d).unwrap().into_iter().map(|v| v as f64).collect();
            let what = format!("batch {batch}: ∂loss/∂{}", g.name(p));
            check_grad_tol(&what, &mut rng, |v| cpu_objective(&g, x_id, &x, p, v, loss), &p0, &got, GRAPH_FD_TOL);
        }
    }
}

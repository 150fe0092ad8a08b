//! Training on a small MNIST subset on lavapipe: losses fall, checkpoints round-trip,
//! a resumed run continues bit-for-bit, configs are validated.

use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

use vaegan::checkpoint::Checkpoint;
use vaegan::data::Split;
use vaegan::model::{Mode, RunConfig};
use vaegan::train::Trainer;

use crate::common::*;

fn mnist() -> &'static Split {
    static SPLIT: OnceLock<Split> = OnceLock::new();
    SPLIT.get_or_init(|| {
        let s = crate::data::load_mnist();
        vaegan::train::limited(s, Some(512), Some(256))
    })
}

fn small(mode: Mode) -> RunConfig {
    let mut c = RunConfig::preset("mnist-mlp").unwrap();
    c.model.mode = mode;
    c.model.encoder = vec![128];
    c.model.decoder = vec![128];
    c.model.discriminator = vec![64];
    c.model.latent = 8;
    c.model.pixel_weight = 1.0;
    c.optim = vaegan::model::OptimConfig::for_mode(mode);
    c
}

/// `t`'s checkpoint, through a file and back (the trainer is dropped first, as a resumed
/// process would start without it).
fn saved_and_loaded(t: Trainer) -> Checkpoint {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    t.checkpoint().unwrap().save(&path).unwrap();
    drop(t);
    Checkpoint::load(&path).unwrap()
}

fn losses_of(t: &Trainer, name: &str) -> Vec<(u64, f32)> {
    t.history.iter().map(|(s, v)| (*s, v.iter().find(|(n, _)| n == name).unwrap().1)).collect()
}

#[test]
fn losses_fall_on_a_small_mnist_subset() {
    for (mode, loss) in [(Mode::Vae, "loss"), (Mode::VaeGan, "bce")] {
        let mut t = Trainer::new(gpu(), small(mode), 64, 7, &mnist().train, None).unwrap();
        t.readback_every = 1;
        t.exec.wait_for_readback = true;
        let stop = AtomicBool::new(false);
        for _ in 0..6 {
            t.run_epoch(&stop, |_| {}).unwrap();
        }
        let l = losses_of(&t, loss);
        assert_eq!(l.len(), 48, "every step read back");
        let first: f32 = l[..8].iter().map(|x| x.1).sum::<f32>() / 8.0;
        let last: f32 = l[40..].iter().map(|x| x.1).sum::<f32>() / 8.0;
        assert!(last < 0.8 * first, "{mode:?}: {loss} went from {first} to {last}");
        assert!(l.iter().all(|x| x.1.is_finite()));
    }
}

/// `--precision f16`: the mixed-precision step learns like the f32 one (where the adapter
/// has SHADER_F16; elsewhere the trainer refuses with a clear error).
#[test]
fn mixed_precision_training_learns() {
    let mut config = small(Mode::Vae);
    config.optim.precision = vaegan::types::Precision::F16;
    if !has_f16() {
        let err = Trainer::new(gpu(), config, 64, 7, &mnist().train, None).err().expect("no SHADER_F16: refused");
        assert!(err.to_string().contains("SHADER_F16"), "{err}");
        return;
    }
    let mut t = Trainer::new(gpu(), config, 64, 7, &mnist().train, None).unwrap();
    t.readback_every = 1;
    t.exec.wait_for_readback = true;
    let stop = AtomicBool::new(false);
    for _ in 0..6 {
        t.run_epoch(&stop, |_| {}).unwrap();
    }
    let l = losses_of(&t, "loss");
    let first: f32 = l[..8].iter().map(|x| x.1).sum::<f32>() / 8.0;
    let last: f32 = l[40..].iter().map(|x| x.1).sum::<f32>() / 8.0;
    assert!(last < 0.8 * first && l.iter().all(|x| x.1.is_finite()), "f16: loss went from {first} to {last}");
    let ck = t.checkpoint().unwrap();
    assert_eq!(ck.config.optim.precision, vaegan::types::Precision::F16, "the precision is part of the run's config");
}

#[test]
fn checkpoints_round_trip() {
    let t = Trainer::new(gpu(), small(Mode::VaeGan), 32, 3, &mnist().train, None).unwrap();
    let ck = t.checkpoint().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    ck.save(&path).unwrap();
    let back = Checkpoint::load(&path).unwrap();
    assert_eq!(back.config, ck.config);
    assert_eq!((back.step, back.epoch, back.step_in_epoch, back.seed, back.batch), (ck.step, ck.epoch, ck.step_in_epoch, ck.seed, ck.batch));
    assert_eq!(back.updates, ck.updates);
    assert_eq!(back.params.len(), ck.params.len());
    for (name, shape, values) in &ck.params {
        let (_, s2, v2) = back.params.iter().find(|(n, _, _)| n == name).unwrap_or_else(|| panic!("{name} lost"));
        assert_eq!(shape, s2, "{name}");
        assert_eq!(values, v2, "{name}");
        assert_eq!(back.moment_m(name).map(|m| m.len()), Some(values.len()), "Adam m of {name}");
    }
    assert!(back.params.iter().any(|(n, _, _)| n == "encoder.0.weight"), "weights under readable names");
    assert!(!path.with_extension("safetensors.tmp").exists(), "the temporary file is renamed away");
}

/// Larsen et al.'s balancing decides each step's updates from losses read back
/// asynchronously; the decisions must still depend on the seed alone: two runs of a seed
/// take the same updates and losses bit for bit, and so does a run resumed from a
/// checkpoint (which carries the last losses), across an epoch boundary. The margin is
/// narrow so that the balancing skips updates often.
#[test]
fn a_balanced_run_is_deterministic_and_resumes_exactly() {
    let mut config = small(Mode::VaeGan);
    config.optim.balance = true;
    config.optim.margin = 0.02;
    config.optim.equilibrium = 0.9;
    let (batch, first, then) = (64, 10, 7);
    // (losses, updates) of each step; the trainer's own readback settings, as the CLI's.
    let run = |t: &mut Trainer, steps: usize| -> Vec<Vec<bool>> {
        let updates = (0..steps).map(|_| {
            t.step().unwrap();
            t.last_update.clone()
        });
        let updates = updates.collect();
        t.collect(true).unwrap();
        updates
    };
    let bits = |t: &Trainer| -> Vec<(u64, Vec<u32>)> { t.history.iter().map(|(s, v)| (*s, v.iter().map(|(_, x)| x.to_bits()).collect())).collect() };
    let mut a = Trainer::new(gpu(), config.clone(), batch, 5, &mnist().train, None).unwrap();
    let a_updates = run(&mut a, first + then);
    let mut b = Trainer::new(gpu(), config.clone(), batch, 5, &mnist().train, None).unwrap();
    let b_updates = run(&mut b, first + then);
    assert_eq!(a.history.len(), first + then, "every balanced step reads its losses back");
    assert!(a.skipped[0] + a.skipped[1] > 0, "the balancing never skipped an update: the test checks nothing");
    assert_eq!(a_updates, b_updates, "the same seed, other decisions");
    // Each decision is the rule applied to the previous step's losses (the first step
    // updates everything); groups are encoder, decoder, discriminator.
    let (eq, margin) = (config.optim.equilibrium, config.optim.margin);
    for (i, u) in a_updates.iter().enumerate() {
        let want = match i {
            0 => vec![true; 3],
            _ => {
                let v = &a.history[i - 1].1;
                let get = |n: &str| v.iter().find(|(k, _)| k == n).unwrap().1;
                let (real, fake) = (get("d_real"), get("d_fake"));
                let (dis, dec) = (!(real < eq - margin || fake < eq - margin), !(real > eq + margin || fake > eq + margin));
                let (dis, dec) = if !dis && !dec { (true, true) } else { (dis, dec) };
                vec![true, dec, dis]
            }
        };
        assert_eq!(u, &want, "step {}", i + 1);
    }
    assert_eq!(bits(&a), bits(&b));

    let mut part = Trainer::new(gpu(), config.clone(), batch, 5, &mnist().train, None).unwrap();
    run(&mut part, first);
    let ck = saved_and_loaded(part);
    assert_eq!(ck.balance_losses.map(|(s, _, _)| s), Some(first as u64), "the checkpoint carries the last step's losses");
    let mut resumed = Trainer::new(gpu(), ck.config.clone(), batch, ck.seed, &mnist().train, Some(&ck)).unwrap();
    let resumed_updates = run(&mut resumed, then);
    assert_eq!(resumed_updates, a_updates[first..], "the resumed run's decisions");
    let tail: Vec<_> = bits(&a).into_iter().filter(|(s, _)| *s > first as u64).collect();
    assert_eq!(bits(&resumed), tail);
}

/// Steps N+1..N+k after a resume give the same losses, bit for bit, as an uninterrupted run
/// (across an epoch boundary: the permutation, RNG keys and Adam state all continue).
#[test]
fn a_resumed_run_continues_exactly() {
    let config = small(Mode::VaeGan);
    let (batch, first, then) = (64, 10, 7); // 8 steps per epoch: resume mid-epoch 2, run into epoch 3
    let run = |t: &mut Trainer, steps: usize| {
        for _ in 0..steps {
            t.step().unwrap();
        }
        t.collect(true).unwrap();
    };
    let mut whole = Trainer::new(gpu(), config.clone(), batch, 11, &mnist().train, None).unwrap();
    whole.readback_every = 1;
    whole.exec.wait_for_readback = true;
    run(&mut whole, first + then);

    let mut part = Trainer::new(gpu(), config.clone(), batch, 11, &mnist().train, None).unwrap();
    part.readback_every = 1;
    part.exec.wait_for_readback = true;
    run(&mut part, first);
    let ck = saved_and_loaded(part);
    assert_eq!((ck.step, ck.epoch, ck.step_in_epoch), (10, 1, 2));
    let mut resumed = Trainer::new(gpu(), ck.config.clone(), batch, ck.seed, &mnist().train, Some(&ck)).unwrap();
    resumed.readback_every = 1;
    resumed.exec.wait_for_readback = true;
    run(&mut resumed, then);

    let tail: Vec<_> = whole.history.iter().filter(|(s, _)| *s > first as u64).cloned().collect();
    assert_eq!(tail.len(), then);
    assert_eq!(resumed.history.len(), then);
    for ((s1, v1), (s2, v2)) in tail.iter().zip(&resumed.history) {
        assert_eq!(s1, s2);
        for ((n, a), (_, b)) in v1.iter().zip(v2) {
            assert_eq!(a.to_bits(), b.to_bits(), "step {s1}: {n} {a} after resume {b}");
        }
    }
}

/// `restat`: decoding prior batches with batch norm in train mode moves the decoder's
/// running statistics to the prior batches' own, so that afterwards the eval-mode decoder
/// on a fresh batch of N(0, I) codes draws nearly what the same codes give under their batch
/// statistics; before, with statistics from elsewhere (here random), it did not. A decoder
/// without batch norm is refused.
#[test]
fn restat_moves_the_decoder_statistics_to_the_prior_batches() {
    use vaegan::graph::{ExecOptions, GpuExecutor};
    use vaegan::model::{build_decode_in, Phase};
    use vaegan::train::eval::{fixed_normals, Decoder};
    let ck = crate::export::random_checkpoint("mnist-conv", 8);
    let c = &ck.config.model;
    let batch = 256;
    let z = fixed_normals(batch, c.latent, 999);
    let values = |state: &[(String, [usize; 2], Vec<f32>)]| {
        let state = state.to_vec();
        let ck = ck.clone();
        move |n: &str| state.iter().find(|(m, _, _)| m == n).map(|(_, _, v)| v.clone()).or_else(|| ck.tensor(n))
    };
    let eval_mode = |state: &[(String, [usize; 2], Vec<f32>)]| -> Vec<f32> {
        let mut d = Decoder::new(gpu(), c, batch).unwrap();
        d.load(&values(state)).unwrap();
        d.decode_raw(&z).unwrap()
    };
    let train_mode = {
        let graph = build_decode_in(c, batch, Phase::Train).unwrap();
        let mut exec = GpuExecutor::new(gpu(), graph.graph.clone(), ExecOptions::default()).unwrap();
        exec.load_params(&[0], &|n| ck.tensor(n), None).unwrap();
        exec.load_state(&|n| ck.tensor(n)).unwrap();
        exec.set_input(graph.z, &z).unwrap();
        exec.step().unwrap();
        exec.read(graph.images).unwrap()
    };
    let restated = vaegan::train::restat::decoder_stats_on_prior(gpu(), c, &|n| ck.tensor(n), None, 40, 64, 1).unwrap();
    assert_eq!(restated.len(), ck.state.iter().filter(|(n, _, _)| n.starts_with("decoder.")).count(), "every decoder statistic, nothing else");
    let rms = |a: &[f32], b: &[f32]| (a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / a.len() as f64).sqrt();
    let (before, after) = (rms(&eval_mode(&ck.state), &train_mode), rms(&eval_mode(&restated), &train_mode));
    // 40 batches at momentum 0.1 leave 0.9⁴⁰ ≈ 1.5 % of the old statistics; what remains is
    // the last batches' sampling noise and the test batch's own (measured: about a quarter of
    // the random statistics' error). Statistics that did not move would leave all of it.
    assert!(after < 0.4 * before && after.is_finite(), "eval-mode vs batch-statistics output: {before:.4} before, {after:.4} after");

    let mlp = vaegan::model::ModelConfig::mnist_mlp();
    let err = vaegan::train::restat::decoder_stats_on_prior(gpu(), &mlp, &|_| None, None, 1, 8, 1).err().unwrap().to_string();
    assert!(err.contains("no batch norm"), "{err}");
}

/// A small convolutional VAE-GAN (batch norm in the decoder) with the decoder averaged.
fn small_conv_averaged(decay: f32) -> RunConfig {
    let mut c = RunConfig::preset("mnist-conv").unwrap();
    c.model.encoder = vec![4, 8];
    c.model.encoder_dense = vec![16];
    c.model.decoder = vec![8, 4];
    c.model.discriminator = vec![4, 8];
    c.model.discriminator_dense = vec![16];
    c.model.latent = 4;
    c.model.latent_adversary = 0.0;
    c.optim.decoder_ema = decay;
    c
}

fn decoder_tensors(list: Vec<(String, [usize; 2], Vec<f32>)>) -> Vec<(String, [usize; 2], Vec<f32>)> {
    list.into_iter().filter(|(n, _, _)| n.starts_with("decoder.")).collect()
}

/// `optim.decoder_ema`: the average the trainer keeps is the twin's moving average of the
/// decoder's weights as they are after each step, with the warm-up's decays — the decoder's
/// only; the checkpoint holds it with statistics re-estimated for it, `tensor` (what every
/// use of the model loads) prefers it and `live` drops it; a resumed run continues it bit
/// for bit, and a resume that turns averaging on starts it from the weights it resumes.
#[test]
fn the_decoder_average_follows_every_update_and_resumes_exactly() {
    use vaegan::kernels::ema::decay_at;
    let decay = 0.9;
    let config = small_conv_averaged(decay);
    let batch = 16;
    let mut t = Trainer::new(gpu(), config.clone(), batch, 13, &mnist().train, None).unwrap();
    let live = |t: &Trainer| decoder_tensors(t.exec.read_params().unwrap());
    let start = live(&t);
    let mut avg: Vec<Vec<f64>> = start.iter().map(|(_, _, v)| v.iter().map(|&x| x as f64).collect()).collect();
    let mut size: Vec<Vec<f64>> = avg.iter().map(|v| abs(v)).collect();
    let steps = 6;
    for step in 1..=steps {
        t.step().unwrap();
        // Reading the weights waits for this step's work, the average's update included.
        for (a, (s, (_, _, p))) in avg.iter_mut().zip(size.iter_mut().zip(live(&t))) {
            let p: Vec<f64> = p.iter().map(|&x| x as f64).collect();
            vaegan::reference::ema::ema(decay_at(decay, step), &p, a);
            s.iter_mut().zip(&p).for_each(|(s, p)| *s = s.max(p.abs()));
        }
    }
    let got = t.exec.read_averages().unwrap();
    let last = live(&t);
    assert_eq!(
        got.iter().map(|(n, s, _)| (n, s)).collect::<Vec<_>>(),
        last.iter().map(|(n, s, _)| (n, s)).collect::<Vec<_>>(),
        "the decoder's weights, no other"
    );
    let mut differs = 0.0f64;
    for (((name, _, g), want), (s, (_, _, l))) in got.iter().zip(&avg).zip(size.iter().zip(&last)) {
        let g: Vec<f64> = g.iter().map(|&x| x as f64).collect();
        assert_close_mag(&format!("average of {name}"), &g, want, s, 1e-5);
        differs = differs.max(g.iter().zip(l).map(|(a, b)| (a - *b as f64).abs()).fold(0.0, f64::max));
    }
    assert!(differs > 1e-4, "the average is not the last weights (largest difference {differs})");

    // The checkpoint: averaged weights and re-estimated statistics for every decoder tensor.
    let ck = saved_and_loaded(t);
    let decoder_state: Vec<&String> = ck.state.iter().map(|(n, _, _)| n).filter(|n| n.starts_with("decoder.")).collect();
    assert!(!decoder_state.is_empty(), "the decoder has batch norm");
    let mut names: Vec<&String> = ck.average.iter().map(|(n, _, _)| n).collect();
    let mut want: Vec<&String> = got.iter().map(|(n, _, _)| n).chain(decoder_state.iter().copied()).collect();
    names.sort();
    want.sort();
    assert_eq!(names, want);
    for (name, _, values) in &got {
        assert_eq!(ck.tensor(name).as_ref(), Some(values), "{name}: tensor() gives the average");
        assert_ne!(ck.param(name).as_ref(), Some(values), "{name}: param() gives the last weights");
        assert_eq!(ck.clone().live().tensor(name), ck.param(name), "{name}: live() gives the last weights");
    }
    for name in decoder_state {
        let (restated, trained) = (ck.averaged(name).unwrap(), ck.state(name).unwrap());
        assert!(restated.iter().all(|v| v.is_finite()) && restated != trained, "{name}: re-estimated for the average");
    }
    assert_eq!(ck.clone().live().config.optim.decoder_ema, 0.0, "a live checkpoint promises no average");

    // Resumed: the same average as a run that never stopped.
    let resume_steps = 4;
    let mut whole = Trainer::new(gpu(), config.clone(), batch, 13, &mnist().train, None).unwrap();
    for _ in 0..steps + resume_steps {
        whole.step().unwrap();
    }
    let mut resumed = Trainer::new(gpu(), ck.config.clone(), batch, ck.seed, &mnist().train, Some(&ck)).unwrap();
    for _ in 0..resume_steps {
        resumed.step().unwrap();
    }
    for ((n, _, a), (_, _, b)) in whole.exec.read_averages().unwrap().iter().zip(resumed.exec.read_averages().unwrap()) {
        assert_same_bits(
            &format!("average of {n} after a resume"),
            &a.iter().map(|&x| x as f64).collect::<Vec<_>>(),
            &b.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        );
    }

    // Turned on at a resume of a run without one: it starts from the resumed weights.
    let mut plain = ck.clone().live();
    plain.config.optim.decoder_ema = 0.0;
    let mut config = plain.config.clone();
    config.optim.decoder_ema = decay;
    let turned_on = Trainer::new(gpu(), config, batch, plain.seed, &mnist().train, Some(&plain)).unwrap();
    let sorted = |mut l: Vec<(String, [usize; 2], Vec<f32>)>| {
        l.sort_by(|a, b| a.0.cmp(&b.0));
        l
    };
    assert_eq!(sorted(turned_on.exec.read_averages().unwrap()), sorted(decoder_tensors(plain.params.clone())));
}

/// The average's decay is validated with the config.
#[test]
fn a_bad_decoder_average_is_refused() {
    for bad in [1.0, -0.5, f32::NAN] {
        let err = Trainer::new(gpu(), small_conv_averaged(bad), 16, 1, &mnist().train, None).err().expect("refused").to_string();
        assert!(err.contains("optim.decoder_ema") && err.contains("[0, 1)"), "{bad}: {err}");
    }
}

/// A conditioned model keeps an average too. Its decoder reads labels beside the codes, so
/// the prior codes its statistics are re-estimated on take labels drawn from the training
/// set's (as training decodes its prior codes with the batch's labels): the labels reach
/// the decoder (other labels give other statistics), and without a table it says so.
#[test]
fn a_conditioned_decoder_average_draws_its_labels_from_the_training_set() {
    use vaegan::train::restat;
    let mut c = small_conv_averaged(0.99);
    c.model.conditions = (0..10).map(|d| d.to_string()).collect();
    c.validate().unwrap();
    let set = &mnist().train;
    let mut t = Trainer::new(gpu(), c, 16, 1, set, None).unwrap();
    for _ in 0..3 {
        t.step().unwrap();
    }
    let ck = saved_and_loaded(t);
    let stats: Vec<&String> = ck.state.iter().map(|(n, _, _)| n).filter(|n| n.starts_with("decoder.")).collect();
    assert!(!stats.is_empty(), "the decoder has batch norm");
    for name in &stats {
        let (restated, trained) = (ck.averaged(name).expect("re-estimated for the average"), ck.state(name).unwrap());
        assert!(restated.iter().all(|v| v.is_finite()) && restated != trained, "{name}: re-estimated for the average");
    }

    let table = set.attribute_table().unwrap();
    let restat = |t: Option<&vaegan::data::Attributes>| restat::decoder_stats_on_prior(gpu(), &ck.config.model, &|n| ck.tensor(n), t, 4, 16, 3);
    let mut sevens = table.clone();
    sevens.values.chunks_mut(10).for_each(|row| row.iter_mut().enumerate().for_each(|(d, v)| *v = (d == 7) as u8));
    let (mixed, only7) = (restat(Some(&table)).unwrap(), restat(Some(&sevens)).unwrap());
    let largest = mixed.iter().zip(&only7).map(|((_, _, a), (_, _, b))| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max)).fold(0.0, f32::max);
    assert!(largest > 1e-3, "the labels reach the decoder: statistics with every digit and with 7s alone differ by {largest}");
    assert_eq!(mixed, restat(Some(&table)).unwrap(), "the same seed draws the same labels");

    let err = restat(None).expect_err("refused").to_string();
    assert!(err.contains("conditioned on 10 labels") && err.contains("training labels"), "{err}");
    let mut three = table.clone();
    three.names.truncate(3);
    three.values.truncate(3 * 20);
    let err = restat(Some(&three)).expect_err("refused").to_string();
    assert!(err.contains("conditioned on 10 labels") && err.contains("has 3 labels for 20 images"), "{err}");

    // The drawn rows are the table's rows, every one of them reachable.
    let rows = restat::drawn_rows(&table, 4000, 9);
    let seen: std::collections::HashSet<usize> = rows.chunks(10).map(|r| r.iter().position(|&v| v == 1.0).expect("one-hot")).collect();
    assert_eq!(seen.len(), 10, "every digit drawn: {seen:?}");
}

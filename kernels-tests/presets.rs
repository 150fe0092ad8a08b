//! The presets (mnist-mlp, mnist-conv, celeba64, seed, pytorch-vae) each build, take a step
//! on the adapter with finite losses, checkpoint with their batch-norm state, and decode
//! from the checkpoint; streamed batches train bit-identically to the resident set, a
//! streamed run resumes exactly; the optimiser settings parse and decay.

use vaegan::checkpoint::Checkpoint;
use vaegan::data::Dataset;
use vaegan::model::{Optimizer, RunConfig};
use vaegan::train::eval::Decoder;
use vaegan::train::Trainer;

use crate::common::*;

/// `count` random images of `shape`, as a data set.
fn random_set(shape: [usize; 3], count: usize, seed: u64) -> Dataset {
    let mut r = rng(&format!("random_set {seed}"));
    let dim = shape.iter().product::<usize>();
    let images: Vec<u8> = uniform(&mut r, count * dim, 0.0, 256.0).iter().map(|&v| v as u8).collect();
    Dataset { images: images.into(), labels: None, attributes: None, count, height: shape[0], width: shape[1], channels: shape[2], source: "random".into() }
}

#[test]
fn every_preset_takes_a_step_checkpoints_and_decodes() {
    for (preset, batch) in [("mnist-mlp", 4), ("pytorch-vae", 4), ("seed", 4), ("mnist-conv", 4), ("celeba64", 2)] {
        let mut config = RunConfig::preset(preset).unwrap();
        // celeba64's layers on 32×32 images: every op and layer of the preset at a quarter of
        // its 20 GFLOP a sample (its full-size graph is built and planned below).
        if preset == "celeba64" {
            let full = vaegan::model::build_step(&config.model, batch, 1).unwrap();
            assert!(full.graph.largest_tensor_bytes() < gpu().binding_limit(), "celeba64 at batch {batch} fits the adapter");
            config.model.set_image(32, 32, 3);
        }
        let set = random_set(config.model.image, 2 * batch, 1);
        let mut t = Trainer::new(gpu(), config.clone(), batch, 5, &set, None).unwrap_or_else(|e| panic!("{preset}: {e}"));
        t.readback_every = 1;
        t.exec.wait_for_readback = true;
        t.step().unwrap();
        t.step().unwrap();
        t.collect(true).unwrap();
        assert_eq!(t.history.len(), 2, "{preset}: both steps read back");
        for (step, values) in &t.history {
            assert!(values.iter().all(|(_, v)| v.is_finite()), "{preset} step {step}: {values:?}");
        }
        let ck = t.checkpoint().unwrap();
        let conv = config.model.arch == vaegan::model::Arch::Conv;
        assert_eq!(!ck.state.is_empty(), conv, "{preset}: batch norm's running statistics are saved");
        if conv {
            // Two training steps moved the running means away from their initial zeros.
            let moved = ck.state.iter().filter(|(n, _, _)| n.ends_with("running_mean")).any(|(_, _, v)| v.iter().any(|&x| x != 0.0));
            assert!(moved, "{preset}: running statistics updated on the GPU");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        ck.save(&path).unwrap();
        let back = Checkpoint::load(&path).unwrap();
        let sorted = |mut t: vaegan::checkpoint::Tensors| {
            t.sort_by(|a, b| a.0.cmp(&b.0));
            t
        };
        assert!(sorted(back.state.clone()) == sorted(ck.state.clone()), "{preset}: the running statistics round-trip");
        let mut dec = Decoder::new(gpu(), &back.config.model, 3).unwrap();
        dec.load(&|n| back.tensor(n)).unwrap();
        let images = dec.decode(&vaegan::train::eval::fixed_normals(3, config.model.latent, 1)).unwrap();
        assert_eq!(images.len(), 3 * config.model.input, "{preset}");
        assert!(images.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)), "{preset}: decoded images in [0, 1]");
    }
}

fn small_run() -> RunConfig {
    let mut c = RunConfig::preset("mnist-conv").unwrap();
    c.model.set_image(8, 8, 3);
    c.model.encoder = vec![4];
    c.model.encoder_dense = vec![];
    c.model.latent = 4;
    c.model.decoder = vec![4];
    c.model.discriminator = vec![4, 4];
    c.model.discriminator_dense = vec![8];
    c.model.pixel_weight = 1.0;
    c
}

fn params_bits(t: &Trainer) -> Vec<(String, Vec<u32>)> {
    let mut p = t.exec.read_params().unwrap();
    p.extend(t.exec.read_state().unwrap());
    p.into_iter().map(|(n, _, v)| (n, v.iter().map(|x| x.to_bits()).collect())).collect()
}

/// A set over the GPU data budget streams from a background thread: the same batches, so
/// the same weights bit for bit, over two epochs; and a streamed run checkpointed
/// mid-epoch resumes into exactly the uninterrupted run.
#[test]
fn streamed_batches_train_bit_identically_and_resume() {
    let config = small_run();
    let set = random_set(config.model.image, 40, 2);
    let (batch, steps) = (8, 12); // 5 steps an epoch: into the third epoch
    let run = |t: &mut Trainer, n: usize| {
        for _ in 0..n {
            t.step().unwrap();
        }
        t.gpu.wait().unwrap();
    };
    let mut resident = Trainer::new(gpu(), config.clone(), batch, 3, &set, None).unwrap();
    assert!(!resident.streams());
    run(&mut resident, steps);
    let mut streamed = Trainer::with_budget(gpu(), config.clone(), batch, 3, &set, None, 64).unwrap();
    assert!(streamed.streams(), "a 64-byte budget streams");
    run(&mut streamed, steps);
    assert_eq!(params_bits(&resident), params_bits(&streamed), "streamed and resident runs differ");

    let mut part = Trainer::with_budget(gpu(), config.clone(), batch, 3, &set, None, 64).unwrap();
    run(&mut part, 7);
    let ck = part.checkpoint().unwrap();
    drop(part);
    assert_eq!((ck.epoch, ck.step_in_epoch), (1, 2));
    let mut resumed = Trainer::with_budget(gpu(), ck.config.clone(), batch, ck.seed, &set, Some(&ck), 64).unwrap();
    run(&mut resumed, steps - 7);
    assert_eq!(params_bits(&resident), params_bits(&resumed), "a resumed streamed run differs");
}

#[test]
fn optimisers_are_chosen_per_group_and_decay_per_epoch() {
    let text = "preset = \"mnist-mlp\"\n[optim]\noptimizer = \"rmsprop\"\noptimizer_decoder = \"adam\"\nlr_decay = 0.5\nrho = 0.95\n";
    let c = RunConfig::from_toml(text, "o.toml").unwrap();
    assert_eq!(
        (c.optim.optimizer_encoder, c.optim.optimizer_decoder, c.optim.optimizer_discriminator),
        (Optimizer::Rmsprop, Optimizer::Adam, Optimizer::Rmsprop)
    );
    assert_eq!(c.optim.lr_of("encoder", 0), c.optim.lr_encoder);
    assert_eq!(c.optim.lr_of("encoder", 2), c.optim.lr_encoder * 0.25);
    match c.optim.rule("discriminator", 1) {
        vaegan::types::UpdateRule::RmsProp(p) => assert_eq!((p.rho, p.lr), (0.95, c.optim.lr_discriminator * 0.5)),
        other => panic!("{other:?}"),
    }
    for (bad, expect) in [("lr_decay = 1.5", "optim.lr_decay"), ("rho = 1.0", "optim.rho"), ("optimizer = \"sgd\"", "optim.optimizer: unknown variant `sgd`")] {
        let err = RunConfig::from_toml(&format!("[optim]\n{bad}\n"), "o.toml").err().unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(err.contains("o.toml") && err.contains(expect), "{bad}: {err}");
    }
    assert_eq!(RunConfig::preset("celeba64").unwrap().optim.optimizer_decoder, Optimizer::Rmsprop, "Larsen et al. train with RMSProp");

    // On the adapter: RMSProp on every group trains, and the decay reaches the kernels.
    let mut config = small_run();
    config.optim.set_optimizer(Optimizer::Rmsprop);
    config.optim.lr_decay = 0.5;
    let set = random_set(config.model.image, 16, 4);
    let mut t = Trainer::new(gpu(), config, 8, 1, &set, None).unwrap();
    t.readback_every = 1;
    t.exec.wait_for_readback = true;
    for _ in 0..4 {
        t.step().unwrap();
    }
    t.collect(true).unwrap();
    assert!(t.history.iter().all(|(_, v)| v.iter().all(|(_, x)| x.is_finite())));
    // Two steps an epoch: the fourth step ran in epoch 1, at half the rate.
    assert_eq!(t.exec.lr(0), 0.5 * t.config.optim.lr_encoder);
}

/// A conditioned model trains on each image's own labels: after every step, row b of the
/// labels input y holds the labels of the image in row b of x (here a function of the
/// image's first byte, so that the pairing can be checked without the permutation), on the
/// resident and on the streamed feed, across epochs; both feeds train bit-identically.
/// Labels that are not the model's, or none, are refused by name.
#[test]
fn conditioned_runs_feed_each_image_its_labels() {
    let mut config = small_run();
    let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    config.model.conditions = names.clone();
    let mut set = random_set(config.model.image, 40, 4);
    let labels_of = |first_byte: u8| -> Vec<u8> { (0..3).map(|j| (first_byte >> j) & 1).collect() };
    let dim = set.dim();
    let values: Vec<u8> = (0..set.count).flat_map(|i| labels_of(set.images[i * dim])).collect();
    set.attributes = Some(vaegan::data::Attributes { names: names.clone(), columns: names.clone(), values, source: "labels.csv".into() });
    let (batch, steps) = (8, 12);
    let check = |t: &mut Trainer, what: &str| {
        let y_id = t.step_graph.y.expect("a conditioned step has a labels input");
        for step in 0..steps {
            t.step().unwrap();
            t.gpu.wait().unwrap();
            let (x, y) = (t.exec.read(t.step_graph.x).unwrap(), t.exec.read(y_id).unwrap());
            for b in 0..batch {
                let first = (x[b * dim] * 255.0).round() as u8;
                let want: Vec<f32> = labels_of(first).iter().map(|&v| v as f32).collect();
                assert_eq!(&y[b * 3..(b + 1) * 3], &want[..], "{what}, step {}: row {b}'s labels are not its image's", step + 1);
            }
        }
    };
    let mut resident = Trainer::new(gpu(), config.clone(), batch, 3, &set, None).unwrap();
    check(&mut resident, "resident");
    let mut streamed = Trainer::with_budget(gpu(), config.clone(), batch, 3, &set, None, 64).unwrap();
    assert!(streamed.streams());
    check(&mut streamed, "streamed");
    assert_eq!(params_bits(&resident), params_bits(&streamed), "streamed and resident conditioned runs differ");

    let mut other = config.clone();
    other.model.conditions = vec!["a".into(), "c".into(), "b".into()];
    let err = Trainer::new(gpu(), other, batch, 3, &set, None).err().expect("labels in another order").to_string();
    assert!(err.contains("[a, c, b]") && err.contains("labels.csv has [a, b, c]"), "{err}");
    set.attributes = None;
    let err = Trainer::new(gpu(), config, batch, 3, &set, None).err().expect("no labels").to_string();
    assert!(err.contains("conditioned on 3 labels") && err.contains("random has none"), "{err}");
}

/// `model.conditions`: named once each, non-empty, at most 256, and with the conv arch a
/// dense discriminator layer to read them; written to and read from TOML (and so
/// checkpoints) as a list, absent for an unconditioned model.
#[test]
fn conditions_are_validated_and_round_trip() {
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut c = RunConfig::preset("mnist-conv").unwrap();
    assert!(!c.to_toml().contains("conditions"), "absent when unconditioned");
    c.model.conditions = names(&["red", "square"]);
    let back = RunConfig::from_toml(&c.to_toml(), "c.toml").unwrap();
    assert_eq!(back.model.conditions, c.model.conditions);
    let from_file = RunConfig::from_toml("preset = \"mnist-mlp\"\n[model]\nconditions = [\"a\", \"b\"]\n", "f.toml").unwrap();
    assert_eq!(from_file.model.conditions, names(&["a", "b"]));
    let wrong = |conditions: Vec<String>, dense: Vec<usize>, expect: &str| {
        let mut bad = c.clone();
        bad.model.conditions = conditions;
        bad.model.discriminator_dense = dense;
        let err = bad.validate().err().unwrap_or_else(|| panic!("accepted: expected {expect}"));
        assert!(err.contains(expect), "{err}");
    };
    wrong(names(&["a", "b", "a"]), vec![128], "model.conditions[2] = \"a\" is named twice");
    wrong(names(&["a", ""]), vec![128], "model.conditions[1] is empty");
    wrong((0..257).map(|i| i.to_string()).collect(), vec![128], "257 labels: at most 256");
    wrong(names(&["a"]), vec![], "needs a dense discriminator layer");
}

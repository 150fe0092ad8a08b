//! Taking a model elsewhere: `vaegan export` (ONNX, PyTorch) and the TensorBoard event
//! files of a run.
//!
//! - The exported layer list, run on the CPU in f64, against the engine's own evaluation
//!   graphs on the GPU, for every preset's three networks (no Python).
//! - Round trips through the real tools (`kernels-tests/python/`): onnxruntime and PyTorch
//!   reproduce the engine's decoder (`vaegan sample --raw`), encoder and discriminator;
//!   TensorBoard's own reader loads a run's scalars, images and config, a resumed run
//!   included, with no step twice. These need python3 with the packages of
//!   `kernels-tests/python/requirements.txt` (`.ci/run` installs them): without them the
//!   tests fail and say so.

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vaegan::checkpoint::Checkpoint;
use vaegan::export::{self, Part};
use vaegan::graph::{ExecOptions, GpuExecutor, Graph, TensorId};
use vaegan::model::{Mode, ModelConfig, RunConfig};
use vaegan::train::tensorboard::{self, EventWriter};

use crate::common::*;
use crate::interrupt::{finish, setup, vaegan};

/// A checkpoint of `preset` whose every number matters: the initial weights, with random
/// biases, batch-norm scales and shifts, and running statistics (all of them zero or one
/// at initialisation, where a permutation mistake would not show).
pub fn random_checkpoint(preset: &str, seed: u64) -> Checkpoint {
    // "<preset>+labels": the preset conditioned on three labels; "+digits": on MNIST's ten.
    let (preset, conditions) = match (preset.strip_suffix("+labels"), preset.strip_suffix("+digits")) {
        (Some(p), _) => (p, ["red", "square", "large"].map(String::from).to_vec()),
        (_, Some(p)) => (p, (0..10).map(|d| d.to_string()).collect()),
        _ => (preset, vec![]),
    };
    let mut config = RunConfig::from_toml(&format!("preset = {preset:?}\n"), "test.toml").unwrap();
    config.model.conditions = conditions;
    // celeba64's layers, on 16×16 images: every op of the preset, a sixteenth of the work
    // (its export is checked against the f64 twin on the CPU, 2 GFLOP an image at 64×64).
    if preset == "celeba64" {
        config.model.set_image(16, 16, 3);
    }
    let step = vaegan::model::build_step(&config.model, 1, seed).unwrap();
    let g = &step.graph;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut draw = |n: usize, lo: f32, hi: f32| (0..n).map(|_| rng.random_range(lo..hi)).collect::<Vec<f32>>();
    let mut params = vec![];
    for p in g.params() {
        let (name, shape) = (g.name(p).to_string(), g.shape(p));
        let n = shape.len();
        let v = if name.contains(".bn.") && name.ends_with(".weight") {
            draw(n, 0.5, 1.5)
        } else if name.ends_with(".bias") {
            draw(n, -0.2, 0.2)
        } else {
            g.tensors[p].init.clone().unwrap()
        };
        params.push((name, [shape.rows, shape.cols], v));
    }
    let state: Vec<(String, [usize; 2], Vec<f32>)> = g
        .state
        .iter()
        .map(|&t| {
            let (name, shape) = (g.name(t).to_string(), g.shape(t));
            let v = if name.ends_with("running_var") { draw(shape.len(), 0.5, 2.0) } else { draw(shape.len(), -0.3, 0.3) };
            (name, [shape.rows, shape.cols], v)
        })
        .collect();
    let zeros: Vec<_> = params.iter().map(|(n, s, v): &(String, [usize; 2], Vec<f32>)| (n.clone(), *s, vec![0.0; v.len()])).collect();
    // A preset that averages its decoder (mnist-conv) has the average and its statistics:
    // other values than the last weights', so that a reader taking the wrong ones shows.
    let average = if config.optim.decoder_ema > 0.0 {
        let decoder = |n: &String| n.starts_with("decoder.");
        let mut average: Vec<_> = params.iter().chain(&state).filter(|(n, _, _)| decoder(n)).cloned().collect();
        for (name, _, v) in average.iter_mut() {
            let moved = if name.ends_with("running_var") { draw(v.len(), 0.5, 2.0) } else { draw(v.len(), -0.1, 0.1) };
            v.iter_mut().zip(moved).for_each(|(x, m)| *x = if name.ends_with("running_var") { m } else { 0.8 * *x + m });
        }
        average
    } else {
        vec![]
    };
    let groups = config.model.groups();
    Checkpoint {
        config,
        step: 1234,
        epoch: 1,
        step_in_epoch: 0,
        updates: vec![1234; groups],
        seed,
        batch: 16,
        data: "nowhere".into(),
        limit: None,
        test_limit: None,
        crop: vaegan::data::Crop::Centre,
        balance_losses: None,
        params,
        state,
        adam_m: zeros.clone(),
        adam_v: zeros,
        average,
    }
}

/// Runs a part's evaluation graph on the GPU with the checkpoint's weights.
fn engine(graph: Graph, inputs: &[(TensorId, &[f32])], outputs: &[TensorId], ck: &Checkpoint) -> Vec<Vec<f32>> {
    let mut exec = GpuExecutor::new(gpu(), graph, ExecOptions::default()).unwrap();
    exec.load_params(&[0], &|n| ck.tensor(n), None).unwrap();
    exec.load_state(&|n| ck.tensor(n)).unwrap();
    for (input, data) in inputs {
        exec.set_input(*input, data).unwrap();
    }
    exec.step().unwrap();
    gpu().wait().unwrap();
    outputs.iter().map(|&t| exec.read(t).unwrap()).collect()
}

/// `n` images in the model's data range (NHWC rows) and the same in NCHW.
fn images(c: &ModelConfig, n: usize, rng: &mut StdRng) -> (Vec<f32>, Vec<f32>) {
    let lo = if c.output_act == vaegan::Act::Tanh { -1.0 } else { 0.0 };
    let rows: Vec<f32> = (0..n * c.input).map(|_| rng.random_range(lo..1.0)).collect();
    let [h, w, ch] = c.image;
    let nchw = export::nhwc_to_nchw(&rows, n, ch, h, w);
    (rows, nchw)
}

/// The engine's outputs for each part on fresh inputs: (part, [(output name, values in the
/// export's layout)]), with the inputs (z for the decoder, NCHW images for the others, and
/// a conditioned model's labels for both decoder and discriminator).
type PartOutputs = Vec<(Part, Vec<(String, Vec<f32>)>)>;

struct Inputs {
    z: Vec<f32>,
    nchw: Vec<f32>,
    /// n × labels, 0 or 1, rows differing (empty for an unconditioned model).
    labels: Vec<f32>,
}

fn engine_outputs(ck: &Checkpoint, n: usize, rng: &mut StdRng) -> (Inputs, PartOutputs) {
    let c = &ck.config.model;
    let [h, w, ch] = c.image;
    let (rows, nchw) = images(c, n, rng);
    let z: Vec<f32> = (0..n * c.latent).map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal)).collect();
    let k = c.conditions.len();
    let labels: Vec<f32> = (0..n * k).map(|i| ((i + i / k.max(1)) % 2) as f32).collect();
    let with_labels = |first: (TensorId, &[f32]), y: Option<TensorId>| -> Vec<(TensorId, Vec<f32>)> {
        [Some((first.0, first.1.to_vec())), y.map(|y| (y, labels.clone()))].into_iter().flatten().collect()
    };
    let mut out = vec![];
    let d = vaegan::model::build_decode(c, n).unwrap();
    let di = with_labels((d.z, &z), d.y);
    let img = engine(d.graph, &di.iter().map(|(t, v)| (*t, v.as_slice())).collect::<Vec<_>>(), &[d.images], ck).remove(0);
    out.push((Part::Decoder, vec![("images".to_string(), export::nhwc_to_nchw(&img, n, ch, h, w))]));
    let e = vaegan::model::build_encode(c, n).unwrap();
    let v = engine(e.graph, &[(e.x, &rows)], &[e.mu, e.logvar], ck);
    out.push((Part::Encoder, vec![("mu".to_string(), v[0].clone()), ("logvar".to_string(), v[1].clone())]));
    if let Some(d) = vaegan::model::build_discriminate(c, n).unwrap() {
        let f_shape = d.graph.shape(d.features);
        let di = with_labels((d.x, &rows), d.y);
        let v = engine(d.graph, &di.iter().map(|(t, v)| (*t, v.as_slice())).collect::<Vec<_>>(), &[d.features, d.logits], ck);
        // A conv discriminator's features are an image: NCHW outside.
        let features = match c.arch {
            vaegan::model::Arch::Conv => {
                let last = *c.discriminator.last().unwrap();
                let side = ((f_shape.cols / last) as f64).sqrt() as usize;
                export::nhwc_to_nchw(&v[0], n, last, side, side)
            }
            vaegan::model::Arch::Mlp => v[0].clone(),
        };
        out.push((Part::Discriminator, vec![("features".to_string(), features), ("logits".to_string(), v[1].clone())]));
    }
    (Inputs { z, nchw, labels }, out)
}

/// |a − b| ≤ tol·max(1, |b|) everywhere, and every value finite.
#[track_caller]
fn assert_each_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite() && (g - w).abs() <= tol * w.abs().max(1.0), "{what}: element {i} is {g}, the engine's {w} (tolerance {tol})");
    }
}

#[test]
fn exported_networks_compute_what_the_engine_computes() {
    let mut rng = rng("export");
    for preset in ["mnist-mlp", "mnist-conv", "celeba64", "pytorch-vae", "mnist-mlp+labels", "mnist-conv+labels"] {
        let ck = random_checkpoint(preset, rng.random());
        let c = &ck.config.model;
        let n = 2;
        let (inputs, outputs) = engine_outputs(&ck, n, &mut rng);
        for (part, want) in outputs {
            let net = export::network(c, part, &|name| ck.tensor(name)).unwrap();
            let input = if part == Part::Decoder { inputs.z.as_slice() } else { inputs.nchw.as_slice() };
            let mut given = vec![(net.inputs[0].name.as_str(), input)];
            if part != Part::Encoder && !c.conditions.is_empty() {
                assert_eq!(net.inputs.iter().map(|v| (v.name.as_str(), v.dims.clone())).nth(1), Some(("labels", vec![3])), "{preset} {part}: the labels input");
                given.push(("labels", &inputs.labels));
            } else {
                assert_eq!(net.inputs.len(), 1, "{preset} {part}: one input");
            }
            let got = export::run(&net, &given, n).unwrap();
            assert_eq!(net.outputs.iter().map(|o| o.name.clone()).collect::<Vec<_>>(), want.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
            for (name, values) in &want {
                // The engine in f32 on the GPU, the export's twin in f64.
                assert_each_close(&format!("{preset} {part} {name}"), &got[name], values, 1e-4);
            }
            let names: Vec<&str> = net.tensors.iter().map(|t| t.name.as_str()).collect();
            assert!(names.iter().all(|n| !n.starts_with(part.name())), "{preset} {part}: names keep the part's prefix: {names:?}");
        }
        if c.mode == Mode::Vae {
            let err = export::network(c, Part::Discriminator, &|name| ck.tensor(name)).unwrap_err().to_string();
            assert!(err.contains("no discriminator"), "{err}");
        }
    }
}

/// python3 (or VAEGAN_PYTHON) with the packages the round trips need, or a failure that
/// says how to get them.
fn python() -> Command {
    let exe = std::env::var("VAEGAN_PYTHON").unwrap_or_else(|_| "python3".into());
    let check = Command::new(&exe).args(["-c", "import numpy, onnx, onnxruntime, safetensors, tensorboard, torch"]).output();
    match check {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "{exe} lacks a package the export round trips need:\n{}\ninstall them: pip install -r kernels-tests/python/requirements.txt (.ci/run does)",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("cannot run {exe} ({e}): the export round trips need Python 3 with kernels-tests/python/requirements.txt"),
    }
    Command::new(exe)
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels-tests/python").join(name)
}

#[track_caller]
fn run_ok(mut c: Command, what: &str) -> String {
    let out = c.stderr(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

fn write_safetensors(path: &Path, tensors: &[(&str, Vec<usize>, &[f32])]) {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, dims, v)| (n.to_string(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, dims.clone(), bytemuck::cast_slice(v)).unwrap()))
        .collect();
    std::fs::write(path, safetensors::tensor::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn roundtrip_onnxruntime_and_pytorch_reproduce_the_engine() {
    let py = python();
    let mut rng = rng("export roundtrip");
    for preset in ["mnist-mlp", "mnist-conv", "celeba64", "mnist-conv+labels"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ck = random_checkpoint(preset, rng.random());
        let c = &ck.config.model;
        let run = d.join("run");
        std::fs::create_dir_all(&run).unwrap();
        ck.save(&vaegan::checkpoint::path_in(&run)).unwrap();
        let cli = |args: &[&str]| {
            let mut cmd = vaegan();
            cmd.args(args);
            run_ok(cmd, &format!("vaegan {}", args.join(" ")))
        };
        let run_s = run.to_str().unwrap();
        for part in ["encoder", "decoder", "discriminator"] {
            let out = d.join(format!("{part}.onnx"));
            cli(&["export", "--checkpoint", run_s, "--part", part, "--out", out.to_str().unwrap()]);
        }
        cli(&["export", "--checkpoint", run_s, "--part", "all", "--format", "torch", "--out", d.join("all.safetensors").to_str().unwrap()]);
        cli(&["export", "--checkpoint", run_s, "--format", "torch", "--out", d.join("decoder.safetensors").to_str().unwrap()]);
        cli(&[
            "sample",
            "--checkpoint",
            run_s,
            "-n",
            "5",
            "--out",
            d.join("samples.png").to_str().unwrap(),
            "--raw",
            d.join("raw.safetensors").to_str().unwrap(),
        ]);
        assert!(std::fs::read_dir(d).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")), "a temporary file was left");

        // The engine's encoder and discriminator on fresh images, for Python to compare.
        let n = 3;
        let (inputs, outputs) = engine_outputs(&ck, n, &mut rng);
        let [h, w, ch] = c.image;
        let mut probe: Vec<(&str, Vec<usize>, &[f32])> = vec![("images", vec![n, ch, h, w], &inputs.nchw)];
        if !c.conditions.is_empty() {
            probe.push(("labels", vec![n, c.conditions.len()], &inputs.labels));
        }
        for (part, outs) in &outputs {
            if *part == Part::Decoder {
                continue;
            }
            for (name, v) in outs {
                probe.push((name.as_str(), vec![v.len()], v));
            }
        }
        // Shapes in the probe are flat; Python reshapes to what each network returns.
        let probe_path = d.join("probe.safetensors");
        write_probe(&probe_path, c, n, &probe);
        let mut cmd = Command::new(py.get_program());
        cmd.arg(script("check_export.py")).arg(d);
        let report = run_ok(cmd, &format!("check_export.py on {preset}"));
        eprintln!("{preset}:\n{report}");
        assert!(report.trim_end().ends_with("ok"), "{report}");
    }
}

/// The probe file with each output in the shape its network returns.
fn write_probe(path: &Path, c: &ModelConfig, n: usize, probe: &[(&str, Vec<usize>, &[f32])]) {
    let shaped: Vec<(&str, Vec<usize>, &[f32])> = probe
        .iter()
        .map(|(name, dims, v)| {
            let dims = match *name {
                "images" | "labels" => dims.clone(),
                "mu" | "logvar" => vec![n, c.latent],
                "logits" => vec![n, 1],
                _ => match c.arch {
                    vaegan::model::Arch::Conv => {
                        let last = *c.discriminator.last().unwrap();
                        let side = ((v.len() / n / last) as f64).sqrt() as usize;
                        vec![n, last, side, side]
                    }
                    vaegan::model::Arch::Mlp => vec![n, v.len() / n],
                },
            };
            (*name, dims, *v)
        })
        .collect();
    write_safetensors(path, &shaped);
}

#[test]
fn export_refuses_what_it_cannot_do_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let vae = random_checkpoint("pytorch-vae", 3);
    let vae_path = d.join("vae.safetensors");
    vae.save(&vae_path).unwrap();
    let conv = random_checkpoint("mnist-conv", 4);
    let conv_path = d.join("conv.safetensors");
    conv.save(&conv_path).unwrap();
    // A checkpoint whose config names one preset and whose weights are another's.
    let mut mixed = random_checkpoint("mnist-mlp", 5);
    mixed.config = conv.config.clone();
    let mixed_path = d.join("mixed.safetensors");
    std::fs::write(&mixed_path, mixed.to_bytes().unwrap()).unwrap();
    let out = d.join("out.onnx");
    let (vae_s, conv_s, mixed_s, out_s) = (vae_path.to_str().unwrap(), conv_path.to_str().unwrap(), mixed_path.to_str().unwrap(), out.to_str().unwrap());
    let torch_out = d.join("t.safetensors");
    // (Named so that the expected words are not the file's own name.)
    let (missing, nowhere) = (d.join("absent-run"), d.join("no/such/dir/x.onnx"));
    let (missing, nowhere) = (missing.to_str().unwrap(), nowhere.to_str().unwrap());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--checkpoint", vae_s, "--part", "discriminator", "--out", out_s], "it has no discriminator"),
        (vec!["--checkpoint", conv_s, "--part", "all", "--out", out_s], "an ONNX file holds one network"),
        (vec!["--checkpoint", mixed_s, "--out", out_s], "the config's model"),
        (vec!["--checkpoint", missing, "--out", out_s], "absent-run: cannot read: No such file"),
        (vec!["--checkpoint", conv_s, "--out", nowhere], "no/such/dir/x.onnx: cannot write"),
        (vec!["--checkpoint", conv_s, "--part", "generator", "--out", out_s], "invalid value 'generator'"),
        (vec!["--checkpoint", conv_s, "--format", "keras", "--out", out_s], "invalid value 'keras'"),
    ];
    for (args, expect) in cases {
        let mut c = vaegan();
        c.arg("export").args(&args);
        let (code, err) = finish(c.spawn().unwrap());
        assert!(code != 0 && err.contains(expect), "export {args:?}: expected an error with {expect:?}, got (exit {code}) {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "export {args:?} wrote {out:?}");
    }
    // The torch export of a VAE has no discriminator; the export itself is no checkpoint.
    let mut c = vaegan();
    c.args(["export", "--checkpoint", vae_s, "--part", "all", "--format", "torch", "--out", torch_out.to_str().unwrap()]);
    let (code, err) = finish(c.spawn().unwrap());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("encoder") && err.contains("decoder") && !err.contains("discriminator"), "{err}");
    let mut c = vaegan();
    c.args(["sample", "--checkpoint", torch_out.to_str().unwrap(), "--out", d.join("s.png").to_str().unwrap()]);
    let (code, err) = finish(c.spawn().unwrap());
    assert!(code != 0 && err.contains("not a vaegan checkpoint"), "{err}");
}

#[test]
fn event_files_drop_a_cut_tail_and_the_steps_past_a_resumed_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = EventWriter::open(dir.path(), None).unwrap();
    for step in 1..=6u64 {
        w.send(tensorboard::scalars(step, &[("loss/x".into(), step as f32)]));
    }
    w.close().unwrap();
    let path = dir.path().join(tensorboard::FILE_NAME);
    // A kill in the middle of a record's write.
    let half = tensorboard::record(b"a record cut short by a kill");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&half[..half.len() / 2]);
    std::fs::write(&path, &bytes).unwrap();
    let steps = |path: &Path| -> Vec<i64> {
        use prost::Message;
        let bytes = std::fs::read(path).unwrap();
        tensorboard::read_records(&bytes).iter().map(|r| tensorboard::Event::decode(*r).unwrap().step).collect()
    };
    let mut w = EventWriter::open(dir.path(), Some(3)).unwrap();
    assert_eq!(w.kept, 3);
    w.send(tensorboard::scalars(4, &[("loss/x".into(), 40.0)]));
    w.close().unwrap();
    // The file version (step 0), steps 1–3 kept, the new step 4; nothing cut, nothing twice.
    assert_eq!(steps(&path), vec![0, 1, 2, 3, 4]);
    // A new run (no checkpoint) starts the file anew.
    EventWriter::open(dir.path(), None).unwrap().close().unwrap();
    assert_eq!(steps(&path), vec![0]);
}

#[test]
fn roundtrip_tensorboard_reads_a_run_and_its_resume_with_no_step_twice() {
    let py = python();
    let run = setup();
    let (code, err) = finish(run.train(1, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{err}");
    // As if a killed run had logged a step the checkpoint never reached, and been cut.
    let events = run.out.join(tensorboard::FILE_NAME);
    let mut bytes = std::fs::read(&events).unwrap();
    use prost::Message;
    bytes.extend(tensorboard::record(&tensorboard::scalars(99_999, &[("loss/kl".into(), 1.0)]).encode_to_vec()));
    bytes.extend_from_slice(&tensorboard::record(b"cut")[..9]);
    std::fs::write(&events, bytes).unwrap();
    let (code, err) = finish(run.train(2, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{err}");

    // What the CSV files say the run logged.
    let losses = std::fs::read_to_string(run.out.join("losses.csv")).unwrap();
    let mut lines = losses.lines();
    let names: Vec<String> = lines.next().unwrap().split(',').skip(1).map(str::to_string).collect();
    let loss_steps: Vec<u64> = lines.map(|l| l.split(',').next().unwrap().parse().unwrap()).collect();
    let metrics = std::fs::read_to_string(run.out.join("metrics.csv")).unwrap();
    let epoch_steps: Vec<u64> = metrics.lines().skip(1).map(|l| l.split(',').nth(1).unwrap().parse().unwrap()).collect();
    assert_eq!(epoch_steps.len(), 2);
    let expected = serde_json::json!({ "losses": names, "loss_steps": loss_steps, "epoch_steps": epoch_steps });
    let expected_path = run.dir.path().join("expected.json");
    std::fs::write(&expected_path, expected.to_string()).unwrap();
    let mut cmd = Command::new(py.get_program());
    cmd.arg(script("check_tensorboard.py")).arg(&run.out).arg(&expected_path);
    let report = run_ok(cmd, "check_tensorboard.py");
    eprintln!("{report}");
}

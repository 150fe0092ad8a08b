//! Subcommands a user types, run as the user would (the real binary), each checked for what
//! its help promises — a picture of the right size and colour type holding the right
//! images, a table with the right rows, a file that loads — not only for its exit code:
//! `reconstruct`, `graph`, `devices`, `make-dataset`, `sample --walk/--seed`, `attributes`
//! and `edit`, and every section and flag of `bench`.

use std::path::Path;
use std::process::{Output, Stdio};

use crate::common::*;
use crate::interrupt::{finish, setup, vaegan};

/// Runs `vaegan args…` to completion, failing the test with its stderr if it fails.
#[track_caller]
fn ok(args: &[&str]) -> Output {
    let out = vaegan().args(args).stdout(Stdio::piped()).output().unwrap();
    assert!(out.status.success(), "vaegan {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs `vaegan args…`, which must fail with every one of `words` in its stderr.
#[track_caller]
fn refused(args: &[&str], words: &[&str]) {
    let out = vaegan().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && words.iter().all(|w| err.contains(w)), "vaegan {}: {err}", args.join(" "));
}

/// (width, height, channels) of a PNG file and its pixels.
fn png(path: &Path) -> ((u32, u32, u32), Vec<u8>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let size = vaegan::pictures::png_size(&bytes).unwrap();
    let mut reader = ::png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (size, buf)
}

/// `reconstruct -n 6`: six test images, each beside its reconstruction, 8 pairs a row: a
/// grey 2-row-less grid of 12 MNIST-sized cells whose originals are the test set's first six.
#[test]
fn reconstruct_writes_test_images_beside_their_reconstructions() {
    let run = setup();
    let (code, stderr) = finish(run.train(1, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    let out = run.dir.path().join("rec.png");
    let o = ok(&["reconstruct", "--checkpoint", run.out.to_str().unwrap(), "-n", "6", "--out", out.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("6 test images, each beside its reconstruction"));
    // 12 cells in one row (up to 16 a row), 28×28 with 2-pixel gaps, grey like MNIST.
    let ((w, h, c), px) = png(&out);
    assert_eq!((w, h, c), (12 * 30 + 2, 30 + 2, 1));
    // The even cells are the test set's first images, as the data set holds them.
    let test = crate::data::load_mnist().test;
    for i in 0..6 {
        let x0 = 2 + 2 * i * 30;
        for (y, row) in (2..30).zip(0..28) {
            let got = &px[y * w as usize + x0..y * w as usize + x0 + 28];
            let want = &test.images[i * 784 + row * 28..i * 784 + row * 28 + 28];
            assert!(got.iter().zip(want).all(|(a, b)| a.abs_diff(*b) <= 1), "test image {i}, row {row}: {got:?} vs {want:?}");
        }
    }
}

/// `graph`: the step's summary for the preset, mode, batch and precision asked for; `--dump`
/// lists forward and backward nodes; `--dot` writes a Graphviz digraph.
#[test]
fn graph_describes_the_step_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let dot = dir.path().join("step.dot");
    let o = ok(&["graph", "--preset", "mnist-mlp", "--mode", "vae", "--batch", "8", "--dump", "--precision", "f16", "--dot", dot.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("mnist-mlp Vae at batch 8:") && text.contains("in 2 groups"), "{text}");
    assert!(text.contains("[forward] linear+relu") && text.contains("[backward encoder]") && !text.contains("[backward discriminator]"), "{text}");
    let graph = std::fs::read_to_string(&dot).unwrap();
    assert!(graph.starts_with("digraph") && graph.trim_end().ends_with('}'), "{graph}");
    // The f16 plan has f16 copies; the default (f32) plan none. The mode is the preset's.
    let copies = |text: &str| -> f64 { text.split("f16 copies ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap() };
    assert!(copies(&text) > 0.0, "{text}");
    // --config-json: the preset's model and optimiser, as docs/vaegan_torch.py reads them.
    let json_path = dir.path().join("config.json");
    ok(&["graph", "--preset", "mnist-conv", "--config-json", json_path.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let preset = vaegan::model::RunConfig::preset("mnist-conv").unwrap();
    assert_eq!(json["latent"], preset.model.latent, "{json}");
    assert_eq!(json["encoder"], serde_json::json!(preset.model.encoder), "{json}");
    assert_eq!(json["arch"], "conv", "{json}");
    assert_eq!(json["optim"]["lr_decoder"].as_f64().unwrap() as f32, preset.optim.lr_decoder, "{json}");
    let f32_gan = ok(&["graph", "--preset", "mnist-mlp", "--batch", "8"]);
    let f32_gan = String::from_utf8_lossy(&f32_gan.stdout);
    assert!(f32_gan.contains("VaeGan at batch 8:") && f32_gan.contains("in 3 groups") && copies(&f32_gan) == 0.0, "{f32_gan}");
}

/// `devices`: the adapter the tests run on, with its backend and limits.
#[test]
fn devices_lists_the_test_adapter_with_its_limits() {
    let o = ok(&["devices"]);
    let text = String::from_utf8_lossy(&o.stdout);
    let g = gpu();
    assert!(text.contains(&g.info.name), "{} missing from {text}", g.info.name);
    assert!(text.contains(&format!("max storage binding: {} MiB", g.limits.max_storage_buffer_binding_size >> 20)), "{text}");
    assert!(text.contains(&format!("{:?}", g.info.backend)), "{text}");
}

/// `make-dataset shapes -n 6 --size 16 --seed S`: six 16×16 RGB pictures and a factors.csv
/// row for each; the same seed gives the same bytes, another seed another set.
#[test]
fn make_dataset_is_sized_and_seeded() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, seed: &str| {
        let out = dir.path().join(name);
        ok(&["make-dataset", "shapes", "--out", out.to_str().unwrap(), "-n", "6", "--size", "16", "--seed", seed]);
        out
    };
    let (a, b, c) = (make("a", "3"), make("b", "3"), make("c", "4"));
    let files = |d: &Path| {
        let mut f: Vec<_> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "png")).collect();
        f.sort();
        f
    };
    assert_eq!(files(&a).len(), 6);
    for f in files(&a) {
        assert_eq!(png(&f).0, (16, 16, 3), "{}", f.display());
    }
    let csv = std::fs::read_to_string(a.join("factors.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "a header and a row per image: {csv}");
    assert!(csv.lines().next().unwrap().starts_with("file,shape,colour,background"), "{csv}");
    let bytes = |d: &Path| files(d).iter().map(|f| std::fs::read(f).unwrap()).collect::<Vec<_>>();
    assert_eq!(bytes(&a), bytes(&b), "the same seed, the same set");
    assert_ne!(bytes(&a), bytes(&c), "another seed, another set");
}

/// `sample --walk -n 15`: two rows of ten steps, each row a straight line between two codes
/// (constant steps in z); `--seed` decides the codes: the same seed the same picture.
#[test]
fn sample_walks_are_straight_and_seeds_repeat() {
    let run = setup();
    let (code, stderr) = finish(run.train(1, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    let ck = run.out.to_str().unwrap();
    let d = run.dir.path();
    let sample = |name: &str, seed: &str, walk: bool| {
        let (png, raw) = (d.join(format!("{name}.png")), d.join(format!("{name}.safetensors")));
        let mut args = vec!["sample", "--checkpoint", ck, "-n", "15", "--seed", seed, "--out", png.to_str().unwrap(), "--raw", raw.to_str().unwrap()];
        if walk {
            args.push("--walk");
        }
        ok(&args);
        (std::fs::read(&png).unwrap(), std::fs::read(&raw).unwrap(), png)
    };
    let (walk, raw, path) = sample("walk", "5", true);
    assert_eq!(png(&path).0, (10 * 30 + 2, 2 * 30 + 2, 1), "two rows of ten");
    let tensors = safetensors::SafeTensors::deserialize(&raw).unwrap();
    let z = tensors.tensor("z").unwrap();
    let latent = 4; // interrupt::TINY_TOML
    assert_eq!(z.shape(), &[20, latent]);
    let z: Vec<f32> = bytemuck::pod_collect_to_vec(z.data());
    for row in 0..2 {
        let at = |k: usize, j: usize| z[(row * 10 + k) * latent + j];
        for j in 0..latent {
            let step = at(1, j) - at(0, j);
            for k in 1..10 {
                assert!((at(k, j) - at(k - 1, j) - step).abs() <= 1e-5 * (1.0 + step.abs()), "row {row}: step {k} of dimension {j} is not the first step");
            }
        }
    }
    assert_eq!(sample("again", "5", true).0, walk, "the same seed draws the same walk");
    assert_ne!(sample("other", "6", true).0, walk, "another seed, another walk");
    let (grid, _, path) = sample("grid", "5", false);
    assert_eq!(png(&path).0, (4 * 30 + 2, 4 * 30 + 2, 1), "15 samples in a 4×4 grid");
    assert_eq!(sample("grid2", "5", false).0, grid);
}

/// `vaegan train` on MNIST-shaped data measures each epoch's sample quality: the Fréchet
/// distance of N(0, I) samples, in metrics.csv (`fd_samples`), TensorBoard's scalars and
/// the epoch line; `--fd-samples 0` turns it off (the column stays, empty).
#[test]
fn train_reports_the_sample_frechet_distance_each_epoch() {
    let run = setup();
    let (code, stderr) = finish(run.train(1, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    let line =
        stderr.lines().find(|l| l.starts_with("epoch 1/1: ") && l.contains(" samples FD ")).unwrap_or_else(|| panic!("no FD on the epoch line: {stderr}"));
    let shown: f64 = line.split(" samples FD ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let metrics = std::fs::read_to_string(run.out.join("metrics.csv")).unwrap();
    let header: Vec<&str> = metrics.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = metrics.lines().nth(1).unwrap().split(',').collect();
    let fd: f64 = row[header.iter().position(|c| *c == "fd_samples").expect("an fd_samples column")].parse().unwrap();
    assert!(fd.is_finite() && fd > 0.0 && (fd - shown).abs() <= 0.01, "metrics {fd}, epoch line {shown}");
    let events = std::fs::read(run.out.join(vaegan::train::tensorboard::FILE_NAME)).unwrap();
    assert!(events.windows(b"quality/fd_samples".len()).any(|w| w == b"quality/fd_samples"), "no quality/fd_samples scalar in the event file");

    let off = run.dir.path().join("off");
    let mut c = vaegan();
    c.args(["train", "--config", run.config.to_str().unwrap(), "--data", run.data.to_str().unwrap(), "--out", off.to_str().unwrap()]);
    c.args(["--batch", "16", "--eval-batch", "32", "--epochs", "1", "--fd-samples", "0"]);
    let (code, stderr) = finish(c.spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("samples FD"), "{stderr}");
    let metrics = std::fs::read_to_string(off.join("metrics.csv")).unwrap();
    let at = metrics.lines().next().unwrap().split(',').position(|c| c == "fd_samples").unwrap();
    assert_eq!(metrics.lines().nth(1).unwrap().split(',').nth(at), Some(""), "fd_samples empty when off: {metrics}");
}

/// `--kl-weight`, `--gan-fakes` and `--latent-mmd` reach the run's model (its config.toml and
/// checkpoint; the MMD term is logged); bad values are refused naming the flag, and
/// `--decoder-bn-stats` where the model has no batch norm.
#[test]
fn recipe_flags_reach_the_run_config() {
    let run = setup();
    let (code, stderr) = finish(
        run.train(
            1,
            &[
                "--kl-weight",
                "0.5",
                "--gan-fakes",
                "prior",
                "--latent-mmd",
                "2",
                "--latent-adversary",
                "0.5",
                "--balance",
                "--lr-discriminator",
                "3e-4",
                "--latent",
                "5",
                "--decoder-ema",
                "0.99",
            ],
        )
        .spawn()
        .unwrap(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("mmd"), "the epoch line shows the MMD term: {stderr}");
    let ck = vaegan::checkpoint::Checkpoint::load(&vaegan::checkpoint::path_in(&run.out)).unwrap();
    assert_eq!((ck.config.model.kl_weight, ck.config.model.gan_fakes, ck.config.model.latent_mmd), (0.5, vaegan::model::GanFakes::Prior, 2.0));
    // --balance and --lr-discriminator reach the optimiser; a balanced run saves its last losses.
    assert!(ck.config.optim.balance && ck.balance_losses.is_some(), "--balance did not reach the run");
    assert_eq!(ck.config.optim.lr_discriminator, 3e-4);
    // --latent sizes the code: the encoder's μ head has one bias per dimension.
    assert_eq!(ck.config.model.latent, 5);
    assert_eq!(ck.param("encoder.mu.bias").map(|b| b.len()), Some(5), "the encoder's μ head has 5 outputs");
    // The latent discriminator is saved as a fourth group (weights and Adam's step count).
    assert_eq!((ck.config.model.latent_adversary, ck.updates.len()), (0.5, 4));
    assert!(ck.param("latent_discriminator.0.weight").is_some(), "the latent discriminator's weights are in the checkpoint");
    // --decoder-ema keeps an average of the decoder's weights: sampling uses it, and
    // --live-weights the last weights; the epoch's FD is measured for both.
    assert_eq!(ck.config.optim.decoder_ema, 0.99);
    assert!(!ck.average.is_empty() && ck.average.iter().all(|(n, _, _)| n.starts_with("decoder.")), "the checkpoint holds the decoder's average");
    let metrics = std::fs::read_to_string(run.out.join("metrics.csv")).unwrap();
    let (header, row) = (metrics.lines().next().unwrap(), metrics.lines().nth(1).unwrap());
    let at = header.split(',').position(|c| c == "fd_samples_live").expect("an fd_samples_live column");
    assert!(row.split(',').nth(at).is_some_and(|v| v.parse::<f64>().is_ok_and(f64::is_finite)), "the last weights' FD: {row}");
    let raw = |extra: &[&str]| {
        let path = run.dir.path().join(format!("raw{}", extra.len()));
        let o = vaegan()
            .args(["sample", "--checkpoint", run.out.to_str().unwrap(), "-n", "4", "--out"])
            .arg(run.dir.path().join("s.png"))
            .arg("--raw")
            .arg(&path)
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(path).unwrap()
    };
    assert_ne!(raw(&[]), raw(&["--live-weights"]), "--live-weights decodes with other weights than the average");
    let toml = std::fs::read_to_string(run.out.join("config.toml")).unwrap();
    assert!(toml.contains("kl_weight = 0.5") && toml.contains("gan_fakes = \"prior\"") && toml.contains("latent_mmd = 2.0"), "{toml}");
    let losses = std::fs::read_to_string(run.out.join("losses.csv")).unwrap();
    for column in ["mmd", "adv_z", "gan_dz"] {
        assert!(losses.lines().next().unwrap().split(',').any(|c| c == column), "losses.csv has an {column} column: {}", losses.lines().next().unwrap());
    }
    for (flag, value, expect) in [
        ("--kl-weight", "-1", "--kl-weight -1: must be a number of at least 0"),
        ("--gan-fakes", "real", "expected both, prior or reconstructions"),
        ("--latent-mmd", "-2", "--latent-mmd -2: must be a number of at least 0"),
        ("--latent-adversary", "nan", "--latent-adversary NaN: must be a number of at least 0"),
        ("--latent", "0", "model.latent must be at least 1"),
        ("--decoder-ema", "1", "optim.decoder_ema = 1: must be in [0, 1)"),
        ("--decoder-bn-stats", "all", "expected both, prior or posterior"),
        // This run's model is dense: it has no batch norm to choose statistics for.
        ("--decoder-bn-stats", "prior", "model.decoder_bn_stats = \"prior\" needs a convolutional vae-gan"),
    ] {
        let out = run.dir.path().join("bad");
        let o = vaegan().args(["train", "--data", run.data.to_str().unwrap(), "--out", out.to_str().unwrap(), flag, value]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(expect) && !err.contains("panicked"), "{flag} {value}: {err}");
    }
}

/// `attributes` then `edit`: one vector per digit, counted over the training labels and
/// written beside the checkpoint; the edit grid's first row is the first test images of the
/// removed digit, its third row equals its second at --scale 0 and differs from it at 1;
/// `--measure` reports shares; unknown names, missing or stale vectors and a measurement
/// the classifier cannot make are refused by name.
#[test]
fn attributes_and_edit_move_codes_by_attribute_vectors() {
    let run = setup();
    let (code, stderr) = finish(run.train(1, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    let ck = run.out.to_str().unwrap();
    let o = ok(&["attributes", "--checkpoint", ck]);
    let text = String::from_utf8_lossy(&o.stdout);
    let mnist = crate::data::load_mnist();
    let train_labels = &mnist.train.labels.as_ref().unwrap()[..256];
    for digit in 0..10u8 {
        let with = train_labels.iter().filter(|&&l| l == digit).count();
        let row = text.lines().find(|l| l.split_whitespace().next() == Some(&digit.to_string())).unwrap_or_else(|| panic!("no row {digit}: {text}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!((cols[1], cols[2]), (with.to_string().as_str(), (256 - with).to_string().as_str()), "{row}");
    }
    let vectors = vaegan::model::AttributeVectors::load(&run.out.join("attributes.safetensors")).unwrap();
    assert_eq!((vectors.names.len(), vectors.latent), (10, 4));

    let test_labels = &mnist.test.labels.as_ref().unwrap()[..64];
    let threes: Vec<usize> = (0..64).filter(|&i| test_labels[i] == 3).take(3).collect();
    let grid = |scale: &str| -> Vec<u8> {
        let out = run.dir.path().join(format!("edit{scale}.png"));
        ok(&["edit", "--checkpoint", ck, "--add", "7", "--remove", "3", "-n", "3", "--scale", scale, "--out", out.to_str().unwrap()]);
        let ((w, h, c), px) = png(&out);
        assert_eq!((w, h, c), (3 * 30 + 2, 3 * 30 + 2, 1));
        px
    };
    let row = |px: &[u8], r: usize, i: usize| -> Vec<u8> { (0..28).flat_map(|y| px[(2 + r * 30 + y) * 92 + 2 + i * 30..][..28].to_vec()).collect() };
    let (still, moved) = (grid("0"), grid("1"));
    for (i, &t) in threes.iter().enumerate() {
        let want = &mnist.test.images[t * 784..(t + 1) * 784];
        assert!(row(&still, 0, i).iter().zip(want).all(|(a, b)| a.abs_diff(*b) <= 1), "cell {i} is test image {t}, a 3");
        assert_eq!(row(&still, 2, i), row(&still, 1, i), "--scale 0 edits nothing");
        assert_ne!(row(&moved, 2, i), row(&moved, 1, i), "--scale 1 moves the code");
    }
    let o = ok(&["edit", "--checkpoint", ck, "--add", "7", "--measure", "--out", run.dir.path().join("m.png").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    let others = test_labels.iter().filter(|&&l| l != 7).count();
    assert!(text.contains(&format!("test images edited: {others} ")), "{text}");
    let pct = |what: &str| -> f64 {
        text.lines().find(|l| l.starts_with(what)).and_then(|l| l.rsplit(": ").next()).and_then(|v| v.trim_end_matches(" %").parse().ok()).unwrap_or(-1.0)
    };
    for what in ["classified as 7 after the edit", "classified as 7 before it", "reconstructions classified with all their own labels"] {
        assert!((0.0..=100.0).contains(&pct(what)), "{what}: {text}");
    }

    refused(&["edit", "--checkpoint", ck, "--add", "12"], &["attributes.safetensors", "no attribute vector \"12\""]);
    assert!(!text.contains("edits that keep their own"), "MNIST's one head is the edited one: {text}");
    let unwritten = run.dir.path().join("refused.png");
    refused(
        &["edit", "--checkpoint", ck, "--add", "7,8", "--measure", "--out", unwritten.to_str().unwrap()],
        &["--add 7 and 8: both are classes of \"class\""],
    );
    assert!(!unwritten.exists(), "a measurement it cannot make is refused before the grid is written");
    refused(&["edit", "--checkpoint", ck], &["nothing to edit"]);
    refused(&["edit", "--checkpoint", ck, "--add", "7", "--vectors", "nowhere.safetensors"], &["nowhere.safetensors", "run `vaegan attributes"]);
    let (code, stderr) = finish(run.train(2, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    refused(&["edit", "--checkpoint", ck, "--add", "7"], &["at step", "run `vaegan attributes` again"]);
}

/// `vaegan bench` as JSON, with extra environment; its stderr too.
fn bench_json(env: &[(&str, &std::ffi::OsStr)], args: &[&str]) -> (serde_json::Value, String) {
    let mut c = vaegan();
    c.args(args).arg("--json").stdout(Stdio::piped());
    for (k, v) in env {
        // An empty value removes the variable (the suite's forced tile, which turns tuning off).
        if v.is_empty() {
            c.env_remove(k);
        } else {
            c.env(k, v);
        }
    }
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "vaegan {}: {err}", args.join(" "));
    (serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("vaegan {}: not JSON ({e})", args.join(" "))), err)
}

/// Each `bench` section and flag times what its help names, and only that: --kernels with
/// --sizes, --batches, --tiles and --f16; --no-autotune against the tuner it turns off;
/// --step with --models and --batches; --ceiling; --conv with --conv-batch; --feed;
/// --allreduce with one process; --profile's table adds up; unknown models are refused.
#[test]
fn bench_flags_choose_what_is_timed() {
    let rows = |v: &serde_json::Value, key: &str| -> Vec<serde_json::Value> { v[key].as_array().unwrap_or_else(|| panic!("{key}: {v}")).clone() };
    let s = |v: &serde_json::Value, key: &str| -> String { v[key].as_str().unwrap_or_default().to_string() };
    let f16 = has_f16();

    // --kernels at the sizes, batches and tiles asked for; the tuner off despite the
    // environment asking for it, so no tunings are written.
    let cache = tempfile::tempdir().unwrap();
    let tuned_env = [
        ("VAEGAN_AUTOTUNE", std::ffi::OsStr::new("1")),
        ("VAEGAN_AUTOTUNE_BUDGET", "2".as_ref()),
        ("VAEGAN_CACHE_DIR", cache.path().as_os_str()),
        ("VAEGAN_TILE", "".as_ref()),
    ];
    let tiles = ["16x16@8x8", "4x4@16x16/shared"];
    let args = ["--no-autotune", "bench", "--kernels", "--quick", "--sizes", "33", "--batches", "4", "--tiles", "16x16@8x8,4x4@16x16/shared", "--f16"];
    let (r, err) = bench_json(&tuned_env, &args);
    assert!(r["ceiling"].is_null() && rows(&r, "steps").is_empty() && rows(&r, "feeds").is_empty(), "{r}");
    let kernels = rows(&r, "kernels");
    let square: Vec<_> = kernels.iter().filter(|k| s(k, "kernel") == "matmul A·B").collect();
    assert!(square.iter().all(|k| s(k, "shape") == "33x33x33"), "{square:?}");
    for dtype in if f16 { vec!["f32", "f16"] } else { vec!["f32"] } {
        let got: Vec<String> = square.iter().filter(|k| s(k, "dtype") == dtype).map(|k| s(k, "tile")).collect();
        assert_eq!(got, tiles, "{dtype} square matmuls at the tiles asked for");
    }
    assert!(kernels.iter().any(|k| s(k, "shape") == "4x512x784"), "the model's first layer at batch 4");
    assert!(kernels.iter().filter(|k| k["gb_s"].is_number()).all(|k| k["gb_s"].as_f64().unwrap() > 0.0));
    assert!(!cache.path().join("autotune.json").exists() && !err.contains("tuning"), "--no-autotune tuned: {err}");
    // The same section without --no-autotune (one tile, f32: the control needs no more)
    // tunes the conv shapes (within 2 s) and caches them.
    bench_json(&tuned_env, &["bench", "--kernels", "--quick", "--sizes", "33", "--batches", "4", "--tiles", "16x16@8x8"]);
    assert!(cache.path().join("autotune.json").exists(), "the tuner's control run wrote no tunings");

    // --step: the models and batch asked for, in both precisions where f16 exists, each
    // timed over --steps steps (given, it wins over --quick's 3).
    let (r, _) = bench_json(&[], &["bench", "--step", "--quick", "--models", "mnist-mlp", "--batches", "4", "--f16", "--steps", "2"]);
    let steps = rows(&r, "steps");
    let got: Vec<(String, String)> = steps.iter().map(|k| (s(k, "model"), s(k, "precision"))).collect();
    let mut want = vec![];
    for p in if f16 { vec!["f32", "f16"] } else { vec!["f32"] } {
        want.extend([("mnist-mlp vae-gan".to_string(), p.to_string()), ("mnist-mlp vae".to_string(), p.to_string())]);
    }
    assert_eq!(got.len(), want.len(), "{got:?}");
    assert!(want.iter().all(|w| got.contains(w)), "{got:?}");
    for k in &steps {
        let (sps, ms) = (k["samples_per_s"].as_f64().unwrap(), k["ms_per_step"].as_f64().unwrap());
        assert_eq!((&k["batch"], &k["steps"]), (&serde_json::json!(4), &serde_json::json!(2)), "{k}");
        assert!(sps > 0.0 && (sps * ms / 1e3 / 4.0 - 1.0).abs() < 1e-6, "samples/s and ms/step agree: {k}");
    }
    assert!(rows(&r, "kernels").is_empty());

    // --ceiling: a copy's GB/s and the best matmul's GFLOP/s with its tile.
    let (r, _) = bench_json(&[], &["bench", "--ceiling", "--quick"]);
    let c = &r["ceiling"];
    assert!(c["copy_gb_s"].as_f64().unwrap() > 0.0 && c["matmul_gflop_s"].as_f64().unwrap() > 0.0 && !s(c, "matmul_tile").is_empty(), "{c}");

    // --conv at --conv-batch: celeba64's convolutions by default, a GEMM of each role with
    // --quick, at batch 1 (its decoder runs [z; z_p] in one pass and its discriminator
    // [x; x̃; x_p]: batch 2 and 3 there).
    let (r, _) = bench_json(&[], &["bench", "--conv", "--quick", "--conv-batch", "1"]);
    let convs = rows(&r, "convs");
    let batch_of = |k: &serde_json::Value| s(k, "geometry").split('x').next().and_then(|b| b.parse::<usize>().ok());
    let batch_for = |layer: String| {
        if layer.starts_with("decoder") {
            2
        } else if layer.starts_with("discriminator") {
            3
        } else {
            1
        }
    };
    assert!(!convs.is_empty() && convs.iter().all(|k| batch_of(k) == Some(batch_for(s(k, "layer")))), "{convs:?}");
    assert_eq!(s(&convs[0], "layer"), "encoder.conv0 fwd", "{convs:?}");
    assert!(convs.iter().any(|k| s(k, "kernel") == "input grad") && convs.iter().any(|k| s(k, "kernel") == "weight grad"));

    // --conv --preset: that step's convolutions, one row per GEMM, naming what it is to each
    // layer. mnist-conv's decoder.deconv0 (7×7×32 → 14×14×16, transposed) runs the input
    // gradient of the 14×14×16 → 7×7×32 convolution as its forward, the kernel of
    // encoder.conv1's and discriminator.conv1's input gradients.
    let (r, _) = bench_json(&[], &["bench", "--conv", "--quick", "--preset", "mnist-conv", "--conv-batch", "1"]);
    let convs = rows(&r, "convs");
    let row = |kernel: &str, geometry: &str| {
        let found = convs.iter().find(|k| s(k, "kernel") == kernel && s(k, "geometry").starts_with(geometry));
        s(found.unwrap_or_else(|| panic!("no {kernel} of {geometry}: {convs:?}")), "layer")
    };
    assert_eq!(row("forward", "1x28x28x1 → 14x14x16"), "encoder.conv0 fwd, discriminator.conv0 fwd, decoder.deconv1 dx");
    assert_eq!(row("input grad", "1x14x14x16 → 7x7x32"), "decoder.deconv0 fwd, discriminator.conv1 dx, encoder.conv1 dx");
    assert_eq!(row("weight grad", "1x14x14x16 → 7x7x32"), "encoder.conv1 dw, decoder.deconv0 dw, discriminator.conv1 dw");
    assert!(convs.iter().all(|k| s(k, "gemm").split('x').all(|d| d.parse::<usize>().is_ok_and(|d| d > 0))), "{convs:?}");

    // --feed: resident against streamed, for the model it names, over --steps steps.
    let (r, _) = bench_json(&[], &["bench", "--feed", "--quick", "--steps", "2"]);
    let feeds = rows(&r, "feeds");
    assert!(!feeds.is_empty() && feeds.iter().all(|k| k["resident_ms"].as_f64().unwrap() > 0.0 && k["streamed_ms"].as_f64().unwrap() > 0.0), "{feeds:?}");
    assert!(feeds.iter().all(|k| k["steps"] == 2), "--steps 2 reaches --feed: {feeds:?}");

    // --allreduce alone: one rank, the model asked for, its gradient's size.
    let (r, _) = bench_json(&[], &["bench", "--allreduce", "--quick", "--models", "mnist-mlp", "--batches", "4", "--steps", "2"]);
    let ar = rows(&r, "allreduce");
    assert_eq!((ar.len(), &r["steps"]), (1, &serde_json::json!(2)), "{r}");
    let params: usize = vaegan::model::param_shapes(&vaegan::model::ModelConfig::mnist_mlp()).unwrap().iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    assert_eq!((s(&ar[0], "model"), ar[0]["ranks"].as_u64(), ar[0]["batch_per_rank"].as_u64()), ("mnist-mlp".into(), Some(1), Some(4)));
    assert!((ar[0]["grad_mb"].as_f64().unwrap() - params as f64 * 4.0 / 1e6).abs() < 1e-9, "{} vs {params} parameters", ar[0]);

    // --profile: every dispatch of one step, by kernel; the counts and shares add up.
    let o = ok(&["bench", "--profile", "--quick", "--preset", "mnist-mlp", "--batches", "4"]);
    let text = String::from_utf8_lossy(&o.stdout);
    let head = text.lines().find(|l| l.contains("step at batch 4:")).unwrap_or_else(|| panic!("{text}"));
    let dispatches: usize = head.split(": ").nth(1).and_then(|t| t.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap();
    let table: Vec<Vec<&str>> =
        text.lines().skip_while(|l| !l.starts_with("kernel")).skip(1).map(|l| l.split_whitespace().collect()).filter(|c: &Vec<&str>| c.len() >= 4).collect();
    let count: usize = table.iter().map(|c| c[c.len() - 1].parse::<usize>().unwrap()).sum();
    let share: f64 = table.iter().map(|c| c[c.len() - 2].trim_end_matches('%').parse::<f64>().unwrap()).sum();
    assert_eq!(count, dispatches, "{text}");
    assert!((share - 100.0).abs() < 0.1 * table.len() as f64, "shares sum to {share}: {text}");

    for args in [&["bench", "--step", "--models", "mnist-xl"][..], &["bench", "--allreduce", "--models", "mnist-conv"]] {
        let out = vaegan().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("unknown model"), "{}: {err}", args.join(" "));
    }
}

/// `classifier` trains on the data, epochs, batch, rate and seed asked for and writes a
/// file that loads; `eval` reads --data and --test-limit, scores samples with --classifier,
/// draws -n samples from --seed (the same seed, the same figures; another, others).
#[test]
fn classifier_and_eval_flags_mean_what_they_say() {
    let run = setup();
    let (code, stderr) = finish(run.train(1, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    let weights = run.dir.path().join("c.safetensors");
    let o = ok(&[
        "classifier",
        "--data",
        run.data.to_str().unwrap(),
        "--epochs",
        "2",
        "--batch",
        "32",
        "--lr",
        "0.002",
        "--seed",
        "4",
        "--out",
        weights.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("epoch 1/2: test accuracy") && err.contains("epoch 2/2: test accuracy") && !err.contains("epoch 3/"), "{err}");
    let w = vaegan::quality::ClassifierWeights::load(&weights).unwrap();
    assert!(w.made_by.contains("--epochs 2 --batch 32 --lr 0.002 --seed 4") && w.made_by.contains("256 training images"), "{}", w.made_by);
    // 256 training images, two epochs: far above chance (10 %), short of the shipped 98 %.
    assert!((0.3..0.98).contains(&w.test_accuracy), "test accuracy {}", w.test_accuracy);

    // Another data folder: the same training images, 32 test images.
    let other = run.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(run.data.join("train-images-idx3-ubyte"), other.join("train-images-idx3-ubyte")).unwrap();
    let test = crate::data::load_mnist().test;
    std::fs::write(other.join("t10k-images-idx3-ubyte"), crate::data::idx_bytes(&[32, 28, 28], &test.images[1000 * 784..1032 * 784])).unwrap();
    let eval = |data: &Path, extra: &[&str]| -> String {
        let mut args = vec!["eval", "--checkpoint", run.out.to_str().unwrap(), "--data", data.to_str().unwrap()];
        args.extend_from_slice(extra);
        String::from_utf8_lossy(&ok(&args).stdout).into_owned()
    };
    assert!(eval(&other, &[]).contains("images evaluated: 32"));
    let limited = eval(&run.data, &["--test-limit", "40"]);
    assert!(limited.contains("images evaluated: 40"), "{limited}");
    let quality = |seed: &str| eval(&other, &["--quality", "-n", "300", "--seed", seed, "--classifier", weights.to_str().unwrap()]);
    let (a, b, c) = (quality("5"), quality("5"), quality("6"));
    assert!(a.contains(&format!("classifier {}", weights.display())) && a.contains(&format!("test accuracy {:.2}%", 100.0 * w.test_accuracy)), "{a}");
    let samples_line = |t: &str| t.lines().find(|l| l.contains("samples (z ~ N(0, I)) vs")).unwrap_or_else(|| panic!("{t}")).to_string();
    assert!(samples_line(&a).contains("300 samples") && samples_line(&a).contains("vs 32 test images"), "{a}");
    assert_eq!(samples_line(&a), samples_line(&b), "the same seed, the same samples");
    assert_ne!(samples_line(&a), samples_line(&c), "another seed, other samples");
}

/// `train --cache-dir`: a folder's decoded images are cached there (not in
/// VAEGAN_CACHE_DIR), as one file of every image, and the next run reads them back.
#[test]
fn train_caches_decoded_folders_where_cache_dir_says() {
    let run = setup();
    let images = run.dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let mnist = crate::data::load_mnist();
    for i in 0..12 {
        crate::data::write_png(&images.join(format!("d{i:02}.png")), 28, 28, ::png::ColorType::Grayscale, mnist.train.image(i));
    }
    let cache = run.dir.path().join("my-cache");
    let train = |out: &str| -> String {
        let mut c = vaegan();
        c.args(["train", "--config", run.config.to_str().unwrap(), "--data", images.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap()]);
        c.args(["--out", run.dir.path().join(out).to_str().unwrap(), "--batch", "4", "--eval-batch", "1", "--epochs", "1"]);
        let (code, stderr) = finish(c.spawn().unwrap());
        assert_eq!(code, 0, "{stderr}");
        stderr
    };
    let first = train("a");
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(first.contains(&format!("decoded images cached in {}", files[0].display())), "{first}");
    // The header (magic, key, count, dimensions) and 12 images of 28×28×1.
    assert_eq!(std::fs::metadata(&files[0]).unwrap().len(), (8 + 32 + 8 + 12 + 12 * 784) as u64);
    let second = train("b");
    assert!(!second.contains("decoded images cached") && !second.contains("decoding images"), "the second run decoded again: {second}");
    // 12 images leave 1 for testing: no covariance of one image, said plainly (this
    // panicked once), in training and in eval.
    assert!(first.contains("no sample Fréchet distance per epoch: the test set has 1 image(s)"), "{first}");
    let out = vaegan().args(["eval", "--checkpoint", run.dir.path().join("a").to_str().unwrap(), "--quality"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("at least 2 test and 2 training images") && !err.contains("panicked"), "{err}");
}

/// `restat` writes a new checkpoint beside the old one (left byte for byte as it was) with
/// only the decoder's running statistics changed; it refuses to overwrite its source and a
/// decoder without batch norm.
#[test]
fn restat_writes_a_new_checkpoint_with_new_decoder_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("conv.safetensors");
    let ck = crate::export::random_checkpoint("mnist-conv", 4).live();
    ck.save(&source).unwrap();
    let before = std::fs::read(&source).unwrap();
    let o = ok(&["restat", "--checkpoint", source.to_str().unwrap(), "--batches", "2", "--batch", "8", "--seed", "3"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("re-estimated on 2 batches of 8 codes"), "{text}");
    assert_eq!(std::fs::read(&source).unwrap(), before, "the source checkpoint changed");
    let new = vaegan::checkpoint::Checkpoint::load(&dir.path().join("checkpoint.prior-stats.safetensors")).unwrap();
    assert_eq!(new.step, ck.step);
    for (name, _, a) in ck.params.iter().chain(&ck.adam_m) {
        assert!(new.tensor(name).as_ref() == Some(a) || new.moment_m(name).as_ref() == Some(a), "{name} changed");
    }
    for (name, _, a) in &ck.state {
        let b = new.state(name).unwrap_or_else(|| panic!("{name} lost"));
        assert_eq!(name.starts_with("decoder."), *a != b, "{name}: only the decoder's statistics move");
    }
    let refused = |args: &[&str], words: &str| {
        let out = vaegan().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(words), "vaegan {}: {err}", args.join(" "));
    };
    refused(&["restat", "--checkpoint", source.to_str().unwrap(), "--out", source.to_str().unwrap()], "that is the checkpoint being read");
    // A run that averages its decoder samples with the average: restat moves the average's
    // statistics and leaves the last weights' alone; with --live-weights, the reverse (and
    // the checkpoint it writes keeps no average).
    let mut averaged = ck.clone();
    averaged.config.optim.decoder_ema = 0.999;
    averaged.average = ck.params.iter().chain(&ck.state).filter(|(n, _, _)| n.starts_with("decoder.")).cloned().collect();
    averaged.average.iter_mut().filter(|(n, _, _)| n.ends_with(".weight")).for_each(|(_, _, v)| v.iter_mut().for_each(|x| *x *= 0.5));
    let source = dir.path().join("averaged.safetensors");
    averaged.save(&source).unwrap();
    for live in [false, true] {
        let out = dir.path().join(format!("restat-{live}.safetensors"));
        let mut args = vec!["restat", "--checkpoint", source.to_str().unwrap(), "--batches", "2", "--batch", "8", "--out", out.to_str().unwrap()];
        if live {
            args.push("--live-weights");
        }
        ok(&args);
        let new = vaegan::checkpoint::Checkpoint::load(&out).unwrap();
        assert_eq!(new.average.is_empty(), live, "live {live}: the average is kept unless --live-weights");
        for (name, _, a) in ck.state.iter().filter(|(n, _, _)| n.starts_with("decoder.")) {
            let (state, average) = (new.state(name).unwrap(), new.averaged(name));
            assert_eq!(state != *a, live, "live {live}: {name}: the last weights' statistics move only with --live-weights");
            if let Some(average) = average {
                assert!(average != *a, "{name}: the average's statistics moved");
            }
        }
    }
    let run = setup();
    let (code, stderr) = finish(run.train(1, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    refused(&["restat", "--checkpoint", run.out.to_str().unwrap()], "no batch norm");
}

/// `restat` of a conditioned model decodes its prior codes with labels drawn from its
/// training data's (`--data`, default the checkpoint's own): the decoder's statistics move,
/// and data without the model's labels is refused by name.
#[test]
fn restat_of_a_conditioned_model_draws_labels_from_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = crate::interrupt::small_idx_dataset(dir.path());
    let source = dir.path().join("cond.safetensors");
    let ck = crate::export::random_checkpoint("mnist-conv+digits", 5).live();
    ck.save(&source).unwrap();
    let out = dir.path().join("r.safetensors");
    let (source, out_s) = (source.to_str().unwrap(), out.to_str().unwrap());
    ok(&["restat", "--checkpoint", source, "--data", data.to_str().unwrap(), "--batches", "2", "--batch", "8", "--out", out_s]);
    let new = vaegan::checkpoint::Checkpoint::load(&out).unwrap();
    for (name, _, a) in &ck.state {
        assert_eq!(name.starts_with("decoder."), new.state(name).unwrap() != *a, "{name}: only the decoder's statistics move");
    }
    // The checkpoint's own data ("nowhere" here) is the default.
    refused(&["restat", "--checkpoint", source, "--out", out_s], &["nowhere"]);
    let unlabelled = dir.path().join("unlabelled");
    std::fs::create_dir_all(&unlabelled).unwrap();
    for name in ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"] {
        std::fs::copy(data.join(name), unlabelled.join(name)).unwrap();
    }
    refused(&["restat", "--checkpoint", source, "--data", unlabelled.to_str().unwrap(), "--out", out_s], &["label"]);
}

/// `train --conditioned` on IDX data: the model reads the digits' one-hot labels (its
/// config names them "0" … "9", kept through a resume); `sample` without --condition gives a
/// column per digit, `--condition 7` every sample the label 7 alone (different pictures from
/// another label, from the same codes), `--measure` the classifier's share; `eval` runs with
/// the test set's labels; a resume may turn on the decoder's average. Labels the model
/// lacks, --condition on an unconditioned model, and edits of a conditioned one are refused
/// by name. (Exports of conditioned models, with their labels input: `export.rs`; restat:
/// above.)
#[test]
fn conditioned_training_and_sampling_from_the_cli() {
    let run = setup();
    let (code, stderr) = finish(run.train(1, &["--conditioned"]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    let ck = run.out.to_str().unwrap();
    let digits: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    let config = vaegan::checkpoint::Checkpoint::load(&vaegan::checkpoint::path_in(&run.out)).unwrap().config;
    assert_eq!(config.model.conditions, digits, "the labels are IDX's digits");
    let toml = std::fs::read_to_string(run.out.join("config.toml")).unwrap();
    assert!(toml.contains("conditions = [\"0\", \"1\""), "{toml}");

    let path = |name: &str| run.dir.path().join(name).to_str().unwrap().to_string();
    let out = ok(&["sample", "--checkpoint", ck, "-n", "20", "--out", &path("all.png")]);
    let _ = out;
    let ((w, h, _), _) = png(Path::new(&path("all.png")));
    assert_eq!((w, h), (10 * 30 + 2, 2 * 30 + 2), "a column per digit");
    let grid = |label: &str| -> Vec<u8> {
        ok(&["sample", "--checkpoint", ck, "-n", "4", "--condition", label, "--out", &path(&format!("c{label}.png"))]);
        png(Path::new(&path(&format!("c{label}.png")))).1
    };
    assert_ne!(grid("7"), grid("1"), "the same codes under other labels decode differently");
    // --measure: a row per requested digit (its samples, the share read as it), overall,
    // and the attribute similarity, a cosine in [0, 1].
    let measured = |extra: &[&str]| -> Vec<Vec<String>> {
        let out = path("m.png");
        let args = [&["sample", "--checkpoint", ck, "-n", "20", "--measure", "--out", &out][..], extra].concat();
        let text = String::from_utf8_lossy(&ok(&args).stdout).to_string();
        let similarity: f64 = text.lines().last().and_then(|l| l.rsplit(": ").next()).and_then(|v| v.parse().ok()).unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&similarity), "{text}");
        let ceiling = text.lines().find_map(|l| l.strip_prefix("attribute similarity of the test images with their own labels (the classifier's ceiling): "));
        assert!(ceiling.and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| (0.0..=1.0).contains(&v)), "{text}");
        let rows: Vec<Vec<String>> =
            text.lines().skip(1).filter(|l| !l.starts_with("attribute")).map(|l| l.split_whitespace().map(String::from).collect()).collect();
        for r in &rows {
            let pct: f64 = r[2].parse().unwrap();
            assert!((0.0..=100.0).contains(&pct) && r[3] == "%", "{text}");
        }
        rows
    };
    let every = measured(&[]);
    assert_eq!(
        every.iter().map(|r| (r[0].as_str(), r[1].as_str())).collect::<Vec<_>>(),
        [digits.iter().map(|d| (d.as_str(), "2")).collect::<Vec<_>>(), vec![("all", "20")]].concat()
    );
    let seven = measured(&["--condition", "7"]);
    assert_eq!(seven.iter().map(|r| (r[0].as_str(), r[1].as_str())).collect::<Vec<_>>(), [("7", "20"), ("all", "20")]);
    ok(&["eval", "--checkpoint", ck]);
    let (code, stderr) = finish(run.train(2, &["--decoder-ema", "0.99"]).spawn().unwrap());
    assert_eq!(code, 0, "a conditioned run resumes, now averaging its decoder: {stderr}");
    let resumed = vaegan::checkpoint::Checkpoint::load(&vaegan::checkpoint::path_in(&run.out)).unwrap();
    assert!(resumed.config.optim.decoder_ema == 0.99 && !resumed.average.is_empty(), "the conditioned run keeps an average");

    refused(&["sample", "--checkpoint", ck, "--condition", "12"], &["--condition \"12\"", "labels are 0, 1, 2"]);
    refused(&["sample", "--checkpoint", ck, "--condition", "3,4", "--measure"], &["\"4\" and \"3\" are both classes of \"class\": name one per factor"]);
    refused(&["edit", "--checkpoint", ck, "--add", "7"], &["conditioned", "sample --condition"]);
    refused(&["attributes", "--checkpoint", ck], &["conditioned", "sample --condition"]);
    // Data without labels cannot condition a model.
    let unlabelled = run.dir.path().join("unlabelled");
    std::fs::create_dir_all(&unlabelled).unwrap();
    for name in ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"] {
        std::fs::copy(run.data.join(name), unlabelled.join(name)).unwrap();
    }
    let other = run.dir.path().join("other");
    let args = ["train", "--config", run.config.to_str().unwrap(), "--data", unlabelled.to_str().unwrap(), "--out", other.to_str().unwrap(), "--conditioned"];
    refused(&args, &["labels"]);
    // An unconditioned model takes no labels.
    let plain = setup();
    let (code, stderr) = finish(plain.train(1, &[]).spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    let plain = plain.out.clone();
    refused(&["sample", "--checkpoint", plain.to_str().unwrap(), "--condition", "7"], &["not conditioned", "--conditioned"]);
    refused(&["sample", "--checkpoint", plain.to_str().unwrap(), "--measure"], &["--measure scores a conditioned model's samples", "not conditioned"]);
}

/// A colour model measured as MNIST's are: `classifier` on a labelled folder trains a head
/// per factor (shape, colour, background); `train` on 32×32 RGB data reports each epoch's
/// sample FD in the shipped shapes classifier's features; `eval --quality` reports the
/// factor combinations its samples cover, confidence per factor, and takes the shipped
/// shapes classifier by default, as `edit --measure` does (the target factor, and the share
/// of edits that keep the others); a classifier of another image shape is refused.
#[test]
fn a_colour_model_is_measured_with_a_classifier_per_factor() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run, weights) = (dir.path().join("shapes"), dir.path().join("run"), dir.path().join("c.safetensors"));
    ok(&["make-dataset", "shapes", "--out", data.to_str().unwrap(), "-n", "240", "--size", "32"]);
    let o = ok(&["classifier", "--data", data.to_str().unwrap(), "--size", "32", "--epochs", "1", "--batch", "32", "--out", weights.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("heads: shape (3), colour (6), background (4)") && err.contains("epoch 1/1: test accuracy") && err.contains("on every head (shape "),
        "{err}"
    );
    let w = vaegan::quality::ClassifierWeights::load(&weights).unwrap();
    assert_eq!((w.spec.image, w.spec.heads.len(), w.head_accuracy.len()), ([32, 32, 3], 3, 3));

    let mut c = vaegan();
    c.args(["train", "--preset", "shapes32", "--data", data.to_str().unwrap(), "--out", run.to_str().unwrap()]);
    c.args(["--epochs", "1", "--batch", "16", "--limit", "32", "--test-limit", "24", "--eval-batch", "24", "--fd-samples", "30"]);
    let (code, stderr) = finish(c.spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("epoch 1/1: ") && l.contains(" samples FD ")), "no sample FD on the epoch line: {stderr}");

    let eval = |extra: &[&str]| {
        let args = [&["eval", "--checkpoint", run.to_str().unwrap(), "--test-limit", "24", "--quality", "-n", "40"][..], extra].concat();
        String::from_utf8_lossy(&ok(&args).stdout).into_owned()
    };
    let text = eval(&["--classifier", weights.to_str().unwrap()]);
    let covered = text.lines().find(|l| l.contains("shape × colour × background combinations covered: ")).unwrap_or_else(|| panic!("{text}"));
    let (k, of) = covered.split(": ").nth(1).unwrap().split_once(" of ").unwrap();
    assert!((1..=40).contains(&k.parse::<usize>().unwrap()) && of == "72", "{covered}");
    for what in [
        "combination entropy: ",
        "samples whose shape is classified with confidence >= 0.9: ",
        "samples whose background is",
        "confident (>= 0.9) on every head: ",
    ] {
        assert!(text.contains(what), "no {what:?}: {text}");
    }
    assert!(eval(&[]).contains("shapes32-classifier.safetensors"), "the shipped shapes classifier is the default for 32x32 RGB");
    // Edits of the colour model, scored per factor by the shipped shapes classifier.
    // --labels: another labels file for the same folder (here its colour column alone) gives
    // vectors for exactly its attributes; --out puts them elsewhere.
    let factors = std::fs::read_to_string(data.join("factors.csv")).unwrap();
    let colours_only: String = factors.lines().map(|l| format!("{},{}\n", l.split(',').next().unwrap(), l.split(',').nth(2).unwrap())).collect();
    let (labels, vectors) = (dir.path().join("colours.csv"), dir.path().join("colours.safetensors"));
    std::fs::write(&labels, colours_only).unwrap();
    ok(&["attributes", "--checkpoint", run.to_str().unwrap(), "--labels", labels.to_str().unwrap(), "--out", vectors.to_str().unwrap()]);
    let mut names = vaegan::model::AttributeVectors::load(&vectors).unwrap().names;
    names.sort();
    assert_eq!(names, ["blue", "cyan", "green", "magenta", "red", "yellow"]);
    ok(&["attributes", "--checkpoint", run.to_str().unwrap()]);
    let grid = dir.path().join("e.png");
    let edit = |extra: &[&str]| {
        let args = [&["edit", "--checkpoint", run.to_str().unwrap(), "--measure", "--out", grid.to_str().unwrap()][..], extra].concat();
        String::from_utf8_lossy(&ok(&args).stdout).into_owned()
    };
    let text = edit(&["--add", "red"]);
    assert!(text.contains("classified as red after the edit: ") && text.contains("edits that keep their own shape and background: "), "{text}");
    let text = edit(&["--add", "red", "--remove", "circle"]);
    assert!(text.contains("classified as not circle and red after the edit: ") && text.contains("edits that keep their own background: "), "{text}");
    let mnist = vaegan::quality::classifier::default_path();
    refused(
        &["eval", "--checkpoint", run.to_str().unwrap(), "--test-limit", "24", "--quality", "-n", "40", "--classifier", mnist.to_str().unwrap()],
        &["the classifier reads 28x28x1 images", "this model's images are 32x32x3"],
    );

    // A model conditioned on the factors, measured per factor: without --condition the 36
    // samples cycle the 72 combinations (shape fastest), with `--condition red` every sample
    // asks for red and the other factors cycle.
    let cond = dir.path().join("cond");
    let mut c = vaegan();
    c.args(["train", "--preset", "shapes32", "--data", data.to_str().unwrap(), "--out", cond.to_str().unwrap(), "--conditioned"]);
    c.args(["--epochs", "1", "--batch", "16", "--limit", "32", "--test-limit", "24", "--eval-batch", "24", "--fd-samples", "30"]);
    let (code, stderr) = finish(c.spawn().unwrap());
    assert_eq!(code, 0, "{stderr}");
    let measure = |extra: &[&str]| {
        let args = [&["sample", "--checkpoint", cond.to_str().unwrap(), "-n", "36", "--measure", "--out", grid.to_str().unwrap()][..], extra].concat();
        let o = ok(&args);
        let said = if extra.contains(&"--condition") {
            "labels red, the other factors of shape × colour × background cycling"
        } else {
            "labels cycling through the combinations of shape × colour × background"
        };
        assert!(String::from_utf8_lossy(&o.stderr).contains(said), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // (class, samples) rows of each factor's table.
    let tables = |text: &str| -> Vec<(String, Vec<(String, usize)>)> {
        let mut out: Vec<(String, Vec<(String, usize)>)> = vec![];
        for l in text.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f[..] {
                [head, "samples", "read", "as", "it"] => out.push((head.to_string(), vec![])),
                [class, n, pct, "%"] if pct.parse::<f64>().is_ok_and(|p| (0.0..=100.0).contains(&p)) => {
                    out.last_mut().unwrap_or_else(|| panic!("{text}")).1.push((class.to_string(), n.parse().unwrap()))
                }
                _ => {}
            }
        }
        out
    };
    let text = measure(&["--classifier", weights.to_str().unwrap()]);
    let t = tables(&text);
    let rows = |i: usize| t[i].1.iter().map(|(c, n)| (c.as_str(), *n)).collect::<Vec<_>>();
    assert_eq!(t.iter().map(|h| h.0.as_str()).collect::<Vec<_>>(), ["shape", "colour", "background"], "{text}");
    assert_eq!(rows(0), [("circle", 12), ("square", 12), ("triangle", 12), ("all", 36)], "{text}");
    assert_eq!(rows(1), [("blue", 6), ("cyan", 6), ("green", 6), ("magenta", 6), ("red", 6), ("yellow", 6), ("all", 36)], "{text}");
    assert_eq!(rows(2), [("black", 18), ("grey", 18), ("all", 36)], "{text}");
    assert!(text.contains("every requested factor: ") && text.contains("attribute similarity of the test images with their own labels"), "{text}");
    let ((w, h, _), _) = png(&grid);
    assert_eq!((w, h), (18 * 34 + 2, 2 * 34 + 2), "a row per background: its shape × colour combinations across");
    let t = tables(&measure(&["--condition", "red"]));
    let ((w, h, _), _) = png(&grid);
    assert_eq!((w, h), (3 * 34 + 2, 12 * 34 + 2), "red asked: a row per background, its shapes across");
    assert_eq!(t[1].1, [("red".to_string(), 36), ("all".to_string(), 36)], "the shipped classifier by default; red asked of every sample");
    refused(
        &["sample", "--checkpoint", cond.to_str().unwrap(), "--measure", "--condition", "red,blue"],
        &["\"blue\" and \"red\" are both classes of \"colour\""],
    );
    refused(
        &["sample", "--checkpoint", cond.to_str().unwrap(), "--measure", "--classifier", mnist.to_str().unwrap()],
        &["reads [28, 28, 1] images, the model makes [32, 32, 3]"],
    );
}

//! Hostile and broken input, table-driven: every case must be refused with a clear error
//! that names the file (or option), the field and what was expected — never a panic.
//! IDX files, PNG folders, TOML configs, checkpoints, and the command line.

use std::path::{Path, PathBuf};

use vaegan::checkpoint::Checkpoint;
use vaegan::data::{idx, images};
use vaegan::model::RunConfig;

use crate::data::{gz, idx_bytes, write, write_png};

/// Each broken file is refused with the file named and what was expected.
#[test]
fn idx_refuses_broken_files_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let good = idx_bytes(&[2, 2, 2], &[1; 8]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "empty file"),
        ("short-magic", vec![0, 0], "truncated header"),
        ("wrong-magic", b"\x89PNG\r\n\x1a\n".to_vec(), "is not IDX"),
        (
            "wrong-type",
            {
                let mut b = good.clone();
                b[2] = 0x0D;
                b
            },
            "element type 0x0d",
        ),
        ("no-dims", vec![0, 0, 8, 0], "0 dimensions"),
        ("short-dims", vec![0, 0, 8, 3, 0, 0, 0, 2], "dimension 1 of 3 is missing"),
        ("truncated-data", good[..good.len() - 3].to_vec(), "need 8 data bytes but the file holds 5"),
        ("extra-data", [good.clone(), vec![9, 9]].concat(), "2 bytes of data follow"),
        ("overflow", idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[]), "ask for more than"),
        ("gigabytes", idx_bytes(&[60_000, 28_000, 28_000], &[1; 10]), "ask for more than"),
        ("liar", idx_bytes(&[1000, 28, 28], &[1; 10]), "the file holds 10"),
    ];
    for (name, bytes, expect) in cases {
        for (suffix, content) in [("", bytes.clone()), (".gz", gz(&bytes))] {
            if name == "empty" && suffix == ".gz" {
                continue; // a gzip of nothing is not empty: covered by short-magic
            }
            let path = write(dir.path(), &format!("{name}{suffix}"), &content);
            let err = idx::read(&path).err().unwrap_or_else(|| panic!("{name}{suffix} was accepted"));
            let text = err.to_string();
            assert!(text.contains(&format!("{name}{suffix}")), "{name}{suffix}: the error does not name the file: {text}");
            let expect = match (suffix, expect) {
                (".gz", e) if e.contains("the file holds") => "truncated data",
                (".gz", "2 bytes of data follow") => "more bytes of data follow",
                _ => expect,
            };
            assert!(text.contains(expect), "{name}{suffix}: expected {expect:?} in {text:?}");
        }
    }
    // A truncated gzip stream.
    let z = gz(&idx_bytes(&[100, 28, 28], &[7; 78_400]));
    let path = write(dir.path(), "cut.gz", &z[..z.len() / 2]);
    assert!(idx::read(&path).is_err());
    // Labels that do not match the images.
    let images = write(dir.path(), "i", &good);
    let labels = write(dir.path(), "l", &idx_bytes(&[3], &[1, 2, 3]));
    let err = idx::load_images(&images, Some(&labels)).unwrap_err().to_string();
    assert!(err.contains("3 labels for 2 images"), "{err}");
}

#[test]
fn image_folders_refuse_bad_images_clearly() {
    use crate::data::{load, write_jpeg};
    use vaegan::data::ImageOptions;
    let cache = tempfile::tempdir().unwrap();
    let o = ImageOptions::grey(28);

    let corrupt = tempfile::tempdir().unwrap();
    write_png(&corrupt.path().join("a.png"), 28, 28, png::ColorType::Grayscale, &[0; 784]);
    let mut bytes = std::fs::read(corrupt.path().join("a.png")).unwrap();
    let n = bytes.len();
    bytes.truncate(n - 20);
    std::fs::write(corrupt.path().join("b.png"), &bytes).unwrap();
    let err = load(corrupt.path(), o, cache.path()).err().unwrap().to_string();
    assert!(err.contains("b.png") && (err.contains("corrupt") || err.contains("not a readable PNG")), "{err}");

    // A JPEG cut in half, and one whose entropy-coded data is garbage.
    let jpegs = tempfile::tempdir().unwrap();
    write_jpeg(&jpegs.path().join("a.jpg"), 32, 32, &[128; 32 * 32 * 3]);
    let good = std::fs::read(jpegs.path().join("a.jpg")).unwrap();
    std::fs::write(jpegs.path().join("b.jpg"), &good[..good.len() / 2]).unwrap();
    let err = load(jpegs.path(), o, cache.path()).err().unwrap().to_string();
    assert!(err.contains("b.jpg") && err.contains("JPEG"), "{err}");
    std::fs::remove_file(jpegs.path().join("b.jpg")).unwrap();
    let mut garbled = good.clone();
    garbled.truncate(40);
    garbled.extend(std::iter::repeat_n(0xAB, 200));
    std::fs::write(jpegs.path().join("c.jpeg"), &garbled).unwrap();
    let err = load(jpegs.path(), o, cache.path()).err().unwrap().to_string();
    assert!(err.contains("c.jpeg") && err.contains("JPEG"), "{err}");
    // A file named .png holding neither format.
    std::fs::remove_file(jpegs.path().join("c.jpeg")).unwrap();
    std::fs::write(jpegs.path().join("d.png"), b"hello, not a picture").unwrap();
    let err = load(jpegs.path(), o, cache.path()).err().unwrap().to_string();
    assert!(err.contains("d.png") && err.contains("neither a PNG nor a JPEG"), "{err}");

    // A valid header (its CRC recomputed, so that no CRC check stops it first) declaring
    // 100000×100000 pixels: refused by the size guard, which names the size and the limit.
    let huge = tempfile::tempdir().unwrap();
    write_png(&huge.path().join("a.png"), 1, 1, png::ColorType::Grayscale, &[0]);
    let bytes = with_png_size(&std::fs::read(huge.path().join("a.png")).unwrap(), 100_000, 100_000);
    std::fs::write(huge.path().join("b.png"), &bytes).unwrap();
    let err = images::decode(&huge.path().join("b.png")).err().unwrap().to_string();
    let limit = format!("exceeds the limit of {} pixels", images::MAX_PIXELS);
    assert!(err.contains("b.png") && err.contains("100000x100000") && err.contains(&limit), "{err}");

    // A valid header declaring a 0×5 image.
    let zero = tempfile::tempdir().unwrap();
    write_png(&zero.path().join("a.png"), 1, 5, png::ColorType::Grayscale, &[0; 5]);
    let bytes = with_png_size(&std::fs::read(zero.path().join("a.png")).unwrap(), 0, 5);
    std::fs::write(zero.path().join("z.png"), &bytes).unwrap();
    let err = images::decode(&zero.path().join("z.png")).err().unwrap().to_string();
    assert!(err.contains("z.png") && err.contains("zero-sized image (0x5)"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = load(empty.path(), o, cache.path()).err().unwrap().to_string();
    assert!(err.contains("0 PNG or JPEG images"), "{err}");
}

#[test]
fn configs_are_validated_with_the_key_named() {
    let ok = RunConfig::from_toml("preset = \"pytorch-vae\"\n[model]\nlatent = 10\n[optim]\nlr_encoder = 0.01\n", "a.toml").unwrap();
    assert_eq!((ok.model.latent, ok.model.encoder.clone(), ok.optim.lr_encoder), (10, vec![400], 0.01));
    let cases = [
        ("[model]\nlatnt = 3\n", "unknown key model.latnt"),
        ("[model]\nlatent = \"big\"\n", "latent"),
        ("[model]\nencoder = [512, 0]\n", "model.encoder[1] is 0"),
        ("[optim]\nlr_decoder = -0.1\n", "optim.lr_decoder = -0.1"),
        ("[model]\nlatent = 1000\n", "does not fit"),
        ("[model]\nhidden_act = \"swish\"\n", "unknown activation"),
        ("colour = 3\n", "colour"),
        ("[model]\nmode = \"gan\"\n", "unknown mode"),
    ];
    for (text, expect) in cases {
        let err = RunConfig::from_toml(text, "bad.toml").err().unwrap_or_else(|| panic!("{text:?} was accepted"));
        assert!(err.contains("bad.toml") && err.contains(expect), "{text:?}: expected {expect:?} in {err:?}");
    }
}

/// A small valid checkpoint of a tiny model, as bytes.
pub fn tiny_checkpoint() -> Checkpoint {
    let config = RunConfig::from_toml(crate::interrupt::TINY_TOML, "tiny.toml").unwrap();
    let shapes = vaegan::model::param_shapes(&config.model).unwrap();
    let tensors: Vec<(String, [usize; 2], Vec<f32>)> = shapes.iter().map(|(n, s)| (n.clone(), *s, vec![0.01; s[0] * s[1]])).collect();
    Checkpoint {
        config,
        step: 12,
        epoch: 1,
        step_in_epoch: 4,
        updates: vec![12, 12, 12],
        seed: 5,
        batch: 16,
        data: "somewhere".into(),
        limit: None,
        test_limit: Some(32),
        crop: vaegan::data::Crop::Centre,
        balance_losses: None,
        params: tensors.clone(),
        state: vec![],
        adam_m: tensors.clone(),
        adam_v: tensors,
        average: vec![],
    }
}

/// The decoder's tensors of a list (what an averaged checkpoint's average holds).
fn decoder_of(list: &[(String, [usize; 2], Vec<f32>)]) -> Vec<(String, [usize; 2], Vec<f32>)> {
    list.iter().filter(|(n, _, _)| n.starts_with("decoder.")).cloned().collect()
}

#[test]
fn hostile_checkpoints_are_refused_clearly() {
    let good = tiny_checkpoint();
    let bytes = good.to_bytes().unwrap();
    let path = Path::new("ck.safetensors");
    Checkpoint::from_bytes(&bytes, path).expect("the good one loads");
    let with = |f: &dyn Fn(&mut Checkpoint)| {
        let mut c = good.clone();
        f(&mut c);
        c.to_bytes().unwrap()
    };
    let foreign = {
        let data = vec![0u8; 16];
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 2], &data).unwrap();
        safetensors::tensor::serialize(vec![("weight", view)], None).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "not a readable safetensors file"),
        ("truncated", bytes[..bytes.len() / 2].to_vec(), "not a readable safetensors file"),
        ("truncated header", bytes[..12].to_vec(), "not a readable safetensors file"),
        ("foreign safetensors", foreign, "metadata key \"format\" is missing: not a vaegan checkpoint"),
        (
            "wrong shape",
            with(&|c| {
                c.params[0].1 = [3, 3];
                c.params[0].2 = vec![0.0; 9];
            }),
            "the config's model needs",
        ),
        (
            "missing tensor",
            with(&|c| {
                c.params.remove(1);
            }),
            "are missing",
        ),
        (
            "missing moment",
            with(&|c| {
                c.adam_v.pop();
            }),
            "Adam v of",
        ),
        ("stray tensor", with(&|c| c.params.push(("bonus.weight".into(), [1, 1], vec![0.0]))), "not part of the config's model"),
        ("NaN weight", with(&|c| c.params[2].2[3] = f32::NAN), "holds NaN at element 3"),
        ("Inf moment", with(&|c| c.adam_m[0].2[0] = f32::INFINITY), "holds inf at element 0"),
        ("wrong group count", with(&|c| c.updates = vec![1]), "\"updates\" has 1 entries"),
        // The decoder's average: present exactly when the config keeps one.
        ("average without decoder_ema", with(&|c| c.average = decoder_of(&c.params)), "tensor average.decoder."),
        ("decoder_ema without average", with(&|c| c.config.optim.decoder_ema = 0.999), "the average of decoder."),
        (
            "average of a non-decoder tensor",
            with(&|c| {
                c.config.optim.decoder_ema = 0.999;
                c.average = decoder_of(&c.params);
                c.average.push(c.params.iter().find(|(n, _, _)| n.starts_with("encoder.")).unwrap().clone());
            }),
            "tensor average.encoder.",
        ),
        (
            "average of the wrong shape",
            with(&|c| {
                c.config.optim.decoder_ema = 0.999;
                c.average = decoder_of(&c.params);
                c.average[0].1 = [1, 1];
                c.average[0].2 = vec![0.0];
            }),
            "the config's model needs",
        ),
    ];
    for (name, bytes, expect) in cases {
        let err = Checkpoint::from_bytes(&bytes, path).err().unwrap_or_else(|| panic!("{name}: accepted"));
        let text = err.to_string();
        assert!(text.contains("ck.safetensors") && text.contains(expect), "{name}: expected {expect:?} in {text:?}");
    }
    // A checkpoint with an average loads, and keeps it.
    let mut averaged = good.clone();
    averaged.config.optim.decoder_ema = 0.999;
    averaged.average = decoder_of(&good.params);
    averaged.average[0].2[0] = 0.5;
    let back = Checkpoint::from_bytes(&averaged.to_bytes().unwrap(), path).expect("an averaged checkpoint loads");
    assert_eq!(back.tensor(&averaged.average[0].0).unwrap()[0], 0.5, "tensor() gives the average");
    // The balancing's last losses come back bit for bit.
    let balanced = Checkpoint { balance_losses: Some((12, 0.1 + 0.2, 1.0 / 3.0)), ..good.clone() };
    assert_eq!(Checkpoint::from_bytes(&balanced.to_bytes().unwrap(), path).unwrap().balance_losses, balanced.balance_losses);
    // Metadata that is missing or not a number.
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    for (key, value, expect) in [
        ("step", None, "\"step\" is missing"),
        ("epoch", Some("many"), "\"epoch\" is not a number"),
        ("config", Some("[model]\nlatent = 0"), "model.latent must be at least 1"),
        ("balance_losses", Some("12,0.5,NaN"), "\"balance_losses\" is \"12,0.5,NaN\": expected step,d_real,d_fake"),
        ("balance_losses", Some("12,0.5"), "\"balance_losses\" is \"12,0.5\""),
    ] {
        let mut m = meta.metadata().clone().unwrap();
        match value {
            None => {
                m.remove(key);
            }
            Some(v) => {
                m.insert(key.to_string(), v.to_string());
            }
        }
        let views: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
        let edited = safetensors::tensor::serialize(views, Some(m)).unwrap();
        let text = Checkpoint::from_bytes(&edited, path).expect_err(key).to_string();
        assert!(text.contains(expect), "{key}: expected {expect:?} in {text:?}");
    }
}

fn vaegan_cli(args: &[&str]) -> (i32, String) {
    // The test run's environment (backend, adapter, tile, caches).
    let out = crate::interrupt::vaegan().args(args).output().expect("run vaegan");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (out.status.code().unwrap_or(-1), stderr)
}

/// Bad command lines exit non-zero with a message naming what to fix.
#[test]
fn hostile_command_lines_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let data = crate::interrupt::small_idx_dataset(dir.path());
    let data = data.to_str().unwrap();
    let file = write(dir.path(), "a-file", b"x");
    let under_file: PathBuf = file.join("out");
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    // A stand-in for the page's built WebAssembly (the server checks it exists).
    let pkg = dir.path().join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    write(&pkg, "vaegan.js", b"");
    write(&pkg, "vaegan_bg.wasm", b"");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["train", "--data", data, "--batch", "0", "--out", out], "--batch 0"),
        (vec!["train", "--data", data, "--batch", "100000", "--out", out], "larger than the 256 training images"),
        (vec!["train", "--data", data, "--lr=0", "--out", out], "--lr 0: must be a positive number"),
        (vec!["train", "--data", data, "--lr=-0.5", "--out", out], "--lr -0.5: must be a positive number"),
        (vec!["train", "--data", data, "--lr-discriminator=-1", "--out", out], "--lr-discriminator -1"),
        // Negative numbers written as separate words reach the check that names the flag.
        (vec!["train", "--data", data, "--lr", "-1", "--out", out], "--lr -1: must be a positive number"),
        (vec!["train", "--data", data, "--gamma", "-2", "--out", out], "--gamma -2"),
        (vec!["train", "--data", data, "--pixel-weight", "-0.5", "--out", out], "--pixel-weight -0.5"),
        (vec!["train", "--data", data, "--epochs", "-3", "--out", out], "'--epochs <EPOCHS>'"),
        (vec!["train", "--data", data, "--batch", "-16", "--out", out], "'--batch <BATCH>'"),
        (vec!["train", "--data", data, "--limit", "-5", "--out", out], "'--limit <LIMIT>'"),
        (vec!["train", "--data", data, "--eval-batch", "-1", "--out", out], "'--eval-batch <EVAL_BATCH>'"),
        (vec!["train", "--data", data, "--seed", "-1", "--out", out], "'--seed <SEED>'"),
        (vec!["sample", "--checkpoint", out, "-n", "-4"], "invalid value '-4'"),
        (vec!["eval", "--checkpoint", out, "--batch", "-4"], "'--batch <BATCH>'"),
        (vec!["bench", "--quick", "--samples", "-4"], "--samples"),
        (vec!["train", "--data", data, "--out", under_file.to_str().unwrap()], "cannot create the output folder"),
        (vec!["train", "--data", "/nonexistent/data", "--out", out], "/nonexistent/data: not a folder"),
        (vec!["train", "--preset", "huge", "--data", data, "--out", out], "unknown preset \"huge\""),
        (vec!["--backend", "cuda", "devices"], "unknown backend \"cuda\""),
        (vec!["--adapter", "no-such-gpu", "train", "--data", data, "--out", out], "no adapter matches --adapter \"no-such-gpu\""),
        (vec!["eval", "--checkpoint", "/nonexistent/run"], "/nonexistent/run: cannot read"),
        (vec!["sample", "--checkpoint", file.to_str().unwrap()], "not a readable safetensors file"),
        (vec!["train", "--data", data, "--channels", "2", "--out", out], "--channels 2: expected 1 (grey) or 3 (RGB)"),
        (vec!["train", "--data", data, "--crop", "square", "--out", out], "unknown crop \"square\""),
        (vec!["train", "--data", data, "--gpu-data-mib", "0", "--out", out], "--gpu-data-mib 0"),
        // The 28×28 set does not fit Larsen's 64×64 model (IDX sets keep their size).
        (vec!["train", "--preset", "celeba64", "--data", data, "--out", out], "64x64 images"),
        (vec!["make-dataset", "faces", "--out", out], "unknown data set \"faces\""),
        (vec!["make-dataset", "shapes", "--out", dir.path().to_str().unwrap(), "-n", "4"], "not empty"),
        (vec!["make-dataset", "shapes", "--out", out, "-n", "0"], "need at least 1 image"),
        // The page's server: no WebAssembly built, no MNIST, a port it cannot have.
        (
            vec!["web", "--pkg", "/nonexistent/pkg"],
            "/nonexistent/pkg: no vaegan.js and vaegan_bg.wasm: build the page's WebAssembly first with `bash src/web/build.sh`",
        ),
        (vec!["web", "--pkg", dir.path().to_str().unwrap()], "no vaegan.js"),
        (
            vec!["web", "--pkg", pkg.to_str().unwrap(), "--data", data],
            "no train-images.idx3-ubyte.gz: --data must name a folder with MNIST's gzipped IDX files",
        ),
        (vec!["web", "--pkg", pkg.to_str().unwrap(), "--host", "256.0.0.1"], "cannot listen on 256.0.0.1:8080"),
    ];
    for (args, expect) in cases {
        let (code, stderr) = vaegan_cli(&args);
        assert!(code != 0, "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: expected {expect:?} in {stderr:?}");
    }
}

/// A batch too large for the adapter's storage bindings: the error names the limit and a
/// batch that fits (full MNIST, so that the batch is not refused for the data set's size).
/// The first layer is made wide enough, from the adapter's own limit, that 50,000 rows of it
/// exceed one binding on any adapter (lavapipe's 128 MiB or a GPU's 4 GiB), while its
/// weights still fit.
#[test]
fn a_batch_too_large_for_the_adapter_names_the_limit_and_a_size_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mnist = crate::data::shipped_mnist();
    let (batch, limit) = (50_000u64, crate::common::gpu().binding_limit());
    let width = (limit / (batch * 4) + 1).next_power_of_two();
    assert!(batch * width * 4 > limit && 784 * width * 4 < limit);
    let config = dir.path().join("wide.toml");
    std::fs::write(&config, format!("preset = \"mnist-mlp\"\n[model]\nencoder = [{width}, 256]\n")).unwrap();
    let args = ["train", "--config", config.to_str().unwrap(), "--data", mnist.to_str().unwrap(), "--batch", "50000", "--out", out.to_str().unwrap()];
    let (code, stderr) = vaegan_cli(&args);
    assert!(code != 0 && !stderr.contains("panicked"), "{stderr}");
    let named = format!("storage binding limit of {limit} bytes");
    assert!(stderr.contains(&named) && stderr.contains("or less fits"), "{stderr}");
    assert!(!vaegan::checkpoint::path_in(&out).exists(), "nothing trained");
}

/// A PNG file's bytes with the IHDR chunk declaring `width`×`height`, its CRC recomputed.
fn with_png_size(png: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png.to_vec();
    assert_eq!(&bytes[12..16], b"IHDR");
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    // The CRC covers the chunk's type and data (13 bytes) and follows them.
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// CRC-32 (ISO 3309, as PNG uses it), bit by bit.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Batch-norm running statistics are checked like weights: a checkpoint that lacks one, or
/// holds one of the wrong shape, is refused with its name.
#[test]
fn checkpoints_without_their_running_statistics_are_refused() {
    let good = crate::export::random_checkpoint("mnist-conv", 3);
    assert!(!good.state.is_empty(), "mnist-conv has batch norm");
    let path = Path::new("conv.safetensors");
    Checkpoint::from_bytes(&good.to_bytes().unwrap(), path).expect("the good one loads");
    let name = good.state[0].0.clone();
    let mut missing = good.clone();
    missing.state.remove(0);
    let err = Checkpoint::from_bytes(&missing.to_bytes().unwrap(), path).expect_err("missing").to_string();
    assert!(err.contains("conv.safetensors") && err.contains(&format!("running statistics of {name} are missing")), "{err}");
    let mut reshaped = good.clone();
    let [r, c] = reshaped.state[0].1;
    reshaped.state[0].1 = [r, c + 1];
    reshaped.state[0].2 = vec![1.0; r * (c + 1)];
    let err = Checkpoint::from_bytes(&reshaped.to_bytes().unwrap(), path).expect_err("reshaped").to_string();
    assert!(err.contains(&format!("running statistics of {name} are {r}x{}, the config's model needs {r}x{c}", c + 1)), "{err}");
}

/// The classifier's and the prior's files: a missing tensor, one that is not f32 and one
/// with a non-finite value are each refused with the file and the tensor named.
#[test]
fn classifier_and_prior_files_with_bad_tensors_are_refused() {
    use vaegan::model::GaussianMixture;
    use vaegan::quality::ClassifierWeights;
    let dir = tempfile::tempdir().unwrap();
    let good_prior = GaussianMixture::fit(&[0.0, 1.0, 0.5, -1.0, 2.0, 0.0, 1.5, 1.0], 2, 2, 5, 1).unwrap().0;
    let prior_path = dir.path().join("prior.safetensors");
    good_prior.save(&prior_path).unwrap();
    GaussianMixture::load(&prior_path).expect("the good prior loads");
    let classifier = ClassifierWeights::load(&vaegan::quality::classifier::default_path()).unwrap();
    // Rewrites `source` with tensor `name` dropped, stored as F64, or holding a NaN.
    let rewrite = |source: &Path, name: &str, how: &str| -> std::path::PathBuf {
        let bytes = std::fs::read(source).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = vec![];
        for (n, view) in st.tensors() {
            let (mut dtype, mut data) = (view.dtype(), view.data().to_vec());
            if n == name {
                match how {
                    "missing" => continue,
                    "f64" => {
                        dtype = safetensors::Dtype::F64;
                        data = data.chunks(4).flat_map(|c| (f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).to_le_bytes()).collect();
                    }
                    _ => data[..4].copy_from_slice(&f32::NAN.to_le_bytes()),
                }
            }
            owned.push((n, dtype, view.shape().to_vec(), data));
        }
        let views: Vec<(String, safetensors::tensor::TensorView)> =
            owned.iter().map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap())).collect();
        let out = dir.path().join(format!("{how}-{}", source.file_name().unwrap().to_string_lossy()));
        std::fs::write(&out, safetensors::tensor::serialize(views, header.metadata().clone()).unwrap()).unwrap();
        out
    };
    for (how, expect) in [("missing", "tensor {} is missing"), ("f64", "tensor {} is F64, expected F32"), ("nan", "tensor {} holds non-finite values")] {
        let p = rewrite(&prior_path, "means", how);
        let err = GaussianMixture::load(&p).err().unwrap_or_else(|| panic!("prior, {how}: accepted"));
        assert!(err.contains(p.to_str().unwrap()) && err.contains(&expect.replace("{}", "means")), "prior, {how}: {err}");
        let p = rewrite(&vaegan::quality::classifier::default_path(), "classifier.1.weight", how);
        let err = ClassifierWeights::load(&p).err().unwrap_or_else(|| panic!("classifier, {how}: accepted"));
        assert!(err.contains(p.to_str().unwrap()) && err.contains(&expect.replace("{}", "classifier.1.weight")), "classifier, {how}: {err}");
    }
    assert_eq!(classifier.tensors.len(), 6);
}

/// A folder of one image is refused (a test split needs one of its own); a cache folder
/// that cannot be made leaves the run going, without a cache, and says why; a cache file
/// whose magic, key, dimensions or length disagree is rebuilt, never read.
#[test]
fn image_caches_that_disagree_are_rebuilt_and_unwritable_ones_reported() {
    use vaegan::data::{cache, CacheStatus, ImageOptions};
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one");
    std::fs::create_dir_all(&one).unwrap();
    write_png(&one.join("a.png"), 4, 4, png::ColorType::Grayscale, &[9; 16]);
    let o = ImageOptions::grey(4);
    let err = cache::load(&one, &o, &dir.path().join("c"), &|_, _| {}).err().unwrap().to_string();
    assert!(err.contains("1 PNG or JPEG images found") && err.contains("at least 2 images"), "{err}");

    let set = dir.path().join("set");
    std::fs::create_dir_all(&set).unwrap();
    for i in 0..3u8 {
        write_png(&set.join(format!("{i}.png")), 4, 4, png::ColorType::Grayscale, &[40 * i; 16]);
    }
    // A cache folder under a plain file cannot be created.
    let blocker = write(dir.path(), "blocker", b"a file");
    let (files, images, status) = cache::load(&set, &o, &blocker.join("cache"), &|_, _| {}).unwrap();
    assert_eq!((files.len(), images.len()), (3, 48));
    assert!(matches!(&status, CacheStatus::Unwritable(p, why) if p.starts_with(&blocker) && !why.is_empty()), "{status:?}");

    let caches = dir.path().join("caches");
    let (_, first, status) = cache::load(&set, &o, &caches, &|_, _| {}).unwrap();
    let CacheStatus::Built(file) = status else { panic!("{status:?}") };
    let good = std::fs::read(&file).unwrap();
    assert!(matches!(cache::load(&set, &o, &caches, &|_, _| {}).unwrap().2, CacheStatus::Hit(_)));
    // (what, byte offset to change): the magic, the key, the count, a dimension; then a short file.
    for (what, at) in [("magic", 0), ("key", 8 + 5), ("count", 40), ("height", 48)] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        std::fs::write(&file, &bad).unwrap();
        let (_, images, status) = cache::load(&set, &o, &caches, &|_, _| {}).unwrap();
        assert!(matches!(status, CacheStatus::Built(_)), "{what}: {status:?}");
        assert_eq!(images, first, "{what}: rebuilt to the same images");
        assert_eq!(std::fs::read(&file).unwrap(), good, "{what}: the rebuilt cache is whole again");
    }
    std::fs::write(&file, &good[..good.len() - 1]).unwrap();
    assert!(matches!(cache::load(&set, &o, &caches, &|_, _| {}).unwrap().2, CacheStatus::Built(_)), "a short cache is rebuilt");
}

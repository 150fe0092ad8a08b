//! Mutation fuzzing of the readers: ≥ 10,000 mutated IDX, TOML and checkpoint byte strings
//! each, from a fixed seed; each must give an `Err` or a valid value — never a panic.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vaegan::checkpoint::Checkpoint;
use vaegan::data::idx;
use vaegan::model::RunConfig;

const CASES: usize = 10_000;

/// One to four random edits: bit flips, interesting bytes, truncation, insertion,
/// duplication of a chunk, deletion.
fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let n = b.len().max(1);
        match rng.random_range(0..6) {
            0 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                b[i] = [0x00, 0xff, 0x7f, 0x80, 0x08, 0x01, b'"', b'=', b'['][rng.random_range(0..9)];
            }
            2 => b.truncate(rng.random_range(0..n)),
            3 => {
                let i = rng.random_range(0..=b.len());
                let extra: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                b.splice(i..i, extra);
            }
            4 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                let j = (i + rng.random_range(1..64)).min(b.len());
                let chunk = b[i..j].to_vec();
                let at = rng.random_range(0..=b.len());
                b.splice(at..at, chunk);
            }
            _ if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                let j = (i + rng.random_range(1..32)).min(b.len());
                b.drain(i..j);
            }
            _ => {}
        }
    }
    b
}

#[test]
fn mutated_idx_files_never_panic() {
    let mut rng = StdRng::seed_from_u64(1);
    let raw = crate::data::idx_bytes(&[3, 4, 5], &(0..60).collect::<Vec<u8>>());
    let seeds = [raw.clone(), crate::data::gz(&raw), crate::data::idx_bytes(&[7], &[1; 7])];
    let mut ok = 0;
    for i in 0..CASES {
        let bytes = mutate(&mut rng, &seeds[i % seeds.len()]);
        if let Ok(v) = idx::from_bytes(&bytes, Path::new("fuzz.idx")) {
            assert_eq!(v.data.len(), v.dims.iter().product::<usize>(), "an accepted file must be consistent");
            ok += 1;
        }
    }
    assert!(ok < CASES, "some mutations must be refused");
}

#[test]
fn mutated_toml_configs_never_panic() {
    let mut rng = StdRng::seed_from_u64(2);
    let seed = vaegan::model::RunConfig::preset("mnist-mlp").unwrap().to_toml();
    let seeds = [seed.into_bytes(), crate::interrupt::TINY_TOML.as_bytes().to_vec()];
    for i in 0..CASES {
        let bytes = mutate(&mut rng, &seeds[i % seeds.len()]);
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(c) = RunConfig::from_toml(&text, "fuzz.toml") {
            c.validate().expect("an accepted config is valid");
        }
    }
}

#[test]
fn mutated_checkpoints_never_panic() {
    let mut rng = StdRng::seed_from_u64(3);
    let seed = crate::hostile::tiny_checkpoint().to_bytes().unwrap();
    let mut ok = 0;
    for _ in 0..CASES {
        let bytes = mutate(&mut rng, &seed);
        if let Ok(c) = Checkpoint::from_bytes(&bytes, Path::new("fuzz.safetensors")) {
            assert!(c.params.iter().all(|(_, _, v)| v.iter().all(|x| x.is_finite())));
            ok += 1;
        }
    }
    assert!(ok < CASES);
}

/// Labels files (`data::labels`): CelebA's format and CSV, mutated; an accepted table is
/// consistent (a row of 0/1 per listed file, unique names).
#[test]
fn mutated_labels_files_never_panic() {
    use vaegan::data::labels;
    let mut rng = StdRng::seed_from_u64(4);
    let celeba = b"3\nEyeglasses Male  Smiling\n000001.jpg -1  1  1\n000002.jpg  1 -1  1\n000003.jpg -1 -1 -1\n".to_vec();
    let csv =
        b"file,shape,colour,x,glasses\nshape_00000.png,circle,red,0.25,1\nshape_00001.png,square,\"blue\",0.5,0\nshape_00002.png,circle,green,1e3,1\n".to_vec();
    let mut ok = [0, 0];
    for i in 0..CASES {
        let as_csv = i % 2 == 1;
        let bytes = mutate(&mut rng, if as_csv { &csv } else { &celeba });
        let table = if as_csv {
            labels::parse_csv(Path::new("fuzz.csv"), &bytes)
        } else {
            match std::str::from_utf8(&bytes) {
                Ok(text) => labels::parse_celeba(Path::new("fuzz.txt"), text),
                Err(_) => continue,
            }
        };
        if let Ok(t) = table {
            targets::check_table(&t);
            ok[as_csv as usize] += 1;
        }
    }
    assert!(ok.iter().all(|&n| n > 0 && n < CASES / 2), "some mutations accepted, some refused: {ok:?}");
}

/// The coverage-guided fuzz targets' bodies (kernels-tests/fuzz, run with `cargo fuzz`).
#[path = "fuzz/targets.rs"]
mod targets;

/// Every file of every fuzz corpus (kernels-tests/fuzz/corpus/<target>: the seeds from real
/// files, the fuzzers' minimised corpora and every crash they found) through its target, as
/// the fuzzer ran it: CI replays what was fuzzed, in seconds, without fuzzing. A target with
/// no corpus, or a corpus with no target, fails.
#[test]
fn the_fuzz_corpora_replay_without_a_failure() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels-tests/fuzz");
    let mut folders: Vec<String> = std::fs::read_dir(root.join("corpus")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    folders.sort();
    let mut names: Vec<String> = targets::TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(folders, names, "one corpus folder per target");
    for (name, target) in targets::TARGETS {
        assert!(root.join("fuzz_targets").join(format!("{name}.rs")).is_file(), "no fuzz binary for {name}");
        let mut files: Vec<_> = std::fs::read_dir(root.join("corpus").join(name)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        assert!(!files.is_empty(), "{name}: an empty corpus");
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            if std::panic::catch_unwind(|| target(&bytes)).is_err() {
                panic!("{name}: {} fails its target (replay it with `cargo fuzz run --fuzz-dir kernels-tests/fuzz {name} {}`)", file.display(), file.display());
            }
        }
    }
}

/// Writes the fuzz corpora's seeds (`seed-*` files) from vaegan's own writers: every preset's
/// TOML, a real checkpoint, classifier, prior and attribute-vector file, side files and an
/// events file as a run writes them, IDX files raw and gzipped, labels files, URLs. The image
/// seeds (PNG in every colour type and depth, baseline and progressive JPEG) come from
/// Pillow (kernels-tests/fuzz/README.md). Run it after a format changes:
/// `cargo test --test kernels -- --ignored write_the_fuzz_seeds`.
#[test]
#[ignore = "writes into kernels-tests/fuzz/corpus"]
fn write_the_fuzz_seeds() {
    use vaegan::model::attributes::AttributeVectors;
    use vaegan::model::prior::GaussianMixture;
    use vaegan::quality::classifier::{ConvLayer, Head, Spec};
    use vaegan::quality::ClassifierWeights;
    use vaegan::train::tensorboard;

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels-tests/fuzz/corpus");
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };
    let keep = |step: u64, rest: &[u8]| [&step.to_le_bytes()[..], rest].concat();

    let raw = crate::data::idx_bytes(&[3, 4, 5], &(0..60).collect::<Vec<u8>>());
    put("idx", "images-3x4x5", &raw);
    put("idx", "images-3x4x5.gz", &crate::data::gz(&raw));
    put("idx", "labels-7", &crate::data::idx_bytes(&[7], &[1, 2, 3, 4, 5, 6, 7]));
    let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist/t10k-labels.idx1-ubyte.gz");
    put("idx", "t10k-labels.idx1-ubyte.gz", &std::fs::read(mnist).unwrap());

    for preset in ["mnist-mlp", "mnist-conv", "shapes32", "celeba64", "seed", "pytorch-vae"] {
        put("config_toml", &format!("{preset}.toml"), RunConfig::preset(preset).unwrap().to_toml().as_bytes());
    }
    put("config_toml", "tiny.toml", crate::interrupt::TINY_TOML.as_bytes());

    // Checkpoints of the smallest models of both architectures (an MLP on 4×4 images, a conv
    // net with batch norm on 8×8): kilobytes, so that the fuzzer runs thousands a second.
    let mlp = "preset = \"mnist-mlp\"\n[model]\ninput = 16\nimage = [4, 4, 1]\nencoder = [4]\nlatent = 2\ndecoder = [4]\ndiscriminator = [4]\n";
    let conv = "preset = \"mnist-conv\"\n[model]\ninput = 64\nimage = [8, 8, 1]\nencoder = [2, 2]\nencoder_dense = [4]\nlatent = 2\ndecoder = [2, 2]\ndiscriminator = [2, 2]\ndiscriminator_dense = [4]\nlatent_adversary = 0.0\n";
    for (name, toml) in [("mlp-4x4", mlp), ("conv-8x8", conv)] {
        let mut c = crate::hostile::tiny_checkpoint();
        c.config = RunConfig::from_toml(toml, "seed.toml").unwrap();
        let filled = |shapes: Vec<(String, [usize; 2])>, v: f32| shapes.into_iter().map(|(n, s)| (n, s, vec![v; s[0] * s[1]])).collect::<Vec<_>>();
        c.params = filled(vaegan::model::param_shapes(&c.config.model).unwrap(), 0.01);
        c.adam_m = c.params.clone();
        c.adam_v = c.params.clone();
        c.state = filled(vaegan::model::state_shapes(&c.config.model).unwrap(), 1.0);
        let bytes = c.to_bytes().unwrap();
        Checkpoint::from_bytes(&bytes, Path::new("seed.safetensors")).unwrap_or_else(|e| panic!("the {name} seed is refused: {e}"));
        put("checkpoint", &format!("{name}.safetensors"), &bytes);
    }

    let dir = tempfile::tempdir().unwrap();
    let saved = |name: &str| -> Vec<u8> { std::fs::read(dir.path().join(name)).unwrap() };
    let head = |name: &str, classes: &[&str]| {
        let classes: Vec<String> = classes.iter().map(|c| c.to_string()).collect();
        Head { name: name.into(), classes: classes.clone(), attributes: classes, binary: false }
    };
    let colour = Spec {
        image: [6, 5, 3],
        conv: vec![ConvLayer { channels: 3, kernel: 3, stride: 2, batch_norm: true }, ConvLayer { channels: 2, kernel: 3, stride: 1, batch_norm: false }],
        pool: true,
        dense: vec![4],
        heads: vec![head("shape", &["circle", "square", "triangle"]), head("colour", &["red", "blue"])],
    };
    let grey = Spec { image: [4, 4, 1], conv: vec![], pool: false, dense: vec![5, 3], heads: vec![head("class", &["0", "1", "2"])] };
    for (name, spec) in [("colour", colour), ("grey", grey)] {
        ClassifierWeights::untrained(spec, 1).unwrap().save(&dir.path().join(name)).unwrap();
        put("classifier", &format!("{name}.safetensors"), &saved(name));
    }

    let mixture = GaussianMixture {
        latent: 3,
        weights: vec![0.25, 0.75],
        means: vec![0.0, 1.0, -1.0, 0.5, 0.5, 2.0],
        variances: vec![1.0, 0.5, 2.0, 0.1, 1.0, 1.0],
        step: 40,
    };
    mixture.save(&dir.path().join("prior")).unwrap();
    put("prior", "k2-latent3.safetensors", &saved("prior"));

    let vectors = AttributeVectors {
        names: vec!["red".into(), "circle".into()],
        latent: 3,
        vectors: vec![0.5, -0.25, 1.0, 0.0, 2.0, -1.0],
        with: vec![10, 4],
        without: vec![30, 36],
        step: 40,
    };
    vectors.save(&dir.path().join("attributes")).unwrap();
    put("attributes", "red-circle.safetensors", &saved("attributes"));

    put("labels_csv", "factors.csv", b"file,shape,colour,background,x,y,size,angle\nshape_00000.png,square,cyan,white,0.6765,0.6642,0.3022,1.6880\nshape_00001.png,square,magenta,black,0.7460,0.5150,0.2478,5.1952\nshape_00002.png,circle,red,grey,0.25,0.5,0.3,0\n");
    put(
        "labels_csv",
        "quoted.csv",
        b"file,shape,colour,x,glasses\nshape_00000.png,circle,red,0.25,1\nshape_00001.png,square,\"blue\",0.5,0\nshape_00002.png,circle,green,1e3,1\n",
    );
    put(
        "labels_celeba",
        "list_attr_celeba.txt",
        b"3\n5_o_Clock_Shadow Eyeglasses Male  Smiling\n000001.jpg -1 -1  1  1\n000002.jpg -1  1 -1  1\n000003.jpg  1 -1 -1 -1\n",
    );

    let losses = "step,kl,llike\n10,1.5,2.25\n20,1.25,2\n30,,1.5\n";
    put("csv_logs", "losses", &keep(20, losses.as_bytes()));
    put("csv_logs", "losses-cut", &keep(30, b"step,kl,llike\n10,1.5,2.25\n20,1.25,2\n30,1.1"));
    let metrics = format!("{}\n1,100,12.5,8,1.5,2.25,140.5,120.25,20.25,0.05,0.75,30.5\n2,200,25,8,1.25,2,130,110,20,0.04,0.8,\n", targets::METRICS_HEADER);
    put("csv_logs", "metrics", &keep(2, metrics.as_bytes()));
    put("csv_logs", "metrics-old-header", &keep(1, b"epoch,step,seconds\n1,100,12.5\n"));

    let mut events = vec![];
    for event in [
        tensorboard::scalars(10, &[("loss/kl".into(), 1.5), ("loss/llike".into(), 2.25)]),
        tensorboard::image(20, "samples", b"\x89PNG not really".to_vec(), (2, 2, 1)),
        tensorboard::text(30, "config", "```toml\npreset = \"mnist-mlp\"\n```"),
    ] {
        use prost::Message;
        events.extend(tensorboard::record(&event.encode_to_vec()));
    }
    put("events", "three-summaries", &keep(20, &events));
    put("events", "cut", &keep(30, &events[..events.len() - 5]));

    for (name, url) in [
        ("root", "/"),
        ("app", "/app.js?v=3"),
        ("pkg", "/pkg/vaegan_bg.wasm"),
        ("mnist", "/datasets/mnist/train-images.idx3-ubyte.gz#x"),
        ("up", "/pkg/../Cargo.toml"),
    ] {
        put("web_route", name, url.as_bytes());
    }
}

/// A TensorBoard record whose length field (with a valid checksum) claims nearly 2^64 bytes
/// ends the reading like a cut record; the sum of offset and length used to overflow.
#[test]
fn an_events_record_claiming_an_overflowing_length_ends_the_reading() {
    use vaegan::train::tensorboard;
    let masked = |b: &[u8]| crc32c::crc32c(b).rotate_right(15).wrapping_add(0xa282_ead8);
    let good = tensorboard::record(b"a summary");
    for len in [u64::MAX, u64::MAX - 11, u64::MAX - 15, 1 << 62] {
        let mut bytes = good.clone();
        let len_bytes = len.to_le_bytes();
        bytes.extend_from_slice(&len_bytes);
        bytes.extend_from_slice(&masked(&len_bytes).to_le_bytes());
        bytes.extend_from_slice(&[0; 32]);
        assert_eq!(tensorboard::read_records(&bytes), vec![&b"a summary"[..]], "length {len}");
    }
}

/// `vaegan web` serves its two page files and plain names under /pkg/ and /datasets/mnist/;
/// nothing else, however spelt, reaches the disk.
#[test]
fn web_requests_reach_only_plain_file_names() {
    use vaegan::cli::web::{route, Route};
    assert!(matches!(route("/"), Route::Page(_, "index.html")) && matches!(route("/index.html?x=1"), Route::Page(_, "index.html")));
    assert!(matches!(route("/app.js#top"), Route::Page(_, "app.js")));
    assert_eq!(route("/pkg/vaegan_bg.wasm?v=2"), Route::Pkg("vaegan_bg.wasm"));
    assert_eq!(route("/datasets/mnist/t10k-images.idx3-ubyte.gz"), Route::Mnist("t10k-images.idx3-ubyte.gz"));
    for url in ["/pkg/../Cargo.toml", "/pkg/", "/pkg/.hidden", "/pkg/a/b.js", "/datasets/mnist/..", "/datasets/mnist/%2e%2e/x", "/etc/passwd", "", "/pkg/a\\b"]
    {
        assert_eq!(route(url), Route::NotFound, "{url:?}");
    }
}

//! The bodies of the coverage-guided fuzz targets (`fuzz_targets/*.rs`, one per parser), shared
//! with the corpus replay test (`kernels-tests/fuzz.rs`), which runs every file of
//! `corpus/<target>/` through the same function on every CI run.
//!
//! Each target feeds bytes to a parser the way vaegan reads a user's file and checks, beyond
//! "no panic, no hang, no runaway allocation" (libFuzzer's own checks), that what a parser
//! accepts is consistent: the property a later stage relies on.
#![allow(dead_code)]

use std::path::Path;

use vaegan::checkpoint::Checkpoint;
use vaegan::data::images::{self, Crop, ImageOptions};
use vaegan::data::{idx, labels};
use vaegan::model::attributes::AttributeVectors;
use vaegan::model::prior::GaussianMixture;
use vaegan::model::RunConfig;
use vaegan::quality::ClassifierWeights;
use vaegan::train::logs::CsvLog;
use vaegan::train::tensorboard;

/// A target's body: bytes in, a panic where a property fails.
pub type Target = fn(&[u8]);

/// Every target by the name of its fuzz binary and corpus folder.
pub const TARGETS: [(&str, Target); 12] = [
    ("idx", idx),
    ("image", image),
    ("config_toml", config_toml),
    ("checkpoint", checkpoint),
    ("classifier", classifier),
    ("prior", prior),
    ("attributes", attributes),
    ("labels_csv", labels_csv),
    ("labels_celeba", labels_celeba),
    ("csv_logs", csv_logs),
    ("events", events),
    ("web_route", web_route),
];

/// An IDX file, raw or gzipped (`data::idx::from_bytes`, as `--data` reads MNIST).
pub fn idx(data: &[u8]) {
    if let Ok(v) = idx::from_bytes(data, Path::new("fuzz.idx")) {
        assert_eq!(v.data.len(), v.dims.iter().product::<usize>(), "an accepted IDX file holds what its header declares");
    }
}

/// A PNG or JPEG file through the folder loader: decoded (the size guard before any
/// allocation), then cropped and scaled to a grey 28×28 and a colour 32×32 image.
pub fn image(data: &[u8]) {
    let path = Path::new("fuzz.png");
    if let Ok(d) = images::decode_bytes(path, data) {
        assert_eq!(d.pixels.len(), d.width * d.height * d.channels, "a decoded image is width × height × channels");
        for o in [ImageOptions::grey(28), ImageOptions { height: 32, width: 32, channels: 3, crop: Crop::Centre }] {
            let d = images::Decoded { width: d.width, height: d.height, channels: d.channels, pixels: d.pixels.clone() };
            if let Ok(p) = images::preprocess(path, d, &o) {
                assert_eq!(p.len(), o.dim(), "a preprocessed image has the requested size");
            }
        }
    }
}

/// A run's TOML config (`--config`): an accepted one is valid and survives its own TOML.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(c) = RunConfig::from_toml(text, "fuzz.toml") {
        c.validate().expect("an accepted config is valid");
        let again = RunConfig::from_toml(&c.to_toml(), "again.toml").expect("a config reads back its own TOML");
        assert_eq!(again.to_toml(), c.to_toml(), "the TOML round trip keeps every key");
    }
}

/// A checkpoint (safetensors with vaegan's metadata), as `--checkpoint` and resuming read it.
pub fn checkpoint(data: &[u8]) {
    if let Ok(c) = Checkpoint::from_bytes(data, Path::new("fuzz.safetensors")) {
        assert!(c.params.iter().all(|(_, _, v)| v.iter().all(|x| x.is_finite())), "an accepted checkpoint's weights are finite");
        c.config.validate().expect("an accepted checkpoint's config is valid");
    }
}

/// A classifier file (`eval --classifier`).
pub fn classifier(data: &[u8]) {
    if let Ok(w) = ClassifierWeights::from_bytes(data.to_vec(), Path::new("fuzz.safetensors")) {
        assert!(w.tensors.iter().all(|(_, s, v)| v.len() == s[0] * s[1] && v.iter().all(|x| x.is_finite())), "accepted weights are finite and shaped");
        assert!(!w.spec.heads.is_empty() && w.spec.heads.iter().all(|h| h.classes.len() >= 2));
    }
}

/// A fitted prior (`sample --prior`): an accepted mixture samples finite codes.
pub fn prior(data: &[u8]) {
    if let Ok(m) = GaussianMixture::from_bytes(data.to_vec(), Path::new("fuzz.safetensors")) {
        assert_eq!((m.means.len(), m.variances.len()), (m.k() * m.latent, m.k() * m.latent));
        let z = m.sample(4, 1);
        assert!(z.len() == 4 * m.latent && z.iter().all(|v| v.is_finite()), "an accepted prior samples finite codes");
    }
}

/// Attribute vectors (`edit`).
pub fn attributes(data: &[u8]) {
    if let Ok(a) = AttributeVectors::from_bytes(data.to_vec(), Path::new("fuzz.safetensors")) {
        let n = a.names.len();
        assert!(a.vectors.len() == n * a.latent && a.with.len() == n && a.without.len() == n);
        assert!(a.vectors.iter().all(|v| v.is_finite()));
    }
}

/// What an accepted labels table must be: a 0/1 row per listed file, unique names.
pub fn check_table(t: &labels::LabelTable) {
    assert_eq!(t.values.len(), t.files.len() * t.names.len());
    assert!(t.values.iter().all(|&v| v <= 1));
    let mut names = t.names.clone();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), t.names.len(), "unique names: {:?}", t.names);
}

/// A labels CSV beside an image folder (`factors.csv`; categorical columns one-hot).
pub fn labels_csv(data: &[u8]) {
    if let Ok(t) = labels::parse_csv(Path::new("fuzz.csv"), data) {
        check_table(&t);
    }
}

/// CelebA's `list_attr_celeba.txt`.
pub fn labels_celeba(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(t) = labels::parse_celeba(Path::new("fuzz.txt"), text) {
        check_table(&t);
    }
}

/// A run's side files' headers (src/train/run.rs) for a model with two losses.
pub const LOSSES_HEADER: &str = "step,kl,llike";
pub const METRICS_HEADER: &str = "epoch,step,seconds,samples_per_s,train_kl,train_llike,test_nelbo,test_bce,test_kl,test_mse,d_accuracy,fd_samples";

/// `losses.csv` / `metrics.csv` repaired on resume: the first 8 bytes choose the step the
/// checkpoint reached, the rest is the file. The kept rows rise strictly to at most that
/// step, and the repaired file reads back as the same rows with nothing left to repair.
pub fn csv_logs(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let keep = u64::from_le_bytes(data[..8].try_into().unwrap()) % 1_000_000;
    let text = String::from_utf8_lossy(&data[8..]);
    for header in [LOSSES_HEADER, METRICS_HEADER] {
        let log = CsvLog::new("fuzz.csv".into(), header.to_string());
        let (rows, repair) = log.read_rows(&text, keep);
        assert!(rows.windows(2).all(|w| w[0].0 < w[1].0) && rows.iter().all(|r| r.0 <= keep), "kept rows rise to the checkpoint");
        let columns = header.split(',').count();
        assert!(rows.iter().all(|r| r.1.len() + 1 == columns));
        let rendered = log.render(&rows);
        let (again, repair_again) = log.read_rows(&rendered, keep);
        assert!(repair_again.is_none(), "a repaired file needs no repair: {rendered:?}");
        assert_eq!(log.render(&again), rendered, "a repaired file reads back as the same rows");
        if repair.is_none() {
            assert_eq!(rows.len(), again.len());
        }
    }
}

/// A TensorBoard events file on resume: the first 8 bytes choose the step, the rest is the
/// old file. What is kept are whole records, and keeping again keeps them all.
pub fn events(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let keep = u64::from_le_bytes(data[..8].try_into().unwrap());
    let (kept, n) = tensorboard::kept_summaries(&data[8..], keep);
    assert_eq!(tensorboard::read_records(&kept).len(), n, "the kept bytes are {n} whole records");
    let (again, m) = tensorboard::kept_summaries(&kept, keep);
    assert_eq!((again, m), (kept, n), "keeping is idempotent");
}

/// A request URL to `vaegan web`: only a plain name (no folder, no dot-file) reaches the disk.
pub fn web_route(data: &[u8]) {
    let Ok(url) = std::str::from_utf8(data) else { return };
    use vaegan::cli::web::Route;
    if let Route::Pkg(name) | Route::Mnist(name) = vaegan::cli::web::route(url) {
        assert!(!name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0']), "{url:?} reaches the file {name:?}");
        assert_eq!(Path::new(name).components().count(), 1, "{url:?}");
    }
}

//! Data readers on good and bad files, and the GPU gather kernel against its twin.

use std::io::Write;
use std::path::{Path, PathBuf};

use vaegan::data::gpu::GpuDataset;
use vaegan::data::{idx, images, Dataset};
use vaegan::reference;
use vaegan::types::Scaling;

use crate::common::*;

pub fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn idx_reads_raw_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
    let raw = idx_bytes(&[2, 3, 4], &data);
    for (name, bytes) in [("a.idx", raw.clone()), ("a.idx.gz", gz(&raw))] {
        let got = idx::read(&write(dir.path(), name, &bytes)).unwrap();
        assert_eq!(got.dims, vec![2, 3, 4]);
        assert_eq!(got.data, data);
    }
    let labels = write(dir.path(), "l.idx", &idx_bytes(&[2], &[3, 7]));
    let images = write(dir.path(), "i.idx", &raw);
    let set = idx::load_images(&images, Some(&labels)).unwrap();
    assert_eq!((set.count, set.height, set.width), (2, 3, 4));
    assert_eq!(set.labels, Some(vec![3, 7]));
}

#[test]
fn mnist_copies_are_checksummed() {
    let dir = tempfile::tempdir().unwrap();
    let fake = write(dir.path(), "t10k-labels.idx1-ubyte.gz", &gz(&idx_bytes(&[2], &[1, 2])));
    let err = idx::read(&fake).unwrap_err().to_string();
    assert!(err.contains("SHA-256") && err.contains("damaged"), "{err}");
}

#[test]
fn shipped_mnist_loads_with_its_checksums() {
    let split = vaegan::data::load(&shipped_mnist(), 28, 0).unwrap();
    assert_eq!((split.train.count, split.test.count, split.train.height, split.train.width), (60_000, 10_000, 28, 28));
    assert_eq!(split.train.labels.as_ref().unwrap().len(), 60_000);
    // The first training label of MNIST is a 5.
    assert_eq!(split.train.labels.as_ref().unwrap()[0], 5);
}

pub fn shipped_mnist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist")
}

pub fn write_png(path: &Path, w: u32, h: u32, color: png::ColorType, data: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut e = png::Encoder::new(std::io::BufWriter::new(f), w, h);
    e.set_color(color);
    e.set_depth(png::BitDepth::Eight);
    e.write_header().unwrap().write_image_data(data).unwrap();
}

#[test]
fn png_folders_load_by_the_stated_rule() {
    let dir = tempfile::tempdir().unwrap();
    // 56×60 grey images: centre-cropped to 56×56, then each 2×2 block averaged.
    for i in 0..10u32 {
        let (w, h) = (56, 60);
        let px: Vec<u8> = (0..w * h).map(|k| if (k / w) % 2 == 0 { 200 } else { 100 + i as u8 }).collect();
        write_png(&dir.path().join(format!("{i:02}.png")), w, h, png::ColorType::Grayscale, &px);
    }
    let split = images::load_folder(dir.path(), 28, 1).unwrap();
    assert_eq!((split.train.count, split.test.count), (9, 1));
    assert_eq!((split.train.height, split.train.width), (28, 28));
    // Rows 2..58 of the source are kept; each output pixel averages one 200-row and one 10x-row.
    for set in [&split.train, &split.test] {
        for i in 0..set.count {
            let img = set.image(i);
            assert!(img.iter().all(|&p| p == img[0]) && (150..=155).contains(&img[0]), "{:?}", &img[..4]);
        }
    }
    // RGB becomes grey by Rec. 601 luma.
    let rgb = tempfile::tempdir().unwrap();
    for i in 0..2 {
        write_png(&rgb.path().join(format!("{i}.png")), 28, 28, png::ColorType::Rgb, &[255, 0, 0].repeat(28 * 28));
    }
    let split = images::load_folder(rgb.path(), 28, 1).unwrap();
    assert!(split.train.images.iter().all(|&p| p == 76), "0.299·255 = 76");
}

#[test]
fn gather_matches_twin() {
    let mut rng = rng("gather_matches_twin");
    let (count, dim) = (37, 13);
    let pixels: Vec<u8> = uniform(&mut rng, count * dim, 0.0, 256.0).iter().map(|&v| v as u8).collect();
    let labels: Vec<u8> = (0..count).map(|i| (i * 7 % 10) as u8).collect();
    let set = Dataset { images: pixels.clone(), labels: Some(labels.clone()), count, height: 1, width: dim, source: "test".into() };
    let gd = GpuDataset::upload(gpu(), &set).unwrap();
    let perm: Vec<u32> = vaegan::train::permutation(3, 0, count);
    let pb = gd.permutation_buffer(gpu()).unwrap();
    gpu().write_u32(&pb, &perm).unwrap();
    for (batch, start, scaling) in [(1, 0, Scaling::UNIT), (5, 30, Scaling::SYMMETRIC), (8, 7, Scaling { binarize: true, ..Scaling::UNIT })] {
        let out = poisoned(batch * dim);
        let l = gd.gather(gpu(), &pb, batch, start, scaling, &out).unwrap();
        gpu().run([&l]).unwrap();
        let want = reference::data::gather(&pixels, dim, &perm, batch, start, scaling);
        assert_close(&format!("gather batch {batch} at {start}"), &download(&out), &want, 1e-6);
        let onehot = poisoned(batch * 10);
        let l = gd.gather_labels(gpu(), &pb, batch, start, 10, &onehot).unwrap();
        gpu().run([&l]).unwrap();
        let want = reference::data::gather_labels(&labels, &perm, batch, start, 10);
        assert_close(&format!("gather_labels batch {batch} at {start}"), &download(&onehot), &want, 0.0);
    }
}

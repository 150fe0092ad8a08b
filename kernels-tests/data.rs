//! Data readers on good and bad files (IDX, PNG and JPEG folders, the decoded-image
//! cache), and the GPU gather kernel against its twin. The readers work on files, so
//! only the gather test also runs in the browser.

#[cfg(not(target_arch = "wasm32"))]
use std::io::Write;
#[cfg(not(target_arch = "wasm32"))]
use std::path::{Path, PathBuf};

use vaegan::data::gpu::GpuDataset;
use vaegan::data::Dataset;
#[cfg(not(target_arch = "wasm32"))]
use vaegan::data::{idx, CacheStatus, Crop, ImageOptions, LoadOptions, Loaded, Split};
use vaegan::reference;
use vaegan::types::Scaling;

use crate::common::*;

#[cfg(not(target_arch = "wasm32"))]
pub fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

#[cfg(not(target_arch = "wasm32"))]
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[cfg(not(target_arch = "wasm32"))]
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[cfg(not(target_arch = "wasm32"))]
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

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn mnist_copies_are_checksummed() {
    let dir = tempfile::tempdir().unwrap();
    let fake = write(dir.path(), "t10k-labels.idx1-ubyte.gz", &gz(&idx_bytes(&[2], &[1, 2])));
    let err = idx::read(&fake).unwrap_err().to_string();
    assert!(err.contains("SHA-256") && err.contains("damaged"), "{err}");
}

#[cfg(not(target_arch = "wasm32"))]
/// Loads a data folder with `image` options and its cache in `cache`.
pub fn load(path: &Path, image: ImageOptions, cache: &Path) -> Result<Loaded, vaegan::data::DataError> {
    vaegan::data::load(path, &LoadOptions { image, seed: 1, cache_dir: Some(cache.to_path_buf()), progress: &|_, _| {}, labels: Default::default() })
}

#[cfg(not(target_arch = "wasm32"))]
pub fn load_mnist() -> Split {
    let dir = tempfile::tempdir().unwrap();
    load(&shipped_mnist(), ImageOptions::grey(28), dir.path()).unwrap().split
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn shipped_mnist_loads_with_its_checksums() {
    let split = load_mnist();
    assert_eq!((split.train.count, split.test.count, split.train.height, split.train.width), (60_000, 10_000, 28, 28));
    assert_eq!(split.train.labels.as_ref().unwrap().len(), 60_000);
    // The first training label of MNIST is a 5.
    assert_eq!(split.train.labels.as_ref().unwrap()[0], 5);
}

#[cfg(not(target_arch = "wasm32"))]
pub fn shipped_mnist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist")
}

#[cfg(not(target_arch = "wasm32"))]
pub fn write_png(path: &Path, w: u32, h: u32, color: png::ColorType, data: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut e = png::Encoder::new(std::io::BufWriter::new(f), w, h);
    e.set_color(color);
    e.set_depth(png::BitDepth::Eight);
    e.write_header().unwrap().write_image_data(data).unwrap();
}

#[cfg(not(target_arch = "wasm32"))]
pub fn write_jpeg(path: &Path, w: u16, h: u16, rgb: &[u8]) {
    jpeg_encoder::Encoder::new_file(path, 95).unwrap().encode(rgb, w, h, jpeg_encoder::ColorType::Rgb).unwrap();
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn png_folders_load_by_the_stated_rule() {
    let (dir, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // 56×60 grey images: centre-cropped to 56×56, then each 2×2 block averaged.
    for i in 0..10u32 {
        let (w, h) = (56, 60);
        let px: Vec<u8> = (0..w * h).map(|k| if (k / w) % 2 == 0 { 200 } else { 100 + i as u8 }).collect();
        write_png(&dir.path().join(format!("{i:02}.png")), w, h, png::ColorType::Grayscale, &px);
    }
    let split = load(dir.path(), ImageOptions::grey(28), cache.path()).unwrap().split;
    assert_eq!((split.train.count, split.test.count), (9, 1));
    assert_eq!(split.train.shape(), [28, 28, 1]);
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
    let split = load(rgb.path(), ImageOptions::grey(28), cache.path()).unwrap().split;
    assert!(split.train.images.iter().all(|&p| p == 76), "0.299·255 = 76");
}

#[cfg(not(target_arch = "wasm32"))]
/// RGB, grey and RGBA PNGs and JPEGs of mixed sizes in nested folders, read as RGB and as
/// grey; the order is the paths' order; Larsen's crop keeps CelebA's face box.
#[test]
fn colour_folders_of_png_and_jpeg_load() {
    let (dir, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::create_dir_all(dir.path().join("b/deeper")).unwrap();
    std::fs::create_dir_all(dir.path().join(".hidden")).unwrap();
    // a.png: RGB red 40×30; b/c.png: grey 90 at 64×64; b/deeper/d.png: RGBA green 17×23 with
    // alpha 0; e.jpg: blue 100×80; f.jpeg: a 178×218 "CelebA" image, white in Larsen's box.
    write_png(&dir.path().join("a.png"), 40, 30, png::ColorType::Rgb, &[255, 0, 0].repeat(40 * 30));
    write_png(&dir.path().join("b/c.png"), 64, 64, png::ColorType::Grayscale, &[90; 64 * 64]);
    write_png(&dir.path().join("b/deeper/d.png"), 17, 23, png::ColorType::Rgba, &[0, 255, 0, 0].repeat(17 * 23));
    write_jpeg(&dir.path().join("e.jpg"), 100, 80, &[0, 0, 255].repeat(100 * 80));
    let celeba: Vec<u8> = (0..218 * 178)
        .flat_map(|i| {
            let (y, x) = (i / 178, i % 178);
            if (40..188).contains(&y) && (15..163).contains(&x) {
                [255, 255, 255]
            } else {
                [0, 0, 0]
            }
        })
        .collect();
    write_jpeg(&dir.path().join("f.jpeg"), 178, 218, &celeba);
    write_png(&dir.path().join(".hidden/x.png"), 2, 2, png::ColorType::Grayscale, &[0; 4]);
    std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();

    let files = vaegan::data::images::list_images(dir.path()).unwrap();
    let names: Vec<String> = files.iter().map(|f| f.strip_prefix(dir.path()).unwrap().display().to_string()).collect();
    assert_eq!(names, ["a.png", "b/c.png", "b/deeper/d.png", "e.jpg", "f.jpeg"], "recursive, path order, hidden skipped");

    let rgb = ImageOptions { height: 16, width: 16, channels: 3, crop: Crop::Centre };
    let all = vaegan::data::images::decode_all(&files, &rgb, &|_| {}).unwrap();
    let px = |i: usize| &all[i * 768..i * 768 + 3];
    assert_eq!(px(0), [255, 0, 0]);
    assert_eq!(px(1), [90, 90, 90], "grey copied to three channels");
    assert_eq!(px(2), [0, 255, 0], "alpha dropped");
    let blue = px(3);
    assert!(blue[0] < 8 && blue[1] < 8 && blue[2] > 247, "JPEG blue within its loss: {blue:?}");
    // The centre crop of f.jpeg is its middle 178×178 (rows 20..198): the top output row
    // averages rows 20..31, partly black above the box.
    let grey = ImageOptions { channels: 1, ..rgb };
    let g = vaegan::data::images::decode_all(&files, &grey, &|_| {}).unwrap();
    assert_eq!(g[0], 76, "red by luma");
    assert!((27..=31).contains(&g[3 * 256]), "blue by luma: 0.114·255 = 29, got {}", g[3 * 256]);
    let larsen = ImageOptions { crop: Crop::Larsen, ..grey };
    let face = vaegan::data::images::decode_all(&files[4..], &larsen, &|_| {}).unwrap();
    assert!(face.iter().all(|&v| v > 240), "the larsen crop is the white box alone: {:?}", &face[..8]);
    let centre = vaegan::data::images::decode_all(&files[4..], &grey, &|_| {}).unwrap();
    assert!(centre[0] < 200, "the centre crop reaches outside the box: {}", centre[0]);
    let err = vaegan::data::images::decode_all(&files[..1], &larsen, &|_| {}).unwrap_err().to_string();
    assert!(err.contains("a.png") && err.contains("178x218"), "{err}");

    // Through `load`: a split of 4 + 1 at the asked shape.
    let split = load(dir.path(), rgb, cache.path()).unwrap().split;
    assert_eq!((split.train.count, split.test.count, split.train.shape()), (4, 1, [16, 16, 3]));
}

#[cfg(not(target_arch = "wasm32"))]
/// The cache: read back on the second load, rebuilt when a source file changes or the
/// preprocessing differs, never reused when its header or length is wrong.
#[test]
fn the_image_cache_is_keyed_by_files_and_preprocessing() {
    let (dir, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for i in 0..3u8 {
        write_png(&dir.path().join(format!("{i}.png")), 8, 8, png::ColorType::Grayscale, &[10 * i; 64]);
    }
    let o = ImageOptions::grey(8);
    let first = load(dir.path(), o, cache.path()).unwrap();
    let Some(CacheStatus::Built(file)) = first.cache else { panic!("first load builds: {:?}", first.cache) };
    assert!(file.starts_with(cache.path()));
    let second = load(dir.path(), o, cache.path()).unwrap();
    assert_eq!(second.cache, Some(CacheStatus::Hit(file.clone())));
    let values = |l: &Loaded| {
        let mut v: Vec<u8> = l.split.train.images.iter().chain(l.split.test.images.iter()).copied().collect();
        v.sort();
        v.dedup();
        v
    };
    assert_eq!(values(&second), [0, 10, 20]);

    // A file rewritten (same name and size, new content and time): a new key, new pixels.
    write_png(&dir.path().join("1.png"), 8, 8, png::ColorType::Grayscale, &[99; 64]);
    let f = std::fs::File::options().write(true).open(dir.path().join("1.png")).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5)).unwrap();
    let third = load(dir.path(), o, cache.path()).unwrap();
    assert!(matches!(&third.cache, Some(CacheStatus::Built(p)) if *p != file), "{:?}", third.cache);
    assert_eq!(values(&third), [0, 20, 99]);

    // Other preprocessing: another cache.
    let rgb = load(dir.path(), ImageOptions { channels: 3, ..o }, cache.path()).unwrap();
    assert!(matches!(rgb.cache, Some(CacheStatus::Built(_))), "{:?}", rgb.cache);

    // A damaged cache file (cut short) is rebuilt, not read.
    let Some(CacheStatus::Built(latest)) = third.cache else { unreachable!() };
    let bytes = std::fs::read(&latest).unwrap();
    std::fs::write(&latest, &bytes[..bytes.len() - 10]).unwrap();
    let again = load(dir.path(), o, cache.path()).unwrap();
    assert_eq!(again.cache, Some(CacheStatus::Built(latest)));
    assert_eq!(values(&again), [0, 20, 99]);
}

gpu_test! {
    async fn gather_matches_twin() {
        let mut rng = rng("gather_matches_twin");
        let (count, dim) = (37, 13);
        let pixels: Vec<u8> = uniform(&mut rng, count * dim, 0.0, 256.0).iter().map(|&v| v as u8).collect();
        let labels: Vec<u8> = (0..count).map(|i| (i * 7 % 10) as u8).collect();
        let set = Dataset { images: pixels.clone().into(), labels: Some(labels.clone()), attributes: None, count, height: 1, width: dim, channels: 1, source: "test".into() };
        let gd = GpuDataset::upload(gpu(), &set).unwrap();
        let perm: Vec<u32> = vaegan::train::permutation(3, 0, count);
        let pb = gd.permutation_buffer(gpu()).unwrap();
        gpu().write_u32(&pb, &perm).unwrap();
        for (batch, start, scaling) in [(1, 0, Scaling::UNIT), (5, 30, Scaling::SYMMETRIC), (8, 7, Scaling { binarize: true, ..Scaling::UNIT })] {
            let out = poisoned(batch * dim);
            let l = gd.gather(gpu(), &pb, batch, start, scaling, &out).unwrap();
            gpu().run([&l]).unwrap();
            let want = reference::data::gather(&pixels, dim, &perm, batch, start, scaling);
            assert_close(&format!("gather batch {batch} at {start}"), &download(&out).await, &want, 1e-6);
            let onehot = poisoned(batch * 10);
            let l = gd.gather_labels(gpu(), &pb, batch, start, 10, &onehot).unwrap();
            gpu().run([&l]).unwrap();
            let want = reference::data::gather_labels(&labels, &perm, batch, start, 10);
            assert_close(&format!("gather_labels batch {batch} at {start}"), &download(&onehot).await, &want, 0.0);
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
/// `make-dataset shapes`: the same images for the same seed, other images for another, the
/// factors recorded, and a folder that loads as a 64×64 colour set; an occupied folder is
/// refused rather than overwritten.
#[test]
fn the_shapes_set_is_deterministic_and_loads() {
    use vaegan::data::shapes;
    let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (dir, seed) in [(a.path(), 7), (b.path(), 7), (c.path(), 8)] {
        assert_eq!(shapes::write(&dir.join("set"), 12, 64, seed).unwrap(), 12);
    }
    let read = |d: &Path, f: &str| std::fs::read(d.join("set").join(f)).unwrap();
    for i in 0..12 {
        let f = format!("shape_{i:05}.png");
        assert_eq!(read(a.path(), &f), read(b.path(), &f), "{f}: same seed, same bytes");
    }
    assert_eq!(read(a.path(), "factors.csv"), read(b.path(), "factors.csv"));
    assert_ne!(read(a.path(), "factors.csv"), read(c.path(), "factors.csv"), "another seed, other factors");
    let csv = String::from_utf8(read(a.path(), "factors.csv")).unwrap();
    assert_eq!(csv.lines().next(), Some("file,shape,colour,background,x,y,size,angle"));
    assert_eq!(csv.lines().count(), 13);
    // Each image holds its background colour in a corner and its shape colour at the centre
    // of a large enough shape.
    let cache = tempfile::tempdir().unwrap();
    let rgb = ImageOptions { height: 64, width: 64, channels: 3, crop: Crop::Centre };
    let split = load(&a.path().join("set"), rgb, cache.path()).unwrap().split;
    assert_eq!((split.train.count + split.test.count, split.train.shape()), (12, [64, 64, 3]));
    let f0 = shapes::factors(7, 0);
    let img = shapes::render(&f0, 64);
    let (cx, cy) = ((f0.x * 64.0) as usize, (f0.y * 64.0) as usize);
    assert_eq!(&img[(cy * 64 + cx) * 3..][..3], &shapes::COLOURS[f0.colour].1);
    let err = shapes::write(&a.path().join("set"), 3, 64, 1).unwrap_err().to_string();
    assert!(err.contains("not empty"), "{err}");
}

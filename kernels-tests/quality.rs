//! Sample-quality measures: the Fréchet distance (exact on known Gaussians; ≈ 0 for a set
//! with itself, small for train vs test, large for noise, growing with blur and noise),
//! the shipped classifier's accuracy, and a short classifier training.

use std::sync::OnceLock;

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand_distr::StandardNormal;
use vaegan::data::Split;
use vaegan::quality::classifier::{Classifier, ClassifierWeights};
use vaegan::quality::{frechet_distance, FeatureStats};
use vaegan::train::eval::scale_images;
use vaegan::types::Scaling;

use crate::common::*;

#[test]
fn frechet_distance_of_known_gaussians() {
    // Diagonal covariances: d² = ‖μ₁ − μ₂‖² + Σ (σ₁ − σ₂)².
    let a = FeatureStats { n: 10, mean: DVector::from_vec(vec![0.0, 1.0, 2.0]), cov: DMatrix::from_diagonal(&DVector::from_vec(vec![1.0, 4.0, 9.0])) };
    let b = FeatureStats { n: 10, mean: DVector::from_vec(vec![1.0, 1.0, 0.0]), cov: DMatrix::from_diagonal(&DVector::from_vec(vec![4.0, 4.0, 1.0])) };
    let want = (1.0 + 0.0 + 4.0) + (1.0f64 + 0.0 + 4.0);
    assert!((frechet_distance(&a, &b) - want).abs() < 1e-9, "{}", frechet_distance(&a, &b));
    assert!(frechet_distance(&a, &a).abs() < 1e-9);
}

fn mnist() -> &'static Split {
    static S: OnceLock<Split> = OnceLock::new();
    S.get_or_init(crate::data::load_mnist)
}

fn shipped() -> ClassifierWeights {
    ClassifierWeights::load(&vaegan::quality::classifier::default_path()).unwrap()
}

fn stats(clf: &mut Classifier, images: &[f32]) -> FeatureStats {
    FeatureStats::from_rows(&clf.read(images).unwrap().features, clf.feature_dim())
}

fn blur(images: &[f32], radius: usize) -> Vec<f32> {
    let mut out = images.to_vec();
    for (img, o) in images.chunks(784).zip(out.chunks_mut(784)) {
        for y in 0..28usize {
            for x in 0..28usize {
                let (mut s, mut n) = (0.0, 0.0);
                for yy in y.saturating_sub(radius)..=(y + radius).min(27) {
                    for xx in x.saturating_sub(radius)..=(x + radius).min(27) {
                        s += img[yy * 28 + xx];
                        n += 1.0;
                    }
                }
                o[y * 28 + x] = s / n;
            }
        }
    }
    out
}

#[test]
fn frechet_distance_behaves_on_mnist() {
    let mut clf = Classifier::with(gpu(), &shipped(), 500).unwrap();
    let n = 2000;
    let test = scale_images(&mnist().test, 0..n, Scaling::UNIT);
    let train = scale_images(&mnist().train, 0..n, Scaling::UNIT);
    let t = stats(&mut clf, &test);
    let itself = frechet_distance(&t, &t);
    assert!(itself.abs() < 1e-6 * t.cov.trace(), "a set with itself: {itself}");
    let floor = frechet_distance(&stats(&mut clf, &train), &t);
    let mut rng = rng("frechet_distance_behaves_on_mnist");
    let noise: Vec<f32> = (0..n * 784).map(|_| rng.random::<f32>()).collect();
    let noise_d = frechet_distance(&stats(&mut clf, &noise), &t);
    // With 2,000 images of 256 features the estimate carries a bias of order d/n, hence a
    // relative bound: train vs test is small next to noise vs test.
    assert!(floor < 0.05 * noise_d, "train vs test {floor}, noise vs test {noise_d}");
    // Worse images, farther: blur radius 0 < 1 < 2, noise σ 0 < 0.2 < 0.5.
    let blurred: Vec<f64> = [1, 2].iter().map(|&r| frechet_distance(&stats(&mut clf, &blur(&train, r)), &t)).collect();
    let noisy: Vec<f64> = [0.2f32, 0.5]
        .iter()
        .map(|&s| {
            let x: Vec<f32> = train.iter().map(|&p| (p + s * rng.sample::<f32, _>(StandardNormal)).clamp(0.0, 1.0)).collect();
            frechet_distance(&stats(&mut clf, &x), &t)
        })
        .collect();
    eprintln!("train {floor:.2}, blur {blurred:?}, noise {noisy:?}, uniform noise {noise_d:.1}");
    assert!(floor < blurred[0] && blurred[0] < blurred[1], "blur: {floor} {blurred:?}");
    assert!(floor < noisy[0] && noisy[0] < noisy[1], "noise: {floor} {noisy:?}");
}

#[test]
fn the_shipped_classifier_reaches_98_percent() {
    let w = shipped();
    assert!(w.test_accuracy >= 0.98 && w.made_by.contains("vaegan classifier"), "{w:?}");
    assert_eq!(w.spec, vaegan::quality::classifier::Spec::mnist(), "the shipped file has no spec: MNIST's");
    let mut clf = Classifier::with(gpu(), &w, 500).unwrap();
    let acc = clf.accuracy(&mnist().test).unwrap().all;
    assert!(acc >= 0.98, "test accuracy {acc}");
}

#[test]
fn the_classifier_trains_with_vaegans_kernels() {
    let small = vaegan::train::limited(Split { train: mnist().train.clone(), test: mnist().test.clone() }, Some(3000), Some(500));
    let mut seen = vec![];
    let w = vaegan::quality::classifier::train(gpu(), &small.train, &small.test, 2, 50, 1e-3, 3, |_, a| seen.push(a.all)).unwrap();
    assert_eq!(seen.len(), 2);
    assert!(w.test_accuracy > 0.85, "after 2 epochs on 3000 images: {}", w.test_accuracy);
}

/// `Evaluator::reconstruct_all` (the reconstructions `vaegan eval --quality` measures)
/// returns every image, a short last batch included, each as `reconstruct` gives it batch by
/// batch.
#[test]
fn reconstruct_all_covers_every_image() {
    use std::sync::Arc;
    let small = vaegan::train::limited(Split { train: mnist().train.clone(), test: mnist().test.clone() }, Some(64), Some(70));
    let mut ev = vaegan::train::eval::Evaluator::new(gpu(), &vaegan::model::ModelConfig::mnist_conv(), 32, 1).unwrap();
    let all = ev.reconstruct_all(&small.test).unwrap();
    assert_eq!(all.len(), 70 * 784);
    assert!(all.iter().all(|p| p.is_finite() && (0.0..=1.0).contains(p)), "reconstructions leave [0, 1]");
    for start in [0, 32, 64] {
        let n = (70 - start).min(32);
        let part = vaegan::data::Dataset { images: Arc::new(small.test.images[start * 784..(start + n) * 784].to_vec()), count: n, ..small.test.clone() };
        let (_, want) = ev.reconstruct(&part, n).unwrap();
        let got: Vec<f64> = all[start * 784..(start + n) * 784].iter().map(|&v| v as f64).collect();
        assert_close(&format!("images {start}..{}", start + n), &got, &want.iter().map(|&v| v as f64).collect::<Vec<_>>(), 1e-6);
    }
}

/// Coverage over heads: every combination of predicted classes counted (head 0 slowest),
/// the entropy of their spread, confidence per head and on all heads; past
/// `MAX_COMBINATIONS` only the per-head figures.
#[test]
fn coverage_counts_combinations_and_confidence_per_head() {
    use vaegan::quality::classifier::{coverage, Head, Spec, MAX_COMBINATIONS};
    let head = |name: &str, k: usize| {
        let classes: Vec<String> = (0..k).map(|c| format!("{name}{c}")).collect();
        Head { name: name.into(), classes: classes.clone(), attributes: classes, binary: false }
    };
    let spec = Spec { image: [4, 4, 3], conv: vec![], pool: false, dense: vec![8], heads: vec![head("a", 2), head("b", 3)] };
    // Four images: (a1, b2) sure, (a1, b2) unsure on b, (a0, b0) sure, (a0, b1) unsure on a.
    let probs = [[0.05, 0.95, 0.0, 0.05, 0.95], [0.0, 1.0, 0.3, 0.2, 0.5], [0.99, 0.01, 0.92, 0.04, 0.04], [0.6, 0.4, 0.0, 1.0, 0.0]].concat();
    let c = coverage(&spec, &probs);
    let mut want = vec![0usize; 6];
    want[3 + 2] = 2;
    want[0] = 1;
    want[1] = 1;
    assert_eq!(c.histogram, want);
    let q = [0.5f64, 0.25, 0.25];
    let entropy: f64 = q.iter().map(|p| -p * p.ln()).sum();
    assert!((c.entropy - entropy).abs() < 1e-12 && (c.uniform_entropy - 6f64.ln()).abs() < 1e-12, "{c:?}");
    assert_eq!(c.head_confident, vec![0.75, 0.75]);
    assert_eq!(c.confident, 0.5);
    // MNIST's one head: the digit histogram.
    let digits = coverage(
        &Spec::mnist(),
        &[[0.0; 10], [0.0; 10]].concat().iter().enumerate().map(|(i, _)| if i == 3 || i == 17 { 1.0 } else { 0.0 }).collect::<Vec<f32>>(),
    );
    assert_eq!(digits.histogram, vec![0, 0, 0, 1, 0, 0, 0, 1, 0, 0]);
    assert!((digits.entropy - 2f64.ln()).abs() < 1e-12 && digits.confident == 1.0);
    // 13 binary heads: 8192 combinations, none counted; each head still scored.
    let many = Spec { heads: (0..13).map(|i| head(&format!("h{i}"), 2)).collect(), ..spec };
    const { assert!(8192 > MAX_COMBINATIONS) };
    let c = coverage(&many, &[0.0, 1.0].repeat(13 * 3));
    assert!(c.histogram.is_empty() && c.entropy == 0.0 && c.head_confident == vec![1.0; 13] && c.confident == 1.0, "{c:?}");
}

/// A labelled colour folder (the shapes set) gets a classifier with a head per factor and
/// convolutions; a short training learns the easy factors (far above chance: background
/// 25 %, colour 17 %); its file keeps the spec and reads the same probabilities back; a
/// classifier of one spec refuses another's weights and images of another shape.
#[test]
fn a_classifier_for_colour_factors_trains_saves_and_refuses_other_shapes() {
    use vaegan::quality::classifier::{train, Spec};
    let (dir, split) = shapes_split(600, 16, 3);
    let spec = Spec::for_data(&split.train).unwrap();
    let heads: Vec<(&str, usize)> = spec.heads.iter().map(|h| (h.name.as_str(), h.classes.len())).collect();
    assert_eq!(heads, [("shape", 3), ("colour", 6), ("background", 4)]);
    assert_eq!((spec.image, spec.conv.len(), spec.pool, spec.feature_dim()), ([16, 16, 3], 5, true, 256));
    let mut seen = vec![];
    let w = train(gpu(), &split.train, &split.test, 3, 32, 2e-3, 1, |_, a| seen.push(a.clone())).unwrap();
    let last = seen.last().unwrap();
    eprintln!("per head {:?}, all {}", last.heads, last.all);
    assert_eq!((seen.len(), w.head_accuracy.clone(), w.test_accuracy), (3, last.heads.clone(), last.all));
    assert!(last.heads[2] > 0.8 && last.heads[1] > 0.5, "background and colour after 3 short epochs: {:?}", last.heads);

    let path = dir.path().join("c.safetensors");
    w.save(&path).unwrap();
    let back = ClassifierWeights::load(&path).unwrap();
    assert_eq!((&back.spec, &back.head_accuracy), (&spec, &w.head_accuracy));
    let images = scale_images(&split.test, 0..split.test.count, Scaling::UNIT);
    let (a, b) = (Classifier::with(gpu(), &w, 64).unwrap().read(&images).unwrap(), Classifier::with(gpu(), &back, 64).unwrap().read(&images).unwrap());
    assert!(a.probs == b.probs && a.features == b.features, "the saved classifier reads otherwise");
    assert_eq!(a.probs.len(), split.test.count * 13);
    for row in a.probs.chunks(13) {
        for (o, k) in [(0, 3), (3, 6), (9, 4)] {
            assert!((row[o..o + k].iter().sum::<f32>() - 1.0).abs() < 1e-5, "a head's probabilities do not sum to 1: {row:?}");
        }
    }
    let mut clf = Classifier::with(gpu(), &w, 64).unwrap();
    let err = clf.load(&shipped()).unwrap_err().to_string();
    assert!(err.contains("another spec"), "{err}");
    let err = clf.check_shape([28, 28, 1], "these images").unwrap_err().to_string();
    assert!(err.contains("reads 16x16x3 images (shape, colour, background); these images are 28x28x1"), "{err}");
}

/// A classifier file whose spec is not JSON, names no head, or disagrees with its tensors
/// is refused with the file and what is wrong named.
#[test]
fn classifier_files_with_a_bad_spec_are_refused() {
    use vaegan::quality::classifier::Spec;
    let dir = tempfile::tempdir().unwrap();
    let w = shipped();
    let write = |name: &str, spec: &str| -> String {
        let path = dir.path().join(name);
        let tensors: Vec<(&str, Vec<usize>, &[f32])> = w.tensors.iter().map(|(n, s, v)| (n.as_str(), s.to_vec(), v.as_slice())).collect();
        vaegan::tensor_file::write(&path, vaegan::quality::classifier::FORMAT, &[("spec", spec.to_string())], &tensors).unwrap();
        let err = ClassifierWeights::load(&path).err().unwrap_or_else(|| panic!("{name}: accepted"));
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        err
    };
    assert!(write("json.safetensors", "{").contains("metadata \"spec\""));
    let no_heads = serde_json::to_string(&Spec { heads: vec![], ..Spec::mnist() }).unwrap();
    assert!(write("heads.safetensors", &no_heads).contains("heads of at least two classes"));
    // A dense layer of width 0 reached the graph, which panics on an empty tensor: found by
    // the `classifier` fuzz target (corpus/classifier/crash-dense-width-0).
    let empty = serde_json::to_string(&Spec { dense: vec![0, 256], ..Spec::mnist() }).unwrap();
    assert!(write("empty.safetensors", &empty).contains("dense layers at least 1 wide"));
    let wider = serde_json::to_string(&Spec { dense: vec![512, 128], ..Spec::mnist() }).unwrap();
    assert!(write("wider.safetensors", &wider).contains("tensor classifier.1.weight has shape [512, 256], expected [512, 128]"));
    let mnist = serde_json::to_string(&Spec::mnist()).unwrap();
    let path = dir.path().join("ok.safetensors");
    let tensors: Vec<(&str, Vec<usize>, &[f32])> = w.tensors.iter().map(|(n, s, v)| (n.as_str(), s.to_vec(), v.as_slice())).collect();
    vaegan::tensor_file::write(&path, vaegan::quality::classifier::FORMAT, &[("spec", mnist)], &tensors).unwrap();
    assert_eq!(ClassifierWeights::load(&path).unwrap().spec, Spec::mnist(), "the same file with its spec spelled out loads");
    // The first colour classifiers spelled a conv layer as its channel count (5×5, stride 2,
    // no batch norm) and had no "pool": such a spec still reads so.
    use vaegan::quality::classifier::ConvLayer;
    let old: Spec = serde_json::from_str(
        r#"{"image":[32,32,3],"conv":[32,64],"dense":[256],"heads":[{"name":"a","classes":["x","y"],"attributes":["x","y"],"binary":false}]}"#,
    )
    .unwrap();
    assert_eq!((old.conv[1], old.pool), (ConvLayer { channels: 64, kernel: 5, stride: 2, batch_norm: false }, false));
    let even = serde_json::to_string(&Spec {
        image: [8, 8, 3],
        conv: vec![ConvLayer { channels: 4, kernel: 4, stride: 1, batch_norm: true }],
        pool: true,
        ..Spec::mnist()
    })
    .unwrap();
    assert!(write("even.safetensors", &even).contains("conv 0: 4×4 stride 1 to 4 channels: expected an odd kernel"));
    let pool = serde_json::to_string(&Spec { pool: true, ..Spec::mnist() }).unwrap();
    assert!(write("pool.safetensors", &pool).contains("the spec has no convolution"));
    // A few bytes of metadata that declare gigabytes of weights, or images past the loader's
    // limit, or sizes whose products overflow, are refused before anything is built: found
    // while the `classifier` fuzz target was written (building allocated the weights first).
    let huge = |spec: Spec| write("huge.safetensors", &serde_json::to_string(&spec).unwrap());
    let err = huge(Spec { dense: vec![1 << 20, 1 << 20], ..Spec::mnist() });
    assert!(err.contains("declare 1100346294282 parameters, more than the file's "), "{err}");
    assert!(huge(Spec { image: [1 << 16, 1 << 16, 1], ..Spec::mnist() }).contains("images over 67108864 pixels"));
    assert!(huge(Spec { image: [1 << 40, 1 << 40, 3], ..Spec::mnist() }).contains("declare more than 2^64"));
}

/// What a conditioned model's labels mean to a classifier (`sample --measure`): a
/// categorical head is conditioned when the model has a label per class, a binary one when
/// it has its attribute; combinations hold what `--condition` fixes and cycle the free
/// heads (the first fastest); two classes of one head, or a label the classifier does not
/// know, are refused; scores count per requested class, on every head, and the cosine of
/// requested and predicted attributes.
#[test]
fn conditioned_samples_are_scored_per_factor_against_their_labels() {
    use vaegan::quality::classifier::{Head, Spec};
    use vaegan::quality::conditioned::{score, ConditionScore, LabelMap};
    let cat = |name: &str, classes: &[&str]| Head {
        name: name.into(),
        classes: classes.iter().map(|c| c.to_string()).collect(),
        attributes: classes.iter().map(|c| c.to_string()).collect(),
        binary: false,
    };
    let glasses = Head { name: "glasses".into(), classes: vec!["not glasses".into(), "glasses".into()], attributes: vec!["glasses".into()], binary: true };
    let spec = Spec {
        image: [4, 4, 3],
        conv: vec![],
        pool: false,
        dense: vec![8],
        heads: vec![cat("shape", &["circle", "square"]), cat("colour", &["red", "green", "blue"]), glasses],
    };
    let names: Vec<String> = ["red", "green", "blue", "circle", "square"].iter().map(|s| s.to_string()).collect();
    let map = LabelMap::new(&spec, &names).unwrap();
    assert_eq!((map.conditioned(0), map.conditioned(1), map.conditioned(2)), (true, true, false), "glasses is not among the model's labels");
    let rows = |v: Vec<f32>| v.chunks(5).map(|r| r.iter().map(|&x| x as u8).collect::<Vec<_>>()).collect::<Vec<_>>();
    // Free: shape fastest, then colour: (circle, red), (square, red), (circle, green), …
    let (all, free) = map.combinations(&names, &[], 7).unwrap();
    assert_eq!(free, [2, 3], "shape, then colour");
    assert_eq!(rows(all), [[1, 0, 0, 1, 0], [1, 0, 0, 0, 1], [0, 1, 0, 1, 0], [0, 1, 0, 0, 1], [0, 0, 1, 1, 0], [0, 0, 1, 0, 1], [1, 0, 0, 1, 0]]);
    let (blue, free) = map.combinations(&names, &["blue"], 3).unwrap();
    assert_eq!(free, [2]);
    assert_eq!(rows(blue), [[0, 0, 1, 1, 0], [0, 0, 1, 0, 1], [0, 0, 1, 1, 0]]);
    let err = map.combinations(&names, &["red", "blue"], 1).unwrap_err().to_string();
    assert!(err.contains("\"blue\" and \"red\" are both classes of \"colour\""), "{err}");
    let err = map.combinations(&names, &["pink"], 1).unwrap_err().to_string();
    assert!(err.contains("\"pink\": the model's labels are red, green, blue, circle, square"), "{err}");
    let err = LabelMap::new(&spec, &["red".into(), "hat".into()]).unwrap_err().to_string();
    assert!(err.contains("conditioned on \"hat\", which the classifier (shape, colour, glasses) does not predict"), "{err}");

    // Two samples asked (circle, red) and (square, blue): the first read right on both, the
    // second right on shape, as green on colour.
    let labels = [1., 0., 0., 1., 0., 0., 0., 1., 0., 1.];
    let probs = [0.9, 0.1, 0.8, 0.1, 0.1, 0.5, 0.5, /**/ 0.2, 0.8, 0.1, 0.6, 0.3, 0.5, 0.5];
    let s = score(&map, &labels, &probs);
    let table = |h: usize| s.heads[h].1.iter().map(|(c, n, k)| (c.as_str(), *n, *k)).collect::<Vec<_>>();
    assert_eq!((s.heads.len(), s.heads[0].0.as_str(), s.heads[1].0.as_str()), (2, "shape", "colour"));
    assert_eq!(table(0), [("circle", 1, 1), ("square", 1, 1)]);
    assert_eq!(table(1), [("red", 1, 1), ("green", 0, 0), ("blue", 1, 0)]);
    assert_eq!((ConditionScore::head_share(&s.heads[0]), ConditionScore::head_share(&s.heads[1]), s.all, s.samples), (1.0, 0.5, 0.5, 2));
    // Predicted attributes over (red, green, blue, circle, square): (.8, .1, .1, .9, .1) and
    // (.1, .6, .3, .2, .8) against (1, 0, 0, 1, 0) and (0, 0, 1, 0, 1).
    let cos = |a: [f64; 5], b: [f64; 5]| {
        a.iter().zip(&b).map(|(x, y)| x * y).sum::<f64>() / (a.iter().map(|x| x * x).sum::<f64>() * b.iter().map(|x| x * x).sum::<f64>()).sqrt()
    };
    let want = (cos([0.8, 0.1, 0.1, 0.9, 0.1], [1., 0., 0., 1., 0.]) + cos([0.1, 0.6, 0.3, 0.2, 0.8], [0., 0., 1., 0., 1.])) / 2.0;
    assert!((s.similarity - want).abs() < 1e-6, "{} vs {want}", s.similarity);
}

/// The shipped shapes classifier (five 3×3 convolutions, a maximum over positions) reads
/// shapes it never saw — 270 drawn from another seed than its training set's — right on
/// every factor: shape included, which the first shipped network read at 59 %.
#[test]
fn the_shipped_shapes_classifier_reads_every_factor_of_new_shapes() {
    let w = ClassifierWeights::load(&vaegan::quality::classifier::default_for([32, 32, 3])).unwrap();
    assert!(w.spec.pool && w.spec.conv.len() == 5 && w.made_by.contains("vaegan classifier"), "{:?} {}", w.spec, w.made_by);
    let (_dir, split) = shapes_split(300, 32, 99);
    let all = split.train;
    let acc = Classifier::with(gpu(), &w, 90).unwrap().accuracy(&all).unwrap();
    eprintln!("{} images: per head {:?}, all {}", all.count, acc.heads, acc.all);
    assert!(acc.heads.iter().all(|&a| a >= 0.98) && acc.all >= 0.97, "{acc:?}");
}

/// `n` generated shapes of side `size` drawn from `seed`, with their factors, loaded and
/// split as training loads them (seed 1); the folder lives as long as the returned dir.
fn shapes_split(n: usize, size: usize, seed: u64) -> (tempfile::TempDir, vaegan::data::Split) {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("shapes");
    vaegan::data::shapes::write(&set, n, size, seed).unwrap();
    let image = vaegan::data::ImageOptions { height: size, width: size, channels: 3, crop: vaegan::data::Crop::Centre };
    let options = vaegan::data::LoadOptions {
        image,
        seed: 1,
        cache_dir: Some(dir.path().join("cache")),
        progress: &|_, _| {},
        labels: vaegan::data::Labels::Required(None),
    };
    let split = vaegan::data::load(&set, &options).unwrap().split;
    (dir, split)
}

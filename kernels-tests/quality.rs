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
    let mut clf = Classifier::new(gpu(), 500, 0).unwrap();
    clf.load(&shipped()).unwrap();
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
    let mut clf = Classifier::new(gpu(), 500, 0).unwrap();
    clf.load(&w).unwrap();
    let acc = clf.accuracy(&mnist().test).unwrap();
    assert!(acc >= 0.98, "test accuracy {acc}");
}

#[test]
fn the_classifier_trains_with_vaegans_kernels() {
    let small = vaegan::train::limited(Split { train: mnist().train.clone(), test: mnist().test.clone() }, Some(3000), Some(500));
    let mut seen = vec![];
    let w = vaegan::quality::classifier::train(gpu(), &small.train, &small.test, 2, 50, 1e-3, 3, |_, a| seen.push(a)).unwrap();
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

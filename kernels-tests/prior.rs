//! The Gaussian-mixture prior (`model::prior`): EM recovers a known mixture, sampling follows
//! it, the file round-trips, and bad files are refused with the file and the field named.

use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use vaegan::model::GaussianMixture;

/// Three well-separated components in 3-D with unequal weights and widths.
fn truth() -> GaussianMixture {
    GaussianMixture {
        latent: 3,
        weights: vec![0.5, 0.3, 0.2],
        means: vec![-4.0, 0.0, 1.0, 3.0, 3.0, -2.0, 0.0, -5.0, 4.0],
        variances: vec![0.25, 1.0, 0.5, 1.0, 0.09, 0.36, 0.64, 0.64, 0.16],
        step: 0,
    }
}

/// Components of `got` matched to `want` by nearest mean.
fn matched(got: &GaussianMixture, want: &GaussianMixture) -> Vec<usize> {
    let d = want.latent;
    (0..want.k())
        .map(|c| {
            (0..got.k())
                .min_by(|&a, &b| {
                    let dist = |i: usize| (0..d).map(|j| (got.means[i * d + j] - want.means[c * d + j]).powi(2)).sum::<f64>();
                    dist(a).partial_cmp(&dist(b)).unwrap()
                })
                .unwrap()
        })
        .collect()
}

#[test]
fn em_recovers_a_known_mixture() {
    let want = truth();
    let codes = want.sample(20_000, 5);
    let (got, fit) = GaussianMixture::fit(&codes, 3, 3, 200, 1).unwrap();
    let m = matched(&got, &want);
    let mut sorted = m.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 3, "two true components matched the same fitted one: {got:?}");
    // 20,000 draws: a weight's standard error is ≤ 0.0035, a mean's ≤ 0.016, a variance's ≤ 2.3 %.
    for (c, &g) in m.iter().enumerate() {
        assert!((got.weights[g] - want.weights[c]).abs() < 0.02, "weight {c}: {} vs {}", got.weights[g], want.weights[c]);
        for j in 0..3 {
            let (gm, wm) = (got.means[g * 3 + j], want.means[c * 3 + j]);
            assert!((gm - wm).abs() < 0.08, "mean {c}.{j}: {gm} vs {wm}");
            let (gv, wv) = (got.variances[g * 3 + j], want.variances[c * 3 + j]);
            assert!((gv / wv - 1.0).abs() < 0.12, "variance {c}.{j}: {gv} vs {wv}");
        }
    }
    // The fit's likelihood is the true mixture's, within sampling noise, and far above a
    // single Gaussian's.
    let truth_ll = want.log_likelihood(&codes);
    assert!((fit.log_likelihood - truth_ll).abs() < 0.02, "{} vs {truth_ll}", fit.log_likelihood);
    let (one, one_fit) = GaussianMixture::fit(&codes, 3, 1, 50, 1).unwrap();
    assert_eq!(one.k(), 1);
    assert!(fit.log_likelihood > one_fit.log_likelihood + 1.0, "{} vs one component {}", fit.log_likelihood, one_fit.log_likelihood);
    assert!(fit.iterations < 200, "EM should settle before its cap: {}", fit.iterations);
}

#[test]
fn sampling_follows_the_mixture_and_its_seed() {
    let gm = truth();
    let n = 40_000;
    let z = gm.sample(n, 9);
    assert_eq!(z.len(), n * 3);
    assert_eq!(z, gm.sample(n, 9), "the same seed draws the same codes");
    assert_ne!(z, gm.sample(n, 10));
    // The mixture's mean and variance per dimension: Σ w m, Σ w (v + m²) − mean².
    for j in 0..3 {
        let want_mean: f64 = (0..3).map(|c| gm.weights[c] * gm.means[c * 3 + j]).sum();
        let want_var: f64 = (0..3).map(|c| gm.weights[c] * (gm.variances[c * 3 + j] + gm.means[c * 3 + j].powi(2))).sum::<f64>() - want_mean.powi(2);
        let col: Vec<f64> = z.iter().skip(j).step_by(3).map(|&v| v as f64).collect();
        let mean = col.iter().sum::<f64>() / n as f64;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard errors: √(var/n) ≤ 0.02 for the mean; the variance within 3 %.
        assert!((mean - want_mean).abs() < 0.08, "dim {j}: mean {mean} vs {want_mean}");
        assert!((var / want_var - 1.0).abs() < 0.03, "dim {j}: variance {var} vs {want_var}");
    }
}

#[test]
fn fit_refuses_what_it_cannot_fit() {
    let err = GaussianMixture::fit(&[0.0; 10], 3, 1, 10, 1).unwrap_err();
    assert!(err.contains("not whole rows of 3"), "{err}");
    let err = GaussianMixture::fit(&[0.0; 6], 3, 5, 10, 1).unwrap_err();
    assert!(err.contains("5 components needs at least 5 codes"), "{err}");
    let err = GaussianMixture::fit(&[0.0, f32::NAN, 1.0], 3, 1, 10, 1).unwrap_err();
    assert!(err.contains("non-finite"), "{err}");
    // Identical codes: the variances stop at their floor instead of collapsing to 0.
    let (gm, fit) = GaussianMixture::fit(&[1.5; 30], 3, 2, 10, 1).unwrap();
    assert!(gm.variances.iter().all(|&v| v > 0.0) && fit.log_likelihood.is_finite(), "{gm:?} {fit:?}");
}

#[test]
fn the_file_round_trips_and_bad_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prior.safetensors");
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let codes: Vec<f32> = (0..3000).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
    let (mut gm, _) = GaussianMixture::fit(&codes, 6, 4, 30, 2).unwrap();
    gm.step = 1234;
    gm.save(&path).unwrap();
    let back = GaussianMixture::load(&path).unwrap();
    // Stored as f32.
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32 as f64).collect::<Vec<_>>();
    assert_eq!((back.latent, back.step, back.k()), (6, 1234, 4));
    assert_eq!((back.means.clone(), back.variances.clone()), (f32s(&gm.means), f32s(&gm.variances)));
    assert!(!dir.path().join("prior.tmp").exists(), "the temporary file is renamed away");

    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, b"not a safetensors file").unwrap();
    let err = GaussianMixture::load(&bad).unwrap_err();
    assert!(err.contains("bad.safetensors") && err.contains("not a readable safetensors file"), "{err}");
    let err = GaussianMixture::load(&dir.path().join("missing.safetensors")).unwrap_err();
    assert!(err.contains("missing.safetensors") && err.contains("cannot read"), "{err}");
    // A safetensors file of something else (a checkpoint-like tensor, no format).
    let other = dir.path().join("other.safetensors");
    let v = [0.5f32; 4];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4], bytemuck::cast_slice(&v)).unwrap();
    std::fs::write(&other, safetensors::tensor::serialize([("weights", view)], None).unwrap()).unwrap();
    let err = GaussianMixture::load(&other).unwrap_err();
    assert!(err.contains("not a vaegan prior") && err.contains("vaegan prior"), "{err}");
    // The right format with broken contents: weights that do not sum to 1, then a negative variance.
    for (weights, variances, expect) in [([0.5f32, 0.1], [1.0f32; 4], "sum to 1"), ([0.5, 0.5], [1.0, -1.0, 1.0, 1.0], "variances must be positive")] {
        let means = [0.0f32; 4];
        let tensors = [("weights", vec![2], &weights[..]), ("means", vec![2, 2], &means[..]), ("variances", vec![2, 2], &variances[..])];
        let views: Vec<_> = tensors
            .iter()
            .map(|(n, s, v)| (n.to_string(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), bytemuck::cast_slice(v)).unwrap()))
            .collect();
        let meta = std::collections::HashMap::from([("format".to_string(), vaegan::model::prior::FORMAT.to_string()), ("step".to_string(), "7".to_string())]);
        std::fs::write(&bad, safetensors::tensor::serialize(views, Some(meta)).unwrap()).unwrap();
        let err = GaussianMixture::load(&bad).unwrap_err();
        assert!(err.contains("bad.safetensors") && err.contains(expect), "{err}");
    }
}

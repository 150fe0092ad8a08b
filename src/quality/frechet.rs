//! The Fréchet distance between two Gaussians fitted to feature sets (Dowson & Landau
//! 1982; FID, Heusel et al. 2017):
//!
//! d² = ‖μ₁ − μ₂‖² + tr(Σ₁) + tr(Σ₂) − 2·tr((Σ₁^½ Σ₂ Σ₁^½)^½)
//!
//! Means and covariances in f64. The square roots are of symmetric positive semi-definite
//! matrices, taken through their eigendecompositions (nalgebra's symmetric eigen solver),
//! negative eigenvalues from rounding clamped to 0. tr((Σ₁^½ Σ₂ Σ₁^½)^½) equals
//! tr((Σ₁Σ₂)^½), the form usually written, without needing a non-symmetric square root.

use nalgebra::{DMatrix, DVector};

#[derive(Clone, Debug)]
pub struct FeatureStats {
    pub n: usize,
    pub mean: DVector<f64>,
    /// Unbiased covariance (divides by n − 1).
    pub cov: DMatrix<f64>,
}

impl FeatureStats {
    /// From `n` feature rows of `dim` values each.
    pub fn from_rows(features: &[f32], dim: usize) -> FeatureStats {
        let n = features.len() / dim;
        assert!(n >= 2, "need at least two feature rows");
        let mut mean = DVector::<f64>::zeros(dim);
        for row in features.chunks_exact(dim) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean /= n as f64;
        let mut centred = DMatrix::<f64>::zeros(n, dim);
        for (i, row) in features.chunks_exact(dim).enumerate() {
            for j in 0..dim {
                centred[(i, j)] = row[j] as f64 - mean[j];
            }
        }
        let cov = centred.transpose() * &centred / (n as f64 - 1.0);
        FeatureStats { n, mean, cov }
    }
}

/// The square root of a symmetric PSD matrix (eigenvalues below 0 clamped).
fn sqrt_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let sym = (m + m.transpose()) * 0.5;
    let eig = sym.symmetric_eigen();
    let roots = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
    &eig.eigenvectors * DMatrix::from_diagonal(&roots) * eig.eigenvectors.transpose()
}

/// d² between the Gaussians fitted to two feature sets.
pub fn frechet_distance(a: &FeatureStats, b: &FeatureStats) -> f64 {
    let diff = &a.mean - &b.mean;
    let s1 = sqrt_psd(&a.cov);
    let inner = &s1 * &b.cov * &s1;
    let inner = (&inner + inner.transpose()) * 0.5;
    let tr_sqrt: f64 = inner.symmetric_eigen().eigenvalues.iter().map(|l| l.max(0.0).sqrt()).sum();
    (diff.dot(&diff) + a.cov.trace() + b.cov.trace() - 2.0 * tr_sqrt).max(0.0)
}

//! A prior fitted after training: a mixture of Gaussians with diagonal covariances, fitted by
//! expectation–maximisation to codes the encoder gives the training images ("ex-post
//! density estimation", Ghosh et al. 2020, *From Variational to Deterministic Autoencoders*,
//! ICLR: fitted after training, it improves the samples of existing VAEs too).
//!
//! Why: the decoder draws well from the codes the encoder gives (reconstructions), but those
//! codes do not fill N(0, I) evenly; a z drawn from N(0, I) often lands between them, where
//! the decoder was never asked for a digit. Sampling from a density fitted to the codes
//! themselves avoids those regions. The mixture is small (k·(2·latent + 1) numbers), so it
//! summarises where codes lie; it does not store them.
//!
//! Stored as safetensors: "weights" [k], "means" [k, latent], "variances" [k, latent], with
//! the checkpoint step it was fitted to in the metadata.

use std::path::Path;

use rand::{Rng, SeedableRng};

use crate::tensor_file::TensorFile;

pub const FORMAT: &str = "vaegan-prior-1";
const KIND: &str = "vaegan prior";
const HINT: Option<&str> = Some("`vaegan prior` writes one");

/// Variances never fall below this: a component on one repeated code would otherwise
/// collapse to zero width and infinite likelihood.
const MIN_VARIANCE: f64 = 1e-6;

#[derive(Clone, Debug, PartialEq)]
pub struct GaussianMixture {
    pub latent: usize,
    /// Mixing weights, summing to 1.
    pub weights: Vec<f64>,
    /// k × latent, row-major.
    pub means: Vec<f64>,
    /// k × latent, row-major.
    pub variances: Vec<f64>,
    /// The step of the checkpoint whose encoder gave the codes.
    pub step: u64,
}

/// What a fit reports: the mean log-likelihood per code under the mixture and under
/// N(0, I), and the iterations taken.
#[derive(Clone, Copy, Debug)]
pub struct Fit {
    pub log_likelihood: f64,
    pub standard_normal_log_likelihood: f64,
    pub iterations: usize,
}

impl GaussianMixture {
    pub fn k(&self) -> usize {
        self.weights.len()
    }

    /// Fits `k` components to `codes` (n × latent) by EM, for at most `iterations` rounds or
    /// until the mean log-likelihood gains less than 1e-6 nats in a round. Means start at
    /// k distinct codes drawn by `seed`, variances at the codes' own, weights equal; a
    /// component that loses every code restarts at a random code.
    pub fn fit(codes: &[f32], latent: usize, k: usize, iterations: usize, seed: u64) -> Result<(Self, Fit), String> {
        if latent == 0 || !codes.len().is_multiple_of(latent) {
            return Err(format!("{} code values are not whole rows of {latent}", codes.len()));
        }
        let n = codes.len() / latent;
        if k == 0 || n < k {
            return Err(format!("a mixture of {k} components needs at least {k} codes (and k ≥ 1); got {n}"));
        }
        if codes.iter().any(|v| !v.is_finite()) {
            return Err("the codes hold non-finite values".into());
        }
        let x: Vec<f64> = codes.iter().map(|&v| v as f64).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut global = vec![0.0; latent];
        let mean: Vec<f64> = (0..latent).map(|j| x.iter().skip(j).step_by(latent).sum::<f64>() / n as f64).collect();
        for row in x.chunks(latent) {
            for j in 0..latent {
                global[j] += (row[j] - mean[j]).powi(2) / n as f64;
            }
        }
        let global: Vec<f64> = global.iter().map(|v| v.max(MIN_VARIANCE)).collect();
        let mut picks: Vec<usize> = rand::seq::index::sample(&mut rng, n, k).into_vec();
        picks.sort_unstable();
        let mut gm = GaussianMixture {
            latent,
            weights: vec![1.0 / k as f64; k],
            means: picks.iter().flat_map(|&i| x[i * latent..(i + 1) * latent].to_vec()).collect(),
            variances: (0..k).flat_map(|_| global.clone()).collect(),
            step: 0,
        };
        let mut last = f64::NEG_INFINITY;
        let mut done = 0;
        for round in 1..=iterations.max(1) {
            // E step: responsibilities, accumulated straight into the M step's sums.
            let (mut nk, mut s1, mut s2) = (vec![0.0; k], vec![0.0; k * latent], vec![0.0; k * latent]);
            let mut ll = 0.0;
            let mut logp = vec![0.0; k];
            let norms = gm.log_norms();
            for row in x.chunks(latent) {
                let top = gm.component_log_densities(row, &norms, &mut logp);
                let total: f64 = logp.iter().map(|l| (l - top).exp()).sum();
                ll += top + total.ln();
                for c in 0..k {
                    let r = (logp[c] - top).exp() / total;
                    if r < 1e-12 {
                        continue;
                    }
                    nk[c] += r;
                    for j in 0..latent {
                        s1[c * latent + j] += r * row[j];
                        s2[c * latent + j] += r * row[j] * row[j];
                    }
                }
            }
            ll /= n as f64;
            // M step.
            for c in 0..k {
                if nk[c] < 1e-8 * n as f64 {
                    let i = rng.random_range(0..n);
                    gm.means[c * latent..(c + 1) * latent].copy_from_slice(&x[i * latent..(i + 1) * latent]);
                    gm.variances[c * latent..(c + 1) * latent].copy_from_slice(&global);
                    gm.weights[c] = 1.0 / n as f64;
                    continue;
                }
                gm.weights[c] = nk[c] / n as f64;
                for j in 0..latent {
                    let m = s1[c * latent + j] / nk[c];
                    gm.means[c * latent + j] = m;
                    gm.variances[c * latent + j] = (s2[c * latent + j] / nk[c] - m * m).max(MIN_VARIANCE);
                }
            }
            let total: f64 = gm.weights.iter().sum();
            gm.weights.iter_mut().for_each(|w| *w /= total);
            done = round;
            if ll - last < 1e-6 {
                break;
            }
            last = ll;
        }
        let log_likelihood = gm.log_likelihood(codes);
        let standard_normal_log_likelihood = -0.5 * x.iter().map(|v| v * v).sum::<f64>() / n as f64 - 0.5 * latent as f64 * (2.0 * std::f64::consts::PI).ln();
        Ok((gm, Fit { log_likelihood, standard_normal_log_likelihood, iterations: done }))
    }

    /// log w_c − ½ Σ_j ln(2π v_cj) per component.
    fn log_norms(&self) -> Vec<f64> {
        (0..self.k())
            .map(|c| {
                self.weights[c].max(1e-300).ln()
                    - 0.5 * self.variances[c * self.latent..(c + 1) * self.latent].iter().map(|v| (2.0 * std::f64::consts::PI * v).ln()).sum::<f64>()
            })
            .collect()
    }

    /// Fills `out` with log(w_c · N(row; m_c, v_c)) and returns their maximum.
    fn component_log_densities(&self, row: &[f64], norms: &[f64], out: &mut [f64]) -> f64 {
        let d = self.latent;
        let mut top = f64::NEG_INFINITY;
        for c in 0..self.k() {
            let (m, v) = (&self.means[c * d..(c + 1) * d], &self.variances[c * d..(c + 1) * d]);
            let q: f64 = row.iter().zip(m).zip(v).map(|((x, m), v)| (x - m) * (x - m) / v).sum();
            out[c] = norms[c] - 0.5 * q;
            top = top.max(out[c]);
        }
        top
    }

    /// Mean log-density of `codes` (n × latent) under the mixture, in nats.
    pub fn log_likelihood(&self, codes: &[f32]) -> f64 {
        let norms = self.log_norms();
        let mut logp = vec![0.0; self.k()];
        let n = codes.len() / self.latent;
        let mut ll = 0.0;
        for row in codes.chunks(self.latent) {
            let row: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            let top = self.component_log_densities(&row, &norms, &mut logp);
            ll += top + logp.iter().map(|l| (l - top).exp()).sum::<f64>().ln();
        }
        ll / n.max(1) as f64
    }

    /// `n` codes drawn from the mixture by `seed` (n × latent).
    pub fn sample(&self, n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let picker = rand::distr::weighted::WeightedIndex::new(&self.weights).expect("weights are positive and finite");
        let mut out = Vec::with_capacity(n * self.latent);
        for _ in 0..n {
            let c = rng.sample(&picker);
            for j in 0..self.latent {
                let e: f64 = rng.sample(rand_distr::StandardNormal);
                out.push((self.means[c * self.latent + j] + self.variances[c * self.latent + j].sqrt() * e) as f32);
            }
        }
        out
    }

    /// Writes the mixture as safetensors, atomically (a temporary file, then a rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let (k, d) = (self.k(), self.latent);
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let (w, m, v) = (f32s(&self.weights), f32s(&self.means), f32s(&self.variances));
        let tensors = [("weights", vec![k], &w[..]), ("means", vec![k, d], &m[..]), ("variances", vec![k, d], &v[..])];
        crate::tensor_file::write(path, FORMAT, &[("step", self.step.to_string())], &tensors)
    }

    /// Reads a mixture written by `save`; every problem is an error naming the file and what
    /// was expected.
    pub fn load(path: &Path) -> Result<Self, String> {
        Self::from_file(TensorFile::read(path, FORMAT, KIND, HINT)?)
    }

    /// `load` of a file's bytes (`path` names it in errors).
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Self, String> {
        Self::from_file(TensorFile::parse(bytes, path, FORMAT, KIND, HINT)?)
    }

    fn from_file(file: TensorFile) -> Result<Self, String> {
        let step = file.meta.get("step").and_then(|s| s.parse().ok()).ok_or_else(|| file.fail("metadata \"step\" is missing or not a number"))?;
        let read = |name: &str| file.tensor(name).map(|(shape, v)| (shape, v.into_iter().map(f64::from).collect::<Vec<f64>>()));
        let (ws, weights) = read("weights")?;
        let (ms, means) = read("means")?;
        let (vs, variances) = read("variances")?;
        let k = weights.len();
        if ws != [k] || k == 0 || ms.len() != 2 || ms[0] != k || ms[1] == 0 || vs != ms {
            return Err(file.fail(format!("shapes weights {ws:?}, means {ms:?}, variances {vs:?}: expected [k], [k, latent], [k, latent] with k, latent ≥ 1")));
        }
        if weights.iter().any(|&w| w <= 0.0) || (weights.iter().sum::<f64>() - 1.0).abs() > 1e-4 {
            return Err(file.fail("the weights must be positive and sum to 1"));
        }
        if variances.iter().any(|&v| v <= 0.0) {
            return Err(file.fail("the variances must be positive"));
        }
        Ok(GaussianMixture { latent: ms[1], weights, means, variances, step })
    }
}

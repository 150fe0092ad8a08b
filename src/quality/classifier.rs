//! The MNIST classifier that measures sample quality: an MLP 784→512→256→10 (ReLU), trained
//! by vaegan's own engine with the softmax cross-entropy kernel. Its 256 penultimate
//! activations are the features of the Fréchet distance.

use std::path::Path;

use crate::data::gpu::GpuDataset;
use crate::data::Dataset;
use crate::gpu::Gpu;
use crate::graph::{ExecOptions, GpuExecutor, Graph, LossKind, TensorId};
use crate::nn::Mlp;
use crate::train::eval::scale_images;
use crate::train::{permutation, Result, TrainError};
use crate::types::Act;
use crate::types::{AdamParams, Scaling};

pub const CLASSES: usize = 10;
pub const WIDTHS: [usize; 4] = [784, 512, 256, CLASSES];
pub const FORMAT: &str = "vaegan-classifier-1";

/// The classifier's weights by name ("classifier.0.weight", …) and how it was made.
#[derive(Clone, Debug)]
pub struct ClassifierWeights {
    pub tensors: Vec<(String, [usize; 2], Vec<f32>)>,
    pub test_accuracy: f64,
    pub made_by: String,
}

impl ClassifierWeights {
    pub fn get(&self, name: &str) -> Option<Vec<f32>> {
        self.tensors.iter().find(|(n, _, _)| n == name).map(|(_, _, v)| v.clone())
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let meta = [("test_accuracy", format!("{:.4}", self.test_accuracy)), ("made_by", self.made_by.clone())];
        let tensors: Vec<(&str, Vec<usize>, &[f32])> = self.tensors.iter().map(|(n, s, v)| (n.as_str(), s.to_vec(), v.as_slice())).collect();
        crate::tensor_file::write(path, FORMAT, &meta, &tensors)
    }

    pub fn load(path: &Path) -> std::result::Result<Self, String> {
        let file = crate::tensor_file::TensorFile::read(path, FORMAT, "vaegan classifier", None)?;
        let mut tensors = vec![];
        for (i, w) in WIDTHS.windows(2).enumerate() {
            for (suffix, shape) in [("weight", [w[0], w[1]]), ("bias", [1, w[1]])] {
                let name = format!("classifier.{i}.{suffix}");
                let (got, values) = file.tensor(&name)?;
                if got != shape {
                    return Err(file.fail(format!("tensor {name} has shape {got:?}, expected {shape:?}")));
                }
                tensors.push((name, shape, values));
            }
        }
        let meta = &file.meta;
        Ok(ClassifierWeights {
            tensors,
            test_accuracy: meta.get("test_accuracy").and_then(|a| a.parse().ok()).unwrap_or(f64::NAN),
            made_by: meta.get("made_by").cloned().unwrap_or_default(),
        })
    }
}

/// The classifier's graph: x → features (256, after ReLU) → logits (10); with `targets`,
/// the mean softmax cross-entropy as the objective of its one group.
struct ClassifierGraph {
    graph: Graph,
    x: TensorId,
    targets: Option<TensorId>,
    features: TensorId,
    logits: TensorId,
}

fn build(batch: usize, train: bool, seed: u64) -> Result<ClassifierGraph> {
    let mut g = Graph::new();
    let x = g.input("x", [batch, WIDTHS[0]]);
    let group = g.group("classifier");
    let mlp = Mlp::new(&mut g, group, "classifier", &WIDTHS, seed);
    let outs = mlp.forward(&mut g, x, Act::Relu, Act::None);
    let (features, logits) = (outs[outs.len() - 2], outs[outs.len() - 1]);
    let targets = if train {
        let y = g.input("labels (one-hot)", [batch, CLASSES]);
        let loss = g.loss(LossKind::SoftmaxCe, logits, y, 1.0 / batch as f32);
        g.output("loss", loss);
        g.objective(group, "classifier", loss)?;
        Some(y)
    } else {
        g.keep(features);
        g.keep(logits);
        None
    };
    Ok(ClassifierGraph { graph: g, x, targets, features, logits })
}

/// Trains the classifier from scratch: Adam (lr, β = 0.9, 0.999), `epochs` passes over
/// `train` in batches, the order drawn from `seed`. Reports the test accuracy per epoch.
pub fn train(
    gpu: &Gpu,
    train: &Dataset,
    test: &Dataset,
    epochs: usize,
    batch: usize,
    lr: f32,
    seed: u64,
    mut report: impl FnMut(usize, f64),
) -> Result<ClassifierWeights> {
    if train.labels.is_none() {
        return Err(TrainError::Invalid(format!("{}: the classifier needs labels", train.source)));
    }
    if train.dim() != WIDTHS[0] {
        return Err(TrainError::Invalid(format!("the classifier takes 28x28 images, {} has {}x{}", train.source, train.height, train.width)));
    }
    let cg = build(batch, true, seed)?;
    let mut exec =
        GpuExecutor::new(gpu, cg.graph.clone(), ExecOptions { seed, reuse: true, update: Some(vec![AdamParams::new(lr).into()]), ..Default::default() })?;
    let data = GpuDataset::upload(gpu, train)?;
    let perm = data.permutation_buffer(gpu)?;
    let images = exec.push_prelude(data.gather(gpu, &perm, batch, 0, Scaling::UNIT, exec.view(cg.x))?);
    let labels = exec.push_prelude(data.gather_labels(gpu, &perm, batch, 0, CLASSES, exec.view(cg.targets.unwrap()))?);
    let steps = train.count / batch;
    let mut classifier = Classifier::new(gpu, 500.min(test.count), seed)?;
    for epoch in 0..epochs {
        gpu.write_u32(&perm, &permutation(seed, epoch, train.count))?;
        for s in 0..steps {
            let p = GpuDataset::params(batch, data.dim, s * batch, Scaling::UNIT);
            exec.prelude(images).write_params(gpu, &p);
            exec.prelude(labels).write_params(gpu, &GpuDataset::params(batch, CLASSES, s * batch, Scaling::UNIT));
            exec.step_with(s % 50 == 0, None)?;
            for (step, values) in exec.poll_outputs()? {
                if let Some((_, v)) = values.iter().find(|(_, v)| !v.is_finite()) {
                    return Err(TrainError::Diverged { step, loss: "classifier cross-entropy".into(), value: *v });
                }
            }
        }
        let params = exec.read_params()?;
        classifier.load(&ClassifierWeights { tensors: params, test_accuracy: f64::NAN, made_by: String::new() })?;
        report(epoch + 1, classifier.accuracy(test)?);
    }
    let tensors = exec.read_params()?;
    let test_accuracy = classifier.accuracy(test)?;
    Ok(ClassifierWeights {
        tensors,
        test_accuracy,
        made_by: format!("vaegan classifier --epochs {epochs} --batch {batch} --lr {lr} --seed {seed} (MNIST train, {} images)", train.count),
    })
}

/// The classifier ready to read images: features and class probabilities.
pub struct Classifier<'g> {
    exec: GpuExecutor<'g>,
    graph: ClassifierGraph,
    pub batch: usize,
}

/// Features (n × 256) and softmax probabilities (n × 10).
pub struct Readout {
    pub features: Vec<f32>,
    pub probs: Vec<f32>,
}

impl<'g> Classifier<'g> {
    pub fn new(gpu: &'g Gpu, batch: usize, seed: u64) -> Result<Self> {
        let graph = build(batch, false, seed)?;
        let exec = GpuExecutor::new(gpu, graph.graph.clone(), ExecOptions::default())?;
        Ok(Classifier { exec, graph, batch })
    }

    pub fn load(&mut self, w: &ClassifierWeights) -> Result<()> {
        self.exec.load_params(&[0], &|n| w.get(n), None)?;
        Ok(())
    }

    pub fn feature_dim(&self) -> usize {
        WIDTHS[2]
    }

    /// Reads images in [0, 1] (n × 784, n any), in batches (the last padded).
    pub fn read(&mut self, images: &[f32]) -> Result<Readout> {
        let d = WIDTHS[0];
        let n = images.len() / d;
        let (mut features, mut probs) = (Vec::with_capacity(n * WIDTHS[2]), Vec::with_capacity(n * CLASSES));
        for start in (0..n).step_by(self.batch) {
            let take = self.batch.min(n - start);
            let mut x = images[start * d..(start + take) * d].to_vec();
            x.resize(self.batch * d, 0.0);
            self.exec.set_input(self.graph.x, &x)?;
            self.exec.step()?;
            let f = self.exec.read(self.graph.features)?;
            let l = self.exec.read(self.graph.logits)?;
            features.extend_from_slice(&f[..take * WIDTHS[2]]);
            for row in l[..take * CLASSES].chunks(CLASSES) {
                let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
                let s: f32 = e.iter().sum();
                probs.extend(e.iter().map(|v| v / s));
            }
        }
        Ok(Readout { features, probs })
    }

    /// Share of `set`'s labelled images classified correctly.
    pub fn accuracy(&mut self, set: &Dataset) -> Result<f64> {
        let labels = set.labels.as_ref().ok_or_else(|| TrainError::Invalid(format!("{} has no labels", set.source)))?;
        let r = self.read(&scale_images(set, 0..set.count, Scaling::UNIT))?;
        let correct = r.probs.chunks(CLASSES).zip(labels).filter(|(p, &l)| argmax(p) == l as usize).count();
        Ok(correct as f64 / set.count as f64)
    }
}

pub fn argmax(p: &[f32]) -> usize {
    p.iter().enumerate().max_by(|a, b| a.1.partial_cmp(b.1).unwrap_or(std::cmp::Ordering::Equal)).map(|(i, _)| i).unwrap_or(0)
}

/// The quality of a set of images as the classifier sees them.
#[derive(Clone, Debug)]
pub struct Coverage {
    /// Images per predicted class.
    pub histogram: [usize; CLASSES],
    /// Entropy of the predicted-class distribution, in nats (ln 10 = 2.303 when uniform).
    pub entropy: f64,
    /// Share of images whose top class probability is ≥ 0.9.
    pub confident: f64,
}

pub fn coverage(probs: &[f32]) -> Coverage {
    let mut histogram = [0usize; CLASSES];
    let mut confident = 0;
    for p in probs.chunks(CLASSES) {
        let c = argmax(p);
        histogram[c] += 1;
        if p[c] >= 0.9 {
            confident += 1;
        }
    }
    let n = (probs.len() / CLASSES).max(1) as f64;
    let entropy = histogram
        .iter()
        .filter(|&&h| h > 0)
        .map(|&h| {
            let q = h as f64 / n;
            -q * q.ln()
        })
        .sum();
    Coverage { histogram, entropy, confident: confident as f64 / n }
}

/// Where the shipped classifier lives.
pub fn default_path() -> std::path::PathBuf {
    let here = std::path::PathBuf::from("datasets/classifier/mnist-classifier.safetensors");
    if here.is_file() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/classifier/mnist-classifier.safetensors")
}

//! The classifiers that measure sample quality, trained by vaegan's own engine with the
//! softmax cross-entropy kernel. What a classifier reads and predicts is its `Spec`, saved
//! with its weights:
//! - MNIST's (the shipped `mnist-classifier.safetensors`, and any grey set): an MLP
//!   784→512→256→10 (ReLU) with one head, the digit;
//! - a colour set's (the shipped `shapes32-classifier.safetensors`): five 3×3 convolutions
//!   with batch norm and ReLU (`COLOUR_CONV`), each channel's maximum over positions, →
//!   dense 256 (ReLU) → one softmax head per factor of its labels file: shape (3), colour
//!   (6) and background (4) for the shapes set, a two-class head per ±1 attribute for
//!   CelebA's. The maximum over positions is what makes shape learnable: the first colour
//!   classifier (two 5×5 stride-2 convolutions flattened into the dense layer) read shape at
//!   59 %, PyTorch's twin of it as badly, and an average over positions no better
//!   (datasets/classifier/README.md has the probes). The features therefore do not see
//!   where a shape is, only what it is.
//!
//! The last dense layer's activations (256) are the features of the Fréchet distance; the
//! heads' probabilities give per-factor confidence and the coverage of factor combinations.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::gpu::GpuDataset;
use crate::data::{Attributes, Dataset};
use crate::gpu::Gpu;
use crate::graph::{ExecOptions, GpuExecutor, Graph, LossKind, TensorId};
use crate::nn::{batch_norm, conv2d, conv2d_unbiased, linear, Mlp};
use crate::tensor_file::TensorFile;
use crate::train::eval::scale_images;
use crate::train::{permutation, Result, TrainError};
use crate::types::{Act, AdamParams, ConvGeom, Scaling, Trans};

/// MNIST's classes: the digits.
pub const CLASSES: usize = 10;
pub const FORMAT: &str = "vaegan-classifier-1";
/// One convolution of a classifier: `kernel`×`kernel` with "same" padding, `stride`, then
/// batch norm (when `batch_norm`; running statistics kept for reading) and ReLU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ConvLayerFile")]
pub struct ConvLayer {
    pub channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub batch_norm: bool,
}

/// A conv layer as files spell it: the first colour classifiers saved a bare channel count
/// for a 5×5 stride-2 convolution without batch norm; they keep loading as such.
#[derive(Deserialize)]
#[serde(untagged)]
enum ConvLayerFile {
    Channels(usize),
    Layer { channels: usize, kernel: usize, stride: usize, batch_norm: bool },
}

impl From<ConvLayerFile> for ConvLayer {
    fn from(f: ConvLayerFile) -> Self {
        match f {
            ConvLayerFile::Channels(channels) => ConvLayer { channels, kernel: 5, stride: 2, batch_norm: false },
            ConvLayerFile::Layer { channels, kernel, stride, batch_norm } => ConvLayer { channels, kernel, stride, batch_norm },
        }
    }
}

/// The convolutions a colour classifier gets (32×32: → 16×16 → 8×8, widening as the side
/// halves), before the maximum over positions.
pub const COLOUR_CONV: [ConvLayer; 5] = [
    ConvLayer { channels: 32, kernel: 3, stride: 1, batch_norm: true },
    ConvLayer { channels: 32, kernel: 3, stride: 2, batch_norm: true },
    ConvLayer { channels: 64, kernel: 3, stride: 1, batch_norm: true },
    ConvLayer { channels: 64, kernel: 3, stride: 2, batch_norm: true },
    ConvLayer { channels: 128, kernel: 3, stride: 1, batch_norm: true },
];

/// One softmax head: a categorical column of the labels (one class per attribute), or a
/// binary attribute (two classes: without, with).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// The column (or the binary attribute's name).
    pub name: String,
    /// The class names, as printed.
    pub classes: Vec<String>,
    /// The labels' attribute behind each class (categorical), or the one attribute (binary).
    pub attributes: Vec<String>,
    pub binary: bool,
}

/// What a classifier reads and predicts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// [height, width, channels] of the images it reads (in [0, 1]).
    pub image: [usize; 3],
    /// The convolutions (none: an MLP on the pixels).
    pub conv: Vec<ConvLayer>,
    /// Take each channel's maximum over positions of the last convolution's output (global
    /// max pooling) before the dense layers; else flatten it.
    #[serde(default)]
    pub pool: bool,
    /// Dense widths after the convolutions; the last is the features.
    pub dense: Vec<usize>,
    pub heads: Vec<Head>,
}

impl Spec {
    /// The shipped MNIST classifier's (a file without a spec is one of these).
    pub fn mnist() -> Spec {
        let digits: Vec<String> = (0..CLASSES).map(|d| d.to_string()).collect();
        Spec {
            image: [28, 28, 1],
            conv: vec![],
            pool: false,
            dense: vec![512, 256],
            heads: vec![Head { name: "class".into(), classes: digits.clone(), attributes: digits, binary: false }],
        }
    }

    /// The classifier for `set`: its image shape, and a head per factor of its labels
    /// (IDX classes: one head; a labels file: a head per categorical column, two classes
    /// per binary attribute). Grey images get MNIST's MLP, colour ones the convolutions.
    pub fn for_data(set: &Dataset) -> Result<Spec> {
        let table = set.attribute_table().ok_or_else(|| TrainError::Invalid(format!("{}: the classifier needs labels", set.source)))?;
        let heads = heads_of(&table)?;
        let (conv, pool, dense) = if set.channels == 1 { (vec![], false, vec![512, 256]) } else { (COLOUR_CONV.to_vec(), true, vec![256]) };
        Ok(Spec { image: set.shape(), conv, pool, dense, heads })
    }

    pub fn input(&self) -> usize {
        self.image.iter().product()
    }

    /// The number of weights and batch-norm statistics this spec declares, computed before
    /// anything is built or allocated (None past u64): a file must hold that many f32
    /// values, so a spec that declares far more is refused before its graph asks for the
    /// memory. Layers that cannot be built are counted as if they could; building refuses
    /// them.
    pub fn parameter_count(&self) -> Option<u64> {
        let [mut h, mut w, mut c] = self.image.map(|v| v as u64);
        let mut n: u64 = 0;
        for l in &self.conv {
            let (k, out, stride) = (l.kernel as u64, l.channels as u64, l.stride.max(1) as u64);
            // Batch norm: γ, β and the two running statistics; without it a bias.
            let stats = out.checked_mul(if l.batch_norm { 4 } else { 1 })?;
            n = n.checked_add(k.checked_mul(k)?.checked_mul(c)?.checked_mul(out)?)?.checked_add(stats)?;
            (h, w, c) = (h.saturating_sub(1) / stride + 1, w.saturating_sub(1) / stride + 1, out);
        }
        let mut width = if self.pool { c } else { h.checked_mul(w)?.checked_mul(c)? };
        let outs = self.dense.iter().map(|&d| d as u64).chain(self.heads.iter().map(|h| h.classes.len() as u64));
        for (i, out) in outs.enumerate() {
            n = n.checked_add(width.checked_mul(out)?.checked_add(out)?)?;
            // The heads all read the last dense layer.
            if i < self.dense.len() {
                width = out;
            }
        }
        Some(n)
    }

    /// Columns of a row of probabilities (every head's classes, head after head).
    pub fn total_classes(&self) -> usize {
        self.heads.iter().map(|h| h.classes.len()).sum()
    }

    pub fn feature_dim(&self) -> usize {
        *self.dense.last().expect("a spec has a dense layer")
    }

    /// Where each head's classes start in a row of probabilities.
    pub fn offsets(&self) -> Vec<usize> {
        self.heads.iter().scan(0, |o, h| Some(std::mem::replace(o, *o + h.classes.len()))).collect()
    }

    /// The target rows of `set` (count × total_classes, 0 or 1): each head's class one-hot.
    pub fn targets(&self, set: &Dataset) -> Result<Vec<u8>> {
        let table = set.attribute_table().ok_or_else(|| TrainError::Invalid(format!("{} has no labels", set.source)))?;
        let classes = self.classes_of(&table)?;
        let mut rows = vec![0u8; set.count * self.total_classes()];
        let offsets = self.offsets();
        for (i, row) in rows.chunks_mut(self.total_classes()).enumerate() {
            for (h, &o) in offsets.iter().enumerate() {
                row[o + classes[i * self.heads.len() + h]] = 1;
            }
        }
        Ok(rows)
    }

    /// Each image's class per head (count × heads), read from its attributes.
    pub fn classes_of(&self, table: &Attributes) -> Result<Vec<usize>> {
        let find = |name: &str| {
            table.names.iter().position(|n| n == name).ok_or_else(|| {
                TrainError::Invalid(format!("{}: no attribute {name:?}, which this classifier predicts (it knows {})", table.source, table.names.join(", ")))
            })
        };
        let columns: Vec<Vec<usize>> = self.heads.iter().map(|h| h.attributes.iter().map(|a| find(a)).collect::<Result<_>>()).collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(table.count() * self.heads.len());
        for i in 0..table.count() {
            for (h, cols) in self.heads.iter().zip(&columns) {
                if h.binary {
                    out.push(table.has(i, cols[0]) as usize);
                } else {
                    let on: Vec<usize> = (0..cols.len()).filter(|&k| table.has(i, cols[k])).collect();
                    match on[..] {
                        [k] => out.push(k),
                        _ => {
                            return Err(TrainError::Invalid(format!(
                                "{}: image {i} has {} of the classes of {:?}: expected exactly one",
                                table.source,
                                on.len(),
                                h.name
                            )))
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A head per column of `table`: a column of several attributes (one-hot categories) is
/// one head, a column of one is a binary head.
fn heads_of(table: &Attributes) -> Result<Vec<Head>> {
    let mut columns: Vec<&str> = vec![];
    for c in &table.columns {
        if !columns.contains(&c.as_str()) {
            columns.push(c);
        }
    }
    if columns.is_empty() {
        return Err(TrainError::Invalid(format!("{}: no attributes to classify", table.source)));
    }
    Ok(columns
        .into_iter()
        .map(|col| {
            let attributes: Vec<String> = (0..table.len()).filter(|&a| table.columns[a] == col).map(|a| table.names[a].clone()).collect();
            if attributes.len() == 1 {
                let a = attributes[0].clone();
                Head { name: a.clone(), classes: vec![format!("not {a}"), a], attributes, binary: true }
            } else {
                let classes = attributes.iter().map(|a| a.rsplit('=').next().unwrap_or(a).to_string()).collect();
                Head { name: col.to_string(), classes, attributes, binary: false }
            }
        })
        .collect())
}

/// A classifier's weights by name ("classifier.0.weight", …), what it reads, and how it
/// was made.
#[derive(Clone, Debug)]
pub struct ClassifierWeights {
    pub spec: Spec,
    pub tensors: Vec<(String, [usize; 2], Vec<f32>)>,
    /// Share of the test images with every head right.
    pub test_accuracy: f64,
    /// Per head, in `spec.heads`' order (empty when unknown).
    pub head_accuracy: Vec<f64>,
    pub made_by: String,
}

impl ClassifierWeights {
    pub fn get(&self, name: &str) -> Option<Vec<f32>> {
        self.tensors.iter().find(|(n, _, _)| n == name).map(|(_, _, v)| v.clone())
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let meta = [
            ("test_accuracy", format!("{:.4}", self.test_accuracy)),
            ("head_accuracy", self.head_accuracy.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",")),
            ("made_by", self.made_by.clone()),
            ("spec", serde_json::to_string(&self.spec).map_err(std::io::Error::other)?),
        ];
        let tensors: Vec<(&str, Vec<usize>, &[f32])> = self.tensors.iter().map(|(n, s, v)| (n.as_str(), s.to_vec(), v.as_slice())).collect();
        crate::tensor_file::write(path, FORMAT, &meta, &tensors)
    }

    pub fn load(path: &Path) -> std::result::Result<Self, String> {
        Self::from_file(TensorFile::read(path, FORMAT, "vaegan classifier", None)?)
    }

    /// A classifier of `spec` with its initial weights (drawn by `seed`), untrained: the
    /// smallest real file of a spec, for tests and the fuzz corpus.
    pub fn untrained(spec: Spec, seed: u64) -> Result<Self> {
        let cg = build(&spec, 1, false, seed)?;
        let tensors = cg
            .graph
            .params()
            .chain(cg.graph.state.iter().copied())
            .map(|t| {
                let s = cg.graph.shape(t);
                let init = cg.graph.tensors[t].init.clone().unwrap_or_else(|| vec![0.0; s.rows * s.cols]);
                (cg.graph.name(t).to_string(), [s.rows, s.cols], init)
            })
            .collect();
        Ok(ClassifierWeights { spec, tensors, test_accuracy: f64::NAN, head_accuracy: vec![], made_by: "ClassifierWeights::untrained".into() })
    }

    /// `load` of a file's bytes (`path` names it in errors).
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> std::result::Result<Self, String> {
        Self::from_file(TensorFile::parse(bytes, path, FORMAT, "vaegan classifier", None)?)
    }

    fn from_file(file: TensorFile) -> std::result::Result<Self, String> {
        let meta = &file.meta;
        let spec = match meta.get("spec") {
            Some(s) => serde_json::from_str::<Spec>(s).map_err(|e| file.fail(format!("metadata \"spec\": {e}")))?,
            None => Spec::mnist(),
        };
        if spec.dense.is_empty()
            || spec.dense.contains(&0)
            || spec.heads.is_empty()
            || spec.heads.iter().any(|h| h.classes.len() < 2 || h.classes.len() != h.attributes.len() + h.binary as usize)
        {
            return Err(file.fail(
                "metadata \"spec\": a classifier needs dense layers at least 1 wide and heads of at least two classes, one attribute per class (one for a binary head)",
            ));
        }
        if !matches!(spec.image, [h, w, c] if h > 0 && w > 0 && (c == 1 || c == 3)) {
            return Err(file.fail(format!("metadata \"spec\": image {:?} is not [height, width, 1 or 3]", spec.image)));
        }
        // A spec's graph is built (its initial weights allocated) before the tensors are
        // compared with it: one that declares more than the file holds, beyond a small model's
        // 2^24 values (64 MiB), is refused first, so a few bytes of metadata cannot ask for
        // gigabytes. Below that, the comparison names the tensor that is missing.
        let values = file.byte_len() as u64 / 4;
        match spec.parameter_count() {
            Some(n) if n <= values.max(1 << 24) && (spec.image[0] as u64).saturating_mul(spec.image[1] as u64) <= crate::data::images::MAX_PIXELS => {}
            n => {
                let declared = n.map_or("more than 2^64".to_string(), |n| n.to_string());
                return Err(file.fail(format!(
                    "metadata \"spec\": images {:?} and its layers declare {declared} parameters, more than the file's {values} values (or images over {} pixels)",
                    spec.image,
                    crate::data::images::MAX_PIXELS
                )));
            }
        }
        let cg = build(&spec, 1, false, 0).map_err(|e| file.fail(format!("metadata \"spec\": {e}")))?;
        let mut tensors = vec![];
        for t in cg.graph.params().chain(cg.graph.state.iter().copied()) {
            let name = cg.graph.name(t).to_string();
            let s = cg.graph.shape(t);
            let shape = [s.rows, s.cols];
            let (got, values) = file.tensor(&name)?;
            if got != shape {
                return Err(file.fail(format!("tensor {name} has shape {got:?}, expected {shape:?}")));
            }
            tensors.push((name, shape, values));
        }
        let head_accuracy = meta.get("head_accuracy").map(|a| a.split(',').filter_map(|v| v.parse().ok()).collect()).unwrap_or_default();
        Ok(ClassifierWeights {
            spec,
            tensors,
            test_accuracy: meta.get("test_accuracy").and_then(|a| a.parse().ok()).unwrap_or(f64::NAN),
            head_accuracy,
            made_by: meta.get("made_by").cloned().unwrap_or_default(),
        })
    }
}

/// The classifier's graph: x → features → one set of logits per head; with `train`, the
/// sum of the heads' mean softmax cross-entropies as the objective of its one group, read
/// against `targets` (batch × every head's classes, split into heads by constant selection
/// matrices).
struct ClassifierGraph {
    graph: Graph,
    x: TensorId,
    targets: Option<TensorId>,
    features: TensorId,
    logits: Vec<TensorId>,
}

fn build(spec: &Spec, batch: usize, train: bool, seed: u64) -> Result<ClassifierGraph> {
    let mut g = Graph::new();
    let x = g.input("x", [batch, spec.input()]);
    let group = g.group("classifier");
    let (mut h, mut shape) = (x, (spec.image[0], spec.image[1], spec.image[2]));
    for (i, layer) in spec.conv.iter().enumerate() {
        let ConvLayer { channels, kernel, stride, batch_norm: norm } = *layer;
        if kernel % 2 == 0 || stride == 0 || channels == 0 {
            return Err(TrainError::Invalid(format!(
                "conv {i}: {kernel}×{kernel} stride {stride} to {channels} channels: expected an odd kernel, a stride and channels of at least 1"
            )));
        }
        let geom = ConvGeom::conv(batch, shape, channels, (kernel, kernel), stride, kernel / 2).map_err(TrainError::Invalid)?;
        let name = format!("classifier.conv{i}");
        let layer_seed = seed.wrapping_mul(1000).wrapping_add(500 + i as u64);
        h = if norm {
            // Batch norm would cancel a bias: the convolution has none (as in the models).
            let p = conv2d_unbiased(&mut g, group, &name, geom, false, layer_seed);
            let bn = batch_norm(&mut g, group, &format!("{name}.bn"), channels);
            let y = g.conv2d(h, &p, Act::None);
            if train {
                g.batch_norm(y, &bn, Act::Relu)
            } else {
                g.batch_norm_eval(y, &bn, Act::Relu)
            }
        } else {
            let p = conv2d(&mut g, group, &name, geom, layer_seed);
            g.conv2d(h, &p, Act::Relu)
        };
        shape = (geom.out_h, geom.out_w, channels);
    }
    if spec.pool {
        if spec.conv.is_empty() {
            return Err(TrainError::Invalid("pool takes the maximum of a convolution's output over positions: the spec has no convolution".into()));
        }
        h = g.position_max(h, shape.2);
        shape = (1, 1, shape.2);
    }
    let widths: Vec<usize> = std::iter::once(shape.0 * shape.1 * shape.2).chain(spec.dense.iter().copied()).collect();
    let mlp = Mlp::new(&mut g, group, "classifier", &widths, seed);
    let features = *mlp.forward(&mut g, h, Act::Relu, Act::Relu).last().expect("a dense layer");
    let n = spec.dense.len();
    // One head keeps MNIST's names (classifier.2 is its last layer).
    let logits: Vec<TensorId> = (0..spec.heads.len())
        .map(|k| {
            let name = if spec.heads.len() == 1 { format!("classifier.{n}") } else { format!("classifier.{n}.head{k}") };
            let layer = linear(&mut g, group, &name, spec.feature_dim(), spec.heads[k].classes.len(), seed.wrapping_mul(1000).wrapping_add((n + k) as u64));
            g.linear(features, &layer, Act::None)
        })
        .collect();
    let targets = if train {
        let total = spec.total_classes();
        let y = g.input("labels (one-hot per head)", [batch, total]);
        let mut losses = vec![];
        for ((k, head), o) in spec.heads.iter().enumerate().zip(spec.offsets()) {
            let y_k = if spec.heads.len() == 1 {
                y
            } else {
                let m = head.classes.len();
                let mut select = vec![0.0; total * m];
                for c in 0..m {
                    select[(o + c) * m + c] = 1.0;
                }
                let s = g.constant(&format!("select head {k}"), [total, m], select);
                g.matmul(y, s, Trans::NN)
            };
            losses.push((1.0, g.loss(LossKind::SoftmaxCe, logits[k], y_k, 1.0 / batch as f32)));
        }
        let loss = if losses.len() == 1 { losses[0].1 } else { g.weighted_sum(&losses) };
        g.output("loss", loss);
        g.objective(group, "classifier", loss)?;
        Some(y)
    } else {
        g.keep(features);
        for &l in &logits {
            g.keep(l);
        }
        None
    };
    Ok(ClassifierGraph { graph: g, x, targets, features, logits })
}

/// Trains a classifier for `train`'s images and labels (`Spec::for_data`) from scratch:
/// Adam (lr, β = 0.9, 0.999), `epochs` passes in batches, the order drawn from `seed`.
/// Reports the test accuracy per epoch.
#[allow(clippy::too_many_arguments)]
pub fn train(
    gpu: &Gpu,
    train: &Dataset,
    test: &Dataset,
    epochs: usize,
    batch: usize,
    lr: f32,
    seed: u64,
    mut report: impl FnMut(usize, &Accuracy),
) -> Result<ClassifierWeights> {
    let spec = Spec::for_data(train)?;
    if test.shape() != train.shape() {
        return Err(TrainError::Invalid(format!("the test images are {:?}, the training images {:?}", test.shape(), train.shape())));
    }
    if train.count < batch {
        return Err(TrainError::Invalid(format!("{}: {} training images, fewer than a batch of {batch}", train.source, train.count)));
    }
    let cg = build(&spec, batch, true, seed)?;
    let mut exec =
        GpuExecutor::new(gpu, cg.graph.clone(), ExecOptions { seed, reuse: true, update: Some(vec![AdamParams::new(lr).into()]), ..Default::default() })?;
    let data = GpuDataset::upload(gpu, train)?;
    let perm = data.permutation_buffer(gpu)?;
    let images = exec.push_prelude(data.gather(gpu, &perm, batch, 0, Scaling::UNIT, exec.view(cg.x))?);
    let total = spec.total_classes();
    let target_view = exec.view(cg.targets.expect("a training graph"));
    // IDX classes gather as one-hot rows from a byte per image; a labels file's heads from
    // their target rows.
    let rows;
    let labels = match (&train.labels, spec.heads.len()) {
        (Some(_), 1) => exec.push_prelude(data.gather_labels(gpu, &perm, batch, 0, total, target_view)?),
        _ => {
            rows = GpuDataset::upload_rows(gpu, "classifier targets", &spec.targets(train)?, train.count, total)?;
            exec.push_prelude(rows.gather(gpu, &perm, batch, 0, Scaling::IDENTITY, target_view)?)
        }
    };
    let steps = train.count / batch;
    let mut classifier = Classifier::new(gpu, &spec, 500.min(test.count.max(1)), seed)?;
    for epoch in 0..epochs {
        gpu.write_u32(&perm, &permutation(seed, epoch, train.count))?;
        for s in 0..steps {
            exec.prelude(images).write_params(gpu, &GpuDataset::params(batch, data.dim, s * batch, Scaling::UNIT));
            exec.prelude(labels).write_params(gpu, &GpuDataset::params(batch, total, s * batch, Scaling::IDENTITY));
            exec.step_with(s % 50 == 0, None)?;
            for (step, values) in exec.poll_outputs()? {
                if let Some((_, v)) = values.iter().find(|(_, v)| !v.is_finite()) {
                    return Err(TrainError::Diverged { step, loss: "classifier cross-entropy".into(), value: *v });
                }
            }
        }
        classifier.load(&ClassifierWeights {
            spec: spec.clone(),
            tensors: weights(&exec)?,
            test_accuracy: f64::NAN,
            head_accuracy: vec![],
            made_by: String::new(),
        })?;
        report(epoch + 1, &classifier.accuracy(test)?);
    }
    let accuracy = classifier.accuracy(test)?;
    Ok(ClassifierWeights {
        spec,
        tensors: weights(&exec)?,
        test_accuracy: accuracy.all,
        head_accuracy: accuracy.heads,
        made_by: format!("vaegan classifier --epochs {epochs} --batch {batch} --lr {lr} --seed {seed} ({}, {} training images)", train.source, train.count),
    })
}

/// A training classifier's parameters and batch-norm running statistics, by name.
fn weights(exec: &GpuExecutor) -> Result<crate::graph::gpu_exec::NamedTensors> {
    let mut all = exec.read_params()?;
    all.extend(exec.read_state()?);
    Ok(all)
}

/// Test accuracy: per head, and the share with every head right.
#[derive(Clone, Debug)]
pub struct Accuracy {
    pub heads: Vec<f64>,
    pub all: f64,
}

/// A classifier ready to read images: features and each head's class probabilities.
pub struct Classifier<'g> {
    exec: GpuExecutor<'g>,
    graph: ClassifierGraph,
    pub spec: Spec,
    pub batch: usize,
}

/// Features (n × feature_dim) and softmax probabilities (n × every head's classes, head
/// after head, each head's summing to 1).
pub struct Readout {
    pub features: Vec<f32>,
    pub probs: Vec<f32>,
}

impl<'g> Classifier<'g> {
    /// A classifier of `spec`'s shape (load weights of that spec).
    pub fn new(gpu: &'g Gpu, spec: &Spec, batch: usize, seed: u64) -> Result<Self> {
        let graph = build(spec, batch, false, seed)?;
        let exec = GpuExecutor::new(gpu, graph.graph.clone(), ExecOptions::default())?;
        Ok(Classifier { exec, graph, spec: spec.clone(), batch })
    }

    /// A classifier holding `w`.
    pub fn with(gpu: &'g Gpu, w: &ClassifierWeights, batch: usize) -> Result<Self> {
        let mut c = Self::new(gpu, &w.spec, batch, 0)?;
        c.load(w)?;
        Ok(c)
    }

    pub fn load(&mut self, w: &ClassifierWeights) -> Result<()> {
        if w.spec != self.spec {
            return Err(TrainError::Invalid("these classifier weights are of another spec than the classifier built".into()));
        }
        self.exec.load_params(&[0], &|n| w.get(n), None)?;
        if !self.graph.graph.state.is_empty() {
            self.exec.load_state(&|n| w.get(n))?;
        }
        Ok(())
    }

    pub fn feature_dim(&self) -> usize {
        self.spec.feature_dim()
    }

    /// Refuses images of another shape than the classifier's.
    pub fn check_shape(&self, image: [usize; 3], what: &str) -> Result<()> {
        if image != self.spec.image {
            let [h, w, c] = self.spec.image;
            return Err(TrainError::Invalid(format!(
                "the classifier reads {h}x{w}x{c} images ({}); {what} are {}x{}x{}",
                self.spec.heads.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", "),
                image[0],
                image[1],
                image[2]
            )));
        }
        Ok(())
    }

    /// Reads images in [0, 1] (n × the spec's input, n any), in batches (the last padded).
    pub fn read(&mut self, images: &[f32]) -> Result<Readout> {
        let d = self.spec.input();
        let (f, total) = (self.feature_dim(), self.spec.total_classes());
        let n = images.len() / d;
        let (mut features, mut probs) = (Vec::with_capacity(n * f), Vec::with_capacity(n * total));
        for start in (0..n).step_by(self.batch) {
            let take = self.batch.min(n - start);
            let mut x = images[start * d..(start + take) * d].to_vec();
            x.resize(self.batch * d, 0.0);
            self.exec.set_input(self.graph.x, &x)?;
            self.exec.step()?;
            features.extend_from_slice(&self.exec.read(self.graph.features)?[..take * f]);
            let heads: Vec<Vec<f32>> = self.graph.logits.iter().map(|&l| self.exec.read(l)).collect::<std::result::Result<_, _>>()?;
            for i in 0..take {
                for (h, l) in self.spec.heads.iter().zip(&heads) {
                    let k = h.classes.len();
                    probs.extend(softmax(&l[i * k..(i + 1) * k]));
                }
            }
        }
        Ok(Readout { features, probs })
    }

    /// Each image's most likely class per head (n × heads), from `read`'s probabilities.
    pub fn predictions(&self, probs: &[f32]) -> Vec<usize> {
        let offsets = self.spec.offsets();
        probs
            .chunks(self.spec.total_classes())
            .flat_map(|row| self.spec.heads.iter().zip(&offsets).map(move |(h, &o)| argmax(&row[o..o + h.classes.len()])))
            .collect()
    }

    /// Share of `set`'s labelled images classified correctly, per head and on all heads.
    pub fn accuracy(&mut self, set: &Dataset) -> Result<Accuracy> {
        let table = set.attribute_table().ok_or_else(|| TrainError::Invalid(format!("{} has no labels", set.source)))?;
        let truth = self.spec.classes_of(&table)?;
        let r = self.read(&scale_images(set, 0..set.count, Scaling::UNIT))?;
        let got = self.predictions(&r.probs);
        let k = self.spec.heads.len();
        let heads = (0..k).map(|h| (0..set.count).filter(|&i| got[i * k + h] == truth[i * k + h]).count() as f64 / set.count.max(1) as f64).collect();
        let all = (0..set.count).filter(|&i| got[i * k..(i + 1) * k] == truth[i * k..(i + 1) * k]).count() as f64 / set.count.max(1) as f64;
        Ok(Accuracy { heads, all })
    }
}

fn softmax(row: &[f32]) -> impl Iterator<Item = f32> {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.into_iter().map(move |v| v / s)
}

pub fn argmax(p: &[f32]) -> usize {
    p.iter().enumerate().max_by(|a, b| a.1.partial_cmp(b.1).unwrap_or(std::cmp::Ordering::Equal)).map(|(i, _)| i).unwrap_or(0)
}

/// Combinations of head classes counted by `coverage`, at most: beyond, only per-head
/// figures (CelebA's 40 binary heads have 2⁴⁰).
pub const MAX_COMBINATIONS: usize = 4096;

/// The quality of a set of images as the classifier sees them.
#[derive(Clone, Debug)]
pub struct Coverage {
    /// Images per combination of predicted classes (head 0's class slowest; MNIST: per
    /// digit); empty past `MAX_COMBINATIONS`.
    pub histogram: Vec<usize>,
    /// Entropy of the predicted-combination distribution, in nats (ln of the number of
    /// combinations when uniform).
    pub entropy: f64,
    /// ln(combinations): the entropy of a uniform spread.
    pub uniform_entropy: f64,
    /// Share of images whose top class probability is ≥ 0.9 on every head.
    pub confident: f64,
    /// The same share, per head.
    pub head_confident: Vec<f64>,
}

pub fn coverage(spec: &Spec, probs: &[f32]) -> Coverage {
    let sizes: Vec<usize> = spec.heads.iter().map(|h| h.classes.len()).collect();
    let combos = sizes.iter().try_fold(1usize, |a, &s| a.checked_mul(s).filter(|&p| p <= MAX_COMBINATIONS));
    let mut histogram = vec![0usize; combos.unwrap_or(0)];
    let mut head_confident = vec![0usize; sizes.len()];
    let mut confident = 0;
    let offsets = spec.offsets();
    let rows = probs.chunks(spec.total_classes());
    let n = rows.len().max(1) as f64;
    for p in rows {
        let mut combo = 0;
        let mut all = true;
        for (h, (&o, &k)) in offsets.iter().zip(&sizes).enumerate() {
            let c = argmax(&p[o..o + k]);
            combo = combo * k + c;
            let sure = p[o + c] >= 0.9;
            head_confident[h] += sure as usize;
            all &= sure;
        }
        if let Some(slot) = histogram.get_mut(combo) {
            *slot += 1;
        }
        confident += all as usize;
    }
    let entropy = histogram
        .iter()
        .filter(|&&h| h > 0)
        .map(|&h| {
            let q = h as f64 / n;
            -q * q.ln()
        })
        .sum();
    let uniform_entropy = sizes.iter().map(|&s| (s as f64).ln()).sum();
    Coverage { histogram, entropy, uniform_entropy, confident: confident as f64 / n, head_confident: head_confident.iter().map(|&c| c as f64 / n).collect() }
}

/// The shipped classifiers, by the images they read.
pub const SHIPPED: [([usize; 3], &str); 2] = [([28, 28, 1], "mnist-classifier.safetensors"), ([32, 32, 3], "shapes32-classifier.safetensors")];

/// Where the shipped classifier for images of `image`'s shape lives (MNIST's for 28×28
/// grey, the shapes set's for 32×32 RGB; MNIST's otherwise, which then refuses the shape).
pub fn default_for(image: [usize; 3]) -> PathBuf {
    let file = SHIPPED.iter().find(|(s, _)| *s == image).map_or(SHIPPED[0].1, |(_, f)| f);
    let here = Path::new("datasets/classifier").join(file);
    if here.is_file() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/classifier").join(file)
}

/// Where the shipped MNIST classifier lives.
pub fn default_path() -> PathBuf {
    default_for([28, 28, 1])
}

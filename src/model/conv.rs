//! Larsen et al.'s convolutional networks (`arch = "conv"`), as the authors' code builds
//! them (`architectures.img64x64` of andersbll/autoencoding_beyond_pixels): every
//! convolution `kernel`×`kernel` with "same" padding, stride 2 unless said otherwise.
//!
//! - encoder trunk: [conv → batch norm → act] per `encoder` channel count, flatten,
//!   [dense → batch norm → act] per `encoder_dense` width (the μ and logσ² heads follow);
//! - decoder: dense to (h/2ⁿ)·(w/2ⁿ)·decoder[0] → batch norm → act, then
//!   [transposed conv → batch norm → act] per `decoder` channel count (each doubles the
//!   side), then a stride-1 conv to the image's channels with the output activation
//!   (`decoder_final_conv`; else the transposed convs run decoder[0] → decoder[1] → … and
//!   the last outputs the image with the output activation);
//! - discriminator trunk: a conv of stride `dis_first_stride` (1 in the paper) → act (no
//!   batch norm), then [conv → batch norm →
//!   act] per further channel count; the last convolution's raw output is the learned
//!   similarity f (the code's `recon_depth = 9`: the fourth conv, before its batch norm);
//!   flatten, [dense → batch norm → act] per `discriminator_dense` width (the logit follows).
//!
//! Images are NHWC, stored batch × (h·w·c), so flattening is free. Layers followed by batch
//! norm have no bias (as the authors' `bias=None`): batch norm would cancel it.

use crate::graph::{BatchNormParams, ConvParams, Graph, LinearParams, TensorId};
use crate::nn::{batch_norm, condition_term, condition_weight, conv2d, conv2d_unbiased, conv_transpose2d, linear_unbiased};
use crate::types::{Act, ConvGeom};

use super::config::ModelConfig;

/// Which statistics batch norm uses: the batch's (training; the running ones are updated),
/// the batch's without touching the running ones (a training pass whose statistics must not
/// reach the model used for generation: `decoder_bn_stats`), or the running ones
/// (evaluation and generation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Train,
    TrainKeepStats,
    Eval,
}

/// act(batch norm of x): one op, the activation fused into the normalisation.
fn norm(g: &mut Graph, x: TensorId, bn: &BatchNormParams, act: Act, phase: Phase) -> TensorId {
    match phase {
        Phase::Train => g.batch_norm(x, bn, act),
        // Momentum 0: running ← 1·running + 0·batch, the running statistics unchanged.
        Phase::TrainKeepStats => g.batch_norm(x, &BatchNormParams { momentum: 0.0, ..*bn }, act),
        Phase::Eval => g.batch_norm_eval(x, bn, act),
    }
}

/// One convolution, optionally followed by batch norm, then the activation.
struct Block {
    conv: ConvParams,
    transposed: bool,
    bn: Option<BatchNormParams>,
}

impl Block {
    /// (the convolution's raw output, the block's output). Params are made at batch 1; the
    /// geometry takes the rows of `x`.
    fn forward(&self, g: &mut Graph, x: TensorId, act: Act, phase: Phase) -> (TensorId, TensorId) {
        let conv = ConvParams { geom: ConvGeom { batch: g.shape(x).rows, ..self.conv.geom }, ..self.conv };
        let apply = |g: &mut Graph, act: Act| if self.transposed { g.conv_transpose2d(x, &conv, act) } else { g.conv2d(x, &conv, act) };
        match &self.bn {
            None => {
                let y = apply(g, act);
                (y, y)
            }
            Some(bn) => {
                let y = apply(g, Act::None);
                (y, norm(g, y, bn, act, phase))
            }
        }
    }
}

/// A dense layer → batch norm → act.
struct Dense {
    layer: LinearParams,
    bn: BatchNormParams,
}

impl Dense {
    fn new(g: &mut Graph, group: usize, name: &str, inputs: usize, outputs: usize, seed: u64) -> Self {
        Dense { layer: linear_unbiased(g, group, name, inputs, outputs, seed), bn: batch_norm(g, group, &format!("{name}.bn"), outputs) }
    }

    /// act(BN(x·W + side)): `side` is y·V, a conditioned layer's labels.
    fn forward(&self, g: &mut Graph, x: TensorId, side: Option<TensorId>, act: Act, phase: Phase) -> TensorId {
        let mut y = g.linear(x, &self.layer, Act::None);
        if let Some(side) = side {
            y = g.add(y, side);
        }
        norm(g, y, &self.bn, act, phase)
    }
}

fn layer_seed(seed: u64, i: usize) -> u64 {
    seed.wrapping_mul(1000).wrapping_add(i as u64)
}

/// "Same" padding of an odd kernel.
fn pad(c: &ModelConfig) -> usize {
    (c.kernel - 1) / 2
}

/// Stride-`stride` convolutions from an h×w×ch image through `channels`; the first
/// `plain` of them without batch norm. Returns the blocks and the final (h, w, ch).
fn conv_stack(
    g: &mut Graph,
    group: usize,
    name: &str,
    c: &ModelConfig,
    channels: &[usize],
    strides: impl Fn(usize) -> usize,
    plain: usize,
    seed: u64,
) -> (Vec<Block>, (usize, usize, usize)) {
    let mut side = (c.height(), c.width(), c.channels());
    let mut blocks = vec![];
    for (i, &out_c) in channels.iter().enumerate() {
        let geom = ConvGeom::conv(1, side, out_c, (c.kernel, c.kernel), strides(i), pad(c)).expect("validated geometry");
        let name = format!("{name}.conv{i}");
        // A convolution followed by batch norm has no bias (batch norm would cancel it).
        let conv =
            if i >= plain { conv2d_unbiased(g, group, &name, geom, false, layer_seed(seed, i)) } else { conv2d(g, group, &name, geom, layer_seed(seed, i)) };
        let bn = (i >= plain).then(|| batch_norm(g, group, &format!("{name}.bn"), out_c));
        blocks.push(Block { conv, transposed: false, bn });
        side = (geom.out_h, geom.out_w, out_c);
    }
    (blocks, side)
}

/// The encoder up to the μ and logσ² heads.
pub struct EncoderTrunk {
    convs: Vec<Block>,
    dense: Vec<Dense>,
}

impl EncoderTrunk {
    pub fn new(g: &mut Graph, group: usize, c: &ModelConfig, seed: u64) -> Self {
        let (convs, (h, w, ch)) = conv_stack(g, group, "encoder", c, &c.encoder, |_| 2, 0, seed);
        let mut width = h * w * ch;
        let mut dense = vec![];
        for (i, &out) in c.encoder_dense.iter().enumerate() {
            dense.push(Dense::new(g, group, &format!("encoder.dense{i}"), width, out, layer_seed(seed ^ 0x64, i)));
            width = out;
        }
        EncoderTrunk { convs, dense }
    }

    pub fn forward(&self, g: &mut Graph, x: TensorId, c: &ModelConfig, phase: Phase) -> TensorId {
        let mut h = x;
        for b in &self.convs {
            h = b.forward(g, h, c.hidden_act, phase).1;
        }
        for d in &self.dense {
            h = d.forward(g, h, None, c.hidden_act, phase);
        }
        h
    }
}

/// z → image.
pub struct Decoder {
    dense: Dense,
    /// V of the labels y, added before the dense layer's batch norm (conditioned models).
    condition: Option<TensorId>,
    deconvs: Vec<Block>,
    /// Larsen's final stride-1 conv to the image (None: the last transposed conv is it).
    out: Option<Block>,
}

impl Decoder {
    pub fn new(g: &mut Graph, group: usize, c: &ModelConfig, seed: u64) -> Self {
        let n = c.decoder.len();
        let (h0, w0) = (c.height() >> n, c.width() >> n);
        let dense = Dense::new(g, group, "decoder.dense", c.latent, h0 * w0 * c.decoder[0], seed ^ 0x6466);
        let k = c.conditions.len();
        let condition = (k > 0).then(|| condition_weight(g, group, "decoder.condition", k, h0 * w0 * c.decoder[0], seed ^ 0x7963));
        let mut side = (h0, w0, c.decoder[0]);
        let mut deconvs = vec![];
        for i in 0..n {
            // Larsen's: every transposed conv to decoder[i] then a conv to the image; DCGAN's:
            // decoder[0] → decoder[1] → … → the image's channels.
            let last_to_image = !c.decoder_final_conv && i + 1 == n;
            let out_c = match (c.decoder_final_conv, last_to_image) {
                (true, _) => c.decoder[i],
                (false, true) => c.channels(),
                (false, false) => c.decoder[i + 1],
            };
            // Output padding 1: an odd kernel with "same" padding then doubles the side exactly.
            let geom = ConvGeom::transposed(1, side, out_c, (c.kernel, c.kernel), 2, pad(c), 1).expect("validated geometry");
            let name = format!("decoder.deconv{i}");
            let conv = if last_to_image {
                conv_transpose2d(g, group, &name, geom, layer_seed(seed, i))
            } else {
                conv2d_unbiased(g, group, &name, geom, true, layer_seed(seed, i))
            };
            let bn = (!last_to_image).then(|| batch_norm(g, group, &format!("{name}.bn"), out_c));
            deconvs.push(Block { conv, transposed: true, bn });
            side = (geom.in_h, geom.in_w, out_c);
        }
        let out = c.decoder_final_conv.then(|| {
            let geom = ConvGeom::conv(1, side, c.channels(), (c.kernel, c.kernel), 1, pad(c)).expect("validated geometry");
            Block { conv: conv2d(g, group, "decoder.out", geom, seed ^ 0x6f75), transposed: false, bn: None }
        });
        Decoder { dense, condition, deconvs, out }
    }

    /// Images from codes z and, for a conditioned model, labels y.
    pub fn forward(&self, g: &mut Graph, z: TensorId, y: Option<TensorId>, c: &ModelConfig, phase: Phase) -> TensorId {
        let side = condition_term(g, y, self.condition);
        let mut h = self.dense.forward(g, z, side, c.hidden_act, phase);
        let n = self.deconvs.len();
        for (i, b) in self.deconvs.iter().enumerate() {
            let act = if self.out.is_none() && i + 1 == n { c.output_act } else { c.hidden_act };
            h = b.forward(g, h, act, phase).1;
        }
        match &self.out {
            Some(out) => out.forward(g, h, c.output_act, phase).1,
            None => h,
        }
    }
}

/// The discriminator up to its logit.
pub struct DiscriminatorTrunk {
    convs: Vec<Block>,
    dense: Vec<Dense>,
    /// V of the labels y, added before the first dense layer's batch norm (conditioned
    /// models: the convolutions, and so the learned similarity f, see the image alone).
    condition: Option<TensorId>,
    /// Width of the trunk's output (what the logit reads).
    pub width: usize,
}

impl DiscriminatorTrunk {
    pub fn new(g: &mut Graph, group: usize, c: &ModelConfig, seed: u64) -> Self {
        let strides = |i: usize| if i == 0 { c.dis_first_stride } else { 2 };
        let (convs, (h, w, ch)) = conv_stack(g, group, "discriminator", c, &c.discriminator, strides, 1, seed);
        let mut width = h * w * ch;
        let mut dense = vec![];
        for (i, &out) in c.discriminator_dense.iter().enumerate() {
            dense.push(Dense::new(g, group, &format!("discriminator.dense{i}"), width, out, layer_seed(seed ^ 0x64, i)));
            width = out;
        }
        let k = c.conditions.len();
        let first = c.discriminator_dense.first().copied().filter(|_| k > 0);
        let condition = first.map(|w| condition_weight(g, group, "discriminator.condition", k, w, seed ^ 0x7964));
        DiscriminatorTrunk { convs, dense, condition, width }
    }

    /// (f: the last convolution's raw output, the trunk's output).
    /// For a conditioned model, the labels y join at the first dense layer.
    pub fn forward(&self, g: &mut Graph, x: TensorId, y: Option<TensorId>, c: &ModelConfig, phase: Phase) -> (TensorId, TensorId) {
        let mut h = x;
        let mut f = x;
        for b in &self.convs {
            (f, h) = b.forward(g, h, c.dis_act, phase);
        }
        let mut side = condition_term(g, y, self.condition);
        for d in &self.dense {
            h = d.forward(g, h, side.take(), c.dis_act, phase);
        }
        (f, h)
    }
}

//! The VAE-GAN of Larsen et al. (2016) as graphs: the training step (Algorithm 1), and the
//! evaluation and decoding graphs that share its parameter names.
//!
//! μ, logσ² = Enc(x);  z = μ + ε·σ;  z_p ~ N(0, I);  [x̃; x_p] = Dec([z; z_p]);
//! [f, logit] = Dis([x; x̃; x_p]) (f: the last hidden layer, the learned similarity).
//!
//! L_prior = KL(q(z|x) ‖ N(0, I)), batch mean
//! L_llike = ½‖f(x) − f(x̃)‖², batch mean
//! L_GAN_D = BCE(D(x), 1) + BCE(D(x̃), 0) + BCE(D(x_p), 0), batch means
//! L_GAN_G = BCE(D(x̃), 1) + BCE(D(x_p), 1)   (the non-saturating generator loss)
//! L_pixel = BCE(x̃, x) summed over pixels, batch mean (optional)
//!
//! L_mmd = MMD²(z, z_p), inverse multiquadric kernel (optional, weight λ = `latent_mmd`)
//! L_adv_z = BCE(D_z(z), 1); L_GAN_Dz = BCE(D_z(z_p), 1) + BCE(D_z(z), 0)   (optional, an
//!   adversarial autoencoder's latent discriminator D_z, weight λ_a = `latent_adversary`)
//!
//! encoder ← ∇(β·L_prior + L_llike + w·L_pixel + λ·L_mmd + λ_a·L_adv_z); D_z ← ∇L_GAN_Dz;  decoder ← ∇(γ·L_llike + L_GAN_G + w_dec·L_pixel);
//! discriminator ← ∇L_GAN_D. Mode `vae` trains encoder and decoder on L_pixel + β·L_prior.
//! The recipe's knobs (`ModelConfig`): β = `kl_weight`, w = `pixel_weight`, w_dec =
//! `pixel_weight_decoder` (default w); which fakes D and L_GAN_G see (`gan_fakes`: both,
//! prior samples only as the authors' final code, or reconstructions only) and the weight
//! of each fake term in L_GAN_D (`d_fake_weight`); which decoder passes move its batch-norm
//! running statistics (`decoder_bn_stats`).

use crate::graph::{Graph, LinearParams, LossKind, Result, TensorId};
use crate::nn::{condition_term, condition_weight, linear, Mlp};
use crate::types::Act;

use super::config::Arch;
pub use super::config::{Mode, ModelConfig};
use super::conv::{self, Phase};

/// The encoder's layers before its heads, by architecture.
enum EncoderTrunk {
    Mlp(Mlp),
    Conv(conv::EncoderTrunk),
}

/// Enc: hidden layers, then μ and logσ² heads from the last one.
pub struct Encoder {
    trunk: EncoderTrunk,
    mu: LinearParams,
    logvar: LinearParams,
}

impl Encoder {
    pub fn new(g: &mut Graph, group: usize, c: &ModelConfig, seed: u64) -> Self {
        let trunk = match c.arch {
            Arch::Mlp => EncoderTrunk::Mlp(Mlp::new(g, group, "encoder", &[vec![c.input], c.encoder.clone()].concat(), seed)),
            Arch::Conv => EncoderTrunk::Conv(conv::EncoderTrunk::new(g, group, c, seed)),
        };
        let last = c.encoder_output();
        Encoder {
            trunk,
            mu: linear(g, group, "encoder.mu", last, c.latent, seed ^ 0x6d75),
            logvar: linear(g, group, "encoder.logvar", last, c.latent, seed ^ 0x6c76),
        }
    }

    /// (μ, logσ²).
    pub fn forward(&self, g: &mut Graph, x: TensorId, c: &ModelConfig, phase: Phase) -> (TensorId, TensorId) {
        let h = match &self.trunk {
            EncoderTrunk::Mlp(m) => *m.forward(g, x, c.hidden_act, c.hidden_act).last().unwrap_or(&x),
            EncoderTrunk::Conv(t) => t.forward(g, x, c, phase),
        };
        let mu = g.linear(h, &self.mu, Act::None);
        let logvar = g.linear(h, &self.logvar, Act::None);
        (g.named(mu, "mu"), g.named(logvar, "logvar"))
    }
}

pub enum Decoder {
    /// The layers, and V of the labels y added to the first one's pre-activation
    /// (conditioned models).
    Mlp(Mlp, Option<TensorId>),
    Conv(Box<conv::Decoder>),
}

impl Decoder {
    pub fn new(g: &mut Graph, group: usize, c: &ModelConfig, seed: u64) -> Self {
        match c.arch {
            Arch::Mlp => {
                let widths: Vec<usize> = [vec![c.latent], c.decoder.clone(), vec![c.input]].concat();
                let mlp = Mlp::new(g, group, "decoder", &widths, seed.wrapping_add(1));
                let k = c.conditions.len();
                let condition = (k > 0).then(|| condition_weight(g, group, "decoder.condition", k, widths[1], seed ^ 0x7963));
                Decoder::Mlp(mlp, condition)
            }
            Arch::Conv => Decoder::Conv(Box::new(conv::Decoder::new(g, group, c, seed.wrapping_add(1)))),
        }
    }

    /// Images from codes z and, for a conditioned model, labels y (batch × labels).
    pub fn forward(&self, g: &mut Graph, z: TensorId, y: Option<TensorId>, c: &ModelConfig, phase: Phase) -> TensorId {
        match self {
            Decoder::Mlp(m, v) => {
                let side = condition_term(g, y, *v);
                *m.forward_with(g, z, side, c.hidden_act, c.output_act).last().unwrap()
            }
            Decoder::Conv(d) => d.forward(g, z, y, c, phase),
        }
    }
}

enum DiscriminatorTrunk {
    /// The layers, and V of the labels y added to the first one's pre-activation.
    Mlp(Mlp, Option<TensorId>),
    Conv(conv::DiscriminatorTrunk),
}

pub struct Discriminator {
    trunk: DiscriminatorTrunk,
    head: LinearParams,
}

impl Discriminator {
    pub fn new(g: &mut Graph, group: usize, c: &ModelConfig, seed: u64) -> Self {
        let (trunk, width) = match c.arch {
            Arch::Mlp => {
                let widths: Vec<usize> = [vec![c.input], c.discriminator.clone()].concat();
                let mlp = Mlp::new(g, group, "discriminator", &widths, seed.wrapping_add(2));
                let k = c.conditions.len();
                let condition = (k > 0).then(|| condition_weight(g, group, "discriminator.condition", k, widths[1], seed ^ 0x7964));
                (DiscriminatorTrunk::Mlp(mlp, condition), *widths.last().unwrap())
            }
            Arch::Conv => {
                let t = conv::DiscriminatorTrunk::new(g, group, c, seed.wrapping_add(2));
                let w = t.width;
                (DiscriminatorTrunk::Conv(t), w)
            }
        };
        Discriminator { trunk, head: linear(g, group, "discriminator.out", width, 1, seed ^ 0x6f75) }
    }

    /// (features f, logits): f is the last hidden layer (MLP) or the last convolution's
    /// raw output (conv).
    /// For a conditioned model, the labels y (batch × labels) of the images x.
    pub fn forward(&self, g: &mut Graph, x: TensorId, y: Option<TensorId>, c: &ModelConfig, phase: Phase) -> (TensorId, TensorId) {
        let (f, h) = match &self.trunk {
            DiscriminatorTrunk::Mlp(m, v) => {
                let side = condition_term(g, y, *v);
                let f = *m.forward_with(g, x, side, c.dis_act, c.dis_act).last().unwrap_or(&x);
                (f, f)
            }
            DiscriminatorTrunk::Conv(t) => t.forward(g, x, y, c, phase),
        };
        let logits = g.linear(h, &self.head, Act::None);
        (g.named(f, "features"), g.named(logits, "logits"))
    }
}

/// The encoder's terms that pull the aggregate posterior q(z) onto the prior the samples are
/// drawn from, each against this step's draws z_p (the ones the decoder samples): λ·MMD²(z,
/// z_p) (`latent_mmd`) and an adversarial autoencoder's λ·BCE(D_z(z), 1)
/// (`latent_adversary`), with the latent discriminator's own group and objective
/// L_GAN_Dz = BCE(D_z(z_p), 1) + BCE(D_z(z), 0). Each group's gradient comes from its own
/// objective, so D_z's loss does not reach the encoder nor the encoder's term D_z.
#[allow(clippy::too_many_arguments)]
fn latent_prior_terms(
    g: &mut Graph,
    c: &ModelConfig,
    batch: usize,
    z: TensorId,
    z_p: TensorId,
    seed: u64,
    enc_terms: &mut Vec<(f32, TensorId)>,
    losses: &mut Vec<(String, TensorId)>,
) -> Result<()> {
    if c.latent_mmd > 0.0 {
        let l_mmd = g.mmd(z, z_p);
        let l_mmd = g.named(l_mmd, "L_mmd");
        losses.push(("mmd".into(), l_mmd));
        enc_terms.push((c.latent_mmd, l_mmd));
    }
    if c.latent_adversary > 0.0 {
        let group = g.group("latent_discriminator");
        let widths = [vec![c.latent], c.latent_discriminator.clone(), vec![1]].concat();
        let d = Mlp::new(g, group, "latent_discriminator", &widths, seed.wrapping_add(3));
        let logit_z = *d.forward(g, z, c.dis_act, Act::None).last().unwrap();
        let logit_p = *d.forward(g, z_p, c.dis_act, Act::None).last().unwrap();
        let ones = g.constant("latent targets 1", [batch, 1], vec![1.0; batch]);
        let zeros = g.constant("latent targets 0", [batch, 1], vec![0.0; batch]);
        let scale = 1.0 / batch as f32;
        let fool = g.loss(LossKind::BceLogits, logit_z, ones, scale);
        let fool = g.named(fool, "L_adv_z");
        let d_p = g.loss(LossKind::BceLogits, logit_p, ones, scale);
        let d_z = g.loss(LossKind::BceLogits, logit_z, zeros, scale);
        let l_dz = g.weighted_sum(&[(1.0, d_p), (1.0, d_z)]);
        let l_dz = g.named(l_dz, "L_GAN_Dz");
        losses.push(("adv_z".into(), fool));
        losses.push(("gan_dz".into(), l_dz));
        enc_terms.push((c.latent_adversary, fool));
        g.objective(group, "latent_discriminator", l_dz)?;
    }
    Ok(())
}

/// The labels input y (batch × labels, 0 or 1 each) of a conditioned model, else None.
fn labels_input(g: &mut Graph, c: &ModelConfig, batch: usize) -> Option<TensorId> {
    (!c.conditions.is_empty()).then(|| g.input("y", [batch, c.conditions.len()]))
}

/// The labels of a joint pass over `times` batches: y stacked as the images are.
fn stacked(g: &mut Graph, y: Option<TensorId>, times: usize) -> Option<TensorId> {
    y.map(|y| if times == 1 { y } else { g.concat_rows(&vec![y; times]) })
}

/// A built step: the graph and the handles a trainer needs.
pub struct StepGraph {
    pub graph: Graph,
    pub config: ModelConfig,
    pub batch: usize,
    /// The data batch, batch × input.
    pub x: TensorId,
    /// The batch's labels, batch × labels (conditioned models; the prior samples z_p are
    /// decoded with the same labels, so that D sees them as often as in the data).
    pub y: Option<TensorId>,
    pub encoder: usize,
    pub decoder: usize,
    pub discriminator: Option<usize>,
    pub mu: TensorId,
    pub logvar: TensorId,
    /// Reconstructions x̃ = Dec(z).
    pub reconstruction: TensorId,
    /// Named scalar losses (also the graph's outputs).
    pub losses: Vec<(String, TensorId)>,
}

/// Builds the step graph for `config` at `batch`, initialising weights from `seed`.
pub fn build_step(c: &ModelConfig, batch: usize, seed: u64) -> Result<StepGraph> {
    if c.latent_mmd > 0.0 && batch < 2 {
        return Err(crate::graph::GraphError::Invalid(format!(
            "batch {batch} with model.latent_mmd = {}: the MMD compares at least 2 codes per batch",
            c.latent_mmd
        )));
    }
    let mut g = Graph::new();
    let b = batch as f32;
    let x = g.input("x", [batch, c.input]);
    let y = labels_input(&mut g, c, batch);
    let enc = g.group("encoder");
    let dec = g.group("decoder");
    let encoder = Encoder::new(&mut g, enc, c, seed);
    let decoder = Decoder::new(&mut g, dec, c, seed);
    let (mu, logvar) = encoder.forward(&mut g, x, c, Phase::Train);
    let (z, _eps) = g.reparam(mu, logvar, 0);
    let z = g.named(z, "z");
    let l_prior = g.kl_mean(mu, logvar);
    let l_prior = g.named(l_prior, "L_prior");
    let mut losses = vec![("kl".to_string(), l_prior)];

    let (reconstruction, discriminator) = match c.mode {
        Mode::Vae => {
            let x_rec = decoder.forward(&mut g, z, y, c, Phase::Train);
            let x_rec = g.named(x_rec, "x_rec");
            let l_pixel = g.loss(LossKind::BceProb, x_rec, x, 1.0 / b);
            let l_pixel = g.named(l_pixel, "L_pixel");
            let mut terms = vec![(1.0, l_pixel), (c.kl_weight, l_prior)];
            if c.latent_mmd > 0.0 || c.latent_adversary > 0.0 {
                let z_p = g.randn([batch, c.latent], 1);
                latent_prior_terms(&mut g, c, batch, z, z_p, seed, &mut terms, &mut losses)?;
            }
            let total = g.weighted_sum(&terms);
            let total = g.named(total, "L_vae");
            losses.push(("bce".into(), l_pixel));
            losses.push(("loss".into(), total));
            // Both groups follow the one VAE objective.
            g.objective(enc, "encoder", total)?;
            g.objective(dec, "decoder", total)?;
            (x_rec, None)
        }
        Mode::VaeGan => {
            let dis = g.group("discriminator");
            let discriminator = Discriminator::new(&mut g, dis, c, seed);
            // The decoder and the discriminator run on each batch separately rather than on
            // concatenated batches: the same forward work, but each objective's backward
            // then visits only the rows it depends on (the encoder's only x̃, the decoder's
            // x̃ and x_p), instead of all rows with zero gradients in the rest.
            let z_p = g.randn([batch, c.latent], 1);
            let z_p = g.named(z_p, "z_p");
            let (x_rec, x_p, f_real, f_rec, logit_real, logit_rec, logit_p) = if c.arch == Arch::Mlp || !c.joint_batches {
                // Each pass moves the decoder's running statistics or leaves them
                // (`decoder_bn_stats`: what samples are decoded with after training).
                let (rec_updates, p_updates) = c.decoder_bn_stats.updates();
                let phase = |updates: bool| if updates { Phase::Train } else { Phase::TrainKeepStats };
                let x_rec = decoder.forward(&mut g, z, y, c, phase(rec_updates));
                let x_p = decoder.forward(&mut g, z_p, y, c, phase(p_updates));
                let (f_real, logit_real) = discriminator.forward(&mut g, x, y, c, Phase::Train);
                let (f_rec, logit_rec) = discriminator.forward(&mut g, x_rec, y, c, Phase::Train);
                let (_, logit_p) = discriminator.forward(&mut g, x_p, y, c, Phase::Train);
                (x_rec, x_p, f_real, f_rec, logit_real, logit_rec, logit_p)
            } else {
                // With batch norm the batches a network sees together matter: as the
                // authors' code, the decoder runs once on [z; z_p] and the discriminator
                // once on [x; x̃; x_p], so that their statistics cover real and generated
                // images alike (one pass each, one running-statistics update per step).
                let zz = g.concat_rows(&[z, z_p]);
                let yy = stacked(&mut g, y, 2);
                let xx = decoder.forward(&mut g, zz, yy, c, Phase::Train);
                let x_rec = g.slice_rows(xx, 0, batch);
                let x_p = g.slice_rows(xx, batch, batch);
                let all = g.concat_rows(&[x, xx]);
                let yyy = stacked(&mut g, y, 3);
                let (f, logits) = discriminator.forward(&mut g, all, yyy, c, Phase::Train);
                let rows = |g: &mut Graph, t: TensorId, i: usize| g.slice_rows(t, i * batch, batch);
                let (f_real, f_rec) = (rows(&mut g, f, 0), rows(&mut g, f, 1));
                let (logit_real, logit_rec, logit_p) = (rows(&mut g, logits, 0), rows(&mut g, logits, 1), rows(&mut g, logits, 2));
                (x_rec, x_p, f_real, f_rec, logit_real, logit_rec, logit_p)
            };
            let x_rec = g.named(x_rec, "x_rec");
            g.named(x_p, "x_p");

            // f(x) is a target for L_llike: the encoder and decoder can only move f(x̃), and
            // the discriminator does not learn from L_llike, so no gradient flows to f(x).
            let f_real = g.stop_gradient(f_real);
            let l_llike = g.loss(LossKind::SqErr, f_rec, f_real, 0.5 / b);
            let l_llike = g.named(l_llike, "L_llike");
            let ones = g.constant("targets 1", [batch, 1], vec![1.0; batch]);
            let zeros = g.constant("targets 0", [batch, 1], vec![0.0; batch]);
            let bce = |g: &mut Graph, logits: TensorId, target: TensorId| g.loss(LossKind::BceLogits, logits, target, 1.0 / b);
            // D's batch-mean BCE on real images, on reconstructions and on prior samples;
            // the fakes it learns from (`gan_fakes`), each weighted `d_fake_weight`.
            let (sees_rec, sees_p) = c.gan_fakes.sees();
            let d_real = bce(&mut g, logit_real, ones);
            let d_rec = bce(&mut g, logit_rec, zeros);
            let d_p = bce(&mut g, logit_p, zeros);
            let mut d_terms = vec![(1.0, d_real)];
            let mut g_terms = vec![];
            for (seen, d_term, logit) in [(sees_rec, d_rec, logit_rec), (sees_p, d_p, logit_p)] {
                if seen {
                    d_terms.push((c.d_fake_weight, d_term));
                    g_terms.push((1.0, bce(&mut g, logit, ones)));
                }
            }
            let l_gan_d = g.weighted_sum(&d_terms);
            let l_gan_d = g.named(l_gan_d, "L_GAN_D");
            let l_gan_g = g.weighted_sum(&g_terms);
            let l_gan_g = g.named(l_gan_g, "L_GAN_G");
            // For balancing and monitoring: D's BCE on real and (mean) on generated images.
            let d_fake = g.weighted_sum(&[(0.5, d_rec), (0.5, d_p)]);

            let mut enc_terms = vec![(c.kl_weight, l_prior), (1.0, l_llike)];
            latent_prior_terms(&mut g, c, batch, z, z_p, seed, &mut enc_terms, &mut losses)?;
            let mut dec_terms = vec![(c.gamma, l_llike), (1.0, l_gan_g)];
            losses.push(("llike".into(), l_llike));
            losses.push(("gan_d".into(), l_gan_d));
            losses.push(("gan_g".into(), l_gan_g));
            losses.push(("d_real".into(), d_real));
            losses.push(("d_fake".into(), d_fake));
            if c.pixel_weight > 0.0 || c.decoder_pixel_weight() > 0.0 {
                let l_pixel = g.loss(LossKind::BceProb, x_rec, x, 1.0 / b);
                let l_pixel = g.named(l_pixel, "L_pixel");
                for (terms, w) in [(&mut enc_terms, c.pixel_weight), (&mut dec_terms, c.decoder_pixel_weight())] {
                    if w > 0.0 {
                        terms.push((w, l_pixel));
                    }
                }
                losses.push(("bce".into(), l_pixel));
            }
            let l_enc = g.weighted_sum(&enc_terms);
            let l_enc = g.named(l_enc, "L_enc");
            let l_dec = g.weighted_sum(&dec_terms);
            let l_dec = g.named(l_dec, "L_dec");
            g.objective(enc, "encoder", l_enc)?;
            g.objective(dec, "decoder", l_dec)?;
            g.objective(dis, "discriminator", l_gan_d)?;
            (x_rec, Some(dis))
        }
    };
    for (name, t) in &losses {
        g.output(name, *t);
    }
    Ok(StepGraph { graph: g, config: c.clone(), batch, x, y, encoder: enc, decoder: dec, discriminator, mu, logvar, reconstruction, losses })
}

/// The evaluation graph: for a batch of test images, the negative ELBO terms with a
/// sampled z (as the classic PyTorch example measures it), the reconstruction from the
/// mean μ (for pictures and pixel error), and the discriminator's logits on real images
/// and on samples from the prior.
pub struct EvalGraph {
    pub graph: Graph,
    pub batch: usize,
    pub x: TensorId,
    /// The images' labels (conditioned models): every decode and D's logits use them.
    pub y: Option<TensorId>,
    /// Dec(μ): the deterministic reconstruction.
    pub reconstruction: TensorId,
    /// Σ over pixels of BCE(Dec(z), x), batch mean — nats per image.
    pub bce: TensorId,
    /// KL per image, batch mean — nats per image.
    pub kl: TensorId,
    /// Mean squared pixel error of Dec(μ).
    pub mse: TensorId,
    /// D's logits on [x; Dec(z_p)] (vae-gan only): a D that trains a pass per batch
    /// normalises each half by its own batch, as it trained; a joint D reads both with its
    /// running statistics.
    pub logits: Option<TensorId>,
}

pub fn build_eval(c: &ModelConfig, batch: usize) -> Result<EvalGraph> {
    let mut g = Graph::new();
    let b = batch as f32;
    let x = g.input("x", [batch, c.input]);
    let y = labels_input(&mut g, c, batch);
    let enc = g.group("encoder");
    let dec = g.group("decoder");
    let encoder = Encoder::new(&mut g, enc, c, 0);
    let decoder = Decoder::new(&mut g, dec, c, 0);
    let (mu, logvar) = encoder.forward(&mut g, x, c, Phase::Eval);
    let (z, _) = g.reparam(mu, logvar, 0);
    let z_p = g.randn([batch, c.latent], 1);
    let zz = g.concat_rows(&[z, mu, z_p]);
    let yyy = stacked(&mut g, y, 3);
    let xx = decoder.forward(&mut g, zz, yyy, c, Phase::Eval);
    let x_sampled = g.slice_rows(xx, 0, batch);
    let reconstruction = g.slice_rows(xx, batch, batch);
    let generated = g.slice_rows(xx, 2 * batch, batch);
    let bce = g.loss(LossKind::BceProb, x_sampled, x, 1.0 / b);
    let kl = g.kl_mean(mu, logvar);
    let mse = g.loss(LossKind::SqErr, reconstruction, x, 1.0 / (b * c.input as f32));
    for (name, t) in [("bce", bce), ("kl", kl), ("mse", mse)] {
        g.output(name, t);
    }
    g.keep(reconstruction);
    let logits = match c.mode {
        Mode::Vae => None,
        Mode::VaeGan => {
            let dis = g.group("discriminator");
            let d = Discriminator::new(&mut g, dis, c, 0);
            let logits = if c.arch == Arch::Mlp || !c.joint_batches {
                // Training runs D once per batch (real images, then samples), each pass
                // normalised by its own batch. The running statistics average those different
                // batches, so no one pass resembles them: a D read with them in eval mode
                // drifts (a conditioned `mnist-conv` gave every test image and sample a
                // negative logit). Each half is normalised by its own batch here, as in
                // training; momentum 0 leaves the statistics as they are.
                let real = d.forward(&mut g, x, y, c, Phase::TrainKeepStats).1;
                let fake = d.forward(&mut g, generated, y, c, Phase::TrainKeepStats).1;
                g.concat_rows(&[real, fake])
            } else {
                let both = g.concat_rows(&[x, generated]);
                let yy = stacked(&mut g, y, 2);
                d.forward(&mut g, both, yy, c, Phase::Eval).1
            };
            g.keep(logits);
            Some(logits)
        }
    };
    Ok(EvalGraph { graph: g, batch, x, y, reconstruction, bce, kl, mse, logits })
}

/// The decoder alone: z (batch × latent) and, for a conditioned model, labels y (batch ×
/// labels) → images.
pub struct DecodeGraph {
    pub graph: Graph,
    pub z: TensorId,
    pub y: Option<TensorId>,
    pub images: TensorId,
}

pub fn build_decode(c: &ModelConfig, batch: usize) -> Result<DecodeGraph> {
    build_decode_in(c, batch, Phase::Eval)
}

/// The decoder alone with batch norm in `phase`: `Phase::Train` normalises by each batch's
/// statistics and moves the running statistics toward them (momentum 0.1), which is how
/// `train::restat` re-estimates them on prior samples.
pub fn build_decode_in(c: &ModelConfig, batch: usize, phase: Phase) -> Result<DecodeGraph> {
    let mut g = Graph::new();
    let z = g.input("z", [batch, c.latent]);
    let y = labels_input(&mut g, c, batch);
    let dec = g.group("decoder");
    let decoder = Decoder::new(&mut g, dec, c, 0);
    let images = decoder.forward(&mut g, z, y, c, phase);
    g.keep(images);
    Ok(DecodeGraph { graph: g, z, y, images })
}

/// The encoder alone: images (batch × input) → (μ, logσ²), batch norm in eval mode.
pub struct EncodeGraph {
    pub graph: Graph,
    pub x: TensorId,
    pub mu: TensorId,
    pub logvar: TensorId,
}

pub fn build_encode(c: &ModelConfig, batch: usize) -> Result<EncodeGraph> {
    let mut g = Graph::new();
    let x = g.input("x", [batch, c.input]);
    let enc = g.group("encoder");
    let encoder = Encoder::new(&mut g, enc, c, 0);
    let (mu, logvar) = encoder.forward(&mut g, x, c, Phase::Eval);
    g.keep(mu);
    g.keep(logvar);
    Ok(EncodeGraph { graph: g, x, mu, logvar })
}

/// The discriminator alone: images → (features f, logits), batch norm in eval mode.
/// `None` for a model without one (mode `vae`).
pub struct DiscriminateGraph {
    pub graph: Graph,
    pub x: TensorId,
    /// The images' labels (conditioned models).
    pub y: Option<TensorId>,
    pub features: TensorId,
    pub logits: TensorId,
}

pub fn build_discriminate(c: &ModelConfig, batch: usize) -> Result<Option<DiscriminateGraph>> {
    if c.mode != Mode::VaeGan {
        return Ok(None);
    }
    let mut g = Graph::new();
    let x = g.input("x", [batch, c.input]);
    let y = labels_input(&mut g, c, batch);
    let dis = g.group("discriminator");
    let d = Discriminator::new(&mut g, dis, c, 0);
    let (features, logits) = d.forward(&mut g, x, y, c, Phase::Eval);
    g.keep(features);
    g.keep(logits);
    Ok(Some(DiscriminateGraph { graph: g, x, y, features, logits }))
}

/// The parameters a config's model has: (name, [rows, cols]) in group order, as the step
/// graph names them (what a checkpoint must hold).
pub fn param_shapes(c: &ModelConfig) -> Result<Vec<(String, [usize; 2])>> {
    // Any batch gives the same parameters; 2 is the smallest every objective accepts (the MMD
    // compares two codes).
    let step = build_step(c, 2, 0)?;
    let g = &step.graph;
    Ok(g.params().map(|p| (g.name(p).to_string(), [g.shape(p).rows, g.shape(p).cols])).collect())
}

/// The model's state that is not trained by gradients (batch norm's running statistics):
/// (name, [rows, cols]), also part of a checkpoint.
pub fn state_shapes(c: &ModelConfig) -> Result<Vec<(String, [usize; 2])>> {
    let step = build_step(c, 2, 0)?;
    let g = &step.graph;
    Ok(g.state.iter().map(|&t| (g.name(t).to_string(), [g.shape(t).rows, g.shape(t).cols])).collect())
}

/// FLOPs of one training step per sample: every matmul and convolution of the step graph,
/// forward and backward (elementwise work left out).
pub fn step_flops_per_sample(c: &ModelConfig, batch: usize) -> Result<f64> {
    Ok(build_step(c, batch, 0)?.graph.flops() / batch as f64)
}

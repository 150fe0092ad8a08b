//! One training step of a VAE-GAN (Larsen et al. 2016, Algorithm 1) as a graph:
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
//! encoder ← ∇(L_prior + L_llike + w·L_pixel);  decoder ← ∇(γ·L_llike + L_GAN_G + w·L_pixel);
//! discriminator ← ∇L_GAN_D. Mode `vae` trains encoder and decoder on L_pixel + L_prior.

use crate::graph::{Graph, LossKind, Result, TensorId};
use crate::kernels::Act;
use crate::nn::Mlp;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    VaeGan,
    Vae,
}

#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub input: usize,
    pub encoder: Vec<usize>,
    pub latent: usize,
    pub decoder: Vec<usize>,
    pub discriminator: Vec<usize>,
    pub hidden_act: Act,
    pub dis_act: Act,
    /// Sigmoid for data in [0, 1], tanh for [−1, 1].
    pub output_act: Act,
    pub mode: Mode,
    /// Weight of L_llike in the decoder's objective.
    pub gamma: f32,
    /// Weight of the pixel BCE in encoder and decoder objectives (vae-gan mode).
    pub pixel_weight: f32,
}

impl ModelConfig {
    /// DESIGN.md's reference model.
    pub fn mnist_mlp() -> Self {
        ModelConfig {
            input: 784,
            encoder: vec![512, 256],
            latent: 32,
            decoder: vec![256, 512],
            discriminator: vec![512, 256],
            hidden_act: Act::Relu,
            dis_act: Act::LeakyRelu(0.2),
            output_act: Act::Sigmoid,
            mode: Mode::VaeGan,
            gamma: 1.0,
            pixel_weight: 0.0,
        }
    }

    /// The classic PyTorch example: 784→400→20, 20→400→784, BCE + KL.
    pub fn pytorch_vae() -> Self {
        ModelConfig {
            encoder: vec![400],
            latent: 20,
            decoder: vec![400],
            discriminator: vec![],
            mode: Mode::Vae,
            ..Self::mnist_mlp()
        }
    }

    /// FLOPs of one step per sample (multiply-adds ×2 of every matmul, forward and backward).
    pub fn flops_per_sample(&self) -> f64 {
        let mm = |w: &[usize]| w.windows(2).map(|p| (p[0] * p[1]) as f64).sum::<f64>();
        let enc: Vec<usize> = [vec![self.input], self.encoder.clone()].concat();
        let heads = 2.0 * (*self.encoder.last().unwrap_or(&self.input) * self.latent) as f64;
        let dec: Vec<usize> = [vec![self.latent], self.decoder.clone(), vec![self.input]].concat();
        let dis: Vec<usize> = [vec![self.input], self.discriminator.clone(), vec![1]].concat();
        let (e, d, s) = (mm(&enc) + heads, mm(&dec), mm(&dis));
        match self.mode {
            // forward 2 flops/MAC, backward 4: encoder ×1, decoder on 2 batches, D on 3.
            Mode::Vae => 6.0 * (e + d),
            Mode::VaeGan => 6.0 * (e + 2.0 * d + 3.0 * s),
        }
    }
}

/// A built step: the graph and the handles a trainer needs.
pub struct StepGraph {
    pub graph: Graph,
    pub config: ModelConfig,
    pub batch: usize,
    /// The data batch, batch × input.
    pub x: TensorId,
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
pub fn build_step(config: &ModelConfig, batch: usize, seed: u64) -> Result<StepGraph> {
    let c = config;
    let mut g = Graph::new();
    let b = batch as f32;
    let x = g.input("x", [batch, c.input]);
    let enc = g.group("encoder");
    let dec = g.group("decoder");

    // Encoder: hidden layers, then two heads from the last hidden layer.
    let enc_widths: Vec<usize> = [vec![c.input], c.encoder.clone()].concat();
    let trunk = Mlp::new(&mut g, enc, "encoder", &enc_widths, seed);
    let h = *trunk.forward(&mut g, x, c.hidden_act, c.hidden_act).last().unwrap_or(&x);
    let last = *enc_widths.last().unwrap();
    let mu_head = crate::nn::linear(&mut g, enc, "encoder.mu", last, c.latent, seed ^ 0x6d75);
    let lv_head = crate::nn::linear(&mut g, enc, "encoder.logvar", last, c.latent, seed ^ 0x6c76);
    let mu = g.linear(h, &mu_head, Act::None);
    let mu = g.named(mu, "mu");
    let logvar = g.linear(h, &lv_head, Act::None);
    let logvar = g.named(logvar, "logvar");
    let (z, _eps) = g.reparam(mu, logvar, 0);
    let z = g.named(z, "z");
    let l_prior = g.kl_mean(mu, logvar);
    let l_prior = g.named(l_prior, "L_prior");

    let dec_widths: Vec<usize> = [vec![c.latent], c.decoder.clone(), vec![c.input]].concat();
    let decoder = Mlp::new(&mut g, dec, "decoder", &dec_widths, seed.wrapping_add(1));
    let mut losses = vec![("kl".to_string(), l_prior)];

    let (reconstruction, discriminator) = match c.mode {
        Mode::Vae => {
            let x_rec = *decoder.forward(&mut g, z, c.hidden_act, c.output_act).last().unwrap();
            let x_rec = g.named(x_rec, "x_rec");
            let l_pixel = g.loss(LossKind::BceProb, x_rec, x, 1.0 / b);
            let l_pixel = g.named(l_pixel, "L_pixel");
            let total = g.weighted_sum(&[(1.0, l_pixel), (1.0, l_prior)]);
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
            // One decoder pass over [z; z_p], one discriminator pass over [x; x̃; x_p].
            let z_p = g.randn([batch, c.latent], 1);
            let z_p = g.named(z_p, "z_p");
            let zz = g.concat_rows(&[z, z_p]);
            let xx = *decoder.forward(&mut g, zz, c.hidden_act, c.output_act).last().unwrap();
            let x_rec = g.slice_rows(xx, 0, batch);
            let x_rec = g.named(x_rec, "x_rec");
            let dd = g.concat_rows(&[x, xx]);
            let dis_widths: Vec<usize> = [vec![c.input], c.discriminator.clone()].concat();
            let trunk = Mlp::new(&mut g, dis, "discriminator", &dis_widths, seed.wrapping_add(2));
            let f = *trunk.forward(&mut g, dd, c.dis_act, c.dis_act).last().unwrap_or(&dd);
            let f = g.named(f, "features");
            let head = crate::nn::linear(&mut g, dis, "discriminator.out", *dis_widths.last().unwrap(), 1, seed ^ 0x6f75);
            let logits = g.linear(f, &head, Act::None);
            let logits = g.named(logits, "logits");

            // f(x) is a target for L_llike: the encoder and decoder can only move f(x̃), and
            // the discriminator does not learn from L_llike, so no gradient flows to f(x).
            let f_real = g.slice_rows(f, 0, batch);
            let f_real = g.stop_gradient(f_real);
            let f_rec = g.slice_rows(f, batch, batch);
            let l_llike = g.loss(LossKind::SqErr, f_rec, f_real, 0.5 / b);
            let l_llike = g.named(l_llike, "L_llike");
            let mut d_target = vec![1.0f32; batch];
            d_target.extend(vec![0.0f32; 2 * batch]);
            let d_target = g.constant("D targets [1; 0; 0]", [3 * batch, 1], d_target);
            let l_gan_d = g.loss(LossKind::BceLogits, logits, d_target, 1.0 / b);
            let l_gan_d = g.named(l_gan_d, "L_GAN_D");
            let fake_logits = g.slice_rows(logits, batch, 2 * batch);
            let ones = g.constant("G targets 1", [2 * batch, 1], vec![1.0; 2 * batch]);
            let l_gan_g = g.loss(LossKind::BceLogits, fake_logits, ones, 1.0 / b);
            let l_gan_g = g.named(l_gan_g, "L_GAN_G");

            let mut enc_terms = vec![(1.0, l_prior), (1.0, l_llike)];
            let mut dec_terms = vec![(c.gamma, l_llike), (1.0, l_gan_g)];
            losses.push(("llike".into(), l_llike));
            losses.push(("gan_d".into(), l_gan_d));
            losses.push(("gan_g".into(), l_gan_g));
            if c.pixel_weight > 0.0 {
                let l_pixel = g.loss(LossKind::BceProb, x_rec, x, 1.0 / b);
                let l_pixel = g.named(l_pixel, "L_pixel");
                enc_terms.push((c.pixel_weight, l_pixel));
                dec_terms.push((c.pixel_weight, l_pixel));
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
    Ok(StepGraph { graph: g, config: config.clone(), batch, x, encoder: enc, decoder: dec, discriminator, mu, logvar, reconstruction, losses })
}

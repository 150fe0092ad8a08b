//! Model and optimiser configuration: presets, and TOML files that start from a preset and
//! override any field. Unknown keys, wrong types and impossible values are refused with
//! the file and the key named.

use serde::{Deserialize, Serialize};

use crate::types::{Act, AdamParams, Precision, RmsPropParams, UpdateRule};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    VaeGan,
    Vae,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "vae-gan" | "vaegan" => Ok(Mode::VaeGan),
            "vae" => Ok(Mode::Vae),
            _ => Err(format!("unknown mode {s:?}: expected vae-gan or vae")),
        }
    }
}

/// Which generated images the discriminator learns to reject and the decoder's GAN term
/// tries to pass off as real.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GanFakes {
    /// Reconstructions x̃ and prior samples x_p (Larsen et al.'s paper, Algorithm 1).
    #[default]
    Both,
    /// Prior samples x_p only (the authors' final code: `discriminate_ae_recon = False`).
    Prior,
    /// Reconstructions x̃ only.
    Reconstructions,
}

impl GanFakes {
    /// (reconstructions, prior samples) seen.
    pub fn sees(self) -> (bool, bool) {
        match self {
            GanFakes::Both => (true, true),
            GanFakes::Prior => (false, true),
            GanFakes::Reconstructions => (true, false),
        }
    }
}

impl std::str::FromStr for GanFakes {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "both" => Ok(GanFakes::Both),
            "prior" => Ok(GanFakes::Prior),
            "reconstructions" => Ok(GanFakes::Reconstructions),
            _ => Err(format!("unknown value {s:?}: expected both, prior or reconstructions")),
        }
    }
}

/// Which of the decoder's training passes move its batch-norm running statistics: the
/// statistics that samples and reconstructions are decoded with after training.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BnStats {
    /// The pass over the posterior codes z and the pass over the prior codes z_p (about half
    /// each): what one batch-norm layer used twice per step does.
    #[default]
    Both,
    /// The prior pass only: samples from N(0, I) are decoded with statistics of decoded prior
    /// codes (the authors' code keeps a separate decoder copy for z_p, with its own).
    Prior,
    /// The posterior pass only: statistics of reconstructions.
    Posterior,
}

impl BnStats {
    /// (the posterior pass updates, the prior pass updates).
    pub fn updates(self) -> (bool, bool) {
        match self {
            BnStats::Both => (true, true),
            BnStats::Prior => (false, true),
            BnStats::Posterior => (true, false),
        }
    }
}

impl std::str::FromStr for BnStats {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "both" => Ok(BnStats::Both),
            "prior" => Ok(BnStats::Prior),
            "posterior" => Ok(BnStats::Posterior),
            _ => Err(format!("unknown value {s:?}: expected both, prior or posterior")),
        }
    }
}

/// How the three networks are built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// Dense layers: `encoder`, `decoder` and `discriminator` are layer widths.
    #[default]
    Mlp,
    /// Larsen et al.'s convolutional networks: `encoder`, `decoder` and `discriminator`
    /// are channel counts of `kernel`×`kernel` convolutions (stride 2, batch norm, except the
    /// discriminator's first, stride 1 without batch norm), followed (encoder,
    /// discriminator) or preceded (decoder) by dense layers; see `model::conv`.
    Conv,
}

/// The update rule of one parameter group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Optimizer {
    #[default]
    Adam,
    /// RMSProp (Tieleman & Hinton 2012) as Larsen et al. train: v ← ρv + (1−ρ)g²,
    /// p ← p − lr·g/(√v + ε).
    Rmsprop,
}

impl std::fmt::Display for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Optimizer::Adam => "adam",
            Optimizer::Rmsprop => "rmsprop",
        })
    }
}

fn mnist_image() -> [usize; 3] {
    [28, 28, 1]
}
fn five() -> usize {
    5
}
fn yes() -> bool {
    true
}
fn one_usize() -> usize {
    1
}
fn rho() -> f32 {
    0.9
}
fn one() -> f32 {
    1.0
}
fn latent_discriminator_widths() -> Vec<usize> {
    vec![256, 256]
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Values per image, height·width·channels (set from the data).
    pub input: usize,
    /// [height, width, channels] of the images (set from the data; absent in checkpoints
    /// written before colour data: MNIST's).
    #[serde(default = "mnist_image")]
    pub image: [usize; 3],
    #[serde(default)]
    pub arch: Arch,
    /// Side of the square convolution kernels (conv arch).
    #[serde(default = "five")]
    pub kernel: usize,
    pub encoder: Vec<usize>,
    /// Dense layers after the encoder's convolutions (conv arch).
    #[serde(default)]
    pub encoder_dense: Vec<usize>,
    pub latent: usize,
    pub decoder: Vec<usize>,
    pub discriminator: Vec<usize>,
    /// Dense layers after the discriminator's convolutions (conv arch).
    #[serde(default)]
    pub discriminator_dense: Vec<usize>,
    /// Stride of the discriminator's first convolution (conv arch): 1 in Larsen et al.'s
    /// model; 2 halves the cost of the full-resolution layer.
    #[serde(default = "one_usize")]
    pub dis_first_stride: usize,
    /// The decoder ends with a stride-1 conv to the image's channels, as Larsen et al.'s
    /// (conv arch); false: its last transposed convolution outputs the image (DCGAN's
    /// ending, cheaper at full resolution).
    #[serde(default = "yes")]
    pub decoder_final_conv: bool,
    /// The decoder runs once on [z; z_p] and the discriminator once on [x; x̃; x_p], so that
    /// batch norm's statistics cover all of them (the authors' code; conv arch). False: a
    /// pass per batch, each normalised by its own statistics (DCGAN's advice: real and
    /// generated images in separate batches).
    #[serde(default = "yes")]
    pub joint_batches: bool,
    pub hidden_act: Act,
    pub dis_act: Act,
    /// Sigmoid for data in [0, 1], tanh for [−1, 1].
    pub output_act: Act,
    pub mode: Mode,
    /// Weight of L_llike in the decoder's objective.
    pub gamma: f32,
    /// Weight of the pixel BCE in encoder and decoder objectives (vae-gan mode).
    pub pixel_weight: f32,
    /// The decoder's own weight of the pixel BCE (vae-gan mode); absent: `pixel_weight`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_weight_decoder: Option<f32>,
    /// Weight of L_prior (the KL term) in the encoder's objective (a β-VAE's β; 1: the ELBO).
    #[serde(default = "one")]
    pub kl_weight: f32,
    /// The generated images the discriminator and the decoder's GAN term see.
    #[serde(default)]
    pub gan_fakes: GanFakes,
    /// Weight of each generated batch's BCE in the discriminator's loss against 1 for the
    /// real batch (1: two fake terms weigh 2:1 against the real one; 0.5 balances them).
    #[serde(default = "one")]
    pub d_fake_weight: f32,
    /// Which decoder passes move its batch-norm running statistics (conv arch with
    /// `joint_batches = false`; a joint pass has one set of statistics for both).
    #[serde(default)]
    pub decoder_bn_stats: BnStats,
    /// Weight λ of MMD²(q(z), N(0, I)) in the encoder's objective: the squared maximum mean
    /// discrepancy between the batch's sampled codes z and the step's prior draws z_p under
    /// the inverse multiquadric kernel C/(C + ‖a − b‖²), C = 2·latent (Tolstikhin et al.
    /// 2018's Wasserstein autoencoder penalty), pulling the aggregate posterior onto the prior
    /// that samples are drawn from. 0: off.
    #[serde(default)]
    pub latent_mmd: f32,
    /// Weight of an adversarial autoencoder's term in the encoder's objective (Makhzani et
    /// al. 2015): a latent discriminator D_z (its own parameter group, trained at the
    /// discriminator's rate and rule) learns to tell the step's prior draws z_p from the
    /// batch's codes z, and the encoder is trained to make its codes pass as prior draws,
    /// BCE(D_z(z), 1). 0: off, and no latent discriminator.
    #[serde(default)]
    pub latent_adversary: f32,
    /// Hidden widths of the latent discriminator (dense, `dis_act`).
    #[serde(default = "latent_discriminator_widths")]
    pub latent_discriminator: Vec<usize>,
    /// Attribute-conditioned generation (Larsen et al.'s conditional VAE-GAN): the names of
    /// the labels y (0 or 1 each; a digit's one-hot, or attributes such as "red") that the
    /// decoder and the discriminator read beside z and the image. Set from the data's labels
    /// by `vaegan train --conditioned`; empty: an unconditioned model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    pub lr_encoder: f32,
    pub lr_decoder: f32,
    pub lr_discriminator: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Larsen et al.'s balancing: skip the discriminator's update while its BCE on real
    /// or on generated images is below `margin`, and the decoder's while either is above
    /// `equilibrium + margin`... as in their code (equilibrium 0.68, margin 0.35).
    pub balance: bool,
    pub equilibrium: f32,
    pub margin: f32,
    /// What the matmuls read: "f32", or "f16" (mixed precision: f32 master weights, Adam
    /// and accumulation; needs SHADER_F16). Absent in older checkpoints: f32.
    #[serde(default)]
    pub precision: Precision,
    /// Each group's update rule (`optimizer = "…"` in a TOML file sets all three).
    #[serde(default)]
    pub optimizer_encoder: Optimizer,
    #[serde(default)]
    pub optimizer_decoder: Optimizer,
    #[serde(default)]
    pub optimizer_discriminator: Optimizer,
    /// RMSProp's decay of its mean square (`eps` is shared with Adam).
    #[serde(default = "rho")]
    pub rho: f32,
    /// Every group's learning rate is multiplied by this after each epoch (1: constant).
    #[serde(default = "one")]
    pub lr_decay: f32,
    /// Polyak averaging of the decoder's weights (Yazici et al. 2019): an exponential moving
    /// average with this decay per decoder update (warming up as `kernels::ema::decay_at`
    /// says) is kept beside the weights, and every use of the trained model — the epochs'
    /// samples and FD, `sample`, `eval`, `reconstruct`, `edit`, exports — decodes with it,
    /// its batch-norm statistics re-estimated on prior codes at each checkpoint. Training
    /// itself goes on with the last weights. 0: off. May be turned on at a resume.
    #[serde(default)]
    pub decoder_ema: f32,
}

/// Everything that defines a run's model and optimiser (stored in checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub model: ModelConfig,
    pub optim: OptimConfig,
}

impl ModelConfig {
    /// The parameter groups the model trains: encoder, decoder, the discriminator (vae-gan)
    /// and the latent discriminator (`latent_adversary` > 0), in the step graph's order.
    pub fn groups(&self) -> usize {
        2 + usize::from(self.mode == Mode::VaeGan) + usize::from(self.latent_adversary > 0.0)
    }

    /// The decoder's weight of the pixel BCE: its own, or the shared `pixel_weight`.
    pub fn decoder_pixel_weight(&self) -> f32 {
        self.pixel_weight_decoder.unwrap_or(self.pixel_weight)
    }

    /// The project's reference model (README, "Models and configs"), with the pixel term on: without it, on these MLPs, the
    /// encoder's posterior collapsed (KL → 0.3) and every z decoded to the same blot
    /// (README, "Results"); `pixel_weight = 0` gives Larsen et al.'s objective unchanged.
    pub fn mnist_mlp() -> Self {
        ModelConfig {
            input: 784,
            image: mnist_image(),
            arch: Arch::Mlp,
            kernel: 5,
            encoder: vec![512, 256],
            encoder_dense: vec![],
            latent: 32,
            decoder: vec![256, 512],
            discriminator: vec![512, 256],
            discriminator_dense: vec![],
            dis_first_stride: 1,
            decoder_final_conv: true,
            joint_batches: true,
            hidden_act: Act::Relu,
            dis_act: Act::LeakyRelu(0.2),
            output_act: Act::Sigmoid,
            mode: Mode::VaeGan,
            gamma: 1.0,
            pixel_weight: 1.0,
            pixel_weight_decoder: None,
            kl_weight: 1.0,
            gan_fakes: GanFakes::Both,
            d_fake_weight: 1.0,
            decoder_bn_stats: BnStats::Both,
            latent_mmd: 0.0,
            latent_adversary: 0.0,
            latent_discriminator: latent_discriminator_widths(),
            conditions: vec![],
        }
    }

    /// The classic PyTorch example: 784→400→20, 20→400→784, BCE + KL.
    pub fn pytorch_vae() -> Self {
        ModelConfig { encoder: vec![400], latent: 20, decoder: vec![400], discriminator: vec![], mode: Mode::Vae, ..Self::mnist_mlp() }
    }

    /// A small convolutional VAE-GAN for 28×28 grey images, Larsen et al.'s layout scaled
    /// down to train on a CPU adapter in minutes per epoch: encoder 5×5 convs 16/32 (stride
    /// 2, 28 → 14 → 7, batch norm, ReLU), dense 128, latent 32; decoder dense to 7·7·32,
    /// a transposed conv to 16 (7 → 14, batch norm, ReLU) and one to the image (14 → 28,
    /// sigmoid) — DCGAN's ending instead of a full-resolution conv; discriminator 5×5 convs
    /// 16, 32 (both stride 2, 28 → 14 → 7; the second's output is the features), dense 128,
    /// one logit. The pixel term stays on, at 0.3 (with `mnist-mlp`'s 1 it outweighed the GAN
    /// term: Fréchet distance 72.9 after 5 epochs against 51.4 at 0.3), and the rates are
    /// 5e-4 (`RunConfig::preset`; at 2e-4 the first two epochs were mostly lost: 51.4 after
    /// 5 epochs, against 36.3).
    ///
    /// The decoder and the discriminator run a pass per batch (`joint_batches = false`).
    /// With one pass over [z; z_p], the decoder's batch norm let the encoder tell posterior
    /// codes from prior ones by their mean: measured, the posterior means drifted to an
    /// offset of norm 4.1 from the origin (0.9 with a pass per batch) after 20,000 images,
    /// prior samples decoded to grey noise that the discriminator rejected 100 % of the
    /// time, and the Fréchet distance after 5 epochs was 148 (README, mnist-conv).
    ///
    /// An adversarial autoencoder's latent discriminator pulls the codes onto N(0, I) during
    /// training (`latent_adversary = 10`): samples from the prior then decode from where
    /// the encoder puts images. Measured at 5 epochs, seed 1 (README, "Closing the prior's
    /// holes during training"): samples 39.9 → 27.0 and reconstructions 10.8 → 2.9 in the
    /// PyTorch twin; the other knobs of the ablation moved the samples less.
    ///
    /// The code has 8 dimensions, not 32: with the latent discriminator, 10 epochs in the
    /// twin gave samples at FD 14.3 and 13.1 (mean of epochs 8–10, seeds 1 and 2) against
    /// 24.1 and 22.4 with 32, for reconstructions 3.3–4.5 against 3.2–3.6 and a test −ELBO
    /// of 147 against 135 nats; 16 stayed within 32's spread and 4 could not hold the
    /// digits (reconstructions 15.5). Fewer dimensions leave the prior fewer places for
    /// holes and give the latent discriminator less to cover (README, "Ten epochs in the
    /// twin"). With the smaller code the latent discriminator weighs 30: 12.1 and 10.6 over
    /// epochs 8–10 (seeds 1 and 2) against 10's 14.3 and 13.1, the reconstructions unchanged
    /// (4.3–4.6) and −ELBO 148–151. (With 32 dimensions, 30 and 10 were within noise.)
    pub fn mnist_conv() -> Self {
        ModelConfig {
            arch: Arch::Conv,
            kernel: 5,
            encoder: vec![16, 32],
            encoder_dense: vec![128],
            latent: 8,
            decoder: vec![32, 16],
            discriminator: vec![16, 32],
            discriminator_dense: vec![128],
            dis_first_stride: 2,
            decoder_final_conv: false,
            joint_batches: false,
            pixel_weight: 0.3,
            latent_adversary: 30.0,
            // With the latent discriminator matching q(z) to N(0, I), a lighter KL term
            // (β = 0.25) gave samples at FD 8.7 against 11.8 from the average over epochs 8–10
            // of the PyTorch twin, seed 1, and 9.8 on seed 2 (its β = 1 run, last weights: 10.6;
            // README, "Ten epochs in the twin"); in vaegan, 10 epochs, seed 1, `eval --quality`:
            // 8.6 against β = 1's 12.4, reconstructions 3.5 against 4.9 (README, "Today's
            // preset in vaegan").
            kl_weight: 0.25,
            ..Self::mnist_mlp()
        }
    }

    /// A colour model that learns on a CPU adapter: `mnist-conv`'s networks and recipe (the
    /// latent discriminator included) on 32×32 RGB images, for the generated shapes set
    /// (`vaegan make-dataset shapes --size 32`). The channel counts stay `mnist-conv`'s: at
    /// 32×32×3 a step costs about 1.6× one of `mnist-conv` (the first convolutions read three
    /// channels over 1.3× the pixels), so 10 epochs of 20,000 images take about an hour on
    /// lavapipe with 2 cores, where doubling the channels would take four. Its rates are
    /// 4× `mnist-conv`'s (`RunConfig::preset`). Its code keeps 32 dimensions: a shape
    /// image has six factors to hold (shape, colour, background, position, size, angle)
    /// where a digit has one, and every measurement of this preset was made with 32 (and
    /// with the latent discriminator at 10 and β = 1, which it keeps).
    pub fn shapes32() -> Self {
        ModelConfig { input: 32 * 32 * 3, image: [32, 32, 3], latent: 32, latent_adversary: 10.0, kl_weight: 1.0, ..Self::mnist_conv() }
    }

    /// Larsen et al.'s 64×64 model as the authors' code builds it
    /// (`architectures.img64x64`, `celeba_aegan.py` of andersbll/autoencoding_beyond_pixels):
    /// encoder 5×5 convs 64/128/256 stride 2 with batch norm and ReLU, dense 1024 (the
    /// paper's Table 1 says 2048), latent 128; decoder dense to 8·8·256, transposed convs
    /// 256/128/32 stride 2, a 5×5 conv to 3 channels, tanh; discriminator 5×5 conv 32
    /// (ReLU), 128/256/256 stride 2, dense 512, one logit; L_llike on the fourth conv's
    /// output; the decoder's L_llike weighted 1e-5 against the GAN term
    /// (`recon_vs_gan_weight`).
    pub fn celeba64() -> Self {
        ModelConfig {
            input: 64 * 64 * 3,
            image: [64, 64, 3],
            arch: Arch::Conv,
            kernel: 5,
            encoder: vec![64, 128, 256],
            encoder_dense: vec![1024],
            latent: 128,
            decoder: vec![256, 128, 32],
            discriminator: vec![32, 128, 256, 256],
            discriminator_dense: vec![512],
            dis_first_stride: 1,
            decoder_final_conv: true,
            joint_batches: true,
            hidden_act: Act::Relu,
            dis_act: Act::Relu,
            output_act: Act::Tanh,
            mode: Mode::VaeGan,
            gamma: 1e-5,
            pixel_weight: 0.0,
            pixel_weight_decoder: None,
            kl_weight: 1.0,
            gan_fakes: GanFakes::Both,
            d_fake_weight: 1.0,
            decoder_bn_stats: BnStats::Both,
            latent_mmd: 0.0,
            latent_adversary: 0.0,
            latent_discriminator: latent_discriminator_widths(),
            conditions: vec![],
        }
    }

    /// The model the seed document meant, with its two bugs fixed (README, "The seed
    /// model"): encoder 784→128→64 with separate μ and logσ² heads of 32, decoder
    /// 32→100→128→784 tanh, discriminator 784→128→128→1, all ReLU.
    pub fn seed() -> Self {
        ModelConfig {
            encoder: vec![128, 64],
            latent: 32,
            decoder: vec![100, 128],
            discriminator: vec![128, 128],
            hidden_act: Act::Relu,
            dis_act: Act::Relu,
            output_act: Act::Tanh,
            pixel_weight: 0.0,
            ..Self::mnist_mlp()
        }
    }

    pub const PRESETS: &'static str = "mnist-mlp, mnist-conv, shapes32, celeba64, seed or pytorch-vae";

    pub fn preset(name: &str) -> Result<Self, String> {
        match name {
            "mnist-mlp" => Ok(Self::mnist_mlp()),
            "mnist-conv" => Ok(Self::mnist_conv()),
            "shapes32" => Ok(Self::shapes32()),
            "celeba64" => Ok(Self::celeba64()),
            "seed" => Ok(Self::seed()),
            "pytorch-vae" => Ok(Self::pytorch_vae()),
            _ => Err(format!("unknown preset {name:?}: expected {}", Self::PRESETS)),
        }
    }

    pub fn height(&self) -> usize {
        self.image[0]
    }
    pub fn width(&self) -> usize {
        self.image[1]
    }
    pub fn channels(&self) -> usize {
        self.image[2]
    }

    /// Sets the image shape (from the data).
    pub fn set_image(&mut self, height: usize, width: usize, channels: usize) {
        self.image = [height, width, channels];
        self.input = height * width * channels;
    }

    /// Width of the layer the μ and logσ² heads read.
    pub fn encoder_output(&self) -> usize {
        match self.arch {
            Arch::Mlp => self.encoder.last().copied().unwrap_or(self.input),
            Arch::Conv => match self.encoder_dense.last() {
                Some(&w) => w,
                None => {
                    let (h, w) = self.conv_side(self.encoder.len());
                    h * w * self.encoder.last().copied().unwrap_or(self.channels())
                }
            },
        }
    }

    /// Image side after `n` stride-2 convolutions with "same" padding: ⌈side / 2ⁿ⌉.
    pub fn conv_side(&self, n: usize) -> (usize, usize) {
        let mut s = (self.height(), self.width());
        for _ in 0..n {
            s = (s.0.div_ceil(2), s.1.div_ceil(2));
        }
        s
    }

    /// Labels y beside z and the image: at most 256, named once each, and (conv arch) a
    /// dense discriminator layer to read them (the convolutions see the image alone).
    fn validate_conditions(&self) -> Result<(), String> {
        let names = &self.conditions;
        if names.len() > 256 {
            return Err(format!("model.conditions has {} labels: at most 256", names.len()));
        }
        if let Some(i) = names.iter().position(|n| n.is_empty()) {
            return Err(format!("model.conditions[{i}] is empty: every label needs a name"));
        }
        if let Some((i, n)) = names.iter().enumerate().find(|(i, n)| names[..*i].contains(n)) {
            return Err(format!("model.conditions[{i}] = {n:?} is named twice"));
        }
        if !names.is_empty() && self.mode == Mode::VaeGan && self.arch == Arch::Conv && self.discriminator_dense.is_empty() {
            return Err("model.conditions with arch = \"conv\" needs a dense discriminator layer (model.discriminator_dense) to read the labels".into());
        }
        Ok(())
    }

    fn validate_conv(&self) -> Result<(), String> {
        if !(1..=2).contains(&self.dis_first_stride) {
            return Err(format!("model.dis_first_stride = {}: expected 1 or 2", self.dis_first_stride));
        }
        if self.kernel == 0 || self.kernel.is_multiple_of(2) || self.kernel > 11 {
            return Err(format!("model.kernel = {}: expected an odd size from 1 to 11 (\"same\" padding needs an odd kernel)", self.kernel));
        }
        if self.encoder.is_empty() || self.decoder.is_empty() {
            return Err("model.encoder and model.decoder need at least one convolution each with arch = \"conv\"".into());
        }
        if self.mode == Mode::VaeGan && self.discriminator.len() < 2 {
            return Err(
                "model.discriminator needs at least two convolutions with arch = \"conv\" (a stride-1 one, then stride 2; the last is the learned similarity)"
                    .into(),
            );
        }
        let n = self.decoder.len();
        let step = 1usize << n;
        if !self.height().is_multiple_of(step) || !self.width().is_multiple_of(step) {
            return Err(format!(
                "model.decoder has {n} transposed convolutions that double the side from {}x{}: the {}x{} images must have sides divisible by {step}",
                self.height() / step,
                self.width() / step,
                self.height(),
                self.width()
            ));
        }
        Ok(())
    }

    /// Sizes and weights a model can be built from.
    pub fn validate(&self) -> Result<(), String> {
        let sizes = [("input", self.input), ("latent", self.latent)];
        for (name, v) in sizes {
            if v == 0 {
                return Err(format!("model.{name} must be at least 1"));
            }
        }
        let [h, w, ch] = self.image;
        if h * w * ch != self.input || ch == 0 {
            return Err(format!("model.image = [{h}, {w}, {ch}] does not match model.input = {} (height·width·channels)", self.input));
        }
        if ch != 1 && ch != 3 {
            return Err(format!("model.image has {ch} channels: expected 1 (grey) or 3 (RGB)"));
        }
        let lists = [
            ("encoder", &self.encoder),
            ("encoder_dense", &self.encoder_dense),
            ("decoder", &self.decoder),
            ("discriminator", &self.discriminator),
            ("discriminator_dense", &self.discriminator_dense),
            ("latent_discriminator", &self.latent_discriminator),
        ];
        for (name, widths) in lists {
            if let Some(i) = widths.iter().position(|&w| w == 0) {
                return Err(format!("model.{name}[{i}] is 0: layer widths must be at least 1"));
            }
            if widths.len() > 16 {
                return Err(format!("model.{name} has {} layers: at most 16", widths.len()));
            }
            if let Some(&w) = widths.iter().find(|&&w| w > 1 << 16) {
                return Err(format!("model.{name} has a layer of width {w}: at most 65536"));
            }
        }
        if self.mode == Mode::VaeGan && self.discriminator.is_empty() {
            return Err("model.discriminator needs at least one hidden layer in vae-gan mode (its last is the learned similarity)".into());
        }
        self.validate_conditions()?;
        if self.arch == Arch::Conv {
            self.validate_conv()?;
        } else if !self.encoder_dense.is_empty() || !self.discriminator_dense.is_empty() {
            return Err("model.encoder_dense and model.discriminator_dense belong to arch = \"conv\": with arch = \"mlp\" list every layer in model.encoder and model.discriminator".into());
        }
        // A bottleneck: the heads project the encoder's last layer down to the latent.
        let last = self.encoder_output();
        if self.latent > last {
            return Err(format!(
                "model.latent = {} does not fit: it must not exceed the encoder's last layer ({last}) that the μ and logσ² heads project from",
                self.latent
            ));
        }
        if !self.gamma.is_finite() || self.gamma < 0.0 || !self.pixel_weight.is_finite() || self.pixel_weight < 0.0 {
            return Err("model.gamma and model.pixel_weight must be finite and ≥ 0".into());
        }
        let weights = [
            ("pixel_weight_decoder", self.pixel_weight_decoder.unwrap_or(0.0)),
            ("kl_weight", self.kl_weight),
            ("d_fake_weight", self.d_fake_weight),
            ("latent_mmd", self.latent_mmd),
            ("latent_adversary", self.latent_adversary),
        ];
        for (name, w) in weights {
            if !w.is_finite() || w < 0.0 {
                return Err(format!("model.{name} = {w}: must be finite and ≥ 0"));
            }
        }
        if self.decoder_bn_stats != BnStats::Both && (self.arch != Arch::Conv || self.joint_batches || self.mode != Mode::VaeGan) {
            return Err(format!(
                "model.decoder_bn_stats = \"{}\" needs a convolutional vae-gan whose decoder runs a pass per batch (arch = \"conv\", joint_batches = false): {}",
                match self.decoder_bn_stats {
                    BnStats::Prior => "prior",
                    _ => "posterior",
                },
                if self.arch != Arch::Conv { "this model has no batch norm" } else if self.mode != Mode::VaeGan { "a vae has no prior pass" } else { "a joint pass keeps one set of statistics for both" }
            ));
        }
        if self.d_fake_weight == 0.0 {
            return Err("model.d_fake_weight = 0: the discriminator would never see a generated image".into());
        }
        if self.output_act == Act::Tanh && self.pixel_weight_decoder.is_some_and(|w| w > 0.0) {
            return Err("model.output_act = tanh cannot be used with the pixel BCE (pixel_weight_decoder > 0): BCE needs sigmoid".into());
        }
        if self.output_act != Act::Sigmoid && self.output_act != Act::Tanh {
            return Err(format!("model.output_act = {}: expected sigmoid (data in [0, 1]) or tanh ([−1, 1])", self.output_act));
        }
        if self.output_act == Act::Tanh && (self.mode == Mode::Vae || self.pixel_weight > 0.0) {
            return Err("model.output_act = tanh cannot be used with the pixel BCE (vae mode or pixel_weight > 0): BCE needs sigmoid".into());
        }
        Ok(())
    }
}

impl OptimConfig {
    /// Every group's update rule.
    pub fn set_optimizer(&mut self, o: Optimizer) {
        self.optimizer_encoder = o;
        self.optimizer_decoder = o;
        self.optimizer_discriminator = o;
    }

    /// The update rule of group `name` (encoder, decoder or discriminator).
    pub fn optimizer_of(&self, group: &str) -> Optimizer {
        match group {
            "encoder" => self.optimizer_encoder,
            "decoder" => self.optimizer_decoder,
            _ => self.optimizer_discriminator,
        }
    }

    /// Group `group`'s update rule during epoch `epoch` (from 0).
    pub fn rule(&self, group: &str, epoch: usize) -> UpdateRule {
        let lr = self.lr_of(group, epoch);
        match self.optimizer_of(group) {
            Optimizer::Adam => UpdateRule::Adam(AdamParams {
                step: 1,
                lr,
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                weight_decay: self.weight_decay,
                grad_scale: 1.0,
            }),
            Optimizer::Rmsprop => UpdateRule::RmsProp(RmsPropParams { lr, rho: self.rho, eps: self.eps, weight_decay: self.weight_decay, grad_scale: 1.0 }),
        }
    }

    /// The learning rate of group `name` during epoch `epoch` (from 0), after the decay.
    pub fn lr_of(&self, group: &str, epoch: usize) -> f32 {
        let base = match group {
            "encoder" => self.lr_encoder,
            "decoder" => self.lr_decoder,
            _ => self.lr_discriminator,
        };
        (base as f64 * (self.lr_decay as f64).powi(epoch.min(i32::MAX as usize) as i32)) as f32
    }

    pub fn for_mode(mode: Mode) -> Self {
        match mode {
            // The classic VAE example's Adam.
            Mode::Vae => OptimConfig {
                lr_encoder: 1e-3,
                lr_decoder: 1e-3,
                lr_discriminator: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
                balance: false,
                equilibrium: 0.68,
                margin: 0.35,
                precision: Precision::F32,
                optimizer_encoder: Optimizer::Adam,
                optimizer_decoder: Optimizer::Adam,
                optimizer_discriminator: Optimizer::Adam,
                rho: rho(),
                lr_decay: 1.0,
                decoder_ema: 0.0,
            },
            // GAN practice (Radford et al. 2015): lr 2e-4, β₁ = 0.5.
            Mode::VaeGan => OptimConfig { lr_encoder: 2e-4, lr_decoder: 2e-4, lr_discriminator: 2e-4, beta1: 0.5, ..Self::for_mode(Mode::Vae) },
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [("lr_encoder", self.lr_encoder), ("lr_decoder", self.lr_decoder), ("lr_discriminator", self.lr_discriminator), ("eps", self.eps)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("optim.{name} = {v}: must be positive"));
            }
        }
        for (name, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(format!("optim.{name} = {v}: must be in [0, 1)"));
            }
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!("optim.weight_decay = {}: must be ≥ 0", self.weight_decay));
        }
        if !(0.0..1.0).contains(&self.rho) {
            return Err(format!("optim.rho = {}: must be in [0, 1)", self.rho));
        }
        if !(self.lr_decay.is_finite() && self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return Err(format!("optim.lr_decay = {}: must be in (0, 1] (the factor applied to the learning rates after each epoch)", self.lr_decay));
        }
        if !(self.margin > 0.0 && self.equilibrium > 0.0) {
            return Err("optim.margin and optim.equilibrium must be positive".into());
        }
        if !(0.0..1.0).contains(&self.decoder_ema) {
            return Err(format!("optim.decoder_ema = {}: must be in [0, 1) (the average's decay per update, e.g. 0.999; 0: off)", self.decoder_ema));
        }
        Ok(())
    }
}

impl RunConfig {
    pub fn preset(name: &str) -> Result<Self, String> {
        let model = ModelConfig::preset(name)?;
        let mut optim = OptimConfig::for_mode(model.mode);
        match name {
            // The authors' code: RMSProp at 0.02 per batch of 64 (deeppy divides the rate
            // by the batch: 3.1e-4 on a batch mean), weight decay 1e-5, the balancing with
            // margin 0.35 around 0.68.
            "celeba64" => {
                optim = OptimConfig { lr_encoder: 3e-4, lr_decoder: 3e-4, lr_discriminator: 3e-4, weight_decay: 1e-5, balance: true, ..optim };
                optim.set_optimizer(Optimizer::Rmsprop);
            }
            // Measured (README, mnist-conv): after 5 epochs the Fréchet distance was 51.4 at
            // 2e-4 and 36.3 at 5e-4, with β₁ = 0.5 kept. Samples from the decoder's averaged
            // weights were as good or better than the last weights' at every epoch from the
            // third, in vaegan and in each of the PyTorch twin's arms (README, "Closing the
            // prior's holes").
            "mnist-conv" => optim = OptimConfig { lr_encoder: 5e-4, lr_decoder: 5e-4, lr_discriminator: 5e-4, decoder_ema: 0.999, ..optim },
            // At 5e-4 the colour model spent its first epochs on the background (README,
            // shapes32: after 3 epochs of the PyTorch twin its reconstructions still had
            // chance colour); at 2e-3 vaegan's samples reached FD 778 after 3 epochs, where
            // 5e-4 gave 1199.6 after 4.
            "shapes32" => optim = OptimConfig { lr_encoder: 2e-3, lr_decoder: 2e-3, lr_discriminator: 2e-3, ..optim },
            // The seed document's Adam(1e-4) with Keras's defaults.
            "seed" => optim = OptimConfig { lr_encoder: 1e-4, lr_decoder: 1e-4, lr_discriminator: 1e-4, beta1: 0.9, ..optim },
            _ => {}
        }
        Ok(RunConfig { optim, model })
    }

    pub fn validate(&self) -> Result<(), String> {
        self.model.validate()?;
        self.optim.validate()?;
        Ok(())
    }

    /// Switches the training mode: the optimiser takes that mode's defaults (keeping the
    /// balancing choice), and a VAE-GAN without a discriminator gets mnist-mlp's.
    pub fn set_mode(&mut self, mode: Mode) {
        if mode == self.model.mode {
            return;
        }
        self.model.mode = mode;
        self.optim = OptimConfig { balance: self.optim.balance, precision: self.optim.precision, ..OptimConfig::for_mode(mode) };
        if mode == Mode::VaeGan && self.model.discriminator.is_empty() {
            self.model.discriminator = ModelConfig::mnist_mlp().discriminator;
        }
    }

    /// Parses a TOML config: `preset = "…"` (default mnist-mlp) then `[model]` and
    /// `[optim]` tables overriding any field. `file` names the source in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Self, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            preset: Option<String>,
            model: Option<toml::Table>,
            optim: Option<toml::Table>,
        }
        let mut parsed: File = toml::from_str(text).map_err(|e| format!("{file}: {e}"))?;
        // `optimizer = "…"` is shorthand for the three groups' keys.
        if let Some(optim) = &mut parsed.optim {
            if let Some(v) = optim.remove("optimizer") {
                Optimizer::deserialize(v.clone()).map_err(|e| format!("{file}: optim.optimizer: {}", e.message()))?;
                for k in ["optimizer_encoder", "optimizer_decoder", "optimizer_discriminator"] {
                    optim.entry(k.to_string()).or_insert_with(|| v.clone());
                }
            }
        }
        let mut base = Self::preset(parsed.preset.as_deref().unwrap_or("mnist-mlp")).map_err(|e| format!("{file}: {e}"))?;
        // Overrides are merged key by key onto the preset, then typed as a whole, so that
        // an unknown key or a wrong type is named.
        if let Some(m) = &parsed.model {
            if let Some(mode) = m.get("mode").and_then(|v| v.as_str()) {
                base.set_mode(mode.parse().map_err(|e| format!("{file}: model.mode: {e}"))?);
            }
        }
        let mut tree = toml::Table::try_from(&base).map_err(|e| format!("{file}: {e}"))?;
        for (section, overrides) in [("model", &parsed.model), ("optim", &parsed.optim)] {
            if let Some(overrides) = overrides {
                for (k, v) in overrides {
                    let table = tree.get_mut(section).and_then(|v| v.as_table_mut()).expect("sections exist");
                    // Keys whose absence means "as another key" are not in the preset's table.
                    let optional = section == "model" && (k == "pixel_weight_decoder" || k == "conditions");
                    if !table.contains_key(k) && !optional {
                        return Err(format!("{file}: unknown key {section}.{k}"));
                    }
                    table.insert(k.clone(), v.clone());
                    // Type each key as it is applied, so that an error names it.
                    let one: Result<RunConfig, toml::de::Error> = tree.clone().try_into();
                    if let Err(e) = one {
                        return Err(format!("{file}: {section}.{k}: {}", e.message()));
                    }
                }
            }
        }
        let config: RunConfig = tree.try_into().map_err(|e: toml::de::Error| format!("{file}: {}", e.message()))?;
        config.validate().map_err(|e| format!("{file}: {e}"))?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config serialises")
    }
}

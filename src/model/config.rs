//! Model and optimiser configuration: presets, and TOML files that start from a preset and
//! override any field. Unknown keys, wrong types and impossible values are refused with
//! the file and the key named.

use serde::{Deserialize, Serialize};

use crate::types::{Act, Precision};

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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Pixels per image (set from the data).
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
}

/// Everything that defines a run's model and optimiser (stored in checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub model: ModelConfig,
    pub optim: OptimConfig,
}

impl ModelConfig {
    /// The project's reference model (README, "Models and configs"), with the pixel term on: without it, on these MLPs, the
    /// encoder's posterior collapsed (KL → 0.3) and every z decoded to the same blot
    /// (README, "Results"); `pixel_weight = 0` gives Larsen et al.'s objective unchanged.
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
            pixel_weight: 1.0,
        }
    }

    /// The classic PyTorch example: 784→400→20, 20→400→784, BCE + KL.
    pub fn pytorch_vae() -> Self {
        ModelConfig { encoder: vec![400], latent: 20, decoder: vec![400], discriminator: vec![], mode: Mode::Vae, ..Self::mnist_mlp() }
    }

    pub fn preset(name: &str) -> Result<Self, String> {
        match name {
            "mnist-mlp" => Ok(Self::mnist_mlp()),
            "pytorch-vae" => Ok(Self::pytorch_vae()),
            _ => Err(format!("unknown preset {name:?}: expected mnist-mlp or pytorch-vae")),
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

    /// Sizes and weights a model can be built from.
    pub fn validate(&self) -> Result<(), String> {
        let sizes = [("input", self.input), ("latent", self.latent)];
        for (name, v) in sizes {
            if v == 0 {
                return Err(format!("model.{name} must be at least 1"));
            }
        }
        for (name, widths) in [("encoder", &self.encoder), ("decoder", &self.decoder), ("discriminator", &self.discriminator)] {
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
        // A bottleneck: the heads project the encoder's last layer down to the latent.
        let last = self.encoder.last().copied().unwrap_or(self.input);
        if self.latent > last {
            return Err(format!(
                "model.latent = {} does not fit: it must not exceed the encoder's last layer ({last}) that the μ and logσ² heads project from",
                self.latent
            ));
        }
        if !self.gamma.is_finite() || self.gamma < 0.0 || !self.pixel_weight.is_finite() || self.pixel_weight < 0.0 {
            return Err("model.gamma and model.pixel_weight must be finite and ≥ 0".into());
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
        if !(self.margin > 0.0 && self.equilibrium > 0.0) {
            return Err("optim.margin and optim.equilibrium must be positive".into());
        }
        Ok(())
    }
}

impl RunConfig {
    pub fn preset(name: &str) -> Result<Self, String> {
        let model = ModelConfig::preset(name)?;
        Ok(RunConfig { optim: OptimConfig::for_mode(model.mode), model })
    }

    pub fn validate(&self) -> Result<(), String> {
        self.model.validate()?;
        self.optim.validate()
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
        let parsed: File = toml::from_str(text).map_err(|e| format!("{file}: {e}"))?;
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
                    if !table.contains_key(k) {
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

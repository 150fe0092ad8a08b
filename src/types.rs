//! The small types every layer shares — an activation, a matmul's transposition, an
//! element type, a training precision, Adam's hyper-parameters, a random-number key, the
//! scaling of stored bytes — in one place, so that no layer imports another
//! layer above it to name them.

/// The activations a layer may apply (also the matmul epilogue's). Written in configs as
/// "none", "relu", "leaky_relu(0.2)", "tanh", "sigmoid".
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Act {
    None,
    Relu,
    /// LeakyReLU with slope α for x < 0.
    LeakyRelu(f32),
    Tanh,
    Sigmoid,
}

impl Act {
    pub fn name(self) -> &'static str {
        match self {
            Act::None => "none",
            Act::Relu => "relu",
            Act::LeakyRelu(_) => "leaky_relu",
            Act::Tanh => "tanh",
            Act::Sigmoid => "sigmoid",
        }
    }

    pub fn alpha(self) -> f32 {
        match self {
            Act::LeakyRelu(a) => a,
            _ => 0.0,
        }
    }
}

impl std::fmt::Display for Act {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Act::LeakyRelu(a) => write!(f, "leaky_relu({a})"),
            other => f.write_str(other.name()),
        }
    }
}

impl std::str::FromStr for Act {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        Ok(match t {
            "none" | "identity" | "linear" => Act::None,
            "relu" => Act::Relu,
            "tanh" => Act::Tanh,
            "sigmoid" => Act::Sigmoid,
            "leaky_relu" => Act::LeakyRelu(0.2),
            _ => {
                let slope = t.strip_prefix("leaky_relu(").and_then(|r| r.strip_suffix(')')).and_then(|a| a.trim().parse::<f32>().ok());
                match slope {
                    Some(a) if a > 0.0 && a < 1.0 => Act::LeakyRelu(a),
                    _ => return Err(format!("unknown activation {t:?}: expected none, relu, leaky_relu(α) with 0 < α < 1, tanh or sigmoid")),
                }
            }
        })
    }
}

impl TryFrom<String> for Act {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Act> for String {
    fn from(a: Act) -> String {
        a.to_string()
    }
}

impl Act {
    /// True where the backward reads the forward output y rather than the input x.
    pub fn backward_reads_output(self) -> bool {
        matches!(self, Act::Tanh | Act::Sigmoid)
    }
}

/// Which operands are transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trans {
    /// C = A·B: A is M×K, B is K×N.
    NN,
    /// C = A·Bᵀ: A is M×K, B is N×K.
    NT,
    /// C = Aᵀ·B: A is K×M, B is K×N.
    TN,
}

impl Trans {
    /// (A transposed, B transposed).
    pub fn flags(self) -> (bool, bool) {
        match self {
            Trans::NN => (false, false),
            Trans::NT => (false, true),
            Trans::TN => (true, false),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Trans::NN => "nn",
            Trans::NT => "nt",
            Trans::TN => "tn",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    U32,
}

impl DType {
    pub fn size(self) -> u64 {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 => 2,
        }
    }
}

/// What the matmuls read. Everything else — master weights, Adam's moments, activations
/// between kernels, losses, accumulation — is f32 in both.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    /// Mixed precision: every matmul reads f16 copies of its operands (weights cast once per
    /// step, activations and gradients as they enter the matmul) and accumulates in f32.
    /// Backward starts from a seed of `LOSS_SCALE` instead of 1 so that small gradients
    /// stay above f16's subnormals; Adam multiplies by 1/`LOSS_SCALE` (exact: a power of
    /// two), so its moments and updates are in true units.
    F16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            _ => Err(format!("expected f32 or f16, got {s:?}")),
        }
    }
}

/// Hyper-parameters; `step` is t, counted from 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamParams {
    pub step: u32,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Multiplies each gradient before use: 1/S undoes a loss scale S (the f16 step).
    pub grad_scale: f32,
}

impl AdamParams {
    /// PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8, no weight decay.
    pub fn new(lr: f32) -> Self {
        AdamParams { step: 1, lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, grad_scale: 1.0 }
    }

    /// (1 − β₁ᵗ, 1 − β₂ᵗ), in f64.
    pub fn bias_corrections(&self) -> (f64, f64) {
        let t = self.step as i32;
        (1.0 - (self.beta1 as f64).powi(t), 1.0 - (self.beta2 as f64).powi(t))
    }
}

/// RMSProp's hyper-parameters (no step count: it has no bias correction).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropParams {
    pub lr: f32,
    /// Decay of the running mean square.
    pub rho: f32,
    pub eps: f32,
    /// L2 weight decay, added to the gradient.
    pub weight_decay: f32,
    /// Multiplies each gradient before use: 1/S undoes a loss scale S (the f16 step).
    pub grad_scale: f32,
}

impl RmsPropParams {
    /// ρ = 0.9 (deeppy's, which Larsen et al. used; PyTorch's default is 0.99), ε = 1e-8.
    pub fn new(lr: f32) -> Self {
        RmsPropParams { lr, rho: 0.9, eps: 1e-8, weight_decay: 0.0, grad_scale: 1.0 }
    }
}

/// How one parameter group is updated from its gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UpdateRule {
    Adam(AdamParams),
    RmsProp(RmsPropParams),
}

impl From<AdamParams> for UpdateRule {
    fn from(p: AdamParams) -> Self {
        UpdateRule::Adam(p)
    }
}

impl UpdateRule {
    pub fn lr(&self) -> f32 {
        match self {
            UpdateRule::Adam(p) => p.lr,
            UpdateRule::RmsProp(p) => p.lr,
        }
    }

    pub fn with_lr(self, lr: f32) -> Self {
        match self {
            UpdateRule::Adam(p) => UpdateRule::Adam(AdamParams { lr, ..p }),
            UpdateRule::RmsProp(p) => UpdateRule::RmsProp(RmsPropParams { lr, ..p }),
        }
    }

    pub fn with_grad_scale(self, grad_scale: f32) -> Self {
        match self {
            UpdateRule::Adam(p) => UpdateRule::Adam(AdamParams { grad_scale, ..p }),
            UpdateRule::RmsProp(p) => UpdateRule::RmsProp(RmsPropParams { grad_scale, ..p }),
        }
    }
}

/// The key of one draw: the run's seed, the training step and a stream number that tells
/// apart the tensors drawn in one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RngKey {
    pub seed: u64,
    pub step: u64,
    pub stream: u32,
}

/// How stored bytes become model inputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scaling {
    /// x = byte·scale + offset: [0, 1] is (1/255, 0); [−1, 1] is (2/255, −1).
    pub scale: f32,
    pub offset: f32,
    /// x = 1 where byte > 127, else 0 (before scaling: then scaled as 255 or 0).
    pub binarize: bool,
}

impl Scaling {
    pub const UNIT: Scaling = Scaling { scale: 1.0 / 255.0, offset: 0.0, binarize: false };
    pub const SYMMETRIC: Scaling = Scaling { scale: 2.0 / 255.0, offset: -1.0, binarize: false };
    /// Bytes as they are: labels stored as 0 or 1.
    pub const IDENTITY: Scaling = Scaling { scale: 1.0, offset: 0.0, binarize: false };
}

/// The geometry of one 2-D convolution over NHWC tensors: input `batch`×`in_h`×`in_w`×`in_c`,
/// a `k_h`×`k_w` kernel with `stride` and zero `pad` on every side, output
/// `batch`×`out_h`×`out_w`×`out_c`. Weights are `k_h`×`k_w`×`in_c`×`out_c` (a K×N matrix for
/// the implicit GEMM, K = k_h·k_w·in_c). A transposed convolution is the adjoint of one of
/// these: its input is this `out` side and its output this `in` side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvGeom {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub out_c: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvGeom {
    /// A convolution of an `in_h`×`in_w`×`in_c` image to `out_c` channels; the output side
    /// is ⌊(in + 2·pad − k) / stride⌋ + 1.
    pub fn conv(
        batch: usize,
        (in_h, in_w, in_c): (usize, usize, usize),
        out_c: usize,
        (k_h, k_w): (usize, usize),
        stride: usize,
        pad: usize,
    ) -> Result<Self, String> {
        if [batch, in_h, in_w, in_c, out_c, k_h, k_w, stride].contains(&0) {
            return Err(format!("conv2d {batch}x{in_h}x{in_w}x{in_c} → {out_c}, kernel {k_h}x{k_w}, stride {stride}: every size must be at least 1"));
        }
        if in_h + 2 * pad < k_h || in_w + 2 * pad < k_w {
            return Err(format!("conv2d: the {k_h}x{k_w} kernel is larger than the {in_h}x{in_w} image padded by {pad}"));
        }
        let out_h = (in_h + 2 * pad - k_h) / stride + 1;
        let out_w = (in_w + 2 * pad - k_w) / stride + 1;
        Ok(ConvGeom { batch, in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w, stride, pad })
    }

    /// The convolution whose adjoint is a transposed convolution of an `in_h`×`in_w`×`in_c`
    /// image to `out_c` channels, output side (in − 1)·stride − 2·pad + k + `out_pad`
    /// (PyTorch's ConvTranspose2d; 8 → 16 with a 5×5 kernel, stride 2, pad 2, out_pad 1).
    pub fn transposed(
        batch: usize,
        (in_h, in_w, in_c): (usize, usize, usize),
        out_c: usize,
        (k_h, k_w): (usize, usize),
        stride: usize,
        pad: usize,
        out_pad: usize,
    ) -> Result<Self, String> {
        if [batch, in_h, in_w, in_c, out_c, k_h, k_w, stride].contains(&0) {
            return Err(format!("conv_transpose2d {batch}x{in_h}x{in_w}x{in_c} → {out_c}: every size must be at least 1"));
        }
        if out_pad >= stride {
            return Err(format!("conv_transpose2d: output padding {out_pad} must be smaller than the stride {stride}"));
        }
        let full_h = (in_h - 1) * stride + k_h + out_pad;
        let full_w = (in_w - 1) * stride + k_w + out_pad;
        if full_h <= 2 * pad || full_w <= 2 * pad {
            return Err(format!("conv_transpose2d: padding {pad} leaves no output"));
        }
        let g = ConvGeom::conv(batch, (full_h - 2 * pad, full_w - 2 * pad, out_c), in_c, (k_h, k_w), stride, pad)?;
        if (g.out_h, g.out_w) != (in_h, in_w) {
            return Err(format!("conv_transpose2d: {in_h}x{in_w} is not reached back by the adjoint convolution ({}x{})", g.out_h, g.out_w));
        }
        Ok(g)
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.in_h * self.in_w * self.in_c
    }
    pub fn output_len(&self) -> usize {
        self.batch * self.out_h * self.out_w * self.out_c
    }
    pub fn weight_len(&self) -> usize {
        self.k_h * self.k_w * self.in_c * self.out_c
    }
    /// Multiply-adds of the forward pass (each backward costs the same).
    pub fn flops(&self) -> f64 {
        2.0 * (self.batch * self.out_h * self.out_w) as f64 * self.out_c as f64 * (self.k_h * self.k_w * self.in_c) as f64
    }
}

impl std::fmt::Display for ConvGeom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}x{}x{}x{} → {}x{}x{} k{}x{} s{} p{}",
            self.batch, self.in_h, self.in_w, self.in_c, self.out_h, self.out_w, self.out_c, self.k_h, self.k_w, self.stride, self.pad
        )
    }
}

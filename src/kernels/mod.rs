//! One Rust wrapper per WGSL kernel family: it checks shapes, picks the variant, binds the
//! buffers and returns launches ready to record. Each has a CPU twin of the same name in
//! `crate::reference`.

pub mod adam;
pub mod autotune;
pub mod cast;
pub mod elementwise;
pub mod kl;
pub mod losses;
pub mod matmul;
pub mod reduce;
pub mod reparam;

use crate::gpu::{GpuBuffer, GpuError, Result};

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

pub(crate) const ACTIVATIONS_WGSL: &str = include_str!("../../shaders/activations.wgsl");

/// Checks that a buffer holds exactly `want` elements.
pub(crate) fn expect_len(kernel: &str, what: &str, buf: &GpuBuffer, want: usize) -> Result<()> {
    if buf.len != want {
        return Err(GpuError::shape(kernel, format!("{what} has {} elements, expected {want}", buf.len)));
    }
    Ok(())
}

pub(crate) fn expect_f32(kernel: &str, what: &str, buf: &GpuBuffer) -> Result<()> {
    if buf.dtype != crate::gpu::DType::F32 {
        return Err(GpuError::shape(kernel, format!("{what} is {:?}, expected F32", buf.dtype)));
    }
    Ok(())
}

pub(crate) fn nonempty(kernel: &str, n: usize) -> Result<u32> {
    if n == 0 {
        return Err(GpuError::shape(kernel, "length must be at least 1"));
    }
    u32::try_from(n).map_err(|_| GpuError::shape(kernel, format!("length {n} exceeds u32")))
}

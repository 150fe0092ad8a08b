//! Visual attribute vectors (Larsen et al. 2016, section 5.2): for each attribute, the mean
//! code of the training images that have it minus the mean code of those that do not.
//! Adding a vector to an image's code and decoding adds the attribute ("glasses", "red",
//! "7"); subtracting it removes it.
//!
//! The codes are the encoder's means μ(x): the paper's vectors are differences of mean
//! latent representations, and μ, unlike a drawn z, carries no sampling noise.

use std::path::Path;

use crate::data::Attributes;
use crate::tensor_file::TensorFile;

pub const FORMAT: &str = "vaegan-attributes-1";
const KIND: &str = "vaegan attribute-vector file";
const HINT: Option<&str> = Some("`vaegan attributes` writes one");

/// One vector per attribute, and how many images each side of it had.
#[derive(Clone, Debug, PartialEq)]
pub struct AttributeVectors {
    pub names: Vec<String>,
    pub latent: usize,
    /// names.len() × latent. Zero where one side had no images.
    pub vectors: Vec<f32>,
    /// Training images with and without each attribute.
    pub with: Vec<usize>,
    pub without: Vec<usize>,
    /// The training step of the encoder that gave the codes.
    pub step: u64,
}

impl AttributeVectors {
    /// The vectors of `attrs` from the codes `mu` (attrs.count() × latent), summed in f64.
    pub fn from_codes(mu: &[f32], latent: usize, attrs: &Attributes, step: u64) -> Result<Self, String> {
        let n = attrs.count();
        if latent == 0 || mu.len() != n * latent {
            return Err(format!("{} codes of {latent} for {n} labelled images", mu.len()));
        }
        let a = attrs.len();
        let mut sums = vec![[0f64; 2]; a * latent];
        let (mut with, mut without) = (vec![0usize; a], vec![0usize; a]);
        for i in 0..n {
            let code = &mu[i * latent..(i + 1) * latent];
            for k in 0..a {
                let side = attrs.has(i, k) as usize;
                if side == 1 {
                    with[k] += 1;
                } else {
                    without[k] += 1;
                }
                for (s, &z) in sums[k * latent..(k + 1) * latent].iter_mut().zip(code) {
                    s[side] += z as f64;
                }
            }
        }
        let mut vectors = vec![0f32; a * latent];
        for k in 0..a {
            if with[k] == 0 || without[k] == 0 {
                continue;
            }
            for d in 0..latent {
                let s = sums[k * latent + d];
                vectors[k * latent + d] = (s[1] / with[k] as f64 - s[0] / without[k] as f64) as f32;
            }
        }
        Ok(AttributeVectors { names: attrs.names.clone(), latent, vectors, with, without, step })
    }

    pub fn vector(&self, k: usize) -> &[f32] {
        &self.vectors[k * self.latent..(k + 1) * self.latent]
    }

    /// The attribute named `name`, which must have had images on both sides.
    pub fn find(&self, name: &str) -> Result<usize, String> {
        let k = self.names.iter().position(|n| n == name).ok_or_else(|| format!("no attribute vector {name:?} (there are: {})", self.names.join(", ")))?;
        if self.with[k] == 0 || self.without[k] == 0 {
            return Err(format!("attribute {name:?} has no vector: {} training images have it and {} do not", self.with[k], self.without[k]));
        }
        Ok(k)
    }

    /// scale · (Σ vectors of `add` − Σ vectors of `remove`): the shift an edit adds to a code.
    pub fn shift(&self, add: &[usize], remove: &[usize], scale: f32) -> Vec<f32> {
        let mut s = vec![0f32; self.latent];
        for (&k, sign) in add.iter().map(|k| (k, 1.0)).chain(remove.iter().map(|k| (k, -1.0))) {
            for (s, v) in s.iter_mut().zip(self.vector(k)) {
                *s += sign * scale * v;
            }
        }
        s
    }

    /// Writes the vectors as safetensors (names in the metadata), atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let counts = |c: &[usize]| c.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let (w, wo) = (counts(&self.with), counts(&self.without));
        let a = self.names.len();
        let names = serde_json::to_string(&self.names).map_err(std::io::Error::other)?;
        let tensors = [("vectors", vec![a, self.latent], &self.vectors[..]), ("with", vec![a], &w[..]), ("without", vec![a], &wo[..])];
        crate::tensor_file::write(path, FORMAT, &[("step", self.step.to_string()), ("names", names)], &tensors)
    }

    /// Reads vectors written by `save`; every problem is an error naming the file.
    pub fn load(path: &Path) -> Result<Self, String> {
        Self::from_file(TensorFile::read(path, FORMAT, KIND, HINT)?)
    }

    /// `load` of a file's bytes (`path` names it in errors).
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Self, String> {
        Self::from_file(TensorFile::parse(bytes, path, FORMAT, KIND, HINT)?)
    }

    fn from_file(file: TensorFile) -> Result<Self, String> {
        let step = file.meta.get("step").and_then(|s| s.parse().ok()).ok_or_else(|| file.fail("metadata \"step\" is missing or not a number"))?;
        let names: Vec<String> = file
            .meta
            .get("names")
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| file.fail("metadata \"names\" is missing or not a JSON list of strings"))?;
        let (vs, vectors) = file.tensor("vectors")?;
        let (ws, with) = file.tensor("with")?;
        let (wos, without) = file.tensor("without")?;
        let a = names.len();
        if a == 0 || vs.len() != 2 || vs[0] != a || vs[1] == 0 || ws != [a] || wos != [a] {
            return Err(file.fail(format!("shapes vectors {vs:?}, with {ws:?}, without {wos:?} for {a} names: expected [{a}, latent], [{a}], [{a}]")));
        }
        let count = |v: Vec<f32>| -> Result<Vec<usize>, String> {
            v.into_iter()
                .map(|x| if x >= 0.0 && x.fract() == 0.0 { Ok(x as usize) } else { Err(file.fail(format!("image count {x} is not a whole number"))) })
                .collect()
        };
        Ok(AttributeVectors { names, latent: vs[1], vectors, with: count(with)?, without: count(without)?, step })
    }
}

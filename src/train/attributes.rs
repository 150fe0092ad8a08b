//! Attribute vectors of a trained model (`model::attributes`) and edits with them: the
//! encoder reads the labelled training images and the vectors are differences of mean
//! codes; an edit decodes μ(x) + shift beside the plain reconstruction Dec(μ(x)).

use crate::data::Dataset;
use crate::gpu::Gpu;
use crate::model::{AttributeVectors, ModelConfig};

use super::eval::{Decoder, Encoder};
use super::{Result, TrainError};

/// Codes per encoder and decoder batch.
const BATCH: usize = 250;

/// The attribute vectors of `set`'s attributes under the weights `values` gives (a
/// checkpoint's, at `step`).
pub fn attribute_vectors(gpu: &Gpu, config: &ModelConfig, values: &dyn Fn(&str) -> Option<Vec<f32>>, set: &Dataset, step: u64) -> Result<AttributeVectors> {
    let attrs = set.attribute_table().ok_or_else(|| TrainError::Invalid(format!("{} has no labels", set.source)))?;
    let mut encoder = Encoder::new(gpu, config, BATCH.min(set.count.max(1)))?;
    encoder.load(values)?;
    let (mu, _) = encoder.encode_all(set)?;
    AttributeVectors::from_codes(&mu, config.latent, &attrs, step).map_err(TrainError::Invalid)
}

/// Reconstructions Dec(μ(x)) and edits Dec(μ(x) + shift) of every image of `set`, in
/// [0, 1], count × dim each.
pub struct Edited {
    pub reconstructions: Vec<f32>,
    pub edited: Vec<f32>,
}

pub fn edit(gpu: &Gpu, config: &ModelConfig, values: &dyn Fn(&str) -> Option<Vec<f32>>, set: &Dataset, shift: &[f32]) -> Result<Edited> {
    if !config.conditions.is_empty() {
        return Err(super::TrainError::Invalid(
            "the model is conditioned: its attributes are set by its labels (`vaegan sample --condition`), not by vectors in its codes".into(),
        ));
    }
    if shift.len() != config.latent {
        return Err(TrainError::Invalid(format!("a shift of {} values for a latent of {}", shift.len(), config.latent)));
    }
    let batch = BATCH.min(set.count.max(1));
    let mut encoder = Encoder::new(gpu, config, batch)?;
    encoder.load(values)?;
    let (mu, _) = encoder.encode_all(set)?;
    let mut decoder = Decoder::new(gpu, config, batch)?;
    decoder.load(values)?;
    let d = config.latent;
    let mut decode_all = |codes: &[f32]| -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(set.count * set.dim());
        for chunk in codes.chunks(batch * d) {
            let mut z = chunk.to_vec();
            z.resize(batch * d, 0.0);
            let images = decoder.decode(&z)?;
            out.extend_from_slice(&images[..chunk.len() / d * set.dim()]);
        }
        Ok(out)
    };
    let reconstructions = decode_all(&mu)?;
    let moved: Vec<f32> = mu.chunks(d).flat_map(|code| code.iter().zip(shift).map(|(z, s)| z + s)).collect();
    let edited = decode_all(&moved)?;
    Ok(Edited { reconstructions, edited })
}

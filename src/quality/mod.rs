//! Sample quality you can measure: classifiers trained by vaegan itself (MNIST's digits; the
//! shapes set's shape, colour and background), the Fréchet distance between their features
//! of generated and of test images (the counterpart of FID), coverage, confidence, and how
//! edited images read.

pub mod classifier;
pub mod conditioned;
pub mod frechet;
pub mod measure;

pub use classifier::{Classifier, ClassifierWeights};
pub use frechet::{frechet_distance, FeatureStats};
pub use measure::{measure, score_edits, EditScore, EditTargets, EpochFrechet, Quality};

//! Sample quality you can measure: a classifier trained by vaegan itself on MNIST, the
//! Fréchet distance between its features of generated and of test images (the MNIST
//! counterpart of FID), class coverage and confidence.

pub mod classifier;
pub mod frechet;
pub mod measure;

pub use classifier::{Classifier, ClassifierWeights};
pub use frechet::{frechet_distance, FeatureStats};
pub use measure::{measure, EpochFrechet, Quality};

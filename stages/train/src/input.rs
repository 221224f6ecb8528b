//! Input types of the training stage, owned by the upstream stages.

pub use hhnas_data::{ClassInfo, Dataset, Row};
pub use hhnas_features::FeatureMatrix;

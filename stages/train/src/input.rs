//! Input types of the training stage, owned by the upstream stages.

pub use hhnas_features::FeatureMatrix;
pub use hhnas_spider::{ClassInfo, Dataset, Row};

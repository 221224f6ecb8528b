//! hhnas-train: the training stage of hhnas-pipe.
//!
//! A RoBERTa/BERT-layout encoder (from scratch or Hugging Face weights) plus optional CNN
//! branches over LLM and rule feature vectors (Models 1-4, SPEC §3), trained with AdamW,
//! SGD-momentum or RMSProp (SPEC §4) on burn 0.21. Pure functions of typed inputs:
//! checkpoints go to a callback, weights come back as bytes.

mod backend;
mod encoder;
mod error;
mod hf;
mod input;
mod model;
mod train;

pub use backend::{parse_device, CpuKind, Device, DEFAULT_CPU};
pub use encoder::{
    hf_download, prepare_encoder, ArchKind, EncoderArch, EncoderAssets, EncoderConfig,
    EncoderSource, HubOptions, WeightsRef,
};
pub use error::TrainError;
pub use hf::{LoadReport, KEY_REMAP};
pub use input::{ClassInfo, Dataset, FeatureMatrix, Row};
pub use model::BranchPool;
pub use train::{
    evaluate, predict, train_candidate, Checkpoint, EpochReport, ModelSpec, OptimizerKind,
    TrainConfig, TrainData, TrainOutcome,
};

/// Lower-level pieces for benches, parity tests and tools.
pub mod internals {
    pub use crate::encoder::tokenize_texts;
    pub use crate::hf::{load_encoder_bytes, load_encoder_weights};
    pub use crate::model::{Classifier, ClassifierShape, CnnBranch, TextEncoder};
}

//! hhnas-train: the training stage of hhnas-pipe.
//!
//! A RoBERTa/BERT-layout encoder (from scratch or Hugging Face weights) plus optional CNN
//! branches over LLM and rule feature vectors (Models 1-4, SPEC §3), trained with AdamW,
//! SGD-momentum or RMSProp (SPEC §4) on burn 0.21, either end to end or, with a frozen
//! encoder, as a head over vectors computed once ([`embed`]). Pure functions of typed
//! inputs: checkpoints go to a callback, weights come back as bytes.

mod arch;
mod backend;
mod candidate;
mod data;
mod download;
mod embed;
mod encoder;
mod epochs;
mod error;
mod evidence;
mod hf;
mod hf_config;
mod inference;
mod input;
mod model;
mod native;
mod neighbours;
mod prepare;
mod spec;
mod training;
mod vectors;
mod weights;

pub use arch::{ArchKind, EncoderArch};
pub use backend::{parse_device, CpuKind, Device};
pub use candidate::train_candidate;
pub use download::{hf_download, models_dir, pypi_download, HubOptions};
pub use embed::{embed, encoder_id};
pub use encoder::{prepare_encoder, EncoderAssets, EncoderConfig, EncoderSource, WeightsRef};
pub use error::TrainError;
pub use evidence::SCORER_HIDDEN;
pub use hf::{LoadReport, KEY_REMAP};
pub use inference::{evaluate, predict, row_probabilities, tuned_encoder, PredictInput};
pub use input::{ClassInfo, Dataset, FeatureMatrix, Row};
pub use model::{BranchPool, HeadKind};
pub use neighbours::{neighbour_scores, with_class_scores, NeighbourBank, NeighbourScores};
pub use spec::{
    Checkpoint, EpochReport, KeepEpoch, LexicalDropout, ModelSpec, NoDevice, OptimizerKind,
    TrainConfig, TrainData, TrainOutcome,
};
pub use vectors::{Embeddings, Pooling};
pub use weights::{pack_bag, unpack_bag};

/// Lower-level pieces for benches, parity tests and tools.
pub mod internals {
    pub use crate::data::sparse_batch;
    pub use crate::encoder::tokenize_texts;
    pub use crate::evidence::{EvidenceHead, EvidenceScorer};
    pub use crate::hf::{load_encoder_bytes, load_encoder_weights};
    pub use crate::model::{
        Classifier, ClassifierShape, CnnBranch, Head, SparseBranchBatch, TextEncoder,
    };
    pub use crate::native::{AdamW, NativeEncoder, NativeTrainer, Span};
}

//! The nodes of the DAG, one module each: how a node is keyed, how it is computed (by the
//! stage crates) and what its journal line says.
//!
//! ```text
//! spider ──► rules ─────────┐
//!    │  └──► llm_judge ─────┤
//!    └─────► encoder ──► encode (frozen mode only)
//!                           ▼
//!  iteration t:  sample(state_t) ─► train(candidate_t) ─► update(state_t, acc) = state_{t+1}
//! ```

pub mod data;
pub mod encode;
pub mod encoder;
pub mod features;
pub mod search;
pub mod train;

use anyhow::Result;

use hhnas_features::FeatureMatrix;
use hhnas_spider::Dataset;
use hhnas_train::EncoderAssets;

use crate::config::{EncoderMode, PipelineConfig};
use crate::exec::Exec;
use crate::store::Key;

pub use data::{data_params, spider_dir};
pub use search::{iterations, SampleMetrics, UpdateMetrics};
pub use train::{train_config, TrainMetrics, TrainSummary};

/// Everything the iterations share: the dataset, the feature matrices and the encoder,
/// each with its key.
pub(crate) struct Inputs {
    pub ds_key: Key,
    pub ds: Dataset,
    pub rules: Option<(Key, features::RuleOutput)>,
    pub judge: Option<(Key, FeatureMatrix)>,
    pub enc_key: Key,
    pub enc: EncoderAssets,
    /// Frozen encoder: the encode stage's vectors of every row.
    pub encoded: Option<(Key, hhnas_train::Embeddings)>,
}

impl Inputs {
    /// Runs (or replays) the one-off nodes. The feature stages run up front, so a bad LLM
    /// endpoint fails before any training.
    pub fn compute(exec: &mut Exec, cfg: &PipelineConfig) -> Result<Self> {
        let (ds_key, ds) = data::dataset_node(exec, cfg)?;
        let rules = Some(features::rules_node(exec, cfg, ds_key, &ds)?);
        let judge = Some(features::judge_node(exec, cfg, ds_key, &ds)?);
        let (enc_key, enc) = encoder::encoder_node(exec, cfg, ds_key, &ds)?;
        let encoded = match cfg.encoder.mode {
            EncoderMode::Frozen => {
                Some(encode::encode_node(exec, cfg, ds_key, &ds, enc_key, &enc)?)
            }
            EncoderMode::Finetune => None,
        };
        Ok(Inputs {
            ds_key,
            ds,
            rules,
            judge,
            enc_key,
            enc,
            encoded,
        })
    }
}

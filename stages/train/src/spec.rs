//! The training stage's public types: what a candidate is, how it trains, what comes out.

use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::input::{Dataset, FeatureMatrix};
use crate::model::{BranchPool, HeadKind};
use crate::vectors::Embeddings;

/// Optimizer chosen by `criterion_num`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// criterion_num 0: AdamW with PyTorch's defaults (betas 0.9/0.999, eps 1e-8, weight
    /// decay 0.01; SPEC §4), not burn's (eps 1e-5, weight decay 1e-4).
    AdamW,
    /// criterion_num 1: SGD with momentum 0.9 (dampening 0, as PyTorch).
    SgdMomentum,
    /// criterion_num 2: RMSProp (alpha 0.99, eps 1e-8, no momentum, as PyTorch).
    RmsProp,
}

impl OptimizerKind {
    /// Map SPEC §4 `criterion_num` (0, 1, 2).
    pub fn from_criterion_num(n: u32) -> Result<Self, TrainError> {
        match n {
            0 => Ok(Self::AdamW),
            1 => Ok(Self::SgdMomentum),
            2 => Ok(Self::RmsProp),
            _ => Err(TrainError::Config {
                field: "criterion_num",
                value: n.to_string(),
                fix: "use 0 (AdamW), 1 (SGD momentum 0.9) or 2 (RMSProp)".into(),
            }),
        }
    }
}

/// One candidate's architecture and micro parameters (SPEC §3, §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub llm_branch: bool,
    pub rule_branch: bool,
    pub learning_rate: f64,
    pub optimizer: OptimizerKind,
    pub layer_size1: usize,
    pub layer_size2: usize,
    pub dropout: f64,
    pub kernel_size: usize,
}

/// `[train]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Always [`NoDevice`]: the device is passed beside the config (a
    /// [`crate::Device`]), so no key depends on it. The field keeps its place because
    /// the keys of stored candidates spell the config with it, written empty.
    pub device: NoDevice,
    /// Stop after this many epochs without a new best validation accuracy.
    pub patience: Option<usize>,
    /// Use at most this many training rows (a seeded subsample), for demos.
    pub max_train_rows: Option<usize>,
    /// Group rows of similar length into batches (less padding, faster).
    pub sort_by_length: bool,
    /// Output channels of each CNN feature branch.
    pub cnn_channels: usize,
    /// Pooling of the CNN branches. Left out of the serialized form when it is the SPEC
    /// default, so cache keys of existing runs do not change.
    #[serde(default, skip_serializing_if = "BranchPool::is_global_max")]
    pub branch_pool: BranchPool,
    /// The head of frozen-encoder candidates. Left out when it is the SPEC's dense head,
    /// so cache keys of existing runs do not change.
    #[serde(default, skip_serializing_if = "HeadKind::is_dense")]
    pub head: HeadKind,
    /// Which epoch's weights the candidate keeps. Left out when it is the SPEC's best
    /// epoch, so cache keys of existing runs do not change.
    #[serde(default, skip_serializing_if = "KeepEpoch::is_best")]
    pub keep: KeepEpoch,
    /// Hide some training rows' lexical evidence (the evidence head only). Left out when
    /// off, so cache keys of existing runs do not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lexical_dropout: Option<LexicalDropout>,
}

/// Lexical evidence dropout, a training-time augmentation of the evidence head: in every
/// epoch each training row, with probability `rate`, has everything read off the
/// question's words hidden: its evidence blocks from `from_block` on (character n-gram
/// neighbours, the n-gram SVM, schema evidence) set to their mean over the classes, and
/// its CNN branches' inputs (rule matches, judge grades) emptied, so none favours a
/// class. The head then also learns to decide from the encoder's vector and the blocks
/// before `from_block` (the encoder's neighbours), which carry over to a question that
/// names the schema in other words. Validation, test and inference rows
/// are never touched. Our addition; the paper has no evidence head.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LexicalDropout {
    /// Share of training rows hidden per epoch, in (0, 1).
    pub rate: f64,
    /// The first lexical block: the blocks before it are kept.
    pub from_block: usize,
}

/// Where [`TrainConfig`] once held the device: serialized as an empty string, as keys
/// of earlier releases wrote it after blanking the device; anything read is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoDevice;

impl Serialize for NoDevice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("")
    }
}

impl<'de> Deserialize<'de> for NoDevice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|_| NoDevice)
    }
}

/// Which epoch's weights training returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepEpoch {
    /// The epoch with the best validation accuracy (SPEC §6).
    #[default]
    Best,
    /// The last epoch: a refit on training + validation rows, whose epoch count the
    /// search already chose on validation accuracy (the validation rows are then training
    /// rows, so their accuracy selects nothing).
    Last,
}

impl KeepEpoch {
    pub fn is_best(&self) -> bool {
        *self == KeepEpoch::Best
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 16,
            seed: 0,
            device: NoDevice,
            patience: None,
            max_train_rows: None,
            sort_by_length: true,
            cnn_channels: 32,
            branch_pool: BranchPool::GlobalMax,
            head: HeadKind::Dense,
            keep: KeepEpoch::Best,
            lexical_dropout: None,
        }
    }
}

/// Typed inputs of one training run. Feature matrices have one row per dataset row.
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a> {
    pub dataset: &'a Dataset,
    pub llm_features: Option<&'a FeatureMatrix>,
    pub rule_features: Option<&'a FeatureMatrix>,
    /// The class each rule-feature column is evidence for (`RuleSet` order); needed by
    /// [`BranchPool::PerClass`]. LLM-feature columns are the classes themselves.
    pub rule_classes: Option<&'a [u32]>,
    /// A frozen encoder's vectors (the encode stage's output), one row per dataset row:
    /// the candidate then trains only its [`crate::internals::Head`] over them, in
    /// seconds. `None`: the encoder is fine-tuned with the head (the paper's setting).
    pub embeddings: Option<&'a Embeddings>,
}

impl<'a> TrainData<'a> {
    /// The questions alone: no feature branch inputs, the encoder fine-tuned.
    pub fn text_only(dataset: &'a Dataset) -> Self {
        TrainData {
            dataset,
            llm_features: None,
            rule_features: None,
            rule_classes: None,
            embeddings: None,
        }
    }
}

/// One epoch of the learning curve (epochs count from 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    pub valid_acc: f64,
    pub secs: f64,
}

/// Training state after a completed epoch; enough to continue bit for bit (CPU).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// blake3 of the inputs that must not change on resume (spec, seed, batching, encoder).
    pub fingerprint: String,
    /// Completed epochs.
    pub epoch: usize,
    /// Model record (burn bincode, full precision).
    pub model: Vec<u8>,
    /// Optimizer record (burn bincode, full precision).
    pub optimizer: Vec<u8>,
    /// Seed every per-epoch stream (shuffle, dropout) is derived from.
    pub seed: u64,
    pub curve: Vec<EpochReport>,
    pub best_epoch: usize,
    pub best_valid_acc: f64,
    /// Weights of the best epoch so far (same format as `TrainOutcome::best_weights`).
    pub best_weights: Vec<u8>,
    /// Epochs since the best one (for patience).
    pub since_best: usize,
    pub stopped_early: bool,
}

/// Result of one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOutcome {
    pub curve: Vec<EpochReport>,
    pub best_epoch: usize,
    pub best_valid_acc: f64,
    pub test_acc: f64,
    pub stopped_early: bool,
    /// Set when no epoch ended with a finite loss (training diverged in the first);
    /// accuracies are then 0. A later divergence keeps the best finite epoch (SPEC §6):
    /// the curve then ends with the diverged epoch, its `train_loss` not finite.
    pub failed: Option<String>,
    /// Best epoch's weights: a small header + burn record; load with `predict`/`evaluate`.
    pub best_weights: Vec<u8>,
    /// Training examples per second (forward + backward + step) in this process.
    pub examples_per_sec: f64,
}

//! The nodes of the DAG, one module each: how a node is keyed, how it is computed (by the
//! stage crates) and what its journal line says.
//!
//! ```text
//! spider ──► rules ─────────┐
//!    │  └──► llm_judge ─────┤
//!    └─────► encoder ──► encode ──► neighbours ──► char_neighbours ──► char_svm
//!                       (frozen mode only; the last three if configured)
//!                           ▼
//!  iteration t:  sample(state_t) ─► train(candidate_t) ─► update(state_t, acc) = state_{t+1}
//! ```

pub mod data;
pub mod encode;
pub mod encoder;
pub mod ensemble;
pub mod features;
pub mod neighbours;
pub mod search;
pub mod train;

use anyhow::Result;

use hhnas_features::FeatureMatrix;
use hhnas_spider::Dataset;
use hhnas_train::{
    with_class_scores as with_scores, Embeddings, EncoderAssets, ModelSpec, TrainData,
};

use crate::config::{EncoderMode, EvidenceBank, PipelineConfig};
use crate::exec::Exec;
use crate::store::Key;
use neighbours::CharEvidence;

pub use data::spider_dir;
pub use search::{iterations, SampleMetrics, UpdateMetrics};
pub use train::{TrainMetrics, TrainSummary};

/// Everything the iterations share: the dataset, the feature matrices and the encoder,
/// each with its key.
pub(crate) struct Inputs {
    pub ds_key: Key,
    pub ds: Dataset,
    pub rules: Option<(Key, features::RuleOutput)>,
    /// The class each rule column is evidence for (per-class branch pooling).
    pub rule_classes: Option<Vec<u32>>,
    pub judge: Option<(Key, FeatureMatrix)>,
    pub enc_key: Key,
    pub enc: EncoderAssets,
    /// Frozen encoder: what the head reads for every row (the encode stage's vectors,
    /// then the neighbour evidence when configured), under the key of the last node that
    /// made it.
    pub encoded: Option<(Key, Embeddings)>,
    /// With neighbour evidence: the encode stage's own vectors, the bank new texts are
    /// compared with.
    pub neighbour_bank: Option<Embeddings>,
    /// With character n-gram evidence (neighbours, SVM): new texts get it too.
    pub char_neighbours: bool,
    pub char_svm: bool,
    /// The rows the evidence is drawn from.
    pub bank: EvidenceBank,
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
        let bank = cfg.features.evidence_bank;
        let neighbours = match &encoded {
            Some((k, v)) if cfg.encoder.neighbours => {
                Some(neighbours::neighbours_node(exec, ds_key, &ds, bank, *k, v)?)
            }
            _ => None,
        };
        let prev_key = neighbours
            .as_ref()
            .map(|n| n.0)
            .or(encoded.as_ref().map(|e| e.0));
        let mut char_node = |on: bool, evidence, prev: Option<Key>| match prev {
            Some(prev) if on => {
                neighbours::char_evidence_node(exec, evidence, ds_key, &ds, bank, prev).map(Some)
            }
            _ => Ok(None),
        };
        let char_neighbours = char_node(
            cfg.features.char_neighbours,
            CharEvidence::Neighbours,
            prev_key,
        )?;
        let prev_key = char_neighbours.as_ref().map(|n| n.0).or(prev_key);
        let char_svm = char_node(cfg.features.char_svm, CharEvidence::Svm, prev_key)?;
        let evidence = Evidence {
            neighbours,
            char_neighbours,
            char_svm,
        };
        Ok(Inputs::assemble(
            ds_key, ds, rules, judge, enc_key, enc, encoded, evidence, bank,
        ))
    }

    /// The inputs from their nodes' outputs; with neighbour evidence the head's vectors
    /// are the encoder's joined with it, under the key of the last evidence node.
    #[allow(clippy::too_many_arguments)]
    pub fn assemble(
        ds_key: Key,
        ds: Dataset,
        rules: Option<(Key, features::RuleOutput)>,
        judge: Option<(Key, FeatureMatrix)>,
        enc_key: Key,
        enc: EncoderAssets,
        encoded: Option<(Key, Embeddings)>,
        evidence: Evidence,
        bank: EvidenceBank,
    ) -> Self {
        let char_neighbours = evidence.char_neighbours.is_some();
        let char_svm = evidence.char_svm.is_some();
        let (encoded, neighbour_bank) = match (encoded, evidence.neighbours) {
            (Some((_, base)), Some((nk, scores))) => (
                Some((nk, with_scores(&base, &scores, NEIGHBOURS))),
                Some(base),
            ),
            (encoded, _) => (encoded, None),
        };
        let mut encoded = encoded;
        for (scores, tag) in [(evidence.char_neighbours, CHARS), (evidence.char_svm, SVM)] {
            encoded = match (encoded, scores) {
                (Some((_, v)), Some((k, scores))) => Some((k, with_scores(&v, &scores, tag))),
                (encoded, _) => encoded,
            };
        }
        let rule_classes = rules.as_ref().map(|(_, r)| r.rules.column_classes());
        Inputs {
            ds_key,
            ds,
            rules,
            rule_classes,
            judge,
            enc_key,
            enc,
            encoded,
            neighbour_bank,
            char_neighbours,
            char_svm,
            bank,
        }
    }

    /// What a candidate of `spec` trains and is scored on, over the rows and splits of
    /// `dataset` (the run's own, or a refit's training + validation split of it).
    pub fn train_data<'a>(&'a self, spec: &ModelSpec, dataset: &'a Dataset) -> TrainData<'a> {
        TrainData {
            dataset,
            llm_features: self
                .judge
                .as_ref()
                .map(|(_, m)| m)
                .filter(|_| spec.llm_branch),
            rule_features: self
                .rules
                .as_ref()
                .map(|(_, r)| &r.matrix)
                .filter(|_| spec.rule_branch),
            rule_classes: self.rule_classes.as_deref(),
            embeddings: self.encoded.as_ref().map(|(_, e)| e),
        }
    }

    /// What the head reads for new `texts` whose encoder vectors are `base`.
    pub fn head_vectors(&self, base: Embeddings, texts: &[&str]) -> Embeddings {
        let mut v = match &self.neighbour_bank {
            Some(bank) => {
                let scores =
                    neighbours::scores_against_bank(&self.ds, self.bank, bank, &base, false);
                with_scores(&base, &scores, NEIGHBOURS)
            }
            None => base,
        };
        if self.char_neighbours || self.char_svm {
            let chars = neighbours::CharBank::new(&self.ds, self.bank);
            for (on, evidence, tag) in [
                (self.char_neighbours, CharEvidence::Neighbours, CHARS),
                (self.char_svm, CharEvidence::Svm, SVM),
            ] {
                if on {
                    v = with_scores(&v, &chars.scores(texts, false, evidence), tag);
                }
            }
        }
        v
    }
}

/// The outputs of the evidence nodes that join the encoder's vectors, when configured.
#[derive(Default)]
pub(crate) struct Evidence {
    pub neighbours: Option<(Key, hhnas_train::NeighbourScores)>,
    pub char_neighbours: Option<(Key, hhnas_train::NeighbourScores)>,
    pub char_svm: Option<(Key, hhnas_train::NeighbourScores)>,
}

/// Names of the evidence blocks in the vectors' identity (frozen weights record it).
const NEIGHBOURS: &str = "neighbours";
const CHARS: &str = "char-neighbours";
const SVM: &str = "char-svm";

/// Index of the largest value (the predicted class of a row of scores).
pub(crate) fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.partial_cmp(b.1).unwrap_or(std::cmp::Ordering::Equal))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

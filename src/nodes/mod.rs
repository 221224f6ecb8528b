//! The nodes of the DAG, one module each: how a node is keyed, how it is computed (by the
//! stage crates) and what its journal line says.
//!
//! ```text
//! spider ──► rules ─────────┐
//!    │  └──► llm_judge ─────┤
//!    └─────► encoder ──► (warm) ──► encode ──► the evidence nodes, each joining the last's
//!            vectors (frozen and warm modes; warm.rs tunes the encoder once first;
//!            evidence.rs declares the evidence nodes, each if configured)
//!                           ▼
//!  iteration t:  sample(state_t) ─► train(candidate_t) ─► update(state_t, acc) = state_{t+1}
//!  after the search:  ensemble ─► refit (each member) ─► final
//! ```

pub mod bagging;
pub mod data;
pub mod encode;
pub mod encoder;
pub mod ensemble;
pub mod evidence;
pub mod features;
pub mod search;
pub mod train;
pub mod warm;

use anyhow::Result;

use hhnas_data::Dataset;
use hhnas_features::FeatureMatrix;
use hhnas_train::{Embeddings, EncoderAssets, ModelSpec, NeighbourScores, TrainData};

use crate::config::{EncoderMode, EvidenceBank, PipelineConfig};
use crate::dag::Evidence;
use crate::dag::{Replay, Stage};
pub(crate) use evidence::evidence_key;
use evidence::{evidence_node, joined, Sources};
use hhnas_engine::store::Key;

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
    /// Frozen encoder: what the head reads for every row (the encode stage's vectors
    /// joined with the evidence blocks), under the key of the last node that made it.
    pub encoded: Option<(Key, Embeddings)>,
    /// Frozen encoder: the encode stage's own vectors, the bank new texts are compared with.
    pub base: Option<Embeddings>,
    /// The evidence joined to the vectors, in order; new texts get it too.
    pub evidence: Vec<Evidence>,
    /// The rows the evidence is drawn from.
    pub bank: EvidenceBank,
}

/// The stored outputs of the nodes every iteration reads, as `eval` and `predict` load
/// them back ([`Inputs::assemble`]).
pub(crate) struct Stored {
    pub ds_key: Key,
    pub ds: Dataset,
    pub rules: Option<(Key, features::RuleOutput)>,
    pub judge: Option<(Key, FeatureMatrix)>,
    pub enc_key: Key,
    pub enc: EncoderAssets,
    pub encoded: Option<(Key, Embeddings)>,
    /// Each evidence node's key and values, in DAG order.
    pub evidence: Vec<(Evidence, Key, NeighbourScores)>,
    pub bank: EvidenceBank,
}

impl Inputs {
    /// Runs (or replays) the one-off nodes. The feature stages run up front, so a bad LLM
    /// endpoint fails before any training.
    pub fn compute(exec: &mut Replay, cfg: &PipelineConfig) -> Result<Self> {
        let (ds_key, ds) = data::dataset_node(exec, cfg)?;
        let rules = Some(features::rules_node(exec, cfg, ds_key, &ds)?);
        let judge = Some(features::judge_node(exec, cfg, ds_key, &ds)?);
        let (enc_key, enc) = encoder::encoder_node(exec, cfg, ds_key, &ds)?;
        // Warm: the encoder tuned once; every later node takes the tuned one as its encoder.
        let (enc_key, enc) = match cfg.encoder.mode {
            EncoderMode::Warm => warm::warm_node(exec, cfg, ds_key, &ds, enc_key, &enc)?,
            EncoderMode::Frozen | EncoderMode::Finetune => (enc_key, enc),
        };
        let encoded = match cfg.encoder.mode.frozen_vectors() {
            true => Some(encode::encode_node(exec, cfg, ds_key, &ds, enc_key, &enc)?),
            false => None,
        };
        let bank = cfg.features.evidence_bank;
        let mut evidence = Vec::new();
        if let Some((encode_key, vectors)) = &encoded {
            let mut sources = Sources::new(&ds, bank, vectors, &enc, cfg);
            let mut prev = *encode_key;
            for e in Evidence::enabled_in(cfg) {
                let key = exec.kept_key::<NeighbourScores>(
                    Stage::Evidence(e),
                    evidence_key(e, ds_key, bank, prev),
                );
                evidence.push((e, key, evidence_node(exec, e, key, &mut sources)?));
                prev = key;
            }
        }
        Ok(Inputs::assemble(Stored {
            ds_key,
            ds,
            rules,
            judge,
            enc_key,
            enc,
            encoded,
            evidence,
            bank,
        }))
    }

    /// The inputs from their nodes' outputs; with evidence the head's vectors are the
    /// encoder's joined with it, under the key of the last evidence node.
    pub fn assemble(s: Stored) -> Self {
        let rule_classes = s.rules.as_ref().map(|(_, r)| r.rules.column_classes());
        let base = s.encoded.as_ref().map(|(_, v)| v.clone());
        let on: Vec<Evidence> = s.evidence.iter().map(|(e, ..)| *e).collect();
        let mut encoded = s.encoded;
        for (e, key, scores) in &s.evidence {
            encoded = encoded.map(|(_, v)| (*key, joined(&v, *e, scores)));
        }
        Inputs {
            ds_key: s.ds_key,
            ds: s.ds,
            rules: s.rules,
            rule_classes,
            judge: s.judge,
            enc_key: s.enc_key,
            enc: s.enc,
            encoded,
            base,
            evidence: on,
            bank: s.bank,
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

    /// What the head reads for new `texts` whose encoder vectors are `base` (`cfg`: the
    /// run's, which says where its data came from).
    pub fn head_vectors(
        &self,
        cfg: &PipelineConfig,
        base: Embeddings,
        texts: &[&str],
    ) -> Result<Embeddings> {
        match &self.base {
            Some(vectors) if !self.evidence.is_empty() => {
                let mut sources = Sources::new(&self.ds, self.bank, vectors, &self.enc, cfg);
                evidence::for_texts(&mut sources, &self.evidence, base, texts)
            }
            _ => Ok(base),
        }
    }
}

/// Index of the largest value (the predicted class of a row of scores).
pub(crate) fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.partial_cmp(b.1).unwrap_or(std::cmp::Ordering::Equal))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

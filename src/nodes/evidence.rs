//! The per-class evidence nodes of a frozen encoder, declared once. Each gives every
//! question one value per class, joined to the encoder's vectors in the order of
//! [`Evidence::ALL`]; the head reads `[vector, evidence blocks...]`. The run computes them
//! for every dataset row (a bank row leaving itself out), and `eval` and `predict` compute
//! them for new texts through the same declaration.
//!
//! Adding an evidence node: its computation in a stage crate, its variant in the DAG's
//! declaration (`dag.rs`: name and version), its config switch and two computations here,
//! and the switch in `config/mod.rs`.

use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use hhnas_data::Dataset;
use hhnas_train::{Embeddings, EncoderAssets, NeighbourBank, NeighbourScores};

use crate::config::{EvidenceBank, PipelineConfig};
use crate::dag::Replay;
use crate::dag::{Evidence, Stage};
use hhnas_engine::store::Key;
use hhnas_engine::user_error;

impl Evidence {
    /// The configuration key that turns it on.
    pub const fn switch(self) -> &'static str {
        match self {
            Evidence::Neighbours => "encoder.neighbours",
            Evidence::SchemaSemantic => "features.schema_semantic",
            Evidence::CharNeighbours => "features.char_neighbours",
            Evidence::CharSvm => "features.char_svm",
            Evidence::SchemaShare | Evidence::SchemaCosine => "features.schema_evidence",
            Evidence::Partner => "features.partner_evidence",
        }
    }

    pub fn enabled(self, cfg: &PipelineConfig) -> bool {
        match self {
            Evidence::Neighbours => cfg.encoder.neighbours,
            Evidence::SchemaSemantic => cfg.features.schema_semantic,
            Evidence::CharNeighbours => cfg.features.char_neighbours,
            Evidence::CharSvm => cfg.features.char_svm,
            Evidence::SchemaShare | Evidence::SchemaCosine => cfg.features.schema_evidence,
            Evidence::Partner => cfg.features.partner_evidence,
        }
    }

    /// The ones `cfg` turns on, in DAG order.
    pub fn enabled_in(cfg: &PipelineConfig) -> Vec<Evidence> {
        Evidence::ALL
            .into_iter()
            .filter(|e| e.enabled(cfg))
            .collect()
    }

    /// Whether its values are read off the question's spelling (what
    /// `train.lexical_dropout` hides); the encoder's neighbours and the semantic schema
    /// match are not (a synonym scores as the word). The partner evidence reads the
    /// encoder's cosine too, but mostly shared words, names and numbers.
    pub fn lexical(self) -> bool {
        !matches!(self, Evidence::Neighbours | Evidence::SchemaSemantic)
    }

    /// The block from which on the evidence `cfg` turns on is lexical: the blocks sit in
    /// DAG order, where no kind that is not lexical follows a lexical one (tested).
    pub fn first_lexical_block(cfg: &PipelineConfig) -> usize {
        let on = Evidence::enabled_in(cfg);
        on.iter().position(|e| e.lexical()).unwrap_or(on.len())
    }

    /// Whether its values read the bank rows' labels, so that a bank row must leave
    /// itself out (schema evidence reads only the classes' schemas).
    fn reads_labels(self) -> bool {
        !matches!(
            self,
            Evidence::SchemaShare | Evidence::SchemaCosine | Evidence::SchemaSemantic
        )
    }

    fn stage(self) -> Stage {
        Stage::Evidence(self)
    }

    /// The block's name in the vectors' identity (frozen weights record it).
    fn tag(self) -> &'static str {
        match self {
            Evidence::Neighbours => "neighbours",
            Evidence::SchemaSemantic => "schema-semantic",
            Evidence::CharNeighbours => "char-neighbours",
            Evidence::CharSvm => "char-svm",
            Evidence::SchemaShare => "schema-share",
            Evidence::SchemaCosine => "schema-cosine",
            Evidence::Partner => "partner",
        }
    }

    /// What the journal line calls the similarity ("" for the encoder's vectors, whose
    /// summary predates the others).
    fn measure(self) -> &'static str {
        match self {
            Evidence::Neighbours => "",
            Evidence::SchemaSemantic => {
                ", idf-weighted encoder cosine of the question's words to the schema's"
            }
            Evidence::CharNeighbours => ", character 2-5-gram TF-IDF",
            Evidence::CharSvm => ", character 2-5-gram TF-IDF linear SVM (cross-fitted)",
            Evidence::SchemaShare => ", share of the question's content words in the schema",
            Evidence::SchemaCosine => ", word TF-IDF cosine to the schema's words",
            Evidence::Partner => {
                ", paraphrase-partner probability (pair logistic regression, cross-fitted)"
            }
        }
    }

    /// The values of `texts` (their encoder vectors `queries`) against the bank of
    /// `sources`. `same_rows`: the texts are all of the dataset's rows in order, and each
    /// bank row leaves itself out.
    fn compute(
        self,
        sources: &mut Sources,
        texts: &[&str],
        queries: &Embeddings,
        same_rows: bool,
    ) -> Result<NeighbourScores> {
        Ok(match self {
            Evidence::Neighbours => {
                let (rows, labels) = bank_rows(sources.ds, sources.bank);
                let bank = NeighbourBank {
                    vectors: sources.vectors,
                    rows: &rows,
                    labels: &labels,
                    classes: sources.ds.classes.len(),
                };
                hhnas_train::neighbour_scores(&bank, queries, same_rows)
            }
            Evidence::CharNeighbours | Evidence::CharSvm => {
                let (ds, bank) = (sources.ds, sources.bank);
                let chars = sources.chars.get_or_insert_with(|| CharBank::new(ds, bank));
                chars.scores(texts, same_rows, self)
            }
            Evidence::SchemaShare | Evidence::SchemaCosine => {
                let (ds, bank) = (sources.ds, sources.bank);
                let schema = sources.schema.get_or_insert_with(|| schema_index(ds, bank));
                let scores = match self {
                    Evidence::SchemaShare => schema.share_scores(texts),
                    _ => schema.cosine_scores(texts),
                };
                class_values(scores)
            }
            Evidence::SchemaSemantic => {
                let (ds, bank) = (sources.ds, sources.bank);
                let schema = sources.schema.get_or_insert_with(|| schema_index(ds, bank));
                let words = hhnas_features::semantic_words(schema, texts);
                let vectors = word_vectors(sources.enc, sources.cfg, words)?;
                class_values(schema.semantic_scores(&vectors, texts))
            }
            Evidence::Partner => partner_scores(sources, texts, queries, same_rows)?,
        })
    }
}

/// The partner evidence of `texts` against the bank of `sources`, whose rows'
/// paraphrase keys are read on first use.
fn partner_scores(
    sources: &mut Sources,
    texts: &[&str],
    queries: &Embeddings,
    same_rows: bool,
) -> Result<NeighbourScores> {
    let ds = sources.ds;
    let (rows, labels) = bank_rows(ds, sources.bank);
    let keys = sources.paraphrase_keys()?;
    let bank_keys: Vec<Option<String>> = rows.iter().map(|&r| keys[r].clone()).collect();
    let bank_texts: Vec<&str> = rows.iter().map(|&r| ds.rows[r].question.as_str()).collect();
    let vectors = sources.vectors;
    let bank_vectors: Vec<f32> = rows.iter().flat_map(|&r| vectors.row(r)).copied().collect();
    let bank_kind = sources.bank;
    let chars = sources
        .chars
        .get_or_insert_with(|| CharBank::new(ds, bank_kind));
    let bank = hhnas_features::PartnerBank {
        texts: &bank_texts,
        vectors: hhnas_features::Dense {
            dim: vectors.dim,
            data: &bank_vectors,
        },
        labels: &labels,
        keys: &bank_keys,
        classes: ds.classes.len(),
        chars: &chars.index,
    };
    let own_rows = same_rows.then(|| own_positions(ds, &rows));
    let scores = hhnas_features::partner_scores(
        &bank,
        texts,
        hhnas_features::Dense {
            dim: queries.dim,
            data: &queries.data,
        },
        own_rows.as_deref(),
    );
    Ok(class_values(scores))
}

/// The features crate's per-class values as the head's evidence block.
fn class_values(s: hhnas_features::ClassScores) -> NeighbourScores {
    NeighbourScores {
        classes: s.classes,
        rows: s.rows,
        data: s.data,
    }
}

/// For every dataset row, its position among the bank `rows` (None: not a bank row).
fn own_positions(ds: &Dataset, rows: &[usize]) -> Vec<Option<usize>> {
    let mut position = vec![None; ds.rows.len()];
    for (p, &r) in rows.iter().enumerate() {
        position[r] = Some(p);
    }
    position
}

/// What the evidence is drawn from: the dataset's bank rows, their encoder vectors, their
/// character n-gram index (built on first use, once for the character evidence and the
/// partner's pair features) and the classes' schema words (built on first use).
pub(crate) struct Sources<'a> {
    pub ds: &'a Dataset,
    pub bank: EvidenceBank,
    /// The encode node's vectors of every dataset row.
    pub vectors: &'a Embeddings,
    /// The encoder that made them (the semantic schema evidence embeds single words).
    enc: &'a EncoderAssets,
    /// Where the dataset's paraphrase keys are read from.
    cfg: &'a PipelineConfig,
    /// Each dataset row's paraphrase key, read on first use: a run whose partner node
    /// replays from the store never reads the Spider files a second time.
    paraphrase_keys: Option<Vec<Option<String>>>,
    chars: Option<CharBank<'a>>,
    schema: Option<hhnas_features::SchemaIndex>,
}

impl<'a> Sources<'a> {
    pub fn new(
        ds: &'a Dataset,
        bank: EvidenceBank,
        vectors: &'a Embeddings,
        enc: &'a EncoderAssets,
        cfg: &'a PipelineConfig,
    ) -> Self {
        Sources {
            ds,
            bank,
            vectors,
            enc,
            cfg,
            paraphrase_keys: None,
            chars: None,
            schema: None,
        }
    }
}

impl Sources<'_> {
    /// Each dataset row's paraphrase key (read once; one per row, as
    /// `hhnas_spider::paraphrase_keys` maps the dataset's rows).
    fn paraphrase_keys(&mut self) -> Result<&[Option<String>]> {
        let keys = match self.paraphrase_keys.take() {
            Some(keys) => keys,
            None => super::data::paraphrase_keys(self.cfg, self.ds)?.ok_or_else(|| {
                user_error!(
                    "the partner evidence needs paraphrase keys, which only Spider data has. \
                     Fix: set `[features] partner_evidence = false`"
                )
            })?,
        };
        Ok(self.paraphrase_keys.insert(keys))
    }
}

/// The vectors with one evidence block joined.
pub(crate) fn joined(v: &Embeddings, e: Evidence, scores: &NeighbourScores) -> Embeddings {
    hhnas_train::with_class_scores(v, scores, e.tag())
}

/// The values of new `texts`, whose encoder vectors are `base`, for every evidence in
/// `on`, joined to `base` in order.
pub(crate) fn for_texts(
    sources: &mut Sources,
    on: &[Evidence],
    base: Embeddings,
    texts: &[&str],
) -> Result<Embeddings> {
    let mut v = base.clone();
    for &e in on {
        v = joined(&v, e, &e.compute(sources, texts, &base, false)?);
    }
    Ok(v)
}

/// The journal line of an evidence node, written here and read by `status` (the
/// character n-gram SVM's `test_top1` is the baseline beside the best candidate).
/// Reading is lenient: what is missing is `None`.
#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
#[serde(default)]
pub struct EvidenceMetrics {
    pub summary: String,
    /// Share of rows whose best-scoring class is their own, on each split: close values
    /// say that leaving bank rows out made their evidence look like unseen rows'.
    pub train_top1: Option<f64>,
    pub test_top1: Option<f64>,
    pub compute_secs: Option<f64>,
}

impl EvidenceMetrics {
    /// The metrics of a journal line; an unreadable one reads as empty.
    pub fn read(metrics: &serde_json::Value) -> Self {
        Self::deserialize(metrics).unwrap_or_default()
    }
}

/// The rows of `ds` evidence is drawn from, with their labels.
pub(crate) fn bank_rows(ds: &Dataset, bank: EvidenceBank) -> (Vec<usize>, Vec<u32>) {
    let rows: Vec<usize> = match bank {
        EvidenceBank::Train => ds.train.clone(),
        EvidenceBank::TrainValid => ds.train.iter().chain(&ds.valid).copied().collect(),
    };
    let labels = rows.iter().map(|&r| ds.rows[r].label).collect();
    (rows, labels)
}

fn top1_rate(ds: &Dataset, s: &NeighbourScores, rows: &[usize]) -> f64 {
    let hits = rows
        .iter()
        .filter(|&&r| {
            let row = &s.data[r * s.classes..(r + 1) * s.classes];
            super::argmax(row) as u32 == ds.rows[r].label
        })
        .count();
    hits as f64 / rows.len().max(1) as f64
}

/// An evidence node's key: the dataset, the bank (named only when it is not the
/// training rows, so keys from before the choice existed still hold) and the node whose
/// vectors these values join, so the key of the head's input names everything in it.
pub(crate) fn evidence_key(e: Evidence, ds_key: Key, bank: EvidenceBank, prev_key: Key) -> Key {
    let mut key = e.stage().key();
    key.input(&ds_key);
    if bank != EvidenceBank::Train {
        key.param(&bank);
    }
    key.input(&prev_key).finish()
}

/// Runs (or replays) the evidence node `e` over every dataset row. The journal line says
/// how often the best-scoring class is the row's own, on training rows (each left out)
/// and on test rows.
pub(crate) fn evidence_node(
    exec: &mut Replay,
    e: Evidence,
    key: Key,
    sources: &mut Sources,
) -> Result<NeighbourScores> {
    exec.node(e.stage(), None, key, |_| {
        let started = Instant::now();
        let ds = sources.ds;
        let texts: Vec<&str> = ds.rows.iter().map(|r| r.question.as_str()).collect();
        let vectors = sources.vectors;
        let scores = e.compute(sources, &texts, vectors, true)?;
        let train_top1 = top1_rate(ds, &scores, &ds.train);
        let test_top1 = top1_rate(ds, &scores, &ds.test);
        let metrics = EvidenceMetrics {
            summary: format!(
                "{} questions x {} classes{}; {} class right: train {:.1}%{}, test {:.1}%{}",
                scores.rows,
                scores.classes,
                e.measure(),
                if e.reads_labels() { "nearest" } else { "best" },
                train_top1 * 100.0,
                if e.reads_labels() {
                    " (each row left out)"
                } else {
                    ""
                },
                test_top1 * 100.0,
                match sources.bank {
                    EvidenceBank::Train => "",
                    EvidenceBank::TrainValid => "; bank: training and validation rows",
                }
            ),
            train_top1: Some(train_top1),
            test_top1: Some(test_top1),
            compute_secs: Some(started.elapsed().as_secs_f64()),
        };
        Ok((scores, metrics))
    })
}

/// The classes' schema words, with the word idf fitted on them and the bank's questions
/// (a row's label is never read: no row needs to leave itself out).
fn schema_index(ds: &Dataset, bank: EvidenceBank) -> hhnas_features::SchemaIndex {
    let (rows, _) = bank_rows(ds, bank);
    let texts: Vec<&str> = rows.iter().map(|&r| ds.rows[r].question.as_str()).collect();
    hhnas_features::SchemaIndex::build(&ds.classes, &texts)
}

/// The encoder's vectors of single `words`, as the encode node pools a question's.
fn word_vectors(
    enc: &EncoderAssets,
    cfg: &PipelineConfig,
    words: Vec<String>,
) -> Result<hhnas_features::WordVectors> {
    let texts: Vec<&str> = words.iter().map(String::as_str).collect();
    let device = cfg.train.device.parsed();
    let emb = hhnas_train::embed(enc, &texts, cfg.encoder.pooling, device, &mut |_, _| {})
        .map_err(crate::error::ExitClass::classified)?;
    Ok(hhnas_features::WordVectors::new(words, emb.dim, emb.data))
}

/// The bank rows of a dataset indexed by character n-grams
/// ([`hhnas_features::CharNgramIndex`]).
struct CharBank<'a> {
    ds: &'a Dataset,
    rows: Vec<usize>,
    index: hhnas_features::CharNgramIndex,
}

impl<'a> CharBank<'a> {
    fn new(ds: &'a Dataset, bank: EvidenceBank) -> Self {
        let (rows, labels) = bank_rows(ds, bank);
        let texts: Vec<&str> = rows.iter().map(|&r| ds.rows[r].question.as_str()).collect();
        let index = hhnas_features::CharNgramIndex::build(&texts, &labels, ds.classes.len());
        CharBank { ds, rows, index }
    }

    /// Per-class character evidence of `texts` (the SVM: a bank row's values come from a
    /// model fitted without it).
    fn scores(&self, texts: &[&str], same_rows: bool, e: Evidence) -> NeighbourScores {
        // With `same_rows`, dataset row r is query r; a bank row is bank position p.
        let own_rows = same_rows.then(|| own_positions(self.ds, &self.rows));
        let own = own_rows.as_deref();
        let scores = match e {
            Evidence::CharSvm => self.index.svm_scores(texts, own, Default::default()),
            _ => self.index.class_scores(texts, own),
        };
        class_values(scores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_evidence_comes_after_the_rest_so_lexical_dropout_hides_a_tail_of_blocks() {
        let first = Evidence::ALL.iter().position(|e| e.lexical()).unwrap();
        assert!(Evidence::ALL[first..].iter().all(|e| e.lexical()));
        assert!(!Evidence::ALL[..first].iter().any(|e| e.lexical()));
    }
}

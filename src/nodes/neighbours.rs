//! The `neighbours` node (frozen encoder, `encoder.neighbours = true`): each question's
//! cosine similarity to the nearest training question of every class, training rows
//! leaving themselves out. The head then reads `[vector, similarities]`.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use hhnas_spider::Dataset;
use hhnas_train::{Embeddings, NeighbourBank, NeighbourScores};

use crate::config::EvidenceBank;
use crate::exec::{Exec, Stage};
use crate::store::Key;

/// The journal line of the `neighbours` node.
#[derive(Serialize)]
struct NeighbourMetrics {
    summary: String,
    /// Share of rows whose most similar class is their own, on each split: close values
    /// say that leaving training rows out made their evidence look like unseen rows'.
    train_top1: f64,
    test_top1: f64,
    compute_secs: f64,
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

/// Per-class nearest-neighbour similarity of `queries` to the bank rows of `ds` (their
/// `vectors`). `same_rows`: the queries are those rows' own vectors, and each bank row
/// leaves itself out.
pub(crate) fn scores_against_bank(
    ds: &Dataset,
    bank: EvidenceBank,
    vectors: &Embeddings,
    queries: &Embeddings,
    same_rows: bool,
) -> NeighbourScores {
    let (rows, labels) = bank_rows(ds, bank);
    let bank = NeighbourBank {
        vectors,
        rows: &rows,
        labels: &labels,
        classes: ds.classes.len(),
    };
    hhnas_train::neighbour_scores(&bank, queries, same_rows)
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

/// Keyed by the dataset (its split decides the bank), the bank and the encode node's
/// vectors.
pub(crate) fn neighbours_node(
    exec: &mut Exec,
    ds_key: Key,
    ds: &Dataset,
    bank: EvidenceBank,
    encode_key: Key,
    vectors: &Embeddings,
) -> Result<(Key, NeighbourScores)> {
    let key = evidence_key(Stage::Neighbours, ds_key, bank, encode_key);
    let scores = evidence_node(exec, Stage::Neighbours, key, ds, bank, "", || {
        scores_against_bank(ds, bank, vectors, vectors, true)
    })?;
    Ok((key, scores))
}

/// An evidence node's key: the dataset, the bank (named only when it is not the
/// training rows, so keys from before the choice existed still hold) and the node whose
/// vectors these values join.
fn evidence_key(stage: Stage, ds_key: Key, bank: EvidenceBank, prev_key: Key) -> Key {
    let mut key = stage.key();
    key.input(&ds_key);
    if bank != EvidenceBank::Train {
        key.param(&bank);
    }
    key.input(&prev_key).finish()
}

/// Runs an evidence node: `compute` gives every row's per-class scores; the journal line
/// says how often the best-scoring class is the row's own, on training rows (each left
/// out) and on test rows. `measure` names the similarity in the summary ("" for the
/// encoder's vectors, whose summary predates the others).
fn evidence_node(
    exec: &mut Exec,
    stage: Stage,
    key: Key,
    ds: &Dataset,
    bank: EvidenceBank,
    measure: &str,
    compute: impl FnOnce() -> NeighbourScores,
) -> Result<NeighbourScores> {
    exec.node(stage, None, key, |_| {
        let started = Instant::now();
        let scores = compute();
        let train_top1 = top1_rate(ds, &scores, &ds.train);
        let test_top1 = top1_rate(ds, &scores, &ds.test);
        let metrics = NeighbourMetrics {
            summary: format!(
                "{} questions x {} classes{measure}; nearest class right: train {:.1}% (each \
                 row left out), test {:.1}%{}",
                scores.rows,
                scores.classes,
                train_top1 * 100.0,
                test_top1 * 100.0,
                match bank {
                    EvidenceBank::Train => "",
                    EvidenceBank::TrainValid => "; bank: training and validation rows",
                }
            ),
            train_top1,
            test_top1,
            compute_secs: started.elapsed().as_secs_f64(),
        };
        Ok((scores, metrics))
    })
}

/// What is measured with character n-grams against the bank rows.
#[derive(Clone, Copy)]
pub(crate) enum CharEvidence {
    /// The nearest bank question's TF-IDF cosine, per class.
    Neighbours,
    /// The one-vs-rest linear SVM's decision value, per class.
    Svm,
}

impl CharEvidence {
    fn stage(self) -> Stage {
        match self {
            CharEvidence::Neighbours => Stage::CharNeighbours,
            CharEvidence::Svm => Stage::CharSvm,
        }
    }

    fn measure(self) -> &'static str {
        match self {
            CharEvidence::Neighbours => ", character 2-5-gram TF-IDF",
            CharEvidence::Svm => ", character 2-5-gram TF-IDF linear SVM (cross-fitted)",
        }
    }
}

/// The bank rows of a dataset indexed by character n-grams
/// ([`hhnas_features::CharNgramIndex`]), built once for every kind of character evidence
/// asked of it.
pub(crate) struct CharBank<'a> {
    ds: &'a Dataset,
    rows: Vec<usize>,
    index: hhnas_features::CharNgramIndex,
}

impl<'a> CharBank<'a> {
    pub(crate) fn new(ds: &'a Dataset, bank: EvidenceBank) -> Self {
        let (rows, labels) = bank_rows(ds, bank);
        let texts: Vec<&str> = rows.iter().map(|&r| ds.rows[r].question.as_str()).collect();
        let index = hhnas_features::CharNgramIndex::build(&texts, &labels, ds.classes.len());
        CharBank { ds, rows, index }
    }

    /// Per-class `evidence` of `texts`. `same_rows`: the texts are all of the dataset's
    /// rows in order, and each bank row leaves itself out (the SVM: its values come from
    /// a model fitted without it).
    pub(crate) fn scores(
        &self,
        texts: &[&str],
        same_rows: bool,
        evidence: CharEvidence,
    ) -> NeighbourScores {
        // With `same_rows`, dataset row r is query r; a bank row is bank position p.
        let own_rows = same_rows.then(|| {
            let mut position = vec![None; self.ds.rows.len()];
            for (p, &r) in self.rows.iter().enumerate() {
                position[r] = Some(p);
            }
            position
        });
        let own = own_rows.as_deref();
        let scores = match evidence {
            CharEvidence::Neighbours => self.index.class_scores(texts, own),
            CharEvidence::Svm => self.index.svm_scores(texts, own, Default::default()),
        };
        NeighbourScores {
            classes: scores.classes,
            rows: scores.rows,
            data: scores.data,
        }
    }
}

/// The `char_neighbours` and `char_svm` nodes (`features.char_neighbours`,
/// `features.char_svm`): keyed by the dataset and by `prev_key`, the node whose vectors
/// these values join, so the key of the head's input names everything in it.
pub(crate) fn char_evidence_node(
    exec: &mut Exec,
    evidence: CharEvidence,
    ds_key: Key,
    ds: &Dataset,
    bank: EvidenceBank,
    prev_key: Key,
) -> Result<(Key, NeighbourScores)> {
    let stage = evidence.stage();
    let key = evidence_key(stage, ds_key, bank, prev_key);
    let scores = evidence_node(exec, stage, key, ds, bank, evidence.measure(), || {
        let texts: Vec<&str> = ds.rows.iter().map(|r| r.question.as_str()).collect();
        CharBank::new(ds, bank).scores(&texts, true, evidence)
    })?;
    Ok((key, scores))
}

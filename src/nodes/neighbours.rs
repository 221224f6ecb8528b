//! The `neighbours` node (frozen encoder, `encoder.neighbours = true`): each question's
//! cosine similarity to the nearest training question of every class, training rows
//! leaving themselves out. The head then reads `[vector, similarities]`.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use hhnas_spider::Dataset;
use hhnas_train::{Embeddings, NeighbourBank, NeighbourScores};

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

/// Per-class nearest-neighbour similarity of `queries` to the training rows of `ds`
/// (their `vectors`). `same_rows`: the queries are those rows' own vectors, and each
/// training row leaves itself out.
pub(crate) fn scores_against_training_rows(
    ds: &Dataset,
    vectors: &Embeddings,
    queries: &Embeddings,
    same_rows: bool,
) -> NeighbourScores {
    let labels: Vec<u32> = ds.train.iter().map(|&r| ds.rows[r].label).collect();
    let bank = NeighbourBank {
        vectors,
        rows: &ds.train,
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

/// Keyed by the dataset (its split decides the bank) and the encode node's vectors.
pub(crate) fn neighbours_node(
    exec: &mut Exec,
    ds_key: Key,
    ds: &Dataset,
    encode_key: Key,
    vectors: &Embeddings,
) -> Result<(Key, NeighbourScores)> {
    let key = Stage::Neighbours
        .key()
        .input(&ds_key)
        .input(&encode_key)
        .finish();
    let scores = evidence_node(exec, Stage::Neighbours, key, ds, "", || {
        scores_against_training_rows(ds, vectors, vectors, true)
    })?;
    Ok((key, scores))
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
                 row left out), test {:.1}%",
                scores.rows,
                scores.classes,
                train_top1 * 100.0,
                test_top1 * 100.0
            ),
            train_top1,
            test_top1,
            compute_secs: started.elapsed().as_secs_f64(),
        };
        Ok((scores, metrics))
    })
}

/// Per-class character n-gram nearest-neighbour cosine of `texts` to the training rows
/// of `ds` ([`hhnas_features::CharNgramIndex`]). `same_rows`: the texts are all of
/// `ds`'s rows in order, and each training row leaves itself out.
pub(crate) fn char_scores_against_training_rows(
    ds: &Dataset,
    texts: &[&str],
    same_rows: bool,
) -> NeighbourScores {
    let bank: Vec<&str> = ds
        .train
        .iter()
        .map(|&r| ds.rows[r].question.as_str())
        .collect();
    let labels: Vec<u32> = ds.train.iter().map(|&r| ds.rows[r].label).collect();
    let index = hhnas_features::CharNgramIndex::build(&bank, &labels, ds.classes.len());
    // With `same_rows`, dataset row r is query r; a training row is bank position p.
    let own_rows = same_rows.then(|| {
        let mut position = vec![None; ds.rows.len()];
        for (p, &r) in ds.train.iter().enumerate() {
            position[r] = Some(p);
        }
        position
    });
    let scores = index.class_scores(texts, own_rows.as_deref());
    NeighbourScores {
        classes: scores.classes,
        rows: scores.rows,
        data: scores.data,
    }
}

/// The `char_neighbours` node (`features.char_neighbours = true`): keyed by the dataset
/// and by `prev_key`, the node whose vectors these values join, so the key of the
/// head's input names everything in it.
pub(crate) fn char_neighbours_node(
    exec: &mut Exec,
    ds_key: Key,
    ds: &Dataset,
    prev_key: Key,
) -> Result<(Key, NeighbourScores)> {
    let key = Stage::CharNeighbours
        .key()
        .input(&ds_key)
        .input(&prev_key)
        .finish();
    let measure = ", character 2-5-gram TF-IDF";
    let scores = evidence_node(exec, Stage::CharNeighbours, key, ds, measure, || {
        let texts: Vec<&str> = ds.rows.iter().map(|r| r.question.as_str()).collect();
        char_scores_against_training_rows(ds, &texts, true)
    })?;
    Ok((key, scores))
}

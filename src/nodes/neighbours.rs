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
    let scores = exec.node(Stage::Neighbours, None, key, |_| {
        let started = Instant::now();
        let scores = scores_against_training_rows(ds, vectors, vectors, true);
        let train_top1 = top1_rate(ds, &scores, &ds.train);
        let test_top1 = top1_rate(ds, &scores, &ds.test);
        let metrics = NeighbourMetrics {
            summary: format!(
                "{} questions x {} classes; nearest class right: train {:.1}% (each row left \
                 out), test {:.1}%",
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
    })?;
    Ok((key, scores))
}

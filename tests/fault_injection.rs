//! Fault injection: SIGKILL the pipeline at 10 seeded-random points spread over all stages
//! (including mid-epoch and mid-write), delete one cache entry and corrupt another
//! between resumes, and require the final journal metrics, Q-table and best model bytes to
//! equal those of an uninterrupted run with the same seed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::{Rng, SeedableRng};

use common::*;

/// Store entries as (stage, key) -> path, LLM answers excluded.
fn entries(cache: &Path) -> BTreeMap<(String, String), PathBuf> {
    let mut out = BTreeMap::new();
    let store = cache.join("store");
    for stage in std::fs::read_dir(&store).unwrap().flatten() {
        let name = stage.file_name().to_string_lossy().to_string();
        for entry in std::fs::read_dir(stage.path()).unwrap().flatten() {
            let file = entry.file_name().to_string_lossy().to_string();
            if file.len() == 64 {
                out.insert((name.clone(), file), entry.path());
            }
        }
    }
    out
}

/// The best candidate's weights as the journal names them.
fn best_weights(ws: &Workspace) -> Vec<u8> {
    let journal = ws.journal_lines();
    let best = journal
        .iter()
        .filter(|e| e["event"] == "stage" && e["stage"] == "train")
        .max_by(|a, b| {
            a["metrics"]["valid_acc"]
                .as_f64()
                .partial_cmp(&b["metrics"]["valid_acc"].as_f64())
                .unwrap()
        })
        .unwrap();
    let key = best["key"].as_str().unwrap();
    std::fs::read(ws.cache().join("store").join("weights").join(key)).unwrap()
}

#[test]
fn ten_kills_a_deletion_and_a_corruption_end_identical_to_an_uninterrupted_run() {
    inject_faults(Workspace::new);
}

/// The same with a frozen encoder: kills land inside the encode stage and inside
/// head-only candidates too.
#[test]
fn frozen_encoder_runs_survive_the_same_faults() {
    inject_faults(Workspace::frozen);
}

/// The same with cross-fitted candidates: kills land between and inside their folds.
#[test]
fn cross_fitted_runs_survive_the_same_faults() {
    inject_faults(Workspace::frozen_bagged);
}

fn inject_faults(workspace: fn(u64) -> Workspace) {
    let iterations = 3;
    let reference = workspace(iterations);
    let out = reference.run(&["run", "--config", reference.config().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let expected = comparable(&reference.journal_lines());
    let total_lines = stage_lines(&reference);

    let ws = workspace(iterations);
    let cfg = ws.config();
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261128);
    let mut landed = 0;
    let mut damaged: BTreeSet<(String, String)> = BTreeSet::new();
    for point in 0..10 {
        let after = rng.random_range(0..total_lines);
        // Half the kills wait a little: they land inside an epoch or a store write.
        let delay = Duration::from_millis(if point % 2 == 0 {
            0
        } else {
            rng.random_range(1..400)
        });
        let args: Vec<&str> = if point == 0 {
            vec!["run", "--config", cfg.to_str().unwrap()]
        } else {
            vec!["resume"]
        };
        if run_and_kill(&ws, &args, after, delay) {
            landed += 1;
        }
        // Between resumes: delete one entry (after kill 3), corrupt another (after kill 6).
        if point == 3 || point == 6 {
            let all = entries(&ws.cache());
            let candidates: Vec<_> = all.iter().filter(|(k, _)| !damaged.contains(*k)).collect();
            if candidates.is_empty() {
                continue;
            }
            let (key, path) = candidates[rng.random_range(0..candidates.len())];
            if point == 3 {
                std::fs::remove_file(path).unwrap();
            } else {
                let mut bytes = std::fs::read(path).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0xff;
                std::fs::write(path, bytes).unwrap();
            }
            damaged.insert(key.clone());
        }
    }
    let out = ws.run(&["resume"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        landed >= 5,
        "only {landed} of 10 kills landed before the run finished"
    );
    assert_eq!(damaged.len(), 2, "one deletion and one corruption");

    let journal = ws.journal_lines();
    assert_eq!(comparable(&journal), expected, "journal metrics differ");
    assert_eq!(
        best_weights(&ws),
        best_weights(&reference),
        "best model bytes differ"
    );

    // Exactly the damaged entries were computed twice (weights belong to their train node);
    // nothing else was ever recomputed.
    let mut computed: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in journal
        .iter()
        .filter(|e| e["event"] == "stage" && e["cache_hit"] == false)
    {
        *computed
            .entry((
                e["stage"].as_str().unwrap().to_string(),
                e["key"].as_str().unwrap().to_string(),
            ))
            .or_default() += 1;
    }
    let twice: BTreeSet<(String, String)> = computed
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k.clone())
        .collect();
    // Weights and probabilities belong to the train or refit node of the same key.
    let node_of = |key: &str| {
        journal
            .iter()
            .find(|e| e["event"] == "stage" && e["key"] == key)
            .map(|e| e["stage"].as_str().unwrap().to_string())
            .unwrap_or_else(|| "train".to_string())
    };
    let damaged_nodes: BTreeSet<(String, String)> = damaged
        .iter()
        .map(|(stage, key)| {
            let stage = if stage == "weights" || stage == "probs" {
                node_of(key)
            } else {
                stage.clone()
            };
            (stage, key.clone())
        })
        .collect();
    // A damaged entry that was damaged before its node was first journaled shows up once.
    assert!(
        twice.is_subset(&damaged_nodes),
        "recomputed {twice:?}, damaged {damaged_nodes:?}"
    );
    assert!(computed.values().all(|&n| n <= 2), "{computed:?}");
    let frozen = journal
        .iter()
        .any(|e| e["event"] == "stage" && e["stage"] == "encode");
    assert_eq!(frozen, ws.config_text().contains("\"frozen\""));
    println!("fault injection: {landed} of 10 kills landed; damaged {damaged_nodes:?}; recomputed {twice:?}");
}

//! Executing the nodes of one run: a node whose output is in the store is replayed, any
//! other is computed and stored; either way the journal records it once.
//!
//! A node's key is the blake3 of its stage's name and version, its parameters and its
//! inputs' keys (see [`Stage::key`] and [`KeyBuilder`]).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::journal::{now, Event, Journal, StageRecord};
use crate::nodes::evidence::Evidence;
use crate::progress::Progress;
use crate::store::{Key, KeyBuilder, Lookup, Store};
use crate::user_error;

/// The nodes of the DAG. Each names its store folder and journal lines, and has a version:
/// bump one when its output for the same inputs changes, so old entries stop matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    Spider,
    /// A labelled text file of the user's own, in place of Spider.
    Labelled,
    Rules,
    LlmJudge,
    Encoder,
    /// Frozen encoder: the encoder run once over every question.
    Encode,
    /// Frozen encoder: each row's per-class evidence (nodes/evidence.rs declares them).
    Evidence(Evidence),
    /// Not stored: its key is the first search state's, the input of iteration 0.
    SearchInit,
    Sample,
    Train,
    Update,
    /// After the search: ensemble selection over its candidates.
    Ensemble,
    /// A candidate of the final model retrained on training + validation rows.
    Refit,
    /// The model eval and predict use.
    Final,
}

impl Stage {
    /// Every node, in DAG order.
    pub fn all() -> Vec<Stage> {
        let mut all = vec![
            Stage::Spider,
            Stage::Labelled,
            Stage::Rules,
            Stage::LlmJudge,
            Stage::Encoder,
            Stage::Encode,
        ];
        all.extend(Evidence::ALL.map(Stage::Evidence));
        all.extend([
            Stage::SearchInit,
            Stage::Sample,
            Stage::Train,
            Stage::Update,
            Stage::Ensemble,
            Stage::Refit,
            Stage::Final,
        ]);
        all
    }

    /// The name in keys, store paths and journal lines.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Spider => "spider",
            Stage::Labelled => "labelled",
            Stage::Rules => "rules",
            Stage::LlmJudge => "llm_judge",
            Stage::Encoder => "encoder",
            Stage::Encode => "encode",
            Stage::Evidence(e) => e.name(),
            Stage::SearchInit => "search_init",
            Stage::Sample => "sample",
            Stage::Train => "train",
            Stage::Update => "update",
            Stage::Ensemble => "ensemble",
            Stage::Refit => "refit",
            Stage::Final => "final",
        }
    }

    pub const fn version(self) -> u32 {
        match self {
            Stage::Spider => 1,
            Stage::Labelled => 1,
            Stage::Rules => 1,
            // 2: leave-one-out for training rows.
            Stage::LlmJudge => 2,
            Stage::Encoder => 1,
            Stage::Encode => 1,
            Stage::Evidence(e) => e.version(),
            Stage::SearchInit => 1,
            // 2: SPEC §3/§5 fidelity (own parameters only, prose variance rule, half flips).
            Stage::Sample => 2,
            Stage::Update => 2,
            // 2: PyTorch's optimizer constants, a late divergence keeps the best epoch.
            Stage::Train => 2,
            Stage::Ensemble => 1,
            Stage::Refit => 1,
            Stage::Final => 1,
        }
    }

    /// The stage a journal line names, if it is a node.
    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::all().into_iter().find(|s| s.name() == name)
    }

    /// A key builder seeded with this stage's name and version.
    pub fn key(self) -> KeyBuilder {
        KeyBuilder::new(self.name(), self.version())
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Store folder of a trained candidate's weights, under its train key.
pub const WEIGHTS: &str = "weights";
/// Store folder of a trained candidate's validation and test class probabilities, under
/// its train (or refit) key: what ensemble selection reads.
pub const PROBS: &str = "probs";
/// Store folder of the LLM's answers, under the features crate's key. Never collected.
pub const LLM_ANSWERS: &str = "llm_answers";
/// The journal's stage name for a failure outside any node.
pub const RUN: &str = "run";

/// A stored output with the summary metrics its journal line carries.
#[derive(Serialize, Deserialize)]
pub(crate) struct Stored<T> {
    pub value: T,
    pub metrics: String,
}

/// A node's stored output, by its key as the journal spells it.
pub(crate) fn load_stored<T: DeserializeOwned>(
    store: &Store,
    stage: Stage,
    key: &str,
) -> Result<T> {
    let k = Key::parse(key).with_context(|| format!("bad key {key}"))?;
    match store.get::<Stored<T>>(stage.name(), &k)? {
        Lookup::Hit(s) => Ok(s.value),
        _ => Err(user_error!(
            "{}: missing or damaged. Fix: `hhnas-pipe resume` the run to recompute it",
            store.path(stage.name(), &k).display()
        )),
    }
}

/// Executes nodes of one run: replay from the store or compute, then journal.
pub(crate) struct Exec<'a> {
    pub store: Store,
    pub journal: Journal,
    /// (stage, iteration, key) already in the journal, so a replay is not journaled twice.
    pub recorded: HashSet<(String, Option<u64>, String)>,
    pub progress: &'a Progress,
    pub scratch: PathBuf,
    /// `training.json` of the run: the epoch the candidate in training has reached.
    pub training_file: PathBuf,
}

impl Exec<'_> {
    /// A one-off input (dataset, encoder) must hash as it did when the run started; a
    /// search that silently switched data halfway would compare apples with pears.
    pub fn expect_unchanged(&self, stage: Stage, key: Key, what: &str) -> Result<()> {
        let journaled = self
            .recorded
            .iter()
            .find(|(s, i, _)| s == stage.name() && i.is_none())
            .map(|(_, _, k)| k.clone());
        match journaled {
            Some(k) if k != key.hex() => Err(user_error!(
                "{what} changed since this run started ({stage} key {} is now {}). Fix: \
                 restore them, or start a new run with `hhnas-pipe run`",
                &k[..12],
                key.short()
            )),
            _ => Ok(()),
        }
    }

    /// The node's output: replayed when stored, else computed by `compute` (value and
    /// metrics), stored and journaled. A failure is journaled before it is returned.
    pub fn node<T, M, F>(
        &mut self,
        stage: Stage,
        iteration: Option<u64>,
        key: Key,
        compute: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        M: Serialize,
        F: FnOnce(&mut Self) -> Result<(T, M)>,
    {
        let start = Instant::now();
        let label = label(stage, iteration);
        let (value, metrics, hit) = match self.store.get::<Stored<T>>(stage.name(), &key)? {
            Lookup::Hit(s) => (
                s.value,
                serde_json::from_str(&s.metrics).unwrap_or_default(),
                true,
            ),
            other => {
                if let Lookup::Corrupt(warning) = other {
                    tracing::warn!("{warning}");
                }
                self.progress.message(&format!("{label}: computing"));
                let computed = compute(self).and_then(|(value, metrics)| {
                    let metrics = serde_json::to_value(&metrics).context("encoding metrics")?;
                    Ok((value, metrics))
                });
                let (value, metrics) = match computed {
                    Ok(v) => v,
                    Err(e) => {
                        // The failure is what the user needs; a journal that cannot take
                        // it (a full disk) must not replace it.
                        let failed = Event::Failed {
                            ts: now(),
                            stage: stage.name().to_string(),
                            iteration,
                            message: crate::error::render(&e),
                        };
                        if let Err(j) = self.journal.append(&failed) {
                            tracing::warn!("could not journal the failure: {j:#}");
                        }
                        return Err(e.context(format!("stage {label} failed")));
                    }
                };
                let stored = Stored {
                    value,
                    metrics: metrics.to_string(),
                };
                self.store.put(stage.name(), &key, &stored)?;
                (stored.value, metrics, false)
            }
        };
        self.record(stage, iteration, key, metrics, hit, start)?;
        Ok(value)
    }

    /// Journals a node: a replay once, a recomputation always (it shows which entries a
    /// resume had to rebuild after they were deleted or damaged).
    fn record(
        &mut self,
        stage: Stage,
        iteration: Option<u64>,
        key: Key,
        metrics: serde_json::Value,
        hit: bool,
        start: Instant,
    ) -> Result<()> {
        let id = (stage.name().to_string(), iteration, key.hex());
        if hit && self.recorded.contains(&id) {
            return Ok(());
        }
        let wall = start.elapsed().as_secs_f64();
        // A replayed node keeps the wall time it cost when it was computed.
        let wall_secs = if hit {
            metrics
                .get("compute_secs")
                .and_then(|v| v.as_f64())
                .unwrap_or(wall)
        } else {
            wall
        };
        let summary = metrics
            .get("summary")
            .and_then(|v| v.as_str())
            .unwrap_or("done")
            .to_string();
        self.journal.append(&Event::Stage(StageRecord {
            ts: now(),
            stage: stage.name().to_string(),
            iteration,
            key: key.hex(),
            wall_secs,
            cache_hit: hit,
            metrics,
        }))?;
        self.recorded.insert(id);
        self.progress.line(&format!(
            "{}: {summary}{}",
            label(stage, iteration),
            if hit { " (cached)" } else { "" }
        ));
        Ok(())
    }
}

/// How progress lines name a node: `train (iteration 3)`.
fn label(stage: Stage, iteration: Option<u64>) -> String {
    match iteration {
        Some(i) => format!("{stage} (iteration {i})"),
        None => stage.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names and versions are part of every key: they must never change by accident.
    #[test]
    fn stage_names_and_versions_are_the_keyed_ones() {
        let names: Vec<&str> = Stage::all().iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "spider",
                "labelled",
                "rules",
                "llm_judge",
                "encoder",
                "encode",
                "neighbours",
                "char_neighbours",
                "char_svm",
                "search_init",
                "sample",
                "train",
                "update",
                "ensemble",
                "refit",
                "final"
            ]
        );
        let versions: Vec<u32> = Stage::all().iter().map(|s| s.version()).collect();
        assert_eq!(versions, [1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1]);
        for s in Stage::all() {
            assert_eq!(Stage::from_name(s.name()), Some(s));
            assert_eq!(
                s.key().finish(),
                KeyBuilder::new(s.name(), s.version()).finish()
            );
        }
        assert_eq!(Stage::from_name(WEIGHTS), None);
    }
}

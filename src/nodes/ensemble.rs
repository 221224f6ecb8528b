//! The nodes after the search: `ensemble` (greedy forward selection with replacement over
//! every candidate the search trained, on the validation split), `refit` (one per
//! candidate of the final model: retrained on training + validation rows for the epochs
//! selection found) and `final` (the model `eval` and `predict` use, and its test
//! accuracy beside the best single candidate's).
//!
//! ```text
//!  train (every iteration) ──► ensemble ──► refit (each member) ──► final
//! ```
//!
//! The ensemble's key names the train keys it read, so a resumed run replays it and a run
//! with other candidates recomputes it; the candidates' probabilities were stored at train
//! time (`probs/<train key>`), so selection costs seconds.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use hhnas_data::Dataset;
use hhnas_ensemble::{accuracy, combine, select, ProbMatrix, SplitProbs};
use hhnas_train::{KeepEpoch, TrainConfig};

use super::bagging::{bagged_probs, out_of_fold_rows, Folds};
use super::train::{split_probs, training_node, TrainJob, TrainSummary};
use super::Inputs;
use crate::config::{train_config, PipelineConfig};
use crate::dag::Replay;
use crate::dag::{Stage, PROBS, WEIGHTS};
use crate::error::ExitClass;
use hhnas_engine::store::{Key, Lookup};

/// A candidate the search trained, as the nodes after it read it.
#[derive(Clone)]
pub(crate) struct Trained {
    pub iteration: u64,
    pub key: Key,
    pub summary: TrainSummary,
}

/// The best single candidate: the highest validation accuracy, the earliest iteration
/// among equals (as `status` and the report name it).
pub(crate) fn best_single(candidates: &[Trained]) -> Option<&Trained> {
    candidates
        .iter()
        .filter(|c| c.summary.outcome.failed.is_none())
        .fold(None, |best: Option<&Trained>, c| match best {
            Some(b) if b.summary.outcome.best_valid_acc >= c.summary.outcome.best_valid_acc => {
                Some(b)
            }
            _ => Some(c),
        })
}

/// One member of a model: a candidate, how much it weighs, where its weights are.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Member {
    /// The search iteration that trained the candidate.
    pub iteration: u64,
    /// Its train key.
    pub train_key: Key,
    /// Picks in the ensemble (1 for a single candidate).
    pub picks: u32,
    /// Where the weights in use are: the train key, or the refit's key.
    pub weights_key: Key,
}

/// The `ensemble` node's output and journal line.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct EnsembleMetrics {
    pub summary: String,
    /// Every candidate selection could pick from (distinct train keys).
    pub candidates: usize,
    pub members: Vec<Member>,
    pub valid_acc: f64,
    pub test_acc: f64,
    /// The best single candidate, beside it.
    pub single_iteration: u64,
    pub single_valid_acc: f64,
    pub single_test_acc: f64,
    /// The bag's validation accuracy after each round of selection.
    pub curve: Vec<f64>,
    pub compute_secs: Option<f64>,
}

impl EnsembleMetrics {
    /// The metrics of a journal line; an unreadable one reads as empty.
    pub fn read(metrics: &serde_json::Value) -> Self {
        Self::deserialize(metrics).unwrap_or_default()
    }
}

/// The `final` node's output and journal line: the model `eval` and `predict` use.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct FinalMetrics {
    pub summary: String,
    /// "ensemble" or "best single", with " refit on train+valid" when refit.
    pub kind: String,
    pub members: Vec<Member>,
    pub refit: bool,
    /// Test accuracy of this model.
    pub test_acc: f64,
    /// Validation accuracy at selection (before a refit, which trains on those rows).
    pub valid_acc: f64,
    /// The model before the refit, and the best single candidate, on the same test rows.
    pub selected_test_acc: f64,
    pub single_test_acc: f64,
}

impl FinalMetrics {
    /// The metrics of a journal line; an unreadable one reads as empty.
    pub fn read(metrics: &serde_json::Value) -> Self {
        Self::deserialize(metrics).unwrap_or_default()
    }
}

/// Runs the nodes after the search when `[ensemble]` asks for them: the final model, or
/// `None` when neither the ensemble nor the refit is on (eval and predict then use the
/// best single candidate, as before these nodes existed). Long (~110 lines) because the
/// ensemble, its refits and the final node form one chain of keys, read here in order.
pub(crate) fn final_nodes(
    exec: &mut Replay,
    cfg: &PipelineConfig,
    inputs: &Inputs,
    candidates: &[Trained],
) -> Result<Option<FinalMetrics>> {
    let e = &cfg.ensemble;
    if !e.enabled && !e.refit {
        return Ok(None);
    }
    let Some(single) = best_single(candidates) else {
        return Ok(None);
    };
    let (ens_key, selected) = if e.enabled {
        let (k, m) = ensemble_node(exec, cfg, inputs, candidates, single)?;
        (Some(k), m)
    } else {
        let member = Member {
            iteration: single.iteration,
            train_key: single.key,
            picks: 1,
            weights_key: single.key,
        };
        let o = &single.summary.outcome;
        let m = EnsembleMetrics {
            members: vec![member],
            valid_acc: o.best_valid_acc,
            test_acc: o.test_acc,
            single_valid_acc: o.best_valid_acc,
            single_test_acc: o.test_acc,
            ..EnsembleMetrics::default()
        };
        (None, m)
    };
    let mut members = selected.members.clone();
    let mut refit_keys = Vec::new();
    if e.refit {
        for m in &mut members {
            let c = candidates
                .iter()
                .find(|c| c.key == m.train_key)
                .expect("members come from the candidates");
            let key = refit_node(exec, cfg, inputs, c)?;
            m.weights_key = key;
            refit_keys.push(key);
        }
    }
    let mut kb = Stage::Final.key();
    kb.param(&(e.enabled, e.refit));
    for k in ens_key.iter().chain(&refit_keys) {
        kb.input(k);
    }
    if ens_key.is_none() {
        kb.input(&single.key);
    }
    let key = kb.finish();
    let metrics = exec.node(Stage::Final, None, key, |exec| {
        let test_acc = if e.refit {
            let weights: Vec<f64> = members.iter().map(|m| f64::from(m.picks)).collect();
            let probs = refit_keys
                .iter()
                .zip(&members)
                .map(|(k, m)| {
                    let c = candidates
                        .iter()
                        .find(|c| c.key == m.train_key)
                        .expect("members come from the candidates");
                    stored_probs(exec, cfg, inputs, &refit_dataset(&inputs.ds), k, &c.summary)
                })
                .collect::<Result<Vec<SplitProbs>>>()?;
            let tests: Vec<&ProbMatrix> = probs.iter().map(|p| &p.test).collect();
            let total: f64 = weights.iter().sum();
            let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
            accuracy(
                &combine(&tests, &weights)?,
                &labels(&inputs.ds, &inputs.ds.test),
            )
        } else {
            selected.test_acc
        };
        let kind = format!(
            "{}{}",
            if e.enabled {
                format!("ensemble of {} candidates", members.len())
            } else {
                "best single candidate".to_string()
            },
            if e.refit {
                ", refit on train+valid"
            } else {
                ""
            }
        );
        let m = FinalMetrics {
            summary: format!(
                "{kind}: test {:.2}% (selected {:.2}%, best single {:.2}%)",
                test_acc * 100.0,
                selected.test_acc * 100.0,
                selected.single_test_acc * 100.0
            ),
            kind,
            members: members.clone(),
            refit: e.refit,
            test_acc,
            valid_acc: selected.valid_acc,
            selected_test_acc: selected.test_acc,
            single_test_acc: selected.single_test_acc,
        };
        Ok((m.clone(), m))
    })?;
    Ok(Some(metrics))
}

/// Ensemble selection over every candidate that trained (distinct keys, failures left out).
fn ensemble_node(
    exec: &mut Replay,
    cfg: &PipelineConfig,
    inputs: &Inputs,
    candidates: &[Trained],
    single: &Trained,
) -> Result<(Key, EnsembleMetrics)> {
    let mut pool: Vec<&Trained> = Vec::new();
    for c in candidates {
        if c.summary.outcome.failed.is_none() && !pool.iter().any(|p| p.key == c.key) {
            pool.push(c);
        }
    }
    let params = cfg.ensemble.params();
    let mut kb = Stage::Ensemble.key();
    kb.input(&inputs.ds_key).param(&params);
    for c in &pool {
        kb.input(&c.key);
    }
    let key = kb.finish();
    let metrics = exec.node(Stage::Ensemble, None, key, |exec| {
        let started = std::time::Instant::now();
        let probs = pool
            .iter()
            .map(|c| stored_probs(exec, cfg, inputs, &inputs.ds, &c.key, &c.summary))
            .collect::<Result<Vec<SplitProbs>>>()?;
        let valid: Vec<&ProbMatrix> = probs.iter().map(|p| &p.valid).collect();
        let test: Vec<&ProbMatrix> = probs.iter().map(|p| &p.test).collect();
        // Cross-fitted candidates are selected on their out-of-fold rows.
        let selection_rows = match Folds::of(cfg) {
            Some(_) => out_of_fold_rows(&inputs.ds),
            None => inputs.ds.valid.clone(),
        };
        let sel = select(&valid, &labels(&inputs.ds, &selection_rows), &params)?;
        let test_acc = accuracy(
            &combine(&test, &sel.weights())?,
            &labels(&inputs.ds, &inputs.ds.test),
        );
        let members: Vec<Member> = sel
            .members()
            .into_iter()
            .map(|i| Member {
                iteration: pool[i].iteration,
                train_key: pool[i].key,
                picks: sel.picks[i],
                weights_key: pool[i].key,
            })
            .collect();
        let o = &single.summary.outcome;
        let m = EnsembleMetrics {
            summary: format!(
                "{} of {} candidates: valid {:.2}% test {:.2}% (best single: iteration {}, \
                 valid {:.2}% test {:.2}%)",
                members.len(),
                pool.len(),
                sel.valid_acc * 100.0,
                test_acc * 100.0,
                single.iteration,
                o.best_valid_acc * 100.0,
                o.test_acc * 100.0
            ),
            candidates: pool.len(),
            members,
            valid_acc: sel.valid_acc,
            test_acc,
            single_iteration: single.iteration,
            single_valid_acc: o.best_valid_acc,
            single_test_acc: o.test_acc,
            curve: sel.curve,
            compute_secs: Some(started.elapsed().as_secs_f64()),
        };
        Ok((m.clone(), m))
    })?;
    Ok((key, metrics))
}

/// The rows a refit trains on: training and validation. The validation rows stay the
/// validation split (their accuracy is then a training figure and selects nothing; the
/// refit keeps its last epoch).
pub(crate) fn refit_dataset(ds: &Dataset) -> Dataset {
    Dataset {
        train: ds.train_and_valid(),
        ..ds.clone()
    }
}

/// The `[train]` settings of a refit of `c`: its best epoch's count, the last epoch kept.
fn refit_config(cfg: &PipelineConfig, c: &Trained) -> TrainConfig {
    TrainConfig {
        epochs: c.summary.outcome.best_epoch.max(1),
        patience: None,
        keep: KeepEpoch::Last,
        ..train_config(cfg)
    }
}

/// Retrains the candidate `c` on training + validation rows (a node, so a killed refit
/// resumes from its last epoch and a finished one is never trained again).
fn refit_node(
    exec: &mut Replay,
    cfg: &PipelineConfig,
    inputs: &Inputs,
    c: &Trained,
) -> Result<Key> {
    let tcfg = refit_config(cfg, c);
    // As for train keys, the device is no part of it.
    let key = Stage::Refit.key().input(&c.key).param(&tcfg).finish();
    let dataset = refit_dataset(&inputs.ds);
    let job = TrainJob {
        key,
        dataset: &dataset,
        spec: &c.summary.spec,
        tcfg: &tcfg,
        device: cfg.train.device.parsed(),
        iteration: c.iteration,
        model: model_number(&c.summary.spec),
        folds: None,
    };
    training_node(exec, inputs, Stage::Refit, None, &job)?;
    Ok(key)
}

fn model_number(spec: &hhnas_train::ModelSpec) -> u8 {
    1 + 2 * u8::from(spec.rule_branch) + u8::from(spec.llm_branch)
}

/// The labels of `rows`.
fn labels(ds: &Dataset, rows: &[usize]) -> Vec<u32> {
    rows.iter().map(|&i| ds.rows[i].label).collect()
}

/// A candidate's stored probabilities, or (for one trained before they were stored, or
/// whose entry was lost) computed from its weights and stored now.
fn stored_probs(
    exec: &mut Replay,
    cfg: &PipelineConfig,
    inputs: &Inputs,
    dataset: &Dataset,
    key: &Key,
    summary: &TrainSummary,
) -> Result<SplitProbs> {
    match exec.store.get::<SplitProbs>(PROBS, key)? {
        Lookup::Hit(p) => return Ok(p),
        Lookup::Corrupt(w) => tracing::warn!("{w}"),
        Lookup::Miss => {}
    }
    let weights = match exec.store.get_bytes(WEIGHTS, key)? {
        Lookup::Hit(w) => w,
        _ => {
            return Err(hhnas_engine::user_error!(
                "weights of candidate {} are missing or damaged. Fix: `hhnas-pipe resume` \
                 retrains only that candidate",
                key.short()
            ))
        }
    };
    let device = cfg.train.device.parsed();
    let probs = match Folds::of(cfg) {
        Some(folds) => {
            let bag = hhnas_train::unpack_bag(&weights).map_err(ExitClass::classified)?;
            bagged_probs(inputs, &summary.spec, &bag, folds, dataset, device)?
        }
        None => {
            let data = inputs.train_data(&summary.spec, dataset);
            split_probs(inputs, &summary.spec, &weights, data, device)?
        }
    };
    exec.store.put(PROBS, key, &probs)?;
    Ok(probs)
}

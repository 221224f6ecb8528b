//! Cross-fitted candidates (`train.bag_folds = k`, AutoGluon's bagging): a candidate is
//! trained k times, each time on k-1 stratified folds of the training and validation rows
//! and validated on the fold left out. Its score is the accuracy of those out-of-fold
//! predictions over every training and validation row (5.7 times the demo's validation
//! rows, so the search and ensemble selection rank candidates on less noise); its
//! test predictions are the k fold models' probabilities averaged. The k weight blobs are
//! stored as one bag ([`hhnas_train::pack_bag`]) under the candidate's train key, so eval
//! and predict read them like any candidate's.
//!
//! A fold that finished is kept in the run's scratch folder beside the epoch checkpoints,
//! so a killed candidate resumes at its last epoch of its first unfinished fold.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use hhnas_data::Dataset;
use hhnas_ensemble::{accuracy, combine, ProbMatrix, SplitProbs};
use hhnas_train::{Checkpoint, Device, EpochReport, ModelSpec, TrainOutcome};

use super::train::TrainSummary;
use super::train::{checkpoint_path, read_checkpoint, EpochSink, TrainJob, TrainMetrics};
use super::Inputs;
use crate::config::PipelineConfig;
use crate::dag::{Replay, PROBS, WEIGHTS};
use crate::error::ExitClass;
use hhnas_engine::store::{write_atomic, Key};

/// How a candidate is cross-fitted: `k` folds of the training and validation rows, cut
/// with `seed` (the run's, so every candidate of a run shares its folds and their
/// out-of-fold predictions can be compared and combined row by row).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Folds {
    pub k: usize,
    pub seed: u64,
}

impl Folds {
    /// The run's cross-fitting, when `[train] bag_folds` turns it on.
    pub(crate) fn of(cfg: &PipelineConfig) -> Option<Folds> {
        Some(Folds {
            k: cfg.train.cross_fit_folds()?,
            seed: cfg.run.seed,
        })
    }

    /// The rows each fold holds out.
    fn held_out(&self, ds: &Dataset) -> Vec<Vec<usize>> {
        ds.held_out_folds(self.k, self.seed)
    }
}

/// The rows a cross-fitted candidate's out-of-fold probabilities cover, in their order:
/// the training and validation rows, ascending (ensemble selection's rows).
pub(crate) fn out_of_fold_rows(ds: &Dataset) -> Vec<usize> {
    ds.train_and_valid()
}

fn fold_path(scratch: &Path, key: &Key, fold: usize, what: &str) -> PathBuf {
    checkpoint_path(scratch, key).with_extension(format!("fold{fold}.{what}"))
}

/// Removes what the folds of `key` left in the scratch folder (once it is stored).
pub(crate) fn remove_fold_files(scratch: &Path, key: &Key, k: usize) {
    for fold in 0..k {
        for what in ["ckpt", "done"] {
            let _ = std::fs::remove_file(fold_path(scratch, key, fold, what));
        }
    }
}

/// Trains the k fold models of `job` (each from its checkpoint or finished file, if
/// any), stores the bag of their weights and the out-of-fold and averaged test
/// probabilities, and returns the candidate's summary: its score is the out-of-fold
/// accuracy.
pub(crate) fn compute_bagged(
    exec: &mut Replay,
    inputs: &Inputs,
    job: &TrainJob,
    folds: Folds,
) -> Result<(TrainSummary, TrainMetrics)> {
    let started = Instant::now();
    let held_out = folds.held_out(job.dataset);
    let mut outcomes = Vec::with_capacity(folds.k);
    for f in 0..folds.k {
        let done = fold_path(&exec.scratch, &job.key, f, "done");
        let kept = std::fs::read(&done)
            .ok()
            .and_then(|b| hhnas_engine::store::decode::<TrainOutcome>(&b).ok());
        if let Some(kept) = kept {
            // A fold that finished before a kill: its outcome, weights included.
            outcomes.push(kept);
            continue;
        }
        let checkpoint = fold_path(&exec.scratch, &job.key, f, "ckpt");
        let sink = EpochSink {
            progress: exec.progress,
            training_file: exec.training_file.clone(),
            checkpoint: checkpoint.clone(),
            node: None,
            fold: Some((f, folds.k)),
            iteration: job.iteration,
            model: job.model,
            epochs: job.tcfg.epochs,
        };
        let resume = read_checkpoint(&checkpoint, exec.progress, &sink.label());
        let fold_ds = job.dataset.fold(&held_out, f);
        let mut tcfg = job.tcfg.clone();
        // Each fold model starts from its own initialisation: the bag averages k views.
        tcfg.seed ^= (f as u64) << 48;
        let outcome = hhnas_train::train_candidate(
            inputs.train_data(job.spec, &fold_ds),
            &inputs.enc,
            job.spec,
            &tcfg,
            job.device,
            resume,
            &mut |c: &Checkpoint, r: &EpochReport| sink.on_epoch(c, r),
        )
        .map_err(ExitClass::classified)?;
        if outcome.failed.is_none() {
            let bytes = hhnas_engine::store::encode(&outcome)?;
            if let Err(e) = write_atomic(&done, &bytes) {
                tracing::warn!("could not write {}: {e:#}", done.display());
            }
        }
        let _ = std::fs::remove_file(&checkpoint);
        let failed = outcome.failed.is_some();
        outcomes.push(outcome);
        if failed {
            // One fold that diverged makes the candidate a failed one, as a diverged
            // single training does; the search moves on.
            break;
        }
    }
    let weights: Vec<Vec<u8>> = outcomes
        .iter_mut()
        .map(|o| std::mem::take(&mut o.best_weights))
        .collect();
    let bag = hhnas_train::pack_bag(&weights);
    let mut outcome = merged_outcome(&outcomes);
    if outcome.failed.is_none() {
        let probs = bagged_probs(inputs, job.spec, &weights, folds, job.dataset, job.device)?;
        outcome.best_valid_acc = accuracy(
            &probs.valid,
            &job.dataset.labels(&out_of_fold_rows(job.dataset)),
        );
        outcome.test_acc = accuracy(&probs.test, &job.dataset.labels(&job.dataset.test));
        exec.store.put(PROBS, &job.key, &probs)?;
    }
    exec.store.put_bytes(WEIGHTS, &job.key, &bag)?;
    let mut metrics = TrainMetrics::of(&outcome, job.model, started.elapsed().as_secs_f64());
    metrics.folds = Some(folds.k);
    metrics.summary = format!(
        "{} [{} folds: valid = out-of-fold]",
        metrics.summary, folds.k
    );
    let summary = TrainSummary {
        outcome,
        spec: job.spec.clone(),
    };
    Ok((summary, metrics))
}

/// The candidate's outcome from its folds': the curve is the folds' mean validation
/// accuracy per epoch, the best epoch their mean (what a refit would train for), the
/// accuracies are set by the caller from the bag's probabilities.
fn merged_outcome(folds: &[TrainOutcome]) -> TrainOutcome {
    let n = folds.len().max(1) as f64;
    let epochs = folds.iter().map(|o| o.curve.len()).min().unwrap_or(0);
    let curve = (0..epochs)
        .map(|e| EpochReport {
            epoch: e + 1,
            train_loss: folds.iter().map(|o| o.curve[e].train_loss).sum::<f64>() / n,
            valid_acc: folds.iter().map(|o| o.curve[e].valid_acc).sum::<f64>() / n,
            secs: folds.iter().map(|o| o.curve[e].secs).sum::<f64>(),
        })
        .collect();
    let failed = folds.iter().enumerate().find_map(|(f, o)| {
        o.failed
            .as_ref()
            .map(|why| format!("fold {}: {why}", f + 1))
    });
    TrainOutcome {
        curve,
        best_epoch: (folds.iter().map(|o| o.best_epoch as f64).sum::<f64>() / n).round() as usize,
        best_valid_acc: 0.0,
        test_acc: 0.0,
        stopped_early: folds.iter().any(|o| o.stopped_early),
        failed,
        best_weights: Vec::new(),
        examples_per_sec: folds.iter().map(|o| o.examples_per_sec).sum::<f64>() / n,
    }
}

/// A cross-fitted candidate's probabilities: `valid` holds every training and validation
/// row's from the fold model that did not train on it ([`out_of_fold_rows`] order),
/// `test` the fold models' average.
pub(crate) fn bagged_probs(
    inputs: &Inputs,
    spec: &ModelSpec,
    weights: &[impl AsRef<[u8]>],
    folds: Folds,
    dataset: &Dataset,
    device: Device,
) -> Result<SplitProbs> {
    let classes = inputs.ds.classes.len();
    let held_out = folds.held_out(dataset);
    if weights.len() != held_out.len() {
        return Err(hhnas_engine::user_error!(
            "a bag of {} fold models for {} folds: the run's train.bag_folds changed since \
             this candidate trained. Fix: resume with the run's own configuration",
            weights.len(),
            held_out.len()
        ));
    }
    let rows = out_of_fold_rows(dataset);
    let mut position = vec![usize::MAX; dataset.rows.len()];
    for (p, &r) in rows.iter().enumerate() {
        position[r] = p;
    }
    let mut oof = vec![Vec::new(); rows.len()];
    let mut tests = Vec::with_capacity(weights.len());
    let data = inputs.train_data(spec, dataset);
    let probs = |w: &[u8], rows: &[usize]| {
        hhnas_train::row_probabilities(&inputs.enc, spec, w, data, rows, device)
            .map_err(ExitClass::classified)
    };
    for (w, held) in weights.iter().zip(&held_out) {
        for (r, p) in held.iter().zip(probs(w.as_ref(), held)?) {
            oof[position[*r]] = p;
        }
        tests.push(ProbMatrix::from_rows(
            &probs(w.as_ref(), &dataset.test)?,
            classes,
        )?);
    }
    let tests: Vec<&ProbMatrix> = tests.iter().collect();
    let uniform = vec![1.0 / tests.len() as f64; tests.len()];
    Ok(SplitProbs {
        valid: ProbMatrix::from_rows(&oof, classes)?,
        test: combine(&tests, &uniform)?,
    })
}

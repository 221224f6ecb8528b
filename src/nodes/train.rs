//! The `train` node: one candidate trained to its best validation accuracy. The result
//! (curve, accuracies, spec) is the node's output; the best epoch's weights are stored
//! apart, under the same key. A checkpoint after every epoch lets a killed run continue
//! mid-candidate.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Deserializer, Serialize};

use hhnas_data::Dataset;
use hhnas_ensemble::{ProbMatrix, SplitProbs};
use hhnas_search::Proposal;
use hhnas_train::{
    Checkpoint, Device, EpochReport, ModelSpec, TrainConfig, TrainData, TrainOutcome,
};

use super::bagging::{remove_fold_files, Folds};
use super::Inputs;
use crate::config::{train_config, PipelineConfig};
use crate::dag::Replay;
use crate::dag::{Stage, PROBS, WEIGHTS};
use crate::error::ExitClass;
use hhnas_engine::progress::Progress;
use hhnas_engine::store::{write_atomic, Key, Lookup, Store};

/// The micro and macro parameters of a candidate as the training crate takes them. A
/// model without CNN branches has no kernel: it is fixed at 1 there, so two Model 1
/// candidates that differ only in `kernel_size` are one network with one cache key.
pub fn model_spec(c: &hhnas_search::Candidate) -> Result<ModelSpec> {
    let optimizer = hhnas_train::OptimizerKind::from_criterion_num(u32::from(c.criterion_num))
        .map_err(ExitClass::classified)?;
    let has_branch = c.llm_branch || c.rule_branch;
    Ok(ModelSpec {
        llm_branch: c.llm_branch,
        rule_branch: c.rule_branch,
        learning_rate: c.learning_rate,
        optimizer,
        layer_size1: c.layer_size1,
        layer_size2: c.layer_size2,
        dropout: c.dropout_rate,
        kernel_size: if has_branch { c.kernel_size } else { 1 },
    })
}

/// Progress of the candidate in training, rewritten after every epoch to the run's
/// training file (for `status`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainingProgress {
    /// The node in training when it is not a search candidate (`warm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub iteration: u64,
    /// A cross-fitted candidate's fold in training (from 0), and the number of folds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fold: Option<(usize, usize)>,
    pub model: u8,
    /// Epochs finished (of `epochs`).
    pub epoch: usize,
    pub epochs: usize,
    pub valid_acc: f64,
    pub best_valid_acc: f64,
    pub train_loss: f64,
    pub epoch_secs: f64,
}

/// A search candidate in training, as progress lines and `status` name it: "iteration 3",
/// or "iteration 3, fold 2/5" for a cross-fitted one (`fold` counts from 0).
pub(crate) fn candidate_label(iteration: u64, fold: Option<(usize, usize)>) -> String {
    match fold {
        None => format!("iteration {iteration}"),
        Some((f, k)) => format!("iteration {iteration}, fold {}/{k}", f + 1),
    }
}

/// The training result without its weights (stored apart, under the same key).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct TrainSummary {
    pub outcome: TrainOutcome,
    pub spec: ModelSpec,
}

/// The journal line of the `train` node, written here and read by `status` and the
/// report. Reading is lenient: a missing field is its default, and a null where a number
/// belongs (serde_json writes NaN as null) is `None` or NaN, never an unreadable line.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct TrainMetrics {
    pub summary: String,
    /// Best validation accuracy (0..1).
    pub valid_acc: Option<f64>,
    /// Test accuracy of the best epoch's weights (0..1).
    pub test_acc: Option<f64>,
    pub best_epoch: usize,
    pub epochs_run: usize,
    /// Validation accuracy after each epoch.
    #[serde(deserialize_with = "floats_or_null")]
    pub curve: Vec<f64>,
    #[serde(deserialize_with = "floats_or_null")]
    pub epoch_secs: Vec<f64>,
    pub stopped_early: bool,
    /// Why training diverged, when it did.
    pub failed: Option<String>,
    pub examples_per_sec: Option<f64>,
    /// Wall time of the computation; a replay reports this, not its own.
    pub compute_secs: Option<f64>,
    /// Cross-fitted: the number of folds (`valid_acc` is then the out-of-fold accuracy
    /// over every training and validation row).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folds: Option<usize>,
}

impl TrainMetrics {
    pub(crate) fn of(outcome: &TrainOutcome, model: u8, compute_secs: f64) -> Self {
        let summary = format!(
            "model {model} valid {:.2}% test {:.2}% ({} epochs{}{})",
            outcome.best_valid_acc * 100.0,
            outcome.test_acc * 100.0,
            outcome.curve.len(),
            if outcome.stopped_early {
                ", early stop"
            } else {
                ""
            },
            match (&outcome.failed, outcome.curve.last()) {
                (Some(f), _) => format!(", FAILED: {f}"),
                (None, Some(e)) if !e.train_loss.is_finite() => format!(
                    ", diverged in epoch {}: kept epoch {}",
                    e.epoch, outcome.best_epoch
                ),
                _ => String::new(),
            }
        );
        TrainMetrics {
            summary,
            valid_acc: Some(outcome.best_valid_acc),
            test_acc: Some(outcome.test_acc),
            best_epoch: outcome.best_epoch,
            epochs_run: outcome.curve.len(),
            curve: outcome.curve.iter().map(|e| e.valid_acc).collect(),
            epoch_secs: outcome.curve.iter().map(|e| e.secs).collect(),
            stopped_early: outcome.stopped_early,
            failed: outcome.failed.clone(),
            examples_per_sec: Some(outcome.examples_per_sec),
            compute_secs: Some(compute_secs),
            folds: None,
        }
    }

    /// The metrics of a journal line; an unreadable one reads as empty.
    pub fn read(metrics: &serde_json::Value) -> Self {
        Self::deserialize(metrics).unwrap_or_default()
    }
}

/// A list of numbers in which null stands for NaN.
fn floats_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    let v = Vec::<Option<f64>>::deserialize(d)?;
    Ok(v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
}

pub(crate) fn train_key(
    inputs: &Inputs,
    spec: &ModelSpec,
    tcfg: &TrainConfig,
    folds: Option<Folds>,
) -> Key {
    let mut kb = Stage::Train.key();
    // The device is no part of the key (nor of `tcfg`): a candidate trained on one GPU is
    // not retrained because the run moved to another.
    kb.input(&inputs.ds_key)
        .input(&inputs.enc_key)
        .param(spec)
        .param(tcfg);
    // Only when on, so the keys of candidates trained once stay what they were.
    if let Some(folds) = &folds {
        kb.param(folds);
    }
    // Feature inputs only matter to models that use them, so Model 1 stays cached when
    // only the feature configuration changes.
    if spec.llm_branch {
        kb.input(&inputs.judge.as_ref().expect("judge computed").0);
    }
    if spec.rule_branch {
        kb.input(&inputs.rules.as_ref().expect("rules computed").0);
    }
    if let Some((k, _)) = &inputs.encoded {
        kb.input(k);
    }
    kb.finish()
}

pub(crate) fn checkpoint_path(scratch: &Path, key: &Key) -> PathBuf {
    scratch
        .join("checkpoints")
        .join(format!("{}.ckpt", key.hex()))
}

/// The checkpoint a killed run left for this candidate, if it is readable; `label` names
/// the node in the progress line.
pub(crate) fn read_checkpoint(path: &Path, progress: &Progress, label: &str) -> Option<Checkpoint> {
    let bytes = std::fs::read(path).ok()?;
    match hhnas_engine::store::decode::<Checkpoint>(&bytes) {
        Ok(c) => {
            progress.line(&format!("{label}: resuming after epoch {}", c.epoch));
            Some(c)
        }
        Err(e) => {
            tracing::warn!("ignoring unreadable checkpoint {}: {e:#}", path.display());
            None
        }
    }
}

/// What happens after every epoch: the checkpoint and `training.json` are written (a
/// failure to write them only costs a longer resume) and the progress line moves.
pub(crate) struct EpochSink<'a> {
    pub progress: &'a Progress,
    pub training_file: PathBuf,
    pub checkpoint: PathBuf,
    /// `None` for a search candidate; the node's name otherwise (`warm`).
    pub node: Option<&'static str>,
    /// A cross-fitted candidate's fold in training, and the number of folds.
    pub fold: Option<(usize, usize)>,
    pub iteration: u64,
    pub model: u8,
    pub epochs: usize,
}

impl EpochSink<'_> {
    /// How progress lines name the node.
    pub(crate) fn label(&self) -> String {
        match self.node {
            Some(node) => node.to_string(),
            None => format!("train ({})", candidate_label(self.iteration, self.fold)),
        }
    }

    pub(crate) fn on_epoch(&self, ckpt: &Checkpoint, report: &EpochReport) {
        let (iteration, epochs) = (self.iteration, self.epochs);
        let state = TrainingProgress {
            node: self.node.map(str::to_string),
            iteration,
            fold: self.fold,
            model: self.model,
            epoch: report.epoch,
            epochs,
            valid_acc: report.valid_acc,
            best_valid_acc: ckpt.best_valid_acc,
            train_loss: report.train_loss,
            epoch_secs: report.secs,
        };
        if let Err(e) = serde_json::to_vec(&state)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| write_atomic(&self.training_file, &bytes))
        {
            tracing::warn!("could not write {}: {e:#}", self.training_file.display());
        }
        match hhnas_engine::store::encode(ckpt) {
            Ok(bytes) => {
                if let Err(e) = write_atomic(&self.checkpoint, &bytes) {
                    tracing::warn!("could not write checkpoint: {e:#}");
                }
            }
            Err(e) => tracing::warn!("could not encode checkpoint: {e:#}"),
        }
        self.progress.message(&format!(
            "{}: epoch {}/{epochs} valid {:.2}% loss {:.4}",
            self.label(),
            report.epoch,
            report.valid_acc * 100.0,
            report.train_loss
        ));
    }
}

/// A result without its weights is incomplete: drop it, so the candidate is retrained
/// rather than kept as a model that eval and predict cannot load.
pub(crate) fn drop_result_without_weights(exec: &Replay, stage: Stage, key: &Key) -> Result<()> {
    if !exec.store.contains(stage.name(), key) {
        return Ok(());
    }
    let weights_ok = match exec.store.get_bytes(WEIGHTS, key)? {
        Lookup::Hit(_) => true,
        Lookup::Corrupt(warning) => {
            tracing::warn!("{warning}");
            false
        }
        Lookup::Miss => false,
    };
    if !weights_ok {
        tracing::warn!(
            "weights of candidate {} are missing or damaged; retraining it",
            key.short()
        );
        let _ = std::fs::remove_file(exec.store.path(stage.name(), key));
    }
    Ok(())
}

/// Whether the weights of the entry `key` (a candidate's, the tuned encoder's) are
/// stored: another release's entry is kept only with them, as eval, predict and the encode
/// stage load them.
pub(crate) fn weights_stored(store: &Store, key: &Key) -> bool {
    matches!(store.get_bytes(WEIGHTS, key), Ok(Lookup::Hit(_)))
}

/// One training of a candidate: a search iteration's (`train`) or a refit's (`refit`).
pub(crate) struct TrainJob<'a> {
    pub key: Key,
    /// The rows and splits it trains on: the run's dataset, or a refit's split of it.
    pub dataset: &'a Dataset,
    pub spec: &'a ModelSpec,
    pub tcfg: &'a TrainConfig,
    /// Where it trains (no part of its key).
    pub device: Device,
    /// The search iteration the candidate comes from (progress lines, `training.json`).
    pub iteration: u64,
    pub model: u8,
    /// Cross-fitted (`train.bag_folds`): trained once per fold ([`super::bagging`]).
    pub folds: Option<Folds>,
}

/// Trains the candidate (from its checkpoint, if any), stores its weights and its
/// validation and test class probabilities (what ensemble selection reads), and returns
/// the summary with its metrics.
fn compute_train(
    exec: &mut Replay,
    inputs: &Inputs,
    job: &TrainJob,
) -> Result<(TrainSummary, TrainMetrics)> {
    if let Some(folds) = job.folds {
        return super::bagging::compute_bagged(exec, inputs, job, folds);
    }
    let checkpoint = checkpoint_path(&exec.scratch, &job.key);
    let data = inputs.train_data(job.spec, job.dataset);
    let sink = EpochSink {
        progress: exec.progress,
        training_file: exec.training_file.clone(),
        checkpoint: checkpoint.clone(),
        node: None,
        fold: None,
        iteration: job.iteration,
        model: job.model,
        epochs: job.tcfg.epochs,
    };
    let resume = read_checkpoint(&checkpoint, exec.progress, &sink.label());
    let started = Instant::now();
    let mut outcome = hhnas_train::train_candidate(
        data,
        &inputs.enc,
        job.spec,
        job.tcfg,
        job.device,
        resume,
        &mut |c: &Checkpoint, r: &EpochReport| sink.on_epoch(c, r),
    )
    .map_err(ExitClass::classified)?;
    let weights = std::mem::take(&mut outcome.best_weights);
    if outcome.failed.is_none() {
        let probs = split_probs(inputs, job.spec, &weights, data, job.device)?;
        exec.store.put(PROBS, &job.key, &probs)?;
    }
    exec.store.put_bytes(WEIGHTS, &job.key, &weights)?;
    let metrics = TrainMetrics::of(&outcome, job.model, started.elapsed().as_secs_f64());
    let summary = TrainSummary {
        outcome,
        spec: job.spec.clone(),
    };
    Ok((summary, metrics))
}

/// The validation and test class probabilities of `weights` on the dataset's splits.
pub(crate) fn split_probs(
    inputs: &Inputs,
    spec: &ModelSpec,
    weights: &[u8],
    data: TrainData,
    device: Device,
) -> Result<SplitProbs> {
    let classes = inputs.ds.classes.len();
    let on = |rows: &[usize]| -> Result<ProbMatrix> {
        let p = hhnas_train::row_probabilities(&inputs.enc, spec, weights, data, rows, device)
            .map_err(ExitClass::classified)?;
        Ok(ProbMatrix::from_rows(&p, classes)?)
    };
    Ok(SplitProbs {
        valid: on(&data.dataset.valid)?,
        test: on(&data.dataset.test)?,
    })
}

/// Trains (or replays) `job` as a node of `stage` and returns its summary. A result whose
/// weights were lost is retrained; the checkpoint goes once the result is stored.
pub(crate) fn training_node(
    exec: &mut Replay,
    inputs: &Inputs,
    stage: Stage,
    iteration: Option<u64>,
    job: &TrainJob,
) -> Result<TrainSummary> {
    drop_result_without_weights(exec, stage, &job.key)?;
    let summary = exec.node(stage, iteration, job.key, |exec| {
        compute_train(exec, inputs, job)
    })?;
    // Only once the result is stored is the checkpoint of no further use.
    let _ = std::fs::remove_file(checkpoint_path(&exec.scratch, &job.key));
    if let Some(folds) = job.folds {
        remove_fold_files(&exec.scratch, &job.key, folds.k);
    }
    let _ = std::fs::remove_file(&exec.training_file);
    Ok(summary)
}

pub(crate) fn train_node(
    exec: &mut Replay,
    cfg: &PipelineConfig,
    inputs: &Inputs,
    iteration: u64,
    proposal: &Proposal,
) -> Result<(Key, TrainSummary)> {
    let spec = model_spec(&proposal.candidate)?;
    let mut tcfg = train_config(cfg);
    if cfg.search.strategy == hhnas_search::Strategy::Repeat && iteration > 0 {
        // The same candidate again, with a training seed of its own.
        tcfg.seed = cfg.run.seed.wrapping_add(iteration << 32);
    }
    let folds = Folds::of(cfg);
    let key = exec.kept_iteration_key::<TrainSummary>(
        Stage::Train,
        iteration,
        train_key(inputs, &spec, &tcfg, folds),
        weights_stored,
    );
    let job = TrainJob {
        key,
        dataset: &inputs.ds,
        spec: &spec,
        tcfg: &tcfg,
        device: cfg.train.device.parsed(),
        iteration,
        model: proposal.candidate.model_number(),
        folds,
    };
    let summary = training_node(exec, inputs, Stage::Train, Some(iteration), &job)?;
    Ok((job.key, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_metrics_read_partial_and_null_fields() {
        let m = TrainMetrics::read(&serde_json::json!({
            "valid_acc": 0.5, "curve": [0.1, null], "failed": null
        }));
        assert_eq!(m.valid_acc, Some(0.5));
        assert_eq!(m.test_acc, None);
        assert_eq!(m.curve.len(), 2);
        assert!(m.curve[1].is_nan());
        assert_eq!(
            TrainMetrics::read(&serde_json::json!("x")),
            TrainMetrics::default()
        );
    }
}

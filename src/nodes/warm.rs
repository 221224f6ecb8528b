//! The `warm` node (`[encoder] mode = "warm"`): the encoder fine-tuned once with a Model 1
//! head (the text-only classifier, AdamW) on the training rows, its best epoch by
//! validation accuracy kept, resumable per epoch like a candidate. The encode stage then
//! serves the tuned encoder's vectors frozen to every candidate.
//!
//! The tuned encoder is stored as `model.safetensors` bytes in the weights folder, under
//! the node's key; it is written out to `scratch/warm/<blake3>.safetensors` for the stages
//! that read an encoder from a file, and the key every later node takes as its encoder
//! holds that blake3, so nothing downstream of a warm run shares an entry with a frozen
//! run (or with another tuning).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use hhnas_data::Dataset;
use hhnas_train::{
    Checkpoint, EncoderAssets, EpochReport, KeepEpoch, ModelSpec, OptimizerKind, TrainConfig,
    TrainData, TrainOutcome, WeightsRef,
};

use super::train::{
    checkpoint_path, drop_result_without_weights, read_checkpoint, weights_stored, EpochSink,
    TrainMetrics,
};
use crate::config::PipelineConfig;
use crate::dag::Replay;
use crate::dag::{Stage, WEIGHTS};
use crate::error::ExitClass;
use hhnas_engine::replay::load_stored;
use hhnas_engine::store::{write_atomic, Key, KeyBuilder, Lookup, Store};
use hhnas_engine::user_error;

/// The Model 1 head the encoder is tuned with: the search's default initial candidate's
/// sizes and dropout. Only the encoder is kept.
const LAYER_SIZE1: usize = 256;
const LAYER_SIZE2: usize = 128;
const DROPOUT: f64 = 0.1;

/// The node's output: the tuning's result without weights, and the blake3 of the tuned
/// encoder's safetensors bytes (stored apart, in the weights folder under the same key).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct WarmSummary {
    pub outcome: TrainOutcome,
    pub spec: ModelSpec,
    /// blake3 of the tuned encoder's `model.safetensors`, hex.
    pub encoder_blake3: String,
}

/// The candidate the encoder is tuned as, and how it trains.
fn warm_job(cfg: &PipelineConfig) -> (ModelSpec, TrainConfig) {
    let w = &cfg.encoder.warm;
    let spec = ModelSpec {
        llm_branch: false,
        rule_branch: false,
        learning_rate: w.learning_rate,
        optimizer: OptimizerKind::AdamW,
        layer_size1: LAYER_SIZE1,
        layer_size2: LAYER_SIZE2,
        dropout: DROPOUT,
        kernel_size: 1,
    };
    let tcfg = TrainConfig {
        epochs: w.epochs,
        batch_size: w.batch_size,
        seed: w.seed,
        device: hhnas_train::NoDevice,
        patience: (w.patience > 0).then_some(w.patience),
        max_train_rows: None,
        sort_by_length: true,
        cnn_channels: 1,
        branch_pool: hhnas_train::BranchPool::GlobalMax,
        head: hhnas_train::HeadKind::Dense,
        keep: KeepEpoch::Best,
        lexical_dropout: None,
    };
    (spec, tcfg)
}

/// Keyed by the dataset, the encoder, the head's spec and the training settings (the
/// device left out, as for a candidate).
fn warm_key(ds_key: Key, enc_key: Key, spec: &ModelSpec, tcfg: &TrainConfig) -> Key {
    let mut kb = Stage::Warm.key();
    kb.input(&ds_key).input(&enc_key).param(spec).param(tcfg);
    kb.finish()
}

/// The key later nodes take as their encoder's: the warm node's key and the tuned
/// weights' blake3.
fn tuned_key(warm: Key, blake3: &str) -> Key {
    let mut kb = KeyBuilder::new("warm_encoder", 1);
    kb.input(&warm).param(&blake3);
    kb.finish()
}

/// Fine-tunes (or replays) the encoder and returns the key and assets of the tuned
/// encoder, which every later node uses in place of `enc`.
pub(crate) fn warm_node(
    exec: &mut Replay,
    cfg: &PipelineConfig,
    ds_key: Key,
    ds: &Dataset,
    enc_key: Key,
    enc: &EncoderAssets,
) -> Result<(Key, EncoderAssets)> {
    let (spec, tcfg) = warm_job(cfg);
    let fresh = warm_key(ds_key, enc_key, &spec, &tcfg);
    let key = match exec.kept_key::<WarmSummary>(Stage::Warm, fresh) {
        kept if weights_stored(&exec.store, &kept) => kept,
        _ => fresh,
    };
    // A result whose tuned weights were lost is tuned again.
    drop_result_without_weights(exec, Stage::Warm, &key)?;
    let summary: WarmSummary = exec.node(Stage::Warm, None, key, |exec| {
        compute(exec, ds, enc, &spec, &tcfg, cfg.train.device.parsed(), key)
    })?;
    // Only once the result is stored is the checkpoint of no further use.
    let _ = std::fs::remove_file(checkpoint_path(&exec.scratch, &key));
    let _ = std::fs::remove_file(&exec.training_file);
    tuned(&exec.store, &exec.scratch, key, &summary, enc)
}

fn compute(
    exec: &mut Replay,
    ds: &Dataset,
    enc: &EncoderAssets,
    spec: &ModelSpec,
    tcfg: &TrainConfig,
    device: hhnas_train::Device,
    key: Key,
) -> Result<(WarmSummary, TrainMetrics)> {
    let checkpoint = checkpoint_path(&exec.scratch, &key);
    let resume = read_checkpoint(&checkpoint, exec.progress, Stage::Warm.name());
    let sink = EpochSink {
        progress: exec.progress,
        training_file: exec.training_file.clone(),
        checkpoint,
        fold: None,
        node: Some(Stage::Warm.name()),
        iteration: 0,
        model: 1,
        epochs: tcfg.epochs,
    };
    let started = Instant::now();
    let mut outcome = hhnas_train::train_candidate(
        TrainData::text_only(ds),
        enc,
        spec,
        tcfg,
        device,
        resume,
        &mut |c: &Checkpoint, r: &EpochReport| sink.on_epoch(c, r),
    )
    .map_err(ExitClass::classified)?;
    if let Some(why) = &outcome.failed {
        return Err(user_error!(
            "warm: fine-tuning the encoder failed ({why}). Fix: lower \
             encoder.warm.learning_rate (e.g. 2e-5), or use encoder.mode = \"frozen\""
        ));
    }
    let weights = std::mem::take(&mut outcome.best_weights);
    let tuned = hhnas_train::tuned_encoder(enc, spec, ds.classes.len(), &weights)
        .map_err(ExitClass::classified)?;
    exec.store.put_bytes(WEIGHTS, &key, &tuned)?;
    let mut metrics = TrainMetrics::of(&outcome, 1, started.elapsed().as_secs_f64());
    metrics.summary = format!(
        "encoder tuned with a Model 1 head: {}, best epoch {}",
        metrics.summary.trim_start_matches("model 1 "),
        outcome.best_epoch
    );
    let summary = WarmSummary {
        outcome,
        spec: spec.clone(),
        encoder_blake3: blake3::hash(&tuned).to_hex().to_string(),
    };
    Ok((summary, metrics))
}

/// The tuned encoder of the warm node `key`: its bytes read from the store (verified),
/// written out under `scratch` if that file is missing or differs, and `base` pointed at it.
fn tuned(
    store: &Store,
    scratch: &Path,
    key: Key,
    summary: &WarmSummary,
    base: &EncoderAssets,
) -> Result<(Key, EncoderAssets)> {
    let blake3 = summary.encoder_blake3.clone();
    let path = scratch.join("warm").join(format!("{blake3}.safetensors"));
    let current = std::fs::read(&path)
        .map(|b| blake3::hash(&b).to_hex().to_string() == blake3)
        .unwrap_or(false);
    if !current {
        let bytes = match store.get_bytes(WEIGHTS, &key)? {
            Lookup::Hit(b) => b,
            Lookup::Corrupt(w) => {
                return Err(user_error!(
                    "{w}. Fix: `hhnas-pipe resume` tunes the encoder again"
                ))
            }
            Lookup::Miss => {
                return Err(user_error!(
                    "the tuned encoder of warm node {} is missing from {}. Fix: \
                     `hhnas-pipe resume` tunes the encoder again",
                    key.short(),
                    store.path(WEIGHTS, &key).display()
                ))
            }
        };
        write_atomic(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    let assets = EncoderAssets {
        source: format!("{} warm {}", base.source, key.short()),
        weights: Some(WeightsRef {
            path: PathBuf::from(&path),
            blake3: blake3.clone(),
        }),
        ..base.clone()
    };
    Ok((tuned_key(key, &blake3), assets))
}

/// The tuned encoder of a run's warm node, as `eval` and `predict` load it back
/// (`key`: the node's key as the journal spells it; `base`: the run's encoder).
pub(crate) fn stored_tuned(
    store: &Store,
    cache: &Path,
    key: Key,
    base: &EncoderAssets,
) -> Result<(Key, EncoderAssets)> {
    let summary: WarmSummary = load_stored(store, Stage::Warm, &key)?;
    tuned(store, &cache.join("scratch"), key, &summary, base)
}

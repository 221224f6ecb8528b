//! `train_candidate`'s loop on the native path: device `"cpu"`, the text-only classifier
//! (no feature branches), AdamW. Same epochs, batches, early stopping and checkpoints as
//! burn's loop (`training::train_loop`): the weights and AdamW's moments are written back
//! into burn's classifier and optimizer record at every epoch's end, so checkpoints and
//! best weights are burn records either path can load. What differs from `"cpu:flex"`:
//! the dropout masks (a counter-based hash instead of burn's generator) and the last bits
//! of every sum, so the two give close but not equal results; each is deterministic.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::tensor::backend::AutodiffBackend;
use rayon::prelude::*;

use super::bridge::{adam_record, read_adam_record, slots, write_weights, Record, Slot};
use super::NativeTrainer;
use crate::data::{derive_seed, epoch_batches, eval_batches, Examples, P_EPOCH};
use crate::error::TrainError;
use crate::model::Classifier;
use crate::prepare::Prepared;
use crate::spec::{EpochReport, ModelSpec, OptimizerKind, TrainOutcome};
use crate::training::{adamw_config, build, EpochState, Net, TrainTask, ADAMW};
use crate::weights::{
    decode_record, encode_record, header_of, load_record, pack_weights, record_bytes,
    unpack_weights,
};

/// Whether a candidate trains on the native path.
/// Whether a candidate can train on the native path (on a device that asks for it).
pub(crate) fn eligible(prep: &Prepared, spec: &ModelSpec) -> bool {
    prep.sources.embeddings.is_none()
        && !prep.shape.llm
        && !prep.shape.rules
        && spec.optimizer == OptimizerKind::AdamW
}

/// Accuracy of `native` on `ex` (batches of similar length on rayon's threads).
fn accuracy(native: &NativeTrainer, ex: &Examples) -> Result<f64, TrainError> {
    if ex.len() == 0 {
        return Ok(0.0);
    }
    let batches = eval_batches(ex);
    let preds = batches
        .par_iter()
        .map(|idx| {
            let seqs: Vec<&[u32]> = idx.iter().map(|&i| ex.tokens[i].as_slice()).collect();
            native.predict(&seqs)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ok = batches
        .iter()
        .zip(&preds)
        .flat_map(|(idx, p)| idx.iter().zip(p))
        .filter(|(&i, &p)| ex.labels[i] == p)
        .count();
    Ok(ok as f64 / ex.len() as f64)
}

/// burn's classifier with the native weights written in.
fn synced<B: AutodiffBackend>(
    model: Classifier<B>,
    native: &mut NativeTrainer,
    slots: &[Slot],
    device: &B::Device,
) -> Classifier<B> {
    write_weights(model, slots, &native.weight_copies(), device)
}

/// The text-only classifier's training on the native path, with burn's checkpoint format.
/// Long (~160 lines) because it is the epoch loop of `training.rs` over native steps: one
/// loop state a checkpoint captures whole (the duplication with that loop is known).
pub(crate) fn train<B: AutodiffBackend>(
    task: TrainTask,
    device: B::Device,
) -> Result<TrainOutcome, TrainError> {
    let TrainTask {
        prep,
        assets,
        spec,
        cfg,
        resume,
        on_epoch,
    } = task;
    let header = header_of(&prep.shape, assets, None);
    let mut model: Classifier<B> = build(assets, &prep.shape, cfg.seed, &device, resume.is_none())?;
    let mut optim = adamw_config().init::<B, Classifier<B>>();
    let mut st = EpochState::fresh();
    let mut resumed = None;
    if let Some(ck) = resume {
        if ck.fingerprint != prep.fingerprint {
            return Err(TrainError::Weights(
                "the checkpoint belongs to a different candidate/config (fingerprint mismatch): discard it and train from scratch".into(),
            ));
        }
        model = load_record(model, &ck.model, &device)?;
        resumed = Some(decode_record::<B, Record<B>>(&ck.optimizer, &device)?);
        st = EpochState::from_checkpoint(ck);
    }
    let mut model = model.freeze(assets);
    let slots = slots(&model)?;
    let mut native = NativeTrainer::from_classifier(&model, &assets.arch, spec.dropout, ADAMW)?;
    native.freeze_word(assets.freeze_embeddings);
    if let Some(rec) = resumed {
        let (mut m, mut v) = native.moments_mut();
        if let Some(t) = read_adam_record::<B>(&slots, rec, &mut m, &mut v)? {
            native.set_time(t);
        }
    }
    let mut train_secs = 0.0;
    let mut train_examples = 0usize;
    let mut diverged = None;
    while st.epoch < cfg.epochs && !st.stopped_early {
        let t0 = Instant::now();
        let epoch_seed = derive_seed(cfg.seed, P_EPOCH, st.epoch as u64);
        let batches = epoch_batches(
            &prep.train,
            cfg.batch_size,
            cfg.sort_by_length,
            cfg.seed,
            st.epoch,
        );
        let (mut loss_sum, mut n) = (0.0, 0usize);
        for (k, idx) in batches.iter().enumerate() {
            let ex = &prep.train;
            let seqs: Vec<&[u32]> = idx.iter().map(|&i| ex.tokens[i].as_slice()).collect();
            let labels: Vec<u32> = idx.iter().map(|&i| ex.labels[i]).collect();
            let seed = derive_seed(epoch_seed, P_EPOCH, k as u64);
            let lv = native.step(&seqs, &labels, spec.learning_rate, seed)?;
            if !lv.is_finite() {
                diverged = Some(lv);
                break;
            }
            loss_sum += lv * idx.len() as f64;
            n += idx.len();
        }
        if let Some(lv) = diverged {
            // SPEC §6: the epoch ends here; the best finite epoch so far still counts.
            st.curve.push(EpochReport {
                epoch: st.epoch + 1,
                train_loss: lv,
                valid_acc: 0.0,
                secs: t0.elapsed().as_secs_f64(),
            });
            break;
        }
        train_secs += t0.elapsed().as_secs_f64();
        train_examples += n;
        let acc = accuracy(&native, &prep.valid)?;
        st.epoch += 1;
        model = synced(model, &mut native, &slots, &device);
        if acc > st.best_acc {
            st.best_acc = acc;
            st.best_epoch = st.epoch;
            st.best_weights = pack_weights(&header, &record_bytes(&model.valid())?);
            st.since_best = 0;
        } else {
            st.since_best += 1;
        }
        if let Some(p) = cfg.patience {
            if st.since_best >= p && st.epoch < cfg.epochs {
                st.stopped_early = true;
            }
        }
        let report = EpochReport {
            epoch: st.epoch,
            train_loss: if n > 0 { loss_sum / n as f64 } else { 0.0 },
            valid_acc: acc,
            secs: t0.elapsed().as_secs_f64(),
        };
        tracing::debug!(
            epoch = st.epoch,
            loss = report.train_loss,
            valid_acc = acc,
            "epoch (native)"
        );
        st.curve.push(report.clone());
        let frozen = native.word_frozen();
        let time = native.time();
        let (m, v) = native.moments_mut();
        let (m, v): (Vec<&[f32]>, Vec<&[f32]>) = (
            m.into_iter().map(|x| &*x).collect(),
            v.into_iter().map(|x| &*x).collect(),
        );
        let rec = adam_record::<B>(&slots, &m, &v, time, &|s| frozen && s.index == 0, &device);
        optim = optim.load_record(rec);
        let ck = st.checkpoint(
            &prep.fingerprint,
            cfg.seed,
            record_bytes(&model)?,
            encode_record::<B, _>(optim.to_record())?,
        );
        on_epoch(&ck, &report);
    }
    let examples_per_sec = if train_secs > 0.0 {
        train_examples as f64 / train_secs
    } else {
        0.0
    };
    if st.best_weights.is_empty() {
        let failure = diverged.map(|lv| {
            format!(
                "loss became {lv} in epoch {} (learning rate {}) before any epoch finished: diverged",
                st.epoch + 1,
                spec.learning_rate
            )
        });
        return Ok(TrainOutcome {
            curve: st.curve,
            best_epoch: 0,
            best_valid_acc: 0.0,
            test_acc: 0.0,
            stopped_early: st.stopped_early,
            failed: Some(failure.unwrap_or_else(|| "no epoch finished".to_string())),
            best_weights: Vec::new(),
            examples_per_sec,
        });
    }
    let (_, rec) = unpack_weights(&st.best_weights)?;
    let best = load_record(model.valid(), rec, &device)?;
    let best = NativeTrainer::from_classifier(&best, &assets.arch, 0.0, ADAMW)?;
    let test_acc = accuracy(&best, &prep.test)?;
    Ok(TrainOutcome {
        curve: st.curve,
        best_epoch: st.best_epoch,
        best_valid_acc: st.best_acc.max(0.0),
        test_acc,
        stopped_early: st.stopped_early,
        failed: None,
        best_weights: st.best_weights,
        examples_per_sec,
    })
}

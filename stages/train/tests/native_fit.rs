//! `train_candidate` on the native path (device "cpu", text-only classifier, AdamW):
//! deterministic, resumable from its own and from burn's checkpoints, and its weights are
//! burn records that `evaluate` reads.

mod common;

use common::*;
use hhnas_train::*;

fn data(ds: &Dataset) -> TrainData<'_> {
    TrainData::text_only(ds)
}

/// burn's backend RNG (the classifier's initialisation) is process-global: tests that
/// train hold this lock so their seeded streams do not interleave.
fn lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn curve(o: &TrainOutcome) -> Vec<(u64, u64)> {
    o.curve
        .iter()
        .map(|e| (e.train_loss.to_bits(), e.valid_acc.to_bits()))
        .collect()
}

#[test]
fn native_training_is_deterministic_resumable_and_learns() {
    let _g = lock();
    // The setup of train.rs's all_four_models_beat_chance: it learns from epoch 5 or so.
    let (ds, _, enc) = synthetic_setup(480, 1);
    let s = spec(false, false, OptimizerKind::AdamW, 3e-3);
    let mut cks = Vec::new();
    let full = train_candidate(
        data(&ds),
        &enc,
        &s,
        &cfg(8),
        Device::default(),
        None,
        &mut |ck, _| cks.push(ck.clone()),
    )
    .unwrap();
    assert!(full.failed.is_none());
    assert!(full.best_valid_acc > 0.5, "{}", full.best_valid_acc);
    let again = train_candidate(
        data(&ds),
        &enc,
        &s,
        &cfg(8),
        Device::default(),
        None,
        &mut |_, _| {},
    )
    .unwrap();
    assert!(
        full.best_weights == again.best_weights,
        "weights differ run to run"
    );
    assert_eq!(curve(&full), curve(&again));
    // Resumed after epoch 3 (through serialisation): the same run.
    let ck: Checkpoint = serde_json::from_str(&serde_json::to_string(&cks[2]).unwrap()).unwrap();
    let resumed = train_candidate(
        data(&ds),
        &enc,
        &s,
        &cfg(8),
        Device::default(),
        Some(ck),
        &mut |_, _| {},
    )
    .unwrap();
    assert!(
        full.best_weights == resumed.best_weights,
        "resumed weights differ"
    );
    assert_eq!(curve(&full), curve(&resumed));
    assert_eq!(full.test_acc, resumed.test_acc);
    // The best weights are a burn record: burn's evaluate scores them as training did.
    let acc = evaluate(
        &enc,
        &s,
        &full.best_weights,
        data(&ds),
        &ds.test,
        Device::Cpu(CpuKind::Flex),
    )
    .unwrap();
    assert!(
        (acc - full.test_acc).abs() < 1e-9,
        "{acc} vs {}",
        full.test_acc
    );
}

#[test]
fn native_and_burn_checkpoints_resume_each_other() {
    let _g = lock();
    let (ds, _, enc) = synthetic_setup(160, 12);
    let s = spec(false, false, OptimizerKind::AdamW, 3e-3);
    let (native, flex) = (Device::default(), Device::Cpu(CpuKind::Flex));
    for (first, second) in [(native, flex), (flex, native)] {
        let mut cks = Vec::new();
        train_candidate(data(&ds), &enc, &s, &cfg(3), first, None, &mut |ck, _| {
            cks.push(ck.clone())
        })
        .unwrap();
        let mut epochs = Vec::new();
        let out = train_candidate(
            data(&ds),
            &enc,
            &s,
            &cfg(3),
            second,
            Some(cks[0].clone()),
            &mut |ck, _| epochs.push(ck.epoch),
        )
        .unwrap();
        assert_eq!(epochs, vec![2, 3], "{first} -> {second}");
        assert!(out.failed.is_none());
    }
}

#[test]
fn native_training_with_frozen_word_embeddings_resumes() {
    let _g = lock();
    let mut enc_cfg = tiny_encoder();
    enc_cfg.freeze_embeddings = true;
    let ds = synthetic(160, 13);
    let enc = prepare_encoder(&enc_cfg, &ds).unwrap();
    let s = spec(false, false, OptimizerKind::AdamW, 3e-3);
    let mut cks = Vec::new();
    let out = train_candidate(
        data(&ds),
        &enc,
        &s,
        &cfg(2),
        Device::default(),
        None,
        &mut |ck, _| cks.push(ck.clone()),
    )
    .unwrap();
    assert!(out.failed.is_none());
    // Resuming a frozen run natively works (no optimizer state for the frozen rows).
    let again = train_candidate(
        data(&ds),
        &enc,
        &s,
        &cfg(2),
        Device::default(),
        Some(cks[0].clone()),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(out.best_weights, again.best_weights);
}

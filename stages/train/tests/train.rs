//! Training behaviour on tiny models (CPU).

mod common;

use common::*;
use hhnas_train::*;
use std::sync::Mutex;

// burn's CPU backends keep their RNG in a process-wide static: tests that check bitwise
// reproducibility must not interleave with other training in the same process.
static SERIAL: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn run(
    ds: &Dataset,
    enc: &EncoderAssets,
    spec: &ModelSpec,
    cfg: &TrainConfig,
    feats: Option<&FeatureMatrix>,
) -> TrainOutcome {
    let data = TrainData {
        dataset: ds,
        llm_features: feats,
        rule_features: feats,
        rule_classes: None,
        embeddings: None,
    };
    train_candidate(
        data,
        enc,
        spec,
        cfg,
        Device::default(),
        None,
        &mut |_, _| {},
    )
    .expect("training runs")
}

#[test]
fn all_four_models_beat_chance() {
    let _g = lock();
    let (ds, feats, enc) = synthetic_setup(480, 1);
    for (llm, rules) in [(false, false), (true, false), (false, true), (true, true)] {
        let s = spec(llm, rules, OptimizerKind::AdamW, 3e-3);
        let t = std::time::Instant::now();
        let out = run(&ds, &enc, &s, &cfg(12), Some(&feats));
        eprintln!(
            "llm/rule branches {:?}: valid {:.3} test {:.3} curve {:?} ({:.1}s, {:.0} ex/s)",
            (s.llm_branch, s.rule_branch),
            out.best_valid_acc,
            out.test_acc,
            out.curve.iter().map(|e| e.valid_acc).collect::<Vec<_>>(),
            t.elapsed().as_secs_f64(),
            out.examples_per_sec
        );
        assert!(out.failed.is_none());
        assert_eq!(out.curve.len(), 12);
        assert!(
            out.best_valid_acc > 0.5,
            "branches {:?} at chance: {:?}",
            (s.llm_branch, s.rule_branch),
            out.curve
        );
        assert!(!out.best_weights.is_empty());
    }
}

#[test]
fn three_optimizers_run() {
    let _g = lock();
    let ds = synthetic(160, 2);
    let enc = prepare_encoder(&tiny_encoder(), &ds).unwrap();
    for (opt, lr) in [
        (OptimizerKind::AdamW, 1e-3),
        (OptimizerKind::SgdMomentum, 1e-2),
        (OptimizerKind::RmsProp, 1e-3),
    ] {
        let out = run(&ds, &enc, &spec(false, false, opt, lr), &cfg(2), None);
        assert!(out.failed.is_none(), "{opt:?}: {:?}", out.failed);
        assert_eq!(out.curve.len(), 2);
        assert!(out
            .curve
            .iter()
            .all(|e| e.train_loss.is_finite() && e.train_loss > 0.0));
    }
    for n in 0..3 {
        OptimizerKind::from_criterion_num(n).unwrap();
    }
    assert!(OptimizerKind::from_criterion_num(3).is_err());
}

#[test]
fn two_runs_are_bitwise_equal() {
    let _g = lock();
    let (ds, feats, enc) = synthetic_setup(160, 3);
    let s = spec(true, true, OptimizerKind::AdamW, 1e-3);
    let a = run(&ds, &enc, &s, &cfg(2), Some(&feats));
    let b = run(&ds, &enc, &s, &cfg(2), Some(&feats));
    assert_eq!(a.best_weights, b.best_weights);
    let strip = |o: &TrainOutcome| {
        o.curve
            .iter()
            .map(|e| (e.epoch, e.train_loss.to_bits(), e.valid_acc.to_bits()))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&a), strip(&b));
    assert_eq!(a.test_acc, b.test_acc);
    // A different seed gives different weights.
    let mut c2 = cfg(2);
    c2.seed = 8;
    let c = run(&ds, &enc, &s, &c2, Some(&feats));
    assert_ne!(a.best_weights, c.best_weights);
}

#[test]
fn resume_from_checkpoint_equals_uninterrupted() {
    let _g = lock();
    let (ds, feats, enc) = synthetic_setup(160, 4);
    for opt in [OptimizerKind::AdamW, OptimizerKind::SgdMomentum] {
        let s = spec(false, true, opt, 2e-3);
        let data = TrainData {
            dataset: &ds,
            llm_features: None,
            rule_features: Some(&feats),
            rule_classes: None,
            embeddings: None,
        };
        let mut cks = Vec::new();
        let full = train_candidate(
            data,
            &enc,
            &s,
            &cfg(3),
            Device::default(),
            None,
            &mut |ck, rep| {
                assert_eq!(ck.epoch, rep.epoch);
                cks.push(ck.clone());
            },
        )
        .unwrap();
        assert_eq!(cks.len(), 3);
        // The checkpoint survives serialization (the engine stores it as bincode/JSON).
        let ck1: Checkpoint =
            serde_json::from_str(&serde_json::to_string(&cks[0]).unwrap()).unwrap();
        let mut later = Vec::new();
        let resumed = train_candidate(
            data,
            &enc,
            &s,
            &cfg(3),
            Device::default(),
            Some(ck1),
            &mut |ck, _| later.push(ck.epoch),
        )
        .unwrap();
        assert_eq!(later, vec![2, 3]);
        assert_eq!(full.best_weights, resumed.best_weights, "{opt:?}");
        assert_eq!(full.best_valid_acc, resumed.best_valid_acc);
        assert_eq!(full.test_acc, resumed.test_acc);
        let strip = |o: &TrainOutcome| {
            o.curve
                .iter()
                .map(|e| (e.train_loss.to_bits(), e.valid_acc.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&full), strip(&resumed));
        // A checkpoint from another candidate is refused.
        let other = spec(false, true, opt, 3e-3);
        let err = train_candidate(
            data,
            &enc,
            &other,
            &cfg(3),
            Device::default(),
            Some(cks[0].clone()),
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("fingerprint"), "{err}");
    }
}

#[test]
fn patience_stops_early() {
    let _g = lock();
    let ds = synthetic(160, 5);
    let enc = prepare_encoder(&tiny_encoder(), &ds).unwrap();
    // A learning rate this small cannot improve validation accuracy after epoch 1.
    let mut c = cfg(10);
    c.patience = Some(2);
    let out = run(
        &ds,
        &enc,
        &spec(false, false, OptimizerKind::SgdMomentum, 1e-9),
        &c,
        None,
    );
    assert!(out.stopped_early);
    assert_eq!(out.curve.len(), 3, "{:?}", out.curve);
    assert_eq!(out.best_epoch, 1);
}

#[test]
fn divergence_is_a_failed_outcome_not_an_error() {
    let _g = lock();
    let ds = synthetic(160, 6);
    let enc = prepare_encoder(&tiny_encoder(), &ds).unwrap();
    let out = run(
        &ds,
        &enc,
        &spec(false, false, OptimizerKind::AdamW, 1e38),
        &cfg(3),
        None,
    );
    let reason = out.failed.expect("diverges");
    assert!(reason.contains("diverged"), "{reason}");
    assert_eq!(out.best_valid_acc, 0.0);
    assert!(out.best_weights.is_empty());
}

#[test]
fn device_errors() {
    let ds = synthetic(40, 7);
    let enc = prepare_encoder(&tiny_encoder(), &ds).unwrap();
    let s = spec(false, false, OptimizerKind::AdamW, 1e-3);
    for bad in ["gpu0", "cuda:x", "cpu:mkl"] {
        let e = parse_device(bad).unwrap_err();
        assert!(e.to_string().contains("[train] device"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }
    if !cfg!(feature = "cuda") {
        let data = TrainData::text_only(&ds);
        let e = train_candidate(
            data,
            &enc,
            &s,
            &cfg(1),
            Device::Cuda(0),
            None,
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("rebuild with --features cuda"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 2);
    }
    for (text, device) in [
        ("cpu", Device::Cpu(CpuKind::Native)),
        ("cpu:flex", Device::Cpu(CpuKind::Flex)),
        ("cpu:ndarray", Device::Cpu(CpuKind::NdArray)),
        ("cuda:1", Device::Cuda(1)),
    ] {
        assert_eq!(parse_device(text).unwrap(), device);
        assert_eq!(device.to_string(), text);
    }
    assert_eq!(parse_device("cuda").unwrap(), Device::Cuda(0));
}

fn run_err(ds: &Dataset, enc: &EncoderAssets, s: &ModelSpec, c: &TrainConfig) -> TrainError {
    let data = TrainData::text_only(ds);
    train_candidate(data, enc, s, c, Device::default(), None, &mut |_, _| {}).unwrap_err()
}

#[test]
fn input_errors() {
    let ds = synthetic(40, 8);
    let enc = prepare_encoder(&tiny_encoder(), &ds).unwrap();
    // Branch without its matrix.
    let e = run_err(
        &ds,
        &enc,
        &spec(false, true, OptimizerKind::AdamW, 1e-3),
        &cfg(1),
    );
    assert!(e.to_string().contains("rule"), "{e}");
    // Wrong matrix height.
    let bad = FeatureMatrix {
        rows: 3,
        cols: 2,
        data: vec![0; 6],
    };
    let data = TrainData {
        dataset: &ds,
        llm_features: Some(&bad),
        rule_features: None,
        rule_classes: None,
        embeddings: None,
    };
    let e = train_candidate(
        data,
        &enc,
        &spec(true, false, OptimizerKind::AdamW, 1e-3),
        &cfg(1),
        Device::default(),
        None,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("expected 40 rows"), "{e}");
    // Even kernel, bad dropout.
    let mut s = spec(false, false, OptimizerKind::AdamW, 1e-3);
    s.kernel_size = 4;
    assert!(run_err(&ds, &enc, &s, &cfg(1))
        .to_string()
        .contains("kernel_size"));
    s.kernel_size = 3;
    s.dropout = 1.5;
    assert!(run_err(&ds, &enc, &s, &cfg(1))
        .to_string()
        .contains("dropout"));
    // Zero epochs.
    let e = run_err(
        &ds,
        &enc,
        &spec(false, false, OptimizerKind::AdamW, 1e-3),
        &cfg(0),
    );
    assert!(e.to_string().contains("[train] epochs"), "{e}");
    // Split index out of range.
    let mut ds2 = ds.clone();
    ds2.valid.push(999);
    let e = run_err(
        &ds2,
        &enc,
        &spec(false, false, OptimizerKind::AdamW, 1e-3),
        &cfg(1),
    );
    assert!(e.to_string().contains("999"), "{e}");
}

#[test]
fn predict_and_evaluate_use_the_weights() {
    let _g = lock();
    let (ds, feats, enc) = synthetic_setup(480, 9);
    let s = spec(false, true, OptimizerKind::AdamW, 3e-3);
    let data = TrainData {
        dataset: &ds,
        llm_features: None,
        rule_features: Some(&feats),
        rule_classes: None,
        embeddings: None,
    };
    let out = train_candidate(
        data,
        &enc,
        &s,
        &cfg(6),
        Device::default(),
        None,
        &mut |_, _| {},
    )
    .unwrap();
    let acc = evaluate(
        &enc,
        &s,
        &out.best_weights,
        data,
        &ds.test,
        Device::default(),
    )
    .unwrap();
    assert_eq!(acc, out.test_acc);
    let texts: Vec<String> = ds
        .test
        .iter()
        .map(|&i| ds.rows[i].question.clone())
        .collect();
    let sub = FeatureMatrix {
        rows: texts.len(),
        cols: feats.cols,
        data: ds
            .test
            .iter()
            .flat_map(|&i| feats.data[i * feats.cols..(i + 1) * feats.cols].to_vec())
            .collect(),
    };
    let run = |spec: &ModelSpec, weights: &[u8]| {
        let input = PredictInput {
            texts: &texts,
            embeddings: None,
            llm: None,
            rules: Some(&sub),
            rule_classes: None,
        };
        predict(&enc, spec, 4, weights, input, Device::default())
    };
    let p = run(&s, &out.best_weights).unwrap();
    assert_eq!(p.len(), texts.len());
    let mut ok = 0;
    for (probs, &i) in p.iter().zip(&ds.test) {
        assert_eq!(probs.len(), 4);
        assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        let arg = (0..4)
            .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
            .unwrap();
        ok += usize::from(arg as u32 == ds.rows[i].label);
    }
    assert_eq!(ok as f64 / texts.len() as f64, out.test_acc);
    // Weights of another shape are refused with a clear error.
    let mut other = s.clone();
    other.layer_size1 = 64;
    let e = run(&other, &out.best_weights).unwrap_err();
    assert!(e.to_string().contains("trained for"), "{e}");
    assert!(run(&s, b"garbage").is_err());
}

#[test]
fn max_train_rows_and_frozen_embeddings() {
    let _g = lock();
    let ds = synthetic(160, 10);
    let mut ec = tiny_encoder();
    ec.freeze_embeddings = true;
    let enc = prepare_encoder(&ec, &ds).unwrap();
    let mut c = cfg(1);
    c.max_train_rows = Some(32);
    c.sort_by_length = false;
    let out = run(
        &ds,
        &enc,
        &spec(false, false, OptimizerKind::AdamW, 1e-3),
        &c,
        None,
    );
    assert!(out.failed.is_none());
    assert_eq!(out.curve.len(), 1);
}

/// Questions without class words; only the features say the class: column 2c fires for
/// class c, column 2c + 1 is noise. Per-class pooling can read which class's column fired;
/// the SPEC's global max pool only sees that *some* column fired.
#[test]
fn per_class_pooling_keeps_which_class_fired() {
    let _g = lock();
    let mut ds = synthetic(400, 11);
    for r in &mut ds.rows {
        r.question = "show the name of all items".into();
    }
    // Columns 0-3: "class c fired"; 4-7: noise of class c. Not in class order, so the
    // training stage has to regroup them.
    let mut data = Vec::new();
    for (i, r) in ds.rows.iter().enumerate() {
        data.extend((0..4u32).map(|c| u8::from(r.label == c)));
        data.extend((0..4usize).map(|c| u8::from((i * 5 + c).is_multiple_of(3))));
    }
    let feats = FeatureMatrix {
        rows: ds.rows.len(),
        cols: 8,
        data,
    };
    let classes: Vec<u32> = vec![0, 1, 2, 3, 0, 1, 2, 3];
    let enc = prepare_encoder(&tiny_encoder(), &ds).unwrap();
    let s = spec(false, true, OptimizerKind::AdamW, 3e-3);
    let data = TrainData {
        dataset: &ds,
        llm_features: None,
        rule_features: Some(&feats),
        rule_classes: Some(&classes),
        embeddings: None,
    };
    let mut per_class = cfg(12);
    per_class.branch_pool = BranchPool::PerClass;
    let pc = train_candidate(
        data,
        &enc,
        &s,
        &per_class,
        Device::default(),
        None,
        &mut |_, _| {},
    )
    .unwrap();
    let gm = train_candidate(
        data,
        &enc,
        &s,
        &cfg(12),
        Device::default(),
        None,
        &mut |_, _| {},
    )
    .unwrap();
    let curve = |o: &TrainOutcome| o.curve.iter().map(|e| e.valid_acc).collect::<Vec<_>>();
    assert!(pc.best_valid_acc >= 0.9, "per-class {:?}", curve(&pc));
    assert!(
        pc.best_valid_acc > gm.best_valid_acc + 0.2,
        "per-class {:?} vs global max {:?}",
        curve(&pc),
        curve(&gm)
    );
    // The weights remember their pooling: evaluate and predict rebuild the same model.
    let acc = evaluate(
        &enc,
        &s,
        &pc.best_weights,
        data,
        &ds.test,
        Device::default(),
    )
    .unwrap();
    assert_eq!(acc, pc.test_acc);
    let texts = vec!["show the name of all items".to_string()];
    let one = FeatureMatrix {
        rows: 1,
        cols: 8,
        data: vec![0, 0, 1, 0, 1, 0, 0, 1],
    };
    let predict_one = |classes: Option<&[u32]>| {
        predict(
            &enc,
            &s,
            4,
            &pc.best_weights,
            PredictInput {
                texts: &texts,
                embeddings: None,
                llm: None,
                rules: Some(&one),
                rule_classes: classes,
            },
            Device::default(),
        )
    };
    let p = predict_one(Some(&classes)).unwrap();
    let arg = (0..4).max_by(|&a, &b| p[0][a].total_cmp(&p[0][b])).unwrap();
    assert_eq!(arg, 2, "{p:?}");
    // Without the rule classes the layout is unknown: a clear error, not a guess.
    let e = predict_one(None).unwrap_err();
    assert!(e.to_string().contains("rule_classes"), "{e}");
    let e = predict_one(Some(&[0, 1, 2])).unwrap_err();
    assert!(e.to_string().contains("3 rule classes"), "{e}");
}

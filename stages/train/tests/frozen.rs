//! Frozen-encoder mode: the encode stage's vectors, heads trained over them, and the
//! sparse CNN branch against its dense reference.

mod common;

use burn::backend::flex::{Flex, FlexDevice};
use burn::tensor::{Int, Tensor, TensorData};
use common::*;
use hhnas_train::internals::CnnBranch;
use hhnas_train::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type B = Flex;

/// burn's backend RNG (dropout, initialisation) is process-global: tests that train hold
/// this lock so their seeded streams do not interleave.
fn lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A random sparse 0/1 matrix with a few nonzero columns per row, some at the edges.
fn sparse_matrix(rows: usize, cols: usize, seed: u64) -> FeatureMatrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = vec![0u8; rows * cols];
    for r in 0..rows {
        for _ in 0..rng.random_range(0..5) {
            data[r * cols + rng.random_range(0..cols)] = 1;
        }
        if r % 3 == 0 {
            data[r * cols] = 1;
            data[r * cols + cols - 1] = 1;
        }
    }
    FeatureMatrix { rows, cols, data }
}

fn dense(m: &FeatureMatrix) -> Tensor<B, 2> {
    let v: Vec<f32> = m.data.iter().map(|&x| f32::from(x)).collect();
    Tensor::from_data(TensorData::new(v, [m.rows, m.cols]), &FlexDevice)
}

#[test]
fn sparse_branch_equals_the_dense_convolution() {
    let _g = lock();
    let (rows, cols, classes) = (6, 40, 5);
    let m = sparse_matrix(rows, cols, 3);
    let column_class: Vec<u32> = (0..cols as u32).map(|c| (c * 7) % classes as u32).collect();
    for kernel in [1, 3, 5, 9] {
        for pooled in [0, classes] {
            let branch = CnnBranch::<B>::new(4, kernel, pooled, &FlexDevice);
            let cc = (pooled > 0).then(|| column_class.clone());
            let sparse = internals::sparse_batch::<B>(&m, cc.clone(), pooled, kernel, &FlexDevice);
            let got = branch.forward(sparse);
            let cc_t = cc.map(|c| {
                let v: Vec<i64> = c.iter().map(|&x| i64::from(x)).collect();
                Tensor::<B, 1, Int>::from_data(TensorData::new(v, [cols]), &FlexDevice)
            });
            let want = branch.forward_dense(dense(&m), cc_t);
            assert_eq!(got.dims(), want.dims(), "kernel {kernel} pooled {pooled}");
            let diff: f32 = (got - want).abs().max().into_scalar();
            assert!(
                diff < 1e-5,
                "kernel {kernel} pooled {pooled}: max diff {diff}"
            );
        }
    }
}

/// Vectors that carry the class (plus noise), as a good sentence encoder's would.
fn class_vectors(ds: &Dataset, dim: usize) -> Embeddings {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut data = Vec::new();
    for r in &ds.rows {
        for d in 0..dim {
            let signal = if d % 4 == r.label as usize { 1.5 } else { 0.0 };
            data.push(signal + rng.random_range(-1.0f32..1.0));
        }
    }
    Embeddings {
        pooling: Pooling::Mean,
        dim,
        rows: ds.rows.len(),
        data,
        encoder_id: "test".into(),
    }
}

/// The class of each column of [`rule_matrix`].
const RULE_CLASSES: [u32; 8] = [0, 1, 2, 3, 0, 1, 2, 3];

/// Frozen vectors plus the rule features of `ds` (no LLM features).
fn with_rules<'a>(ds: &'a Dataset, rules: &'a FeatureMatrix, emb: &'a Embeddings) -> TrainData<'a> {
    TrainData {
        dataset: ds,
        llm_features: None,
        rule_features: Some(rules),
        rule_classes: Some(&RULE_CLASSES),
        embeddings: Some(emb),
    }
}

#[test]
fn heads_train_over_frozen_vectors_and_predict_with_them() {
    let _g = lock();
    let ds = synthetic(400, 12);
    let enc = prepare_encoder(&tiny_encoder(), &ds).unwrap();
    let emb = class_vectors(&ds, enc.arch.hidden);
    let rules = rule_matrix(&ds);
    let data = with_rules(&ds, &rules, &emb);
    let mut c = cfg(6);
    c.branch_pool = BranchPool::PerClass;
    for s in [
        spec(false, false, OptimizerKind::AdamW, 3e-3),
        spec(false, true, OptimizerKind::AdamW, 3e-3),
    ] {
        let out =
            train_candidate(data, &enc, &s, &c, Device::default(), None, &mut |_, _| {}).unwrap();
        assert!(
            out.best_valid_acc > 0.8,
            "branches {:?} {:?}",
            (s.llm_branch, s.rule_branch),
            out.curve
        );
        // Only the head is stored: far smaller than the tiny encoder alone.
        let full = train_candidate(
            TrainData {
                embeddings: None,
                ..data
            },
            &enc,
            &s,
            &cfg(1),
            Device::default(),
            None,
            &mut |_, _| {},
        )
        .unwrap();
        assert!(out.best_weights.len() * 2 < full.best_weights.len());
        assert_eq!(
            evaluate(
                &enc,
                &s,
                &out.best_weights,
                data,
                &ds.test,
                Device::default()
            )
            .unwrap(),
            out.test_acc
        );
        let texts: Vec<String> = ds
            .test
            .iter()
            .map(|&i| ds.rows[i].question.clone())
            .collect();
        let sub_emb = Embeddings {
            rows: ds.test.len(),
            data: ds.test.iter().flat_map(|&i| emb.row(i).to_vec()).collect(),
            ..emb.clone()
        };
        let sub_rules = FeatureMatrix {
            rows: ds.test.len(),
            cols: rules.cols,
            data: ds
                .test
                .iter()
                .flat_map(|&i| rules.row(i).to_vec())
                .collect(),
        };
        let input = PredictInput {
            texts: &texts,
            embeddings: Some(&sub_emb),
            llm: None,
            rules: Some(&sub_rules),
            rule_classes: Some(&RULE_CLASSES),
        };
        let p = predict(&enc, &s, 4, &out.best_weights, input, Device::default()).unwrap();
        let ok = p
            .iter()
            .zip(&ds.test)
            .filter(|(p, &i)| {
                (0..4).max_by(|&a, &b| p[a].total_cmp(&p[b])) == Some(ds.rows[i].label as usize)
            })
            .count();
        assert_eq!(ok as f64 / texts.len() as f64, out.test_acc);
        // Without the vectors, or with another encoder's, the head refuses clearly.
        let e = predict(
            &enc,
            &s,
            4,
            &out.best_weights,
            PredictInput {
                embeddings: None,
                ..input
            },
            Device::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("frozen-encoder head"), "{e}");
        let other = Embeddings {
            encoder_id: "other".into(),
            ..sub_emb.clone()
        };
        assert!(predict(
            &enc,
            &s,
            4,
            &out.best_weights,
            PredictInput {
                embeddings: Some(&other),
                ..input
            },
            Device::default()
        )
        .is_err());
    }
}

#[test]
fn frozen_candidates_resume_bit_for_bit() {
    let _g = lock();
    let ds = synthetic(240, 13);
    let enc = prepare_encoder(&tiny_encoder(), &ds).unwrap();
    let emb = class_vectors(&ds, enc.arch.hidden);
    let rules = rule_matrix(&ds);
    let data = TrainData {
        dataset: &ds,
        llm_features: Some(&rules),
        rule_features: Some(&rules),
        rule_classes: None,
        embeddings: Some(&emb),
    };
    let s = spec(true, true, OptimizerKind::AdamW, 1e-3);
    let mut ckpts = Vec::new();
    let mut whole = train_candidate(
        data,
        &enc,
        &s,
        &cfg(4),
        Device::default(),
        None,
        &mut |c, _| ckpts.push(c.clone()),
    )
    .unwrap();
    let mut resumed = train_candidate(
        data,
        &enc,
        &s,
        &cfg(4),
        Device::default(),
        Some(ckpts[1].clone()),
        &mut |_, _| {},
    )
    .unwrap();
    // Throughput and epoch times are measurements of this process, not results.
    for o in [&mut whole, &mut resumed] {
        o.examples_per_sec = 0.0;
        o.curve.iter_mut().for_each(|e| e.secs = 0.0);
    }
    assert_eq!(whole.curve, resumed.curve);
    assert_eq!(whole.test_acc, resumed.test_acc);
    assert!(
        whole.best_weights == resumed.best_weights,
        "best weights differ"
    );
}

#[test]
fn embed_pools_and_normalises() {
    let _g = lock();
    let ds = synthetic(40, 14);
    let enc = prepare_encoder(&tiny_encoder(), &ds).unwrap();
    let texts: Vec<&str> = ds.rows.iter().map(|r| r.question.as_str()).collect();
    let mut calls = 0;
    let mean = embed(
        &enc,
        &texts,
        Pooling::Mean,
        Device::default(),
        &mut |done, total| {
            calls += 1;
            assert!(done <= total);
        },
    )
    .unwrap();
    assert!(calls >= 1);
    assert_eq!((mean.rows, mean.dim, mean.data.len()), (40, 32, 40 * 32));
    let cls = embed(
        &enc,
        &texts,
        Pooling::Cls,
        Device::default(),
        &mut |_, _| {},
    )
    .unwrap();
    assert_ne!(mean.data, cls.data);
    assert_ne!(mean.identity(), cls.identity());
    for e in [&mean, &cls] {
        for i in 0..e.rows {
            let norm: f32 = e.row(i).iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - (32f32).sqrt()).abs() < 1e-3, "{norm}");
        }
    }
    // Batching by length does not change a text's vector.
    let one = embed(
        &enc,
        &texts[3..4],
        Pooling::Mean,
        Device::default(),
        &mut |_, _| {},
    )
    .unwrap();
    for (a, b) in one.row(0).iter().zip(mean.row(3)) {
        assert!((a - b).abs() < 1e-3, "{a} vs {b}");
    }
}

/// SPEC §6: a non-finite loss in a late epoch ends training there, and the candidate keeps
/// its best finite epoch's accuracy and weights. (Epochs 1-2 train on clean vectors; the
/// resume from epoch 2's checkpoint sees one training row's vector blown up to 1e37, which
/// drives SGD's weights and then the loss past f32's range: NaN in epoch 4 here.)
#[test]
fn a_late_divergence_keeps_the_best_finite_epoch() {
    let _g = lock();
    let ds = synthetic(240, 15);
    let enc = prepare_encoder(&tiny_encoder(), &ds).unwrap();
    let emb = class_vectors(&ds, enc.arch.hidden);
    let data = TrainData {
        dataset: &ds,
        llm_features: None,
        rule_features: None,
        rule_classes: None,
        embeddings: Some(&emb),
    };
    let s = spec(false, false, OptimizerKind::SgdMomentum, 3e-2);
    let mut ckpts = Vec::new();
    train_candidate(
        data,
        &enc,
        &s,
        &cfg(2),
        Device::default(),
        None,
        &mut |c, _| ckpts.push(c.clone()),
    )
    .unwrap();
    let at2 = ckpts[1].clone();
    let mut poisoned = emb.clone();
    let row = ds.train[0];
    for v in &mut poisoned.data[row * emb.dim..(row + 1) * emb.dim] {
        *v = 1e37;
    }
    let out = train_candidate(
        TrainData {
            embeddings: Some(&poisoned),
            ..data
        },
        &enc,
        &s,
        &cfg(4),
        Device::default(),
        Some(at2.clone()),
        &mut |_, _| {},
    )
    .unwrap();
    assert!(out.failed.is_none(), "{:?}", out.failed);
    let last = out.curve.last().unwrap();
    assert!(last.epoch >= 3, "{:?}", out.curve);
    assert!(!last.train_loss.is_finite(), "{:?}", out.curve);
    let finite = &out.curve[..out.curve.len() - 1];
    assert!(finite.iter().all(|e| e.train_loss.is_finite()));
    let best = finite.iter().map(|e| e.valid_acc).fold(0.0, f64::max);
    assert_eq!(out.best_valid_acc, best);
    assert!(out.best_epoch >= at2.best_epoch && out.best_epoch < last.epoch);
    assert!(!out.best_weights.is_empty());
    // The kept weights are the best epoch's: evaluated again, they give its test accuracy.
    let again = evaluate(
        &enc,
        &s,
        &out.best_weights,
        data,
        &ds.test,
        Device::default(),
    )
    .unwrap();
    assert_eq!(again, out.test_acc);
    assert!(out.test_acc > 0.5, "{}", out.test_acc);
}

/// Vectors with no class signal, followed by one block of per-class evidence in which
/// the row's own class is usually, not always, the highest.
fn noise_with_evidence(ds: &Dataset, dim: usize) -> Embeddings {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let classes = ds.classes.len();
    let mut data = Vec::new();
    for r in &ds.rows {
        data.extend((0..dim).map(|_| rng.random_range(-1.0f32..1.0)));
        data.extend((0..classes).map(|c| {
            let own = if c == r.label as usize { 0.3 } else { 0.0 };
            own + rng.random_range(0.0f32..0.6)
        }));
    }
    Embeddings {
        pooling: Pooling::Mean,
        dim: dim + classes,
        rows: ds.rows.len(),
        data,
        encoder_id: "test+neighbours/4".into(),
    }
}

#[test]
fn the_evidence_head_scores_classes_from_their_own_evidence() {
    let _g = lock();
    let ds = synthetic(400, 13);
    let enc = prepare_encoder(&tiny_encoder(), &ds).unwrap();
    let emb = noise_with_evidence(&ds, enc.arch.hidden);
    let rules = rule_matrix(&ds);
    let data = with_rules(&ds, &rules, &emb);
    // The evidence alone: own class highest with probability about 0.8.
    let evidence_top1 = ds
        .test
        .iter()
        .filter(|&&i| {
            let block = &emb.row(i)[enc.arch.hidden..];
            (0..4).max_by(|&a, &b| block[a].total_cmp(&block[b])) == Some(ds.rows[i].label as usize)
        })
        .count() as f64
        / ds.test.len() as f64;
    let mut c = cfg(8);
    c.branch_pool = BranchPool::PerClass;
    c.head = HeadKind::Evidence;
    for s in [
        spec(false, false, OptimizerKind::AdamW, 1e-2),
        spec(false, true, OptimizerKind::AdamW, 1e-2),
    ] {
        let out =
            train_candidate(data, &enc, &s, &c, Device::default(), None, &mut |_, _| {}).unwrap();
        // The SPEC's dense head over the same values learns one weight per (class,
        // value) pair from the same rows.
        let dense = HeadKind::Dense;
        let spec_head = train_candidate(
            data,
            &enc,
            &s,
            &TrainConfig {
                head: dense,
                ..c.clone()
            },
            Device::default(),
            None,
            &mut |_, _| {},
        )
        .unwrap();
        assert!(
            out.test_acc >= evidence_top1 - 0.1 && out.test_acc > spec_head.test_acc + 0.05,
            "rules {}: test {} (dense head {}), the evidence's own top-1 {evidence_top1}: {:?}",
            s.rule_branch,
            out.test_acc,
            spec_head.test_acc,
            out.curve
        );
        assert_eq!(
            evaluate(
                &enc,
                &s,
                &out.best_weights,
                data,
                &ds.test,
                Device::default()
            )
            .unwrap(),
            out.test_acc
        );
        // Other vectors are refused, and the message names the head the weights hold.
        let e = evaluate(
            &enc,
            &s,
            &out.best_weights,
            TrainData {
                embeddings: Some(&class_vectors(&ds, enc.arch.hidden)),
                ..data
            },
            &ds.test,
            Device::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("Evidence"), "{e}");
    }
    // It needs per-class branch outputs and vectors in whole per-class blocks.
    c.branch_pool = BranchPool::GlobalMax;
    let s = spec(false, true, OptimizerKind::AdamW, 1e-2);
    let e =
        train_candidate(data, &enc, &s, &c, Device::default(), None, &mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("branch_pool"), "{e}");
    c.branch_pool = BranchPool::PerClass;
    let ragged = Embeddings {
        dim: emb.dim - 1,
        data: (0..emb.rows)
            .flat_map(|r| emb.row(r)[..emb.dim - 1].to_vec())
            .collect(),
        ..emb.clone()
    };
    let e = train_candidate(
        TrainData {
            embeddings: Some(&ragged),
            ..data
        },
        &enc,
        &s,
        &c,
        Device::default(),
        None,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("whole blocks"), "{e}");
}

/// The evidence head on device "cpu" trains on the native path: for each optimizer, a run
/// resumed from a checkpoint ends bit for bit as the whole run; a checkpoint continues on
/// the trainer that wrote it (burn's from "cpu:flex" or an earlier release, the native
/// one's even on "cpu:flex"); and the native run learns the task as well as burn's (different dropout masks
/// and rounding, so close, not equal).
/// A candidate's outcome with its timings zeroed (to compare runs), and its checkpoints.
fn train_timeless(
    data: TrainData,
    enc: &EncoderAssets,
    s: &ModelSpec,
    c: &TrainConfig,
    device: Device,
    resume: Option<Checkpoint>,
) -> (TrainOutcome, Vec<Checkpoint>) {
    let mut ckpts = Vec::new();
    let mut out = train_candidate(data, enc, s, c, device, resume, &mut |ck, _| {
        ckpts.push(ck.clone())
    })
    .unwrap();
    out.examples_per_sec = 0.0;
    out.curve.iter_mut().for_each(|e| e.secs = 0.0);
    (out, ckpts)
}

/// A synthetic set of `rows` rows whose per-class evidence is the only signal, with rule
/// features and a judge, for Models 1-4 of the evidence head.
struct EvidenceFixture {
    ds: Dataset,
    enc: EncoderAssets,
    emb: Embeddings,
    rules: FeatureMatrix,
    judge: FeatureMatrix,
}

impl EvidenceFixture {
    fn new(rows: usize) -> Self {
        let ds = synthetic(rows, 13);
        let enc = prepare_encoder(&tiny_encoder(), &ds).unwrap();
        let emb = noise_with_evidence(&ds, enc.arch.hidden);
        let rules = rule_matrix(&ds);
        // The judge: one column per class (the rule matrix's first four are keyword hits
        // of the four classes).
        let judge = FeatureMatrix {
            rows: rules.rows,
            cols: 4,
            data: rules
                .data
                .chunks(rules.cols)
                .flat_map(|r| r[..4].to_vec())
                .collect(),
        };
        EvidenceFixture {
            ds,
            enc,
            emb,
            rules,
            judge,
        }
    }

    fn data(&self) -> TrainData<'_> {
        TrainData {
            llm_features: Some(&self.judge),
            ..with_rules(&self.ds, &self.rules, &self.emb)
        }
    }
}

#[test]
fn native_evidence_heads_resume_bit_for_bit_and_learn_as_burn_does() {
    let _g = lock();
    let f = EvidenceFixture::new(240);
    let (enc, data) = (&f.enc, f.data());
    let mut c = cfg(4);
    c.branch_pool = BranchPool::PerClass;
    c.head = HeadKind::Evidence;
    let flex = parse_device("cpu:flex").unwrap();
    let run = |s: &ModelSpec, device: Device, resume: Option<Checkpoint>| {
        train_timeless(data, enc, s, &c, device, resume)
    };
    for opt in [
        OptimizerKind::AdamW,
        OptimizerKind::SgdMomentum,
        OptimizerKind::RmsProp,
    ] {
        let lr = if opt == OptimizerKind::SgdMomentum {
            1e-2
        } else {
            1e-3
        };
        let s = spec(true, true, opt, lr);
        let (native, ckpts) = run(&s, Device::default(), None);
        let (resumed, _) = run(&s, Device::default(), Some(ckpts[1].clone()));
        assert_eq!(native.curve, resumed.curve, "{opt:?}: native resumed");
        assert!(
            native.best_weights == resumed.best_weights,
            "{opt:?}: native weights"
        );

        let (burn, burn_ckpts) = run(&s, flex, None);
        let (burn_resumed, _) = run(&s, Device::default(), Some(burn_ckpts[1].clone()));
        assert_eq!(burn.curve, burn_resumed.curve, "{opt:?}: burn's checkpoint");
        assert!(
            burn.best_weights == burn_resumed.best_weights,
            "{opt:?}: burn's weights"
        );
        // Different dropout masks: equal weights would mean the native path did not run.
        assert!(
            native.best_weights != burn.best_weights,
            "{opt:?}: one trainer ran"
        );
        assert!(
            (native.best_valid_acc - burn.best_valid_acc).abs() <= 0.1,
            "{opt:?}: native {} against burn {} valid",
            native.best_valid_acc,
            burn.best_valid_acc
        );
    }
}

#[test]
fn lexical_dropout_trains_on_hidden_evidence_alike_on_both_trainers_and_resumes() {
    let _g = lock();
    let f = EvidenceFixture::new(400);
    let (enc, data) = (&f.enc, f.data());
    let mut c = cfg(8);
    c.branch_pool = BranchPool::PerClass;
    c.head = HeadKind::Evidence;
    // Model 4: the evidence blocks and both branches are hidden.
    let s = spec(true, true, OptimizerKind::AdamW, 1e-2);
    let run = |c: &TrainConfig, device: Device, resume: Option<Checkpoint>| {
        train_timeless(data, enc, &s, c, device, resume)
    };
    let (plain, _) = run(&c, Device::default(), None);
    c.lexical_dropout = Some(LexicalDropout {
        rate: 0.5,
        from_block: 0,
    });
    let flex = parse_device("cpu:flex").unwrap();
    let (native, ckpts) = run(&c, Device::default(), None);
    let (resumed, _) = run(&c, Device::default(), Some(ckpts[1].clone()));
    let (burn, _) = run(&c, flex, None);
    assert!(native.best_weights != plain.best_weights, "the dropout ran");
    assert_eq!(native.curve, resumed.curve, "resumed: the same rows hidden");
    assert!(native.best_weights == resumed.best_weights);
    // The evidence is the only signal here (its own top-1 is about 0.8): hidden in half
    // the rows, it is still learnt.
    assert!(
        native.best_valid_acc > 0.6,
        "{} (without the dropout {})",
        native.best_valid_acc,
        plain.best_valid_acc
    );
    assert!(
        (native.best_valid_acc - burn.best_valid_acc).abs() <= 0.1,
        "native {} against burn {} valid",
        native.best_valid_acc,
        burn.best_valid_acc
    );
}

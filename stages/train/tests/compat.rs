//! Weights stored by an earlier release still load and predict the same probabilities.
//! The fixture was written by the release before the frozen-encoder head (Model 4,
//! per-class pooling, both branches); regenerate it only on purpose, with
//! `HHNAS_WRITE_FIXTURES=1 cargo test -p hhnas-train --test compat`.

mod common;

use std::path::PathBuf;

use common::*;
use hhnas_train::*;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compat-m4")
}

fn llm_matrix(ds: &Dataset) -> FeatureMatrix {
    let mut data = Vec::new();
    for (i, r) in ds.rows.iter().enumerate() {
        data.extend(
            (0..4u32).map(|c| u8::from(r.label == c || (i + c as usize).is_multiple_of(7))),
        );
    }
    FeatureMatrix {
        rows: ds.rows.len(),
        cols: 4,
        data,
    }
}

#[test]
fn weights_of_the_previous_release_predict_the_same() {
    let ds = synthetic(160, 21);
    let rules = rule_matrix(&ds);
    let llm = llm_matrix(&ds);
    let classes: Vec<u32> = vec![0, 1, 2, 3, 0, 1, 2, 3];
    let enc = prepare_encoder(&tiny_encoder(), &ds).unwrap();
    let s = spec(true, true, OptimizerKind::AdamW, 3e-3);
    let texts: Vec<String> = ds
        .test
        .iter()
        .map(|&i| ds.rows[i].question.clone())
        .collect();
    let sub = |m: &FeatureMatrix| FeatureMatrix {
        rows: ds.test.len(),
        cols: m.cols,
        data: ds.test.iter().flat_map(|&i| m.row(i).to_vec()).collect(),
    };
    let (llm_t, rules_t) = (sub(&llm), sub(&rules));
    let run = |weights: &[u8]| {
        let input = PredictInput {
            texts: &texts,
            embeddings: None,
            llm: Some(&llm_t),
            rules: Some(&rules_t),
            rule_classes: Some(&classes),
        };
        predict(&enc, &s, 4, weights, input, Device::default()).unwrap()
    };
    let dir = fixture_dir();
    if std::env::var_os("HHNAS_WRITE_FIXTURES").is_some() {
        let data = TrainData {
            dataset: &ds,
            llm_features: Some(&llm),
            rule_features: Some(&rules),
            rule_classes: Some(&classes),
            embeddings: None,
        };
        let mut c = cfg(2);
        c.branch_pool = BranchPool::PerClass;
        let out =
            train_candidate(data, &enc, &s, &c, Device::default(), None, &mut |_, _| {}).unwrap();
        let p = run(&out.best_weights);
        std::fs::write(dir.join("weights.bin"), &out.best_weights).unwrap();
        std::fs::write(dir.join("probs.json"), serde_json::to_vec(&p).unwrap()).unwrap();
        eprintln!("wrote {}", dir.display());
        return;
    }
    let weights = std::fs::read(dir.join("weights.bin")).unwrap();
    let want: Vec<Vec<f32>> =
        serde_json::from_slice(&std::fs::read(dir.join("probs.json")).unwrap()).unwrap();
    let got = run(&weights);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        for (a, b) in g.iter().zip(w) {
            assert!((a - b).abs() < 1e-5, "{g:?} vs {w:?}");
        }
    }
}

//! Shared helpers: a synthetic keyword task and tiny model settings.
#![allow(dead_code)]

use hhnas_train::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const KEYWORDS: [&[&str]; 4] = [
    &["singer", "concert", "song"],
    &["student", "course", "grade"],
    &["flight", "airport", "airline"],
    &["car", "engine", "maker"],
];
const FILLER: &[&str] = &[
    "what", "is", "the", "name", "of", "all", "show", "list", "how", "many", "which", "are", "for",
    "each", "with", "most", "total", "number", "find", "and", "average", "count",
];

/// `n` rows, 4 classes; a row's class is given by one keyword among filler words.
/// Splits 60/20/20 in order.
pub fn synthetic(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = Vec::new();
    for i in 0..n {
        let label = (i % 4) as u32;
        let kw = KEYWORDS[label as usize];
        let len = rng.random_range(3..8);
        let pos = rng.random_range(0..len);
        let mut words = Vec::new();
        for p in 0..len {
            if p == pos {
                words.push(kw[rng.random_range(0..kw.len())].to_string());
            } else {
                words.push(FILLER[rng.random_range(0..FILLER.len())].to_string());
            }
        }
        rows.push(Row {
            question: words.join(" ") + "?",
            db_id: format!("db{label}"),
            label,
        });
    }
    let classes = (0..4)
        .map(|c| ClassInfo::without_schema(format!("db{c}")))
        .collect();
    let a = n * 6 / 10;
    let b = n * 8 / 10;
    Dataset {
        rows,
        classes,
        train: (0..a).collect(),
        valid: (a..b).collect(),
        test: (b..n).collect(),
        merge: "none".into(),
    }
}

/// Rule-like features: column c = "question contains a keyword of class c" (+ 4 noise cols).
pub fn rule_matrix(ds: &Dataset) -> FeatureMatrix {
    let cols = 8;
    let mut data = Vec::new();
    for (i, r) in ds.rows.iter().enumerate() {
        for kws in KEYWORDS {
            let hit = kws.iter().any(|k| r.question.split(' ').any(|w| w == *k));
            data.push(u8::from(hit));
        }
        for c in 0..4 {
            data.push(((i * 7 + c * 3) % 5 == 0) as u8);
        }
    }
    FeatureMatrix {
        rows: ds.rows.len(),
        cols,
        data,
    }
}

/// A synthetic set, its rule features and the tiny encoder prepared on it.
pub fn synthetic_setup(n: usize, seed: u64) -> (Dataset, FeatureMatrix, EncoderAssets) {
    let ds = synthetic(n, seed);
    let feats = rule_matrix(&ds);
    let enc = prepare_encoder(&tiny_encoder(), &ds).unwrap();
    (ds, feats, enc)
}

pub fn tiny_encoder() -> EncoderConfig {
    EncoderConfig {
        source: EncoderSource::Scratch {
            hidden: 32,
            layers: 1,
            heads: 2,
            intermediate: 64,
            vocab_size: 400,
        },
        max_len: 16,
        freeze_embeddings: false,
    }
}

pub fn spec(llm: bool, rules: bool, opt: OptimizerKind, lr: f64) -> ModelSpec {
    ModelSpec {
        llm_branch: llm,
        rule_branch: rules,
        learning_rate: lr,
        optimizer: opt,
        layer_size1: 32,
        layer_size2: 16,
        dropout: 0.1,
        kernel_size: 3,
    }
}

pub fn cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        seed: 7,
        device: NoDevice,
        patience: None,
        max_train_rows: None,
        sort_by_length: true,
        cnn_channels: 8,
        branch_pool: BranchPool::GlobalMax,
        head: hhnas_train::HeadKind::Dense,
        keep: hhnas_train::KeepEpoch::Best,
        lexical_dropout: None,
    }
}

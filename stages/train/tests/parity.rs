//! Encoder parity with Hugging Face transformers (fixtures from
//! `scripts/make-parity-fixtures.py`). Set `HHNAS_MINILM_DIR` to a real checkpoint
//! directory holding `parity.json` (written by the script's `--minilm` mode) to also check
//! real weights.

use std::path::{Path, PathBuf};

use burn::backend::ndarray::{NdArray, NdArrayDevice};
use burn::tensor::{Bool, Int, Tensor, TensorData};
use hhnas_train::internals::{load_encoder_weights, TextEncoder};
use hhnas_train::*;

type B = NdArray<f32>;

#[derive(serde::Deserialize)]
struct Expected {
    texts: Vec<String>,
    ids: Vec<Vec<u32>>,
    input_ids: Vec<Vec<i64>>,
    attention_mask: Vec<Vec<i64>>,
    last_hidden_state: Vec<Vec<Vec<f32>>>,
}

fn empty_dataset() -> Dataset {
    Dataset {
        rows: Vec::new(),
        classes: Vec::new(),
        train: Vec::new(),
        valid: Vec::new(),
        test: Vec::new(),
        merge: "none".into(),
    }
}

/// Max |burn - transformers| over non-padding positions, plus token-id equality.
fn parity(dir: &Path, max_len: usize) -> f32 {
    let cfg = EncoderConfig {
        source: EncoderSource::Dir(dir.to_path_buf()),
        max_len,
        freeze_embeddings: false,
    };
    let assets = prepare_encoder(&cfg, &empty_dataset()).expect("fixture dir is valid");
    let exp_path = if dir.join("expected.json").exists() {
        dir.join("expected.json")
    } else {
        dir.join("parity.json")
    };
    let exp: Expected = serde_json::from_str(&std::fs::read_to_string(exp_path).unwrap()).unwrap();
    let texts: Vec<&str> = exp.texts.iter().map(String::as_str).collect();
    let ids = internals::tokenize_texts(&assets, &texts).unwrap();
    assert_eq!(ids, exp.ids, "token ids differ from the Python tokenizer");

    let device = NdArrayDevice::Cpu;
    let mut enc = TextEncoder::<B>::new(&assets.arch, &device);
    let report = load_encoder_weights(&mut enc, assets.weights.as_ref().unwrap()).unwrap();
    assert!(report.missing.is_empty());
    eprintln!(
        "{}: applied {}, unused {:?}",
        dir.display(),
        report.applied.len(),
        report.unused
    );
    let (b, n) = (exp.input_ids.len(), exp.input_ids[0].len());
    let flat: Vec<i64> = exp.input_ids.concat();
    let mask: Vec<bool> = exp
        .attention_mask
        .concat()
        .iter()
        .map(|&m| m == 0)
        .collect();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [b, n]), &device);
    let mask = Tensor::<B, 2, Bool>::from_data(TensorData::new(mask, [b, n]), &device);
    let out = enc.forward(ids, mask);
    let h = out.dims()[2];
    let got: Vec<f32> = out.into_data().into_vec().unwrap();
    let mut max = 0f32;
    for s in 0..b {
        for t in 0..n {
            if exp.attention_mask[s][t] == 0 {
                continue;
            }
            for k in 0..h {
                let d = (got[(s * n + t) * h + k] - exp.last_hidden_state[s][t][k]).abs();
                max = max.max(d);
            }
        }
    }
    max
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn tiny_roberta_matches_transformers() {
    let d = parity(&fixture("tiny-roberta"), 24);
    eprintln!("tiny RoBERTa max abs diff {d:e}");
    assert!(d < 1e-4, "max abs diff {d}");
}

#[test]
fn tiny_bert_matches_transformers() {
    let d = parity(&fixture("tiny-bert"), 24);
    eprintln!("tiny BERT max abs diff {d:e}");
    assert!(d < 1e-4, "max abs diff {d}");
}

#[test]
#[ignore = "needs all-MiniLM-L6-v2's files: HHNAS_MINILM_DIR=DIR cargo test -p hhnas-train --test parity -- --ignored"]
fn real_minilm_matches_transformers() {
    let dir = std::env::var("HHNAS_MINILM_DIR")
        .expect("HHNAS_MINILM_DIR: a Hugging Face folder of all-MiniLM-L6-v2");
    let d = parity(Path::new(&dir), 64);
    eprintln!("all-MiniLM-L6-v2 max abs diff {d:e}");
    assert!(d < 1e-4, "max abs diff {d}");
}

#[test]
fn a_tiny_checkpoint_trains_as_model_4() {
    // The HF path end to end: prepare from the dir, train a few steps with both branches.
    let dir = fixture("tiny-bert");
    let cfg = EncoderConfig {
        source: EncoderSource::Dir(dir),
        max_len: 24,
        freeze_embeddings: true,
    };
    let mut ds = empty_dataset();
    for i in 0..40u32 {
        ds.rows.push(Row {
            question: if i % 2 == 0 {
                "How many singers do we have?".into()
            } else {
                "Count the number of flights for each airline.".into()
            },
            db_id: format!("db{}", i % 2),
            label: i % 2,
        });
    }
    ds.classes = (0..2)
        .map(|c| ClassInfo::without_schema(format!("db{c}")))
        .collect();
    ds.train = (0..24).collect();
    ds.valid = (24..32).collect();
    ds.test = (32..40).collect();
    let assets = prepare_encoder(&cfg, &ds).unwrap();
    let feats = FeatureMatrix {
        rows: 40,
        cols: 3,
        data: (0..120).map(|i| ((i / 3) % 2) as u8).collect(),
    };
    let spec = ModelSpec {
        llm_branch: true,
        rule_branch: true,
        learning_rate: 1e-2,
        optimizer: OptimizerKind::AdamW,
        layer_size1: 16,
        layer_size2: 8,
        dropout: 0.0,
        kernel_size: 3,
    };
    let tc = TrainConfig {
        epochs: 6,
        batch_size: 8,
        cnn_channels: 4,
        ..TrainConfig::default()
    };
    let data = TrainData {
        dataset: &ds,
        llm_features: Some(&feats),
        rule_features: Some(&feats),
        rule_classes: None,
        embeddings: None,
    };
    let out = train_candidate(
        data,
        &assets,
        &spec,
        &tc,
        Device::default(),
        None,
        &mut |_, _| {},
    )
    .unwrap();
    assert!(out.failed.is_none());
    // Two classes of one fixed question each: a constant predictor scores 0.5 on the
    // balanced validation rows, a model that learned anything scores all of them.
    assert_eq!(out.best_valid_acc, 1.0, "{:?}", out.curve);
}

#[test]
fn missing_encoder_tensors_fail_the_load() {
    // config.json promises 3 layers; the checkpoint has 2.
    let tmp = tempfile::tempdir().unwrap();
    for f in ["model.safetensors", "tokenizer.json", "config.json"] {
        std::fs::copy(fixture("tiny-bert").join(f), tmp.path().join(f)).unwrap();
    }
    let p = tmp.path().join("config.json");
    let mut conf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    conf["num_hidden_layers"] = 3.into();
    std::fs::write(&p, conf.to_string()).unwrap();
    let cfg = EncoderConfig {
        source: EncoderSource::Dir(tmp.path().to_path_buf()),
        max_len: 24,
        freeze_embeddings: false,
    };
    let assets = prepare_encoder(&cfg, &empty_dataset()).unwrap();
    let mut enc = TextEncoder::<B>::new(&assets.arch, &NdArrayDevice::Cpu);
    let e = load_encoder_weights(&mut enc, assets.weights.as_ref().unwrap()).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    assert!(e.to_string().contains("layers.2"), "{e}");
    // A weights file changed after prepare_encoder is refused.
    std::fs::write(tmp.path().join("model.safetensors"), b"changed").unwrap();
    let e = load_encoder_weights(&mut enc, assets.weights.as_ref().unwrap()).unwrap_err();
    assert!(e.to_string().contains("re-run the encoder stage"), "{e}");
}

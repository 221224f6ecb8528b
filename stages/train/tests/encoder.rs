//! Encoder preparation: scratch tokenizer and Hugging Face directory errors.

mod common;

use common::*;
use hhnas_train::*;

#[test]
fn scratch_tokenizer_is_deterministic_and_train_only() {
    let mut ds = synthetic(200, 1);
    // A word that appears only in validation rows must not enter the vocabulary.
    let v = ds.valid[0];
    ds.rows[v].question = "zyzzyvaquux zyzzyvaquux zyzzyvaquux".into();
    let a = prepare_encoder(&tiny_encoder(), &ds).unwrap();
    let b = prepare_encoder(&tiny_encoder(), &ds).unwrap();
    assert_eq!(a.tokenizer_json, b.tokenizer_json);
    assert_eq!(a, b);
    assert!(!a.tokenizer_json.contains("zyzzyvaquux"));
    assert!(a.arch.vocab_size <= 200 && a.arch.vocab_size > 50);
    let ids = internals::tokenize_texts(&a, &["what is the singer name?"]).unwrap();
    assert_eq!(ids[0][0], 2, "[CLS] first");
    assert_eq!(*ids[0].last().unwrap(), 3, "[SEP] last");
    let long = vec!["singer"; 100].join(" ");
    let ids = internals::tokenize_texts(&a, &[long.as_str()]).unwrap();
    assert_eq!(ids[0].len(), 16, "truncated to max_len");
    // Serializable for the engine's store.
    let j = serde_json::to_string(&a).unwrap();
    let back: EncoderAssets = serde_json::from_str(&j).unwrap();
    assert_eq!(back, a);
}

#[test]
fn bad_encoder_configs() {
    let ds = synthetic(40, 2);
    let mut c = tiny_encoder();
    c.source = EncoderSource::Hf("roberta-base".into());
    let e = prepare_encoder(&c, &ds).unwrap_err();
    assert!(e
        .to_string()
        .contains("not available offline: download to a dir and use dir:PATH"));
    c.source = EncoderSource::Scratch {
        hidden: 30,
        layers: 1,
        heads: 4,
        intermediate: 8,
        vocab_size: 200,
    };
    assert!(prepare_encoder(&c, &ds)
        .unwrap_err()
        .to_string()
        .contains("heads"));
    c = tiny_encoder();
    c.max_len = 0;
    assert!(prepare_encoder(&c, &ds)
        .unwrap_err()
        .to_string()
        .contains("max_len"));
}

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// A safetensors file holding one F32 tensor `name` of `shape` (zeros).
fn safetensors(name: &str, shape: [usize; 2]) -> Vec<u8> {
    let n = shape[0] * shape[1] * 4;
    let header = format!(
        "{{\"{name}\":{{\"dtype\":\"F32\",\"shape\":[{},{}],\"data_offsets\":[0,{n}]}}}}",
        shape[0], shape[1]
    );
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(0u8, n));
    out
}

#[test]
fn hf_dir_errors_name_the_file_and_fix() {
    let ds = synthetic(40, 3);
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cfg = EncoderConfig {
        source: EncoderSource::Dir(d.to_path_buf()),
        max_len: 16,
        freeze_embeddings: false,
    };
    let e = prepare_encoder(&cfg, &ds).unwrap_err();
    assert!(e.to_string().contains("config.json"), "{e}");

    write(
        d,
        "config.json",
        r#"{"model_type": "gpt2", "hidden_size": 8}"#,
    );
    let e = prepare_encoder(&cfg, &ds).unwrap_err();
    assert!(
        e.to_string()
            .contains("model_type = \"gpt2\" is not supported"),
        "{e}"
    );

    write(
        d,
        "config.json",
        r#"{"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 16, "vocab_size": 10,
            "max_position_embeddings": 32, "type_vocab_size": 2, "layer_norm_eps": 1e-12}"#,
    );
    let e = prepare_encoder(&cfg, &ds).unwrap_err();
    assert!(e.to_string().contains("tokenizer.json"), "{e}");

    // A valid tokenizer.json: reuse a scratch one.
    let scratch = prepare_encoder(&tiny_encoder(), &ds).unwrap();
    write(d, "tokenizer.json", &scratch.tokenizer_json);
    let e = prepare_encoder(&cfg, &ds).unwrap_err();
    assert!(e.to_string().contains("model.safetensors"), "{e}");

    std::fs::write(
        d.join("model.safetensors"),
        safetensors("bert.embeddings.word_embeddings.weight", [10, 16]),
    )
    .unwrap();
    let e = prepare_encoder(&cfg, &ds).unwrap_err();
    assert!(e.to_string().contains("hidden size mismatch"), "{e}");
    assert_eq!(e.exit_code(), 2);

    std::fs::write(
        d.join("model.safetensors"),
        safetensors("bert.embeddings.word_embeddings.weight", [10, 8]),
    )
    .unwrap();
    let ok = prepare_encoder(&cfg, &ds).unwrap();
    assert_eq!(ok.arch.kind, ArchKind::Bert);
    assert!(ok.weights.is_some());
    // Too long max_len for the checkpoint's positions.
    let mut long = cfg.clone();
    long.max_len = 64;
    let e = prepare_encoder(&long, &ds).unwrap_err();
    assert!(e.to_string().contains("[encoder] max_len"), "{e}");
    // Loading the encoder fails because nearly every tensor is missing.
    let ds = synthetic(40, 3);
    let s = spec(false, false, OptimizerKind::AdamW, 1e-3);
    let data = TrainData {
        dataset: &ds,
        llm_features: None,
        rule_features: None,
    };
    // Token ids of the scratch tokenizer exceed vocab 10: clear tokenizer error first.
    let e = train_candidate(data, &ok, &s, &cfg_epochs(), None, &mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("vocab_size"), "{e}");
}

fn cfg_epochs() -> TrainConfig {
    cfg(1)
}

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
    // RoBERTa layout: byte-level BPE (256 byte symbols + 5 specials + merges).
    assert_eq!(a.arch.kind, ArchKind::Roberta);
    assert_eq!((a.arch.pad_token_id, a.arch.type_vocab_size), (1, 1));
    assert!(
        a.arch.vocab_size > 261 && a.arch.vocab_size <= 400,
        "{}",
        a.arch.vocab_size
    );
    let ids = internals::tokenize_texts(&a, &["what is the singer name?"]).unwrap();
    assert_eq!(ids[0][0], 0, "<s> first");
    assert_eq!(*ids[0].last().unwrap(), 2, "</s> last");
    // Frequent training words became single tokens: <s> singer </s>.
    let ids = internals::tokenize_texts(&a, &["singer"]).unwrap();
    assert_eq!(ids[0].len(), 3, "{ids:?}");
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
    c.source = EncoderSource::Hf("a/b/c".into());
    let e = prepare_encoder(&c, &ds).unwrap_err();
    assert!(e.to_string().contains("expected hf:ORG/NAME"), "{e}");
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
    let data = TrainData::text_only(&ds);
    // Token ids of the scratch tokenizer exceed vocab 10: clear tokenizer error first.
    let e = train_candidate(
        data,
        &ok,
        &s,
        &cfg_epochs(),
        Device::default(),
        None,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("vocab_size"), "{e}");
}

fn cfg_epochs() -> TrainConfig {
    cfg(1)
}

/// A minimal Hugging Face hub on 127.0.0.1 serving the tiny RoBERTa fixture as
/// `tester/tiny-roberta`: what hf-hub's sync client asks for (a `bytes=0-0` probe answered
/// with ETag and X-Repo-Commit, then a ranged GET). Returns the endpoint and a hit counter.
fn serve_hub() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-roberta");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut out) = stream else { continue };
            let mut reader = BufReader::new(out.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut range = String::from("0-");
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = v.trim().to_string();
                }
            }
            let file = path
                .strip_prefix("/tester/tiny-roberta/resolve/main/")
                .and_then(|f| std::fs::read(dir.join(f)).ok());
            let Some(bytes) = file else {
                let _ = out.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let (a, b) = range.split_once('-').unwrap();
            let start: usize = a.parse().unwrap();
            let end: usize = b.parse().unwrap_or(bytes.len() - 1);
            let body = &bytes[start..=end];
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{end}/{}\r\nETag: \"{}\"\r\nX-Repo-Commit: 0123456789abcdef0123456789abcdef01234567\r\nConnection: close\r\n\r\n",
                body.len(),
                bytes.len(),
                blake3::hash(&bytes).to_hex()
            );
            let _ = out.write_all(head.as_bytes());
            let _ = out.write_all(body);
        }
    });
    (endpoint, hits)
}

#[test]
fn hf_source_downloads_once_then_uses_the_cache() {
    use std::sync::atomic::Ordering;
    let (endpoint, hits) = serve_hub();
    let cache = tempfile::tempdir().unwrap();
    let opts = HubOptions {
        endpoint: Some(endpoint),
        cache_dir: Some(cache.path().to_path_buf()),
    };
    let dir = hf_download("tester/tiny-roberta", &opts).unwrap();
    assert!(dir.starts_with(cache.path()), "{}", dir.display());
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-roberta");
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        assert_eq!(
            std::fs::read(dir.join(f)).unwrap(),
            std::fs::read(fixture.join(f)).unwrap(),
            "{f}"
        );
    }
    // The downloaded directory is a normal model directory.
    let ds = synthetic(40, 3);
    let mut c = tiny_encoder();
    c.source = EncoderSource::Dir(dir.clone());
    let from_hub = prepare_encoder(&c, &ds).unwrap();
    c.source = EncoderSource::Dir(fixture);
    let from_fixture = prepare_encoder(&c, &ds).unwrap();
    assert_eq!(from_hub.arch, from_fixture.arch);
    assert_eq!(
        from_hub.weights.as_ref().unwrap().blake3,
        from_fixture.weights.unwrap().blake3
    );
    // Probe + ranged GET per file; a second call is served from the cache.
    let after_first = hits.load(Ordering::SeqCst);
    assert_eq!(after_first, 6);
    assert_eq!(hf_download("tester/tiny-roberta", &opts).unwrap(), dir);
    assert_eq!(hits.load(Ordering::SeqCst), after_first);
    // A model the hub does not have, and a hub that does not answer: clear errors.
    let e = hf_download("tester/missing", &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("hf:tester/missing") && e.contains("config.json"),
        "{e}"
    );
    let offline = HubOptions {
        endpoint: Some("http://127.0.0.1:1".into()),
        cache_dir: Some(cache.path().join("other")),
    };
    let e = hf_download("tester/tiny-roberta", &offline)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot download config.json") && e.contains("dir:PATH"),
        "{e}"
    );
}

//! The native CPU encoder path against burn's encoder (the reference) and Hugging Face
//! transformers: the same hidden states to 1e-4, and the same bits run to run and for any
//! thread count.

use std::path::{Path, PathBuf};

use burn::backend::flex::{Flex, FlexDevice};
use burn::backend::ndarray::{NdArray, NdArrayDevice};
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use hhnas_train::internals::{load_encoder_weights, NativeEncoder, TextEncoder};
use hhnas_train::*;

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

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn assets_of(dir: &Path, max_len: usize) -> EncoderAssets {
    let cfg = EncoderConfig {
        source: EncoderSource::Dir(dir.to_path_buf()),
        max_len,
        freeze_embeddings: false,
    };
    prepare_encoder(&cfg, &empty_dataset()).expect("a valid encoder dir")
}

/// burn's last hidden state of right-padded `seqs`, `[b, n, h]` flattened.
fn burn_hidden<B: Backend>(enc: &TextEncoder<B>, seqs: &[Vec<u32>], pad: u32) -> (Vec<f32>, usize) {
    let device = Default::default();
    let n = seqs.iter().map(Vec::len).max().unwrap();
    let ids: Vec<i64> = seqs
        .iter()
        .flat_map(|s| (0..n).map(|p| s.get(p).copied().unwrap_or(pad) as i64))
        .collect();
    let mask: Vec<bool> = seqs
        .iter()
        .flat_map(|s| (0..n).map(move |p| p >= s.len()))
        .collect();
    let b = seqs.len();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [b, n]), &device);
    let mask = Tensor::<B, 2, Bool>::from_data(TensorData::new(mask, [b, n]), &device);
    (enc.forward(ids, mask).into_data().into_vec().unwrap(), n)
}

/// Max |native - burn| over the real tokens of `seqs`.
fn native_vs_burn<B: Backend>(enc: &TextEncoder<B>, arch: &EncoderArch, seqs: &[Vec<u32>]) -> f32 {
    let native = NativeEncoder::from_module(enc, arch).unwrap();
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let (got, spans) = native.forward(&refs).unwrap();
    let (want, n) = burn_hidden(enc, seqs, arch.pad_token_id);
    let h = arch.hidden;
    let mut max = 0f32;
    for (s, sp) in spans.iter().enumerate() {
        for p in 0..sp.len {
            for k in 0..h {
                let d = got[(sp.start + p) * h + k] - want[(s * n + p) * h + k];
                max = max.max(d.abs());
            }
        }
    }
    max
}

#[derive(serde::Deserialize)]
struct Expected {
    ids: Vec<Vec<u32>>,
    last_hidden_state: Vec<Vec<Vec<f32>>>,
}

/// Max |native - transformers| on a parity fixture (`expected.json` or `parity.json`).
fn native_vs_transformers(dir: &Path, max_len: usize) -> f32 {
    let assets = assets_of(dir, max_len);
    let file = ["expected.json", "parity.json"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
        .expect("a parity file");
    let exp: Expected = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let mut enc = TextEncoder::<Flex>::new(&assets.arch, &FlexDevice);
    load_encoder_weights(&mut enc, assets.weights.as_ref().unwrap()).unwrap();
    let native = NativeEncoder::from_module(&enc, &assets.arch).unwrap();
    let refs: Vec<&[u32]> = exp.ids.iter().map(Vec::as_slice).collect();
    let (got, spans) = native.forward(&refs).unwrap();
    let h = assets.arch.hidden;
    let mut max = 0f32;
    for (s, sp) in spans.iter().enumerate() {
        for p in 0..sp.len {
            for k in 0..h {
                let d = got[(sp.start + p) * h + k] - exp.last_hidden_state[s][p][k];
                max = max.max(d.abs());
            }
        }
    }
    max
}

#[test]
fn tiny_fixtures_match_transformers_and_burn() {
    for (name, kind) in [
        ("tiny-bert", ArchKind::Bert),
        ("tiny-roberta", ArchKind::Roberta),
    ] {
        let d = native_vs_transformers(&fixture(name), 24);
        eprintln!("{name}: native vs transformers {d:e}");
        assert!(d < 1e-4, "{name}: {d}");
        let assets = assets_of(&fixture(name), 24);
        assert_eq!(assets.arch.kind, kind);
        let seqs = internals::tokenize_texts(
            &assets,
            &["How many singers do we have?", "Show the car makers.", "x"],
        )
        .unwrap();
        let mut enc = TextEncoder::<NdArray<f32>>::new(&assets.arch, &NdArrayDevice::Cpu);
        load_encoder_weights(&mut enc, assets.weights.as_ref().unwrap()).unwrap();
        let d = native_vs_burn(&enc, &assets.arch, &seqs);
        eprintln!("{name}: native vs burn {d:e}");
        assert!(d < 1e-4, "{name}: {d}");
    }
}

/// all-MiniLM-L6-v2's shape (2 of its 6 layers, a small vocabulary), burn's seeded random
/// weights: sequences of 1 to 40 tokens in one packed batch.
#[test]
fn minilm_shaped_random_encoder_matches_burn() {
    let arch = EncoderArch {
        kind: ArchKind::Bert,
        hidden: 384,
        layers: 2,
        heads: 12,
        intermediate: 1536,
        vocab_size: 1000,
        max_positions: 512,
        type_vocab_size: 2,
        pad_token_id: 0,
        layer_norm_eps: 1e-12,
        hidden_dropout: 0.1,
    };
    Flex::seed(&FlexDevice, 7);
    let enc = TextEncoder::<Flex>::new(&arch, &FlexDevice);
    let seqs: Vec<Vec<u32>> = [1usize, 5, 17, 40, 9]
        .iter()
        .enumerate()
        .map(|(s, &len)| {
            (0..len)
                .map(|p| ((s * 131 + p * 37) % 997 + 1) as u32)
                .collect()
        })
        .collect();
    let d = native_vs_burn(&enc, &arch, &seqs);
    eprintln!("MiniLM-shaped random: native vs burn {d:e}");
    assert!(d < 1e-4, "{d}");
    // RoBERTa layout: positions start at pad + 1.
    let arch = EncoderArch {
        kind: ArchKind::Roberta,
        pad_token_id: 1,
        type_vocab_size: 1,
        layer_norm_eps: 1e-5,
        ..arch
    };
    let enc = TextEncoder::<Flex>::new(&arch, &FlexDevice);
    let d = native_vs_burn(&enc, &arch, &seqs);
    assert!(d < 1e-4, "roberta layout: {d}");
}

#[test]
fn native_errors_are_typed() {
    let assets = assets_of(&fixture("tiny-bert"), 24);
    let enc = TextEncoder::<Flex>::new(&assets.arch, &FlexDevice);
    let native = NativeEncoder::from_module(&enc, &assets.arch).unwrap();
    let long = vec![5u32; assets.arch.max_positions + 1];
    let e = native.forward(&[&long]).unwrap_err();
    assert!(e.to_string().contains("positions"), "{e}");
    let bad = [assets.arch.vocab_size as u32];
    let e = native.forward(&[&bad]).unwrap_err();
    assert!(e.to_string().contains("vocabulary"), "{e}");
}

fn texts() -> Vec<String> {
    (0..150)
        .map(|i| {
            let words = [
                "how", "many", "singers", "flights", "car", "makers", "average", "age",
            ];
            (0..(1 + i % 19))
                .map(|k| words[(i * 3 + k * 5) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn embed_on_cpu_is_native_close_to_burn_and_bitwise_stable() {
    let assets = assets_of(&fixture("tiny-bert"), 24);
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for pooling in [Pooling::Mean, Pooling::Cls] {
        let native = embed(&assets, &refs, pooling, Device::default(), &mut |_, _| {}).unwrap();
        let burn = embed(
            &assets,
            &refs,
            pooling,
            Device::Cpu(CpuKind::Flex),
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(native.encoder_id, burn.encoder_id);
        assert_eq!((native.rows, native.dim), (burn.rows, burn.dim));
        let d = native
            .data
            .iter()
            .zip(&burn.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{pooling:?}: embed cpu vs cpu:flex {d:e}");
        assert!(d < 1e-4, "{pooling:?}: {d}");
        // Same bits with one thread and with three.
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut calls = 0;
            let again = pool
                .install(|| {
                    embed(&assets, &refs, pooling, Device::default(), &mut |_, _| {
                        calls += 1
                    })
                })
                .unwrap();
            assert!(native
                .data
                .iter()
                .zip(&again.data)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            assert!(calls >= 1);
        }
    }
}

/// The real all-MiniLM-L6-v2: `HHNAS_MINILM_DIR` is its folder with `parity.json` from
/// `scripts/make-parity-fixtures.py --minilm DIR`.
#[test]
#[ignore = "needs the all-MiniLM-L6-v2 weights: set HHNAS_MINILM_DIR (see the doc comment)"]
fn real_minilm_native_matches_transformers_and_burn() {
    let dir = PathBuf::from(std::env::var("HHNAS_MINILM_DIR").expect("HHNAS_MINILM_DIR"));
    let d = native_vs_transformers(&dir, 64);
    eprintln!("all-MiniLM-L6-v2: native vs transformers {d:e}");
    assert!(d < 1e-4, "{d}");
    let assets = assets_of(&dir, 64);
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let native = embed(
        &assets,
        &refs,
        Pooling::Mean,
        Device::default(),
        &mut |_, _| {},
    )
    .unwrap();
    let burn = embed(
        &assets,
        &refs,
        Pooling::Mean,
        Device::Cpu(CpuKind::Flex),
        &mut |_, _| {},
    )
    .unwrap();
    let d = native
        .data
        .iter()
        .zip(&burn.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("all-MiniLM-L6-v2: embed cpu vs cpu:flex {d:e}");
    assert!(d < 1e-4, "{d}");
    let seqs = internals::tokenize_texts(&assets, &refs[..20]).unwrap();
    let mut enc = TextEncoder::<Flex>::new(&assets.arch, &FlexDevice);
    load_encoder_weights(&mut enc, assets.weights.as_ref().unwrap()).unwrap();
    let enc = enc.no_grad();
    let d = native_vs_burn(&enc, &assets.arch, &seqs);
    eprintln!("all-MiniLM-L6-v2: hidden states native vs burn {d:e}");
    assert!(d < 1e-4, "{d}");
}

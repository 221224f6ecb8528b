//! The `encoder` node: the text encoder (architecture, tokenizer, pretrained weights if
//! any) every candidate starts from.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use hhnas_data::Dataset;
use hhnas_train::{EncoderAssets, EncoderConfig, EncoderSource};

use crate::config::{encoder_config, PipelineConfig};
use crate::dag::Replay;
use crate::dag::Stage;
use crate::error::ExitClass;
use hhnas_engine::store::Key;

/// A pretrained model is part of the key through its files' bytes, not its path or hub
/// id: moving a `dir:` keeps every trained candidate, and a hub branch that moved is seen.
/// `dir:` keys exactly as before (path blanked); `hf:` and `pypi:` are downloaded first.
fn encoder_key(enc: &EncoderConfig, ds_key: Key) -> Result<Key> {
    let mut kb = Stage::Encoder.key();
    kb.input(&ds_key);
    if let Some(dir) = enc.source.model_dir().map_err(ExitClass::classified)? {
        let mut keyed = enc.clone();
        if matches!(keyed.source, EncoderSource::Dir(_)) {
            keyed.source = EncoderSource::Dir(PathBuf::new());
        }
        kb.param(&keyed);
        let mut files: Vec<PathBuf> = walkdir::WalkDir::new(&dir)
            .max_depth(1)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .map(|e| e.into_path())
            .collect();
        files.sort();
        for path in files {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            kb.param(&path.file_name().map(|n| n.to_string_lossy().to_string()));
            kb.bytes(blake3::hash(&bytes).as_bytes());
        }
    } else {
        kb.param(enc);
    }
    Ok(kb.finish())
}

/// The journal line of the `encoder` node.
#[derive(Serialize)]
struct EncoderMetrics {
    summary: String,
}

impl EncoderMetrics {
    fn of(assets: &EncoderAssets) -> Self {
        let a = &assets.arch;
        let summary = format!(
            "{} ({:?}, hidden {}, {} layers, {} heads, vocab {}{})",
            assets.source,
            a.kind,
            a.hidden,
            a.layers,
            a.heads,
            a.vocab_size,
            if assets.weights.is_some() {
                ", pretrained weights"
            } else {
                ", random init"
            }
        );
        EncoderMetrics { summary }
    }
}

pub(crate) fn encoder_node(
    exec: &mut Replay,
    cfg: &PipelineConfig,
    ds_key: Key,
    ds: &Dataset,
) -> Result<(Key, EncoderAssets)> {
    let enc = encoder_config(cfg);
    let key = encoder_key(&enc, ds_key)?;
    exec.expect_unchanged(
        Stage::Encoder,
        key,
        &format!("the encoder ({})", cfg.encoder.source),
    )?;
    let assets = exec.node(Stage::Encoder, None, key, |_| {
        let assets = hhnas_train::prepare_encoder(&enc, ds).map_err(ExitClass::classified)?;
        let metrics = EncoderMetrics::of(&assets);
        Ok((assets, metrics))
    })?;
    Ok((key, assets))
}

//! The `encode` node (frozen encoder): the encoder run once over every question, one
//! vector per row, so candidates train only their branches and head.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use hhnas_data::Dataset;
use hhnas_train::{Embeddings, EncoderAssets};

use crate::config::PipelineConfig;
use crate::dag::Replay;
use crate::dag::Stage;
use crate::error::ExitClass;
use hhnas_engine::store::Key;

/// The journal line of the `encode` node.
#[derive(Serialize)]
struct EncodeMetrics {
    summary: String,
    rows: usize,
    dim: usize,
    examples_per_sec: f64,
    compute_secs: f64,
}

/// Keyed by the dataset, the encoder (whose key holds its weights' bytes) and the pooling.
pub(crate) fn encode_node(
    exec: &mut Replay,
    cfg: &PipelineConfig,
    ds_key: Key,
    ds: &Dataset,
    enc_key: Key,
    enc: &EncoderAssets,
) -> Result<(Key, Embeddings)> {
    let pooling = cfg.encoder.pooling;
    let mut key = Stage::Encode.key();
    key.input(&ds_key).input(&enc_key).param(&pooling);
    // A GPU's vectors differ from the CPU's in the last bits, so runs on different devices
    // (`run --devices cpu,cuda:0`) must not share one entry. CPU runs keep the key they
    // always had.
    if let hhnas_train::Device::Cuda(_) = cfg.train.device.parsed() {
        key.param(&cfg.train.device.as_str());
    }
    let key = exec.kept_key::<Embeddings>(Stage::Encode, key.finish());
    let progress = exec.progress;
    let emb = exec.node(Stage::Encode, None, key, |_| {
        let texts: Vec<&str> = ds.rows.iter().map(|r| r.question.as_str()).collect();
        let started = Instant::now();
        let mut last = Instant::now();
        let mut report = |done: usize, total: usize| {
            if done == total || last.elapsed().as_secs_f64() >= 5.0 {
                last = Instant::now();
                progress.message(&format!("encode: {done}/{total} questions"));
            }
        };
        let emb = hhnas_train::embed(enc, &texts, pooling, cfg.train.device.parsed(), &mut report)
            .map_err(ExitClass::classified)?;
        let secs = started.elapsed().as_secs_f64();
        let rate = texts.len() as f64 / secs.max(1e-9);
        let metrics = EncodeMetrics {
            // The rate is a measurement, not a result: kept out of the summary, so the
            // journal of a resumed run equals an uninterrupted one's.
            summary: format!(
                "{} questions -> {} values each ({} pooling)",
                emb.rows,
                emb.dim,
                pooling.name()
            ),
            rows: emb.rows,
            dim: emb.dim,
            examples_per_sec: rate,
            compute_secs: secs,
        };
        Ok((emb, metrics))
    })?;
    Ok((key, emb))
}

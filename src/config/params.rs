//! The configuration as the stage crates take it: every conversion from `pipeline.toml`
//! to a stage's parameters, in one place.

use std::path::Path;

use anyhow::Result;
use hhnas_train::{EncoderConfig, EncoderSource, TrainConfig};

use super::{read_string_map, DataSource, DeviceName, Merge, PipelineConfig, SourceSpec};
use crate::error::ExitClass;

/// The data stage's parameters; `merge = map` reads its map file here.
pub fn data_params(cfg: &PipelineConfig) -> Result<hhnas_spider::DataParams> {
    use hhnas_spider::MergeRule;
    let merge = match cfg.data.merge {
        // A labelled set's classes are its labels: nothing to merge.
        _ if cfg.data.source == DataSource::Labelled => MergeRule::None,
        Merge::None => MergeRule::None,
        Merge::Overlap => MergeRule::Overlap {
            threshold: cfg.data.overlap_threshold,
        },
        // The config check guarantees the file is named.
        Merge::Map => MergeRule::Map(read_string_map(
            cfg.data.map_file.as_deref().unwrap_or(Path::new("")),
            "data.map_file",
            "db_id -> class name",
            "{\"db_id\": \"class\", ...}",
        )?),
    };
    Ok(hhnas_spider::DataParams {
        merge,
        split_seed: cfg.data.split_seed,
        ratios: cfg.data.ratios,
        include_others: cfg.data.include_others,
    })
}

/// `[encoder]` as the training crate takes it.
pub fn encoder_config(cfg: &PipelineConfig) -> EncoderConfig {
    let e = &cfg.encoder;
    let source = match &e.source {
        SourceSpec::Dir(p) => EncoderSource::Dir(p.clone()),
        SourceSpec::Hf(id) => EncoderSource::Hf(id.clone()),
        SourceSpec::Pypi(spec) => EncoderSource::Pypi(spec.clone()),
        SourceSpec::Scratch => EncoderSource::Scratch {
            hidden: e.hidden,
            layers: e.layers,
            heads: e.heads,
            intermediate: e.intermediate,
            vocab_size: e.vocab_size,
        },
    };
    EncoderConfig {
        source,
        max_len: e.max_len,
        freeze_embeddings: e.freeze_embeddings,
    }
}

/// `[train]` (and the run's seed) as the training crate takes it.
pub fn train_config(cfg: &PipelineConfig) -> TrainConfig {
    let t = &cfg.train;
    TrainConfig {
        epochs: t.epochs,
        batch_size: t.batch_size,
        seed: cfg.run.seed,
        device: hhnas_train::NoDevice,
        patience: (t.patience > 0).then_some(t.patience),
        max_train_rows: (t.max_train_rows > 0).then_some(t.max_train_rows),
        sort_by_length: t.sort_by_length,
        cnn_channels: t.cnn_channels,
        branch_pool: t.branch_pool,
        head: t.head,
        keep: hhnas_train::KeepEpoch::Best,
        lexical_dropout: (t.lexical_dropout > 0.0).then_some(hhnas_train::LexicalDropout {
            rate: t.lexical_dropout,
            from_block: crate::dag::Evidence::first_lexical_block(cfg),
        }),
    }
}

/// `[train] device` must be one this binary can use: `cuda:N` needs a build with the
/// `cuda` feature. The syntax is checked with the config; this is the capability.
pub fn check_device(device: &DeviceName) -> Result<()> {
    if matches!(device.parsed(), hhnas_train::Device::Cuda(_)) && !cfg!(feature = "cuda") {
        let e = hhnas_train::TrainError::NoCuda {
            given: device.to_string(),
        };
        return Err(e.classified());
    }
    Ok(())
}

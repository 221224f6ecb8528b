//! Model 1 and Model 4 trained once on Spider with a scratch encoder; prints validation and
//! test accuracy and wall time per epoch.
//!
//! `cargo run --release -p hhnas-train --example spider`. Environment (defaults in brackets):
//! `HHNAS_SPIDER_DIR` [/work/shared/datasets/spider; a relative value is taken from the
//! workspace root], `EPOCHS` [5], `MAX_TRAIN_ROWS` [all],
//! `HIDDEN`/`LAYERS`/`HEADS`/`INTERMEDIATE`/`VOCAB`/`MAX_LEN` [64/1/2/128/2000/24: the demo
//! profile's encoder], `LR` [1e-3], `DEVICE` [cpu], `MODELS` [1,4], `BRANCH_POOL`
//! [per-class; or global-max], `MERGE` [overlap 0.8; or none].

use std::path::Path;
use std::time::Instant;

use hhnas_features::{judge_lexical, rule_features, schema_rules, Bm25Ranker};
use hhnas_spider::{build_dataset, read_spider_dir, DataParams, MergeRule};
use hhnas_train::*;

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn main() {
    let dir = hhnas_spider::from_workspace_root(
        Path::new(
            &std::env::var("HHNAS_SPIDER_DIR")
                .unwrap_or_else(|_| "/work/shared/datasets/spider".into()),
        ),
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
    );
    let t = Instant::now();
    let src = read_spider_dir(&dir).expect("spider dir");
    let params = DataParams {
        merge: match std::env::var("MERGE").as_deref() {
            Ok("none") => MergeRule::None,
            _ => DataParams::default().merge,
        },
        ..DataParams::default()
    };
    let ds = build_dataset(&src, &params).expect("dataset");
    println!(
        "Spider: {} rows, {} classes ({}), train/valid/test {}/{}/{} ({:.1}s)",
        ds.rows.len(),
        ds.classes.len(),
        ds.merge,
        ds.train.len(),
        ds.valid.len(),
        ds.test.len(),
        t.elapsed().as_secs_f64()
    );
    let texts: Vec<&str> = ds.rows.iter().map(|r| r.question.as_str()).collect();
    let t = Instant::now();
    let rule_set = schema_rules(&ds);
    let rules = rule_features(&rule_set, &texts);
    let rule_classes = rule_set.column_classes();
    let llm = judge_lexical(
        &Bm25Ranker::build(&ds),
        &hhnas_features::Queries::dataset(&ds),
        10,
        3,
        0,
    );
    println!(
        "features: schema rules {} cols, lexical judge (BM25 stand-in for the LLM, top 3 of 10) {} cols ({:.1}s)",
        rules.cols,
        llm.cols,
        t.elapsed().as_secs_f64()
    );
    let enc_cfg = EncoderConfig {
        source: EncoderSource::Scratch {
            hidden: env("HIDDEN", 64),
            layers: env("LAYERS", 1),
            heads: env("HEADS", 2),
            intermediate: env("INTERMEDIATE", 128),
            vocab_size: env("VOCAB", 2000),
        },
        max_len: env("MAX_LEN", 24),
        freeze_embeddings: false,
    };
    let enc = prepare_encoder(&enc_cfg, &ds).expect("encoder");
    println!("encoder: {:?}", enc.arch);
    let max_rows: usize = env("MAX_TRAIN_ROWS", 0);
    let device = parse_device(&std::env::var("DEVICE").unwrap_or_else(|_| "cpu".into()))
        .expect("DEVICE: cpu, cpu:flex, cpu:ndarray or cuda:N");
    let cfg = TrainConfig {
        epochs: env("EPOCHS", 5),
        batch_size: 16,
        seed: 0,
        device: NoDevice,
        patience: None,
        max_train_rows: (max_rows > 0).then_some(max_rows),
        sort_by_length: true,
        cnn_channels: 32,
        branch_pool: match std::env::var("BRANCH_POOL").as_deref() {
            Ok("global-max") => BranchPool::GlobalMax,
            _ => BranchPool::PerClass,
        },
        head: hhnas_train::HeadKind::Dense,
        keep: hhnas_train::KeepEpoch::Best,
        lexical_dropout: None,
    };
    let models = std::env::var("MODELS").unwrap_or_else(|_| "1,4".into());
    for m in models
        .split(',')
        .filter_map(|m| m.trim().parse::<u8>().ok())
    {
        let spec = ModelSpec {
            llm_branch: m == 2 || m == 4,
            rule_branch: m == 3 || m == 4,
            learning_rate: env("LR", 1e-3),
            optimizer: OptimizerKind::AdamW,
            layer_size1: 256,
            layer_size2: 128,
            dropout: 0.1,
            kernel_size: 3,
        };
        let data = TrainData {
            dataset: &ds,
            llm_features: Some(&llm),
            rule_features: Some(&rules),
            rule_classes: Some(&rule_classes),
            embeddings: None,
        };
        let t = Instant::now();
        let out = train_candidate(data, &enc, &spec, &cfg, device, None, &mut |_, r| {
            println!(
                "  model {m} epoch {:>2}: loss {:.4} valid {:.4} ({:.1}s)",
                r.epoch, r.train_loss, r.valid_acc, r.secs
            );
        })
        .expect("training");
        if std::env::var("RESUME_CHECK").is_ok() && cfg.epochs >= 2 {
            // Train again from the first epoch's checkpoint; compare with the full run.
            let mut first = None;
            let short = TrainConfig {
                epochs: 1,
                ..cfg.clone()
            };
            train_candidate(data, &enc, &spec, &short, device, None, &mut |ck, _| {
                first = Some(ck.clone())
            })
            .expect("first epoch");
            let resumed = train_candidate(data, &enc, &spec, &cfg, device, first, &mut |_, _| {})
                .expect("resume");
            println!(
                "  model {m} resume check on {}: weights equal {}, valid {} vs {}, test {} vs {}",
                device,
                resumed.best_weights == out.best_weights,
                resumed.best_valid_acc,
                out.best_valid_acc,
                resumed.test_acc,
                out.test_acc
            );
        }
        println!(
            "model {m}: best valid {:.4} (epoch {}), test {:.4}, {:.1} ex/s, total {:.1}s{}",
            out.best_valid_acc,
            out.best_epoch,
            out.test_acc,
            out.examples_per_sec,
            t.elapsed().as_secs_f64(),
            out.failed
                .map(|f| format!(" FAILED: {f}"))
                .unwrap_or_default()
        );
    }
}

//! `cargo bench --bench status`: how long `hhnas-pipe status` takes on a run with 1,000
//! iterations (journal of ~3,000 stage lines). Prints the median of repeated calls.

use std::time::Instant;

use hhnas_engine::journal::{Event, StageRecord};
use hhnas_engine::rundir;
use hhnas_engine::store::Key;
use hhnas_pipe::config;
use hhnas_pipe::status;

/// A distinct key per iteration.
fn key_bytes(i: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&i.to_be_bytes());
    b
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path();
    let (mut cfg, profile) =
        config::resolve(config::EMBEDDED, "embedded", Some("demo"), &[]).expect("config");
    cfg.run.iterations = 1000;
    let run =
        rundir::create(cache, &cfg, cfg.run.seed, &profile, "embedded", &[]).expect("run dir");
    let journal = run.journal();
    for i in 0..1000u64 {
        let rec = |stage: &str, metrics: serde_json::Value| {
            Event::<String>::Stage(StageRecord {
                ts: i as f64,
                stage: stage.into(),
                iteration: Some(i),
                key: Key(key_bytes(i)),
                wall_secs: 30.0,
                cache_hit: false,
                metrics,
            })
        };
        journal
            .append(&rec(
                "sample",
                serde_json::json!({"model": 1 + i % 4, "params": {"learning_rate": "1e-4",
                    "criterion": "AdamW", "layer_size1": "256", "layer_size2": "128",
                    "dropout_rate": "0.1", "kernel_size": "3"}, "mutations": ["dropout_rate +"]}),
            ))
            .unwrap();
        journal
            .append(&rec(
                "train",
                serde_json::json!({"valid_acc": (i % 97) as f64 / 100.0, "test_acc": 0.5,
                    "curve": [0.1, 0.2, 0.3], "stopped_early": false}),
            ))
            .unwrap();
        journal
            .append(&rec(
                "update",
                serde_json::json!({"probabilities": {"llm_branch": 0.5, "rule_branch": 0.4},
                    "q_table": {"llm_branch": {"plus": 1.0, "minus": 1.0}}}),
            ))
            .unwrap();
    }
    let mut times = Vec::new();
    for _ in 0..30 {
        let start = Instant::now();
        let s = status::collect(&run, Some(cache)).expect("status");
        let text = status::render(&s);
        assert!(text.contains("1000/1000") || text.contains("/1000"));
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "status on a 1,000-iteration run (3,000 journal lines): median {:.2} ms, min {:.2} ms, max {:.2} ms over {} calls",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        times.len()
    );
}

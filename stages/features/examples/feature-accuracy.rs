//! Accuracy of the features alone on Spider: schema-rule argmax (class with most fired
//! rules, ties -> lowest id) and BM25 lexical top-1 / top-5, on the validation and test
//! splits, for the default 86-class overlap merge and for merge none (140 classes).
//!
//!   cargo run -p hhnas-features --release --example feature-accuracy [-- SPIDER_DIR]
//!
//! SPIDER_DIR (relative to the working directory) defaults to $HHNAS_SPIDER_DIR, then
//! ../shared/datasets/spider; those two, when relative, are taken from the workspace root.
//! SHARE, PAIRS (0/1) and COLW override `SchemaRuleParams` (max_class_share, pair_rules,
//! column_word_max_share) for exploration.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hhnas_features::{
    rule_features, rule_votes, schema_rules_with, Bm25Ranker, Dataset, SchemaRuleParams,
};
use hhnas_spider::{build_dataset, read_spider_dir, DataParams, MergeRule};

fn env_f64(name: &str) -> Option<f64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn argmax(v: &[u32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

fn report(ds: &Dataset, split_name: &str, idx: &[usize]) {
    let c = ds.classes.len();
    let texts = ds.texts(idx);
    let labels = ds.labels(idx);
    let t0 = Instant::now();
    let mut sp = SchemaRuleParams::default();
    // Overrides for exploring the schema-rule parameters.
    if let Some(v) = env_f64("SHARE") {
        sp.max_class_share = v;
    }
    if let Ok(v) = std::env::var("PAIRS") {
        sp.pair_rules = v == "1";
    }
    if let Some(v) = env_f64("COLW") {
        sp.column_word_max_share = v;
    }
    let rules = schema_rules_with(ds, &sp);
    let t_rules = t0.elapsed();
    let t0 = Instant::now();
    let fm = rule_features(&rules, &texts);
    let t_feat = t0.elapsed();
    let votes = rule_votes(&rules, &fm, c);
    let rule_ok = votes
        .iter()
        .zip(&labels)
        .filter(|(v, &l)| argmax(v) == l as usize)
        .count();
    let none_fired = votes.iter().filter(|v| v.iter().all(|&x| x == 0)).count();
    let t0 = Instant::now();
    let ranker = Bm25Ranker::build(ds);
    let t_build = t0.elapsed();
    let t0 = Instant::now();
    let (mut top1, mut top5, mut top10) = (0, 0, 0);
    for (t, &l) in texts.iter().zip(&labels) {
        let r = ranker.rank(t, 10);
        if r.first().map(|x| x.0) == Some(l) {
            top1 += 1;
        }
        if r.iter().take(5).any(|x| x.0 == l) {
            top5 += 1;
        }
        if r.iter().any(|x| x.0 == l) {
            top10 += 1;
        }
    }
    let t_rank = t0.elapsed();
    let n = texts.len() as f64;
    let pct = |x: usize| 100.0 * x as f64 / n;
    println!(
        "merge {:<14} classes {:>3} {split_name:<5} n={:>4} | rules {:>5} ({:.0} ms build, {:.0} ms features) \
         rule-argmax {:5.1}% (no rule fired {:4.1}%) | bm25 top1 {:5.1}% top5 {:5.1}% top10 {:5.1}% \
         ({:.0} ms build, {:.0} ms rank)",
        ds.merge,
        c,
        texts.len(),
        rules.len(),
        t_rules.as_secs_f64() * 1e3,
        t_feat.as_secs_f64() * 1e3,
        pct(rule_ok),
        pct(none_fired),
        pct(top1),
        pct(top5),
        pct(top10),
        t_build.as_secs_f64() * 1e3,
        t_rank.as_secs_f64() * 1e3,
    );
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let d = std::env::var("HHNAS_SPIDER_DIR")
                .unwrap_or_else(|_| "../shared/datasets/spider".into());
            hhnas_spider::from_workspace_root(
                Path::new(&d),
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
            )
        });
    let src = match read_spider_dir(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("feature-accuracy: {e}");
            std::process::exit(2);
        }
    };
    for params in [
        DataParams::default(),
        DataParams {
            merge: MergeRule::None,
            ..DataParams::default()
        },
    ] {
        let ds = match build_dataset(&src, &params) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("feature-accuracy: {e}");
                std::process::exit(2);
            }
        };
        report(&ds, "valid", &ds.valid);
        report(&ds, "test", &ds.test);
    }
}

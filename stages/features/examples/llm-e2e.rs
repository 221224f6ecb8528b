//! End-to-end check of the LLM features against a real OpenAI-compatible server
//! (e.g. `scripts/llm-server.sh`), answers cached in a directory:
//!
//!   cargo run -p hhnas-features --release --example llm-e2e -- \
//!       --base-url http://127.0.0.1:8087 --n 200
//!
//! Runs `llm_rules` on the first `--rule-classes` classes and `judge_llm` (BM25 shortlist
//! of `--k`) on `--n` validation questions of the default Spider dataset, twice each: the
//! first run prints requests/s, the second shows the cache (0 requests). Prints how often
//! the judge said true for the right class and for wrong ones.
//!
//! Options (defaults): --base-url http://127.0.0.1:8087, --model gemma3-270m, --n 200,
//! --k 3, --rule-classes 3, --cache-dir .dev/llm-cache, --spider-dir $HHNAS_SPIDER_DIR or
//! ../shared/datasets/spider (either, when relative, from the workspace root; a
//! --spider-dir given from the working directory), --concurrency 2, --timeout 300, --judge-max-tokens 8,
//! --rules-max-tokens 192, --max-schema-chars 1500.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use hhnas_features::{
    judge_llm, llm_rules, AnswerCache, Bm25Ranker, Dataset, DirAnswerCache, LlmClient, LlmConfig,
    LlmRulesParams, LlmStats, RuleKind,
};
use hhnas_spider::{build_dataset, read_spider_dir, DataParams};

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("llm-e2e: {msg}");
    std::process::exit(2);
}

struct Args {
    opts: HashMap<String, String>,
}

impl Args {
    fn parse() -> Args {
        let mut opts = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                fail(format!(
                    "unexpected argument {a:?}; options look like --n 200"
                ));
            };
            let Some(v) = it.next() else {
                fail(format!("option --{name} needs a value"));
            };
            opts.insert(name.to_string(), v);
        }
        Args { opts }
    }

    fn str(&self, name: &str, default: &str) -> String {
        self.opts
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        match self.opts.get(name) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| fail(format!("--{name} {v:?} is not a number"))),
        }
    }
}

/// The dataset restricted to classes `0..r` (labels kept, rows of other classes dropped).
fn first_classes(ds: &Dataset, r: usize) -> Dataset {
    let r = r.min(ds.classes.len());
    let mut map = HashMap::new();
    let mut rows = Vec::new();
    for (i, row) in ds.rows.iter().enumerate() {
        if (row.label as usize) < r {
            map.insert(i, rows.len());
            rows.push(row.clone());
        }
    }
    let remap = |v: &[usize]| v.iter().filter_map(|i| map.get(i).copied()).collect();
    Dataset {
        rows,
        classes: ds.classes[..r].to_vec(),
        train: remap(&ds.train),
        valid: remap(&ds.valid),
        test: remap(&ds.test),
        merge: ds.merge.clone(),
    }
}

fn show(stage: &str, run: usize, secs: f64, s: &LlmStats) {
    println!(
        "{stage} run {run}: {secs:.1} s, requests {} ({:.2}/s), cached {}, retries {}, failed {}, unparseable {}, fallbacks {}",
        s.requests,
        s.requests as f64 / secs.max(1e-9),
        s.cached,
        s.retries,
        s.failed,
        s.unparseable,
        s.fallbacks
    );
}

fn main() {
    let args = Args::parse();
    let default_spider = hhnas_spider::from_workspace_root(
        Path::new(
            &std::env::var("HHNAS_SPIDER_DIR")
                .unwrap_or_else(|_| "../shared/datasets/spider".into()),
        ),
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
    );
    let spider = args.str("spider-dir", &default_spider.to_string_lossy());
    let src = read_spider_dir(&PathBuf::from(&spider)).unwrap_or_else(|e| fail(e));
    let ds = build_dataset(&src, &DataParams::default()).unwrap_or_else(|e| fail(e));
    let n: usize = args.num("n", 200);
    let k: usize = args.num("k", 3);
    let cache_dir = args.str("cache-dir", ".dev/llm-cache");
    let cache: Arc<dyn AnswerCache> =
        Arc::new(DirAnswerCache::new(&cache_dir).unwrap_or_else(|e| fail(e)));
    let base = LlmConfig {
        base_url: args.str("base-url", "http://127.0.0.1:8087"),
        model: args.str("model", "gemma3-270m"),
        max_concurrency: args.num("concurrency", 2),
        timeout_secs: args.num("timeout", 300),
        max_retries: 2,
        backoff_ms: 500,
        max_schema_chars: args.num("max-schema-chars", 1500),
        ..LlmConfig::default()
    };
    let judge_cfg = LlmConfig {
        max_tokens: args.num("judge-max-tokens", 8),
        ..base.clone()
    };
    let rules_cfg = LlmConfig {
        max_tokens: args.num("rules-max-tokens", 192),
        ..base
    };
    let client =
        |cfg: &LlmConfig| LlmClient::new(cfg.clone(), cache.clone()).unwrap_or_else(|e| fail(e));
    match client(&judge_cfg).check_reachable() {
        Ok(models) => println!("server {} serves {models:?}", judge_cfg.base_url),
        Err(e) => fail(e),
    }
    println!("answer cache: {cache_dir}");

    // LLM rules on the first few classes.
    let r: usize = args.num("rule-classes", 3);
    if r > 0 {
        let sub = first_classes(&ds, r);
        let params = LlmRulesParams {
            questions_per_class: 5,
            max_retries: 1,
        };
        for run in 1..=2 {
            let t0 = Instant::now();
            let (rules, stats) =
                llm_rules(&sub, &client(&rules_cfg), &params).unwrap_or_else(|e| fail(e));
            show("llm_rules", run, t0.elapsed().as_secs_f64(), &stats);
            if run == 1 {
                for (ci, c) in sub.classes.iter().enumerate() {
                    let kinds: Vec<&RuleKind> = rules
                        .rules
                        .iter()
                        .filter(|x| x.class as usize == ci)
                        .map(|x| &x.kind)
                        .collect();
                    println!(
                        "  {}: {} rules, first {:?}",
                        c.name,
                        kinds.len(),
                        kinds.first()
                    );
                }
            }
        }
    }

    // LLM judge on n validation questions, spread over the split.
    let n = n.min(ds.valid.len());
    let idx: Vec<usize> = (0..n).map(|i| ds.valid[i * ds.valid.len() / n]).collect();
    let texts = ds.texts(&idx);
    let labels = ds.labels(&idx);
    let ranker = Bm25Ranker::build(&ds);
    let mut first = None;
    for run in 1..=2 {
        let t0 = Instant::now();
        let (m, stats) = judge_llm(
            &ranker,
            &ds,
            &hhnas_features::Queries::new(&texts),
            k,
            &client(&judge_cfg),
        )
        .unwrap_or_else(|e| fail(e));
        show("judge_llm", run, t0.elapsed().as_secs_f64(), &stats);
        if let Some(prev) = &first {
            println!("  second run identical to the first: {}", prev == &m);
        } else {
            first = Some(m);
        }
    }
    let m = first.unwrap_or_else(|| fail("no judge run"));
    let mut in_shortlist = 0;
    let mut gold_true = 0;
    let mut wrong_true = 0;
    let mut shortlisted_wrong = 0;
    let mut only_gold = 0;
    for (i, (t, &l)) in texts.iter().zip(&labels).enumerate() {
        let sl = ranker.rank(t, k);
        let has = sl.iter().any(|x| x.0 == l);
        in_shortlist += has as usize;
        shortlisted_wrong += sl.len() - has as usize;
        let row = m.row(i);
        gold_true += (row[l as usize] == 1) as usize;
        let wt = row
            .iter()
            .enumerate()
            .filter(|(c, &v)| v == 1 && *c != l as usize)
            .count();
        wrong_true += wt;
        only_gold += (row[l as usize] == 1 && wt == 0) as usize;
    }
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    println!(
        "judge on {n} validation questions, k={k}: gold class in shortlist {:.1}%, judged true for the gold class {:.1}% ({:.1}% of those shortlisted), true for a wrong shortlisted class {:.1}% of {} pairs, true for gold only {:.1}%, precision of true answers {:.1}%",
        pct(in_shortlist, n),
        pct(gold_true, n),
        pct(gold_true, in_shortlist),
        pct(wrong_true, shortlisted_wrong),
        shortlisted_wrong,
        pct(only_gold, n),
        pct(gold_true, gold_true + wrong_true),
    );
}

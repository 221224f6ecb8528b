//! The feature nodes: `rules` (a rule set and its 0/1 matrix over every question) and
//! `llm_judge` (one column per class: does the judge think the question belongs there),
//! plus the LLM client both share, whose answers live in the store.

use std::sync::Arc;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use hhnas_data::Dataset;
use hhnas_features::{FeatureMatrix, LlmStats, RuleSet};

use crate::config::{Judge, PipelineConfig, RuleSource};
use crate::dag::Replay;
use crate::dag::{Stage, LLM_ANSWERS};
use crate::error::ExitClass;
use hhnas_engine::store::{Key, KeyBuilder, Lookup, Store};

/// Answers of the LLM, kept in the store so no question is paid for twice.
struct StoreAnswerCache(Store);

impl hhnas_features::AnswerCache for StoreAnswerCache {
    fn get(&self, key: &[u8; 32]) -> Option<String> {
        match self.0.get::<String>(LLM_ANSWERS, &Key(*key)) {
            Ok(Lookup::Hit(s)) => Some(s),
            _ => None,
        }
    }

    fn put(&self, key: &[u8; 32], answer: &str) {
        if let Err(e) = self.0.put(LLM_ANSWERS, &Key(*key), &answer.to_string()) {
            tracing::warn!("could not cache an LLM answer: {e:#}");
        }
    }
}

/// The configured LLM client, answering from the store where it can.
pub(crate) fn llm_client(cfg: &PipelineConfig, store: &Store) -> Result<hhnas_features::LlmClient> {
    let l = &cfg.features.llm;
    let llm_cfg = hhnas_features::LlmConfig {
        base_url: l.base_url.clone(),
        model: l.model.clone(),
        api_key_env: (!l.api_key_env.is_empty()).then(|| l.api_key_env.clone()),
        timeout_secs: l.timeout_secs,
        max_concurrency: l.max_concurrency,
        max_retries: l.max_retries,
        backoff_ms: l.backoff_ms,
        max_requests: (l.max_requests > 0).then_some(l.max_requests),
        temperature: 0.0,
        max_tokens: l.max_tokens,
        max_schema_chars: l.max_schema_chars,
    };
    let cache = Arc::new(StoreAnswerCache(store.clone()));
    hhnas_features::LlmClient::new(llm_cfg, cache).map_err(ExitClass::classified)
}

/// The LLM settings that change answers (or, through the budget, fallbacks); timeouts and
/// concurrency do not.
fn llm_key_params(kb: &mut KeyBuilder, cfg: &PipelineConfig) {
    let l = &cfg.features.llm;
    kb.param(&(
        &l.base_url,
        &l.model,
        l.max_tokens,
        l.max_schema_chars,
        l.max_requests,
    ));
}

/// The output of the `rules` node: the rules and their matrix over every row.
#[derive(Serialize, Deserialize)]
pub(crate) struct RuleOutput {
    pub rules: RuleSet,
    pub matrix: FeatureMatrix,
}

/// The journal line of the `rules` node.
#[derive(Serialize)]
struct RulesMetrics {
    summary: String,
    rules: usize,
    llm: Option<LlmStats>,
}

fn rules_key(cfg: &PipelineConfig, ds_key: Key) -> Key {
    let f = &cfg.features;
    let mut kb = Stage::Rules.key();
    kb.input(&ds_key).param(&f.rules.as_str());
    if f.rules == RuleSource::Llm {
        llm_key_params(&mut kb, cfg);
        kb.param(&(f.llm_questions_per_class, f.llm_rule_retries));
    }
    kb.finish()
}

fn compute_rules(
    cfg: &PipelineConfig,
    store: &Store,
    ds: &Dataset,
) -> Result<(RuleOutput, RulesMetrics)> {
    let f = &cfg.features;
    let (rules, stats) = if f.rules == RuleSource::Llm {
        let client = llm_client(cfg, store)?;
        client.check_reachable().map_err(ExitClass::classified)?;
        let params = hhnas_features::LlmRulesParams {
            questions_per_class: f.llm_questions_per_class,
            max_retries: f.llm_rule_retries,
        };
        let (rules, stats) =
            hhnas_features::llm_rules(ds, &client, &params).map_err(ExitClass::classified)?;
        (rules, Some(stats))
    } else {
        (hhnas_features::schema_rules(ds), None)
    };
    let texts: Vec<&str> = ds.rows.iter().map(|r| r.question.as_str()).collect();
    let matrix = hhnas_features::rule_features(&rules, &texts);
    let summary = format!(
        "{} {} rules, {:.1} fired per question{}",
        rules.rules.len(),
        f.rules.as_str(),
        matrix.ones() as f64 / matrix.rows.max(1) as f64,
        stats
            .as_ref()
            .map(|s| format!(", LLM {s:?}"))
            .unwrap_or_default()
    );
    let metrics = RulesMetrics {
        summary,
        rules: rules.rules.len(),
        llm: stats,
    };
    Ok((RuleOutput { rules, matrix }, metrics))
}

pub(crate) fn rules_node(
    exec: &mut Replay,
    cfg: &PipelineConfig,
    ds_key: Key,
    ds: &Dataset,
) -> Result<(Key, RuleOutput)> {
    let key = exec.kept_key::<RuleOutput>(Stage::Rules, rules_key(cfg, ds_key));
    let out = exec.node(Stage::Rules, None, key, |exec| {
        compute_rules(cfg, &exec.store, ds)
    })?;
    Ok((key, out))
}

/// The journal line of the `llm_judge` node.
#[derive(Serialize)]
struct JudgeMetrics {
    summary: String,
    backend: String,
    llm: Option<LlmStats>,
    /// Share of training / test rows whose own class the judge marked.
    hit_train: f64,
    hit_test: f64,
    /// Share of training / test rows whose own class got the highest mark.
    top1_train: f64,
    top1_test: f64,
}

fn judge_key(cfg: &PipelineConfig, ds_key: Key) -> Key {
    let f = &cfg.features;
    let mut kb = Stage::LlmJudge.key();
    kb.input(&ds_key)
        .param(&(f.judge.as_str(), f.shortlist_k, f.lexical_true_m))
        .param(&(f.leave_one_out, f.lexical_levels));
    if f.judge == Judge::Llm {
        llm_key_params(&mut kb, cfg);
    }
    kb.finish()
}

fn compute_judge(
    cfg: &PipelineConfig,
    store: &Store,
    ds: &Dataset,
) -> Result<(FeatureMatrix, JudgeMetrics)> {
    let f = &cfg.features;
    let texts: Vec<&str> = ds.rows.iter().map(|r| r.question.as_str()).collect();
    let queries = if f.leave_one_out {
        hhnas_features::Queries::dataset(ds)
    } else {
        hhnas_features::Queries::new(&texts)
    };
    let (matrix, stats) = run_judge(cfg, store, ds, &queries)?;
    // Marked far more often on training rows than on test rows = the feature leaks.
    let hit_train = hhnas_features::label_hit_rate(&matrix, ds, &ds.train);
    let hit_test = hhnas_features::label_hit_rate(&matrix, ds, &ds.test);
    let top1_train = hhnas_features::label_top1_rate(&matrix, ds, &ds.train);
    let top1_test = hhnas_features::label_top1_rate(&matrix, ds, &ds.test);
    let backend = match f.judge {
        Judge::Llm => format!("LLM {}", f.llm.model),
        Judge::Lexical => "lexical stand-in (no LLM)".to_string(),
    };
    let summary = format!(
        "{backend}: {:.2} marked per question over a shortlist of {}; own class marked on \
         {:.1}% of training rows / {:.1}% of test rows, marked highest on {:.1}% / {:.1}%{}",
        matrix.ones() as f64 / matrix.rows.max(1) as f64,
        f.shortlist_k,
        hit_train * 100.0,
        hit_test * 100.0,
        top1_train * 100.0,
        top1_test * 100.0,
        if f.leave_one_out {
            " (leave-one-out)"
        } else {
            " (training rows inside their own class document)"
        }
    );
    let metrics = JudgeMetrics {
        summary,
        backend,
        llm: stats,
        hit_train,
        hit_test,
        top1_train,
        top1_test,
    };
    Ok((matrix, metrics))
}

pub(crate) fn judge_node(
    exec: &mut Replay,
    cfg: &PipelineConfig,
    ds_key: Key,
    ds: &Dataset,
) -> Result<(Key, FeatureMatrix)> {
    let key = exec.kept_key::<FeatureMatrix>(Stage::LlmJudge, judge_key(cfg, ds_key));
    let matrix = exec.node(Stage::LlmJudge, None, key, |exec| {
        compute_judge(cfg, &exec.store, ds)
    })?;
    Ok((key, matrix))
}

/// Judge features of new texts (eval, predict), computed as the run computed them.
pub(crate) fn judge_texts(
    cfg: &PipelineConfig,
    store: &Store,
    ds: &Dataset,
    texts: &[&str],
) -> Result<FeatureMatrix> {
    let queries = hhnas_features::Queries::new(texts);
    Ok(run_judge(cfg, store, ds, &queries)?.0)
}

/// The configured judge over `queries`: the LLM server, or the lexical stand-in.
fn run_judge(
    cfg: &PipelineConfig,
    store: &Store,
    ds: &Dataset,
    queries: &hhnas_features::Queries,
) -> Result<(FeatureMatrix, Option<LlmStats>)> {
    let f = &cfg.features;
    let ranker = hhnas_features::Bm25Ranker::build(ds);
    Ok(match f.judge {
        Judge::Llm => {
            let client = llm_client(cfg, store)?;
            client.check_reachable().map_err(ExitClass::classified)?;
            let (m, s) = hhnas_features::judge_llm(&ranker, ds, queries, f.shortlist_k, &client)
                .map_err(ExitClass::classified)?;
            (m, Some(s))
        }
        Judge::Lexical => {
            let m = hhnas_features::judge_lexical(
                &ranker,
                queries,
                f.shortlist_k,
                f.lexical_true_m,
                f.lexical_levels,
            );
            (m, None)
        }
    })
}

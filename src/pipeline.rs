//! The pipeline runner and the commands built on it. Every node of the DAG is keyed by the
//! blake3 of its stage, version, parameters and input keys; a node whose output is in the
//! store is replayed, never recomputed.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use hhnas_features::{FeatureMatrix, RuleSet};
use hhnas_search::{Proposal, SearchState};
use hhnas_spider::Dataset;
use hhnas_train::{EncoderAssets, TrainOutcome};

use crate::config::{self, PipelineConfig};
use crate::error::{UserError, EXIT_OK};
use crate::journal::{now, stage_records, Event, Journal, StageRecord};
use crate::lock::{self, Acquire};
use crate::progress::Progress;
use crate::runs::{self, RunDir};
use crate::status;
use crate::store::{write_atomic, Key, KeyBuilder, Lookup, Store};
use crate::user_error;

/// Stage versions: bump one when its output for the same inputs changes, so old entries
/// stop matching.
mod version {
    pub const SPIDER: u32 = 1;
    pub const RULES: u32 = 1;
    pub const JUDGE: u32 = 2;
    pub const ENCODER: u32 = 1;
    pub const ENCODE: u32 = 1;
    pub const SEARCH_INIT: u32 = 1;
    pub const SAMPLE: u32 = 1;
    pub const TRAIN: u32 = 2;
    pub const UPDATE: u32 = 1;
}

/// What a command achieved; errors travel as `anyhow::Error` instead.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    NothingToDo,
    AlreadyRunning(Option<u32>),
}

impl Outcome {
    pub fn exit_code(&self) -> i32 {
        EXIT_OK
    }
}

/// A stored output with the summary metrics its journal line carries.
#[derive(Serialize, Deserialize)]
struct Stored<T> {
    value: T,
    metrics: String,
}

/// Executes nodes of one run: replay from the store or compute, then journal.
struct Exec<'a> {
    store: Store,
    journal: Journal,
    /// (stage, iteration, key) already in the journal, so a replay is not journaled twice.
    recorded: HashSet<(String, Option<u64>, String)>,
    progress: &'a Progress,
    scratch: PathBuf,
    /// `training.json` of the run: the epoch the candidate in training has reached.
    training_file: PathBuf,
}

impl Exec<'_> {
    /// A one-off input (dataset, encoder) must hash as it did when the run started; a
    /// search that silently switched data halfway would compare apples with pears.
    fn expect_unchanged(&self, stage: &str, key: Key, what: &str) -> Result<()> {
        let journaled = self
            .recorded
            .iter()
            .find(|(s, i, _)| s == stage && i.is_none())
            .map(|(_, _, k)| k.clone());
        match journaled {
            Some(k) if k != key.hex() => Err(user_error!(
                "{what} changed since this run started ({stage} key {} is now {}). Fix: \
                 restore them, or start a new run with `hhnas-pipe run`",
                &k[..12],
                key.short()
            )),
            _ => Ok(()),
        }
    }

    fn node<T, F>(&mut self, stage: &str, iteration: Option<u64>, key: Key, compute: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(&mut Self) -> Result<(T, serde_json::Value)>,
    {
        let start = Instant::now();
        let label = match iteration {
            Some(i) => format!("{stage} (iteration {i})"),
            None => stage.to_string(),
        };
        let (value, metrics, hit) = match self.store.get::<Stored<T>>(stage, &key)? {
            Lookup::Hit(s) => (
                s.value,
                serde_json::from_str(&s.metrics).unwrap_or_default(),
                true,
            ),
            other => {
                if let Lookup::Corrupt(warning) = other {
                    tracing::warn!("{warning}");
                }
                self.progress.message(&format!("{label}: computing"));
                let (value, metrics) = match compute(self) {
                    Ok(v) => v,
                    Err(e) => {
                        self.journal.append(&Event::Failed {
                            ts: now(),
                            stage: stage.to_string(),
                            iteration,
                            message: format!("{e:#}"),
                        })?;
                        return Err(e.context(format!("stage {label} failed")));
                    }
                };
                let stored = Stored {
                    value,
                    metrics: metrics.to_string(),
                };
                self.store.put(stage, &key, &stored)?;
                (stored.value, metrics, false)
            }
        };
        let id = (stage.to_string(), iteration, key.hex());
        // A replay is journaled once; a recomputation always (it shows which entries a
        // resume had to rebuild after they were deleted or damaged).
        if !hit || !self.recorded.contains(&id) {
            let wall = start.elapsed().as_secs_f64();
            // A replayed node keeps the wall time it cost when it was computed.
            let wall_secs = if hit {
                metrics
                    .get("compute_secs")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(wall)
            } else {
                wall
            };
            self.journal.append(&Event::Stage(StageRecord {
                ts: now(),
                stage: stage.to_string(),
                iteration,
                key: key.hex(),
                wall_secs,
                cache_hit: hit,
                metrics: metrics.clone(),
            }))?;
            self.recorded.insert(id);
            let summary = metrics
                .get("summary")
                .and_then(|v| v.as_str())
                .unwrap_or("done");
            self.progress.line(&format!(
                "{label}: {summary}{}",
                if hit { " (cached)" } else { "" }
            ));
        }
        Ok(value)
    }
}

fn user<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::Error::new(UserError(e.to_string()))
}

/// The Spider directory for a new run or a one-off command: `HHNAS_SPIDER_DIR` wins over
/// `[data] spider_dir`. A run freezes the result (absolute) in its config, so a resume
/// from cron, without the variable, reads the same files.
pub fn spider_dir(cfg: &PipelineConfig) -> PathBuf {
    std::env::var_os("HHNAS_SPIDER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cfg.data.spider_dir.clone())
}

fn data_params(cfg: &PipelineConfig) -> Result<hhnas_spider::DataParams> {
    use hhnas_spider::MergeRule;
    let merge = match cfg.data.merge.as_str() {
        "none" => MergeRule::None,
        "overlap" => MergeRule::Overlap {
            threshold: cfg.data.overlap_threshold,
        },
        _ => MergeRule::Map(config::read_map_file(
            cfg.data.map_file.as_deref().unwrap_or(Path::new("")),
        )?),
    };
    Ok(hhnas_spider::DataParams {
        merge,
        split_seed: cfg.data.split_seed,
        ratios: cfg.data.ratios,
        include_others: cfg.data.include_others,
    })
}

/// Loads the dataset through the `spider` node.
fn dataset_node(exec: &mut Exec, cfg: &PipelineConfig) -> Result<(Key, Dataset)> {
    let params = data_params(cfg)?;
    let src = hhnas_spider::read_spider_dir(&cfg.data.spider_dir).map_err(user)?;
    let mut kb = KeyBuilder::new("spider", version::SPIDER);
    kb.param(&params);
    for file in src.files() {
        kb.bytes(&file.bytes);
    }
    let key = kb.finish();
    exec.expect_unchanged(
        "spider",
        key,
        &format!(
            "the Spider files under {} (or data.map_file)",
            cfg.data.spider_dir.display()
        ),
    )?;
    let ds = exec.node("spider", None, key, |_| {
        let ds = hhnas_spider::build_dataset(&src, &params).map_err(user)?;
        let summary = format!(
            "{} rows, {} classes ({}), split {}/{}/{}",
            ds.rows.len(),
            ds.classes.len(),
            ds.merge,
            ds.train.len(),
            ds.valid.len(),
            ds.test.len()
        );
        let metrics = json!({
            "summary": summary,
            "rows": ds.rows.len(),
            "classes": ds.classes.len(),
            "merge": ds.merge,
        });
        Ok((ds, metrics))
    })?;
    Ok((key, ds))
}

/// Answers of the LLM, kept in the store so no question is paid for twice.
struct StoreAnswerCache(Store);

impl hhnas_features::AnswerCache for StoreAnswerCache {
    fn get(&self, key: &[u8; 32]) -> Option<String> {
        match self.0.get::<String>("llm_answers", &Key(*key)) {
            Ok(Lookup::Hit(s)) => Some(s),
            _ => None,
        }
    }

    fn put(&self, key: &[u8; 32], answer: &str) {
        if let Err(e) = self.0.put("llm_answers", &Key(*key), &answer.to_string()) {
            tracing::warn!("could not cache an LLM answer: {e:#}");
        }
    }
}

fn llm_client(cfg: &PipelineConfig, store: &Store) -> Result<hhnas_features::LlmClient> {
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
    let client = hhnas_features::LlmClient::new(llm_cfg, Arc::new(StoreAnswerCache(store.clone())))
        .map_err(user)?;
    Ok(client)
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

/// Rule features and LLM-judge features of every row.
#[derive(Serialize, Deserialize)]
struct RuleOutput {
    rules: RuleSet,
    matrix: FeatureMatrix,
}

fn rules_node(
    exec: &mut Exec,
    cfg: &PipelineConfig,
    ds_key: Key,
    ds: &Dataset,
) -> Result<(Key, RuleOutput)> {
    let f = &cfg.features;
    let mut kb = KeyBuilder::new("rules", version::RULES);
    kb.input(&ds_key).param(&f.rules);
    if f.rules == "llm" {
        llm_key_params(&mut kb, cfg);
        kb.param(&(f.llm_questions_per_class, f.llm_rule_retries));
    }
    let key = kb.finish();
    let out = exec.node("rules", None, key, |exec| {
        let (rules, stats) = if f.rules == "llm" {
            let client = llm_client(cfg, &exec.store)?;
            client.check_reachable().map_err(user)?;
            let params = hhnas_features::LlmRulesParams {
                questions_per_class: f.llm_questions_per_class,
                max_retries: f.llm_rule_retries,
            };
            let (rules, stats) = hhnas_features::llm_rules(ds, &client, &params).map_err(user)?;
            (rules, Some(stats))
        } else {
            (hhnas_features::schema_rules(ds), None)
        };
        let texts: Vec<&str> = ds.rows.iter().map(|r| r.question.as_str()).collect();
        let matrix = hhnas_features::rule_features(&rules, &texts);
        let summary = format!(
            "{} {} rules, {:.1} fired per question{}",
            rules.rules.len(),
            f.rules,
            matrix.ones() as f64 / matrix.rows.max(1) as f64,
            stats
                .as_ref()
                .map(|s| format!(", LLM {s:?}"))
                .unwrap_or_default()
        );
        let metrics = json!({"summary": summary, "rules": rules.rules.len(), "llm": stats});
        Ok((RuleOutput { rules, matrix }, metrics))
    })?;
    Ok((key, out))
}

fn judge_node(
    exec: &mut Exec,
    cfg: &PipelineConfig,
    ds_key: Key,
    ds: &Dataset,
) -> Result<(Key, FeatureMatrix)> {
    let f = &cfg.features;
    let mut kb = KeyBuilder::new("llm_judge", version::JUDGE);
    kb.input(&ds_key)
        .param(&(&f.judge, f.shortlist_k, f.lexical_true_m, f.leave_one_out));
    if f.judge == "llm" {
        llm_key_params(&mut kb, cfg);
    }
    let key = kb.finish();
    let matrix = exec.node("llm_judge", None, key, |exec| {
        let ranker = hhnas_features::Bm25Ranker::build(ds);
        let queries = if f.leave_one_out {
            hhnas_features::Queries::dataset(ds)
        } else {
            let texts: Vec<&str> = ds.rows.iter().map(|r| r.question.as_str()).collect();
            hhnas_features::Queries::new(&texts)
        };
        let (matrix, stats) = if f.judge == "llm" {
            let client = llm_client(cfg, &exec.store)?;
            client.check_reachable().map_err(user)?;
            let (m, s) =
                hhnas_features::judge_llm(&ranker, ds, &queries, f.shortlist_k, &client)
                    .map_err(user)?;
            (m, Some(s))
        } else {
            (
                hhnas_features::judge_lexical(&ranker, &queries, f.shortlist_k, f.lexical_true_m),
                None,
            )
        };
        // Much stronger on training rows than on test rows = the feature leaks the label.
        let top1_train = hhnas_features::top1_accuracy(&matrix, ds, &ds.train);
        let top1_test = hhnas_features::top1_accuracy(&matrix, ds, &ds.test);
        let backend = if f.judge == "llm" {
            format!("LLM {}", f.llm.model)
        } else {
            "lexical stand-in (no LLM)".to_string()
        };
        let summary = format!(
            "{backend}: {:.2} true per question over a shortlist of {}; first true class right on {:.1}% of training rows, {:.1}% of test rows{}",
            matrix.ones() as f64 / matrix.rows.max(1) as f64,
            f.shortlist_k,
            top1_train * 100.0,
            top1_test * 100.0,
            if f.leave_one_out { " (leave-one-out)" } else { " (rows inside their own class document)" }
        );
        let metrics = json!({"summary": summary, "backend": backend, "llm": stats,
            "top1_train": top1_train, "top1_test": top1_test});
        Ok((matrix, metrics))
    })?;
    Ok((key, matrix))
}

fn encoder_config(cfg: &PipelineConfig) -> hhnas_train::EncoderConfig {
    let e = &cfg.encoder;
    let source = if let Some(p) = e.source.strip_prefix("dir:") {
        hhnas_train::EncoderSource::Dir(PathBuf::from(p))
    } else if let Some(name) = e.source.strip_prefix("hf:") {
        hhnas_train::EncoderSource::Hf(name.to_string())
    } else if let Some(spec) = e.source.strip_prefix("pypi:") {
        hhnas_train::EncoderSource::Pypi(spec.to_string())
    } else {
        hhnas_train::EncoderSource::Scratch {
            hidden: e.hidden,
            layers: e.layers,
            heads: e.heads,
            intermediate: e.intermediate,
            vocab_size: e.vocab_size,
        }
    };
    hhnas_train::EncoderConfig {
        source,
        max_len: e.max_len,
        freeze_embeddings: e.freeze_embeddings,
    }
}

fn encoder_node(
    exec: &mut Exec,
    cfg: &PipelineConfig,
    ds_key: Key,
    ds: &Dataset,
) -> Result<(Key, EncoderAssets)> {
    let enc = encoder_config(cfg);
    let mut kb = KeyBuilder::new("encoder", version::ENCODER);
    kb.input(&ds_key);
    // A pretrained model is part of the key through its files' bytes, not its path or
    // hub id, so moving it keeps every trained candidate and a moved hub branch is seen.
    // `dir:` keys exactly as before (its path blanked); `hf:` and `pypi:` download first.
    if let Some(dir) = enc.source.model_dir().map_err(train_error)? {
        let mut keyed = enc.clone();
        if matches!(keyed.source, hhnas_train::EncoderSource::Dir(_)) {
            keyed.source = hhnas_train::EncoderSource::Dir(PathBuf::new());
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
        kb.param(&enc);
    }
    let key = kb.finish();
    exec.expect_unchanged(
        "encoder",
        key,
        &format!("the encoder ({})", cfg.encoder.source),
    )?;
    let assets = exec.node("encoder", None, key, |_| {
        let assets = hhnas_train::prepare_encoder(&enc, ds).map_err(train_error)?;
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
        let metrics = json!({"summary": summary});
        Ok((assets, metrics))
    })?;
    Ok((key, assets))
}

/// The encode stage (frozen encoder): the encoder run once over every question, one
/// vector per row, keyed by the encoder, the pooling and the dataset.
fn encode_node(
    exec: &mut Exec,
    cfg: &PipelineConfig,
    ds_key: Key,
    ds: &Dataset,
    enc_key: Key,
    enc: &EncoderAssets,
) -> Result<(Key, hhnas_train::Embeddings)> {
    let pooling = cfg.encoder.pooling;
    let key = KeyBuilder::new("encode", version::ENCODE)
        .input(&ds_key)
        .input(&enc_key)
        .param(&pooling)
        .finish();
    let progress = exec.progress;
    let emb = exec.node("encode", None, key, |_| {
        let texts: Vec<&str> = ds.rows.iter().map(|r| r.question.as_str()).collect();
        let started = Instant::now();
        let mut last = Instant::now();
        let emb = hhnas_train::embed(enc, &texts, pooling, &cfg.train.device, &mut |done, total| {
            if done == total || last.elapsed().as_secs_f64() >= 5.0 {
                last = Instant::now();
                progress.message(&format!("encode: {done}/{total} questions"));
            }
        })
        .map_err(train_error)?;
        let secs = started.elapsed().as_secs_f64();
        let rate = texts.len() as f64 / secs.max(1e-9);
        let summary = format!(
            "{} questions -> {} {}-pooled values each, {rate:.0} questions/s",
            emb.rows,
            emb.dim,
            pooling.name()
        );
        let metrics = json!({"summary": summary, "rows": emb.rows, "dim": emb.dim,
            "examples_per_sec": rate, "compute_secs": secs});
        Ok((emb, metrics))
    })?;
    Ok((key, emb))
}

/// Input errors of the training crate are the user's (exit 2); the rest are failures.
fn train_error(e: hhnas_train::TrainError) -> anyhow::Error {
    if e.exit_code() == 2 {
        user(e)
    } else {
        anyhow::Error::new(e)
    }
}

fn model_spec(c: &hhnas_search::Candidate) -> hhnas_train::ModelSpec {
    hhnas_train::ModelSpec {
        llm_branch: c.llm_branch,
        rule_branch: c.rule_branch,
        learning_rate: c.learning_rate,
        optimizer: match c.criterion_num {
            0 => hhnas_train::OptimizerKind::AdamW,
            1 => hhnas_train::OptimizerKind::SgdMomentum,
            _ => hhnas_train::OptimizerKind::RmsProp,
        },
        layer_size1: c.layer_size1,
        layer_size2: c.layer_size2,
        dropout: c.dropout_rate,
        kernel_size: c.kernel_size,
    }
}

pub fn train_config(cfg: &PipelineConfig) -> hhnas_train::TrainConfig {
    let t = &cfg.train;
    hhnas_train::TrainConfig {
        epochs: t.epochs,
        batch_size: t.batch_size,
        seed: cfg.run.seed,
        device: t.device.clone(),
        patience: (t.patience > 0).then_some(t.patience),
        max_train_rows: (t.max_train_rows > 0).then_some(t.max_train_rows),
        sort_by_length: t.sort_by_length,
        cnn_channels: t.cnn_channels,
        branch_pool: t.branch_pool,
    }
}

/// The training result without its weights (stored apart, under the same key).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct TrainSummary {
    pub outcome: TrainOutcome,
    pub spec: hhnas_train::ModelSpec,
}

/// Everything the iterations share.
struct Inputs {
    ds_key: Key,
    ds: Dataset,
    rules: Option<(Key, RuleOutput)>,
    judge: Option<(Key, FeatureMatrix)>,
    enc_key: Key,
    enc: EncoderAssets,
    /// Frozen encoder: the encode stage's vectors of every row.
    encoded: Option<(Key, hhnas_train::Embeddings)>,
}

fn train_key(
    inputs: &Inputs,
    spec: &hhnas_train::ModelSpec,
    tcfg: &hhnas_train::TrainConfig,
) -> Key {
    let mut kb = KeyBuilder::new("train", version::TRAIN);
    // The device is not part of the key: a candidate trained on one GPU is not retrained
    // because the run moved to another.
    let mut keyed = tcfg.clone();
    keyed.device = String::new();
    kb.input(&inputs.ds_key)
        .input(&inputs.enc_key)
        .param(spec)
        .param(&keyed);
    // Feature inputs only matter to models that use them, so Model 1 stays cached when
    // only the feature configuration changes.
    if spec.llm_branch {
        kb.input(&inputs.judge.as_ref().expect("judge computed").0);
    }
    if spec.rule_branch {
        kb.input(&inputs.rules.as_ref().expect("rules computed").0);
    }
    if let Some((k, _)) = &inputs.encoded {
        kb.input(k);
    }
    kb.finish()
}

fn checkpoint_path(scratch: &Path, key: &Key) -> PathBuf {
    scratch
        .join("checkpoints")
        .join(format!("{}.ckpt", key.hex()))
}

fn train_node(
    exec: &mut Exec,
    cfg: &PipelineConfig,
    inputs: &Inputs,
    iteration: u64,
    proposal: &Proposal,
) -> Result<(Key, TrainSummary)> {
    let spec = model_spec(&proposal.candidate);
    let tcfg = train_config(cfg);
    let key = train_key(inputs, &spec, &tcfg);
    // A result without its weights is incomplete: retrain rather than keep a model that
    // eval and predict cannot load.
    if exec.store.contains("train", &key) {
        let weights_ok = match exec.store.get_bytes("weights", &key)? {
            Lookup::Hit(_) => true,
            Lookup::Corrupt(warning) => {
                tracing::warn!("{warning}");
                false
            }
            Lookup::Miss => false,
        };
        if !weights_ok {
            tracing::warn!(
                "weights of candidate {} are missing or damaged; retraining it",
                key.short()
            );
            let _ = std::fs::remove_file(exec.store.path("train", &key));
        }
    }
    let summary = exec.node("train", Some(iteration), key, |exec| {
        let ckpt_path = checkpoint_path(&exec.scratch, &key);
        let resume = match std::fs::read(&ckpt_path) {
            Ok(bytes) => match crate::store::decode::<hhnas_train::Checkpoint>(&bytes) {
                Ok(c) => {
                    exec.progress.line(&format!(
                        "train (iteration {iteration}): resuming after epoch {}",
                        c.epoch
                    ));
                    Some(c)
                }
                Err(e) => {
                    tracing::warn!(
                        "ignoring unreadable checkpoint {}: {e:#}",
                        ckpt_path.display()
                    );
                    None
                }
            },
            Err(_) => None,
        };
        let rule_classes = inputs.rules.as_ref().map(|(_, r)| r.rules.column_classes());
        let data = hhnas_train::TrainData {
            dataset: &inputs.ds,
            llm_features: inputs
                .judge
                .as_ref()
                .map(|(_, m)| m)
                .filter(|_| spec.llm_branch),
            rule_features: inputs
                .rules
                .as_ref()
                .map(|(_, r)| &r.matrix)
                .filter(|_| spec.rule_branch),
            rule_classes: rule_classes.as_deref(),
            embeddings: inputs.encoded.as_ref().map(|(_, e)| e),
        };
        let progress = exec.progress;
        let total = tcfg.epochs;
        let training_file = exec.training_file.clone();
        let model = proposal.candidate.model_number();
        let mut on_epoch = |ckpt: &hhnas_train::Checkpoint, report: &hhnas_train::EpochReport| {
            let state = crate::runs::TrainingProgress {
                iteration,
                model,
                epoch: report.epoch,
                epochs: total,
                valid_acc: report.valid_acc,
                best_valid_acc: ckpt.best_valid_acc,
                train_loss: report.train_loss,
                epoch_secs: report.secs,
            };
            if let Err(e) = serde_json::to_vec(&state)
                .map_err(anyhow::Error::from)
                .and_then(|bytes| write_atomic(&training_file, &bytes))
            {
                tracing::warn!("could not write {}: {e:#}", training_file.display());
            }
            match crate::store::encode(ckpt) {
                Ok(bytes) => {
                    if let Err(e) = write_atomic(&ckpt_path, &bytes) {
                        tracing::warn!("could not write checkpoint: {e:#}");
                    }
                }
                Err(e) => tracing::warn!("could not encode checkpoint: {e:#}"),
            }
            progress.message(&format!(
                "train (iteration {iteration}): epoch {}/{total} valid {:.2}% loss {:.4}",
                report.epoch,
                report.valid_acc * 100.0,
                report.train_loss
            ));
        };
        let started = Instant::now();
        let mut outcome =
            hhnas_train::train_candidate(data, &inputs.enc, &spec, &tcfg, resume, &mut on_epoch)
                .map_err(train_error)?;
        let weights = std::mem::take(&mut outcome.best_weights);
        exec.store.put_bytes("weights", &key, &weights)?;
        let summary = format!(
            "model {} valid {:.2}% test {:.2}% ({} epochs{}{})",
            proposal.candidate.model_number(),
            outcome.best_valid_acc * 100.0,
            outcome.test_acc * 100.0,
            outcome.curve.len(),
            if outcome.stopped_early {
                ", early stop"
            } else {
                ""
            },
            match (&outcome.failed, outcome.curve.last()) {
                (Some(f), _) => format!(", FAILED: {f}"),
                (None, Some(e)) if !e.train_loss.is_finite() => format!(
                    ", diverged in epoch {}: kept epoch {}",
                    e.epoch, outcome.best_epoch
                ),
                _ => String::new(),
            }
        );
        let metrics = json!({
            "summary": summary,
            "valid_acc": outcome.best_valid_acc,
            "test_acc": outcome.test_acc,
            "best_epoch": outcome.best_epoch,
            "epochs_run": outcome.curve.len(),
            "curve": outcome.curve.iter().map(|e| e.valid_acc).collect::<Vec<_>>(),
            "epoch_secs": outcome.curve.iter().map(|e| e.secs).collect::<Vec<_>>(),
            "stopped_early": outcome.stopped_early,
            "failed": outcome.failed,
            "examples_per_sec": outcome.examples_per_sec,
            "compute_secs": started.elapsed().as_secs_f64(),
        });
        Ok((
            TrainSummary {
                outcome,
                spec: spec.clone(),
            },
            metrics,
        ))
    })?;
    // Only once the result is stored is the checkpoint of no further use.
    let _ = std::fs::remove_file(checkpoint_path(&exec.scratch, &key));
    let _ = std::fs::remove_file(&exec.training_file);
    Ok((key, summary))
}

fn probabilities_json(state: &SearchState, cfg: &hhnas_search::SearchConfig) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> =
        hhnas_search::mutation_probabilities(state, cfg)
            .into_iter()
            .map(|(p, v)| (p.name().to_string(), json!(v)))
            .collect();
    serde_json::Value::Object(map)
}

/// Iterations a run performs: `fixed` trains its one candidate once; more iterations would
/// only replay it.
pub fn iterations(cfg: &PipelineConfig) -> u64 {
    if cfg.search.strategy == hhnas_search::Strategy::Fixed {
        1
    } else {
        cfg.run.iterations
    }
}

/// Runs (or continues) one run to the end. The caller holds its lock.
fn execute(run: &RunDir, cfg: &PipelineConfig) -> Result<()> {
    let cache_dir = run
        .path
        .parent()
        .and_then(Path::parent)
        .context("run directory is not inside a cache")?;
    let journal = run.journal();
    let contents = journal.read()?;
    if contents.torn_tail {
        tracing::warn!(
            "{}: last line was cut mid-write; ignoring it and resuming",
            journal.path().display()
        );
    }
    let recorded = stage_records(&contents.events)
        .map(|r| (r.stage.clone(), r.iteration, r.key.clone()))
        .collect();
    let progress = Progress::new(iterations(cfg));
    let mut exec = Exec {
        store: Store::new(cache_dir),
        journal,
        recorded,
        progress: &progress,
        scratch: cache_dir.join("scratch"),
        training_file: run.training_file(),
    };

    let (ds_key, ds) = dataset_node(&mut exec, cfg)?;
    // Feature stages run once, up front, so a bad LLM endpoint fails before any training.
    let rules = Some(rules_node(&mut exec, cfg, ds_key, &ds)?);
    let judge = Some(judge_node(&mut exec, cfg, ds_key, &ds)?);
    let (enc_key, enc) = encoder_node(&mut exec, cfg, ds_key, &ds)?;
    let encoded = match cfg.encoder.mode {
        config::EncoderMode::Frozen => {
            Some(encode_node(&mut exec, cfg, ds_key, &ds, enc_key, &enc)?)
        }
        config::EncoderMode::Finetune => None,
    };
    let inputs = Inputs {
        ds_key,
        ds,
        rules,
        judge,
        enc_key,
        enc,
        encoded,
    };

    let search_cfg = &cfg.search;
    let mut state_key = KeyBuilder::new("search_init", version::SEARCH_INIT)
        .param(search_cfg)
        .finish();
    let mut state = hhnas_search::init_state(search_cfg);
    let total = iterations(cfg);
    for iteration in 0..total {
        progress.set_position(iteration);
        let sample_key = KeyBuilder::new("sample", version::SAMPLE)
            .input(&state_key)
            .param(search_cfg)
            .param(&(cfg.run.seed, iteration))
            .finish();
        let proposal: Proposal = exec.node("sample", Some(iteration), sample_key, |_| {
            let p = hhnas_search::sample(&state, search_cfg, cfg.run.seed, iteration);
            let params: serde_json::Map<String, serde_json::Value> = hhnas_search::describe(&p.candidate)
                .into_iter()
                .map(|(k, v)| (k, json!(v)))
                .collect();
            let mutations: Vec<String> = p
                .mutations
                .iter()
                .map(|m| format!("{} {:?}: {} -> {}", m.param.name(), m.action, m.from, m.to))
                .collect();
            let metrics = json!({
                "summary": format!("model {} {}", p.candidate.model_number(),
                    if mutations.is_empty() { "initial".to_string() } else { mutations.join(", ") }),
                "model": p.candidate.model_number(),
                "params": params,
                "mutations": mutations,
            });
            Ok((p, metrics))
        })?;
        let (train_key, summary) = train_node(&mut exec, cfg, &inputs, iteration, &proposal)?;
        let accuracy = summary.outcome.best_valid_acc;
        let update_key = KeyBuilder::new("update", version::UPDATE)
            .input(&state_key)
            .input(&sample_key)
            .input(&train_key)
            .param(search_cfg)
            .finish();
        state = exec.node("update", Some(iteration), update_key, |_| {
            let next = hhnas_search::update(&state, search_cfg, &proposal, accuracy);
            let metrics = json!({
                "summary": format!("best so far {:.2}%", next.best.as_ref().map_or(0.0, |b| b.accuracy) * 100.0),
                "probabilities": probabilities_json(&next, search_cfg),
                "q_table": serde_json::to_value(&next.q).unwrap_or_default(),
            });
            Ok((next, metrics))
        })?;
        state_key = update_key;
    }
    progress.set_position(total);
    progress.finish();
    let report_paths = write_run_report(std::slice::from_ref(run), &run.report_dir())?;
    exec.journal.append(&Event::Finished { ts: now() })?;
    println!(
        "run {} finished; report: {}",
        run.id,
        report_paths
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    Ok(())
}

/// Takes the run's lock and executes it; a live holder means "already running".
fn run_locked(run: &RunDir, cfg: &PipelineConfig, command: &str) -> Result<Outcome> {
    match lock::acquire(&run.path)? {
        Acquire::Busy(holder) => {
            let pid = holder.map(|h| h.pid);
            println!(
                "run {} already running{}",
                run.id,
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            );
            Ok(Outcome::AlreadyRunning(pid))
        }
        Acquire::Held(_lock, stale) => {
            // Another resume may have finished the run while we waited for the lock.
            if run.is_finished() {
                println!("nothing to do: run {} has finished", run.id);
                return Ok(Outcome::NothingToDo);
            }
            if let Some(pid) = stale {
                tracing::warn!(
                    "taking over the lock of run {} from dead process {pid}",
                    run.id
                );
            }
            let journal = run.journal();
            journal.append(&Event::Session {
                ts: now(),
                pid: std::process::id(),
                command: command.to_string(),
            })?;
            let result = execute(run, cfg);
            if let Err(e) = &result {
                // Stage failures are journaled by the node; anything else (unreadable
                // data, an unreachable server) is journaled here so status can show it.
                let last_failed = journal
                    .read()
                    .map(|c| matches!(c.events.last(), Some(Event::Failed { .. })))
                    .unwrap_or(false);
                if !last_failed {
                    journal.append(&Event::Failed {
                        ts: now(),
                        stage: "run".into(),
                        iteration: None,
                        message: format!("{e:#}"),
                    })?;
                }
            }
            result.map(|()| Outcome::Done)
        }
    }
}

pub fn cmd_run(
    cache: &Path,
    config_path: Option<&Path>,
    profile: Option<&str>,
    sets: &[String],
    seeds: &[u64],
) -> Result<Outcome> {
    let loaded = config::load(config_path, profile, sets)?;
    let mut base = loaded.config.clone();
    // Freeze the data location as this shell sees it (HHNAS_SPIDER_DIR included), as an
    // absolute path, so a resume from cron reads the same files.
    let dir = spider_dir(&base);
    base.data.spider_dir = std::path::absolute(&dir).unwrap_or(dir);
    // A run that cannot read its data is not worth a run directory `resume` would retry.
    hhnas_spider::check_spider_dir(&base.data.spider_dir).map_err(user)?;
    let seeds: Vec<u64> = if seeds.is_empty() {
        vec![base.run.seed]
    } else {
        seeds.to_vec()
    };
    // Every run directory exists before the first trains, so a kill during seed 0 leaves
    // the later seeds for `resume` too.
    let mut created = Vec::new();
    for seed in seeds {
        let mut cfg = base.clone();
        cfg.run.seed = seed;
        let run = runs::create(cache, &cfg, &loaded.profile, &loaded.source, sets)?;
        println!(
            "run {} created ({}, profile {})",
            run.id, loaded.source, loaded.profile
        );
        created.push((run, cfg));
    }
    for (run, cfg) in &created {
        run_locked(run, cfg, "run")?;
    }
    Ok(Outcome::Done)
}

/// `resume RUN` continues that run; `resume` alone continues every unfinished run, oldest
/// first, skipping those another process holds and going on past one that fails.
pub fn cmd_resume(cache: &Path, name: Option<&str>) -> Result<Outcome> {
    if let Some(n) = name {
        let run = runs::find(cache, Some(n), false)?.context("run not found")?;
        if run.is_finished() {
            println!("nothing to do: run {} has finished", run.id);
            return Ok(Outcome::NothingToDo);
        }
        let cfg = run.config()?;
        warn_if_config_changed(&run, &cfg);
        return run_locked(&run, &cfg, "resume");
    }
    let pending: Vec<RunDir> = runs::list(cache)?
        .into_iter()
        .filter(|r| !r.is_finished())
        .collect();
    if pending.is_empty() {
        println!(
            "nothing to do: no unfinished run under {} (start one with `hhnas-pipe run`)",
            runs::runs_root(cache).display()
        );
        return Ok(Outcome::NothingToDo);
    }
    let mut first_error = None;
    let mut outcome = Outcome::NothingToDo;
    for run in pending {
        let result = run.config().and_then(|cfg| {
            warn_if_config_changed(&run, &cfg);
            run_locked(&run, &cfg, "resume")
        });
        match result {
            Ok(Outcome::Done) => outcome = Outcome::Done,
            Ok(other) => {
                if outcome == Outcome::NothingToDo {
                    outcome = other;
                }
            }
            Err(e) => {
                eprintln!("hhnas-pipe: run {} failed: {e:#}", run.id);
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(outcome),
    }
}

/// A changed pipeline.toml is a new run, never a silent edit of this one.
fn warn_if_config_changed(run: &RunDir, frozen: &PipelineConfig) {
    let Ok(meta) = run.meta() else { return };
    let path = Path::new(&meta.config_source);
    if !path.is_file() {
        return;
    }
    if let Ok(loaded) = config::load(Some(path), Some(&meta.profile), &meta.sets) {
        let mut current = loaded.config;
        // What `run` itself fixed at creation is not a change of the file.
        current.run.seed = frozen.run.seed;
        current.data.spider_dir = frozen.data.spider_dir.clone();
        if &current != frozen {
            println!(
                "note: {} changed since run {} started; resuming with the run's frozen config \
                 ({}). Start a new run to use the new one.",
                path.display(),
                run.id,
                run.path.join("config.toml").display()
            );
        }
    }
}

pub fn cmd_status(cache: &Path, name: Option<&str>, json_out: bool, all: bool) -> Result<Outcome> {
    if all {
        let runs = runs::list(cache)?;
        let mut statuses: Vec<status::Status> = Vec::new();
        for r in &runs {
            match status::collect(r, None) {
                Ok(s) => statuses.push(s),
                // An unreadable run is named, not silently left out of the list.
                Err(e) => eprintln!("run {}: unreadable: {e:#}", r.id),
            }
        }
        if json_out {
            println!("{}", serde_json::to_string_pretty(&statuses)?);
        } else if statuses.is_empty() {
            println!("no runs under {}", runs::runs_root(cache).display());
        } else {
            for s in statuses {
                println!(
                    "{:<40} {:<12} {:>4}/{:<4} best {}",
                    s.run_id,
                    s.state,
                    s.iterations_done,
                    s.iterations_total,
                    s.best
                        .as_ref()
                        .and_then(|b| b.valid_acc)
                        .map(|a| format!("{:.2}%", a * 100.0))
                        .unwrap_or("-".into())
                );
            }
        }
        return Ok(Outcome::Done);
    }
    let Some(run) = runs::find(cache, name, false)? else {
        println!(
            "no runs under {}; start one with `hhnas-pipe run`",
            runs::runs_root(cache).display()
        );
        return Ok(Outcome::NothingToDo);
    };
    let s = status::collect(&run, Some(cache))?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", status::render(&s));
    }
    Ok(Outcome::Done)
}

/// Store entries referenced by any journal, plus those never collected (LLM answers are a
/// paid-for cache of their own; weights follow their train entries).
pub fn cmd_gc(cache: &Path, dry_run: bool) -> Result<Outcome> {
    // A live run has entries it stored but not yet journaled: hold every run's lock for
    // the whole collection, and do nothing while any run is live.
    let mut held = Vec::new();
    for run in runs::list(cache)? {
        match lock::acquire(&run.path)? {
            Acquire::Held(lock, _) => held.push(lock),
            Acquire::Busy(holder) => {
                println!(
                    "run {} is running{}; gc skipped (run it when no run is live)",
                    run.id,
                    holder
                        .map(|h| format!(" (pid {})", h.pid))
                        .unwrap_or_default()
                );
                return Ok(Outcome::AlreadyRunning(None));
            }
        }
    }
    let mut live: HashSet<(String, String)> = HashSet::new();
    for run in runs::list(cache)? {
        for e in run.journal().read()?.events {
            if let Event::Stage(r) = e {
                if r.stage == "train" {
                    live.insert(("weights".into(), r.key.clone()));
                }
                live.insert((r.stage, r.key));
            }
        }
    }
    let store = Store::new(cache);
    let (mut removed, mut bytes) = (0usize, 0u64);
    for entry in walkdir::WalkDir::new(store.root())
        .min_depth(2)
        .max_depth(2)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
    {
        let stage = entry
            .path()
            .parent()
            .and_then(|p| p.file_name())
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let name = entry.file_name().to_string_lossy().to_string();
        if stage == "llm_answers" || live.contains(&(stage.clone(), name.clone())) {
            continue;
        }
        bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
        removed += 1;
        if dry_run {
            println!("would remove {}", entry.path().display());
        } else {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    println!(
        "{} {removed} entries ({:.1} MB)",
        if dry_run { "would remove" } else { "removed" },
        bytes as f64 / 1e6
    );
    Ok(Outcome::Done)
}

pub fn cmd_data_stats(
    config_path: Option<&Path>,
    profile: Option<&str>,
    sets: &[String],
) -> Result<Outcome> {
    let loaded = config::load(config_path, profile, sets)?;
    let cfg = &loaded.config;
    let src = hhnas_spider::read_spider_dir(&spider_dir(cfg)).map_err(user)?;
    let ds = hhnas_spider::build_dataset(&src, &data_params(cfg)?).map_err(user)?;
    print!("{}", hhnas_spider::dataset_stats(&ds));
    Ok(Outcome::Done)
}

pub fn cmd_fetch_data(dest: Option<&Path>, base_url: Option<&str>) -> Result<Outcome> {
    let dest = match dest {
        Some(d) => d.to_path_buf(),
        None => spider_dir(&config::load(None, None, &[])?.config),
    };
    let base = base_url.unwrap_or(hhnas_spider::fetch::DEFAULT_BASE_URL);
    let report =
        hhnas_spider::fetch::fetch_spider(base, &dest).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{report}");
    Ok(Outcome::Done)
}

/// The stored pieces of a run that evaluation and prediction need.
struct Trained {
    store: Store,
    cfg: PipelineConfig,
    inputs: Inputs,
    summary: TrainSummary,
    weights: Vec<u8>,
}

fn load_stored<T: DeserializeOwned>(store: &Store, stage: &str, key: &str) -> Result<T> {
    let k = Key::parse(key).with_context(|| format!("bad key {key}"))?;
    match store.get::<Stored<T>>(stage, &k)? {
        Lookup::Hit(s) => Ok(s.value),
        _ => Err(user_error!(
            "{}: missing or damaged. Fix: `hhnas-pipe resume` the run to recompute it",
            store.path(stage, &k).display()
        )),
    }
}

fn load_trained(cache: &Path, run_name: &str, candidate: Option<&str>) -> Result<Trained> {
    let run = runs::find(cache, Some(run_name), false)?.context("run not found")?;
    let cfg = run.config()?;
    let store = Store::new(cache);
    let events = run.journal().read()?.events;
    let stage_key = |stage: &str| {
        stage_records(&events)
            .filter(|r| r.stage == stage)
            .last()
            .map(|r| r.key.clone())
    };
    let missing = |s: &str| {
        user_error!(
            "run {}: no `{s}` stage in its journal yet. Fix: let the run progress, then retry",
            run.id
        )
    };
    let ds_key = stage_key("spider").ok_or_else(|| missing("spider"))?;
    let enc_key = stage_key("encoder").ok_or_else(|| missing("encoder"))?;
    let rules_key = stage_key("rules");
    let judge_key = stage_key("llm_judge");
    let encode_key = stage_key("encode");
    let chosen_key = match candidate {
        Some(c) => {
            let matches: HashSet<&str> = stage_records(&events)
                .filter(|r| r.stage == "train" && !c.is_empty() && r.key.starts_with(c))
                .map(|r| r.key.as_str())
                .collect();
            match matches.len() {
                1 => matches.into_iter().next().unwrap_or_default().to_string(),
                0 => {
                    return Err(user_error!(
                        "run {}: no trained candidate with key {c}. Fix: copy a key from \
                         `hhnas-pipe status --json`",
                        run.id
                    ))
                }
                n => {
                    return Err(user_error!(
                        "run {}: {n} candidates' keys start with `{c}`. Fix: give more digits",
                        run.id
                    ))
                }
            }
        }
        // The best candidate exactly as `status` and the report name it.
        None => status::collect(&run, None)?
            .best
            .and_then(|b| b.train_key)
            .ok_or_else(|| missing("train"))?,
    };
    let chosen = stage_records(&events)
        .find(|r| r.stage == "train" && r.key == chosen_key)
        .ok_or_else(|| missing("train"))?;
    let summary: TrainSummary = load_stored(&store, "train", &chosen.key)?;
    let weights = match store.get_bytes("weights", &Key::parse(&chosen.key).context("bad key")?)? {
        Lookup::Hit(w) => w,
        _ => return Err(user_error!("weights of candidate {} are missing or damaged. Fix: `hhnas-pipe resume` retrains only that candidate", chosen.key)),
    };
    let parse = |k: &str| Key::parse(k).with_context(|| format!("bad key {k}"));
    let inputs = Inputs {
        ds_key: parse(&ds_key)?,
        ds: load_stored(&store, "spider", &ds_key)?,
        rules: match rules_key {
            Some(k) => Some((parse(&k)?, load_stored(&store, "rules", &k)?)),
            None => None,
        },
        judge: match judge_key {
            Some(k) => Some((parse(&k)?, load_stored(&store, "llm_judge", &k)?)),
            None => None,
        },
        enc_key: parse(&enc_key)?,
        enc: load_stored(&store, "encoder", &enc_key)?,
        encoded: match encode_key {
            Some(k) => Some((parse(&k)?, load_stored(&store, "encode", &k)?)),
            None => None,
        },
    };
    Ok(Trained {
        store,
        cfg,
        inputs,
        summary,
        weights,
    })
}

/// Feature rows for new texts, computed the way the run computed them.
fn features_for(
    t: &Trained,
    texts: &[&str],
) -> Result<(Option<FeatureMatrix>, Option<FeatureMatrix>)> {
    let spec = &t.summary.spec;
    let rules = match (&t.inputs.rules, spec.rule_branch) {
        (Some((_, r)), true) => Some(hhnas_features::rule_features(&r.rules, texts)),
        _ => None,
    };
    let judge = if spec.llm_branch {
        let f = &t.cfg.features;
        let ranker = hhnas_features::Bm25Ranker::build(&t.inputs.ds);
        let queries = hhnas_features::Queries::new(texts);
        Some(if f.judge == "llm" {
            let client = llm_client(&t.cfg, &t.store)?;
            hhnas_features::judge_llm(&ranker, &t.inputs.ds, &queries, f.shortlist_k, &client)
                .map_err(user)?
                .0
        } else {
            hhnas_features::judge_lexical(&ranker, &queries, f.shortlist_k, f.lexical_true_m)
        })
    } else {
        None
    };
    Ok((judge, rules))
}

fn probabilities(t: &Trained, texts: &[String]) -> Result<Vec<Vec<f32>>> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (judge, rules) = features_for(t, &refs)?;
    // A frozen-encoder head reads the new questions' vectors, from the same encoder.
    let embeddings = match &t.inputs.encoded {
        Some((_, e)) => Some(
            hhnas_train::embed(&t.inputs.enc, &refs, e.pooling, &t.cfg.train.device, &mut |_, _| {})
                .map_err(train_error)?,
        ),
        None => None,
    };
    let rule_classes = t.inputs.rules.as_ref().map(|(_, r)| r.rules.column_classes());
    hhnas_train::predict(
        &t.inputs.enc,
        &t.summary.spec,
        t.inputs.ds.classes.len(),
        &t.weights,
        hhnas_train::PredictInput {
            texts,
            embeddings: embeddings.as_ref(),
            llm: judge.as_ref(),
            rules: rules.as_ref(),
            rule_classes: rule_classes.as_deref(),
        },
        &t.cfg.train.device,
    )
    .map_err(train_error)
}

pub fn cmd_eval(
    cache: &Path,
    run: &str,
    candidate: Option<&str>,
    input: Option<&Path>,
) -> Result<Outcome> {
    let t = load_trained(cache, run, candidate)?;
    let (texts, labels): (Vec<String>, Vec<Option<usize>>) = match input {
        None => t
            .inputs
            .ds
            .test
            .iter()
            .map(|&i| {
                (
                    t.inputs.ds.rows[i].question.clone(),
                    Some(t.inputs.ds.rows[i].label as usize),
                )
            })
            .unzip(),
        Some(path) => read_question_file(path, &t.inputs.ds)?,
    };
    let probs = probabilities(&t, &texts)?;
    let mut correct = 0usize;
    let mut known = 0usize;
    for (p, label) in probs.iter().zip(&labels) {
        if let Some(l) = label {
            known += 1;
            if argmax(p) == *l {
                correct += 1;
            }
        }
    }
    let accuracy = if known == 0 {
        "n/a (no question names a database of this run)".to_string()
    } else {
        format!("{:.2}%", 100.0 * correct as f64 / known as f64)
    };
    println!(
        "{} questions, {known} with a known class: accuracy {accuracy} (validation accuracy \
         at training {:.2}%)",
        texts.len(),
        t.summary.outcome.best_valid_acc * 100.0
    );
    Ok(Outcome::Done)
}

/// A Spider-format question file: `[{"db_id": ..., "question": ...}]`; a db_id outside the
/// run's classes counts as unknown.
fn read_question_file(path: &Path, ds: &Dataset) -> Result<(Vec<String>, Vec<Option<usize>>)> {
    #[derive(Deserialize)]
    struct Q {
        question: Option<String>,
        #[serde(rename = "SpiderQuestion")]
        spider_question: Option<String>,
        db_id: Option<String>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        user_error!(
            "{}: cannot read ({e}). Fix: pass an existing file",
            path.display()
        )
    })?;
    let rows: Vec<Q> = serde_json::from_str(&text).map_err(|e| {
        user_error!("{}: not a JSON list of questions ({e}). Fix: use Spider's format [{{\"db_id\", \"question\"}}]", path.display())
    })?;
    let mut class_of: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, c) in ds.classes.iter().enumerate() {
        for m in &c.members {
            class_of.insert(m, i);
        }
    }
    let mut texts = Vec::new();
    let mut labels = Vec::new();
    for (i, r) in rows.into_iter().enumerate() {
        let q = r.question.or(r.spider_question).ok_or_else(|| {
            user_error!(
                "{}: row {i}: no `question` field. Fix: add the question text",
                path.display()
            )
        })?;
        texts.push(q);
        labels.push(r.db_id.as_deref().and_then(|d| class_of.get(d).copied()));
    }
    Ok((texts, labels))
}

fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.partial_cmp(b.1).unwrap_or(std::cmp::Ordering::Equal))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

pub fn cmd_predict(cache: &Path, run: &str, question: &str, top: usize) -> Result<Outcome> {
    let t = load_trained(cache, run, None)?;
    let probs = probabilities(&t, &[question.to_string()])?;
    let row = probs.first().context("the model returned no prediction")?;
    let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    for (class, p) in ranked.into_iter().take(top) {
        let name = t
            .inputs
            .ds
            .classes
            .get(class)
            .map_or("?", |c| c.name.as_str());
        println!("{:>6.2}%  {name}", p * 100.0);
    }
    Ok(Outcome::Done)
}

/// Builds the report input of several runs from their journals.
fn report_input(runs_: &[RunDir]) -> Result<hhnas_report::ReportInput> {
    let mut out = Vec::new();
    for run in runs_ {
        let s = status::collect(run, None)?;
        let names: Vec<String> = s
            .mutation_probabilities
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        // P(s) per iteration come from each update's journal line.
        let mut probs_by_iter: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for e in run.journal().read()?.events {
            if let Event::Stage(r) = e {
                if r.stage == "update" {
                    if let (Some(i), Some(m)) = (
                        r.iteration,
                        r.metrics.get("probabilities").and_then(|v| v.as_object()),
                    ) {
                        probs_by_iter.insert(
                            i,
                            names
                                .iter()
                                .map(|n| m.get(n).and_then(|v| v.as_f64()).unwrap_or(0.0))
                                .collect(),
                        );
                    }
                }
            }
        }
        let params = |v: &serde_json::Value| -> Vec<(String, String)> {
            v.as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str().map(str::to_string).unwrap_or(v.to_string()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let iterations = s
            .iterations
            .iter()
            .filter(|r| r.valid_acc.is_some())
            .map(|r| hhnas_report::IterationRecord {
                iteration: r.iteration as usize,
                model: r.model.unwrap_or(0) as u8,
                params: params(&r.params),
                valid_acc: r.valid_acc.unwrap_or(0.0),
                wall_secs: r.wall_secs,
                cached: r.cached,
                mutation_probs: probs_by_iter.get(&r.iteration).cloned().unwrap_or_default(),
            })
            .collect();
        out.push(hhnas_report::RunRecord {
            run_id: s.run_id.clone(),
            strategy: s.strategy.clone(),
            seed: s.seed,
            iterations,
            best: s.best.as_ref().map(|b| hhnas_report::BestCandidate {
                iteration: b.iteration as usize,
                model: b.model.unwrap_or(0) as u8,
                params: params(&b.params),
                valid_acc: b.valid_acc.unwrap_or(0.0),
                test_acc: b.test_acc,
            }),
            mutation_probs_names: names,
        });
    }
    Ok(hhnas_report::ReportInput { runs: out })
}

fn write_run_report(runs_: &[RunDir], out: &Path) -> Result<Vec<PathBuf>> {
    let input = report_input(runs_)?;
    hhnas_report::write_report(&input, out).map_err(|e| anyhow::anyhow!("writing report: {e}"))
}

pub fn cmd_report(cache: &Path, names: &[String], out: Option<&Path>) -> Result<Outcome> {
    let mut selected = Vec::new();
    if names.is_empty() {
        selected.extend(runs::find(cache, None, false)?);
    }
    for n in names {
        selected.push(runs::find(cache, Some(n), false)?.context("run not found")?);
    }
    let Some(first) = selected.first() else {
        return Err(user_error!(
            "no runs to report on. Fix: start one with `hhnas-pipe run`"
        ));
    };
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| first.report_dir());
    let paths = write_run_report(&selected, &out)?;
    let md = paths
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "md"));
    if let Some(md) = md {
        print!("{}", std::fs::read_to_string(md).unwrap_or_default());
    }
    println!(
        "\nwrote {}",
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Outcome::Done)
}

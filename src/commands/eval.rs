//! `hhnas-pipe eval` and `predict`: a trained candidate of a run, loaded from the store,
//! applied to the test split, a question file or one question.

use crate::config::Frozen;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use hhnas_data::Dataset;
use hhnas_ensemble::{combine, ProbMatrix};
use hhnas_features::FeatureMatrix;
use hhnas_train::{Embeddings, ModelSpec};

use crate::config::{DataSource, PipelineConfig};
use crate::dag::Event;
use crate::dag::Evidence;
use crate::dag::{Stage, WEIGHTS};
use crate::error::ExitClass;
use crate::nodes::data::dataset_stage;
use crate::nodes::ensemble::FinalMetrics;
use crate::nodes::{argmax, features, Inputs, TrainSummary};
use crate::status;
use hhnas_engine::error::Outcome;
use hhnas_engine::journal::stage_records;
use hhnas_engine::outln;
use hhnas_engine::replay::load_stored;
use hhnas_engine::rundir::{self, RunDir};
use hhnas_engine::store::{Key, Lookup, Store};
use hhnas_engine::user_error;

/// The stored pieces of a run that evaluation and prediction need.
struct Trained {
    store: Store,
    cfg: PipelineConfig,
    inputs: Inputs,
    /// The model: one candidate, or the members of an ensemble with their weights.
    members: Vec<Loaded>,
    /// Which model this is, in words (every output says it).
    describe: String,
    /// Validation accuracy when the model was chosen.
    valid_acc: f64,
    /// Why new texts' evidence differs from what the run's models trained on, one line per
    /// evidence node that this release computes otherwise (empty for its own runs).
    stale_evidence: Vec<String>,
}

/// One candidate's weights, as the model uses them.
struct Loaded {
    summary: TrainSummary,
    weights: Vec<u8>,
    /// Its share of the model's probabilities (1 for a single candidate).
    share: f64,
}

/// The train key of `candidate` (a unique key prefix), or of the run's best candidate
/// exactly as `status` and the report name it.
fn chosen_train_key(run: &RunDir, events: &[Event], candidate: Option<&str>) -> Result<Key> {
    let Some(c) = candidate else {
        return status::collect(run, None)?
            .best
            .and_then(|b| b.train_key)
            .ok_or_else(|| missing_stage(run, Stage::Train));
    };
    let matches: HashSet<Key> = stage_records(events)
        .filter(|r| r.stage == Stage::Train && !c.is_empty() && r.key.hex().starts_with(c))
        .map(|r| r.key)
        .collect();
    match matches.len() {
        1 => Ok(*matches.iter().next().expect("one match")),
        0 => Err(user_error!(
            "run {}: no trained candidate with key {c}. Fix: copy a key from \
             `hhnas-pipe status --json`",
            run.id
        )),
        n => Err(user_error!(
            "run {}: {n} candidates' keys start with `{c}`. Fix: give more digits",
            run.id
        )),
    }
}

fn missing_stage(run: &RunDir, stage: Stage) -> anyhow::Error {
    user_error!(
        "run {}: no `{stage}` stage in its journal yet. Fix: let the run progress, then retry",
        run.id
    )
}

/// The shared inputs as the run's journal names them, read back from the store, and a
/// line for each evidence node this release would compute otherwise.
fn stored_inputs(
    run: &RunDir,
    store: &Store,
    events: &[Event],
    cfg: &PipelineConfig,
) -> Result<(Inputs, Vec<String>)> {
    let ds_stage = dataset_stage(cfg);
    let stage_key = |stage: Stage| {
        stage_records(events)
            .filter(|r| r.stage == stage)
            .last()
            .map(|r| r.key)
    };
    let required = |stage: Stage| stage_key(stage).ok_or_else(|| missing_stage(run, stage));
    let ds_key = required(ds_stage)?;
    let enc_key = required(Stage::Encoder)?;
    fn stored<T: serde::de::DeserializeOwned>(
        store: &Store,
        stage: Stage,
        key: Option<Key>,
    ) -> Result<Option<(Key, T)>> {
        key.map(|k| Ok((k, load_stored(store, stage, &k)?)))
            .transpose()
    }
    let rules = stored(store, Stage::Rules, stage_key(Stage::Rules))?;
    let judge = stored(store, Stage::LlmJudge, stage_key(Stage::LlmJudge))?;
    let encoded = stored(store, Stage::Encode, stage_key(Stage::Encode))?;
    // The evidence nodes the run joined to the vectors, in DAG order.
    let mut evidence = Vec::new();
    let mut stale = Vec::new();
    let mut prev = stage_key(Stage::Encode);
    for e in Evidence::ALL {
        if let Some((key, scores)) =
            stored(store, Stage::Evidence(e), stage_key(Stage::Evidence(e)))?
        {
            stale.extend(made_by_another_release(e, key, ds_key, cfg, prev));
            evidence.push((e, key, scores));
            prev = Some(key);
        }
    }
    let enc = load_stored(store, Stage::Encoder, &enc_key)?;
    // A warm run's candidates read the tuned encoder's vectors: new texts need it too.
    let (enc_key, enc) = match stage_key(Stage::Warm) {
        Some(k) => {
            let cache = store.root().parent().context("store outside a cache")?;
            crate::nodes::warm::stored_tuned(store, cache, k, &enc)?
        }
        None => (enc_key, enc),
    };
    let ds = load_stored(store, ds_stage, &ds_key)?;
    let inputs = Inputs::assemble(crate::nodes::Stored {
        ds_key,
        ds,
        rules,
        judge,
        enc_key,
        enc,
        encoded,
        evidence,
        bank: cfg.features.evidence_bank,
    });
    Ok((inputs, stale))
}

/// New questions get their evidence from this release's code: a warning where a node's
/// code changed since the run made its values (`None` where it did not).
fn made_by_another_release(
    e: Evidence,
    key: Key,
    ds_key: Key,
    cfg: &PipelineConfig,
    prev: Option<Key>,
) -> Option<String> {
    let now = crate::nodes::evidence_key(e, ds_key, cfg.features.evidence_bank, prev?);
    (now != key).then(|| {
        format!(
            "this run's {} evidence was made by another release of hhnas-pipe (key {}, this \
             release's would be {}): new questions get this release's values, which its \
             models did not train on. Fix: use the release that made the run, or run the \
             search again",
            e.name(),
            key.short(),
            now.short()
        )
    })
}

fn load_trained(cache: &Path, run_name: &str, candidate: Option<&str>) -> Result<Trained> {
    let run = rundir::find(cache, Some(run_name), false)?.context("run not found")?;
    let cfg = run.config()?;
    let store = Store::new(cache);
    let events = run.journal().read()?.events;
    let (inputs, stale_evidence) = stored_inputs(&run, &store, &events, &cfg)?;
    let final_model = stage_records(&events)
        .filter(|r| r.stage == Stage::Final)
        .last()
        .map(|r| FinalMetrics::read(&r.metrics));
    let (members, describe, valid_acc) = match (candidate, final_model) {
        (None, Some(f)) => {
            let total: u32 = f.members.iter().map(|m| m.picks).sum();
            let members = f
                .members
                .iter()
                .map(|m| {
                    let share = f64::from(m.picks) / f64::from(total.max(1));
                    load_member(&store, m.train_key, m.weights_key, share)
                })
                .collect::<Result<Vec<_>>>()?;
            (members, f.kind.clone(), f.valid_acc)
        }
        (candidate, _) => {
            let chosen = chosen_train_key(&run, &events, candidate)?;
            if !stage_records(&events).any(|r| r.stage == Stage::Train && r.key == chosen) {
                return Err(missing_stage(&run, Stage::Train));
            }
            let member = load_member(&store, chosen, chosen, 1.0)?;
            let describe = match candidate {
                Some(_) => format!("the candidate {}", chosen.short()),
                None => "the best single candidate (by validation accuracy)".to_string(),
            };
            let valid = member.summary.outcome.best_valid_acc;
            (vec![member], describe, valid)
        }
    };
    Ok(Trained {
        store,
        cfg,
        inputs,
        members,
        describe,
        valid_acc,
        stale_evidence,
    })
}

/// A candidate's training summary (its spec) and the weights stored under `weights_key`
/// (its own train key, or its refit's key).
fn load_member(store: &Store, train_key: Key, weights_key: Key, share: f64) -> Result<Loaded> {
    let summary: TrainSummary = load_stored(store, Stage::Train, &train_key)?;
    let weights = match store.get_bytes(WEIGHTS, &weights_key)? {
        Lookup::Hit(w) => w,
        _ => {
            return Err(user_error!(
                "weights of candidate {} are missing or damaged. Fix: `hhnas-pipe \
                 resume` retrains only that candidate",
                weights_key.hex()
            ))
        }
    };
    Ok(Loaded {
        summary,
        weights,
        share,
    })
}

/// The questions `eval` or `predict` scores.
enum Questions {
    /// The run's own test split: the members read the values the run stored for these
    /// rows, as its final node did, so a run prints its release's figure under any release.
    OwnTest,
    /// New texts: their vectors, evidence and features computed by this release.
    New(Vec<String>),
}

/// What the members read for the questions scored, row `i` for question `i`.
struct Reading {
    texts: Vec<String>,
    embeddings: Option<Embeddings>,
    judge: Option<FeatureMatrix>,
    rules: Option<FeatureMatrix>,
}

impl Trained {
    /// Whether some member has the branch `has`.
    fn reads(&self, has: fn(&ModelSpec) -> bool) -> bool {
        self.members.iter().any(|m| has(&m.summary.spec))
    }

    fn reading(&self, questions: &Questions) -> Result<Reading> {
        match questions {
            Questions::OwnTest => Ok(self.stored_reading(&self.inputs.ds.test)),
            Questions::New(texts) => self.new_reading(texts),
        }
    }

    /// Rows `rows` of the run's dataset, from the values the run stored.
    fn stored_reading(&self, rows: &[usize]) -> Reading {
        let i = &self.inputs;
        Reading {
            texts: rows
                .iter()
                .map(|&r| i.ds.rows[r].question.clone())
                .collect(),
            embeddings: i.encoded.as_ref().map(|(_, e)| e.select_rows(rows)),
            judge: (i.judge.as_ref())
                .filter(|_| self.reads(|s| s.llm_branch))
                .map(|(_, m)| m.select_rows(rows)),
            rules: (i.rules.as_ref())
                .filter(|_| self.reads(|s| s.rule_branch))
                .map(|(_, r)| r.matrix.select_rows(rows)),
        }
    }

    /// New texts, read the way the run read its own (the encoder, then the evidence).
    fn new_reading(&self, texts: &[String]) -> Result<Reading> {
        for line in &self.stale_evidence {
            tracing::warn!("{line}");
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let i = &self.inputs;
        // A frozen-encoder head reads the new questions' vectors, from the run's encoder.
        let embeddings = match &i.encoded {
            Some((_, e)) => {
                let base = hhnas_train::embed(
                    &i.enc,
                    &refs,
                    e.pooling,
                    self.cfg.train.device.parsed(),
                    &mut |_, _| {},
                )
                .map_err(ExitClass::classified)?;
                Some(i.head_vectors(&self.cfg, base, &refs)?)
            }
            None => None,
        };
        let judge = match self.reads(|s| s.llm_branch) {
            true => Some(features::judge_texts(&self.cfg, &self.store, &i.ds, &refs)?),
            false => None,
        };
        let rules = (i.rules.as_ref())
            .filter(|_| self.reads(|s| s.rule_branch))
            .map(|(_, r)| hhnas_features::rule_features(&r.rules, &refs));
        Ok(Reading {
            texts: texts.to_vec(),
            embeddings,
            judge,
            rules,
        })
    }
}

/// The model's class probabilities for `questions`: its members' probabilities, weighed
/// by their shares.
fn probabilities(t: &Trained, questions: &Questions) -> Result<Vec<Vec<f32>>> {
    let read = t.reading(questions)?;
    let classes = t.inputs.ds.classes.len();
    let mut each = Vec::with_capacity(t.members.len());
    let mut shares = Vec::with_capacity(t.members.len());
    for m in &t.members {
        let spec = &m.summary.spec;
        // A cross-fitted candidate is its fold models, averaged.
        let models = hhnas_train::unpack_bag(&m.weights).map_err(ExitClass::classified)?;
        for weights in &models {
            let p = hhnas_train::predict(
                &t.inputs.enc,
                spec,
                classes,
                weights,
                hhnas_train::PredictInput {
                    texts: &read.texts,
                    embeddings: read.embeddings.as_ref(),
                    llm: read.judge.as_ref().filter(|_| spec.llm_branch),
                    rules: read.rules.as_ref().filter(|_| spec.rule_branch),
                    rule_classes: t.inputs.rule_classes.as_deref(),
                },
                t.cfg.train.device.parsed(),
            )
            .map_err(ExitClass::classified)?;
            each.push(ProbMatrix::from_rows(&p, classes)?);
            shares.push(m.share / models.len() as f64);
        }
    }
    let model = combine(&each.iter().collect::<Vec<_>>(), &shares)?;
    Ok((0..model.rows).map(|i| model.row(i).to_vec()).collect())
}

pub fn cmd_eval(
    cache: &Path,
    run: &str,
    candidate: Option<&str>,
    input: Option<&Path>,
) -> Result<Outcome> {
    let t = load_trained(cache, run, candidate)?;
    let ds = &t.inputs.ds;
    let (questions, labels): (Questions, Vec<Option<usize>>) = match input {
        None => (
            Questions::OwnTest,
            ds.test
                .iter()
                .map(|&i| Some(ds.rows[i].label as usize))
                .collect(),
        ),
        Some(path) => {
            let (texts, labels) = match t.cfg.data.source {
                DataSource::Spider => read_question_file(path, ds)?,
                DataSource::Labelled => read_labelled_input(path, &t.cfg, ds)?,
            };
            (Questions::New(texts), labels)
        }
    };
    let probs = probabilities(&t, &questions)?;
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
    outln!("model: {}", t.describe);
    outln!(
        "{} questions, {known} with a known class: accuracy {accuracy} (validation accuracy \
         at training {:.2}%)",
        labels.len(),
        t.valid_acc * 100.0
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
        user_error!(
            "{}: not a JSON list of questions ({e}). Fix: use Spider's format \
             [{{\"db_id\", \"question\"}}]",
            path.display()
        )
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

/// A file in the labelled run's own format (its text and label fields); a label outside
/// the run's classes counts as unknown.
fn read_labelled_input(
    path: &Path,
    cfg: &PipelineConfig,
    ds: &Dataset,
) -> Result<(Vec<String>, Vec<Option<usize>>)> {
    let d = &cfg.data;
    let src = hhnas_spider::read_labelled_file(path, &d.text_field, &d.label_field)
        .map_err(ExitClass::classified)?;
    let records = hhnas_spider::labelled_records(&src).map_err(ExitClass::classified)?;
    let class_of: BTreeMap<&str, usize> = ds
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    Ok(records
        .into_iter()
        .map(|(text, label)| {
            let class = class_of.get(label.as_str()).copied();
            (text, class)
        })
        .unzip())
}

pub fn cmd_predict(cache: &Path, run: &str, question: &str, top: usize) -> Result<Outcome> {
    let t = load_trained(cache, run, None)?;
    let probs = probabilities(&t, &Questions::New(vec![question.to_string()]))?;
    outln!("model: {}", t.describe);
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
        outln!("{:>6.2}%  {name}", p * 100.0);
    }
    Ok(Outcome::Done)
}

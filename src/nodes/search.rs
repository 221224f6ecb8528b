//! The search nodes of one iteration: `sample` proposes a candidate from the search state,
//! `update` folds its accuracy into the next state. Their keys chain: each state is keyed
//! by the update that produced it, the first by `search_init`.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use hhnas_search::{Proposal, SearchConfig, SearchState};

use crate::config::PipelineConfig;
use crate::dag::Replay;
use crate::dag::Stage;
use hhnas_engine::store::Key;

/// Iterations a run performs: `fixed` trains its one candidate once; more iterations would
/// only replay it.
pub fn iterations(cfg: &PipelineConfig) -> u64 {
    if cfg.search.strategy == hhnas_search::Strategy::Fixed {
        1
    } else {
        cfg.run.iterations
    }
}

/// The key of the first search state, the input of iteration 0's sample.
pub(crate) fn init_key(search: &SearchConfig) -> Key {
    Stage::SearchInit.key().param(search).finish()
}

/// The journal line of a `sample` node, written here and read by `status`. Reading is
/// lenient: what is missing is `None`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct SampleMetrics {
    pub summary: String,
    /// Model 1-4 (SPEC §3).
    pub model: Option<u64>,
    /// Every parameter of the candidate, as text.
    pub params: Option<BTreeMap<String, String>>,
    /// The mutations from the previous candidate: `param action: from -> to`.
    pub mutations: Option<Vec<String>>,
}

impl SampleMetrics {
    fn of(p: &Proposal) -> Self {
        let params: BTreeMap<String, String> =
            hhnas_search::describe(&p.candidate).into_iter().collect();
        let mutations: Vec<String> = p
            .mutations
            .iter()
            .map(|m| format!("{} {:?}: {} -> {}", m.param.name(), m.action, m.from, m.to))
            .collect();
        let summary = format!(
            "model {} {}",
            p.candidate.model_number(),
            if mutations.is_empty() {
                "initial".to_string()
            } else {
                mutations.join(", ")
            }
        );
        SampleMetrics {
            summary,
            model: Some(u64::from(p.candidate.model_number())),
            params: Some(params),
            mutations: Some(mutations),
        }
    }

    /// The metrics of a journal line; an unreadable one reads as empty.
    pub fn read(metrics: &serde_json::Value) -> Self {
        Self::deserialize(metrics).unwrap_or_default()
    }
}

/// The journal line of an `update` node: the state's P(s) and Q-table, written here and
/// read by `status` and the report.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct UpdateMetrics {
    pub summary: String,
    /// Mutation probability of each parameter, by name.
    pub probabilities: Option<BTreeMap<String, f64>>,
    pub q_table: Option<serde_json::Value>,
}

impl UpdateMetrics {
    fn of(next: &SearchState, cfg: &SearchConfig) -> Self {
        let best = next.best.as_ref().map_or(0.0, |b| b.accuracy);
        UpdateMetrics {
            summary: format!("best so far {:.2}%", best * 100.0),
            probabilities: Some(probabilities(next, cfg)),
            q_table: Some(serde_json::to_value(&next.q).unwrap_or_default()),
        }
    }

    /// The metrics of a journal line; an unreadable one reads as empty.
    pub fn read(metrics: &serde_json::Value) -> Self {
        Self::deserialize(metrics).unwrap_or_default()
    }
}

/// P(s) of every parameter, by name.
fn probabilities(state: &SearchState, cfg: &SearchConfig) -> BTreeMap<String, f64> {
    hhnas_search::mutation_probabilities(state, cfg)
        .into_iter()
        .map(|(p, v)| (p.name().to_string(), v))
        .collect()
}

pub(crate) fn sample_key(cfg: &PipelineConfig, state_key: Key, iteration: u64) -> Key {
    Stage::Sample
        .key()
        .input(&state_key)
        .param(&cfg.search)
        .param(&(cfg.run.seed, iteration))
        .finish()
}

pub(crate) fn sample_node(
    exec: &mut Replay,
    cfg: &PipelineConfig,
    state: &SearchState,
    state_key: Key,
    iteration: u64,
) -> Result<(Key, Proposal)> {
    let key = exec.kept_iteration_key::<Proposal>(
        Stage::Sample,
        iteration,
        sample_key(cfg, state_key, iteration),
        |_, _| true,
    );
    let proposal = exec.node(Stage::Sample, Some(iteration), key, |_| {
        let p = hhnas_search::sample(state, &cfg.search, cfg.run.seed, iteration);
        let metrics = SampleMetrics::of(&p);
        Ok((p, metrics))
    })?;
    Ok((key, proposal))
}

/// The node after an iteration's sample and train; its key is the next state's.
pub(crate) struct Update<'a> {
    pub state: &'a SearchState,
    pub state_key: Key,
    pub sample_key: Key,
    pub proposal: &'a Proposal,
    pub train_key: Key,
    pub accuracy: f64,
}

pub(crate) fn update_node(
    exec: &mut Replay,
    cfg: &PipelineConfig,
    iteration: u64,
    u: Update,
) -> Result<(Key, SearchState)> {
    let search = &cfg.search;
    let key = Stage::Update
        .key()
        .input(&u.state_key)
        .input(&u.sample_key)
        .input(&u.train_key)
        .param(search)
        .finish();
    // Never another release's key: the update is cheap and follows from the (kept)
    // sample and candidate, so a search another release began goes on from this release's
    // reading of its own history.
    let next = exec.node(Stage::Update, Some(iteration), key, |_| {
        let next = hhnas_search::update(u.state, search, u.proposal, u.accuracy);
        let metrics = UpdateMetrics::of(&next, search);
        Ok((next, metrics))
    })?;
    Ok((key, next))
}

//! `hhnas-pipe status`: what a run is doing, from its files alone (meta, frozen config,
//! journal, lock file). It never takes the lock and never touches the store's contents.

use crate::config::Frozen;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::dag::Stage;
use crate::dag::{Event, StageRecord};
use crate::nodes::data::dataset_stage;
use crate::nodes::ensemble::{EnsembleMetrics, FinalMetrics};
use crate::nodes::{iterations, SampleMetrics, TrainMetrics, UpdateMetrics};
use hhnas_engine::host::now;
use hhnas_engine::lock;
use hhnas_engine::rundir::{timestamp_human, RunDir};
use hhnas_engine::store::Key;

#[derive(Debug, Serialize)]
pub struct Status {
    pub run_id: String,
    pub profile: String,
    pub created: String,
    pub state: RunState,
    pub pid: Option<u32>,
    pub heartbeat_age_secs: Option<f64>,
    /// For a run submitted to Slurm: its task and what the scheduler says of it.
    pub slurm: Option<String>,
    pub strategy: String,
    pub seed: u64,
    /// Cross-fitted candidates (`train.bag_folds`): their "valid" is out of fold over
    /// the training and validation rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bag_folds: Option<usize>,
    pub iterations_total: u64,
    pub iterations_done: u64,
    /// The node that is (or was, when interrupted) next: stage and iteration.
    pub current: Option<String>,
    /// The candidate in training: its last finished epoch (unfinished runs only).
    pub training: Option<crate::nodes::train::TrainingProgress>,
    pub last_error: Option<String>,
    pub iterations: Vec<IterationRow>,
    pub best: Option<IterationRow>,
    /// Test accuracy of the character n-gram SVM alone (the `char_svm` node's top class,
    /// on the same split): the simple baseline the hybrids must beat. None without that
    /// node.
    pub svm_test_acc: Option<f64>,
    pub eta_secs: Option<f64>,
    pub cache_bytes: Option<u64>,
    pub cache_entries: Option<usize>,
    /// Per-stage summaries of the one-off stages (dataset, features, encoder).
    pub stages: BTreeMap<String, serde_json::Value>,
    /// Ensemble selection over the run's candidates, when it ran.
    pub ensemble: Option<EnsembleMetrics>,
    /// The model eval and predict use, when the nodes after the search ran (else the best
    /// single candidate).
    pub final_model: Option<FinalMetrics>,
    /// The search state after the last update: P(s) and the Q-table.
    pub mutation_probabilities: serde_json::Value,
    pub q_table: serde_json::Value,
}

/// Where a run stands, from its files alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RunState {
    /// A live process holds its lock (fresh heartbeat).
    #[serde(rename = "running")]
    Running,
    /// Stopped without finishing or failing (killed, cancelled, a machine gone).
    #[serde(rename = "interrupted")]
    Interrupted,
    /// Its last event is a failure.
    #[serde(rename = "failed")]
    Failed,
    #[serde(rename = "finished")]
    Finished,
    /// Created, nothing journaled yet.
    #[serde(rename = "not started")]
    NotStarted,
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunState::Running => "running",
            RunState::Interrupted => "interrupted",
            RunState::Failed => "failed",
            RunState::Finished => "finished",
            RunState::NotStarted => "not started",
        })
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct IterationRow {
    pub iteration: u64,
    pub model: Option<u64>,
    pub params: serde_json::Value,
    pub mutations: serde_json::Value,
    pub valid_acc: Option<f64>,
    pub test_acc: Option<f64>,
    pub wall_secs: f64,
    /// True when the training result came from the cache.
    pub cached: bool,
    /// Store key of the trained candidate (for `eval --candidate`).
    pub train_key: Option<Key>,
    pub note: Option<String>,
}

/// What a run's journal says, folded event by event.
#[derive(Default)]
struct Journaled {
    rows: BTreeMap<u64, IterationRow>,
    /// The one-off stages' metrics, by stage.
    stages: BTreeMap<String, serde_json::Value>,
    ensemble: Option<EnsembleMetrics>,
    final_model: Option<FinalMetrics>,
    finished: bool,
    last_error: Option<String>,
    probs: serde_json::Value,
    q_table: serde_json::Value,
    /// The iteration whose update `probs` and `q_table` come from: the latest, also when
    /// a resume journaled an earlier one again after it.
    probs_iteration: Option<u64>,
    last_node: Option<(Stage, Option<u64>)>,
}

impl Journaled {
    fn read(events: &[Event]) -> Self {
        let mut j = Journaled::default();
        for event in events {
            match event {
                Event::Stage(rec) => j.stage(rec),
                Event::Failed {
                    stage,
                    iteration,
                    message,
                    ..
                } => {
                    let stage = stage.map_or(hhnas_engine::journal::RUN, Stage::name);
                    j.last_error = Some(match iteration {
                        Some(i) => format!("{stage} (iteration {i}): {message}"),
                        None => format!("{stage}: {message}"),
                    })
                }
                Event::Finished { .. } => j.finished = true,
                Event::Session { .. } => {}
            }
        }
        j
    }

    fn stage(&mut self, rec: &StageRecord) {
        self.last_node = Some((rec.stage, rec.iteration));
        self.last_error = None;
        let Some(it) = rec.iteration else {
            match rec.stage {
                Stage::Ensemble => self.ensemble = Some(EnsembleMetrics::read(&rec.metrics)),
                Stage::Final => self.final_model = Some(FinalMetrics::read(&rec.metrics)),
                Stage::Refit => {}
                _ => {
                    self.stages
                        .insert(rec.stage.name().to_string(), rec.metrics.clone());
                }
            }
            return;
        };
        let row = self.rows.entry(it).or_insert_with(|| IterationRow {
            iteration: it,
            ..IterationRow::default()
        });
        row.wall_secs += rec.wall_secs;
        let m = &rec.metrics;
        match rec.stage {
            Stage::Sample => {
                let m = SampleMetrics::read(m);
                row.model = m.model;
                row.params = to_json(m.params);
                row.mutations = to_json(m.mutations);
            }
            Stage::Train => {
                let m = TrainMetrics::read(m);
                row.valid_acc = m.valid_acc;
                row.test_acc = m.test_acc;
                row.cached = rec.cache_hit;
                row.train_key = Some(rec.key);
                row.note = m
                    .failed
                    .map(|s| format!("failed: {s}"))
                    .or_else(|| m.stopped_early.then(|| "early stop".to_string()));
            }
            Stage::Update if self.probs_iteration.is_none_or(|p| it >= p) => {
                let m = UpdateMetrics::read(m);
                self.probs = to_json(m.probabilities);
                self.q_table = m.q_table.unwrap_or_default();
                self.probs_iteration = Some(it);
            }
            _ => {}
        }
    }
}

/// Everything `status` shows about `run`, from its files alone. Long (~110 lines)
/// because it fills one flat struct field by field, each from one source.
pub fn collect(run: &RunDir, cache_dir: Option<&Path>) -> Result<Status> {
    let meta = run.meta()?;
    let config = run.config()?;
    let contents = run.journal().read()?;
    let Journaled {
        rows,
        stages,
        ensemble,
        final_model,
        finished,
        last_error,
        probs,
        q_table,
        last_node,
        ..
    } = Journaled::read(&contents.events);
    let done: Vec<&IterationRow> = rows.values().filter(|r| r.valid_acc.is_some()).collect();
    let iterations_done = rows
        .values()
        .filter(|r| r.valid_acc.is_some() && !r.params.is_null())
        .count() as u64;
    let best = done
        .iter()
        .filter(|r| r.valid_acc.is_some())
        .max_by(|a, b| {
            a.valid_acc
                .partial_cmp(&b.valid_acc)
                .unwrap_or(std::cmp::Ordering::Equal)
                // Earlier iteration wins ties.
                .then(b.iteration.cmp(&a.iteration))
        })
        .map(|r| (*r).clone());

    let holder = lock::live_holder(&run.path);
    let alive = holder.is_some();
    let state = if alive {
        RunState::Running
    } else if finished {
        RunState::Finished
    } else if last_error.is_some() {
        RunState::Failed
    } else if contents.events.is_empty() {
        RunState::NotStarted
    } else {
        RunState::Interrupted
    };
    let current = if finished {
        None
    } else {
        let first = dataset_stage(&config);
        let after = after_search(&config.ensemble);
        Some(next_node(
            first,
            last_node.as_ref(),
            iterations(&config),
            &after,
        ))
    };
    // ETA from the mean wall time of iterations computed (not replayed) so far.
    let trained: Vec<f64> = done
        .iter()
        .filter(|r| !r.cached)
        .map(|r| r.wall_secs)
        .collect();
    let total = iterations(&config);
    let remaining = total.saturating_sub(iterations_done);
    let eta_secs = (!finished && !trained.is_empty())
        .then(|| trained.iter().sum::<f64>() / trained.len() as f64 * remaining as f64);
    let (cache_bytes, cache_entries) = match cache_dir {
        Some(dir) => {
            let (b, n) = hhnas_engine::store::Store::new(dir).size();
            (Some(b), Some(n))
        }
        None => (None, None),
    };
    Ok(Status {
        run_id: meta.run_id,
        profile: meta.profile,
        created: timestamp_human(meta.created),
        state,
        pid: holder.as_ref().filter(|_| alive).map(|h| h.pid),
        heartbeat_age_secs: holder.filter(|_| alive).map(|h| now() - h.heartbeat),
        // The scheduler is asked only while the run is unfinished.
        slurm: hhnas_engine::slurm::job_of(run).map(|job| {
            let state = if finished {
                "finished".to_string()
            } else {
                hhnas_engine::slurm::task_state(&job)
            };
            format!("job {}: {state}", job.task_id())
        }),
        strategy: strategy_name(&config.search.strategy),
        seed: config.run.seed,
        bag_folds: config.train.cross_fit_folds(),
        iterations_total: iterations(&config),
        iterations_done,
        current,
        training: (!finished).then(|| run.training()).flatten(),
        last_error,
        iterations: rows.into_values().collect(),
        best,
        svm_test_acc: stages
            .get(crate::dag::Evidence::CharSvm.name())
            .and_then(|m| crate::nodes::evidence::EvidenceMetrics::read(m).test_top1),
        eta_secs,
        cache_bytes,
        cache_entries,
        stages,
        ensemble,
        final_model,
        mutation_probabilities: probs,
        q_table,
    })
}

/// A journal field as JSON; absent is null.
fn to_json<T: Serialize>(v: Option<T>) -> serde_json::Value {
    v.and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or_default()
}

/// The strategy as pipeline.toml spells it ("hhnas", "random", "evolution(10, 3)", ...).
pub fn strategy_name(s: &hhnas_search::Strategy) -> String {
    match s {
        hhnas_search::Strategy::Evolution {
            population,
            sample_size,
        } => format!("evolution(population {population}, sample {sample_size})"),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

/// The nodes after the search that `[ensemble]` asks for, in order.
fn after_search(e: &crate::config::EnsembleSection) -> Vec<Stage> {
    let mut nodes = Vec::new();
    if e.enabled {
        nodes.push(Stage::Ensemble);
    }
    if e.refit {
        nodes.push(Stage::Refit);
    }
    if e.enabled || e.refit {
        nodes.push(Stage::Final);
    }
    nodes
}

/// The node after the last completed one (`first`, the dataset node, when none is);
/// `after` are the nodes that follow the last iteration, before the report.
fn next_node(
    first: Stage,
    last: Option<&(Stage, Option<u64>)>,
    total: u64,
    after: &[Stage],
) -> String {
    let Some((stage, iteration)) = last else {
        return first.name().to_string();
    };
    let then = |s: Stage| {
        // A refit runs once per member: the next may be another refit or what follows.
        let i = after.iter().position(|&a| a == s);
        match i.and_then(|i| after.get(i + 1)) {
            Some(n) if s == Stage::Refit => format!("{} or {n}", Stage::Refit),
            Some(n) => n.name().to_string(),
            None => "report".to_string(),
        }
    };
    let Some(i) = *iteration else {
        return match stage {
            s @ (Stage::Ensemble | Stage::Refit | Stage::Final) => then(*s),
            _ => format!("after {stage}"),
        };
    };
    match stage {
        Stage::Sample => format!("{} (iteration {i})", Stage::Train),
        Stage::Train => format!("{} (iteration {i})", Stage::Update),
        Stage::Update if i + 1 < total => format!("{} (iteration {})", Stage::Sample, i + 1),
        Stage::Update => after
            .first()
            .map_or("report".to_string(), |s| s.name().to_string()),
        _ => format!("after {stage} (iteration {i})"),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map(|a| format!("{:.2}%", a * 100.0))
        .unwrap_or_else(|| "-".into())
}

fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{secs:.1}s")
    }
}

fn params_line(params: &serde_json::Value) -> String {
    match params.as_object() {
        Some(map) => map
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str().map(str::to_string).unwrap_or(v.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => String::new(),
    }
}

/// The human-readable status. Long (~130 lines) because it writes the sections in the
/// order a reader sees them, each a few lines.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "run        {}", s.run_id);
    let _ = writeln!(
        out,
        "profile    {} (strategy {}, seed {})",
        s.profile, s.strategy, s.seed
    );
    let _ = writeln!(out, "created    {} UTC", s.created);
    if let Some(k) = s.bag_folds {
        let _ = writeln!(
            out,
            "scoring    cross-fitted over {k} folds: \"valid\" is out of fold over the training and validation rows"
        );
    }
    let state = match (s.pid, s.heartbeat_age_secs) {
        (Some(pid), Some(age)) => format!("running (pid {pid}, heartbeat {age:.0}s ago)"),
        _ => s.state.to_string(),
    };
    let _ = writeln!(out, "state      {state}");
    if let Some(slurm) = &s.slurm {
        let _ = writeln!(out, "slurm      {slurm}");
    }
    let _ = writeln!(
        out,
        "progress   {}/{} iterations{}",
        s.iterations_done,
        s.iterations_total,
        s.current
            .as_ref()
            .map(|c| format!(", next: {c}"))
            .unwrap_or_default()
    );
    if let Some(t) = &s.training {
        let _ = writeln!(
            out,
            "training   {} (model {}): epoch {}/{} done, valid {} (best {}), loss {:.4}, {} per epoch",
            t.node
                .clone()
                .unwrap_or_else(|| crate::nodes::train::candidate_label(t.iteration, t.fold)),
            t.model,
            t.epoch,
            t.epochs,
            pct(Some(t.valid_acc)),
            pct(Some(t.best_valid_acc)),
            t.train_loss,
            duration(t.epoch_secs)
        );
    }
    if let Some(e) = &s.last_error {
        let _ = writeln!(out, "last error {e}");
    }
    if let Some(eta) = s.eta_secs {
        let _ = writeln!(out, "eta        {}", duration(eta));
    }
    for (stage, m) in &s.stages {
        if let Some(summary) = hhnas_engine::replay::Common::read(m).summary {
            let _ = writeln!(out, "{stage:<10} {summary}");
        }
    }
    if let Some(b) = &s.best {
        let _ = writeln!(
            out,
            "best       iteration {} model {} valid {} test {}  {}",
            b.iteration,
            b.model.unwrap_or(0),
            pct(b.valid_acc),
            pct(b.test_acc),
            params_line(&b.params)
        );
    }
    if let Some(e) = &s.ensemble {
        let _ = writeln!(out, "ensemble   {}", e.summary);
    }
    if s.best.is_some() {
        let model = match &s.final_model {
            Some(f) => f.summary.clone(),
            None => "the best single candidate".to_string(),
        };
        let _ = writeln!(out, "model      {model}; eval and predict use it");
    }
    if let (Some(best), Some(svm)) = (s.best.as_ref().and_then(|b| b.test_acc), s.svm_test_acc) {
        let verdict = if best > svm {
            "above it"
        } else {
            "NOT above it: the hybrid does not beat this simple baseline"
        };
        let _ = writeln!(
            out,
            "baseline   the character n-gram SVM alone (char_svm) test {}: best test is {:.3}x it, {verdict}",
            pct(Some(svm)),
            best / svm
        );
    }
    if let (Some(b), Some(n)) = (s.cache_bytes, s.cache_entries) {
        let _ = writeln!(out, "cache      {:.1} MB in {n} entries", b as f64 / 1e6);
    }
    if let Some(map) = s.mutation_probabilities.as_object() {
        let line: Vec<String> = map
            .iter()
            .map(|(k, v)| format!("{k}={:.3}", v.as_f64().unwrap_or(0.0)))
            .collect();
        let _ = writeln!(out, "P(s)       {}", line.join(" "));
    }
    if !s.iterations.is_empty() {
        let _ = writeln!(
            out,
            "\n{:>4}  {:>5}  {:>8}  {:>8}  {:>8}  {:<7}  params",
            "iter", "model", "valid", "test", "wall", "source"
        );
        for r in &s.iterations {
            let _ = writeln!(
                out,
                "{:>4}  {:>5}  {:>8}  {:>8}  {:>8}  {:<7}  {}{}",
                r.iteration,
                r.model.map(|m| m.to_string()).unwrap_or("-".into()),
                pct(r.valid_acc),
                pct(r.test_acc),
                duration(r.wall_secs),
                if r.valid_acc.is_none() {
                    "pending"
                } else if r.cached {
                    "cache"
                } else {
                    "trained"
                },
                params_line(&r.params),
                r.note
                    .as_ref()
                    .map(|n| format!("  [{n}]"))
                    .unwrap_or_default()
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_node_of_a_run_not_started_is_its_dataset_node() {
        assert_eq!(next_node(Stage::Labelled, None, 30, &[]), "labelled");
        assert_eq!(next_node(Stage::Spider, None, 30, &[]), "spider");
        let last = (Stage::Rules, None);
        assert_eq!(
            next_node(Stage::Labelled, Some(&last), 30, &[]),
            "after rules"
        );
    }

    #[test]
    fn the_nodes_after_the_search_come_before_the_report() {
        let e = crate::config::EnsembleSection {
            enabled: true,
            refit: true,
            ..Default::default()
        };
        let after = after_search(&e);
        let at =
            |stage: Stage, i: Option<u64>| next_node(Stage::Spider, Some(&(stage, i)), 30, &after);
        assert_eq!(at(Stage::Update, Some(29)), "ensemble");
        assert_eq!(at(Stage::Ensemble, None), "refit");
        assert_eq!(at(Stage::Refit, None), "refit or final");
        assert_eq!(at(Stage::Final, None), "report");
        assert_eq!(
            next_node(Stage::Spider, Some(&(Stage::Update, Some(29))), 30, &[]),
            "report"
        );
    }

    /// A resume that retraces a search another release began journals the earlier
    /// iterations' updates again; killed halfway, its journal ends on an earlier update
    /// than the one the run had reached, whose P(s) status must still show.
    #[test]
    fn p_s_is_the_latest_iterations_also_when_an_earlier_update_is_journaled_after_it() {
        let update = |iteration: u64, p: f64| {
            Event::Stage(StageRecord {
                ts: 0.0,
                stage: Stage::Update,
                iteration: Some(iteration),
                key: hhnas_engine::store::KeyBuilder::new("update", 2)
                    .param(&(iteration, p.to_bits()))
                    .finish(),
                wall_secs: 0.0,
                cache_hit: false,
                metrics: serde_json::json!({"probabilities": {"learning_rate": p}}),
            })
        };
        let j = Journaled::read(&[update(0, 0.5), update(1, 0.3), update(0, 0.45)]);
        assert_eq!(j.probs["learning_rate"], 0.3);
    }
}

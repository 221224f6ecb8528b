//! `hhnas-pipe report`: Table 3, the accuracy curves and the P(s) plots of one or more
//! runs, from their journals (written by `hhnas-report`). A finished run writes its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::dag::Event;
use crate::dag::Stage;
use crate::nodes::UpdateMetrics;
use crate::status::{self, RunState};
use hhnas_engine::error::Outcome;
use hhnas_engine::rundir::{self, RunDir};
use hhnas_engine::user_error;
use hhnas_engine::{out, outln};

/// P(s) per iteration, in the order of `names`, from each update's journal line.
fn probabilities_by_iteration(run: &RunDir, names: &[String]) -> Result<BTreeMap<u64, Vec<f64>>> {
    let mut out = BTreeMap::new();
    for e in run.journal().read()?.events {
        let Event::Stage(r) = e else { continue };
        if r.stage != Stage::Update {
            continue;
        }
        let Some(i) = r.iteration else { continue };
        if let Some(p) = UpdateMetrics::read(&r.metrics).probabilities {
            let row = names
                .iter()
                .map(|n| p.get(n).copied().unwrap_or(0.0))
                .collect();
            out.insert(i, row);
        }
    }
    Ok(out)
}

/// A candidate's parameters as (name, text) pairs.
fn params(v: &serde_json::Value) -> Vec<(String, String)> {
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
}

fn run_record(run: &RunDir, state: Option<RunState>) -> Result<hhnas_report::RunRecord> {
    let s = status::collect(run, None)?;
    let names: Vec<String> = s
        .mutation_probabilities
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let probs_by_iter = probabilities_by_iteration(run, &names)?;
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
    Ok(hhnas_report::RunRecord {
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
        state: state.unwrap_or(s.state).to_string(),
        planned_iterations: s.iterations_total as usize,
        cross_fit_folds: s.bag_folds,
        baseline_test_acc: s.svm_test_acc,
        final_model: s.final_model.as_ref().map(|f| hhnas_report::FinalModel {
            kind: f.kind.clone(),
            members: f
                .members
                .iter()
                .map(|m| (m.iteration as usize, m.picks))
                .collect(),
            valid_acc: f.valid_acc,
            test_acc: f.test_acc,
            selected_test_acc: f.selected_test_acc,
            single_test_acc: f.single_test_acc,
            refit: f.refit,
        }),
    })
}

/// Builds the report input of several runs from their journals; `state`, where given,
/// stands for what the journal cannot say yet (the run writing its own report).
fn report_input(runs_: &[RunDir], state: Option<RunState>) -> Result<hhnas_report::ReportInput> {
    let runs = runs_
        .iter()
        .map(|r| run_record(r, state))
        .collect::<Result<_>>()?;
    Ok(hhnas_report::ReportInput { runs })
}

/// Writes the report of `runs_` into `out` (report.md first, report.html second).
pub(crate) fn write_run_report(
    runs_: &[RunDir],
    out: &Path,
    state: Option<RunState>,
) -> Result<Vec<PathBuf>> {
    let input = report_input(runs_, state)?;
    let files = if state == Some(RunState::Running) {
        hhnas_report::ReportFiles::Live
    } else {
        hhnas_report::ReportFiles::All
    };
    hhnas_report::write_report(&input, out, files).context("writing report")
}

pub fn cmd_report(cache: &Path, names: &[String], out: Option<&Path>) -> Result<Outcome> {
    let mut selected = Vec::new();
    if names.is_empty() {
        selected.extend(rundir::find(cache, None, false)?);
    }
    for n in names {
        selected.push(rundir::find(cache, Some(n), false)?.context("run not found")?);
    }
    let Some(first) = selected.first() else {
        return Err(user_error!(
            "no runs to report on. Fix: start one with `hhnas-pipe run`"
        ));
    };
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| first.report_dir());
    let paths = write_run_report(&selected, &out, None)?;
    let md = paths
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "md"));
    if let Some(md) = md {
        out!("{}", std::fs::read_to_string(md).unwrap_or_default());
    }
    outln!(
        "\nwrote {}",
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Outcome::Done)
}

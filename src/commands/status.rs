//! `hhnas-pipe status`: one run in full, or every run on a line. What is shown is
//! collected and rendered by [`crate::status`].

use std::path::Path;

use anyhow::Result;

use crate::status;
use hhnas_engine::error::Outcome;
use hhnas_engine::rundir;
use hhnas_engine::{errln, out, outln};

pub fn cmd_status(cache: &Path, name: Option<&str>, json_out: bool, all: bool) -> Result<Outcome> {
    if all {
        return status_all(cache, json_out);
    }
    let Some(run) = rundir::find(cache, name, false)? else {
        outln!(
            "no runs under {}; start one with `hhnas-pipe run`",
            rundir::runs_root(cache).display()
        );
        return Ok(Outcome::NothingToDo);
    };
    let s = status::collect(&run, Some(cache))?;
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        out!("{}", status::render(&s));
    }
    Ok(Outcome::Done)
}

/// `status --all`: every run, one line each.
fn status_all(cache: &Path, json_out: bool) -> Result<Outcome> {
    let runs = rundir::list(cache)?;
    let mut statuses: Vec<status::Status> = Vec::new();
    for r in &runs {
        match status::collect(r, None) {
            Ok(s) => statuses.push(s),
            // An unreadable run is named, not silently left out of the list.
            Err(e) => errln!("run {}: unreadable: {e:#}", r.id),
        }
    }
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&statuses)?);
    } else if statuses.is_empty() {
        outln!("no runs under {}", rundir::runs_root(cache).display());
    } else {
        for s in statuses {
            outln!(
                "{:<40} {:<12} {:>4}/{:<4} best {}",
                s.run_id,
                s.state.to_string(),
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
    Ok(Outcome::Done)
}

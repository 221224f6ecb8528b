//! `hhnas-pipe gc`: removes store entries that no run journal references.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result};

use crate::dag::Event;
use crate::dag::{Stage, LLM_ANSWERS, PROBS, WEIGHTS};
use hhnas_engine::error::Outcome;
use hhnas_engine::lock::{self, Acquire};
use hhnas_engine::outln;
use hhnas_engine::rundir;
use hhnas_engine::store::{Key, Store};

/// Store entries referenced by any journal, plus those never collected (LLM answers are a
/// paid-for cache of their own; weights and probabilities follow their train and refit
/// entries).
pub fn cmd_gc(cache: &Path, dry_run: bool) -> Result<Outcome> {
    // A live run has entries it stored but not yet journaled: hold every run's lock for
    // the whole collection, and do nothing while any run is live.
    let mut held = Vec::new();
    for run in rundir::list(cache)? {
        match lock::acquire(&run.path)? {
            Acquire::Held(lock, _) => held.push(lock),
            Acquire::Busy(holder) => {
                outln!(
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
    let live = live_entries(cache)?;
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
        let key = Key::parse(&entry.file_name().to_string_lossy());
        if stage == LLM_ANSWERS || key.is_some_and(|k| live.contains(&(stage.as_str(), k))) {
            continue;
        }
        bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
        removed += 1;
        if dry_run {
            outln!("would remove {}", entry.path().display());
        } else {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    outln!(
        "{} {removed} entries ({:.1} MB)",
        if dry_run { "would remove" } else { "removed" },
        bytes as f64 / 1e6
    );
    Ok(Outcome::Done)
}

/// (store folder, key) of every entry a journal names, weights and probabilities with
/// their train and refit entries.
fn live_entries(cache: &Path) -> Result<HashSet<(&'static str, Key)>> {
    let mut live = HashSet::new();
    for run in rundir::list(cache)? {
        for e in run.journal().read()?.events {
            if let Event::Stage(r) = e {
                if matches!(r.stage, Stage::Train | Stage::Refit) {
                    live.insert((PROBS, r.key));
                }
                // The warm node's tuned encoder is stored in the weights folder too.
                if matches!(r.stage, Stage::Train | Stage::Refit | Stage::Warm) {
                    live.insert((WEIGHTS, r.key));
                }
                live.insert((r.stage.name(), r.key));
            }
        }
    }
    Ok(live)
}

//! `cancel RUN`: stops a run wherever it runs. A queued or running Slurm task is
//! cancelled with `scancel`; a local process holding the run's lock gets SIGTERM. Either
//! way the journal and the store keep what finished, and `resume RUN` continues.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use hhnas_engine::error::Outcome;
use hhnas_engine::lock;
use hhnas_engine::outln;
use hhnas_engine::rundir;
use hhnas_engine::slurm;
use hhnas_engine::user_error;

pub fn cmd_cancel(cache: &Path, name: &str) -> Result<Outcome> {
    let run = rundir::find(cache, Some(name), false)?.context("run not found")?;
    if run.is_finished() {
        outln!("nothing to cancel: run {} has finished", run.id);
        return Ok(Outcome::NothingToDo);
    }
    // The scheduler's task first: it is the one that would start the run again.
    if let Some(job) = slurm::job_of(&run).filter(|j| slurm::is_active(&slurm::task_state(j))) {
        slurm::cancel(&job)?;
        outln!(
            "cancelled Slurm task {} of run {}; `hhnas-pipe resume {}` continues it",
            job.task_id(),
            run.id,
            run.id
        );
        return Ok(Outcome::Done);
    }
    let Some(holder) = lock::live_holder(&run.path) else {
        outln!("nothing to cancel: no process is working on run {}", run.id);
        return Ok(Outcome::NothingToDo);
    };
    if !holder.is_local() {
        return Err(user_error!(
            "run {} is worked on by process {} on host {}. Fix: cancel it on that host",
            run.id,
            holder.pid,
            holder.host.as_deref().unwrap_or("?"),
        ));
    }
    let status = Command::new("kill")
        .args(["-TERM", &holder.pid.to_string()])
        .status()
        .map_err(|e| user_error!("cannot run `kill` ({e})"))?;
    if !status.success() {
        return Err(user_error!(
            "could not signal process {} working on run {}: {status}. Fix: stop it yourself \
             (it may belong to another user)",
            holder.pid,
            run.id
        ));
    }
    outln!(
        "sent SIGTERM to process {} working on run {} (it stops any other run it works on \
         too); `hhnas-pipe resume {}` continues it",
        holder.pid,
        run.id,
        run.id
    );
    Ok(Outcome::Done)
}

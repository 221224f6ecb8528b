//! `cancel RUN`: stops a run wherever it runs. A Slurm task is cancelled with `scancel`;
//! a local process holding the run's lock gets SIGTERM. Either way the journal and the
//! store keep what finished, and `resume RUN` continues.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::lock;
use crate::outln;
use crate::run::Outcome;
use crate::runs;
use crate::slurm;
use crate::user_error;

pub fn cmd_cancel(cache: &Path, name: &str) -> Result<Outcome> {
    let run = runs::find(cache, Some(name), false)?.context("run not found")?;
    if run.is_finished() {
        outln!("nothing to cancel: run {} has finished", run.id);
        return Ok(Outcome::NothingToDo);
    }
    if let Some(job) = slurm::job_of(&run) {
        slurm::cancel(&job)?;
        outln!(
            "cancelled Slurm task {} of run {}; `hhnas-pipe resume {}` continues it",
            job.task_id(),
            run.id,
            run.id
        );
        return Ok(Outcome::Done);
    }
    let holder = lock::read_holder(&run.path).filter(|h| lock::pid_alive(h.pid));
    let Some(holder) = holder else {
        outln!("nothing to cancel: no process is working on run {}", run.id);
        return Ok(Outcome::NothingToDo);
    };
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

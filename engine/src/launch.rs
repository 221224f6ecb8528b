//! Where the runs of one `run` command execute: in this process one after another, in
//! one child process per device (`--devices`), or as a Slurm array (`--executor slurm`).
//!
//! Every executor runs the same thing, `resume RUN` on a run folder that `run` created,
//! so a run is the same journal whichever way it ran. The runs share one store: a node
//! two runs need (the dataset, the features, the encode stage) is computed by whichever
//! gets there first. With `--devices` the first process computes them alone and the
//! others start once its first iteration begins, so they replay them instead of
//! computing them again. Processes that do meet on a node (Slurm tasks starting
//! together) both compute it and write identical bytes by atomic rename; no lock spans a
//! node's computation.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::journal::Event;
use crate::rundir::RunDir;
use crate::{errln, outln, user_error};

/// How `run` executes its runs; `D` is a device name as the binary checks it.
#[derive(Clone, Debug, PartialEq)]
pub enum Executor<D> {
    /// In this process, one run after another.
    InProcess,
    /// One child process per device; run i goes to device i mod n.
    Devices(Vec<D>),
    /// One Slurm array task per run.
    Slurm,
}

impl<D> Executor<D> {
    /// From the command line: `--executor local|slurm` and `--devices`, each device read
    /// by `device` (its error names what is wrong).
    pub fn from_args(
        executor: &str,
        devices: &[String],
        device: impl Fn(&str) -> Result<D, String>,
    ) -> Result<Self> {
        match (executor, devices.is_empty()) {
            ("local", true) => Ok(Executor::InProcess),
            ("local", false) => devices
                .iter()
                .map(|d| {
                    device(d).map_err(|e| {
                        user_error!("--devices: {e}. Fix: e.g. --devices cuda:0,cuda:1")
                    })
                })
                .collect::<Result<_>>()
                .map(Executor::Devices),
            ("slurm", true) => Ok(Executor::Slurm),
            ("slurm", false) => Err(user_error!(
                "--devices with --executor slurm: Slurm gives each task its own devices. \
                 Fix: leave out --devices and ask for GPUs with `gres = \"gpu:1\"` in the \
                 [slurm] section of pipeline.toml"
            )),
            (other, _) => Err(user_error!(
                "--executor {other:?} is not known. Fix: use `local` (the default) or `slurm`"
            )),
        }
    }

    /// The device run number `i` trains on, when the executor decides it.
    pub fn device_for(&self, i: usize) -> Option<&D> {
        match self {
            Executor::Devices(d) => Some(&d[i % d.len()]),
            _ => None,
        }
    }
}

/// The binary this process runs, to start children with. On Linux `/proc/self/exe`: a
/// rebuild or upgrade that replaces the file while a multi-seed run goes on leaves
/// `current_exe` naming a deleted path ("... (deleted)"), and every later seed would
/// fail to start; `/proc/self/exe` still opens the binary this process runs.
fn own_binary() -> Result<std::path::PathBuf> {
    let proc_exe = Path::new("/proc/self/exe");
    if cfg!(target_os = "linux") && proc_exe.exists() {
        return Ok(proc_exe.to_path_buf());
    }
    std::env::current_exe().context("locating the hhnas-pipe binary")
}

/// Runs `runs` in one child process per device slot (slot j takes runs j, j + n, ...),
/// each child being `hhnas-pipe --cache-dir CACHE resume RUN`. Waits for all; a failed
/// run is named with the command that continues it.
pub fn run_in_processes(cache: &Path, runs: &[RunDir], slots: usize) -> Result<()> {
    let exe = own_binary()?;
    let failures: Vec<String> = std::thread::scope(|scope| {
        let exe = &exe;
        let worker = |slot: usize| {
            scope.spawn(move || {
                let mut failed = Vec::new();
                for run in runs.iter().skip(slot).step_by(slots) {
                    outln!("run {}: started in its own process (slot {slot})", run.id);
                    let status = Command::new(exe)
                        .arg("--cache-dir")
                        .arg(cache)
                        .args(["resume", &run.id])
                        .status();
                    match status {
                        Ok(s) if s.success() => {}
                        Ok(s) => failed.push(format!("{} ({s})", run.id)),
                        Err(e) => failed.push(format!("{} (could not start: {e})", run.id)),
                    }
                }
                failed
            })
        };
        let first = worker(0);
        // The others start when the first run has passed its shared nodes (or ended).
        while !first.is_finished() && !past_shared_nodes(&runs[0]) {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let mut workers = vec![first];
        workers.extend((1..slots).map(worker));
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|_| vec!["a worker thread".into()]))
            .collect()
    });
    if failures.is_empty() {
        return Ok(());
    }
    for f in &failures {
        errln!("hhnas-pipe: run {f} did not finish");
    }
    Err(anyhow::anyhow!(
        "{} of {} runs did not finish: {}. Fix: see their errors above; `hhnas-pipe \
         resume RUN` continues each from its last finished step",
        failures.len(),
        runs.len(),
        failures.join(", ")
    ))
}

/// Whether a run's journal shows its first iteration (every shared node done before it),
/// a failure or its end.
fn past_shared_nodes(run: &RunDir) -> bool {
    run.journal().read::<String>().is_ok_and(|c| {
        c.events.iter().any(|e| match e {
            Event::Stage(r) => r.iteration.is_some(),
            Event::Failed { .. } | Event::Finished { .. } => true,
            _ => false,
        })
    })
}

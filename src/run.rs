//! `run` and `resume`: a run's lock, its nodes in DAG order, and its journal of sessions,
//! failures and the end.

use crate::config::Frozen;
use std::path::Path;

use anyhow::{Context, Result};

use crate::commands::report::write_run_report;
use crate::config::{self, DataSource, DeviceName, PipelineConfig};
use crate::dag::Event;
use crate::dag::{Replay, Stage};
use crate::nodes::search::{self, Update};
use crate::nodes::{self, data, ensemble, train, Inputs};
use crate::status::RunState;
use hhnas_engine::error::Outcome;
use hhnas_engine::host::now;
use hhnas_engine::journal::{stage_records, SessionCommand};
use hhnas_engine::launch::Executor;
use hhnas_engine::lock::{self, Acquire};
use hhnas_engine::progress::Progress;
use hhnas_engine::rundir::{self, RunDir};
use hhnas_engine::store::Store;
use hhnas_engine::{errln, outln};

/// Runs (or continues) one run to the end. The caller holds its lock.
fn execute(run: &RunDir, cfg: &PipelineConfig) -> Result<()> {
    // A resume on another machine (a CPU-only build) fails here, not after the data stages.
    config::check_device(&cfg.train.device)?;
    let cache_dir = run
        .path
        .parent()
        .and_then(Path::parent)
        .context("run directory is not inside a cache")?;
    let journal = run.journal();
    let contents = journal.read::<Stage>()?;
    if contents.torn_tail {
        tracing::warn!(
            "{}: last line was cut mid-write; ignoring it and resuming",
            journal.path().display()
        );
    }
    let recorded = stage_records(&contents.events)
        .map(|r| (r.stage, r.iteration, r.key))
        .collect();
    let total = nodes::iterations(cfg);
    let progress = Progress::new(total);
    let mut exec = Replay {
        store: Store::new(cache_dir),
        journal,
        recorded,
        progress: &progress,
        scratch: cache_dir.join("scratch"),
        training_file: run.training_file(),
        retrace: Default::default(),
    };

    let inputs = Inputs::compute(&mut exec, cfg)?;
    exec.follow_journal();
    let mut state_key = search::init_key(&cfg.search);
    let mut state = hhnas_search::init_state(&cfg.search);
    let mut trained = Vec::new();
    for iteration in 0..total {
        progress.set_position(iteration);
        let (sample_key, proposal) =
            search::sample_node(&mut exec, cfg, &state, state_key, iteration)?;
        let (train_key, summary) =
            train::train_node(&mut exec, cfg, &inputs, iteration, &proposal)?;
        let update = Update {
            state: &state,
            state_key,
            sample_key,
            proposal: &proposal,
            train_key,
            accuracy: summary.outcome.best_valid_acc,
        };
        (state_key, state) = search::update_node(&mut exec, cfg, iteration, update)?;
        trained.push(ensemble::Trained {
            iteration,
            key: train_key,
            summary,
        });
        // A browser left open on report.html follows the run; a failure here must not
        // stop the search (the final report is written again below).
        if let Err(e) = write_run_report(
            std::slice::from_ref(run),
            &run.report_dir(),
            Some(RunState::Running),
        ) {
            tracing::warn!("live report not written: {e:#}");
        }
    }
    ensemble::final_nodes(&mut exec, cfg, &inputs, &trained)?;
    progress.set_position(total);
    progress.finish();
    let report_paths = write_run_report(
        std::slice::from_ref(run),
        &run.report_dir(),
        Some(RunState::Finished),
    )?;
    exec.journal.append(&Event::Finished { ts: now() })?;
    outln!(
        "run {} finished; report: {}",
        run.id,
        report_paths
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    outln!("the same as one page for a browser: report.html beside it");
    Ok(())
}

/// Takes the run's lock and executes it; a live holder means "already running".
fn run_locked(run: &RunDir, cfg: &PipelineConfig, command: SessionCommand) -> Result<Outcome> {
    let _lock = match lock::acquire(&run.path)? {
        Acquire::Busy(holder) => {
            let pid = holder.map(|h| h.pid);
            outln!(
                "run {} already running{}",
                run.id,
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            );
            return Ok(Outcome::AlreadyRunning(pid));
        }
        Acquire::Held(lock, stale) => {
            // Another resume may have finished the run while we waited for the lock.
            if run.is_finished() {
                outln!("nothing to do: run {} has finished", run.id);
                return Ok(Outcome::NothingToDo);
            }
            if let Some(pid) = stale {
                tracing::warn!(
                    "taking over the lock of run {} from dead process {pid}",
                    run.id
                );
            }
            lock
        }
    };
    let journal = run.journal();
    journal.append(&Event::Session {
        ts: now(),
        pid: std::process::id(),
        command,
    })?;
    let result = execute(run, cfg);
    if let Err(e) = &result {
        // Stage failures are journaled by the node; anything else (unreadable data, an
        // unreachable server) is journaled here so status can show it.
        let last_failed = journal
            .read()
            .map(|c| matches!(c.events.last(), Some(Event::Failed { .. })))
            .unwrap_or(false);
        if !last_failed {
            let failed = Event::Failed {
                ts: now(),
                stage: None,
                iteration: None,
                message: crate::error::render(e),
            };
            if let Err(j) = journal.append(&failed) {
                tracing::warn!("could not journal the failure: {j:#}");
            }
        }
    }
    result.map(|()| Outcome::Done)
}

/// A cache folder a run cannot write to fails before any work starts, not at the first
/// node's store write.
fn check_writable(cache: &Path) -> Result<()> {
    let probe = cache.join(format!(".write-probe-{}", std::process::id()));
    let result = std::fs::create_dir_all(cache).and_then(|()| std::fs::write(&probe, b""));
    let _ = std::fs::remove_file(&probe);
    result.map_err(|e| {
        hhnas_engine::user_error!(
            "{}: the cache folder cannot be written ({e}). Fix: make it writable (chmod, or \
             remount it read-write), or point --cache-dir at a writable folder",
            cache.display()
        )
    })
}

pub fn cmd_run(
    cache: &Path,
    config_path: Option<&Path>,
    profile: Option<&str>,
    sets: &[String],
    seeds: &[u64],
    executor: &Executor<DeviceName>,
) -> Result<Outcome> {
    let loaded = config::load(config_path, profile, sets)?;
    check_writable(cache)?;
    let mut base = loaded.config.clone();
    // Freeze the data location as this shell sees it (HHNAS_SPIDER_DIR included), as an
    // absolute path, so a resume from cron reads the same files.
    let dir = nodes::spider_dir(&base);
    base.data.spider_dir = std::path::absolute(&dir).unwrap_or(dir);
    let d = &mut base.data;
    for path in [
        &mut d.labelled_file,
        &mut d.test_file,
        &mut d.label_descriptions,
    ]
    .into_iter()
    .flatten()
    {
        *path = std::path::absolute(&*path).unwrap_or(path.clone());
    }
    // A run that cannot train or read its data is not worth a run directory `resume`
    // would retry. The device first: a bad one should not cost a download.
    match executor {
        Executor::Devices(devices) => devices.iter().try_for_each(config::check_device)?,
        _ => config::check_device(&base.train.device)?,
    }
    match base.data.source {
        DataSource::Spider => data::ensure_spider_dir(&base.data.spider_dir)?,
        DataSource::Labelled => drop(data::labelled_dataset(&base)?),
    }
    let seeds: Vec<u64> = if seeds.is_empty() {
        vec![base.run.seed]
    } else {
        seeds.to_vec()
    };
    // Every run directory exists before the first trains, so a kill during seed 0 leaves
    // the later seeds for `resume` too.
    let mut created = Vec::new();
    for (i, seed) in seeds.into_iter().enumerate() {
        let mut cfg = base.clone();
        cfg.run.seed = seed;
        if let Some(device) = executor.device_for(i) {
            cfg.train.device = device.clone();
        }
        let run = rundir::create(
            cache,
            &cfg,
            cfg.run.seed,
            &loaded.profile,
            &loaded.source,
            sets,
        )?;
        outln!(
            "run {} created ({}, profile {})",
            run.id,
            loaded.source,
            loaded.profile
        );
        created.push((run, cfg));
    }
    match executor {
        Executor::InProcess => {
            for (run, cfg) in &created {
                run_locked(run, cfg, SessionCommand::Run)?;
            }
        }
        Executor::Devices(devices) => {
            let runs: Vec<RunDir> = created.into_iter().map(|(r, _)| r).collect();
            hhnas_engine::launch::run_in_processes(cache, &runs, devices.len().min(runs.len()))?;
        }
        Executor::Slurm => {
            let runs: Vec<RunDir> = created.into_iter().map(|(r, _)| r).collect();
            let job = hhnas_engine::slurm::submit(cache, &base.slurm, &runs)?;
            outln!(
                "submitted Slurm job {job}: {} array task(s), one per run; `hhnas-pipe \
                 status RUN` shows each task's state, `hhnas-pipe cancel RUN` cancels it",
                runs.len()
            );
        }
    }
    Ok(Outcome::Done)
}

/// `resume RUN` continues that run; `resume` alone continues every unfinished run, oldest
/// first, skipping those another process holds and going on past one that fails.
pub fn cmd_resume(cache: &Path, name: Option<&str>) -> Result<Outcome> {
    if rundir::runs_root(cache).is_dir() {
        check_writable(cache)?;
    }
    if let Some(n) = name {
        let run = rundir::find(cache, Some(n), false)?.context("run not found")?;
        if run.is_finished() {
            outln!("nothing to do: run {} has finished", run.id);
            return Ok(Outcome::NothingToDo);
        }
        let cfg = run.config()?;
        warn_if_config_changed(&run, &cfg);
        return run_locked(&run, &cfg, SessionCommand::Resume);
    }
    let pending: Vec<RunDir> = rundir::list(cache)?
        .into_iter()
        .filter(|r| !r.is_finished())
        .filter(|r| match hhnas_engine::slurm::job_of(r) {
            // A run whose Slurm task may still start belongs to that task.
            Some(job) if std::env::var("SLURM_JOB_ID").is_err() => {
                let state = hhnas_engine::slurm::task_state(&job);
                let active = hhnas_engine::slurm::is_active(&state);
                if active {
                    outln!(
                        "skipping run {}: its Slurm task {} is {state} (`hhnas-pipe cancel {}` \
                         first to run it here)",
                        r.id,
                        job.task_id(),
                        r.id
                    );
                }
                !active
            }
            _ => true,
        })
        .collect();
    if pending.is_empty() {
        outln!(
            "nothing to do: no unfinished run under {} (start one with `hhnas-pipe run`)",
            rundir::runs_root(cache).display()
        );
        return Ok(Outcome::NothingToDo);
    }
    let mut first_error = None;
    let mut outcome = Outcome::NothingToDo;
    for run in pending {
        let result = run.config().and_then(|cfg| {
            warn_if_config_changed(&run, &cfg);
            run_locked(&run, &cfg, SessionCommand::Resume)
        });
        match result {
            Ok(Outcome::Done) => outcome = Outcome::Done,
            Ok(other) => {
                if outcome == Outcome::NothingToDo {
                    outcome = other;
                }
            }
            Err(e) => {
                errln!(
                    "hhnas-pipe: run {} failed: {}",
                    run.id,
                    crate::error::render(&e)
                );
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
        current.train.device = frozen.train.device.clone();
        current.data.spider_dir = frozen.data.spider_dir.clone();
        current.data.labelled_file = frozen.data.labelled_file.clone();
        current.data.test_file = frozen.data.test_file.clone();
        current.data.label_descriptions = frozen.data.label_descriptions.clone();
        if &current != frozen {
            outln!(
                "note: {} changed since run {} started; resuming with the run's frozen config \
                 ({}). Start a new run to use the new one.",
                path.display(),
                run.id,
                run.path.join("config.toml").display()
            );
        }
    }
}

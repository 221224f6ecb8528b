//! Slurm as an executor: `run --executor slurm` submits one `sbatch` array with a task
//! per run; each task runs `hhnas-pipe resume RUN`, so a requeued or preempted task
//! continues from the run's journal and its candidate's last finished epoch. `status`
//! asks `squeue` (then `scontrol`) for the task's state; `cancel` calls `scancel`.
//!
//! The cache must be on a filesystem every node sees. What the engine needs from it:
//! atomic rename within a directory (store entries and journals are written to a
//! temporary name and renamed, so readers never see half an entry) and `flock` for the
//! per-run lock. Only one task ever works on a run, so the lock guards against a human
//! running `resume` beside Slurm; where `flock` is not reliable (some NFS setups), do
//! not resume a run by hand while its task is queued.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::rundir::RunDir;
use crate::store::write_atomic;
use crate::user_error;

/// `[slurm]`: what every task of the array asks the scheduler for. Empty values are
/// left to the cluster's defaults.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmSection {
    pub partition: String,
    pub account: String,
    /// Time limit per task, in sbatch's format (e.g. "5-00:00:00" for five days).
    pub time: String,
    /// Generic resources per task, e.g. "gpu:1".
    pub gres: String,
    /// CPUs per task (0 = the cluster's default).
    pub cpus_per_task: u32,
    /// Memory per task, e.g. "32G" ("" = the cluster's default).
    pub mem: String,
    /// Further `#SBATCH` options, one per entry, e.g. "--qos=long".
    pub extra: Vec<String>,
}

impl SlurmSection {
    /// The single-value options, by sbatch flag name.
    fn valued_options(&self) -> [(&'static str, &str); 5] {
        [
            ("partition", &self.partition),
            ("account", &self.account),
            ("time", &self.time),
            ("gres", &self.gres),
            ("mem", &self.mem),
        ]
    }
}

/// Which array task of which job runs a run; stored as `slurm.json` in the run folder.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SlurmJob {
    pub job_id: String,
    pub array_index: usize,
    pub script: PathBuf,
}

impl SlurmJob {
    /// The task's id as Slurm commands take it: `JOB_INDEX`.
    pub fn task_id(&self) -> String {
        format!("{}_{}", self.job_id, self.array_index)
    }
}

const JOB_FILE: &str = "slurm.json";

/// The Slurm task of a run, if it was submitted through Slurm.
pub fn job_of(run: &RunDir) -> Option<SlurmJob> {
    let text = std::fs::read_to_string(run.path.join(JOB_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Single-quoted for bash.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The batch script: one array task per run, each resuming its run.
pub fn render_script(
    section: &SlurmSection,
    exe: &Path,
    cache: &Path,
    runs: &[String],
    log_dir: &Path,
) -> String {
    let mut s = String::from("#!/bin/bash\n");
    let mut opt = |line: String| {
        let _ = writeln!(s, "#SBATCH {line}");
    };
    opt("--job-name=hhnas-pipe".into());
    opt(format!("--array=0-{}", runs.len().saturating_sub(1)));
    // Preempted or failed nodes put the task back in the queue; `resume` continues it.
    opt("--requeue".into());
    opt("--open-mode=append".into());
    // sbatch expands `%` in the path, hence `%%` for a literal one.
    let log = log_dir.display().to_string().replace('%', "%%");
    opt(format!("--output=\"{log}/slurm-%A_%a.out\""));
    for (flag, value) in section.valued_options() {
        if !value.is_empty() {
            opt(format!("--{flag}={value}"));
        }
    }
    if section.cpus_per_task > 0 {
        opt(format!("--cpus-per-task={}", section.cpus_per_task));
    }
    for line in &section.extra {
        opt(line.clone());
    }
    s.push_str("set -euo pipefail\n");
    let list: Vec<String> = runs.iter().map(|r| quote(r)).collect();
    let _ = writeln!(s, "runs=({})", list.join(" "));
    let _ = writeln!(
        s,
        "echo \"task $SLURM_ARRAY_TASK_ID: run ${{runs[$SLURM_ARRAY_TASK_ID]}} (restart ${{SLURM_RESTART_COUNT:-0}}) on $(hostname)\""
    );
    let _ = writeln!(
        s,
        "exec {} --cache-dir {} resume \"${{runs[$SLURM_ARRAY_TASK_ID]}}\"",
        quote(&exe.display().to_string()),
        quote(&cache.display().to_string())
    );
    s
}

fn tool(name: &str) -> Command {
    Command::new(name)
}

/// Checks the `[slurm]` values before they become `#SBATCH` lines: one token each, and
/// `extra` entries are options.
pub fn validate(section: &SlurmSection) -> std::result::Result<(), (String, String)> {
    let one_token = |key: &str, v: &str| {
        if v.chars().any(char::is_whitespace) {
            Err((
                format!("slurm.{key}"),
                format!("{v:?} holds white space; give one value without spaces"),
            ))
        } else {
            Ok(())
        }
    };
    for (key, v) in section.valued_options() {
        one_token(key, v)?;
    }
    for (i, line) in section.extra.iter().enumerate() {
        one_token(&format!("extra[{i}]"), line)?;
        if !line.starts_with('-') {
            return Err((
                format!("slurm.extra[{i}]"),
                format!("{line:?} is not an sbatch option; write it as e.g. \"--qos=long\""),
            ));
        }
    }
    Ok(())
}

/// Runs a Slurm query with a deadline: an unresponsive controller must not hang
/// `status`. None on failure, time-out or empty output.
fn query(cmd: &mut Command) -> Option<String> {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) if std::time::Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
    Some(out.trim().to_string()).filter(|s| !s.is_empty())
}

/// Whether a task state (as [`task_state`] gives it) may still run the run.
pub fn is_active(state: &str) -> bool {
    [
        "PENDING",
        "RUNNING",
        "REQUEUED",
        "CONFIGURING",
        "COMPLETING",
        "SUSPENDED",
        "RESIZING",
    ]
    .iter()
    .any(|s| state.starts_with(s))
}

/// Writes the script beside the runs, submits it and records each run's task.
pub fn submit(cache: &Path, section: &SlurmSection, runs: &[RunDir]) -> Result<String> {
    anyhow::ensure!(!runs.is_empty(), "no runs to submit");
    let exe = std::env::current_exe().context("locating the hhnas-pipe binary")?;
    let cache = std::path::absolute(cache).unwrap_or(cache.to_path_buf());
    let log_dir = crate::rundir::runs_root(&cache);
    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    let script_path = log_dir.join(format!("slurm-{}.sh", ids[0]));
    let script = render_script(section, &exe, &cache, &ids, &log_dir);
    write_atomic(&script_path, script.as_bytes())?;
    let out = tool("sbatch")
        .arg("--parsable")
        .arg(&script_path)
        .output()
        .map_err(|e| {
            user_error!(
                "cannot run `sbatch` ({e}). Fix: run on a Slurm login node, put Slurm's \
                 commands on PATH, or use the local executor (leave out --executor slurm); \
                 the script is at {}",
                script_path.display()
            )
        })?;
    if !out.status.success() {
        return Err(user_error!(
            "sbatch refused {}: {}. Fix: adjust the [slurm] section of pipeline.toml \
             (partition, account, time, gres) and run again; the runs made now stay \
             unstarted (`hhnas-pipe resume RUN` runs one here)",
            script_path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    // `--parsable` prints "JOBID" or "JOBID;CLUSTER".
    let stdout = String::from_utf8_lossy(&out.stdout);
    let job_id = stdout.trim().split(';').next().unwrap_or("").to_string();
    if job_id.is_empty() {
        return Err(user_error!("sbatch printed no job id: {stdout:?}"));
    }
    for (i, run) in runs.iter().enumerate() {
        let job = SlurmJob {
            job_id: job_id.clone(),
            array_index: i,
            script: script_path.clone(),
        };
        write_atomic(
            &run.path.join(JOB_FILE),
            serde_json::to_string_pretty(&job)?.as_bytes(),
        )?;
    }
    Ok(job_id)
}

/// The scheduler's word on a task: `squeue` while it is queued or running, then
/// `scontrol show job` (finished jobs stay there for a few minutes), then `sacct`.
pub fn task_state(job: &SlurmJob) -> String {
    let id = job.task_id();
    let run = query;
    if let Some(s) = run(tool("squeue").args(["-h", "-j", &id, "-o", "%T %r"])) {
        let (state, reason) = s.split_once(' ').unwrap_or((&s, ""));
        return match reason {
            "" | "None" => state.to_string(),
            r => format!("{state} ({r})"),
        };
    }
    if let Some(s) = run(tool("scontrol").args(["show", "job", &id])) {
        if let Some(state) = s
            .split_whitespace()
            .find_map(|w| w.strip_prefix("JobState="))
        {
            return state.to_string();
        }
    }
    if let Some(s) = run(tool("sacct").args(["-n", "-X", "-P", "-j", &id, "-o", "State"])) {
        return s.lines().next().unwrap_or("").to_string();
    }
    "unknown (squeue, scontrol and sacct gave no answer)".into()
}

/// Cancels the run's task.
pub fn cancel(job: &SlurmJob) -> Result<()> {
    let out = tool("scancel").arg(job.task_id()).output().map_err(|e| {
        user_error!("cannot run `scancel` ({e}). Fix: put Slurm's commands on PATH")
    })?;
    if !out.status.success() {
        return Err(user_error!(
            "scancel {} failed: {}",
            job.task_id(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_asks_for_the_section_and_resumes_each_run() {
        let section = SlurmSection {
            partition: "gpu".into(),
            gres: "gpu:1".into(),
            time: "5-00:00:00".into(),
            extra: vec!["--qos=long".into()],
            ..Default::default()
        };
        let s = render_script(
            &section,
            Path::new("/opt/bin/hhnas-pipe"),
            Path::new("/shared/cache"),
            &["a-s0".into(), "it's-s1".into()],
            Path::new("/shared/cache/runs"),
        );
        for line in [
            "#SBATCH --array=0-1",
            "#SBATCH --requeue",
            "#SBATCH --partition=gpu",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --time=5-00:00:00",
            "#SBATCH --qos=long",
            "#SBATCH --output=\"/shared/cache/runs/slurm-%A_%a.out\"",
            r"runs=('a-s0' 'it'\''s-s1')",
            "exec '/opt/bin/hhnas-pipe' --cache-dir '/shared/cache' resume \"${runs[$SLURM_ARRAY_TASK_ID]}\"",
        ] {
            assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
        }
        assert!(!s.contains("--account"), "empty values are left out:\n{s}");
        let job = SlurmJob {
            job_id: "12".into(),
            array_index: 1,
            script: "x".into(),
        };
        assert_eq!(job.task_id(), "12_1");
    }
}

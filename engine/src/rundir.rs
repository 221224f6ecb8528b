//! Run directories under `<cache>/runs/<run-id>/`: `meta.json` (who and what), `config.toml`
//! (the frozen resolved configuration), `journal.jsonl`, `lock`, and the report.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use serde::de::DeserializeOwned;

use crate::error::UserError;
use crate::host::now;
use crate::journal::{Event, Journal};
use crate::store::write_atomic;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunMeta {
    pub run_id: String,
    pub profile: String,
    pub config_source: String,
    pub created: f64,
    /// `--set` overrides the run was started with (to tell a changed file from them).
    #[serde(default)]
    pub sets: Vec<String>,
}

/// A run directory on disk.
#[derive(Clone, Debug)]
pub struct RunDir {
    pub id: String,
    pub path: PathBuf,
}

impl RunDir {
    pub fn journal(&self) -> Journal {
        Journal::new(&self.path)
    }

    pub fn meta(&self) -> Result<RunMeta> {
        let p = self.path.join("meta.json");
        let text = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
    }

    /// The frozen configuration this run was started with, as the binary's type `C`.
    pub fn frozen_config<C: DeserializeOwned>(&self) -> Result<C> {
        let p = self.path.join("config.toml");
        let text = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        toml::from_str(&text).map_err(|e| {
            anyhow::Error::new(UserError(format!(
                "{}: the frozen config does not parse ({e}). Fix: restore it, or start a new run",
                p.display()
            )))
        })
    }

    pub fn is_finished(&self) -> bool {
        self.journal()
            .read::<String>()
            .map(|c| c.events.iter().any(|e| matches!(e, Event::Finished { .. })))
            .unwrap_or(false)
    }

    pub fn report_dir(&self) -> PathBuf {
        self.path.join("report")
    }

    /// Where the candidate in training reports its finished epochs (for `status`).
    pub fn training_file(&self) -> PathBuf {
        self.path.join("training.json")
    }

    /// What the node in progress last wrote to [`Self::training_file`], if anything; `None`
    /// when absent or unreadable (it is advisory).
    pub fn training<T: DeserializeOwned>(&self) -> Option<T> {
        let text = fs::read_to_string(self.training_file()).ok()?;
        serde_json::from_str(&text).ok()
    }
}

pub fn runs_root(cache_dir: &Path) -> PathBuf {
    cache_dir.join("runs")
}

/// Creates a new run directory with its frozen config (written as TOML); `seed` goes into
/// its name.
pub fn create<C: Serialize>(
    cache_dir: &Path,
    config: &C,
    seed: u64,
    profile: &str,
    source: &str,
    sets: &[String],
) -> Result<RunDir> {
    let root = runs_root(cache_dir);
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let created = now();
    let base = format!("{}-{}-s{}", timestamp_id(created as i64), profile, seed);
    // The directory is assembled under a hidden name and renamed into place, so a run
    // killed while being created leaves no half-made run for `resume` to trip over.
    let staging = root.join(format!(".new-{base}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
    write_atomic(
        &staging.join("config.toml"),
        toml::to_string_pretty(config)?.as_bytes(),
    )?;
    let mut id = base.clone();
    let mut n = 1;
    loop {
        let meta = RunMeta {
            run_id: id.clone(),
            profile: profile.to_string(),
            config_source: source.to_string(),
            created,
            sets: sets.to_vec(),
        };
        write_atomic(
            &staging.join("meta.json"),
            serde_json::to_string_pretty(&meta)?.as_bytes(),
        )?;
        let target = root.join(&id);
        // rename onto an existing non-empty directory fails, so two runs started in the
        // same second get distinct ids.
        if !target.exists() && fs::rename(&staging, &target).is_ok() {
            break;
        }
        n += 1;
        id = format!("{base}-{n}");
        anyhow::ensure!(
            n < 1000,
            "cannot create a run directory under {}",
            root.display()
        );
    }
    let dir = RunDir {
        path: root.join(&id),
        id,
    };
    Ok(dir)
}

/// All run directories, oldest first (ids start with a sortable timestamp).
pub fn list(cache_dir: &Path) -> Result<Vec<RunDir>> {
    let root = runs_root(cache_dir);
    let mut runs = Vec::new();
    let entries = match fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(runs),
        Err(e) => return Err(e).with_context(|| format!("listing {}", root.display())),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.join("meta.json").is_file() {
            runs.push(RunDir {
                id: entry.file_name().to_string_lossy().to_string(),
                path,
            });
        }
    }
    runs.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(runs)
}

/// The named run, or the newest one (`unfinished_only`: the newest not finished).
pub fn find(cache_dir: &Path, name: Option<&str>, unfinished_only: bool) -> Result<Option<RunDir>> {
    let runs = list(cache_dir)?;
    match name {
        Some(n) => {
            let found = runs
                .iter()
                .find(|r| r.id == n)
                .or_else(|| {
                    // A unique prefix is enough.
                    let matches: Vec<&RunDir> =
                        runs.iter().filter(|r| r.id.starts_with(n)).collect();
                    (matches.len() == 1).then(|| matches[0])
                })
                .cloned();
            match found {
                Some(r) => Ok(Some(r)),
                None => Err(anyhow::Error::new(UserError(format!(
                    "{}: no run named `{n}`. Fix: pick one of the ids that `hhnas-pipe status --all` lists",
                    runs_root(cache_dir).display()
                )))),
            }
        }
        None => Ok(runs
            .into_iter()
            .rev()
            .find(|r| !unfinished_only || !r.is_finished())),
    }
}

/// `YYYYMMDD-HHMMSS` in UTC, from unix seconds.
pub fn timestamp_id(secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs);
    format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}")
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn timestamp_human(secs: f64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs as i64);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
}

/// Civil date from unix seconds (Howard Hinnant's days-from-civil inverse).
fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(timestamp_id(0), "19700101-000000");
        assert_eq!(timestamp_id(1_795_839_000), "20261128-041000");
        assert_eq!(timestamp_human(951_782_400.0), "2000-02-29 00:00:00");
    }
}

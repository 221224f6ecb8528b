//! The run journal: an append-only, fsynced JSON-lines file of everything a run completed.
//! A line cut mid-write by a crash is ignored on read and trimmed before the next append,
//! so a journal can always be resumed.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One journal line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A `run` or `resume` session began.
    Session { ts: f64, pid: u32, command: String },
    /// A stage node completed (computed or replayed from the cache).
    Stage(StageRecord),
    /// A stage node failed; the run stops and can be resumed.
    Failed {
        ts: f64,
        stage: String,
        iteration: Option<u64>,
        message: String,
    },
    /// Every iteration and the report are done.
    Finished { ts: f64 },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StageRecord {
    pub ts: f64,
    pub stage: String,
    pub iteration: Option<u64>,
    pub key: String,
    pub wall_secs: f64,
    pub cache_hit: bool,
    /// Summary metrics for status and reports (free-form per stage).
    #[serde(default)]
    pub metrics: serde_json::Value,
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Read result: the events and whether a torn last line was skipped.
pub struct Contents {
    pub events: Vec<Event>,
    pub torn_tail: bool,
}

pub struct Journal {
    path: PathBuf,
}

impl Journal {
    pub fn new(run_dir: &Path) -> Self {
        Journal {
            path: run_dir.join("journal.jsonl"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every complete line. A last line without its newline is a torn write and is
    /// skipped; any other unreadable line is an error naming the file and line.
    pub fn read(&self) -> Result<Contents> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Contents {
                    events: vec![],
                    torn_tail: false,
                })
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        parse(&text, &self.path)
    }

    /// Appends one event and fsyncs. Trims a torn tail first so the new line starts clean.
    pub fn append(&self, event: &Event) -> Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        let len = file.metadata()?.len();
        let mut line = String::new();
        if len > 0 {
            let text = fs::read(&self.path)?;
            if text.last() != Some(&b'\n') {
                let start = text
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map(|p| p + 1)
                    .unwrap_or(0);
                if serde_json::from_slice::<Event>(&text[start..]).is_ok() {
                    // Complete but for its newline (read() counted it): keep it.
                    line.push('\n');
                } else {
                    file.set_len(start as u64)?;
                    file.seek(SeekFrom::End(0))?;
                }
            }
        }
        line.push_str(&serde_json::to_string(event)?);
        line.push('\n');
        file.write_all(line.as_bytes())
            .with_context(|| format!("appending to {}", self.path.display()))?;
        file.sync_data()?;
        Ok(())
    }
}

fn parse(text: &str, path: &Path) -> Result<Contents> {
    let mut events = Vec::new();
    let mut torn_tail = false;
    let ends_clean = text.ends_with('\n');
    let lines: Vec<&str> = text.split('\n').collect();
    let last = lines.len().saturating_sub(1);
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(line) {
            Ok(e) => events.push(e),
            Err(_) if i == last && !ends_clean => torn_tail = true,
            Err(e) => anyhow::bail!(
                "{}: line {}: not a journal event ({e}). Fix: restore the line or remove it \
                 (the run resumes from what the cache holds)",
                path.display(),
                i + 1
            ),
        }
    }
    Ok(Contents { events, torn_tail })
}

/// The stage records of a journal, in order.
pub fn stage_records(events: &[Event]) -> impl Iterator<Item = &StageRecord> {
    events.iter().filter_map(|e| match e {
        Event::Stage(r) => Some(r),
        _ => None,
    })
}

/// Opens a file for writing, creating parents.
pub fn create_file(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    File::create(path).with_context(|| format!("creating {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(i: u64) -> Event {
        Event::Stage(StageRecord {
            ts: 1.0,
            stage: "train".into(),
            iteration: Some(i),
            key: "k".into(),
            wall_secs: 2.0,
            cache_hit: false,
            metrics: serde_json::json!({"valid_acc": 0.5}),
        })
    }

    #[test]
    fn torn_last_line_is_skipped_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        j.append(&stage(0)).unwrap();
        j.append(&stage(1)).unwrap();
        // Simulate a crash mid-write of a third line.
        let mut text = fs::read_to_string(j.path()).unwrap();
        text.push_str("{\"event\":\"stage\",\"ts\":1.0,\"sta");
        fs::write(j.path(), text).unwrap();
        let c = j.read().unwrap();
        assert_eq!(c.events.len(), 2);
        assert!(c.torn_tail);
        j.append(&stage(2)).unwrap();
        let c = j.read().unwrap();
        assert_eq!(c.events, vec![stage(0), stage(1), stage(2)]);
        assert!(!c.torn_tail);
    }

    #[test]
    fn garbage_in_the_middle_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        fs::write(j.path(), "not json\n").unwrap();
        let err = j.read().err().unwrap().to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}

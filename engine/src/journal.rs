//! The run journal: an append-only, fsynced JSON-lines file of everything a run completed.
//! A line cut mid-write by a crash is ignored on read and trimmed before the next append,
//! so a journal can always be resumed.

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::hash::Hash;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::store::Key;

/// What a journal line names in its `stage` field: a node of the binary's DAG (its
/// [`crate::replay::Node`] type), or any name (`String`) for a reader that needs no node,
/// such as whether a run finished. Written as the node's name, as journals always were.
pub trait StageName: Sized + Clone + PartialEq + Eq + Hash + Debug {
    fn as_str(&self) -> &str;
    /// `None` when no node has this name.
    fn parse(name: &str) -> Option<Self>;
}

impl StageName for String {
    fn as_str(&self) -> &str {
        self
    }

    fn parse(name: &str) -> Option<Self> {
        Some(name.to_string())
    }
}

/// One journal line, its stages named by `N`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case", bound = "N: StageName")]
pub enum Event<N> {
    /// A `run` or `resume` session began.
    Session {
        ts: f64,
        pid: u32,
        command: SessionCommand,
    },
    /// A stage node completed (computed or replayed from the cache).
    Stage(StageRecord<N>),
    /// A stage node failed (`stage` is `None` for a failure outside any node, written
    /// [`RUN`]); the run stops and can be resumed.
    Failed {
        ts: f64,
        #[serde(with = "failed_stage")]
        stage: Option<N>,
        iteration: Option<u64>,
        message: String,
    },
    /// Every iteration and the report are done.
    Finished { ts: f64 },
}

/// The command that began a session.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SessionCommand {
    /// The run's first session.
    Run,
    /// A later one, continuing where the journal ends.
    Resume,
}

/// The journal's stage name for a failure outside any node.
pub const RUN: &str = "run";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(bound = "N: StageName")]
pub struct StageRecord<N> {
    pub ts: f64,
    #[serde(with = "stage_name")]
    pub stage: N,
    pub iteration: Option<u64>,
    pub key: Key,
    pub wall_secs: f64,
    pub cache_hit: bool,
    /// Summary metrics for status and reports (free-form per stage).
    #[serde(default)]
    pub metrics: serde_json::Value,
}

/// Read result: the events and whether a torn last line was skipped.
pub struct Contents<N> {
    pub events: Vec<Event<N>>,
    pub torn_tail: bool,
}

/// `StageRecord::stage` as the node's name; a name no node has is an error naming it.
mod stage_name {
    use super::StageName;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<N: StageName, S: Serializer>(n: &N, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(n.as_str())
    }

    pub fn deserialize<'de, N: StageName, D: Deserializer<'de>>(d: D) -> Result<N, D::Error> {
        let name = String::deserialize(d)?;
        N::parse(&name).ok_or_else(|| {
            D::Error::custom(format!(
                "stage `{name}` is no node of this release (a journal of a newer one?)"
            ))
        })
    }
}

/// `Event::Failed::stage`: [`RUN`] for a failure outside any node.
mod failed_stage {
    use super::{StageName, RUN};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<N: StageName, S: Serializer>(n: &Option<N>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(n.as_ref().map_or(RUN, |n| n.as_str()))
    }

    pub fn deserialize<'de, N: StageName, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<N>, D::Error> {
        let name = String::deserialize(d)?;
        if name == RUN {
            return Ok(None);
        }
        super::stage_name::deserialize(serde::de::value::StrDeserializer::new(&name)).map(Some)
    }
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
    pub fn read<N: StageName>(&self) -> Result<Contents<N>> {
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
    pub fn append<N: StageName>(&self, event: &Event<N>) -> Result<()> {
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
                if serde_json::from_slice::<Event<String>>(&text[start..]).is_ok() {
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

fn parse<N: StageName>(text: &str, path: &Path) -> Result<Contents<N>> {
    let mut events = Vec::new();
    let mut torn_tail = false;
    let ends_clean = text.ends_with('\n');
    let lines: Vec<&str> = text.split('\n').collect();
    let last = lines.len().saturating_sub(1);
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event<N>>(line) {
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
pub fn stage_records<N>(events: &[Event<N>]) -> impl Iterator<Item = &StageRecord<N>> {
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

    fn stage(i: u64) -> Event<String> {
        Event::Stage(StageRecord {
            ts: 1.0,
            stage: "train".into(),
            iteration: Some(i),
            key: Key([7; 32]),
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
        let c = j.read::<String>().unwrap();
        assert_eq!(c.events.len(), 2);
        assert!(c.torn_tail);
        j.append(&stage(2)).unwrap();
        let c = j.read::<String>().unwrap();
        assert_eq!(c.events, vec![stage(0), stage(1), stage(2)]);
        assert!(!c.torn_tail);
    }

    #[test]
    fn garbage_in_the_middle_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        fs::write(j.path(), "not json\n").unwrap();
        let err = j.read::<String>().err().unwrap().to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    /// A node type of two stages, as a binary declares its own.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    enum Two {
        Train,
        Update,
    }

    impl StageName for Two {
        fn as_str(&self) -> &str {
            match self {
                Two::Train => "train",
                Two::Update => "update",
            }
        }

        fn parse(name: &str) -> Option<Self> {
            [Two::Train, Two::Update]
                .into_iter()
                .find(|t| t.as_str() == name)
        }
    }

    #[test]
    fn typed_lines_are_spelt_as_names_and_hex_keys() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        let rec = Event::Stage(StageRecord {
            ts: 1.0,
            stage: Two::Update,
            iteration: Some(3),
            key: Key([0xab; 32]),
            wall_secs: 2.0,
            cache_hit: true,
            metrics: serde_json::json!({}),
        });
        let run_failed = Event::<Two>::Failed {
            ts: 2.0,
            stage: None,
            iteration: None,
            message: "no data".into(),
        };
        j.append(&rec).unwrap();
        j.append(&run_failed).unwrap();
        let text = fs::read_to_string(j.path()).unwrap();
        assert!(
            text.contains(&format!(
                "\"stage\":\"update\",\"iteration\":3,\"key\":\"{}\"",
                "ab".repeat(32)
            )),
            "{text}"
        );
        assert!(text.contains("\"stage\":\"run\""), "{text}");
        assert_eq!(j.read::<Two>().unwrap().events, vec![rec, run_failed]);
        // Any name reads as a String; a name no node has is an error naming it.
        assert_eq!(j.read::<String>().unwrap().events.len(), 2);
        fs::write(j.path(), text.replace("update", "sample")).unwrap();
        let err = format!("{:#}", j.read::<Two>().err().unwrap());
        assert!(err.contains("line 1") && err.contains("`sample`"), "{err}");
    }
}

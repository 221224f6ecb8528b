//! The replay executor: a node whose output is in the store is replayed, any other is
//! computed and stored; either way the journal records it once.
//!
//! A node's key is the blake3 of its name and version, its parameters and its inputs'
//! keys (see [`Node::key`] and [`KeyBuilder`]). The binary declares its nodes (a type that
//! implements [`Node`]); this module knows none of them.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::host::now;
use crate::journal::{Event, Journal, StageName, StageRecord};
use crate::progress::Progress;
use crate::store::{Key, KeyBuilder, Lookup, Store};
use crate::user_error;

/// A node of the DAG as the executor sees it: a name (its store folder and journal
/// lines; [`StageName`] reads it back) and a version (bumped when its output for the same
/// inputs changes, so old entries stop matching).
pub trait Node: StageName + Copy + std::fmt::Display {
    fn name(self) -> &'static str;
    fn version(self) -> u32;

    /// A key builder seeded with the node's name and version.
    fn key(self) -> KeyBuilder {
        KeyBuilder::new(self.name(), self.version())
    }
}

/// A stored output with the summary metrics its journal line carries.
#[derive(Serialize, Deserialize)]
pub struct Stored<T> {
    pub value: T,
    pub metrics: String,
}

/// A node's stored output, by its key as the journal spells it.
pub fn load_stored<T: DeserializeOwned>(store: &Store, stage: impl Node, key: &Key) -> Result<T> {
    match store.get::<Stored<T>>(stage.name(), key)? {
        Lookup::Hit(s) => Ok(s.value),
        _ => Err(user_error!(
            "{}: missing or damaged. Fix: `hhnas-pipe resume` the run to recompute it",
            store.path(stage.name(), key).display()
        )),
    }
}

/// What every node's journal metrics may carry, whatever the node: its one-line summary
/// (the progress line) and the wall time of its computation (what a replay reports).
#[derive(Deserialize, Default, Debug, PartialEq)]
#[serde(default)]
pub struct Common {
    pub summary: Option<String>,
    pub compute_secs: Option<f64>,
}

impl Common {
    /// The common fields of a journal line's metrics; anything else reads as absent.
    pub fn read(metrics: &serde_json::Value) -> Self {
        Self::deserialize(metrics).unwrap_or_default()
    }
}

/// Executes the nodes (of type `N`) of one run: replay from the store or compute, then
/// journal.
pub struct Replay<'a, N: Node> {
    pub store: Store,
    pub journal: Journal,
    /// (stage, iteration, key) already in the journal, so a replay is not journaled twice.
    pub recorded: HashSet<(N, Option<u64>, Key)>,
    pub progress: &'a Progress,
    pub scratch: PathBuf,
    /// `training.json` of the run: the epoch the candidate in training has reached.
    pub training_file: PathBuf,
    /// Whether the search retraces the run's journal (see [`Replay::kept_iteration_key`]).
    pub retrace: Retrace<N>,
}

/// Whether, and on what grounds, a resumed search retraces the iterations its run
/// journaled under another release's keys.
pub struct Retrace<N> {
    /// Set by [`Replay::follow_journal`] before the first iteration; cleared by the first
    /// proposal or candidate that cannot keep its journaled entry.
    on: bool,
    /// Whether this session said so once already.
    warned: bool,
    /// The one-off nodes this session read: stage, key, and whether it computed the entry.
    one_offs: Vec<(N, Key, bool)>,
}

impl<N> Default for Retrace<N> {
    fn default() -> Self {
        Retrace {
            on: false,
            warned: false,
            one_offs: Vec::new(),
        }
    }
}

impl<N: Node> Replay<'_, N> {
    /// A one-off input (dataset, encoder) must hash as it did when the run started; a
    /// search that silently switched data halfway would compare apples with pears.
    pub fn expect_unchanged(&self, stage: N, key: Key, what: &str) -> Result<()> {
        let journaled = self
            .recorded
            .iter()
            .find(|(s, i, _)| *s == stage && i.is_none())
            .map(|(_, _, k)| *k);
        match journaled {
            Some(k) if k != key => Err(user_error!(
                "{what} changed since this run started ({stage} key {} is now {}). Fix: \
                 restore them, or start a new run with `hhnas-pipe run`",
                k.short(),
                key.short()
            )),
            _ => Ok(()),
        }
    }

    /// The key under which a one-off node that derives from the run's fixed inputs (its
    /// data and encoder are checked unchanged, its config is frozen) is read. Where the
    /// run journaled the node under another key, which only another release's code for
    /// the node makes, and the store still holds that entry, the run goes on with its own
    /// values: what it trained on them replays, instead of every candidate being trained
    /// again on other values. A new run gets this release's node.
    pub fn kept_key<T: DeserializeOwned>(&self, stage: N, key: Key) -> Key {
        match self.other_release_entry::<T>(stage, None, key, |_, _| true) {
            Some(own) => {
                tracing::warn!(
                    "{stage}: this run made it with another release of hhnas-pipe (key {}, \
                     this release's would be {}); the run goes on with its own values, so \
                     what it trained stays comparable. A new run uses this release's",
                    own.short(),
                    key.short()
                );
                own
            }
            _ => key,
        }
    }

    /// The entry the run journaled for `stage` at `iteration` under another key than
    /// this release's `key`, where it can be kept: the store holds it, this release reads
    /// it as `T` (another release's entry may not be; such an entry is never kept, as
    /// [`Replay::node`] would recompute it under the other release's key) and `usable`
    /// accepts it.
    fn other_release_entry<T: DeserializeOwned>(
        &self,
        stage: N,
        iteration: Option<u64>,
        key: Key,
        usable: impl Fn(&Store, &Key) -> bool,
    ) -> Option<Key> {
        let own = self.journaled(stage, iteration).filter(|&own| own != key)?;
        let readable = matches!(
            self.store.get::<Stored<T>>(stage.name(), &own),
            Ok(Lookup::Hit(_))
        );
        (readable && usable(&self.store, &own)).then_some(own)
    }

    /// The one key the run journaled for `stage` at `iteration`, if exactly one.
    fn journaled(&self, stage: N, iteration: Option<u64>) -> Option<Key> {
        let mut keys = (self.recorded.iter())
            .filter(|(s, i, _)| *s == stage && *i == iteration)
            .map(|(_, _, k)| *k);
        match (keys.next(), keys.next()) {
            (Some(own), None) => Some(own),
            _ => None,
        }
    }

    /// Called between the one-off nodes and the search's first iteration: the iterations
    /// may retrace the journal only where every one-off node this session read replayed
    /// the one entry the run journaled for it (none computed, none new, none journaled
    /// under two keys), so the candidates it trained saw the inputs they will be read
    /// with.
    pub fn follow_journal(&mut self) {
        self.retrace.on = (self.retrace.one_offs.iter())
            .all(|&(stage, key, computed)| !computed && self.journaled(stage, None) == Some(key));
    }

    /// The key under which an iteration's node is read: as [`Replay::kept_key`], for a
    /// search that another release began. While every proposal and candidate so far took
    /// the key the run journaled, one journaled under another key (another release's code
    /// for it) that the store holds, this release reads and `usable` accepts (a
    /// candidate's weights are stored) keeps that key, so an upgrade mid-search replays
    /// the proposals and the candidates the run trained instead of training them all
    /// again. From the first one that cannot, the rest are this release's.
    pub fn kept_iteration_key<T: DeserializeOwned>(
        &mut self,
        stage: N,
        iteration: u64,
        key: Key,
        usable: impl Fn(&Store, &Key) -> bool,
    ) -> Key {
        if !self.retrace.on {
            return key;
        }
        if self.journaled(stage, Some(iteration)) == Some(key) {
            return key;
        }
        match self.other_release_entry::<T>(stage, Some(iteration), key, usable) {
            Some(own) => {
                // One warning a session; the nodes after it are the same story.
                if !std::mem::replace(&mut self.retrace.warned, true) {
                    tracing::warn!(
                        "{}: this run made it with another release of hhnas-pipe (key {}, \
                         this release's would be {}); it and the iterations after it that \
                         the run journaled replay as they were, so the search goes on from \
                         where it stood",
                        label(stage, Some(iteration)),
                        own.short(),
                        key.short()
                    );
                }
                own
            }
            None => {
                self.retrace.on = false;
                key
            }
        }
    }

    /// The node's output: replayed when stored, else computed by `compute` (value and
    /// metrics), stored and journaled. A failure is journaled before it is returned.
    pub fn node<T, M, F>(
        &mut self,
        stage: N,
        iteration: Option<u64>,
        key: Key,
        compute: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        M: Serialize,
        F: FnOnce(&mut Self) -> Result<(T, M)>,
    {
        let start = Instant::now();
        let label = label(stage, iteration);
        let (value, metrics, hit) = match self.store.get::<Stored<T>>(stage.name(), &key)? {
            Lookup::Hit(s) => (
                s.value,
                serde_json::from_str(&s.metrics).unwrap_or_default(),
                true,
            ),
            other => {
                if let Lookup::Corrupt(warning) = other {
                    tracing::warn!("{warning}");
                }
                self.progress.message(&format!("{label}: computing"));
                let computed = compute(self).and_then(|(value, metrics)| {
                    let metrics = serde_json::to_value(&metrics).context("encoding metrics")?;
                    Ok((value, metrics))
                });
                let (value, metrics) = match computed {
                    Ok(v) => v,
                    Err(e) => {
                        // The failure is what the user needs; a journal that cannot take
                        // it (a full disk) must not replace it.
                        let failed = Event::Failed {
                            ts: now(),
                            stage: Some(stage),
                            iteration,
                            message: crate::error::render(&e),
                        };
                        if let Err(j) = self.journal.append(&failed) {
                            tracing::warn!("could not journal the failure: {j:#}");
                        }
                        return Err(e.context(format!("stage {label} failed")));
                    }
                };
                let stored = Stored {
                    value,
                    metrics: metrics.to_string(),
                };
                self.store.put(stage.name(), &key, &stored)?;
                (stored.value, metrics, false)
            }
        };
        if iteration.is_none() {
            self.retrace.one_offs.push((stage, key, !hit));
        }
        self.record(stage, iteration, key, metrics, hit, start)?;
        Ok(value)
    }

    /// Journals a node: a replay once, a recomputation always (it shows which entries a
    /// resume had to rebuild after they were deleted or damaged).
    fn record(
        &mut self,
        stage: N,
        iteration: Option<u64>,
        key: Key,
        metrics: serde_json::Value,
        hit: bool,
        start: Instant,
    ) -> Result<()> {
        let id = (stage, iteration, key);
        if hit && self.recorded.contains(&id) {
            return Ok(());
        }
        let wall = start.elapsed().as_secs_f64();
        let common = Common::read(&metrics);
        // A replayed node keeps the wall time it cost when it was computed.
        let wall_secs = match (hit, common.compute_secs) {
            (true, Some(secs)) => secs,
            _ => wall,
        };
        let summary = common.summary.unwrap_or_else(|| "done".to_string());
        self.journal.append(&Event::Stage(StageRecord {
            ts: now(),
            stage,
            iteration,
            key,
            wall_secs,
            cache_hit: hit,
            metrics,
        }))?;
        self.recorded.insert(id);
        self.progress.line(&format!(
            "{}: {summary}{}",
            label(stage, iteration),
            if hit { " (cached)" } else { "" }
        ));
        Ok(())
    }
}

/// How progress lines name a node: `train (iteration 3)`.
fn label(stage: impl Node, iteration: Option<u64>) -> String {
    match iteration {
        Some(i) => format!("{stage} (iteration {i})"),
        None => stage.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One node, `rules`, at whatever version a release gives it.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
    struct Rules;

    impl StageName for Rules {
        fn as_str(&self) -> &str {
            "rules"
        }
        fn parse(name: &str) -> Option<Self> {
            (name == "rules").then_some(Rules)
        }
    }

    impl std::fmt::Display for Rules {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("rules")
        }
    }

    impl Node for Rules {
        fn name(self) -> &'static str {
            "rules"
        }
        fn version(self) -> u32 {
            2
        }
    }

    fn key_of(version: u32) -> Key {
        KeyBuilder::new("rules", version).finish()
    }

    /// A run that journaled `rules` under the keys `journaled`, in a cache whose store
    /// holds `stored`.
    fn replay<'a>(
        dir: &std::path::Path,
        progress: &'a Progress,
        journaled: &[Key],
        stored: &[Key],
    ) -> Replay<'a, Rules> {
        let store = Store::new(dir);
        for k in stored {
            store
                .put(
                    "rules",
                    k,
                    &Stored {
                        value: 1u8,
                        metrics: "{}".into(),
                    },
                )
                .unwrap();
        }
        Replay {
            store,
            journal: Journal::new(&dir.join("run")),
            recorded: journaled.iter().map(|k| (Rules, None, *k)).collect(),
            progress,
            scratch: dir.join("scratch"),
            training_file: dir.join("training.json"),
            retrace: Retrace::default(),
        }
    }

    #[test]
    fn a_run_keeps_the_key_it_journaled_while_the_store_holds_that_entry() {
        let (old, new) = (key_of(1), key_of(2));
        let progress = Progress::new(1);
        let case = |journaled: &[Key], stored: &[Key]| {
            let dir = tempfile::tempdir().unwrap();
            replay(dir.path(), &progress, journaled, stored).kept_key::<u8>(Rules, new)
        };
        // Another release's entry, still stored: the run goes on with it.
        assert_eq!(case(&[old], &[old]), old);
        // Its entry is gone: this release's node.
        assert_eq!(case(&[old], &[]), new);
        // Journaled under this release's key, or never: nothing to keep.
        assert_eq!(case(&[new], &[new]), new);
        assert_eq!(case(&[], &[old]), new);
        // Two entries journaled (resumed under two releases before): no guess.
        assert_eq!(case(&[old, key_of(0)], &[old]), new);
    }

    #[test]
    fn another_releases_entry_that_does_not_decode_is_not_kept() {
        let (old, new) = (key_of(1), key_of(2));
        let progress = Progress::new(1);
        let dir = tempfile::tempdir().unwrap();
        // One byte stored: no (u64, u64, u64).
        let r = replay(dir.path(), &progress, &[old], &[old]);
        assert_eq!(r.kept_key::<(u64, u64, u64)>(Rules, new), new);
        assert_eq!(r.kept_key::<u8>(Rules, new), old);
    }

    #[test]
    fn iterations_retrace_the_journal_until_a_node_cannot_keep_its_entry() {
        let (old, new) = (key_of(1), key_of(2));
        let progress = Progress::new(1);
        let dir = tempfile::tempdir().unwrap();
        let mut r = replay(dir.path(), &progress, &[], &[old]);
        r.recorded.extend([
            (Rules, Some(0), new),
            (Rules, Some(1), old),
            (Rules, Some(2), old),
            (Rules, Some(3), key_of(3)),
            (Rules, Some(4), old),
        ]);
        r.follow_journal();
        assert!(r.retrace.on);
        let any = |_: &Store, _: &Key| true;
        // Journaled under this release's key, or under another's still stored.
        assert_eq!(r.kept_iteration_key::<u8>(Rules, 0, new, any), new);
        assert_eq!(r.kept_iteration_key::<u8>(Rules, 1, new, any), old);
        assert!(r.retrace.on);
        // Stored, but refused (a candidate without its weights): computed anew.
        assert_eq!(r.kept_iteration_key::<u8>(Rules, 2, new, |_, _| false), new);
        assert!(!r.retrace.on);
        // From there on this release's keys, though another's is stored.
        assert_eq!(r.kept_iteration_key::<u8>(Rules, 4, new, any), new);
        // Gone from the store: the same.
        r.retrace.on = true;
        assert_eq!(r.kept_iteration_key::<u8>(Rules, 3, new, any), new);
        assert!(!r.retrace.on);
    }

    #[test]
    fn iterations_retrace_the_journal_only_over_one_off_nodes_replayed_as_journaled() {
        let (old, new) = (key_of(1), key_of(2));
        let progress = Progress::new(1);
        let dir = tempfile::tempdir().unwrap();
        let follows = |journaled: &[Key], read: &[(Key, bool)]| {
            let mut r = replay(dir.path(), &progress, journaled, &[]);
            r.retrace.one_offs = read
                .iter()
                .map(|&(k, computed)| (Rules, k, computed))
                .collect();
            r.follow_journal();
            r.retrace.on
        };
        // Replayed the one entry journaled (a kept one, or this release's).
        assert!(follows(&[old], &[(old, false)]));
        // Computed this session: recomputed under its journaled key (its entry was lost),
        // or under a new key; or new in this release (never journaled).
        assert!(!follows(&[old], &[(old, true)]));
        assert!(!follows(&[old], &[(new, true)]));
        assert!(!follows(&[], &[(new, true)]));
        // Journaled under two keys by earlier resumes: no guess.
        assert!(!follows(&[old, new], &[(old, false)]));
        // Nodes journaled but not read before the search (the ensemble's, after it) do
        // not count.
        assert!(follows(&[old, new], &[]));
    }
}

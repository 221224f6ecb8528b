//! A run written by an earlier release must keep working: it resumes to the end, and
//! `status`, `eval` and `predict` print what that release printed on the same run.
//!
//! `tests/fixtures/legacy-run/` holds such a run as the release named in its
//! `release.txt` left it; `tests/fixtures/legacy-partner-v1/` one with the partner
//! evidence on, made by a release whose partner node (version 1) computed other values
//! than this release's, which the resume must keep. Each is cut as a kill right after its
//! last candidate's train stage would leave it (see `make_legacy_fixture`): the cache
//! (store, run directory), the Spider-format data it read, and that release's own output
//! of `resume`, `status`, `eval` and `predict` on a copy. To make one again with another
//! release's binary:
//! `HHNAS_LEGACY_BIN=/path/to/old/hhnas-pipe HHNAS_LEGACY_RELEASE=<commit> cargo test
//! --test legacy_run -- --ignored make_legacy_fixture` (with `HHNAS_LEGACY_FIXTURE=
//! legacy-partner-v1 HHNAS_LEGACY_SET=features.partner_evidence=true,ensemble.enabled=
//! true,ensemble.rounds=5` for the second, whose model is its ensemble).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// Stands for the Spider directory in the stored run configs (the absolute path of the
/// folder the run was made in is meaningless elsewhere).
const SPIDER_MARK: &str = "@SPIDER_DIR@";
const QUESTION: &str = "How many singers are there?";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn command(bin: &Path, cache: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.env_remove("HHNAS_SPIDER_DIR")
        .env_remove("HHNAS_CACHE")
        .env("RUST_LOG", "warn")
        .arg("--cache-dir")
        .arg(cache)
        .args(args);
    c
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// What must not change between releases: every line with a figure in it, with wall
/// times and speeds (which differ from one machine and one day to the next) removed.
fn figures(out: &str) -> String {
    out.lines()
        .filter(|l| l.chars().any(|c| c.is_ascii_digit()))
        .map(|l| {
            l.split_whitespace()
                .filter(|w| !(w.ends_with('s') && w[..w.len() - 1].parse::<f64>().is_ok()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|l| {
            !["elapsed", "wall", "/s", "ago", "started", "updated"]
                .iter()
                .any(|n| l.contains(n))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Copies `from` into `to`, replacing the Spider mark by `spider` (or the reverse when
/// `mark` is set) in the run configs.
fn copy_tree(from: &Path, to: &Path, spider: &str, mark: bool) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let dest = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else if entry.file_name() == "config.toml" {
            let t = std::fs::read_to_string(entry.path()).unwrap();
            let t = if mark {
                t.replace(spider, SPIDER_MARK)
            } else {
                t.replace(SPIDER_MARK, spider)
            };
            std::fs::write(&dest, t).unwrap();
        } else if entry.file_name() != "lock" {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

fn run_id(cache: &Path) -> String {
    let mut runs: Vec<String> = std::fs::read_dir(cache.join("runs"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("meta.json").is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    runs.sort();
    runs.pop().expect("a run directory")
}

/// `resume`, then `status`, `eval` and `predict` on the run, as one text per command
/// (the cache's path written as `@CACHE@`).
fn finish_and_report(bin: &Path, cache: &Path) -> Vec<(&'static str, String)> {
    let id = run_id(cache);
    [
        ("resume", vec!["resume", &id]),
        ("status", vec!["status", &id]),
        ("eval", vec!["eval", &id]),
        ("predict", vec!["predict", &id, QUESTION]),
    ]
    .into_iter()
    .map(|(name, args)| {
        let out = ok(command(bin, cache, &args).output().unwrap());
        (name, out.replace(cache.to_str().unwrap(), "@CACHE@"))
    })
    .collect()
}

#[test]
fn a_run_stopped_under_the_previous_release_resumes_and_reports_the_same_figures() {
    resumes_and_reports_the_same_figures("legacy-run", None);
}

/// A release whose `train` node keys its candidates otherwise (its code changed) resumes
/// a search another release began: the run's journaled proposals and candidates replay
/// instead of every candidate training again (the search's updates follow from them and
/// are computed anew, so `status`'s cache size differs). The fixture is made such a run by
/// moving its candidates (summary and weights) to other keys in the store and the journal,
/// as another release's train node would have keyed them.
#[test]
fn a_search_another_release_trained_resumes_without_training_its_candidates_again() {
    resumes_and_reports_the_same_figures(
        "legacy-run",
        Some(&|cache: &Path| {
            let journal = cache.join("runs").join(run_id(cache)).join("journal.jsonl");
            let mut text = std::fs::read_to_string(&journal).unwrap();
            let trained: Vec<String> = (text.lines())
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .filter(|e| e["event"] == "stage" && e["stage"] == "train")
                .map(|e| e["key"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(trained.len(), 3, "the fixture's three candidates");
            for key in trained {
                let other: String = key.chars().rev().collect();
                for folder in ["train", "weights"] {
                    let store = cache.join("store").join(folder);
                    std::fs::rename(store.join(&key), store.join(&other)).unwrap();
                }
                text = text.replace(&key, &other);
            }
            std::fs::write(&journal, text).unwrap();
        }),
    );
}

/// The partner node's code changed after this run was made (version 1 -> 2): the resume
/// keeps the run's own partner values, so its candidates replay instead of training again
/// on values they never saw, and `eval` scores the test split on the stored ones.
#[test]
fn a_run_whose_partner_node_another_release_made_resumes_on_its_own_values() {
    resumes_and_reports_the_same_figures("legacy-partner-v1", None);
}

/// Resumes a copy of the fixture `name` (after `alter` on its cache, if given) and
/// compares what each command prints with what the fixture's release printed (the cache's
/// size aside where the cache was altered); the resume computes no proposal, candidate or
/// evidence node (the fixture was cut after the last candidate's train stage).
fn resumes_and_reports_the_same_figures(name: &str, alter: Option<&dyn Fn(&Path)>) {
    let fixture = fixture(name);
    let dir = tempfile::tempdir().unwrap();
    let spider = dir.path().join("spider");
    let cache = dir.path().join("cache");
    copy_tree(&fixture.join("spider"), &spider, "", false);
    copy_tree(
        &fixture.join("cache"),
        &cache,
        spider.to_str().unwrap(),
        false,
    );
    if let Some(alter) = alter {
        alter(&cache);
    }
    let comparable = |out: &str| -> String {
        (figures(out).lines())
            .filter(|l| alter.is_none() || !l.starts_with("cache "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let stored_before = walkdir::WalkDir::new(cache.join("store"))
        .into_iter()
        .count();
    let journal = cache
        .join("runs")
        .join(run_id(&cache))
        .join("journal.jsonl");
    let journaled_before = std::fs::read_to_string(&journal).unwrap().lines().count();

    let outputs = finish_and_report(Path::new(BIN), &cache);
    for (name, out) in &outputs {
        let expected =
            std::fs::read_to_string(fixture.join("expected").join(format!("{name}.txt"))).unwrap();
        assert_eq!(
            comparable(out),
            comparable(&expected),
            "`{name}` prints other figures than the release in release.txt did"
        );
    }
    // The resume added the remaining candidates and kept what was stored.
    let stored_after = walkdir::WalkDir::new(cache.join("store"))
        .into_iter()
        .count();
    assert!(
        stored_after > stored_before,
        "{stored_before} -> {stored_after}"
    );
    let resumed = std::fs::read_to_string(&journal).unwrap();
    let computed: Vec<&str> = (resumed.lines().skip(journaled_before))
        .filter(|l| l.contains("\"cache_hit\":false"))
        .filter(|l| {
            ["sample", "train", "encode", "partner"]
                .iter()
                .any(|s| l.contains(&format!("\"stage\":\"{s}\"")))
        })
        .collect();
    assert!(computed.is_empty(), "the resume computed {computed:?}");
}

/// Makes the fixture with the binary in `HHNAS_LEGACY_BIN` (see the module doc).
#[test]
#[ignore = "makes tests/fixtures/legacy-run with an older release's binary"]
fn make_legacy_fixture() {
    let bin = PathBuf::from(std::env::var_os("HHNAS_LEGACY_BIN").expect("HHNAS_LEGACY_BIN"));
    let release = std::env::var("HHNAS_LEGACY_RELEASE").expect("HHNAS_LEGACY_RELEASE");
    let name = std::env::var("HHNAS_LEGACY_FIXTURE").unwrap_or_else(|_| "legacy-run".into());
    let sets = std::env::var("HHNAS_LEGACY_SET").unwrap_or_default();
    let ws = Workspace::frozen_dense(3);
    let config = ws.config();
    let mut args = vec!["run", "--config", config.to_str().unwrap()];
    for set in sets.split(',').filter(|s| !s.is_empty()) {
        args.extend(["--set", set]);
    }
    // The whole run, then its state as a kill right after the last candidate's train
    // stage leaves it: the journal cut there and the last update's store entry gone, so
    // the resume computes something (the update, the report) without training anything
    // (training is bit-identical on one machine, not necessarily across CPUs).
    let out = command(&bin, &ws.cache(), &args).output().unwrap();
    ok(out);
    let journal = ws.run_dir().join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let last_train = lines
        .iter()
        .rposition(|l| l.contains("\"stage\":\"train\"") && l.contains("\"event\":\"stage\""))
        .expect("a train stage");
    for line in &lines[last_train + 1..] {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        if e["event"] == "stage" && e["stage"] == "update" {
            let key = e["key"].as_str().unwrap();
            std::fs::remove_file(ws.cache().join("store/update").join(key)).unwrap();
        }
    }
    std::fs::write(&journal, lines[..=last_train].join("\n") + "\n").unwrap();
    let _ = std::fs::remove_dir_all(ws.run_dir().join("report"));

    let out = fixture(&name);
    let _ = std::fs::remove_dir_all(&out);
    let spider = ws.path().join("spider");
    copy_tree(&spider, &out.join("spider"), "", true);
    copy_tree(
        &ws.cache(),
        &out.join("cache"),
        spider.to_str().unwrap(),
        true,
    );
    std::fs::write(out.join("release.txt"), format!("{release}\n")).unwrap();

    // That release's own output on a copy, the expected figures of the test above.
    let outputs = finish_and_report(&bin, &ws.cache());
    std::fs::create_dir_all(out.join("expected")).unwrap();
    for (name, text) in outputs {
        std::fs::write(out.join("expected").join(format!("{name}.txt")), text).unwrap();
    }
}

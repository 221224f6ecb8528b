//! Runs side by side: one process per device (`run --devices`), several processes on one
//! store, and (opt-in, `-- --ignored slurm`) a real one-node Slurm started by
//! `scripts/slurm-local.sh`, with a task requeued in the middle of a candidate.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use hhnas_engine::store::{Key, Lookup, Store};

type Comparable = Vec<(String, Option<u64>, String, serde_json::Value)>;

/// Every run of the workspace's cache: seed -> the comparable part of its journal.
fn journals_by_seed(ws: &Workspace) -> BTreeMap<u64, Comparable> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(ws.cache().join("runs")).unwrap() {
        let dir = e.unwrap().path();
        if !dir.join("meta.json").is_file() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let seed: u64 = name.rsplit("-s").next().unwrap().parse().unwrap();
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("journal.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert!(
            lines.iter().any(|l| l["event"] == "finished"),
            "run {name} did not finish"
        );
        out.insert(seed, comparable(&lines));
    }
    out
}

/// Equal journals, or the first line that differs.
fn assert_same_journals(a: &BTreeMap<u64, Comparable>, b: &BTreeMap<u64, Comparable>) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (seed, ja) in a {
        for (x, y) in ja.iter().zip(&b[seed]) {
            assert_eq!(x, y, "seed {seed}: first differing journal line");
        }
        assert_eq!(ja.len(), b[seed].len(), "seed {seed}");
    }
}

fn run_seeds(ws: &Workspace, seeds: &str, extra: &[&str]) {
    let config = ws.config();
    let mut args = vec![
        "run",
        "--config",
        config.to_str().unwrap(),
        "--seeds",
        seeds,
    ];
    args.extend(extra);
    let out = ws.run(&args);
    assert!(out.status.success(), "{}", text(&out));
}

/// Every entry of the store reads back and verifies; no temporary file is left.
fn assert_store_verifies(cache: &Path) -> usize {
    let store = Store::new(cache);
    let mut entries = 0;
    for stage in std::fs::read_dir(cache.join("store")).unwrap() {
        let stage = stage.unwrap().path();
        let stage_name = stage.file_name().unwrap().to_string_lossy().to_string();
        for entry in std::fs::read_dir(&stage).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().to_string();
            assert!(!name.starts_with('.'), "left over: {stage_name}/{name}");
            let key = Key::parse(&name).unwrap_or_else(|| panic!("odd entry {stage_name}/{name}"));
            match store.get_bytes(&stage_name, &key).unwrap() {
                Lookup::Hit(_) => entries += 1,
                _ => panic!("{stage_name}/{name} does not verify"),
            }
        }
    }
    entries
}

#[test]
fn seeds_in_their_own_processes_journal_what_one_process_journals() {
    let side_by_side = Workspace::frozen(3);
    run_seeds(&side_by_side, "1,2", &["--devices", "cpu,cpu"]);
    let one_after_another = Workspace::frozen(3);
    run_seeds(&one_after_another, "1,2", &[]);
    let a = journals_by_seed(&side_by_side);
    assert_eq!(a.keys().copied().collect::<Vec<_>>(), [1, 2]);
    assert_same_journals(&a, &journals_by_seed(&one_after_another));
    // A device this build cannot use is refused before any run exists.
    let ws = Workspace::frozen(1);
    let config = ws.config();
    let out = ws.run(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--seeds",
        "0,1",
        "--devices",
        "cpu,gpu7",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--devices"), "{}", text(&out));
    assert!(!ws.cache().join("runs").exists());
}

/// A rebuild or upgrade replaces the binary while seeds are still waiting for their
/// turn: the later seeds still start (from the binary the launcher runs).
#[test]
fn later_seeds_start_after_the_binary_file_is_replaced() {
    let ws = Workspace::frozen(2);
    let copy = ws.path().join("hhnas-pipe-copy");
    std::fs::copy(BIN, &copy).unwrap();
    let config = ws.config();
    let child = Command::new(&copy)
        .current_dir(ws.path())
        .env_remove("HHNAS_SPIDER_DIR")
        .env_remove("HHNAS_CACHE")
        .env("RUST_LOG", "warn")
        .arg("--cache-dir")
        .arg(ws.cache())
        .args(["run", "--config", config.to_str().unwrap()])
        .args(["--seeds", "0,1", "--devices", "cpu"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // One slot: seed 1 waits for seed 0. Remove the file once seed 0 has begun.
    let started = Instant::now();
    while !ws.cache().join("runs").is_dir() {
        assert!(started.elapsed() < Duration::from_secs(120), "no run began");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_file(&copy).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        journals_by_seed(&ws).keys().copied().collect::<Vec<_>>(),
        [0, 1]
    );
}

/// Four processes start on one empty cache at once and all need the same first nodes.
#[test]
fn four_processes_share_one_store() {
    let ws = Workspace::frozen(2);
    run_seeds(&ws, "0,1,2,3", &["--devices", "cpu,cpu,cpu,cpu"]);
    let journals = journals_by_seed(&ws);
    assert_eq!(journals.len(), 4);
    // The shared nodes have one key in every journal, hence one entry in the store. The
    // nodes after the search belong to each run (their candidates differ by seed).
    let per_run = ["search_init", "ensemble", "refit", "final"];
    let shared = |j: &Comparable| -> Vec<(String, String)> {
        j.iter()
            .filter(|(_, iteration, _, _)| iteration.is_none())
            .filter(|(stage, ..)| !per_run.contains(&stage.as_str()))
            .map(|(stage, _, key, _)| (stage.clone(), key.clone()))
            .collect()
    };
    let first = shared(&journals[&0]);
    let stages: Vec<&str> = first.iter().map(|(s, _)| s.as_str()).collect();
    for s in [
        "spider",
        "encode",
        "neighbours",
        "char_neighbours",
        "char_svm",
    ] {
        assert!(stages.contains(&s), "{s} missing from {stages:?}");
    }
    for j in journals.values() {
        assert_eq!(shared(j), first);
    }
    // How many of the four computed each shared node (the rest replayed it).
    let mut computed: BTreeMap<String, usize> = BTreeMap::new();
    for e in std::fs::read_dir(ws.cache().join("runs")).unwrap() {
        let journal = e.unwrap().path().join("journal.jsonl");
        let Ok(text) = std::fs::read_to_string(&journal) else {
            continue;
        };
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let stage = v["stage"].as_str().unwrap_or_default();
            if v["event"] == "stage" && v["iteration"].is_null() && !per_run.contains(&stage) {
                let n = computed
                    .entry(v["stage"].as_str().unwrap().into())
                    .or_default();
                *n += usize::from(v["cache_hit"] == false);
            }
        }
    }
    eprintln!("shared nodes computed by how many of 4 processes: {computed:?}");
    // The first process computes them; the others start after it and replay them.
    assert!(computed.values().all(|&n| n == 1), "{computed:?}");
    let entries = assert_store_verifies(&ws.cache());
    assert!(entries > 8, "{entries} entries");
}

/// `scripts/slurm-local.sh` from the repository root.
fn slurm_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-local.sh")
}

fn slurm_env() -> Vec<(String, String)> {
    let out = Command::new(slurm_script()).arg("env").output().unwrap();
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    let value = line
        .trim()
        .strip_prefix("export SLURM_CONF=")
        .unwrap_or_else(|| panic!("odd env line {line:?}"))
        .trim_matches('"')
        .trim_matches('\'')
        .to_string();
    vec![("SLURM_CONF".into(), value)]
}

fn status_of(ws: &Workspace, env: &[(String, String)], run: &str) -> String {
    let mut c = ws.cmd(&["status", run]);
    c.envs(env.iter().cloned());
    String::from_utf8_lossy(&c.output().unwrap().stdout).to_string()
}

fn slurm_line(status: &str) -> String {
    status
        .lines()
        .filter(|l| l.starts_with("slurm") || l.starts_with("state") || l.starts_with("training"))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Opt-in: needs root and Debian's slurm-wlm and munge (the script installs them).
#[test]
#[ignore = "needs a one-node Slurm: scripts/slurm-local.sh start, then cargo test --test executors -- --ignored slurm"]
fn slurm_array_survives_a_requeue_mid_candidate() {
    let start = Command::new(slurm_script()).arg("start").status().unwrap();
    assert!(start.success(), "scripts/slurm-local.sh start failed");
    let env = slurm_env();
    // Long enough candidates for the requeue to land inside one.
    let edit = |ws: &Workspace| {
        let c = ws.config_text().replace("epochs = 60\n", "epochs = 400\n");
        std::fs::write(ws.config(), c).unwrap();
    };
    let ws = Workspace::frozen(2);
    edit(&ws);
    let config = ws.config();
    let mut submit = ws.cmd(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--seeds",
        "0,1",
        "--executor",
        "slurm",
    ]);
    submit.envs(env.iter().cloned());
    let out = submit.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let runs: Vec<String> = {
        let mut r: Vec<String> = std::fs::read_dir(ws.cache().join("runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("meta.json").is_file())
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        r.sort();
        r
    };
    eprintln!("submitted: {}", slurm_line(&status_of(&ws, &env, &runs[0])));
    let job: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.cache().join("runs").join(&runs[0]).join("slurm.json"))
            .unwrap(),
    )
    .unwrap();
    let task = format!("{}_0", job["job_id"].as_str().unwrap());
    // Wait until run 0 is inside a candidate (an epoch finished, the candidate not).
    let training = ws.cache().join("runs").join(&runs[0]).join("training.json");
    let deadline = Instant::now() + Duration::from_secs(600);
    while !training.is_file() {
        assert!(Instant::now() < deadline, "run 0 never started training");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("running: {}", slurm_line(&status_of(&ws, &env, &runs[0])));
    let scontrol = |args: &[&str]| {
        let ok = Command::new("scontrol")
            .args(args)
            .envs(env.iter().cloned())
            .status()
            .unwrap()
            .success();
        assert!(ok, "scontrol {args:?}");
    };
    scontrol(&["requeue", &task]);
    std::thread::sleep(Duration::from_secs(1));
    eprintln!("requeued: {}", slurm_line(&status_of(&ws, &env, &runs[0])));
    // A requeued task waits about two minutes before it may start again; not here.
    scontrol(&["update", &format!("JobId={task}"), "StartTime=now"]);
    let deadline = Instant::now() + Duration::from_secs(1200);
    loop {
        let finished = runs.iter().all(|r| {
            ws.cache()
                .join("runs")
                .join(r)
                .join("journal.jsonl")
                .is_file()
                && status_of(&ws, &env, r).contains("state      finished")
        });
        if finished {
            break;
        }
        assert!(Instant::now() < deadline, "the Slurm runs did not finish");
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!("finished: {}", slurm_line(&status_of(&ws, &env, &runs[0])));
    let sessions = ws
        .journal_lines_of(&runs[0])
        .iter()
        .filter(|e| e["event"] == "session")
        .count();
    assert!(
        sessions >= 2,
        "the requeue did not restart run 0 ({sessions} session)"
    );
    let reference = Workspace::frozen(2);
    edit(&reference);
    run_seeds(&reference, "0,1", &[]);
    assert_same_journals(&journals_by_seed(&ws), &journals_by_seed(&reference));
    let _ = Command::new(slurm_script()).arg("stop").status();
}

#[test]
fn cancel_stops_a_local_run_and_resume_finishes_it() {
    let ws = Workspace::frozen(2);
    let c = ws.config_text().replace("epochs = 60\n", "epochs = 400\n");
    std::fs::write(ws.config(), c).unwrap();
    let config = ws.config();
    let mut child = ws
        .cmd(&["run", "--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !(run_exists(&ws) && ws.run_dir().join("training.json").is_file()) {
        assert!(Instant::now() < deadline, "the run never started training");
        std::thread::sleep(Duration::from_millis(50));
    }
    let id = ws.run_id();
    let out = ws.run(&["cancel", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("sent SIGTERM"), "{}", text(&out));
    let status = child.wait().unwrap();
    assert!(!status.success(), "the run ended by itself: {status}");
    let out = ws.run(&["status", &id]);
    assert!(text(&out).contains("interrupted"), "{}", text(&out));
    let out = ws.run(&["cancel", &id]);
    assert!(text(&out).contains("nothing to cancel"), "{}", text(&out));
    let out = ws.run(&["resume", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(ws.journal_lines().iter().any(|e| e["event"] == "finished"));
}

//! `[encoder] mode = "warm"`: the `warm` node tunes the encoder once, then the encode
//! stage serves the tuned encoder's vectors frozen. On the fixture data with the tiny
//! scratch encoder: the node is journaled, a second run replays it (and everything after
//! it) from the cache, the encode key differs from frozen mode's, and eval and predict
//! use the tuned encoder.

mod common;

use std::collections::BTreeSet;

use common::*;

/// The warm settings of these tests: a learning rate a scratch encoder learns with.
const WARM: [&str; 3] = [
    "encoder.mode=warm",
    "encoder.warm.learning_rate=0.003",
    "encoder.warm.epochs=3",
];

fn run_ids(ws: &Workspace) -> BTreeSet<String> {
    std::fs::read_dir(ws.cache().join("runs"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().join("meta.json").is_file())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs a new run with `sets` and returns its id.
fn new_run(ws: &Workspace, sets: &[&str]) -> String {
    let before = run_ids(ws);
    let out = ws.run_with(sets);
    assert!(out.status.success(), "{}", text(&out));
    let mut new: Vec<String> = run_ids(ws).difference(&before).cloned().collect();
    assert_eq!(new.len(), 1, "{new:?}");
    new.pop().unwrap()
}

/// The one journal line of `stage` (not an iteration's).
fn line<'a>(journal: &'a [serde_json::Value], stage: &str) -> Option<&'a serde_json::Value> {
    let mut lines = journal
        .iter()
        .filter(|e| e["event"] == "stage" && e["stage"] == stage);
    let first = lines.next();
    assert!(lines.next().is_none(), "{stage} journaled twice");
    first
}

#[test]
fn warm_mode_tunes_once_replays_and_keys_encode_apart_from_frozen() {
    let ws = Workspace::frozen(2);

    // First warm run: the warm node computes, then encode over the tuned encoder.
    let first = new_run(&ws, &WARM);
    let journal = ws.journal_lines_of(&first);
    let warm = line(&journal, "warm").expect("warm journaled");
    assert_eq!(warm["cache_hit"], false, "{warm}");
    assert!(warm["metrics"]["valid_acc"].as_f64().is_some(), "{warm}");
    assert!(
        warm["metrics"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("encoder tuned with a Model 1 head: valid"),
        "{warm}"
    );
    let warm_key = warm["key"].as_str().unwrap().to_string();
    let encode = line(&journal, "encode").expect("encode journaled");
    assert_eq!(encode["cache_hit"], false);
    let encode_key = encode["key"].as_str().unwrap().to_string();
    // The order of the DAG: encoder, warm, encode.
    let pos = |stage: &str| {
        journal
            .iter()
            .position(|e| e["event"] == "stage" && e["stage"] == stage)
            .unwrap()
    };
    assert!(pos("encoder") < pos("warm") && pos("warm") < pos("encode"));
    // The stored tuned encoder is in the weights folder; its checkpoint is gone.
    assert!(ws.cache().join("store/weights").join(&warm_key).is_file());
    let ckpt = ws
        .cache()
        .join("scratch/checkpoints")
        .join(format!("{warm_key}.ckpt"));
    assert!(!ckpt.exists());

    // `status` shows the warm node like the other one-off nodes.
    let out = ws.run(&["status", &first]);
    assert!(out.status.success(), "{}", text(&out));
    let status = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        status.lines().any(|l| l.starts_with("warm ")),
        "no warm line in status:\n{status}"
    );

    // eval and predict load the tuned encoder back, also after its file in scratch is
    // gone (written out again from the store).
    std::fs::remove_dir_all(ws.cache().join("scratch/warm")).unwrap();
    let out = ws.run(&["eval", &first]);
    assert!(out.status.success(), "{}", text(&out));
    let out = ws.run(&["predict", &first, "How many singers are there?"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        6,
        "{}",
        text(&out)
    );

    // Second warm run: the warm node and encode are replayed, nothing recomputed.
    let second = new_run(&ws, &WARM);
    let journal2 = ws.journal_lines_of(&second);
    let warm2 = line(&journal2, "warm").expect("warm journaled");
    assert_eq!(warm2["cache_hit"], true, "{warm2}");
    assert_eq!(warm2["key"], warm_key.as_str());
    assert_eq!(warm2["metrics"], warm["metrics"]);
    let encode2 = line(&journal2, "encode").unwrap();
    assert_eq!(encode2["cache_hit"], true);
    assert_eq!(encode2["key"], encode_key.as_str());
    let computed: Vec<&serde_json::Value> = journal2
        .iter()
        .filter(|e| e["event"] == "stage" && e["cache_hit"] == false)
        .map(|e| &e["stage"])
        .collect();
    assert!(computed.is_empty(), "recomputed: {computed:?}");

    // Another run seed: the warm stage has its own seed, so it is shared.
    let seeded = new_run(&ws, &[&WARM[..], &["run.seed=8"]].concat());
    let warm3 = line(&ws.journal_lines_of(&seeded), "warm")
        .cloned()
        .unwrap();
    assert_eq!(warm3["cache_hit"], true);
    assert_eq!(warm3["key"], warm_key.as_str());

    // Frozen mode on the same cache: no warm node, and an encode entry of its own.
    let frozen = new_run(&ws, &[]);
    let journal3 = ws.journal_lines_of(&frozen);
    assert!(line(&journal3, "warm").is_none());
    let encode3 = line(&journal3, "encode").unwrap();
    assert_eq!(encode3["cache_hit"], false, "frozen mode read warm vectors");
    assert_ne!(encode3["key"], encode_key.as_str());
    assert_eq!(
        line(&journal3, "encoder").unwrap()["key"],
        line(&journal, "encoder").unwrap()["key"]
    );
}

#[test]
fn bad_warm_settings_name_the_key_and_the_fix() {
    let ws = Workspace::frozen(1);
    for (set, key) in [
        ("encoder.warm.epochs=0", "encoder.warm.epochs"),
        ("encoder.warm.batch_size=0", "encoder.warm.batch_size"),
        ("encoder.warm.learning_rate=0", "encoder.warm.learning_rate"),
        (
            "encoder.warm.learning_rate=-1e-5",
            "encoder.warm.learning_rate",
        ),
    ] {
        let out = ws.run_with(&["encoder.mode=warm", set]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(err.contains(key) && err.contains("Fix:"), "{set}: {err}");
    }
    let out = ws.run_with(&["encoder.mode=warm", "encoder.warm.epoch=2"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("epoch"),
        "{}",
        text(&out)
    );
    assert!(!ws.cache().join("runs").exists() || run_ids(&ws).is_empty());
}

/// A run killed (SIGKILL) in the middle of the warm stage resumes from the stage's last
/// finished epoch and journals what an uninterrupted run journals.
#[test]
fn a_killed_warm_stage_resumes_at_its_last_epoch_as_an_uninterrupted_one() {
    // Enough epochs that the stage runs for a few seconds on the tiny encoder.
    let sets = [
        "encoder.mode=warm",
        "encoder.warm.learning_rate=0.003",
        "encoder.warm.epochs=150",
        "encoder.warm.patience=0",
    ];
    // What the warm node journals, timings aside.
    let comparable_warm = |journal: &[serde_json::Value]| {
        let mut m = line(journal, "warm").expect("warm journaled")["metrics"].clone();
        for k in ["epoch_secs", "examples_per_sec", "compute_secs"] {
            m.as_object_mut().unwrap().remove(k);
        }
        m
    };
    let reference = Workspace::frozen(1);
    let id = new_run(&reference, &sets);
    let expected = comparable_warm(&reference.journal_lines_of(&id));

    let ws = Workspace::frozen(1);
    let config = ws.config();
    let mut args = vec!["run", "--config", config.to_str().unwrap()];
    for s in &sets {
        args.extend(["--set", s]);
    }
    let mut child = ws
        .cmd(&args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let checkpoints = ws.cache().join("scratch/checkpoints");
    let started = std::time::Instant::now();
    let ckpt = loop {
        let found = std::fs::read_dir(&checkpoints).ok().and_then(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "ckpt"))
        });
        if let Some(p) = found {
            break p;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the warm stage wrote a checkpoint"
        );
        assert!(started.elapsed().as_secs() < 120, "no checkpoint in 120 s");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    std::thread::sleep(std::time::Duration::from_millis(30));
    child.kill().unwrap();
    child.wait().unwrap();
    let journal = ws.journal_lines();
    assert!(
        line(&journal, "warm").is_none(),
        "the kill landed after the warm stage"
    );
    assert!(ckpt.exists(), "the killed stage left its checkpoint");

    let out = ws.run(&["resume"]);
    assert!(out.status.success(), "{}", text(&out));
    let journal = ws.journal_lines();
    assert_eq!(comparable_warm(&journal), expected);
    assert!(
        !ckpt.exists(),
        "the checkpoint goes once the result is stored"
    );
}

/// A run whose encoder another release tuned (the warm node keyed otherwise: its code
/// changed) resumes on that tuned encoder: nothing is tuned, encoded or trained again.
/// The run is made such a one by moving its warm node (summary and tuned weights) to
/// another key in the store and the journal, and taking its end off the journal.
#[test]
fn a_run_whose_encoder_another_release_tuned_resumes_on_that_encoder() {
    let ws = Workspace::frozen(2);
    let id = new_run(&ws, &WARM);
    let path = ws.cache().join("runs").join(&id).join("journal.jsonl");
    let lines = std::fs::read_to_string(&path).unwrap();
    let key = line(&ws.journal_lines_of(&id), "warm").unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let other: String = key.chars().rev().collect();
    for folder in ["warm", "weights"] {
        let store = ws.cache().join("store").join(folder);
        std::fs::rename(store.join(&key), store.join(&other)).unwrap();
    }
    let unfinished: Vec<&str> = (lines.lines())
        .filter(|l| !l.contains("\"event\":\"finished\""))
        .collect();
    std::fs::write(&path, unfinished.join("\n").replace(&key, &other) + "\n").unwrap();
    let journaled = unfinished.len();

    let out = ws.run(&["resume", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another release"),
        "{}",
        text(&out)
    );
    let journal = ws.journal_lines_of(&id);
    let computed: Vec<&serde_json::Value> = (journal[journaled..].iter())
        .filter(|e| e["event"] == "stage" && e["cache_hit"] == false)
        .map(|e| &e["stage"])
        .collect();
    assert!(computed.is_empty(), "the resume computed {computed:?}");
    assert_eq!(journal.last().unwrap()["event"], "finished");
}

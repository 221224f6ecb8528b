//! The command line as a user meets it: runs, resumes after SIGKILL, locking, status,
//! exit codes and error messages on bad input.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn killed_runs_resume_to_the_same_result_without_recomputing() {
    // Reference: one uninterrupted run.
    let reference = Workspace::new(3);
    let out = reference.run(&["run", "--config", reference.config().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let expected = comparable(&reference.journal_lines());
    assert!(expected.iter().any(|e| e.0 == "train"));

    // The same run, SIGKILLed at several points: before the first node, mid-feature
    // stages, mid-training (the delay lands inside an epoch), and between iterations.
    let ws = Workspace::new(3);
    let config = ws.config();
    let cfg = config.to_str().unwrap();
    let kill_points = [
        (0, Duration::from_millis(0)),
        (2, Duration::from_millis(0)),
        (5, Duration::from_millis(300)),
        (7, Duration::from_millis(50)),
        (9, Duration::from_millis(400)),
    ];
    let mut kills = 0;
    let (first_after, first_delay) = kill_points[0];
    if run_and_kill(&ws, &["run", "--config", cfg], first_after, first_delay) {
        kills += 1;
    }
    for (after, delay) in &kill_points[1..] {
        if run_and_kill(&ws, &["resume"], *after, *delay) {
            kills += 1;
        }
    }
    let out = ws.run(&["resume"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        kills >= 3,
        "only {kills} kill points landed before the run finished"
    );

    let journal = ws.journal_lines();
    assert_eq!(comparable(&journal), expected);
    // Nothing is journaled as computed twice: each (stage, iteration) computed at most once.
    let mut computed = std::collections::HashMap::new();
    for e in journal.iter().filter(|e| e["event"] == "stage") {
        if e["cache_hit"] == false {
            *computed
                .entry((e["stage"].to_string(), e["iteration"].to_string()))
                .or_insert(0) += 1;
        }
    }
    assert!(computed.values().all(|&n| n == 1), "{computed:?}");

    // A finished run resumes to "nothing to do", exit 0.
    let out = ws.run(&["resume"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to do"));
}

#[test]
fn second_resume_exits_at_once_while_one_is_live_and_stale_locks_are_taken_over() {
    let ws = Workspace::new(4);
    let cfg = ws.config();
    // Start a run and kill it early, leaving a journal and a lock file with its pid.
    run_and_kill(
        &ws,
        &["run", "--config", cfg.to_str().unwrap()],
        1,
        Duration::ZERO,
    );
    let lock = std::fs::read_to_string(ws.run_dir().join("lock")).unwrap();
    assert!(!lock.trim().is_empty(), "a SIGKILLed holder leaves its pid");

    // Two resumes at once: exactly one trains, the other exits 0 with "already running".
    let first = ws
        .cmd(&["resume"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first holds the lock (its heartbeat names its pid).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(ws.run_dir().join("lock"))
        .unwrap_or_default()
        .starts_with(&first.id().to_string())
    {
        assert!(
            Instant::now() < deadline,
            "first resume never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = ws.run(&["resume"]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let said = String::from_utf8_lossy(&second.stdout);
    assert!(
        said.contains(&format!("already running (pid {})", first.id())),
        "{said}"
    );
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    // The SIGKILLed holder's pid was still in the lock file: taken over, and logged.
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("taking over the lock"),
        "{}",
        text(&first)
    );
    // Exactly one session trained after the kill: the journal has one session per command
    // that held the lock (run + first resume), none for the second.
    let sessions = ws
        .journal_lines()
        .iter()
        .filter(|e| e["event"] == "session")
        .count();
    assert_eq!(sessions, 2);
}

#[test]
fn status_reports_the_run_and_json_has_the_q_table() {
    let ws = Workspace::new(2);
    let out = ws.run(&["run", "--config", ws.config().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = ws.run(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("state      finished"), "{s}");
    assert!(s.contains("2/2 iterations"), "{s}");
    assert!(s.contains("best       iteration"), "{s}");
    let out = ws.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["iterations"].as_array().unwrap().len(), 2);
    assert!(v["q_table"].is_object(), "{v}");
    assert!(v["mutation_probabilities"].is_object(), "{v}");
    let report = ws.run_dir().join("report");
    assert!(report.join("report.md").is_file());
    // The HTML page holds everything inline and, the run being over, no reload.
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(html.contains("finished") && !html.contains("http-equiv=\"refresh\""));
    assert_eq!(html.matches("<svg").count(), 2, "both charts inline");
    assert!(
        !html.contains("<img") && !html.contains("<script"),
        "self-contained"
    );
    for png in ["accuracy.png", "mutation_probs.png"] {
        let bytes = std::fs::read(report.join(png)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{png}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&report)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A run killed mid-candidate: `status` shows the epoch the candidate reached, and the
/// resumed run clears it when the candidate is done.
#[test]
fn status_shows_the_epoch_of_the_candidate_in_training() {
    let ws = Workspace::new(1);
    let training = run_killed_mid_training(&ws, &["train.epochs=200"], |_| true);
    let out = ws.run(&["status"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("state      interrupted"), "{s}");
    assert!(
        s.contains("training   iteration 0 (model 3): epoch "),
        "{s}"
    );
    assert!(s.contains("/200 done, valid "), "{s}");
    let out = ws.run(&["resume"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!training.exists());
    let out = ws.run(&["status"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("training   "));
}

#[test]
fn damaged_cache_entries_and_torn_journal_lines_are_recomputed_not_fatal() {
    let ws = Workspace::new(2);
    let out = ws.run(&["run", "--config", ws.config().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let expected = comparable(&ws.journal_lines());

    // Truncate one train entry, delete a sample entry, cut the journal's last line.
    let store = ws.cache().join("store");
    let train = std::fs::read_dir(store.join("train"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(&train).unwrap();
    std::fs::write(&train, &bytes[..bytes.len() / 2]).unwrap();
    let sample = std::fs::read_dir(store.join("sample"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(&sample).unwrap();
    let journal_path = ws.run_dir().join("journal.jsonl");
    let journal = std::fs::read_to_string(&journal_path).unwrap();
    // Drop the Finished line and cut the one before it in half.
    let mut lines: Vec<&str> = journal.lines().collect();
    lines.pop();
    let last = lines.pop().unwrap();
    let mut cut = lines.join("\n");
    cut.push('\n');
    cut.push_str(&last[..last.len() / 2]);
    std::fs::write(&journal_path, cut).unwrap();

    let out = ws.run(&["resume"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("damaged"),
        "{}",
        text(&out)
    );
    assert_eq!(comparable(&ws.journal_lines()), expected);
}

fn assert_user_error(out: &std::process::Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(2), "{}", text(out));
    let err = String::from_utf8_lossy(&out.stderr);
    for n in needles {
        assert!(err.contains(n), "expected `{n}` in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_inputs_exit_2_with_file_field_and_fix() {
    let ws = Workspace::new(1);
    let cfg = ws.config();
    let cfg_s = cfg.to_str().unwrap();
    let spider = ws.path().join("spider");
    let good = std::fs::read_to_string(spider.join("train_spider.json")).unwrap();

    // Missing Spider dir.
    let out = ws.run(&[
        "run",
        "--config",
        cfg_s,
        "--set",
        "data.spider_dir=\"/nonexistent/spider\"",
    ]);
    assert_user_error(&out, &["/nonexistent/spider", "Fix"]);
    // Refused before a run directory exists: nothing is left for `resume` to retry.
    assert!(!run_exists(&ws));

    // Unknown config key.
    let out = ws.run(&["run", "--config", cfg_s, "--set", "train.epochz=3"]);
    assert_user_error(&out, &["epochz", "Fix"]);

    // Values outside a closed set name the key and the accepted spellings.
    for (set, needles) in [
        ("data.merge=fuzzy", ["data.merge", "`overlap`"]),
        ("features.judge=oracle", ["features.judge", "`lexical`"]),
        (
            "encoder.source=s3://m",
            ["encoder.source", "pypi:NAME==VERSION"],
        ),
        ("train.device=tpu:0", ["train.device", "cuda:N"]),
    ] {
        let out = ws.run(&["run", "--config", cfg_s, "--set", set]);
        assert_user_error(&out, &needles);
        assert!(!run_exists(&ws));
    }

    // Negative (inverted) learning-rate range.
    let out = ws.run(&[
        "run",
        "--config",
        cfg_s,
        "--set",
        "search.space.lr_log10=[-2.0, -6.0]",
    ]);
    assert_user_error(&out, &["lr_log10"]);

    // A run id that does not exist.
    let out = ws.run(&["resume", "no-such-run"]);
    assert_user_error(&out, &["no-such-run", "Fix"]);
    let out = ws.run(&["status", "no-such-run"]);
    assert_user_error(&out, &["no-such-run"]);

    // A file that is not JSON.
    std::fs::write(spider.join("train_spider.json"), "this is not json").unwrap();
    let out = ws.run(&["run", "--config", cfg_s]);
    assert_user_error(&out, &["train_spider.json"]);

    // A row without db_id.
    std::fs::write(
        spider.join("train_spider.json"),
        r#"[{"question": "How many singers?", "query": "x"}]"#,
    )
    .unwrap();
    let out = ws.run(&["run", "--config", cfg_s]);
    assert_user_error(&out, &["train_spider.json", "db_id"]);

    // A db_id absent from tables.json.
    std::fs::write(
        spider.join("train_spider.json"),
        r#"[{"db_id": "atlantis", "question": "How many singers?"}]"#,
    )
    .unwrap();
    let out = ws.run(&["run", "--config", cfg_s]);
    assert_user_error(&out, &["atlantis", "tables.json"]);

    // An empty dataset.
    std::fs::write(spider.join("train_spider.json"), "[]").unwrap();
    let out = ws.run(&["run", "--config", cfg_s]);
    assert_user_error(&out, &["train_spider.json"]);

    // Nothing computed before is damaged: restore the data and run to the end.
    std::fs::write(spider.join("train_spider.json"), good).unwrap();
    let out = ws.run(&["run", "--config", cfg_s]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn config_changes_after_start_keep_the_frozen_config() {
    let ws = Workspace::new(2);
    run_and_kill(
        &ws,
        &["run", "--config", ws.config().to_str().unwrap()],
        1,
        Duration::ZERO,
    );
    let frozen = std::fs::read_to_string(ws.run_dir().join("config.toml")).unwrap();
    let edited = std::fs::read_to_string(ws.config())
        .unwrap()
        .replace("epochs = 2", "epochs = 3");
    std::fs::write(ws.config(), edited).unwrap();
    let out = ws.run(&["resume"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("changed since run"),
        "{}",
        text(&out)
    );
    assert_eq!(
        frozen,
        std::fs::read_to_string(ws.run_dir().join("config.toml")).unwrap()
    );
}

#[test]
fn eval_predict_and_gc_work_on_a_finished_run() {
    let ws = Workspace::new(2);
    let out = ws.run(&["run", "--config", ws.config().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let run_id = ws.run_id();

    let out = ws.run(&["eval", &run_id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("accuracy"),
        "{}",
        text(&out)
    );

    let out = ws.run(&["predict", &run_id, "How many singers are there?"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let (model, lines): (Vec<&str>, Vec<&str>) =
        stdout.lines().partition(|l| l.starts_with("model: "));
    assert_eq!(model.len(), 1, "predict says which model it uses: {stdout}");
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(lines.iter().all(|l| l.contains('%')), "{lines:?}");

    // A question file with one unknown database: accuracy over the known ones only.
    let questions = ws.path().join("questions.json");
    std::fs::write(
        &questions,
        r#"[{"db_id": "concert_singer", "question": "How many singer are there?"},
            {"db_id": "atlantis", "question": "Where is the lost city?"}]"#,
    )
    .unwrap();
    let out = ws.run(&["eval", &run_id, "--input", questions.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 questions, 1 with a known class"),
        "{}",
        text(&out)
    );

    // gc: an entry no journal references goes; referenced ones stay.
    let stray = ws.cache().join("store").join("train").join("0".repeat(64));
    std::fs::write(&stray, b"orphan").unwrap();
    let out = ws.run(&["gc", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stray.exists());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("would remove 1 entries"),
        "{}",
        text(&out)
    );
    let out = ws.run(&["gc"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!stray.exists());
    // The run still evaluates: nothing it references was removed.
    let out = ws.run(&["eval", &run_id]);
    assert!(out.status.success(), "{}", text(&out));
}

/// `predict` on a finished run says which model it uses, then prints the top-5 classes,
/// one line each.
fn assert_predicts_top5(ws: &Workspace, run_id: &str) {
    let out = ws.run(&["predict", run_id, "How many singers are there?"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    assert!(lines[0].starts_with("model: "), "{stdout}");
}

/// A frozen run with neighbour evidence: `eval` encodes the test questions again and
/// compares them with the training rows' vectors, and must score what training measured
/// with the stored evidence; `predict` and a question file go the same way.
#[test]
fn frozen_runs_with_neighbours_evaluate_as_they_trained() {
    let ws = Workspace::frozen(3);
    let out = ws.run_with(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let journal = ws.journal_lines();
    assert!(journal
        .iter()
        .any(|e| e["event"] == "stage" && e["stage"] == "neighbours"));
    let trained: Vec<String> = journal
        .iter()
        .filter(|e| e["event"] == "stage" && e["stage"] == "train")
        .filter_map(|e| e["metrics"]["test_acc"].as_f64())
        .map(|a| format!("accuracy {:.2}%", a * 100.0))
        .collect();
    let run_id = ws.run_id();
    // Each candidate, named by its key, evaluates as it trained.
    let best = journal
        .iter()
        .filter(|e| e["event"] == "stage" && e["stage"] == "train")
        .max_by(|a, b| {
            a["metrics"]["valid_acc"]
                .as_f64()
                .partial_cmp(&b["metrics"]["valid_acc"].as_f64())
                .unwrap()
                .then(b["iteration"].as_u64().cmp(&a["iteration"].as_u64()))
        })
        .unwrap();
    let key = &best["key"].as_str().unwrap()[..16];
    let out = ws.run(&["eval", &run_id, "--candidate", key]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        trained.iter().any(|t| printed.contains(t.as_str())),
        "eval printed {printed}, training measured {trained:?}"
    );
    // Without a candidate, eval uses the model after the search (an ensemble of the
    // candidates, refit on training + validation rows) and scores what its node measured.
    let fin = journal
        .iter()
        .find(|e| e["event"] == "stage" && e["stage"] == "final")
        .expect("a final node");
    let kind = fin["metrics"]["kind"].as_str().unwrap();
    assert!(
        kind.starts_with("ensemble of") && kind.ends_with("refit on train+valid"),
        "{kind}"
    );
    let members = fin["metrics"]["members"].as_array().unwrap().len();
    let refits = journal
        .iter()
        .filter(|e| e["event"] == "stage" && e["stage"] == "refit")
        .count();
    assert_eq!(refits, members, "one refit per member");
    let out = ws.run(&["eval", &run_id]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(printed.contains(&format!("model: {kind}")), "{printed}");
    let final_acc = fin["metrics"]["test_acc"].as_f64().unwrap();
    assert!(
        printed.contains(&format!("accuracy {:.2}%", final_acc * 100.0)),
        "eval printed {printed}, the final node measured {final_acc}"
    );
    assert_predicts_top5(&ws, &run_id);
    // `status` puts the best candidate beside the character n-gram SVM alone, whose test
    // accuracy is the char_svm node's.
    let svm = journal
        .iter()
        .find(|e| e["event"] == "stage" && e["stage"] == "char_svm")
        .and_then(|e| e["metrics"]["test_top1"].as_f64())
        .expect("char_svm in the journal");
    let out = ws.run(&["status", &run_id]);
    let status = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(status.contains("\nensemble   "), "{status}");
    assert!(
        status.contains(&format!(
            "\nmodel      {kind}: test {:.2}%",
            final_acc * 100.0
        )),
        "{status}"
    );
    let line = status
        .lines()
        .find(|l| l.starts_with("baseline   the character n-gram SVM alone"))
        .unwrap_or_else(|| panic!("no baseline line in {status}"));
    assert!(
        line.contains(&format!("test {:.2}%", svm * 100.0)),
        "{line}"
    );
    let out = ws.run(&["status", &run_id, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["svm_test_acc"].as_f64(), Some(svm));
    // The report written at the end says the same.
    let report = std::fs::read_to_string(ws.run_dir().join("report").join("report.md")).unwrap();
    assert!(
        report.contains(&format!(
            "The character n-gram SVM alone scores {svm:.4} test"
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!("### The model in use: {kind}")),
        "{report}"
    );
    // Neighbour evidence needs fixed vectors: a fine-tuned encoder is refused up front.
    let out = ws.run_with(&["encoder.mode=finetune"]);
    assert_user_error(&out, &["encoder.neighbours", "frozen"]);
}

/// Per-class pooling needs the rule set's column classes at train, eval and predict time;
/// the engine passes them along (the initial candidate uses the rule branch).
#[test]
fn per_class_pooling_runs_evaluates_and_predicts() {
    let ws = Workspace::new(1);
    let out = ws.run_with(&["train.branch_pool=per-class"]);
    assert!(out.status.success(), "{}", text(&out));
    let run_id = ws.run_id();
    let out = ws.run(&["eval", &run_id]);
    assert!(out.status.success(), "{}", text(&out));
    assert_predicts_top5(&ws, &run_id);
    // A misspelt value names the key and the choices.
    let out = ws.run_with(&["train.branch_pool=flatten"]);
    assert_user_error(&out, &["branch_pool", "per-class"]);
}

#[test]
fn resume_reads_the_data_the_run_started_with_and_refuses_changed_data() {
    let ws = Workspace::new(3);
    let spider = ws.path().join("spider");
    let cfg = ws.config();
    let cfg_s = cfg.to_str().unwrap();
    // Started from a shell with HHNAS_SPIDER_DIR set (the config names a missing dir) ...
    let mut child = ws
        .cmd(&[
            "run",
            "--config",
            cfg_s,
            "--set",
            "data.spider_dir=\"/nonexistent\"",
        ])
        .env("HHNAS_SPIDER_DIR", &spider)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(run_exists(&ws) && stage_lines(&ws) >= 4) {
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    // ... and resumed from cron without it: the frozen absolute path is used.
    let out = ws.run(&["resume"]);
    assert!(out.status.success(), "{}", text(&out));

    // Changing the data under a run is refused, naming the files and the fix.
    let ws2 = Workspace::new(3);
    let spider2 = ws2.path().join("spider");
    run_and_kill(
        &ws2,
        &["run", "--config", ws2.config().to_str().unwrap()],
        4,
        Duration::ZERO,
    );
    let train = spider2.join("train_spider.json");
    let mut rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&train).unwrap()).unwrap();
    rows.push(serde_json::json!({"db_id": "pets_1", "question": "How many pets are heavy?"}));
    std::fs::write(&train, serde_json::to_string(&rows).unwrap()).unwrap();
    let out = ws2.run(&["resume"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("changed since this run started"), "{err}");
    assert!(err.contains("Fix"), "{err}");
}

/// `repeat`: no search at the search's budget. Every iteration trains the initial
/// candidate again with a training seed of its own, so the run holds as many distinct
/// candidates (keys) of one spec as it has iterations, for its ensemble to draw on.
#[test]
fn repeat_trains_the_initial_candidate_once_per_iteration_with_its_own_seed() {
    let ws = Workspace::new(3);
    let out = ws.run_with(&["search.strategy=repeat"]);
    assert!(out.status.success(), "{}", text(&out));
    let journal = ws.journal_lines();
    let stage = |name: &str| -> Vec<&serde_json::Value> {
        journal
            .iter()
            .filter(|e| e["event"] == "stage" && e["stage"] == name)
            .collect()
    };
    let keys: std::collections::BTreeSet<&str> = stage("train")
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 3, "three distinct candidates: {keys:?}");
    let params: std::collections::BTreeSet<String> = stage("sample")
        .iter()
        .map(|e| e["metrics"]["params"].to_string())
        .collect();
    assert_eq!(params.len(), 1, "one spec: {params:?}");
}

//! A labelled text set of the user's own (`[data] source = "labelled"`) through the whole
//! pipeline: run, status, eval (also `--input` in the run's format), predict, data-stats,
//! and bad input refused before a run directory exists.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const INTENTS: [(&str, [&str; 4]); 4] = [
    ("billing_issue", ["invoice", "charge", "refund", "payment"]),
    ("password-reset", ["password", "login", "locked", "reset"]),
    (
        "shipping delay",
        ["parcel", "delivery", "courier", "tracking"],
    ),
    (
        "FeatureRequest",
        ["feature", "suggestion", "roadmap", "idea"],
    ),
];

/// `n` templated texts per intent, JSONL (`labelled.jsonl`) or CSV with other column names
/// (`test.csv`: `utterance`, `intent`).
fn write_intents(dir: &Path, n: usize, offset: usize, csv: bool) -> PathBuf {
    let templates = [
        "I have a question about my {a} and the {b}",
        "why is the {a} not working, {b} please",
        "hello, my {a} needs help with {b} today",
        "can you check the {a}? the {b} looks wrong",
        "urgent {a} problem, {b} since yesterday",
    ];
    let mut lines = Vec::new();
    if csv {
        lines.push("utterance,intent".to_string());
    }
    for (label, words) in INTENTS {
        for i in offset..offset + n {
            let t = templates[i % templates.len()]
                .replace("{a}", words[i % 4])
                .replace("{b}", words[(i + 1) % 4]);
            let text = format!("{t} (case {i})");
            lines.push(if csv {
                format!("\"{text}\",{label}")
            } else {
                serde_json::json!({"text": text, "label": label}).to_string()
            });
        }
    }
    let path = dir.join(if csv { "test.csv" } else { "labelled.jsonl" });
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// The tiny workspace reading `labelled.jsonl` instead of Spider.
fn labelled_workspace(iterations: u64) -> Workspace {
    let ws = Workspace::new(iterations);
    let file = write_intents(ws.path(), 30, 0, false);
    let cfg = ws.config_text().replace(
        "[data]\n",
        &format!(
            "[data]\nsource = \"labelled\"\nlabelled_file = \"{}\"\n",
            file.display()
        ),
    );
    std::fs::write(ws.config(), cfg).unwrap();
    ws
}

fn stdout(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn a_labelled_set_runs_evaluates_and_predicts() {
    let ws = labelled_workspace(2);
    let cfg = ws.config();
    let cfg_s = cfg.to_str().unwrap();

    let stats = stdout(&ws.run(&["data-stats", "--config", cfg_s]));
    assert!(
        stats.contains("120 records read, 0 duplicates dropped"),
        "{stats}"
    );
    assert!(
        stats.contains("billing_issue") && stats.contains("FeatureRequest"),
        "{stats}"
    );

    stdout(&ws.run(&["run", "--config", cfg_s]));
    let journal = ws.journal_lines();
    let data = journal
        .iter()
        .find(|e| e["event"] == "stage" && e["stage"] == "labelled")
        .expect("a labelled node in the journal");
    assert_eq!(data["metrics"]["classes"], 4);
    assert!(!journal.iter().any(|e| e["stage"] == "spider"));
    let id = ws.run_id();

    let status = stdout(&ws.run(&["status", &id]));
    assert!(
        status.contains("labelled") && status.contains("best"),
        "{status}"
    );
    let eval = stdout(&ws.run(&["eval", &id]));
    assert!(eval.contains("accuracy"), "{eval}");

    // A new batch in the run's format, and one with other column names is refused.
    let batch = ws.path().join("batch");
    std::fs::create_dir_all(&batch).unwrap();
    let jsonl = write_intents(&batch, 5, 100, false);
    let out = stdout(&ws.run(&["eval", &id, "--input", jsonl.to_str().unwrap()]));
    assert!(out.contains("20 questions, 20 with a known class"), "{out}");
    let csv = write_intents(&batch, 5, 100, true);
    let out = ws.run(&["eval", &id, "--input", csv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`text`"),
        "{}",
        text(&out)
    );

    let predicted = stdout(&ws.run(&["predict", &id, "my parcel tracking is wrong"]));
    // Which model, then the top 5 of 4 classes: all of them, each once.
    assert_eq!(predicted.lines().count(), 5, "{predicted}");
    assert!(predicted.starts_with("model: "), "{predicted}");
    assert!(predicted.contains("shipping delay"), "{predicted}");
}

#[test]
fn a_separate_test_file_in_csv_is_the_test_split() {
    let ws = labelled_workspace(1);
    let test = write_intents(ws.path(), 6, 200, true);
    let cfg = ws.config_text().replace(
        "source = \"labelled\"\n",
        &format!(
            "source = \"labelled\"\ntest_file = \"{}\"\n",
            test.display()
        ),
    );
    // The test file's columns are named differently: the run's fields apply to both files.
    let cfg = cfg.replace(
        "merge = ",
        "text_field = \"utterance\"\nlabel_field = \"intent\"\nmerge = ",
    );
    std::fs::write(ws.config(), cfg).unwrap();
    let out = ws.run(&["run", "--config", ws.config().to_str().unwrap()]);
    // labelled.jsonl has `text` / `label`, not `utterance` / `intent`: refused, no run.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("labelled.jsonl") && err.contains("utterance"),
        "{err}"
    );
    assert!(!run_exists(&ws));

    // With both files in the same format the run's test split is the test file.
    let csv_train = ws.path().join("train.csv");
    let body = std::fs::read_to_string(write_intents(ws.path(), 30, 0, true)).unwrap();
    std::fs::write(&csv_train, body).unwrap();
    let test = write_intents(ws.path(), 6, 200, true);
    let cfg = ws.config_text().replace(
        &ws.path().join("labelled.jsonl").display().to_string(),
        &csv_train.display().to_string(),
    );
    std::fs::write(ws.config(), cfg).unwrap();
    let out = ws.run(&["run", "--config", ws.config().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let journal = ws.journal_lines();
    let data = journal
        .iter()
        .find(|e| e["event"] == "stage" && e["stage"] == "labelled")
        .unwrap();
    let summary = data["metrics"]["summary"].as_str().unwrap();
    assert!(summary.contains("labels + test file"), "{summary}");
    assert!(
        summary.ends_with("/24"),
        "24 test rows from {}: {summary}",
        test.display()
    );
}

#[test]
fn bad_labelled_input_is_refused_before_a_run_exists() {
    let ws = labelled_workspace(1);
    let cfg = ws.config();
    let cfg_s = cfg.to_str().unwrap();
    let file = ws.path().join("labelled.jsonl");
    let good = std::fs::read_to_string(&file).unwrap();
    let cases: [(&str, &[&str]); 4] = [
        (
            "{\"text\": \"\", \"label\": \"billing_issue\"}\n",
            &["labelled.jsonl", "line", "empty", "Fix"],
        ),
        (
            "{\"text\": \"only a text\"}\n",
            &["labelled.jsonl", "line", "`label`", "Fix"],
        ),
        (
            "{\"text\": \"a lonely class\", \"label\": \"rare\"}\n",
            &["labelled.jsonl", "`rare`", "Fix"],
        ),
        ("not json\n", &["labelled.jsonl", "line", "JSON"]),
    ];
    for (extra, needles) in cases {
        std::fs::write(&file, format!("{good}{extra}")).unwrap();
        let out = ws.run(&["run", "--config", cfg_s]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        for n in needles {
            assert!(err.contains(n), "expected `{n}` in: {err}");
        }
        assert!(!run_exists(&ws), "a run was created for {extra}");
    }
    std::fs::write(&file, &good).unwrap();
    // A missing file names the key to set.
    let out = ws.run(&[
        "run",
        "--config",
        cfg_s,
        "--set",
        "data.labelled_file=\"/nowhere.jsonl\"",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("labelled_file"),
        "{}",
        text(&out)
    );
    // source = "labelled" without a file.
    let plain = Workspace::new(1);
    let out = plain.run(&[
        "run",
        "--config",
        plain.config().to_str().unwrap(),
        "--set",
        "data.source=labelled",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("data.labelled_file"),
        "{}",
        text(&out)
    );

    // Nothing was lost: the good file runs.
    std::fs::write(&file, good).unwrap();
    let out = ws.run(&["run", "--config", cfg_s]);
    assert!(out.status.success(), "{}", text(&out));
}

/// The partner evidence learns from Spider's SQL, which a labelled file lacks: switched on
/// (as the demo profile has it), it is off for a labelled set, said so, and the run goes.
#[test]
fn partner_evidence_is_off_for_a_labelled_set_and_the_run_goes_on() {
    let ws = labelled_workspace(1);
    let cfg = ws.config();
    let out = ws.run(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--set",
        "features.partner_evidence=true",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // That is the one warning: a one-iteration run's charts warn of nothing either.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("WARN")).collect();
    assert!(
        warnings.len() == 1 && warnings[0].contains("features.partner_evidence is off"),
        "{warnings:?}"
    );
    let frozen = std::fs::read_to_string(ws.run_dir().join("config.toml")).unwrap();
    assert!(!frozen.contains("partner_evidence"), "{frozen}");
    assert!(
        !ws.journal_lines().iter().any(|e| e["stage"] == "partner"),
        "a partner node ran on a labelled set"
    );
}

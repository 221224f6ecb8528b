//! Cross-fitted candidates (`train.bag_folds`): each candidate is its fold models, scored
//! on out-of-fold predictions of every training and validation row, and eval and predict
//! average its fold models.

mod common;

use common::*;

/// (train, valid, test) row counts from the dataset line's summary ("split A/B/C").
fn split_sizes(journal: &[serde_json::Value]) -> (usize, usize, usize) {
    let line = journal
        .iter()
        .find(|e| e["event"] == "stage" && e["stage"] == "spider")
        .expect("dataset line");
    let summary = line["metrics"]["summary"].as_str().unwrap();
    let split = summary.split("split ").nth(1).unwrap();
    let n: Vec<usize> = split
        .split('/')
        .map(|x| x.trim().parse().unwrap())
        .collect();
    (n[0], n[1], n[2])
}

#[test]
fn a_cross_fitted_candidate_is_scored_out_of_fold_and_predicts_with_every_fold_model() {
    let ws = Workspace::frozen_bagged(2);
    let out = ws.run(&["run", "--config", ws.config().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let journal = ws.journal_lines();
    let (train, valid, _) = split_sizes(&journal);
    let trains: Vec<&serde_json::Value> = journal
        .iter()
        .filter(|e| e["event"] == "stage" && e["stage"] == "train")
        .collect();
    assert_eq!(trains.len(), 2);
    for t in &trains {
        assert_eq!(t["metrics"]["folds"], 3, "{t}");
        // The score counts right answers among every training and validation row.
        let acc = t["metrics"]["valid_acc"].as_f64().unwrap();
        let right = acc * (train + valid) as f64;
        assert!(
            (right - right.round()).abs() < 1e-6,
            "{acc} of {}",
            train + valid
        );
        assert!(acc > 0.0);
        // Its weights are a bag of three fold models.
        let key = t["key"].as_str().unwrap();
        let entry = std::fs::read(ws.cache().join("store/weights").join(key)).unwrap();
        // The store's header: 8 bytes of magic and the payload's blake3.
        let bag = &entry[8 + 32..];
        assert!(bag.starts_with(b"HHNBAG1\n"));
        assert_eq!(u32::from_le_bytes(bag[8..12].try_into().unwrap()), 3);
    }
    // Nothing of the folds is left in the scratch folder once the candidates are stored.
    let leftovers: Vec<_> = walkdir::WalkDir::new(ws.run_dir())
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".fold"))
        .map(|e| e.path().to_path_buf())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The run's report says what its validation figures are.
    let report = std::fs::read_to_string(ws.run_dir().join("report/report.md")).unwrap();
    assert!(report.contains("cross-fitted over 3 folds"), "{report}");

    // eval averages each member's fold models and prints the figure the run stored.
    let final_line = journal
        .iter()
        .rfind(|e| e["event"] == "stage" && e["stage"] == "final")
        .expect("final line");
    let stored = final_line["metrics"]["test_acc"].as_f64().unwrap();
    let out = ws.run(&["eval", &ws.run_id()]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = format!("accuracy {:.2}%", stored * 100.0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&printed),
        "expected {printed}: {}",
        text(&out)
    );
    let out = ws.run(&["predict", &ws.run_id(), "How many singers are there?"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// A run killed in its second fold: `status` names the fold, and `resume` goes on from
/// there without training the first fold again.
#[test]
fn a_candidate_killed_in_its_second_fold_resumes_there() {
    let ws = Workspace::frozen_bagged(1);
    run_killed_mid_training(&ws, &["train.epochs=400"], |t| {
        t["fold"] == serde_json::json!([1, 3])
    });
    let out = ws.run(&["status"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("training   iteration 0, fold 2/3 (model "),
        "{s}"
    );

    let out = ws
        .cmd(&["resume"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("train (iteration 0, fold 2/3)"), "{log}");
    assert!(log.contains("train (iteration 0, fold 3/3)"), "{log}");
    assert!(
        !log.contains("fold 1/3"),
        "the first fold trained again: {log}"
    );
}

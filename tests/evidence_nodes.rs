//! The evidence nodes behind a switch (`[features] schema_evidence`, `schema_semantic`,
//! `partner_evidence`): each joins the evidence in its place in the DAG, `eval` scores the run's test split from
//! its stored values, `predict` computes it for new texts as the run computed it, and with the switch off nothing changes: no new
//! node, the same keys as before, no new key in the frozen config.

mod common;

use common::*;

fn stage_lines<'a>(journal: &'a [serde_json::Value], stage: &str) -> Vec<&'a serde_json::Value> {
    journal
        .iter()
        .filter(|e| e["event"] == "stage" && e["stage"] == stage)
        .collect()
}

fn key_of(journal: &[serde_json::Value], stage: &str) -> String {
    stage_lines(journal, stage)
        .first()
        .unwrap_or_else(|| panic!("no {stage} line"))["key"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The run with `features.SWITCH` off, then on in the same cache: off, none of `nodes`
/// runs and the frozen config does not name the switch; on, the run succeeds, the frozen
/// config says `SWITCH = true`, and the candidates are keyed apart from the off run's.
/// Returns both journals and the on run's id.
fn off_then_on(
    ws: &Workspace,
    switch: &str,
    nodes: &[&str],
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>, String) {
    let out = ws.run_with(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let off_run = ws.run_id();
    let off = ws.journal_lines();
    for stage in nodes {
        assert!(stage_lines(&off, stage).is_empty(), "{stage} ran while off");
    }
    let frozen = std::fs::read_to_string(ws.run_dir().join("config.toml")).unwrap();
    assert!(!frozen.contains(switch), "{frozen}");

    let out = ws.run_with(&[&format!("features.{switch}=true")]);
    assert!(out.status.success(), "{}", text(&out));
    let run_id = ws.run_id();
    assert_ne!(run_id, off_run);
    let on = ws.journal_lines();
    let frozen = std::fs::read_to_string(ws.run_dir().join("config.toml")).unwrap();
    assert!(frozen.contains(&format!("{switch} = true")), "{frozen}");
    // The head reads the new block: its candidates are keyed apart from the off run's.
    assert_ne!(key_of(&on, "train"), key_of(&off, "train"));
    (off, on, run_id)
}

/// The one-off nodes of a journal, in the order they ran.
fn one_off_order(journal: &[serde_json::Value]) -> Vec<&str> {
    journal
        .iter()
        .filter(|e| e["event"] == "stage" && e["iteration"].is_null())
        .filter_map(|e| e["stage"].as_str())
        .collect()
}

/// `eval` scores the test questions from the run's stored values, as the final node did;
/// `predict` computes a new question's evidence and answers with five classes.
fn evaluates_as_the_final_node_measured(
    ws: &Workspace,
    journal: &[serde_json::Value],
    run_id: &str,
) {
    evaluates_from_stored_values(ws, journal, run_id);
    let out = ws.run(&["predict", run_id, "How many singers are there?"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 6);
    // The run was made by this release: no warning that its evidence came from another.
    assert!(!text(&out).contains("another release"), "{}", text(&out));
}

/// `eval RUN` prints the test accuracy the run's final node measured.
fn evaluates_from_stored_values(ws: &Workspace, journal: &[serde_json::Value], run_id: &str) {
    let fin = stage_lines(journal, "final")[0];
    let final_acc = fin["metrics"]["test_acc"].as_f64().unwrap();
    let out = ws.run(&["eval", run_id]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        printed.contains(&format!("accuracy {:.2}%", final_acc * 100.0)),
        "eval printed {printed}, the final node measured {final_acc}"
    );
}

#[test]
fn schema_evidence_joins_the_head_and_evaluates_as_it_trained() {
    let ws = Workspace::frozen(2);
    let (off, on, run_id) = off_then_on(&ws, "schema_evidence", &["schema_share", "schema_cosine"]);
    // The nodes before it replay; the two schema nodes follow char_svm.
    for stage in ["encode", "neighbours", "char_neighbours", "char_svm"] {
        assert_eq!(key_of(&on, stage), key_of(&off, stage), "{stage}");
        assert_eq!(stage_lines(&on, stage)[0]["cache_hit"], true, "{stage}");
    }
    let order = one_off_order(&on);
    let pos = |s: &str| order.iter().position(|&x| x == s).unwrap();
    assert!(pos("char_svm") < pos("schema_share") && pos("schema_share") < pos("schema_cosine"));
    for stage in ["schema_share", "schema_cosine"] {
        let line = stage_lines(&on, stage)[0];
        assert_eq!(line["cache_hit"], false, "{line}");
        let summary = line["metrics"]["summary"].as_str().unwrap();
        assert!(summary.contains("best class right"), "{summary}");
        assert!(!summary.contains("left out"), "{summary}");
    }
    evaluates_as_the_final_node_measured(&ws, &on, &run_id);
}

#[test]
fn semantic_schema_evidence_joins_after_the_encoder_neighbours_and_evaluates_as_it_trained() {
    let ws = Workspace::frozen(2);
    let (off, on, run_id) = off_then_on(&ws, "schema_semantic", &["schema_semantic"]);
    for stage in ["encode", "neighbours"] {
        assert_eq!(key_of(&on, stage), key_of(&off, stage), "{stage}");
        assert_eq!(stage_lines(&on, stage)[0]["cache_hit"], true, "{stage}");
    }
    // Not lexical, so it sits before the lexical blocks that lexical dropout hides: the
    // character nodes after it are keyed anew (their input holds it).
    let order = one_off_order(&on);
    let pos = |s: &str| order.iter().position(|&x| x == s).unwrap();
    assert!(pos("neighbours") < pos("schema_semantic"), "{order:?}");
    assert!(pos("schema_semantic") < pos("char_neighbours"), "{order:?}");
    assert_ne!(
        key_of(&on, "char_neighbours"),
        key_of(&off, "char_neighbours")
    );
    let line = stage_lines(&on, "schema_semantic")[0];
    assert_eq!(line["cache_hit"], false, "{line}");
    let summary = line["metrics"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("encoder cosine") && summary.contains("best class right"),
        "{summary}"
    );
    // `predict` embeds the new question's words with the run's encoder.
    evaluates_as_the_final_node_measured(&ws, &on, &run_id);
}

#[test]
fn partner_evidence_joins_the_head_and_evaluates_as_it_trained() {
    let ws = Workspace::frozen(2);
    let (off, on, run_id) = off_then_on(&ws, "partner_evidence", &["partner"]);
    for stage in ["encode", "neighbours", "char_neighbours", "char_svm"] {
        assert_eq!(key_of(&on, stage), key_of(&off, stage), "{stage}");
    }
    let line = stage_lines(&on, "partner")[0];
    assert_eq!(line["cache_hit"], false, "{line}");
    let summary = line["metrics"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("paraphrase-partner") && summary.contains("left out"),
        "{summary}"
    );
    // Every fixture question of a database shares its SQL: the partner is always there.
    let train_top1 = line["metrics"]["train_top1"].as_f64().unwrap();
    assert!(train_top1 > 0.9, "{line}");

    evaluates_as_the_final_node_measured(&ws, &on, &run_id);

    // Without the Spider files (whose SQL gives the bank's paraphrase keys), `eval` still
    // scores the run's own test split from what the run stored; a new question's partner
    // evidence needs them, and the error says so.
    let spider = ws.path().join("spider");
    std::fs::rename(&spider, ws.path().join("spider-moved")).unwrap();
    evaluates_from_stored_values(&ws, &on, &run_id);
    let out = ws.run(&["predict", &run_id, "How many singers are there?"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Fix"), "{}", text(&out));
}

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

    // Off first: the release's DAG, and its frozen config does not name the switch.
    let out = ws.run_with(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let off_run = ws.run_id();
    let off = ws.journal_lines();
    for stage in ["schema_share", "schema_cosine"] {
        assert!(stage_lines(&off, stage).is_empty(), "{stage} ran while off");
    }
    let frozen = std::fs::read_to_string(ws.run_dir().join("config.toml")).unwrap();
    assert!(!frozen.contains("schema_evidence"), "{frozen}");

    // On, same cache: the nodes before it replay, the two schema nodes follow char_svm.
    let out = ws.run_with(&["features.schema_evidence=true"]);
    assert!(out.status.success(), "{}", text(&out));
    let run_id = ws.run_id();
    assert_ne!(run_id, off_run);
    let on = ws.journal_lines();
    for stage in ["encode", "neighbours", "char_neighbours", "char_svm"] {
        assert_eq!(key_of(&on, stage), key_of(&off, stage), "{stage}");
        assert_eq!(stage_lines(&on, stage)[0]["cache_hit"], true, "{stage}");
    }
    let order: Vec<&str> = on
        .iter()
        .filter(|e| e["event"] == "stage" && e["iteration"].is_null())
        .filter_map(|e| e["stage"].as_str())
        .collect();
    let pos = |s: &str| order.iter().position(|&x| x == s).unwrap();
    assert!(pos("char_svm") < pos("schema_share") && pos("schema_share") < pos("schema_cosine"));
    for stage in ["schema_share", "schema_cosine"] {
        let line = stage_lines(&on, stage)[0];
        assert_eq!(line["cache_hit"], false, "{line}");
        let summary = line["metrics"]["summary"].as_str().unwrap();
        assert!(summary.contains("best class right"), "{summary}");
        assert!(!summary.contains("left out"), "{summary}");
    }
    // The head reads the schema blocks: its candidates are keyed apart from the off run's.
    assert_ne!(key_of(&on, "train"), key_of(&off, "train"));
    let frozen = std::fs::read_to_string(ws.run_dir().join("config.toml")).unwrap();
    assert!(frozen.contains("schema_evidence = true"), "{frozen}");

    evaluates_as_the_final_node_measured(&ws, &on, &run_id);
}

#[test]
fn semantic_schema_evidence_joins_after_the_encoder_neighbours_and_evaluates_as_it_trained() {
    let ws = Workspace::frozen(2);
    let out = ws.run_with(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let off = ws.journal_lines();
    assert!(
        stage_lines(&off, "schema_semantic").is_empty(),
        "ran while off"
    );
    let frozen = std::fs::read_to_string(ws.run_dir().join("config.toml")).unwrap();
    assert!(!frozen.contains("schema_semantic"), "{frozen}");

    let out = ws.run_with(&["features.schema_semantic=true"]);
    assert!(out.status.success(), "{}", text(&out));
    let run_id = ws.run_id();
    let on = ws.journal_lines();
    for stage in ["encode", "neighbours"] {
        assert_eq!(key_of(&on, stage), key_of(&off, stage), "{stage}");
        assert_eq!(stage_lines(&on, stage)[0]["cache_hit"], true, "{stage}");
    }
    // Not lexical, so it sits before the lexical blocks that lexical dropout hides: the
    // character nodes after it are keyed anew (their input holds it).
    let order: Vec<&str> = on
        .iter()
        .filter(|e| e["event"] == "stage" && e["iteration"].is_null())
        .filter_map(|e| e["stage"].as_str())
        .collect();
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
    assert_ne!(key_of(&on, "train"), key_of(&off, "train"));
    let frozen = std::fs::read_to_string(ws.run_dir().join("config.toml")).unwrap();
    assert!(frozen.contains("schema_semantic = true"), "{frozen}");

    // `predict` embeds the new question's words with the run's encoder.
    evaluates_as_the_final_node_measured(&ws, &on, &run_id);
}

#[test]
fn partner_evidence_joins_the_head_and_evaluates_as_it_trained() {
    let ws = Workspace::frozen(2);
    let out = ws.run_with(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let off = ws.journal_lines();
    assert!(
        stage_lines(&off, "partner").is_empty(),
        "partner ran while off"
    );
    let frozen = std::fs::read_to_string(ws.run_dir().join("config.toml")).unwrap();
    assert!(!frozen.contains("partner_evidence"), "{frozen}");

    let out = ws.run_with(&["features.partner_evidence=true"]);
    assert!(out.status.success(), "{}", text(&out));
    let run_id = ws.run_id();
    let on = ws.journal_lines();
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
    assert_ne!(key_of(&on, "train"), key_of(&off, "train"));
    let frozen = std::fs::read_to_string(ws.run_dir().join("config.toml")).unwrap();
    assert!(frozen.contains("partner_evidence = true"), "{frozen}");

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

#![allow(dead_code)]
//! Shared helpers for the integration tests.

use std::path::{Path, PathBuf};

/// The shared Spider directory named by HHNAS_SPIDER_DIR (a relative value is taken from
/// the workspace root, [`hhnas_spider::from_workspace_root`]). A test that needs real
/// Spider fails without it rather than passing without having run.
pub fn spider_dir() -> PathBuf {
    match std::env::var("HHNAS_SPIDER_DIR") {
        Ok(d) if !d.is_empty() => hhnas_spider::from_workspace_root(
            Path::new(&d),
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        ),
        _ => panic!(
            "this test needs Spider: set HHNAS_SPIDER_DIR to a Spider directory, as the \
             README's test command does (HHNAS_SPIDER_DIR=../shared/datasets/spider cargo test --workspace)"
        ),
    }
}

/// A tables.json with databases `a`, `b`, `c`, `d`.
pub const TABLES: &str = r#"[
 {"db_id": "a", "table_names": ["singer", "concert"], "column_names": [[-1, "*"], [0, "singer id"], [0, "name"], [1, "concert id"]], "extra": 1},
 {"db_id": "b", "table_names": ["car"], "column_names": [[-1, "*"], [0, "car id"], [0, "maker"]]},
 {"db_id": "c", "table_names": ["pet"], "column_names": [[-1, "*"], [0, "pet id"]]},
 {"db_id": "d", "table_names": ["dog"], "column_names": [[-1, "*"], [0, "dog id"]]}
]"#;

/// Writes `files` (name, contents) into a new temp dir.
pub fn write_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).expect("write fixture");
    }
    dir
}

/// JSON array of rows `{db_id, question, query}`.
pub fn rows_json(rows: &[(&str, &str)]) -> String {
    let v: Vec<serde_json::Value> = rows
        .iter()
        .map(|(db, q)| serde_json::json!({"db_id": db, "question": q, "query": "SELECT 1", "question_toks": ["x"]}))
        .collect();
    serde_json::to_string_pretty(&v).unwrap()
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

//! Bad inputs give typed errors naming the file, the place and the fix.

mod common;
use common::*;
use hhnas_spider::{build_dataset, read_spider_dir, DataError, DataParams, MergeRule};

fn build(files: &[(&str, &str)]) -> Result<hhnas_data::Dataset, DataError> {
    let dir = write_dir(files);
    let src = read_spider_dir(dir.path())?;
    build_dataset(&src, &DataParams::default())
}

#[test]
fn missing_dir_names_path_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = read_spider_dir(&missing).unwrap_err();
    assert!(matches!(err, DataError::MissingDir { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path_str(&missing)), "{msg}");
    assert!(
        msg.contains("HHNAS_SPIDER_DIR") && msg.contains("fetch-data"),
        "{msg}"
    );
}

#[test]
fn missing_tables_file_is_named() {
    let dir = write_dir(&[("train_spider.json", "[]")]);
    let err = read_spider_dir(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::MissingFile { .. }));
    assert!(msg.contains("tables.json") && msg.contains("Fix:"), "{msg}");
}

#[test]
fn optional_files_may_be_absent() {
    let dir = write_dir(&[("train_spider.json", "[]"), ("tables.json", TABLES)]);
    let src = read_spider_dir(dir.path()).unwrap();
    assert!(src.others.is_none() && src.dev.is_none());
    assert_eq!(src.files().len(), 2);
}

#[test]
fn not_json_reports_line_and_column() {
    let err = build(&[
        ("train_spider.json", "[\n {\"db_id\": \"a\",,}\n]"),
        ("tables.json", TABLES),
    ])
    .unwrap_err();
    match &err {
        DataError::BadJson { file, line, .. } => {
            assert!(file.ends_with("train_spider.json"));
            assert_eq!(*line, 2);
        }
        other => panic!("expected BadJson, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("train_spider.json: line 2, column"), "{msg}");
    assert_eq!(
        msg.matches("line 2").count(),
        1,
        "position named once: {msg}"
    );
}

#[test]
fn bad_tables_json_is_named() {
    let rows = rows_json(&[("a", "q")]);
    let err = build(&[("train_spider.json", &rows), ("tables.json", "{not json")]).unwrap_err();
    assert!(
        matches!(&err, DataError::BadJson { file, .. } if file.ends_with("tables.json")),
        "{err:?}"
    );
}

#[test]
fn row_without_db_id_names_row_and_field() {
    let body = r#"[{"db_id": "a", "question": "q1"}, {"question": "q2"}]"#;
    let err = build(&[("train_spider.json", body), ("tables.json", TABLES)]).unwrap_err();
    match &err {
        DataError::BadField { row, field, .. } => {
            assert_eq!(*row, 1);
            assert_eq!(field, "db_id");
        }
        other => panic!("expected BadField, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("train_spider.json: row 1, field `db_id`: missing. Fix:"),
        "{msg}"
    );
}

#[test]
fn row_without_question_names_field() {
    let body = r#"[{"db_id": "a"}]"#;
    let err = build(&[("train_spider.json", body), ("tables.json", TABLES)]).unwrap_err();
    assert!(
        matches!(&err, DataError::BadField { row: 0, field, .. } if field == "question"),
        "{err:?}"
    );
}

#[test]
fn non_string_field_is_rejected() {
    let body = r#"[{"db_id": 3, "question": "q"}]"#;
    let err = build(&[("train_spider.json", body), ("tables.json", TABLES)]).unwrap_err();
    assert!(
        matches!(&err, DataError::BadField { field, .. } if field == "db_id"),
        "{err:?}"
    );
}

#[test]
fn unknown_db_names_file_row_and_db() {
    let rows = rows_json(&[("a", "q1"), ("a", "q2"), ("zzz", "q3")]);
    let err = build(&[("train_spider.json", &rows), ("tables.json", TABLES)]).unwrap_err();
    match &err {
        DataError::UnknownDb {
            row, db_id, file, ..
        } => {
            assert_eq!(*row, 2);
            assert_eq!(db_id, "zzz");
            assert!(file.ends_with("train_spider.json"));
        }
        other => panic!("expected UnknownDb, got {other:?}"),
    }
    assert!(err.to_string().contains("`zzz`"));
}

#[test]
fn empty_dataset_is_an_error() {
    let err = build(&[("train_spider.json", "[]"), ("tables.json", TABLES)]).unwrap_err();
    assert!(matches!(err, DataError::EmptyDataset { .. }), "{err:?}");
    assert!(err.to_string().contains("train_spider.json"));
}

#[test]
fn bad_ratios_name_the_field() {
    let rows = rows_json(&[("a", "q1")]);
    let dir = write_dir(&[("train_spider.json", &rows), ("tables.json", TABLES)]);
    let src = read_spider_dir(dir.path()).unwrap();
    for (ratios, field) in [([0.7, 0.3, 0.0], "ratios[2]"), ([0.7, 0.2, 0.2], "ratios")] {
        let p = DataParams {
            ratios,
            ..Default::default()
        };
        let err = build_dataset(&src, &p).unwrap_err();
        match &err {
            DataError::BadParam { field: f, .. } => assert_eq!(f, field),
            other => panic!("expected BadParam, got {other:?}"),
        }
        assert!(
            err.to_string().starts_with("pipeline.toml: [data] "),
            "{err}"
        );
    }
    let p = DataParams {
        merge: MergeRule::Overlap { threshold: 0.0 },
        ..Default::default()
    };
    assert!(matches!(
        build_dataset(&src, &p),
        Err(DataError::BadParam { .. })
    ));
}

#[test]
fn unmapped_db_is_an_error() {
    let rows = rows_json(&[("a", "q1"), ("b", "q2")]);
    let dir = write_dir(&[("train_spider.json", &rows), ("tables.json", TABLES)]);
    let src = read_spider_dir(dir.path()).unwrap();
    let map = [("a".to_string(), "x".to_string())].into_iter().collect();
    let err = build_dataset(
        &src,
        &DataParams {
            merge: MergeRule::Map(map),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, DataError::UnmappedDb { db_id, .. } if db_id == "b"),
        "{err:?}"
    );
}

#[test]
fn bad_column_table_index_is_reported() {
    let rows = rows_json(&[("a", "q1")]);
    let tables = r#"[{"db_id": "a", "table_names": ["t"], "column_names": [[-1, "*"], [5, "x"]]}]"#;
    let err = build(&[("train_spider.json", &rows), ("tables.json", tables)]).unwrap_err();
    assert!(
        matches!(&err, DataError::BadField { field, .. } if field == "column_names"),
        "{err:?}"
    );
}

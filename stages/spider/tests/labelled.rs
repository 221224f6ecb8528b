//! Generic labelled sets from JSONL and CSV, with and without a separate test file.

mod common;
use std::collections::BTreeMap;

use common::write_dir;
use hhnas_data::{ClassKind, Dataset};
use hhnas_spider::{
    build_labelled_dataset, read_labelled_file, DataError, DataParams, LabelledFormat,
    LabelledSource, LabelledSummary,
};

fn no_desc() -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// One JSONL line.
fn jl(text: &str, label: &str) -> String {
    format!("{}\n", serde_json::json!({"text": text, "label": label}))
}

/// Writes `name` with `body` into a new dir and reads it with fields `text` / `label`.
fn source(name: &str, body: &[u8]) -> (tempfile::TempDir, LabelledSource) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, body).unwrap();
    let src = read_labelled_file(&path, "text", "label").unwrap();
    (dir, src)
}

fn build(src: &LabelledSource) -> Result<(Dataset, LabelledSummary), DataError> {
    build_labelled_dataset(src, None, &no_desc(), &DataParams::default())
}

/// The error of building `body` under `name`, its message checked for the file name, the
/// place and a fix.
fn error_of(name: &str, body: &[u8], place: &str) -> DataError {
    let (_dir, src) = source(name, body);
    let err = build(&src).unwrap_err();
    assert_message(&err, name, place);
    err
}

fn assert_message(err: &DataError, file: &str, place: &str) {
    let msg = err.to_string();
    assert!(msg.contains(file), "no file name `{file}` in: {msg}");
    assert!(msg.contains(place), "no place `{place}` in: {msg}");
    assert!(msg.contains(". Fix: "), "no fix in: {msg}");
}

#[test]
fn jsonl_labels_become_classes() {
    let body = "{\"text\": \"refund please\", \"label\": \"billing\"}\n\n{\"text\": \"app crashes\", \"label\": \"bug\", \"x\": 1}\n{\"text\": \"refund please\", \"label\": \"billing\"}\n{\"text\": \"num\", \"label\": 3}\n{\"text\": \"charged twice\", \"label\": \"billing\"}\n{\"text\": \"wrong amount\", \"label\": \"billing \"}\n{\"text\": \"freezes\", \"label\": \"bug\"}\n{\"text\": \"blank screen\", \"label\": \"bug\"}\n{\"text\": \"n2\", \"label\": 3}\n{\"text\": \"n3\", \"label\": 3}\n";
    let (_dir, src) = source("set.jsonl", body.as_bytes());
    assert_eq!(src.format, LabelledFormat::Jsonl);
    let mut desc = no_desc();
    desc.insert("billing".to_string(), "money questions".to_string());
    let (ds, summary) = build_labelled_dataset(&src, None, &desc, &DataParams::default()).unwrap();
    let names: Vec<&str> = ds.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["3", "billing", "bug"]);
    assert_eq!(
        summary,
        LabelledSummary {
            records: 9,
            duplicates_dropped: 1,
            test_file_rows: 0
        }
    );
    assert_eq!(ds.rows.len(), 9, "duplicate dropped");
    assert_eq!(ds.rows[0].label, 1);
    assert_eq!(ds.rows[0].db_id, "billing");
    assert_eq!(ds.rows[4].db_id, "billing", "label trimmed");
    assert_eq!(
        ds.classes[1].schema_text,
        "label: billing | description: money questions"
    );
    assert_eq!(ds.classes[2].schema_text, "label: bug");
    assert_eq!(ds.classes[2].members, ["bug"]);
    assert_eq!(
        ds.classes[1].kind,
        ClassKind::Label {
            description: Some("money questions".into())
        }
    );
    assert_eq!(ds.classes[2].kind, ClassKind::Label { description: None });
    for c in &ds.classes {
        // A label's only schema words are its name's.
        assert_eq!(c.schema_tables().len(), 1);
        assert_eq!(c.schema_tables()[0].name, c.name);
        assert!(c.schema_tables()[0].columns.is_empty());
    }
    assert_eq!(ds.merge, "labels");
    assert_eq!(ds.train.len() + ds.valid.len() + ds.test.len(), 9);
    // 3 per class at 70/15/15: 2 train, 0 valid, 1 test each.
    assert_eq!((ds.train.len(), ds.test.len()), (6, 3));
}

#[test]
fn csv_with_quotes() {
    let body = "id,utterance,intent\n1,\"hello, world\",greet\n2,bye,leave\n3,hi,greet\n4,\"see you, \"\"friend\"\"\",leave\n5,hey,greet\n6,later,leave\n7,hi,greet\n";
    let dir = write_dir(&[("s.csv", body)]);
    let src = read_labelled_file(&dir.path().join("s.csv"), "utterance", "intent").unwrap();
    assert_eq!(src.format, LabelledFormat::Csv);
    let (ds, summary) = build(&src).unwrap();
    assert_eq!(ds.rows[0].question, "hello, world");
    assert_eq!(ds.rows[3].question, "see you, \"friend\"");
    let names: Vec<&str> = ds.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["greet", "leave"]);
    assert_eq!(summary.records, 6);
    assert_eq!(summary.duplicates_dropped, 1);
}

#[test]
fn split_is_stable_and_stratified() {
    let mut body = String::new();
    for c in ["a", "b", "c"] {
        for i in 0..20 {
            body.push_str(&jl(&format!("{c} text {i}"), c));
        }
    }
    let (_dir, src) = source("s.jsonl", body.as_bytes());
    let (ds, _) = build(&src).unwrap();
    let (again, _) = build(&src).unwrap();
    assert_eq!(ds, again);
    // 20 per class at 70/15/15: 14 / 3 / 3.
    assert_eq!((ds.train.len(), ds.valid.len(), ds.test.len()), (42, 9, 9));
}

#[test]
fn test_file_gives_the_test_split() {
    let mut train = String::new();
    for c in ["a", "b"] {
        for i in 0..17 {
            train.push_str(&jl(&format!("{c} text {i}"), c));
        }
    }
    train.push_str(&jl("a text 0", "a")); // duplicate in the training file
    let mut test = jl("a held out", "a") + &jl("b held out", "b");
    test.push_str(&jl("a held out", "a")); // duplicate in the test file
    test.push_str(&jl("a text 0", "a")); // same as a training record: kept in test
    let dir = write_dir(&[("train.jsonl", &train), ("test.jsonl", &test)]);
    let src = read_labelled_file(&dir.path().join("train.jsonl"), "text", "label").unwrap();
    let tst = read_labelled_file(&dir.path().join("test.jsonl"), "text", "label").unwrap();
    let (ds, summary) =
        build_labelled_dataset(&src, Some(&tst), &no_desc(), &DataParams::default()).unwrap();
    assert_eq!(
        summary,
        LabelledSummary {
            records: 37,
            duplicates_dropped: 2,
            test_file_rows: 3
        }
    );
    assert_eq!(ds.merge, "labels + test file");
    assert_eq!(ds.test, [34, 35, 36]);
    assert_eq!(ds.texts(&ds.test), ["a held out", "b held out", "a text 0"]);
    assert_eq!(ds.labels(&ds.test), [0, 1, 0]);
    // Train and valid cover exactly the first file's rows; 17 per class at 0.7:0.15
    // (0.8235 : 0.1765) -> 14 train, 3 valid.
    let mut first: Vec<usize> = ds.train.iter().chain(&ds.valid).copied().collect();
    first.sort_unstable();
    assert_eq!(first, (0..34).collect::<Vec<_>>());
    assert_eq!((ds.train.len(), ds.valid.len()), (28, 6));
    // Without the test file the same rows split three ways.
    let (alone, _) = build(&src).unwrap();
    assert_eq!(alone.merge, "labels");
    assert_eq!(alone.rows.len(), 34);
    assert!(!alone.test.is_empty());
}

#[test]
fn missing_csv_column_names_header_line() {
    let err = error_of("s.csv", b"a,label\n1,2\n", "line 1: field `text`");
    assert!(
        matches!(&err, DataError::BadRecord { field, line: 1, .. } if field == "text"),
        "{err:?}"
    );
    assert!(err.to_string().contains("no such column"), "{err}");
}

#[test]
fn missing_jsonl_field_names_line() {
    let body = jl("x", "y") + "\n{\"text\": \"z\"}\n";
    let err = error_of("s.jsonl", body.as_bytes(), "line 3: field `label`: missing");
    assert!(
        matches!(err, DataError::BadRecord { line: 3, .. }),
        "{err:?}"
    );
    let err = error_of("s.jsonl", b"[1, 2]\n", "line 1");
    assert!(err.to_string().contains("not a JSON object"), "{err}");
    let err = error_of(
        "s.jsonl",
        b"{\"text\": null, \"label\": \"a\"}\n",
        "line 1: field `text`",
    );
    assert!(err.to_string().contains("null"), "{err}");
}

#[test]
fn bad_json_line_is_named() {
    let body = jl("x", "y") + "not json\n";
    let err = error_of("s.jsonl", body.as_bytes(), "line 2, column");
    assert!(matches!(err, DataError::BadJson { line: 2, .. }), "{err:?}");
}

#[test]
fn empty_text_or_label_is_named() {
    let body = jl("x", "y") + &jl("   ", "y");
    let err = error_of("s.jsonl", body.as_bytes(), "line 2: field `text`: is empty");
    assert!(err.to_string().contains("non-empty text"), "{err}");
    let err = error_of(
        "s.csv",
        b"text,label\nhello,a\nbye, \n",
        "line 3: field `label`: is empty",
    );
    assert!(err.to_string().contains("non-empty label"), "{err}");
}

#[test]
fn small_class_names_class_count_and_fix() {
    let mut body = String::new();
    for i in 0..5 {
        body.push_str(&jl(&format!("a {i}"), "a"));
    }
    body.push_str(&jl("b 0", "b"));
    body.push_str(&jl("b 1", "b"));
    body.push_str(&jl("b 1", "b")); // a duplicate does not count
    body.push_str(&jl("c 0", "c"));
    let err = error_of("s.jsonl", body.as_bytes(), "class `b` (lines 6, 7)");
    let msg = err.to_string();
    assert!(
        msg.contains("2 distinct record(s)") && msg.contains("at least 3"),
        "{msg}"
    );
    assert!(msg.contains("also too small: `c` (1)"), "{msg}");
    assert!(
        msg.contains("add examples of `b`") && msg.contains("remove the class"),
        "{msg}"
    );
    assert!(
        matches!(
            err,
            DataError::SmallClass {
                count: 2,
                needed: 3,
                ..
            }
        ),
        "{err:?}"
    );

    // With a test file two records are enough, one is not.
    let dir = write_dir(&[
        ("train.jsonl", &(body.clone())),
        ("test.jsonl", &jl("b 9", "b")),
    ]);
    let src = read_labelled_file(&dir.path().join("train.jsonl"), "text", "label").unwrap();
    let tst = read_labelled_file(&dir.path().join("test.jsonl"), "text", "label").unwrap();
    let err =
        build_labelled_dataset(&src, Some(&tst), &no_desc(), &DataParams::default()).unwrap_err();
    assert_message(&err, "train.jsonl", "class `c` (line 9)");
    assert!(
        matches!(
            err,
            DataError::SmallClass {
                count: 1,
                needed: 2,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn unknown_test_label_names_label_and_line() {
    let mut train = String::new();
    for c in ["a", "b"] {
        for i in 0..3 {
            train.push_str(&jl(&format!("{c} {i}"), c));
        }
    }
    let test = jl("x", "a") + "\n" + &jl("y", "zebra");
    let dir = write_dir(&[("train.jsonl", &train), ("test.jsonl", &test)]);
    let src = read_labelled_file(&dir.path().join("train.jsonl"), "text", "label").unwrap();
    let tst = read_labelled_file(&dir.path().join("test.jsonl"), "text", "label").unwrap();
    let err =
        build_labelled_dataset(&src, Some(&tst), &no_desc(), &DataParams::default()).unwrap_err();
    assert_message(&err, "test.jsonl", "line 3: field `label`: label `zebra`");
    assert!(err.to_string().contains("train.jsonl"), "{err}");
    assert!(
        matches!(err, DataError::UnknownLabel { line: 3, .. }),
        "{err:?}"
    );
}

#[test]
fn invalid_utf8_names_line_and_offset() {
    let mut body = jl("ok", "a").into_bytes();
    body.extend_from_slice(b"{\"text\": \"caf\xe9\", \"label\": \"a\"}\n");
    let offset = body.iter().position(|&b| b == 0xe9).unwrap();
    let err = error_of("s.jsonl", &body, "line 2");
    assert!(
        matches!(err, DataError::NotUtf8 { line: 2, offset: o, .. } if o == offset),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&format!("byte offset {offset}")),
        "{err}"
    );
    let err = error_of("s.csv", b"text,label\nok,a\nno\xff,b\n", "line 3");
    assert!(matches!(err, DataError::NotUtf8 { line: 3, .. }), "{err:?}");
}

#[test]
fn ragged_csv_row_names_line() {
    // The quoted field spans lines 2-3, so the ragged row starts on line 4.
    let body = b"text,label\n\"two\nlines\",a\nno label here\nx,b\n";
    let err = error_of("s.csv", body, "line 4: 1 field(s), but the header has 2");
    assert!(
        matches!(
            err,
            DataError::RaggedCsvRow {
                line: 4,
                found: 1,
                expected: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let err = error_of("s.csv", b"text,label\na,b,c\n", "line 2");
    assert!(
        matches!(err, DataError::RaggedCsvRow { found: 3, .. }),
        "{err:?}"
    );
}

#[test]
fn one_class_is_an_error() {
    let body = jl("x", "only") + &jl("y", "only") + &jl("z", "only");
    let err = error_of(
        "s.jsonl",
        body.as_bytes(),
        "field `label`: every record has the label `only`",
    );
    assert!(matches!(err, DataError::OneClass { .. }), "{err:?}");
}

#[test]
fn empty_file_is_an_error() {
    for (name, body) in [
        ("e.jsonl", &b""[..]),
        ("e.jsonl", &b"\n  \n"[..]),
        ("e.csv", &b""[..]),
        ("e.csv", &b"text,label\n"[..]),
    ] {
        let err = error_of(name, body, "rows: the dataset is empty");
        assert!(matches!(err, DataError::EmptyDataset { .. }), "{err:?}");
    }
    // An empty test file too.
    let train = jl("a", "a") + &jl("b", "b") + &jl("a2", "a") + &jl("b2", "b");
    let dir = write_dir(&[("train.jsonl", &train), ("test.jsonl", "")]);
    let src = read_labelled_file(&dir.path().join("train.jsonl"), "text", "label").unwrap();
    let tst = read_labelled_file(&dir.path().join("test.jsonl"), "text", "label").unwrap();
    let err =
        build_labelled_dataset(&src, Some(&tst), &no_desc(), &DataParams::default()).unwrap_err();
    assert_message(&err, "test.jsonl", "rows: the dataset is empty");
}

#[test]
fn description_of_unknown_label_is_an_error() {
    let mut body = String::new();
    for c in ["billing", "bug"] {
        for i in 0..3 {
            body.push_str(&jl(&format!("{c} {i}"), c));
        }
    }
    let (_dir, src) = source("s.jsonl", body.as_bytes());
    let mut desc = no_desc();
    desc.insert("biling".to_string(), "typo".to_string());
    let err = build_labelled_dataset(&src, None, &desc, &DataParams::default()).unwrap_err();
    assert_message(&err, "s.jsonl", "label `biling`");
    assert!(err.to_string().contains("`billing`, `bug`"), "{err}");
    assert!(
        matches!(err, DataError::UnknownDescription { .. }),
        "{err:?}"
    );
}

#[test]
fn missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        read_labelled_file(&dir.path().join("none.csv"), "t", "l"),
        Err(DataError::MissingFile { .. })
    ));
}

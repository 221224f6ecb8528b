//! Generic labelled sets from JSONL and CSV.

mod common;
use common::write_dir;
use hhnas_spider::{
    build_labelled_dataset, read_labelled_file, DataError, DataParams, LabelledFormat,
};

#[test]
fn jsonl_labels_become_classes() {
    let body = "{\"text\": \"refund please\", \"label\": \"billing\"}\n\n{\"text\": \"app crashes\", \"label\": \"bug\", \"x\": 1}\n{\"text\": \"refund please\", \"label\": \"billing\"}\n{\"text\": \"num\", \"label\": 3}\n";
    let dir = write_dir(&[("set.jsonl", body)]);
    let src = read_labelled_file(&dir.path().join("set.jsonl"), "text", "label").unwrap();
    assert_eq!(src.format, LabelledFormat::Jsonl);
    let ds = build_labelled_dataset(&src, &DataParams::default()).unwrap();
    let names: Vec<&str> = ds.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["3", "billing", "bug"]);
    assert_eq!(ds.rows.len(), 3, "duplicate dropped");
    assert_eq!(ds.rows[0].label, 1);
    assert_eq!(ds.classes[1].schema_text, "billing");
    assert!(ds.classes.iter().all(|c| c.tables.is_empty()));
    assert_eq!(ds.train.len() + ds.valid.len() + ds.test.len(), 3);
}

#[test]
fn csv_with_quotes() {
    let body = "id,utterance,intent\n1,\"hello, world\",greet\n2,bye,leave\n3,hi,greet\n";
    let dir = write_dir(&[("s.csv", body)]);
    let src = read_labelled_file(&dir.path().join("s.csv"), "utterance", "intent").unwrap();
    assert_eq!(src.format, LabelledFormat::Csv);
    let ds = build_labelled_dataset(&src, &DataParams::default()).unwrap();
    assert_eq!(ds.rows[0].question, "hello, world");
    assert_eq!(ds.classes.len(), 2);
}

#[test]
fn missing_column_and_bad_line_are_named() {
    let dir = write_dir(&[
        ("s.csv", "a,b\n1,2\n"),
        ("s.jsonl", "{\"text\": \"x\", \"label\": \"y\"}\nnot json\n"),
    ]);
    let src = read_labelled_file(&dir.path().join("s.csv"), "text", "b").unwrap();
    let err = build_labelled_dataset(&src, &DataParams::default()).unwrap_err();
    assert!(
        matches!(&err, DataError::BadField { field, .. } if field == "text"),
        "{err:?}"
    );
    let src = read_labelled_file(&dir.path().join("s.jsonl"), "text", "label").unwrap();
    let err = build_labelled_dataset(&src, &DataParams::default()).unwrap_err();
    assert!(matches!(err, DataError::BadJson { line: 2, .. }), "{err:?}");
    let src = read_labelled_file(&dir.path().join("s.jsonl"), "text", "missing").unwrap();
    assert!(build_labelled_dataset(&src, &DataParams::default()).is_err());
    assert!(matches!(
        read_labelled_file(&dir.path().join("none.csv"), "t", "l"),
        Err(DataError::MissingFile { .. })
    ));
}

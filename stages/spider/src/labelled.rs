//! Generic labelled text sets (SPEC §1, last bullet): JSONL or CSV with a text column and a
//! label column (intents, tickets, topics). Classes are the distinct labels; there are no
//! schemas, so a class's `schema_text` is `label: <name>` plus its description, if given, and
//! its one table is named after the label (schema-word rules come from the label's words).
//! An optional separate test file gives the test split.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dataset::DataParams;
use crate::error::DataError;
use crate::source::SourceFile;
use hhnas_data::{ClassInfo, Dataset, Row, SplitPlan};

/// File format of a labelled set.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelledFormat {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated with a header line.
    Csv,
}

/// A labelled file's bytes plus how to read them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LabelledSource {
    /// The file.
    pub file: SourceFile,
    /// Its format (from the extension: `.csv` is CSV, anything else JSONL).
    pub format: LabelledFormat,
    /// Name of the text field / column.
    pub text_field: String,
    /// Name of the label field / column.
    pub label_field: String,
}

/// Reads a JSONL or CSV file of labelled texts; parsing happens in `build_labelled_dataset`.
/// `.csv` (any case) is CSV; anything else is JSONL.
pub fn read_labelled_file(
    path: &Path,
    text_field: &str,
    label_field: &str,
) -> Result<LabelledSource, DataError> {
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DataError::MissingFile {
                file: path.to_path_buf(),
                fix: "set [data] labelled_file in pipeline.toml to an existing JSONL or CSV file"
                    .to_string(),
            }
        } else {
            DataError::Io {
                file: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    let is_csv = path
        .extension()
        .map(|e| e.eq_ignore_ascii_case("csv"))
        .unwrap_or(false);
    Ok(LabelledSource {
        file: SourceFile::new(path, bytes),
        format: if is_csv {
            LabelledFormat::Csv
        } else {
            LabelledFormat::Jsonl
        },
        text_field: text_field.to_string(),
        label_field: label_field.to_string(),
    })
}

/// What the data node reports about a labelled set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelledSummary {
    /// Rows of the dataset (both files), after dropping duplicates.
    pub records: usize,
    /// Exact duplicate (text, label) records dropped, within each file, both files counted.
    pub duplicates_dropped: usize,
    /// Rows that came from the test file (after dropping its duplicates); 0 without one.
    pub test_file_rows: usize,
}

/// One record as read: its 1-based line (CSV: the header is line 1), text and label.
#[derive(Debug)]
struct Record {
    line: usize,
    text: String,
    label: String,
}

fn field_fix(src: &LabelledSource) -> String {
    format!(
        "give every record a `{}` (text) and `{}` (label) field, or set [data] text_field / label_field",
        src.text_field, src.label_field
    )
}

/// The file as text: an error naming the line and byte offset of the first invalid byte;
/// a leading byte-order mark is dropped.
fn utf8(f: &SourceFile) -> Result<&str, DataError> {
    let text = std::str::from_utf8(&f.bytes).map_err(|e| {
        let offset = e.valid_up_to();
        DataError::NotUtf8 {
            file: f.path.clone(),
            line: f.bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1,
            offset,
        }
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// A field's value, checked: present, and not empty after trimming. `raw` is the value or,
/// when it is missing or unusable, why.
fn checked(
    src: &LabelledSource,
    line: usize,
    field: &str,
    raw: Result<String, String>,
) -> Result<String, DataError> {
    let bad = |problem: String, fix: String| DataError::BadRecord {
        file: src.file.path.clone(),
        line,
        field: field.to_string(),
        problem,
        fix,
    };
    let value = raw.map_err(|problem| bad(problem, field_fix(src)))?;
    if value.trim().is_empty() {
        let what = if field == src.label_field {
            "label"
        } else {
            "text"
        };
        return Err(bad(
            "is empty".to_string(),
            format!("write a non-empty {what}, or delete the record"),
        ));
    }
    Ok(value)
}

/// A JSON value as label / text: strings as is, numbers and booleans printed.
fn scalar(v: Option<&serde_json::Value>) -> Result<String, String> {
    use serde_json::Value;
    match v {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::Bool(b)) => Ok(b.to_string()),
        Some(Value::Null) => Err("is null, not a string".to_string()),
        Some(Value::Array(_)) => Err("is an array, not a string".to_string()),
        Some(Value::Object(_)) => Err("is an object, not a string".to_string()),
        None => Err("missing".to_string()),
    }
}

fn parse_jsonl(src: &LabelledSource) -> Result<Vec<Record>, DataError> {
    let f = &src.file;
    let text = utf8(f)?;
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let line = i + 1;
        if l.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(l).map_err(|e| DataError::BadJson {
            file: f.path.clone(),
            line,
            column: e.column(),
            problem: crate::error::strip_position(&e.to_string()),
            fix: "write one JSON object per line".to_string(),
        })?;
        let Some(obj) = v.as_object() else {
            return Err(DataError::BadRecord {
                file: f.path.clone(),
                line,
                field: src.text_field.clone(),
                problem: "the line is not a JSON object".to_string(),
                fix: format!(
                    "write one JSON object per line, e.g. {{\"{}\": \"...\", \"{}\": \"...\"}}",
                    src.text_field, src.label_field
                ),
            });
        };
        let text = checked(src, line, &src.text_field, scalar(obj.get(&src.text_field)))?;
        let label = checked(
            src,
            line,
            &src.label_field,
            scalar(obj.get(&src.label_field)),
        )?;
        out.push(Record { line, text, label });
    }
    Ok(out)
}

fn parse_csv(src: &LabelledSource) -> Result<Vec<Record>, DataError> {
    let f = &src.file;
    let text = utf8(f)?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let csv_err = |e: csv::Error| {
        let place = match e.position() {
            Some(p) => format!("line {}", p.line()),
            None => "header".to_string(),
        };
        DataError::BadCsv {
            file: f.path.clone(),
            place,
            problem: e.to_string(),
            fix: "write comma-separated UTF-8 with a header line and quoted fields".to_string(),
        }
    };
    // Flexible: a row of the wrong width gets our own error, naming its line.
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = rdr.headers().map_err(csv_err)?.clone();
    let col = |name: &str| -> Result<usize, DataError> {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| DataError::BadRecord {
                file: f.path.clone(),
                line: 1,
                field: name.to_string(),
                problem: format!(
                    "no such column in the header ({})",
                    headers.iter().collect::<Vec<_>>().join(", ")
                ),
                fix: field_fix(src),
            })
    };
    let (ti, li) = (col(&src.text_field)?, col(&src.label_field)?);
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(csv_err)?;
        let line = rec.position().map_or(0, |p| p.line() as usize);
        if rec.len() != headers.len() {
            return Err(DataError::RaggedCsvRow {
                file: f.path.clone(),
                line,
                found: rec.len(),
                expected: headers.len(),
            });
        }
        let get = |i: usize| Ok(rec[i].to_string());
        let text = checked(src, line, &src.text_field, get(ti))?;
        let label = checked(src, line, &src.label_field, get(li))?;
        out.push(Record { line, text, label });
    }
    Ok(out)
}

/// A file's records: parsed, labels trimmed, exact duplicate (text, label) records dropped
/// (the first kept). Returns them and the number dropped; an empty file is an error.
fn read_records(src: &LabelledSource) -> Result<(Vec<Record>, usize), DataError> {
    let records = parse_records(src)?;
    if records.is_empty() {
        return Err(DataError::EmptyDataset {
            file: src.file.path.clone(),
            fix: match src.format {
                LabelledFormat::Jsonl => {
                    "give at least one labelled record, one JSON object per line"
                }
                LabelledFormat::Csv => "give a header line and at least one labelled row",
            }
            .to_string(),
        });
    }
    let read = records.len();
    let mut seen = HashSet::new();
    let kept: Vec<Record> = records
        .into_iter()
        .filter(|r| seen.insert((r.text.clone(), r.label.clone())))
        .collect();
    let dropped = read - kept.len();
    Ok((kept, dropped))
}

/// A file's (text, label) records as the dataset reader reads them (same checks, labels
/// trimmed, duplicates kept): what `eval --input` scores against a labelled run.
pub fn labelled_records(src: &LabelledSource) -> Result<Vec<(String, String)>, DataError> {
    Ok(parse_records(src)?
        .into_iter()
        .map(|r| (r.text, r.label))
        .collect())
}

/// A file's records in its format, labels trimmed (`"billing "` is `billing`).
fn parse_records(src: &LabelledSource) -> Result<Vec<Record>, DataError> {
    let records = match src.format {
        LabelledFormat::Jsonl => parse_jsonl(src)?,
        LabelledFormat::Csv => parse_csv(src)?,
    };
    Ok(records
        .into_iter()
        .map(|r| Record {
            label: r.label.trim().to_string(),
            ..r
        })
        .collect())
}

/// `line 4` / `lines 4, 9` / `lines 4, 9, 12, ...`.
fn lines_text(lines: &[usize]) -> String {
    let shown: Vec<String> = lines.iter().take(5).map(|l| l.to_string()).collect();
    let more = if lines.len() > 5 { ", ..." } else { "" };
    let noun = if lines.len() == 1 { "line" } else { "lines" };
    format!("{noun} {}{more}", shown.join(", "))
}

/// The classes can be split and every test label and description names one of them.
fn check_classes(
    src: &LabelledSource,
    by_label: &BTreeMap<&str, Vec<usize>>,
    records: &[Record],
    test_records: Option<&(&LabelledSource, Vec<Record>)>,
    descriptions: &BTreeMap<String, String>,
) -> Result<(), DataError> {
    if by_label.len() == 1 {
        return Err(DataError::OneClass {
            file: src.file.path.clone(),
            field: src.label_field.clone(),
            class: records[0].label.clone(),
        });
    }
    let needed = if test_records.is_some() { 2 } else { 3 };
    let small: Vec<(&str, &Vec<usize>)> = by_label
        .iter()
        .filter(|(_, lines)| lines.len() < needed)
        .map(|(l, lines)| (*l, lines))
        .collect();
    if let Some(&(class, lines)) = small.first() {
        let also = if small.len() > 1 {
            let rest: Vec<String> = small[1..]
                .iter()
                .take(10)
                .map(|(l, ls)| format!("`{l}` ({})", ls.len()))
                .collect();
            let more = if small.len() > 11 { ", ..." } else { "" };
            format!("; also too small: {}{more}", rest.join(", "))
        } else {
            String::new()
        };
        return Err(DataError::SmallClass {
            file: src.file.path.clone(),
            class: class.to_string(),
            lines: lines_text(lines),
            count: lines.len(),
            needed,
            also,
            with_test_file: test_records.is_some(),
        });
    }
    if let Some((t, test_records)) = test_records {
        if let Some(r) = test_records
            .iter()
            .find(|r| !by_label.contains_key(r.label.as_str()))
        {
            return Err(DataError::UnknownLabel {
                file: t.file.path.clone(),
                line: r.line,
                field: t.label_field.clone(),
                label: r.label.clone(),
                train: src.file.path.clone(),
            });
        }
    }
    if let Some(label) = descriptions
        .keys()
        .find(|l| !by_label.contains_key(l.as_str()))
    {
        let mut known: Vec<String> = by_label.keys().take(20).map(|l| format!("`{l}`")).collect();
        if by_label.len() > 20 {
            known.push(format!("and {} more", by_label.len() - 20));
        }
        return Err(DataError::UnknownDescription {
            file: src.file.path.clone(),
            label: label.clone(),
            known: known.join(", "),
        });
    }

    Ok(())
}

/// Builds a `Dataset` from a labelled file and, optionally, a separate test file (same
/// fields and format rules). Within each file, exact duplicate (text, label) records are
/// dropped and counted. Classes are the distinct labels of `src`, sorted by name; a class's
/// `schema_text` is `label: <name>`, plus ` | description: <text>` where `descriptions`
/// has one. Without a test file the split is stratified by `params.ratios` as for Spider
/// (merge `labels`); with one, train and validation come from `src`, stratified in the
/// proportion `ratios[0]:ratios[1]`, and the test split is the test file's rows, appended
/// after `src`'s (merge `labels + test file`). `params.merge` and `include_others` are not
/// used.
///
/// Errors name the file, the line (CSV: the header is line 1), the field and the fix: a
/// missing field or column, an empty text or label, invalid UTF-8, a ragged CSV row, an
/// empty file, a file with one class, a class with fewer than 3 distinct records (2 with a
/// test file), a test label the training file lacks, a description of an unknown label.
pub fn build_labelled_dataset(
    src: &LabelledSource,
    test: Option<&LabelledSource>,
    descriptions: &BTreeMap<String, String>,
    params: &DataParams,
) -> Result<(Dataset, LabelledSummary), DataError> {
    params.validate()?;
    let (records, mut duplicates_dropped) = read_records(src)?;
    let test_records = match test {
        Some(t) => {
            let (r, d) = read_records(t)?;
            duplicates_dropped += d;
            Some((t, r))
        }
        None => None,
    };

    // label -> lines of its records, sorted by label.
    let mut by_label: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for r in &records {
        by_label.entry(&r.label).or_default().push(r.line);
    }
    check_classes(
        src,
        &by_label,
        &records,
        test_records.as_ref(),
        descriptions,
    )?;

    let label_of: HashMap<&str, u32> = by_label
        .keys()
        .enumerate()
        .map(|(i, n)| (*n, i as u32))
        .collect();
    let classes: Vec<ClassInfo> = by_label
        .keys()
        .map(|&name| ClassInfo::label(name, descriptions.get(name).cloned()))
        .collect();
    let row = |r: &Record| Row {
        question: r.text.clone(),
        db_id: r.label.clone(),
        label: label_of[r.label.as_str()],
    };
    let mut rows: Vec<Row> = records.iter().map(row).collect();
    let n_first = rows.len();
    let mut test_from = None;
    if let Some((_, test_records)) = &test_records {
        rows.extend(test_records.iter().map(row));
        test_from = Some(n_first);
    }
    let plan = SplitPlan {
        seed: params.split_seed,
        ratios: params.ratios,
        test_from,
    };
    let merge = match test_from {
        None => "labels",
        Some(_) => "labels + test file",
    };
    let ds = Dataset::split(rows, classes, &plan, merge.to_string());
    let summary = LabelledSummary {
        records: ds.rows.len(),
        duplicates_dropped,
        test_file_rows: ds.rows.len() - n_first,
    };
    Ok((ds, summary))
}

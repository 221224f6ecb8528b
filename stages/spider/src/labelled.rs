//! Generic labelled text sets (SPEC §1, last bullet): JSONL or CSV with a text column and a
//! label column. Classes are the distinct labels; there are no schemas, so a class's
//! `schema_text` is its label name.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dataset::{ClassInfo, DataParams, Dataset, Row};
use crate::error::DataError;
use crate::source::SourceFile;

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

fn field_fix(src: &LabelledSource) -> String {
    format!(
        "give every record a `{}` (text) and `{}` (label) field, or set [data] text_field / label_field",
        src.text_field, src.label_field
    )
}

/// A JSON value as label / text: strings as is, numbers and booleans printed.
fn scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_jsonl(src: &LabelledSource) -> Result<Vec<(String, String)>, DataError> {
    let f = &src.file;
    let text = std::str::from_utf8(&f.bytes).map_err(|e| DataError::BadField {
        file: f.path.clone(),
        row: 0,
        field: "bytes".to_string(),
        problem: format!("not UTF-8 ({e})"),
        fix: "save the file as UTF-8".to_string(),
    })?;
    let mut out = Vec::new();
    for (row, (lineno, line)) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .enumerate()
    {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| DataError::BadJson {
            file: f.path.clone(),
            line: lineno + 1,
            column: e.column(),
            problem: crate::error::strip_position(&e.to_string()),
            fix: "write one JSON object per line".to_string(),
        })?;
        let get = |name: &str| -> Result<String, DataError> {
            v.get(name)
                .and_then(scalar)
                .ok_or_else(|| DataError::BadField {
                    file: f.path.clone(),
                    row,
                    field: name.to_string(),
                    problem: "missing or not a string/number".to_string(),
                    fix: field_fix(src),
                })
        };
        out.push((get(&src.text_field)?, get(&src.label_field)?));
    }
    Ok(out)
}

fn parse_csv(src: &LabelledSource) -> Result<Vec<(String, String)>, DataError> {
    let f = &src.file;
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
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(f.bytes.as_slice());
    let headers = rdr.headers().map_err(csv_err)?.clone();
    let col = |name: &str| -> Result<usize, DataError> {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| DataError::BadField {
                file: f.path.clone(),
                row: 0,
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
    for (row, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(csv_err)?;
        let get = |i: usize, name: &str| -> Result<String, DataError> {
            rec.get(i)
                .map(str::to_string)
                .ok_or_else(|| DataError::BadField {
                    file: f.path.clone(),
                    row,
                    field: name.to_string(),
                    problem: "missing".to_string(),
                    fix: field_fix(src),
                })
        };
        out.push((get(ti, &src.text_field)?, get(li, &src.label_field)?));
    }
    Ok(out)
}

/// Builds a `Dataset` from a labelled file: exact duplicate (text, label) rows dropped,
/// classes = distinct labels sorted by name, stratified split as for Spider. `params.merge`
/// is not used (labels are the classes).
pub fn build_labelled_dataset(
    src: &LabelledSource,
    params: &DataParams,
) -> Result<Dataset, DataError> {
    params.validate()?;
    let pairs = match src.format {
        LabelledFormat::Jsonl => parse_jsonl(src)?,
        LabelledFormat::Csv => parse_csv(src)?,
    };
    let mut seen = HashSet::new();
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|p| seen.insert(p.clone()))
        .collect();
    if pairs.is_empty() {
        return Err(DataError::EmptyDataset {
            file: src.file.path.clone(),
            fix: "give at least one labelled record".to_string(),
        });
    }
    let names: BTreeSet<&str> = pairs.iter().map(|(_, l)| l.as_str()).collect();
    let label_of: HashMap<&str, u32> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, i as u32))
        .collect();
    let classes: Vec<ClassInfo> = names
        .iter()
        .map(|n| ClassInfo {
            name: n.to_string(),
            members: vec![n.to_string()],
            schema_text: n.to_string(),
            tables: Vec::new(),
        })
        .collect();
    let rows: Vec<Row> = pairs
        .iter()
        .map(|(t, l)| Row {
            question: t.clone(),
            db_id: l.clone(),
            label: label_of[l.as_str()],
        })
        .collect();
    Ok(Dataset::split(rows, classes, params, "labels".to_string()))
}

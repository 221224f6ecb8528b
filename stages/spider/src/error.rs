//! Typed errors. Every message reads "<file>: <where>: <problem>. Fix: <fix>" so a user can act
//! on it without reading code.

use std::path::PathBuf;

/// The fix we suggest whenever the Spider directory or one of its files is missing.
pub const SPIDER_DIR_FIX: &str =
    "set [data] spider_dir in pipeline.toml or HHNAS_SPIDER_DIR, or run `hhnas-pipe fetch-data`";

/// An input error of the data stage.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The Spider directory does not exist or is not a directory.
    #[error("{}: directory: not found or not a directory. Fix: {fix}", dir.display())]
    MissingDir {
        /// The directory that was asked for.
        dir: PathBuf,
        /// What to do about it.
        fix: String,
    },
    /// A required file is absent.
    #[error("{}: file: not found. Fix: {fix}", file.display())]
    MissingFile {
        /// The file that was expected.
        file: PathBuf,
        /// What to do about it.
        fix: String,
    },
    /// A file exists but could not be read.
    #[error("{}: file: cannot be read ({source}). Fix: check its permissions", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// A file is not valid JSON, or not of the expected shape.
    #[error("{}: line {line}, column {column}: not valid JSON of the expected shape ({problem}). Fix: {fix}", file.display())]
    BadJson {
        /// The file.
        file: PathBuf,
        /// 1-based line reported by serde_json.
        line: usize,
        /// 1-based column reported by serde_json.
        column: usize,
        /// serde_json's description.
        problem: String,
        /// What to do about it.
        fix: String,
    },
    /// A field of one row (or record) is missing or has the wrong type.
    #[error("{}: row {row}, field `{field}`: {problem}. Fix: {fix}", file.display())]
    BadField {
        /// The file.
        file: PathBuf,
        /// 0-based row index within the file.
        row: usize,
        /// The field name.
        field: String,
        /// What is wrong.
        problem: String,
        /// What to do about it.
        fix: String,
    },
    /// A row names a database that `tables.json` does not describe.
    #[error("{}: row {row}, field `db_id`: database `{db_id}` is not in {}. Fix: use a tables.json that describes every database of the question files", file.display(), tables.display())]
    UnknownDb {
        /// The question file.
        file: PathBuf,
        /// 0-based row index.
        row: usize,
        /// The unknown database.
        db_id: String,
        /// The tables file that lacks it.
        tables: PathBuf,
    },
    /// `merge = map` was chosen but a database has no entry.
    #[error("{}: map entry `{db_id}`: database has no class in the merge map. Fix: add `{db_id} = \"<class>\"` to the map", file.display())]
    UnmappedDb {
        /// Where the map came from (as the engine names it).
        file: PathBuf,
        /// The database without a class.
        db_id: String,
    },
    /// No usable row remained.
    #[error("{}: rows: the dataset is empty. Fix: {fix}", file.display())]
    EmptyDataset {
        /// The file(s) that gave no rows.
        file: PathBuf,
        /// What to do about it.
        fix: String,
    },
    /// A parameter is out of range.
    #[error("pipeline.toml: [data] {field}: {problem}. Fix: {fix}")]
    BadParam {
        /// The parameter name.
        field: String,
        /// What is wrong.
        problem: String,
        /// What to do about it.
        fix: String,
    },
    /// A CSV file could not be parsed.
    #[error("{}: {place}: not valid CSV ({problem}). Fix: {fix}", file.display())]
    BadCsv {
        /// The file.
        file: PathBuf,
        /// Record / line description.
        place: String,
        /// csv crate's description.
        problem: String,
        /// What to do about it.
        fix: String,
    },
    /// A record of a labelled file lacks a field, has an empty one, or is not an object; or
    /// a CSV header lacks a column (line 1).
    #[error("{}: line {line}: field `{field}`: {problem}. Fix: {fix}", file.display())]
    BadRecord {
        /// The file.
        file: PathBuf,
        /// 1-based line as an editor shows it (CSV: counting the header as line 1).
        line: usize,
        /// The field / column name.
        field: String,
        /// What is wrong.
        problem: String,
        /// What to do about it.
        fix: String,
    },
    /// A file is not valid UTF-8.
    #[error("{}: line {line} (byte offset {offset}): not valid UTF-8. Fix: save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)", file.display())]
    NotUtf8 {
        /// The file.
        file: PathBuf,
        /// 1-based line of the first invalid byte.
        line: usize,
        /// 0-based byte offset of the first invalid byte in the file.
        offset: usize,
    },
    /// A CSV row has a different number of fields than the header.
    #[error("{}: line {line}: {found} field(s), but the header has {expected}. Fix: give every row the header's {expected} columns, and quote fields that contain commas or quotes (\"a, b\")", file.display())]
    RaggedCsvRow {
        /// The file.
        file: PathBuf,
        /// 1-based line where the row starts, the header being line 1.
        line: usize,
        /// Fields in that row.
        found: usize,
        /// Fields in the header.
        expected: usize,
    },
    /// A class has fewer (distinct) records than the split needs.
    #[error("{}: class `{class}` ({lines}): {count} distinct record(s), but the split needs at least {needed} per class{also}. Fix: add examples of `{class}` (at least {needed} distinct texts, for {}), or remove the class by deleting its records{}", file.display(),
        if *with_test_file { "train and validation" } else { "train, validation and test" },
        if *with_test_file { " (and from the test file)" } else { "" })]
    SmallClass {
        /// The (training) file.
        file: PathBuf,
        /// The label.
        class: String,
        /// Where its records are, e.g. `line 4` or `lines 4, 9`.
        lines: String,
        /// Its distinct records.
        count: usize,
        /// The minimum: 3, or 2 with a separate test file.
        needed: usize,
        /// Other classes that are too small, e.g. ``; also too small: `b` (1)``, or empty.
        also: String,
        /// Whether a separate test file gives the test split.
        with_test_file: bool,
    },
    /// Every record of a labelled file has the same label.
    #[error("{}: field `{field}`: every record has the label `{class}`, but a classifier needs at least two classes. Fix: add records of other labels, or check that [data] label_field names the label column", file.display())]
    OneClass {
        /// The file.
        file: PathBuf,
        /// The label field.
        field: String,
        /// The only label.
        class: String,
    },
    /// A record of the test file has a label that the training file never has.
    #[error("{}: line {line}: field `{field}`: label `{label}` never occurs in the training file {}. Fix: add examples of `{label}` to the training file, or remove this record from the test file", file.display(), train.display())]
    UnknownLabel {
        /// The test file.
        file: PathBuf,
        /// 1-based line of the record.
        line: usize,
        /// The label field.
        field: String,
        /// The label.
        label: String,
        /// The training file.
        train: PathBuf,
    },
    /// A class description names a label that no record has.
    #[error("{}: descriptions: label `{label}` has a description, but no record of this file has that label (labels: {known}). Fix: correct the label's spelling in the descriptions, or remove that description", file.display())]
    UnknownDescription {
        /// The (training) file.
        file: PathBuf,
        /// The described label.
        label: String,
        /// The file's labels (at most 20, then a count).
        known: String,
    },
}

impl DataError {
    pub(crate) fn json(file: &std::path::Path, e: &serde_json::Error, fix: &str) -> Self {
        DataError::BadJson {
            file: file.to_path_buf(),
            line: e.line(),
            column: e.column(),
            problem: strip_position(&e.to_string()),
            fix: fix.to_string(),
        }
    }
}

/// serde_json appends " at line L column C"; the message already names the position.
pub(crate) fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

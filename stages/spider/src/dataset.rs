//! Dataset types, parameters and `build_dataset` (SPEC §1).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::merge::{overlap_groups, UnionFind};
use crate::source::{SourceFile, SpiderSource};
use hhnas_data::{ClassInfo, ClassKind, Dataset, Row, SplitPlan, TableInfo};

/// How databases are grouped into classes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum MergeRule {
    /// One class per database.
    None,
    /// Union databases having a question pair with token-set Jaccard >= `threshold`.
    Overlap {
        /// Jaccard threshold in (0, 1].
        threshold: f64,
    },
    /// Explicit db_id -> class name.
    Map(BTreeMap<String, String>),
}

impl MergeRule {
    /// Short description stored in `Dataset::merge`, e.g. `overlap>=0.8`.
    pub fn describe(&self) -> String {
        match self {
            MergeRule::None => "none".to_string(),
            MergeRule::Overlap { threshold } => format!("overlap>={threshold}"),
            MergeRule::Map(m) => format!("map({} entries)", m.len()),
        }
    }
}

/// Parameters of the data stage (`[data]` in pipeline.toml).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DataParams {
    /// Class merge rule.
    pub merge: MergeRule,
    /// Seed of the stratified split.
    pub split_seed: u64,
    /// Train / validation / test shares; each > 0, summing to 1.
    pub ratios: [f64; 3],
    /// Also use `train_others.json` when present.
    pub include_others: bool,
}

impl Default for DataParams {
    /// The paper profile: overlap 0.8, seed 0, 70/15/15, train_spider only.
    fn default() -> Self {
        DataParams {
            merge: MergeRule::Overlap { threshold: 0.8 },
            split_seed: 0,
            ratios: [0.7, 0.15, 0.15],
            include_others: false,
        }
    }
}

impl DataParams {
    /// Checks ratios and the merge threshold.
    pub fn validate(&self) -> Result<(), DataError> {
        let fix = "give three shares, each > 0, summing to 1, e.g. ratios = [0.7, 0.15, 0.15]";
        for (i, r) in self.ratios.iter().enumerate() {
            if !r.is_finite() || *r <= 0.0 {
                return Err(DataError::BadParam {
                    field: format!("ratios[{i}]"),
                    problem: format!("share {r} is not > 0"),
                    fix: fix.to_string(),
                });
            }
        }
        let sum: f64 = self.ratios.iter().sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(DataError::BadParam {
                field: "ratios".to_string(),
                problem: format!("shares sum to {sum}, not 1"),
                fix: fix.to_string(),
            });
        }
        if let MergeRule::Overlap { threshold } = self.merge {
            if !(threshold > 0.0 && threshold <= 1.0) {
                return Err(DataError::BadParam {
                    field: "merge threshold".to_string(),
                    problem: format!("{threshold} is not in (0, 1]"),
                    fix: "use a Jaccard threshold such as 0.8".to_string(),
                });
            }
        }
        Ok(())
    }
}

const ROWS_FIX: &str = "give a JSON array of objects with string fields `db_id` and `question`";

/// Only the fields we need; serde skips the rest (sql trees etc.) without building them.
#[derive(Deserialize)]
struct RawRow {
    db_id: Option<serde_json::Value>,
    question: Option<serde_json::Value>,
    #[serde(rename = "SpiderQuestion")]
    spider_question: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawTables {
    db_id: String,
    table_names: Vec<String>,
    column_names: Vec<(i64, String)>,
}

fn string_field(
    file: &Path,
    row: usize,
    field: &str,
    v: Option<&serde_json::Value>,
) -> Result<String, DataError> {
    match v {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(DataError::BadField {
            file: file.to_path_buf(),
            row,
            field: field.to_string(),
            problem: format!("expected a string, found {other}"),
            fix: ROWS_FIX.to_string(),
        }),
        None => Err(DataError::BadField {
            file: file.to_path_buf(),
            row,
            field: field.to_string(),
            problem: "missing".to_string(),
            fix: ROWS_FIX.to_string(),
        }),
    }
}

/// Parses a question file into (row index in file, question, db_id).
pub(crate) fn parse_rows(f: &SourceFile) -> Result<Vec<(usize, String, String)>, DataError> {
    let raw: Vec<RawRow> =
        serde_json::from_slice(&f.bytes).map_err(|e| DataError::json(&f.path, &e, ROWS_FIX))?;
    raw.iter()
        .enumerate()
        .map(|(i, r)| {
            let db = string_field(&f.path, i, "db_id", r.db_id.as_ref())?;
            // Spider-Syn files carry the original question as `SpiderQuestion`.
            let q = match (&r.question, &r.spider_question) {
                (Some(q), _) => string_field(&f.path, i, "question", Some(q))?,
                (None, Some(q)) => string_field(&f.path, i, "SpiderQuestion", Some(q))?,
                (None, None) => string_field(&f.path, i, "question", None)?,
            };
            Ok((i, q, db))
        })
        .collect()
}

/// Parses tables.json into db_id -> tables. The first entry of a db_id wins.
fn parse_tables(f: &SourceFile) -> Result<HashMap<String, Vec<TableInfo>>, DataError> {
    let fix = "give Spider's tables.json: an array of {db_id, table_names, column_names: [[table_index, name], ...]}";
    let raw: Vec<RawTables> =
        serde_json::from_slice(&f.bytes).map_err(|e| DataError::json(&f.path, &e, fix))?;
    let mut out = HashMap::new();
    for (i, t) in raw.into_iter().enumerate() {
        let mut tables: Vec<TableInfo> = t
            .table_names
            .iter()
            .map(|n| TableInfo {
                name: n.clone(),
                columns: Vec::new(),
            })
            .collect();
        for (ti, col) in &t.column_names {
            // Index -1 is Spider's `*` pseudo-column.
            if *ti < 0 {
                continue;
            }
            let slot = tables
                .get_mut(*ti as usize)
                .ok_or_else(|| DataError::BadField {
                    file: f.path.clone(),
                    row: i,
                    field: "column_names".to_string(),
                    problem: format!(
                        "column `{col}` refers to table {ti}, but db `{}` has {} tables",
                        t.db_id,
                        t.table_names.len()
                    ),
                    fix: "make every column's table index point into table_names".to_string(),
                })?;
            slot.columns.push(col.clone());
        }
        out.entry(t.db_id).or_insert(tables);
    }
    Ok(out)
}

/// `db: x | table t: a, b | table u: c`.
pub(crate) fn schema_text(db: &str, tables: &[TableInfo]) -> String {
    let mut s = format!("db: {db}");
    for t in tables {
        s.push_str(" | table ");
        s.push_str(&t.name);
        s.push(':');
        let cols = t.columns.join(", ");
        if !cols.is_empty() {
            s.push(' ');
            s.push_str(&cols);
        }
    }
    s
}

/// Builds the dataset: rows, merged classes with schemas, and the stratified split.
/// Long (~120 lines) because it follows SPEC §1 step by step (rows, duplicates, merge,
/// schema texts, split), each step a few lines in order.
pub fn build_dataset(src: &SpiderSource, params: &DataParams) -> Result<Dataset, DataError> {
    params.validate()?;
    let tables = parse_tables(&src.tables)?;

    let mut files = vec![&src.train];
    if params.include_others {
        files.extend(src.others.as_ref());
    }
    // (question, db_id) pairs; exact duplicates dropped, first occurrence kept.
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut rows: Vec<(String, String)> = Vec::new();
    for f in &files {
        for (i, q, db) in parse_rows(f)? {
            if !tables.contains_key(&db) {
                return Err(DataError::UnknownDb {
                    file: f.path.clone(),
                    row: i,
                    db_id: db,
                    tables: src.tables.path.clone(),
                });
            }
            let key = (q, db);
            if seen.insert(key.clone()) {
                rows.push(key);
            }
        }
    }
    if rows.is_empty() {
        return Err(DataError::EmptyDataset {
            file: files_display(&files),
            fix: "give question files with at least one row".to_string(),
        });
    }

    // Sorted databases give stable union-find indices.
    let mut dbs: Vec<String> = rows.iter().map(|(_, d)| d.clone()).collect();
    dbs.sort();
    dbs.dedup();
    let db_index: HashMap<&str, usize> = dbs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.as_str(), i))
        .collect();

    // class name -> members
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    match &params.merge {
        MergeRule::None => {
            for d in &dbs {
                groups.insert(d.clone(), vec![d.clone()]);
            }
        }
        MergeRule::Overlap { threshold } => {
            let qs: Vec<&str> = rows.iter().map(|(q, _)| q.as_str()).collect();
            let row_db: Vec<usize> = rows.iter().map(|(_, d)| db_index[d.as_str()]).collect();
            let mut uf = UnionFind::new(dbs.len());
            overlap_groups(&qs, &row_db, *threshold, &mut uf);
            let mut by_root: BTreeMap<usize, Vec<String>> = BTreeMap::new();
            for (i, d) in dbs.iter().enumerate() {
                by_root.entry(uf.find(i)).or_default().push(d.clone());
            }
            for (_, mut members) in by_root {
                members.sort();
                groups.insert(members.join("+"), members);
            }
        }
        MergeRule::Map(map) => {
            for d in &dbs {
                let class = map.get(d).ok_or_else(|| DataError::UnmappedDb {
                    file: PathBuf::from("pipeline.toml [data] merge map"),
                    db_id: d.clone(),
                })?;
                groups.entry(class.clone()).or_default().push(d.clone());
            }
        }
    }

    let mut classes = Vec::with_capacity(groups.len());
    let mut db_label: HashMap<String, u32> = HashMap::new();
    for (label, (name, mut members)) in groups.into_iter().enumerate() {
        members.sort();
        let mut class_tables = Vec::new();
        let mut texts = Vec::new();
        for m in &members {
            db_label.insert(m.clone(), label as u32);
            let t = &tables[m];
            texts.push(schema_text(m, t));
            class_tables.extend(t.iter().cloned());
        }
        classes.push(ClassInfo {
            name,
            members,
            schema_text: texts.join(" | "),
            kind: ClassKind::Database {
                tables: class_tables,
            },
        });
    }

    let rows: Vec<Row> = rows
        .into_iter()
        .map(|(question, db_id)| {
            let label = db_label[&db_id];
            Row {
                question,
                db_id,
                label,
            }
        })
        .collect();
    let plan = SplitPlan {
        seed: params.split_seed,
        ratios: params.ratios,
        test_from: None,
    };
    Ok(Dataset::split(
        rows,
        classes,
        &plan,
        params.merge.describe(),
    ))
}

fn files_display(files: &[&SourceFile]) -> PathBuf {
    let names: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
    PathBuf::from(names.join(", "))
}

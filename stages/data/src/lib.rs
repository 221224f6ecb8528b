//! hhnas-data: the labelled dataset every stage reads, whatever its source: rows,
//! classes (a Spider database or a label of a user's text set, [`ClassKind`]) and the
//! stratified train / validation / test split. The readers live in `hhnas-spider`
//! (Spider's directory, a user's JSONL or CSV file).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

pub mod split;

use split::{split_by_class, split_counts_without_test, stratified_split};

/// One labelled question.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The question text as given.
    pub question: String,
    /// Its database (for generic labelled sets: the label name).
    pub db_id: String,
    /// Index into `Dataset::classes`.
    pub label: u32,
}

/// One table of a database, with human-readable names.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TableInfo {
    /// Table name (tables.json `table_names`).
    pub name: String,
    /// Column names (tables.json `column_names`, without `*`).
    pub columns: Vec<String>,
}

/// One class: one database (or several merged), or a label of a user's text set.
///
/// Stored as earlier releases stored it (name, members, schema_text, tables), a label
/// as a table of its name without columns; the kind is read back from `schema_text`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(from = "StoredClassInfo", into = "StoredClassInfo")]
pub struct ClassInfo {
    /// Class name: the db_id, members joined by `+`, the map's name, or the label.
    pub name: String,
    /// Member databases, sorted (a label: itself).
    pub members: Vec<String>,
    /// Flat description for prompts and lexical evidence: `db: x | table t: a, b | ...`,
    /// or `label: NAME[ | description: TEXT]`.
    pub schema_text: String,
    pub kind: ClassKind,
}

/// What a class is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClassKind {
    /// Spider databases: the tables of all members, in member order.
    Database { tables: Vec<TableInfo> },
    /// A label of a labelled text set, with the description the user gave for it.
    Label { description: Option<String> },
}

impl ClassInfo {
    /// How a label's `schema_text` starts (`label: NAME[ | description: ...]`); a
    /// database's starts with `db: `.
    pub const LABEL_PREFIX: &'static str = "label: ";
    const DESCRIPTION_SEP: &'static str = " | description: ";

    /// A label of a labelled text set.
    pub fn label(name: impl Into<String>, description: Option<String>) -> Self {
        let name = name.into();
        let mut schema_text = format!("{}{name}", Self::LABEL_PREFIX);
        if let Some(d) = &description {
            schema_text.push_str(Self::DESCRIPTION_SEP);
            schema_text.push_str(d);
        }
        ClassInfo {
            members: vec![name.clone()],
            name,
            schema_text,
            kind: ClassKind::Label { description },
        }
    }

    /// Whether the class is a label of a labelled text set rather than a Spider database:
    /// prompts and rule sources downstream follow it.
    pub fn is_label(&self) -> bool {
        matches!(self.kind, ClassKind::Label { .. })
    }

    /// The tables whose names and columns are the class's schema words: a database's
    /// tables; a label's name, read as a table without columns.
    pub fn schema_tables(&self) -> Cow<'_, [TableInfo]> {
        match &self.kind {
            ClassKind::Database { tables } => Cow::Borrowed(tables),
            ClassKind::Label { .. } => Cow::Owned(vec![TableInfo {
                name: self.name.clone(),
                columns: Vec::new(),
            }]),
        }
    }

    /// A class of one member with no schema (synthetic sets).
    pub fn without_schema(name: impl Into<String>) -> Self {
        let name = name.into();
        ClassInfo {
            members: vec![name.clone()],
            name,
            schema_text: String::new(),
            kind: ClassKind::Database { tables: Vec::new() },
        }
    }
}

/// [`ClassInfo`] as stored.
#[derive(Serialize, Deserialize)]
struct StoredClassInfo {
    name: String,
    members: Vec<String>,
    schema_text: String,
    tables: Vec<TableInfo>,
}

impl From<StoredClassInfo> for ClassInfo {
    fn from(s: StoredClassInfo) -> Self {
        let kind = match s.schema_text.strip_prefix(ClassInfo::LABEL_PREFIX) {
            Some(rest) => ClassKind::Label {
                description: rest
                    .split_once(ClassInfo::DESCRIPTION_SEP)
                    .map(|(_, d)| d.to_string()),
            },
            None => ClassKind::Database { tables: s.tables },
        };
        ClassInfo {
            name: s.name,
            members: s.members,
            schema_text: s.schema_text,
            kind,
        }
    }
}

impl From<ClassInfo> for StoredClassInfo {
    fn from(c: ClassInfo) -> Self {
        let tables = c.schema_tables().into_owned();
        StoredClassInfo {
            name: c.name,
            members: c.members,
            schema_text: c.schema_text,
            tables,
        }
    }
}

/// How [`Dataset::split`] assigns rows to train, validation and test: stratified by
/// class, each class's rows shuffled with `seed` and cut in the proportions `ratios`. With
/// `test_from`, the rows from that index on (a separate test file) are the test split, in
/// order, and the rows before it are cut into train and validation only, in the
/// proportion `ratios[0]:ratios[1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitPlan {
    pub seed: u64,
    pub ratios: [f64; 3],
    pub test_from: Option<usize>,
}

/// The data stage's output.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Dataset {
    /// All rows after dropping duplicates, in file order.
    pub rows: Vec<Row>,
    /// Classes sorted by name; `Row::label` indexes this.
    pub classes: Vec<ClassInfo>,
    /// Row indices of the training split, ascending.
    pub train: Vec<usize>,
    /// Row indices of the validation split, ascending.
    pub valid: Vec<usize>,
    /// Row indices of the test split, ascending.
    pub test: Vec<usize>,
    /// Description of the merge rule used, e.g. `overlap>=0.8`.
    pub merge: String,
}

impl Dataset {
    /// Labelled rows and their classes, split as `plan` says (the one place both the
    /// Spider reader and the labelled-file reader build a dataset).
    pub fn split(
        rows: Vec<Row>,
        classes: Vec<ClassInfo>,
        plan: &SplitPlan,
        merge: String,
    ) -> Dataset {
        let n_first = plan.test_from.unwrap_or(rows.len());
        debug_assert!(n_first <= rows.len());
        let labels: Vec<u32> = rows[..n_first].iter().map(|r| r.label).collect();
        let (train, valid, test) = match plan.test_from {
            None => stratified_split(&labels, classes.len(), plan.seed, plan.ratios),
            Some(_) => {
                let (train, valid, rest) = split_by_class(&labels, classes.len(), plan.seed, |n| {
                    split_counts_without_test(n, plan.ratios)
                });
                debug_assert!(rest.is_empty());
                (train, valid, (n_first..rows.len()).collect())
            }
        };
        Dataset {
            rows,
            classes,
            train,
            valid,
            test,
            merge,
        }
    }

    /// Questions of the given row indices, e.g. `ds.texts(&ds.train)`.
    pub fn texts(&self, idx: &[usize]) -> Vec<&str> {
        idx.iter()
            .map(|&i| self.rows[i].question.as_str())
            .collect()
    }

    /// Labels of the given row indices.
    pub fn labels(&self, idx: &[usize]) -> Vec<u32> {
        idx.iter().map(|&i| self.rows[i].label).collect()
    }

    /// Training and validation rows together, ascending: what a refit trains on, and what
    /// cross-fitting cuts into folds.
    pub fn train_and_valid(&self) -> Vec<usize> {
        let mut rows = [self.train.as_slice(), self.valid.as_slice()].concat();
        rows.sort_unstable();
        rows
    }

    /// The dataset of fold `fold` of a cross-fitting whose folds hold out `held_out` (each
    /// ascending, together [`Self::train_and_valid`]): it trains on the other folds, is
    /// validated on this one, and keeps the test rows.
    pub fn fold(&self, held_out: &[Vec<usize>], fold: usize) -> Dataset {
        let mut train: Vec<usize> = held_out
            .iter()
            .enumerate()
            .filter(|(f, _)| *f != fold)
            .flat_map(|(_, rows)| rows.iter().copied())
            .collect();
        train.sort_unstable();
        Dataset {
            train,
            valid: held_out[fold].clone(),
            ..self.clone()
        }
    }

    /// The rows each of `k` stratified folds of the training and validation rows holds
    /// out, ascending ([`split::stratified_folds`] with `seed`).
    pub fn held_out_folds(&self, k: usize, seed: u64) -> Vec<Vec<usize>> {
        let pool = self.train_and_valid();
        let assignment = split::stratified_folds(&self.labels(&pool), self.classes.len(), k, seed);
        let mut folds = vec![Vec::new(); k];
        for (row, f) in pool.into_iter().zip(assignment) {
            folds[f].push(row);
        }
        folds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As the engine's store writes values.
    fn encode<T: Serialize>(v: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap()
    }

    fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> T {
        bincode::serde::decode_from_slice(b, bincode::config::standard())
            .unwrap()
            .0
    }

    fn database() -> ClassInfo {
        ClassInfo {
            name: "concert_singer".into(),
            members: vec!["concert_singer".into()],
            schema_text: "db: concert_singer | table singer: singer id, name".into(),
            kind: ClassKind::Database {
                tables: vec![TableInfo {
                    name: "singer".into(),
                    columns: vec!["singer id".into(), "name".into()],
                }],
            },
        }
    }

    /// The stored layout of earlier releases: name, members, schema_text, tables.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Earlier {
        name: String,
        members: Vec<String>,
        schema_text: String,
        tables: Vec<TableInfo>,
    }

    #[test]
    fn folds_hold_out_every_training_and_validation_row_once_and_never_a_test_row() {
        let rows: Vec<Row> = (0..60)
            .map(|i| Row {
                question: format!("q{i}"),
                db_id: String::new(),
                label: i % 3,
            })
            .collect();
        let classes = (0..3)
            .map(|i| ClassInfo::label(format!("c{i}"), None))
            .collect();
        let plan = SplitPlan {
            seed: 0,
            ratios: [0.7, 0.15, 0.15],
            test_from: None,
        };
        let ds = Dataset::split(rows, classes, &plan, "none".into());
        let folds = ds.held_out_folds(4, 1);
        let mut all: Vec<usize> = folds.concat();
        all.sort_unstable();
        assert_eq!(all, ds.train_and_valid());
        for f in 0..4 {
            let fold = ds.fold(&folds, f);
            assert_eq!(fold.valid, folds[f]);
            assert_eq!(fold.test, ds.test);
            assert!(fold.train.iter().all(|r| !folds[f].contains(r)));
            assert_eq!(fold.train.len() + fold.valid.len(), all.len());
            // Stratified: every class is in every fold's training rows.
            for c in 0..3 {
                assert!(fold.train.iter().any(|&r| fold.rows[r].label == c));
            }
        }
    }

    #[test]
    fn classes_are_stored_as_earlier_releases_stored_them() {
        let label = ClassInfo::label("billing", Some("money questions".into()));
        assert_eq!(
            label.schema_text,
            "label: billing | description: money questions"
        );
        let bare = ClassInfo::label("other", None);
        for class in [database(), label, bare, ClassInfo::without_schema("x")] {
            let bytes = encode(&class);
            let earlier: Earlier = decode(&bytes);
            assert_eq!(earlier.schema_text, class.schema_text);
            assert_eq!(earlier.tables, class.schema_tables().into_owned());
            assert_eq!(encode(&earlier), bytes);
            let back: ClassInfo = decode(&bytes);
            assert_eq!(back, class);
        }
    }

    #[test]
    fn a_label_reads_back_as_a_label_with_its_description() {
        let earlier = Earlier {
            name: "billing".into(),
            members: vec!["billing".into()],
            schema_text: "label: billing | description: money | and more".into(),
            tables: vec![TableInfo {
                name: "billing".into(),
                columns: vec![],
            }],
        };
        let class: ClassInfo = decode(&encode(&earlier));
        assert!(class.is_label());
        assert_eq!(
            class.kind,
            ClassKind::Label {
                description: Some("money | and more".into())
            }
        );
        assert!(!database().is_label());
        assert_eq!(database().schema_tables().len(), 1);
    }
}

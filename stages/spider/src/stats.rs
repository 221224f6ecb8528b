//! Per-class and per-split counts (`hhnas-pipe data-stats`).

use std::fmt;

use serde::{Deserialize, Serialize};

use hhnas_data::Dataset;

/// Counts of one class.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ClassStats {
    /// Class name.
    pub name: String,
    /// Number of member databases.
    pub members: usize,
    /// Rows in the training split.
    pub train: usize,
    /// Rows in the validation split.
    pub valid: usize,
    /// Rows in the test split.
    pub test: usize,
}

impl ClassStats {
    /// All rows of the class.
    pub fn total(&self) -> usize {
        self.train + self.valid + self.test
    }
}

/// Summary of a dataset.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DatasetStats {
    /// Merge description.
    pub merge: String,
    /// Per class, in label order.
    pub classes: Vec<ClassStats>,
    /// All rows.
    pub rows: usize,
    /// Distinct databases (or labels).
    pub databases: usize,
    /// Training rows.
    pub train: usize,
    /// Validation rows.
    pub valid: usize,
    /// Test rows.
    pub test: usize,
}

/// Counts rows per class and split.
pub fn dataset_stats(ds: &Dataset) -> DatasetStats {
    let mut classes: Vec<ClassStats> = ds
        .classes
        .iter()
        .map(|c| ClassStats {
            name: c.name.clone(),
            members: c.members.len(),
            train: 0,
            valid: 0,
            test: 0,
        })
        .collect();
    for &i in &ds.train {
        classes[ds.rows[i].label as usize].train += 1;
    }
    for &i in &ds.valid {
        classes[ds.rows[i].label as usize].valid += 1;
    }
    for &i in &ds.test {
        classes[ds.rows[i].label as usize].test += 1;
    }
    DatasetStats {
        merge: ds.merge.clone(),
        databases: ds.classes.iter().map(|c| c.members.len()).sum(),
        classes,
        rows: ds.rows.len(),
        train: ds.train.len(),
        valid: ds.valid.len(),
        test: ds.test.len(),
    }
}

/// Long merged names are cut so the table stays readable; the full name is in the dataset.
fn short(name: &str, width: usize) -> String {
    if name.chars().count() <= width {
        name.to_string()
    } else {
        let cut: String = name.chars().take(width.saturating_sub(3)).collect();
        format!("{cut}...")
    }
}

impl fmt::Display for DatasetStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A labelled set's classes are its labels ("labels", "labels + test file").
        let source = if self.merge.starts_with("labels") {
            format!("({})", self.merge)
        } else {
            format!("from {} databases (merge: {})", self.databases, self.merge)
        };
        writeln!(
            f,
            "{} rows, {} classes {source}; train {} / valid {} / test {}",
            self.rows,
            self.classes.len(),
            self.train,
            self.valid,
            self.test
        )?;
        const W: usize = 48;
        writeln!(
            f,
            "{:>5}  {:<W$}  {:>4}  {:>6}  {:>6}  {:>6}  {:>6}",
            "label", "class", "dbs", "train", "valid", "test", "total"
        )?;
        for (i, c) in self.classes.iter().enumerate() {
            writeln!(
                f,
                "{:>5}  {:<W$}  {:>4}  {:>6}  {:>6}  {:>6}  {:>6}",
                i,
                short(&c.name, W),
                c.members,
                c.train,
                c.valid,
                c.test,
                c.total()
            )?;
        }
        write!(
            f,
            "{:>5}  {:<W$}  {:>4}  {:>6}  {:>6}  {:>6}  {:>6}",
            "", "total", self.databases, self.train, self.valid, self.test, self.rows
        )
    }
}

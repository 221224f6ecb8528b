//! Paraphrase keys: which Spider questions are two wordings of one query. Spider's
//! annotators wrote each SQL query on a database as a pair of questions; rows that share
//! a database and a (normalised) SQL string are partners. The partner evidence learns
//! from the bank's pairs what marks a partner; the key of a question being classified
//! is never read.

use std::collections::HashMap;

use serde::Deserialize;

use crate::dataset::parse_rows;
use crate::error::DataError;
use crate::source::SpiderSource;
use hhnas_data::Dataset;

#[derive(Deserialize)]
struct RawQuery {
    query: Option<serde_json::Value>,
}

/// The SQL as a key: lower case, runs of white space as one space, no trailing `;`.
pub fn normalise_sql(sql: &str) -> String {
    let lower = sql.trim().trim_end_matches(';').trim_end().to_lowercase();
    lower.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Each row of `ds` (built from `src`, with `others` read when the dataset included
/// `train_others.json`) keyed by its database and normalised SQL, from the first row of
/// the question files with its question and database, as the dataset kept it. `None`
/// where that row has no string `query`.
pub fn paraphrase_keys(
    src: &SpiderSource,
    include_others: bool,
    ds: &Dataset,
) -> Result<Vec<Option<String>>, DataError> {
    let mut files = vec![&src.train];
    if include_others {
        files.extend(src.others.as_ref());
    }
    let mut first: HashMap<(String, String), Option<String>> = HashMap::new();
    for f in files {
        let queries: Vec<RawQuery> = serde_json::from_slice(&f.bytes).map_err(|e| {
            DataError::json(
                &f.path,
                &e,
                "give a JSON array of objects with a string `query`",
            )
        })?;
        for ((_, question, db), raw) in parse_rows(f)?.into_iter().zip(queries) {
            let key = match raw.query {
                Some(serde_json::Value::String(sql)) => {
                    Some(format!("{db}\u{1f}{}", normalise_sql(&sql)))
                }
                _ => None,
            };
            first.entry((question, db)).or_insert(key);
        }
    }
    Ok(ds
        .rows
        .iter()
        .map(|r| {
            first
                .get(&(r.question.clone(), r.db_id.clone()))
                .cloned()
                .flatten()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;
    use crate::{build_dataset, DataParams};

    #[test]
    fn rows_sharing_a_database_and_sql_share_a_key() {
        let rows = r#"[
            {"db_id": "a", "question": "How many singers?", "query": "SELECT count(*) FROM singer"},
            {"db_id": "a", "question": "Count the singers.", "query": "select  count(*)\nfrom singer ;"},
            {"db_id": "b", "question": "Count all singers.", "query": "SELECT count(*) FROM singer"},
            {"db_id": "a", "question": "How many singers?", "query": "SELECT 1"},
            {"db_id": "b", "question": "Name the dogs.", "query": 3}
        ]"#;
        let tables = r#"[
            {"db_id": "a", "table_names": ["singer"], "column_names": [[-1, "*"], [0, "name"]]},
            {"db_id": "b", "table_names": ["singer"], "column_names": [[-1, "*"], [0, "name"]]}
        ]"#;
        let src = SpiderSource {
            train: SourceFile::new("train_spider.json", rows.as_bytes()),
            others: None,
            dev: None,
            tables: SourceFile::new("tables.json", tables.as_bytes()),
        };
        let ds = build_dataset(&src, &DataParams::default()).unwrap();
        let keys = paraphrase_keys(&src, false, &ds).unwrap();
        let key_of = |q: &str| keys[ds.rows.iter().position(|r| r.question == q).unwrap()].clone();
        // The duplicate (question, db) row is dropped; its first occurrence gives the key.
        assert_eq!(ds.rows.len(), 4);
        assert_eq!(key_of("How many singers?"), key_of("Count the singers."));
        assert!(key_of("How many singers?").is_some());
        // The same SQL on another database is not a partner; a non-string query has none.
        assert_ne!(key_of("Count all singers."), key_of("How many singers?"));
        assert_eq!(key_of("Name the dogs."), None);
    }
}

//! `hhnas-pipe data-stats` and `fetch-data`: the dataset without a run.

use std::path::Path;

use anyhow::Result;

use crate::config;
use crate::config::{data_params, DataSource};
use crate::error::ExitClass;
use crate::nodes::data::{labelled_dataset, spider_base_url};
use crate::nodes::spider_dir;
use hhnas_engine::error::Outcome;
use hhnas_engine::{out, outln};

pub fn cmd_data_stats(
    config_path: Option<&Path>,
    profile: Option<&str>,
    sets: &[String],
    write_test: Option<&Path>,
) -> Result<Outcome> {
    let loaded = config::load(config_path, profile, sets)?;
    let cfg = &loaded.config;
    let ds = match cfg.data.source {
        DataSource::Spider => {
            let src =
                hhnas_spider::read_spider_dir(&spider_dir(cfg)).map_err(ExitClass::classified)?;
            hhnas_spider::build_dataset(&src, &data_params(cfg)?).map_err(ExitClass::classified)?
        }
        DataSource::Labelled => {
            let (ds, summary) = labelled_dataset(cfg)?;
            outln!(
                "{} records read, {} duplicates dropped, {} rows from the test file",
                summary.records + summary.duplicates_dropped,
                summary.duplicates_dropped,
                summary.test_file_rows
            );
            ds
        }
    };
    let stats = hhnas_spider::dataset_stats(&ds).to_string();
    out!("{stats}");
    if let Some(path) = write_test {
        if !stats.ends_with('\n') {
            outln!();
        }
        write_test_split(&ds, cfg, path)?;
        outln!(
            "wrote the {} test questions to {}",
            ds.test.len(),
            path.display()
        );
    }
    Ok(Outcome::Done)
}

/// The test split in the format `eval --input` reads back for this configuration. A
/// merged Spider class is written under its first member database.
fn write_test_split(
    ds: &hhnas_data::Dataset,
    cfg: &config::PipelineConfig,
    path: &Path,
) -> Result<()> {
    let rows = ds.test.iter().map(|&i| &ds.rows[i]);
    let text = match cfg.data.source {
        DataSource::Spider => {
            let list: Vec<serde_json::Value> = rows
                .map(|r| serde_json::json!({"db_id": r.db_id, "question": r.question}))
                .collect();
            serde_json::to_string_pretty(&list)?
        }
        DataSource::Labelled => rows
            .map(|r| {
                let mut o = serde_json::Map::new();
                o.insert(cfg.data.text_field.clone(), r.question.clone().into());
                let label = &ds.classes[r.label as usize].name;
                o.insert(cfg.data.label_field.clone(), label.clone().into());
                serde_json::Value::Object(o).to_string() + "\n"
            })
            .collect(),
    };
    std::fs::write(path, text).map_err(|e| {
        hhnas_engine::user_error!(
            "{}: cannot write ({e}). Fix: pass a writable path",
            path.display()
        )
    })
}

pub fn cmd_fetch_data(dest: Option<&Path>, base_url: Option<&str>) -> Result<Outcome> {
    let dest = match dest {
        Some(d) => d.to_path_buf(),
        None => spider_dir(&config::load(None, None, &[])?.config),
    };
    let base = base_url.map_or_else(spider_base_url, str::to_string);
    let report = hhnas_spider::fetch::fetch_spider(&base, &dest).map_err(ExitClass::classified)?;
    outln!("{report}");
    Ok(Outcome::Done)
}

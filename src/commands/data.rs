//! `hhnas-pipe data-stats` and `fetch-data`: the dataset without a run.

use std::path::Path;

use anyhow::Result;

use crate::config;
use crate::config::{data_params, DataSource};
use crate::error::ExitClass;
use crate::nodes::data::{labelled_dataset, spider_base_url};
use crate::nodes::spider_dir;
use crate::run::Outcome;
use crate::{out, outln};

pub fn cmd_data_stats(
    config_path: Option<&Path>,
    profile: Option<&str>,
    sets: &[String],
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
    out!("{}", hhnas_spider::dataset_stats(&ds));
    Ok(Outcome::Done)
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

//! `hhnas-pipe data-stats` and `fetch-data`: the dataset without a run.

use std::path::Path;

use anyhow::Result;

use crate::config;
use crate::error::ExitClass;
use crate::nodes::{data_params, spider_dir};
use crate::run::Outcome;

pub fn cmd_data_stats(
    config_path: Option<&Path>,
    profile: Option<&str>,
    sets: &[String],
) -> Result<Outcome> {
    let loaded = config::load(config_path, profile, sets)?;
    let cfg = &loaded.config;
    let src = hhnas_spider::read_spider_dir(&spider_dir(cfg)).map_err(ExitClass::classified)?;
    let ds =
        hhnas_spider::build_dataset(&src, &data_params(cfg)?).map_err(ExitClass::classified)?;
    print!("{}", hhnas_spider::dataset_stats(&ds));
    Ok(Outcome::Done)
}

pub fn cmd_fetch_data(dest: Option<&Path>, base_url: Option<&str>) -> Result<Outcome> {
    let dest = match dest {
        Some(d) => d.to_path_buf(),
        None => spider_dir(&config::load(None, None, &[])?.config),
    };
    let base = base_url.unwrap_or(hhnas_spider::fetch::DEFAULT_BASE_URL);
    let report = hhnas_spider::fetch::fetch_spider(base, &dest).map_err(ExitClass::classified)?;
    println!("{report}");
    Ok(Outcome::Done)
}

//! The `spider` node: the Spider files, merged into classes and split. Its key hashes the
//! bytes of every file read, so a changed file is a changed dataset.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use hhnas_spider::fetch::FetchError;
use hhnas_spider::{DataError, Dataset};

use crate::config::{data_params, PipelineConfig};
use crate::error::ExitClass;
use crate::exec::{Exec, Stage};
use crate::outln;
use crate::store::Key;

/// The Spider directory for a new run or a one-off command: `HHNAS_SPIDER_DIR` wins over
/// `[data] spider_dir`. A run freezes the result (absolute) in its config, so a resume
/// from cron, without the variable, reads the same files.
pub fn spider_dir(cfg: &PipelineConfig) -> PathBuf {
    std::env::var_os("HHNAS_SPIDER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cfg.data.spider_dir.clone())
}

/// Where `run` fetches Spider from when its directory is missing: `HHNAS_SPIDER_BASE_URL`
/// (a mirror), else Spider-Syn's copies at the pinned commit.
pub fn spider_base_url() -> String {
    std::env::var("HHNAS_SPIDER_BASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| hhnas_spider::fetch::DEFAULT_BASE_URL.to_string())
}

/// A missing Spider directory that could not be fetched: the error `run` gives without
/// fetching, with the fetch's error as its cause.
#[derive(Debug, thiserror::Error)]
#[error("{missing}; fetching Spider into it from {base_url} failed")]
struct NotFetched {
    missing: DataError,
    base_url: String,
    #[source]
    fetch: FetchError,
}

/// Checks the Spider directory of a new run. One that does not exist at all is fetched
/// first (checksums verified), as `fetch-data` would; one that exists but is incomplete
/// is left alone and reported. So is one whose parent is missing too: that is a wrong
/// path more often than a place to download to.
pub fn ensure_spider_dir(dir: &Path) -> Result<()> {
    let missing = match hhnas_spider::check_spider_dir(dir) {
        Err(e @ DataError::MissingDir { .. }) => e,
        other => return other.map_err(ExitClass::classified),
    };
    let absent = std::fs::symlink_metadata(dir).is_err();
    if !absent || !dir.parent().is_some_and(Path::is_dir) {
        return Err(missing.classified());
    }
    let base_url = spider_base_url();
    outln!(
        "{}: no Spider here; fetching it from {base_url} (checksums verified)",
        dir.display()
    );
    match hhnas_spider::fetch::fetch_spider(&base_url, dir) {
        Ok(report) => {
            outln!("{report}");
            hhnas_spider::check_spider_dir(dir).map_err(ExitClass::classified)
        }
        Err(fetch) => {
            // Nothing half-fetched stays behind to pass for a Spider directory later.
            let _ = std::fs::remove_dir_all(dir);
            Err(crate::error::input(NotFetched {
                missing,
                base_url,
                fetch,
            }))
        }
    }
}

/// The journal line of the `spider` node.
#[derive(Serialize)]
struct SpiderMetrics {
    summary: String,
    rows: usize,
    classes: usize,
    merge: String,
}

impl SpiderMetrics {
    fn of(ds: &Dataset) -> Self {
        let summary = format!(
            "{} rows, {} classes ({}), split {}/{}/{}",
            ds.rows.len(),
            ds.classes.len(),
            ds.merge,
            ds.train.len(),
            ds.valid.len(),
            ds.test.len()
        );
        SpiderMetrics {
            summary,
            rows: ds.rows.len(),
            classes: ds.classes.len(),
            merge: ds.merge.clone(),
        }
    }
}

/// Loads the dataset through the `spider` node.
pub(crate) fn dataset_node(exec: &mut Exec, cfg: &PipelineConfig) -> Result<(Key, Dataset)> {
    let params = data_params(cfg)?;
    let src = hhnas_spider::read_spider_dir(&cfg.data.spider_dir).map_err(ExitClass::classified)?;
    let mut kb = Stage::Spider.key();
    kb.param(&params);
    for file in src.files() {
        kb.bytes(&file.bytes);
    }
    let key = kb.finish();
    exec.expect_unchanged(
        Stage::Spider,
        key,
        &format!(
            "the Spider files under {} (or data.map_file)",
            cfg.data.spider_dir.display()
        ),
    )?;
    let ds = exec.node(Stage::Spider, None, key, |_| {
        let ds = hhnas_spider::build_dataset(&src, &params).map_err(ExitClass::classified)?;
        let metrics = SpiderMetrics::of(&ds);
        Ok((ds, metrics))
    })?;
    Ok((key, ds))
}

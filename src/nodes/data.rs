//! The dataset nodes: `spider` (the Spider files, merged into classes and split) and
//! `labelled` (a JSONL/CSV file of texts and labels). Their keys hash the bytes of every
//! file read, so a changed file is a changed dataset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use hhnas_data::Dataset;
use hhnas_spider::fetch::FetchError;
use hhnas_spider::DataError;

use crate::config::{data_params, read_string_map, DataSource, PipelineConfig};
use crate::dag::Replay;
use crate::dag::Stage;
use crate::error::ExitClass;
use hhnas_engine::outln;
use hhnas_engine::store::Key;

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

/// Loads the dataset: Spider through the `spider` node, a file of the user's own through
/// the `labelled` node. Everything downstream sees a `Dataset` either way.
pub(crate) fn dataset_node(exec: &mut Replay, cfg: &PipelineConfig) -> Result<(Key, Dataset)> {
    match cfg.data.source {
        DataSource::Spider => spider_node(exec, cfg),
        DataSource::Labelled => labelled_node(exec, cfg),
    }
}

/// The node that gives a run its dataset: `spider` or `labelled` (`[data] source`).
pub fn dataset_stage(cfg: &PipelineConfig) -> Stage {
    match cfg.data.source {
        DataSource::Spider => Stage::Spider,
        DataSource::Labelled => Stage::Labelled,
    }
}

fn spider_node(exec: &mut Replay, cfg: &PipelineConfig) -> Result<(Key, Dataset)> {
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

/// Each dataset row's paraphrase key (its database and SQL), read from the run's Spider
/// files when the partner evidence is on; `None` otherwise. The dataset's key hashes
/// those files' bytes, so the keys are part of what every evidence key names.
pub fn paraphrase_keys(cfg: &PipelineConfig, ds: &Dataset) -> Result<Option<Vec<Option<String>>>> {
    if !cfg.features.partner_evidence || cfg.data.source != DataSource::Spider {
        return Ok(None);
    }
    let src = hhnas_spider::read_spider_dir(&cfg.data.spider_dir).map_err(ExitClass::classified)?;
    let keys = hhnas_spider::paraphrase_keys(&src, cfg.data.include_others, ds)
        .map_err(ExitClass::classified)?;
    Ok(Some(keys))
}

/// The journal line of the `labelled` node.
#[derive(Serialize)]
struct LabelledMetrics {
    summary: String,
    rows: usize,
    classes: usize,
    duplicates_dropped: usize,
}

/// The labelled files of a run: the rows, the optional test rows, the descriptions.
pub struct LabelledFiles {
    pub src: hhnas_spider::LabelledSource,
    pub test: Option<hhnas_spider::LabelledSource>,
    pub descriptions: BTreeMap<String, String>,
}

/// Reads `[data] labelled_file`, `test_file` and `label_descriptions`.
pub fn read_labelled_files(cfg: &PipelineConfig) -> Result<LabelledFiles> {
    let d = &cfg.data;
    let read = |path: &Path| {
        hhnas_spider::read_labelled_file(path, &d.text_field, &d.label_field)
            .map_err(ExitClass::classified)
    };
    let file = d
        .labelled_file
        .as_deref()
        .context("data.labelled_file is not set")?;
    Ok(LabelledFiles {
        src: read(file)?,
        test: d.test_file.as_deref().map(read).transpose()?,
        descriptions: match &d.label_descriptions {
            Some(path) => read_string_map(
                path,
                "data.label_descriptions",
                "label -> description",
                "{\"label\": \"what the class means\", ...}",
            )?,
            None => BTreeMap::new(),
        },
    })
}

impl LabelledFiles {
    fn build(
        &self,
        params: &hhnas_spider::DataParams,
    ) -> Result<(Dataset, hhnas_spider::LabelledSummary)> {
        hhnas_spider::build_labelled_dataset(
            &self.src,
            self.test.as_ref(),
            &self.descriptions,
            params,
        )
        .map_err(ExitClass::classified)
    }
}

/// The labelled set of `cfg`, read, parsed and split (`data-stats`, and the check of a new
/// run, so bad input is refused before a run directory exists; parsing is cheap next to
/// any stage after it).
pub fn labelled_dataset(cfg: &PipelineConfig) -> Result<(Dataset, hhnas_spider::LabelledSummary)> {
    read_labelled_files(cfg)?.build(&data_params(cfg)?)
}

fn labelled_node(exec: &mut Replay, cfg: &PipelineConfig) -> Result<(Key, Dataset)> {
    let params = data_params(cfg)?;
    let files = read_labelled_files(cfg)?;
    let d = &cfg.data;
    let mut kb = Stage::Labelled.key();
    kb.param(&params)
        .param(&(&d.text_field, &d.label_field, &files.descriptions))
        .bytes(&files.src.file.bytes)
        .param(&files.test.is_some());
    if let Some(t) = &files.test {
        kb.bytes(&t.file.bytes);
    }
    let key = kb.finish();
    let names = [d.labelled_file.as_deref(), d.test_file.as_deref()]
        .into_iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" and ");
    exec.expect_unchanged(Stage::Labelled, key, &names)?;
    let ds = exec.node(Stage::Labelled, None, key, |_| {
        let (ds, summary) = files.build(&params)?;
        let metrics = LabelledMetrics {
            summary: format!(
                "{} rows ({} duplicates dropped), {} classes ({}), split {}/{}/{}",
                ds.rows.len(),
                summary.duplicates_dropped,
                ds.classes.len(),
                ds.merge,
                ds.train.len(),
                ds.valid.len(),
                ds.test.len()
            ),
            rows: ds.rows.len(),
            classes: ds.classes.len(),
            duplicates_dropped: summary.duplicates_dropped,
        };
        Ok((ds, metrics))
    })?;
    Ok((key, ds))
}

//! Reading the raw bytes of a Spider directory. Parsing happens in `build_dataset`, so the
//! engine can hash exactly these bytes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, SPIDER_DIR_FIX};

/// One input file: where it came from (for error messages) and its bytes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// Path it was read from; only used to name the file in errors.
    pub path: PathBuf,
    /// Raw file contents.
    pub bytes: Vec<u8>,
}

impl SourceFile {
    /// Wraps bytes under a (possibly made-up) path, e.g. for tests.
    pub fn new(path: impl Into<PathBuf>, bytes: impl Into<Vec<u8>>) -> Self {
        SourceFile {
            path: path.into(),
            bytes: bytes.into(),
        }
    }
}

/// The files of a Spider directory in the official layout.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SpiderSource {
    /// `train_spider.json` (required).
    pub train: SourceFile,
    /// `train_others.json` (optional; used when `DataParams::include_others`).
    pub others: Option<SourceFile>,
    /// `dev.json` (optional; carried for the engine, not used by the paper protocol).
    pub dev: Option<SourceFile>,
    /// `tables.json` (required).
    pub tables: SourceFile,
}

impl SpiderSource {
    /// All present files, in a fixed order (train, others, dev, tables), for hashing.
    pub fn files(&self) -> Vec<&SourceFile> {
        let mut v = vec![&self.train];
        v.extend(self.others.as_ref());
        v.extend(self.dev.as_ref());
        v.push(&self.tables);
        v
    }
}

fn read_required(dir: &Path, name: &str) -> Result<SourceFile, DataError> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(SourceFile { path, bytes }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(DataError::MissingFile {
            file: path,
            fix: SPIDER_DIR_FIX.to_string(),
        }),
        Err(source) => Err(DataError::Io { file: path, source }),
    }
}

fn read_optional(dir: &Path, name: &str) -> Result<Option<SourceFile>, DataError> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(SourceFile { path, bytes })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DataError::Io { file: path, source }),
    }
}

/// Checks that `dir` exists and holds the required files, without reading them (a cheap
/// check before work that depends on them is set up).
pub fn check_spider_dir(dir: &Path) -> Result<(), DataError> {
    if !dir.is_dir() {
        return Err(DataError::MissingDir {
            dir: dir.to_path_buf(),
            fix: SPIDER_DIR_FIX.to_string(),
        });
    }
    for name in ["train_spider.json", "tables.json"] {
        let file = dir.join(name);
        if !file.is_file() {
            return Err(DataError::MissingFile {
                file,
                fix: SPIDER_DIR_FIX.to_string(),
            });
        }
    }
    Ok(())
}

/// Reads the bytes of `train_spider.json` and `tables.json` (required) and of
/// `train_others.json` and `dev.json` (when present) from `dir`.
pub fn read_spider_dir(dir: &Path) -> Result<SpiderSource, DataError> {
    check_spider_dir(dir)?;
    Ok(SpiderSource {
        train: read_required(dir, "train_spider.json")?,
        others: read_optional(dir, "train_others.json")?,
        dev: read_optional(dir, "dev.json")?,
        tables: read_required(dir, "tables.json")?,
    })
}

/// A path given relative to the workspace root (the nearest folder above `crate_dir`
/// holding Cargo.lock or a `[workspace]` Cargo.toml), as `HHNAS_SPIDER_DIR` is in the
/// README's test command. Cargo runs each crate's tests, benches and examples in that
/// crate's folder, where the relative path points nowhere; they pass
/// `env!("CARGO_MANIFEST_DIR")` as `crate_dir`. An absolute path is returned as it is.
pub fn from_workspace_root(dir: &Path, crate_dir: &Path) -> PathBuf {
    if dir.is_absolute() {
        return dir.to_path_buf();
    }
    let root = crate_dir
        .ancestors()
        .find(|a| {
            a.join("Cargo.lock").is_file()
                || std::fs::read_to_string(a.join("Cargo.toml"))
                    .is_ok_and(|t| t.contains("[workspace]"))
        })
        .unwrap_or(crate_dir);
    root.join(dir)
}

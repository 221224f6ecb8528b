//! Where LLM answers are kept between runs: the trait the engine implements over its
//! store, and two small implementations for tests and scripts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::FeatureError;

/// Where answers are kept between runs. The engine implements it over its store; keys are
/// blake3 hashes of (base_url, model, parameters, prompt), see [`LlmClient::cache_key`].
pub trait AnswerCache: Send + Sync {
    /// The stored answer for `key`, if any.
    fn get(&self, key: &[u8; 32]) -> Option<String>;
    /// Stores `answer` under `key`. Failures are the implementation's to log; a lost
    /// answer only costs a repeated request.
    fn put(&self, key: &[u8; 32], answer: &str);
}

/// An in-memory [`AnswerCache`].
#[derive(Default, Debug)]
pub struct MemAnswerCache {
    map: Mutex<HashMap<[u8; 32], String>>,
}

impl MemAnswerCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of answers held.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// True when no answer is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl AnswerCache for MemAnswerCache {
    fn get(&self, key: &[u8; 32]) -> Option<String> {
        self.map.lock().ok()?.get(key).cloned()
    }

    fn put(&self, key: &[u8; 32], answer: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.insert(*key, answer.to_string());
        }
    }
}

/// An [`AnswerCache`] keeping one file per key (`<dir>/<hex key>`), written atomically
/// (temporary file, then rename), for tests and scripts.
#[derive(Debug)]
pub struct DirAnswerCache {
    dir: PathBuf,
    seq: AtomicU64,
}

impl DirAnswerCache {
    /// Opens (creating if needed) the cache directory.
    pub fn new(dir: impl AsRef<Path>) -> Result<Self, FeatureError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| FeatureError::BadConfig {
            field: "answer cache directory".into(),
            problem: format!("cannot create {}: {e}", dir.display()),
            fix: "choose a writable directory".into(),
        })?;
        Ok(DirAnswerCache {
            dir,
            seq: AtomicU64::new(0),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of answers stored.
    pub fn len(&self) -> usize {
        std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().len() == 64)
                    .count()
            })
            .unwrap_or(0)
    }

    /// True when no answer is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn hex(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

impl AnswerCache for DirAnswerCache {
    fn get(&self, key: &[u8; 32]) -> Option<String> {
        std::fs::read_to_string(self.dir.join(hex(key))).ok()
    }

    fn put(&self, key: &[u8; 32], answer: &str) {
        let name = hex(key);
        let tmp = self.dir.join(format!(
            ".tmp-{name}-{}-{}",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        ));
        let res =
            std::fs::write(&tmp, answer).and_then(|_| std::fs::rename(&tmp, self.dir.join(&name)));
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not store LLM answer");
        }
    }
}

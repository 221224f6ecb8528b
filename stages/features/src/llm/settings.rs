//! The LLM backend's settings and the counts of what it did for one stage.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Settings of the LLM backend (`[llm]` in pipeline.toml).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LlmConfig {
    /// Server root, e.g. `http://127.0.0.1:8087` (a trailing `/v1` is accepted).
    pub base_url: String,
    /// Model name sent in each request.
    pub model: String,
    /// Name of the environment variable holding the API key (sent as
    /// `Authorization: Bearer <key>`); `None` for servers without auth.
    pub api_key_env: Option<String>,
    /// Per-request time limit in seconds.
    pub timeout_secs: u64,
    /// Requests in flight at once when answering many prompts.
    pub max_concurrency: usize,
    /// Retries after a 429, a 5xx, a timeout or a connection error.
    pub max_retries: u32,
    /// First backoff in milliseconds; doubles with each retry (capped at 30 s).
    pub backoff_ms: u64,
    /// Budget: at most this many HTTP requests per client (cache hits are free).
    pub max_requests: Option<u64>,
    /// Sampling temperature; 0 makes answers repeatable.
    pub temperature: f64,
    /// Answer length limit in tokens.
    pub max_tokens: u32,
    /// Schemas longer than this many characters are cut in prompts.
    pub max_schema_chars: usize,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            base_url: "http://127.0.0.1:8087".into(),
            model: "gemma3-270m".into(),
            api_key_env: None,
            timeout_secs: 60,
            max_concurrency: 4,
            max_retries: 3,
            backoff_ms: 500,
            max_requests: None,
            temperature: 0.0,
            max_tokens: 256,
            max_schema_chars: 3000,
        }
    }
}

/// Counts of what the LLM did for one stage (shown by `status`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct LlmStats {
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// Prompts answered from the cache.
    pub cached: u64,
    /// Prompts that failed after every retry.
    pub failed: u64,
    /// Retries (requests beyond the first per prompt).
    pub retries: u64,
    /// Answers that could not be parsed (judge: taken as false; rules: re-asked).
    pub unparseable: u64,
    /// Classes whose LLM rules fell back to schema rules.
    pub fallbacks: u64,
}

impl LlmStats {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &LlmStats) {
        self.requests += other.requests;
        self.cached += other.cached;
        self.failed += other.failed;
        self.retries += other.retries;
        self.unparseable += other.unparseable;
        self.fallbacks += other.fallbacks;
    }
}

#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) cached: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retries: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> LlmStats {
        LlmStats {
            requests: self.requests.load(Ordering::Relaxed),
            cached: self.cached.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            unparseable: 0,
            fallbacks: 0,
        }
    }
}

//! OpenAI-compatible chat-completions client with an answer cache, retries, a request
//! budget and bounded concurrency.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::FeatureError;

mod cache;
mod settings;

pub use cache::{AnswerCache, DirAnswerCache, MemAnswerCache};
pub(crate) use settings::Counters;
pub use settings::{LlmConfig, LlmStats};

/// Blocking OpenAI-compatible client. Cheap to share across threads (`&self` methods).
pub struct LlmClient {
    config: LlmConfig,
    root: String,
    chat_url: String,
    models_url: String,
    api_key: Option<String>,
    agent: ureq::Agent,
    cache: Arc<dyn AnswerCache>,
    totals: Counters,
    budget_used: AtomicU64,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("config", &self.config)
            .field("chat_url", &self.chat_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

enum AttemptError {
    /// Worth retrying: (kind, description, server-requested delay).
    Retry(RetryKind, String, Option<Duration>),
    Fatal(FeatureError),
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum RetryKind {
    Timeout,
    Connect,
    Status,
}

fn snippet(s: &str) -> String {
    let t = s.trim();
    let mut out: String = t.chars().take(160).collect();
    if t.chars().count() > 160 {
        out.push('…');
    }
    out
}

/// A response header as text (None when absent or not UTF-8).
fn header<B>(resp: &ureq::http::Response<B>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn looks_like_html(content_type: &str, body: &str) -> bool {
    content_type.to_ascii_lowercase().contains("html") || body.trim_start().starts_with('<')
}

impl LlmClient {
    /// Checks the configuration and reads the API key (if `api_key_env` is set). Sends
    /// nothing; see [`LlmClient::check_reachable`].
    pub fn new(config: LlmConfig, cache: Arc<dyn AnswerCache>) -> Result<LlmClient, FeatureError> {
        let bad = |field: &str, problem: String, fix: &str| FeatureError::BadConfig {
            field: field.into(),
            problem,
            fix: fix.into(),
        };
        let trimmed = config.base_url.trim().trim_end_matches('/');
        let root = trimmed.strip_suffix("/v1").unwrap_or(trimmed).to_string();
        if !(root.starts_with("http://") || root.starts_with("https://"))
            || root.len() <= "https://".len()
        {
            return Err(bad(
                "base_url",
                format!("{:?} is not an http(s) URL", config.base_url),
                "give the server root, e.g. http://127.0.0.1:8087",
            ));
        }
        if config.model.trim().is_empty() {
            return Err(bad(
                "model",
                "is empty".into(),
                "name the model the server serves (see GET /v1/models)",
            ));
        }
        if config.timeout_secs == 0 {
            return Err(bad(
                "timeout_secs",
                "is 0".into(),
                "give a limit >= 1 second",
            ));
        }
        if config.max_concurrency == 0 {
            return Err(bad("max_concurrency", "is 0".into(), "give at least 1"));
        }
        if !(config.temperature.is_finite() && config.temperature >= 0.0) {
            return Err(bad(
                "temperature",
                format!("{} is not a number >= 0", config.temperature),
                "use 0 for repeatable answers",
            ));
        }
        if config.max_tokens == 0 {
            return Err(bad("max_tokens", "is 0".into(), "give e.g. 256"));
        }
        let api_key = match &config.api_key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(k) if !k.trim().is_empty() => Some(k.trim().to_string()),
                _ => return Err(FeatureError::MissingApiKey { var: var.clone() }),
            },
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(config.timeout_secs)))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(LlmClient {
            chat_url: format!("{root}/v1/chat/completions"),
            models_url: format!("{root}/v1/models"),
            root,
            config,
            api_key,
            agent,
            cache,
            totals: Counters::default(),
            budget_used: AtomicU64::new(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// Totals over this client's life.
    pub fn stats(&self) -> LlmStats {
        self.totals.snapshot()
    }

    /// Cache key of `prompt`: blake3 over the server root, model, temperature, max_tokens
    /// and prompt (each length-prefixed).
    pub fn cache_key(&self, prompt: &str) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        let mut part = |b: &[u8]| {
            h.update(&(b.len() as u64).to_le_bytes());
            h.update(b);
        };
        part(b"hhnas-llm-answer-v1");
        part(self.root.as_bytes());
        part(self.config.model.as_bytes());
        part(&self.config.temperature.to_bits().to_le_bytes());
        part(&self.config.max_tokens.to_le_bytes());
        part(prompt.as_bytes());
        *h.finalize().as_bytes()
    }

    /// Checks that the server answers `GET /v1/models` with JSON, before any work starts.
    /// Returns the model ids it lists (empty when it lists none). Unreachable servers,
    /// rejected keys and non-JSON answers give clear errors; a model missing from the list
    /// is only warned about.
    pub fn check_reachable(&self) -> Result<Vec<String>, FeatureError> {
        let url = &self.models_url;
        let mut req = self.agent.get(url);
        if let Some(k) = &self.api_key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        let mut resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::BadUri(e)) => {
                return Err(FeatureError::BadConfig {
                    field: "base_url".into(),
                    problem: format!("{:?}: {e}", self.config.base_url),
                    fix: "give the server root, e.g. http://127.0.0.1:8087".into(),
                })
            }
            Err(e) => {
                return Err(FeatureError::Unreachable {
                    url: url.clone(),
                    reason: e.to_string(),
                })
            }
        };
        let status = resp.status().as_u16();
        let ctype = header(&resp, "content-type").unwrap_or_default();
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| FeatureError::Unreachable {
                url: url.clone(),
                reason: format!("reading the answer failed: {e}"),
            })?;
        if status == 401 || status == 403 {
            return Err(self.auth_error(url, status, &body));
        }
        if looks_like_html(&ctype, &body) {
            return Err(FeatureError::NotJson {
                url: url.clone(),
                what: format!("HTTP {status}, HTML"),
                snippet: snippet(&body),
            });
        }
        let json: serde_json::Value =
            serde_json::from_str(&body).map_err(|_| FeatureError::NotJson {
                url: url.clone(),
                what: format!("HTTP {status}, non-JSON text"),
                snippet: snippet(&body),
            })?;
        if status >= 500 {
            return Err(FeatureError::Http {
                url: url.clone(),
                status,
                body: snippet(&body),
                fix: "check the server's logs".into(),
            });
        }
        let ids: Vec<String> = json
            .get("data")
            .and_then(|d| d.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.get("id").and_then(|i| i.as_str()).map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if !ids.is_empty() && !ids.iter().any(|i| i == &self.config.model) {
            tracing::warn!(model = %self.config.model, served = ?ids, "model not listed by the server");
        }
        Ok(ids)
    }

    fn auth_error(&self, url: &str, status: u16, body: &str) -> FeatureError {
        let fix = match &self.config.api_key_env {
            Some(v) => format!("check the key in ${v}"),
            None => {
                "the server wants a key: set `api_key_env` to the name of a variable holding it"
                    .into()
            }
        };
        FeatureError::Http {
            url: url.into(),
            status,
            body: snippet(body),
            fix,
        }
    }

    /// Answers `prompt` (cache first, then the server).
    pub fn chat(&self, prompt: &str) -> Result<String, FeatureError> {
        self.chat_counted(prompt, None)
    }

    /// Answers many prompts with at most `max_concurrency` requests in flight; results in
    /// prompt order.
    pub fn chat_many(&self, prompts: &[String]) -> Vec<Result<String, FeatureError>> {
        self.chat_many_counted(prompts, None)
    }

    pub(crate) fn chat_many_counted(
        &self,
        prompts: &[String],
        extra: Option<&Counters>,
    ) -> Vec<Result<String, FeatureError>> {
        let n = prompts.len();
        let workers = self.config.max_concurrency.min(n).max(1);
        if workers == 1 {
            return prompts
                .iter()
                .map(|p| self.chat_counted(p, extra))
                .collect();
        }
        let next = AtomicUsize::new(0);
        let mut results: Vec<Option<Result<String, FeatureError>>> = (0..n).map(|_| None).collect();
        let done: Vec<Vec<(usize, Result<String, FeatureError>)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        let mut out = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= n {
                                break;
                            }
                            out.push((i, self.chat_counted(&prompts[i], extra)));
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        for (i, r) in done.into_iter().flatten() {
            results[i] = Some(r);
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(FeatureError::RetriesExhausted {
                        url: self.chat_url.clone(),
                        attempts: 0,
                        last: "worker thread panicked".into(),
                    })
                })
            })
            .collect()
    }

    fn bump(&self, extra: Option<&Counters>, f: impl Fn(&Counters) -> &AtomicU64) {
        f(&self.totals).fetch_add(1, Ordering::Relaxed);
        if let Some(c) = extra {
            f(c).fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn chat_counted(
        &self,
        prompt: &str,
        extra: Option<&Counters>,
    ) -> Result<String, FeatureError> {
        let key = self.cache_key(prompt);
        if let Some(a) = self.cache.get(&key) {
            self.bump(extra, |c| &c.cached);
            return Ok(a);
        }
        let body = serde_json::json!({
            "model": self.config.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            "stream": false,
        })
        .to_string();
        let mut attempt: u32 = 0;
        loop {
            if let Some(max) = self.config.max_requests {
                if self.budget_used.fetch_add(1, Ordering::Relaxed) >= max {
                    self.budget_used.fetch_sub(1, Ordering::Relaxed);
                    self.bump(extra, |c| &c.failed);
                    return Err(FeatureError::BudgetExhausted { max_requests: max });
                }
            }
            self.bump(extra, |c| &c.requests);
            if attempt > 0 {
                self.bump(extra, |c| &c.retries);
            }
            match self.attempt(&body) {
                Ok(answer) => {
                    self.cache.put(&key, &answer);
                    return Ok(answer);
                }
                Err(AttemptError::Fatal(e)) => {
                    self.bump(extra, |c| &c.failed);
                    return Err(e);
                }
                Err(AttemptError::Retry(kind, why, after)) => {
                    if attempt >= self.config.max_retries {
                        self.bump(extra, |c| &c.failed);
                        let attempts = attempt + 1;
                        let url = self.chat_url.clone();
                        return Err(match kind {
                            RetryKind::Timeout => FeatureError::Timeout {
                                url,
                                secs: self.config.timeout_secs,
                                attempts,
                            },
                            RetryKind::Connect => FeatureError::Unreachable {
                                url,
                                reason: format!("{why} ({attempts} attempt(s))"),
                            },
                            RetryKind::Status => FeatureError::RetriesExhausted {
                                url,
                                attempts,
                                last: why,
                            },
                        });
                    }
                    let backoff = self
                        .config
                        .backoff_ms
                        .saturating_mul(1u64 << attempt.min(20))
                        .min(30_000);
                    let wait = Duration::from_millis(backoff).max(after.unwrap_or_default());
                    tracing::debug!(url = %self.chat_url, %why, ?wait, "retrying LLM request");
                    std::thread::sleep(wait);
                    attempt += 1;
                }
            }
        }
    }

    fn attempt(&self, body: &str) -> Result<String, AttemptError> {
        let url = &self.chat_url;
        let mut req = self
            .agent
            .post(url)
            .header("Content-Type", "application/json");
        if let Some(k) = &self.api_key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        let mut resp = match req.send(body) {
            Ok(r) => r,
            Err(ureq::Error::Timeout(t)) => {
                return Err(AttemptError::Retry(
                    RetryKind::Timeout,
                    format!("timeout ({t})"),
                    None,
                ))
            }
            Err(ureq::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                return Err(AttemptError::Retry(RetryKind::Timeout, e.to_string(), None))
            }
            Err(ureq::Error::BadUri(e)) => {
                return Err(AttemptError::Fatal(FeatureError::BadConfig {
                    field: "base_url".into(),
                    problem: format!("{:?}: {e}", self.config.base_url),
                    fix: "give the server root, e.g. http://127.0.0.1:8087".into(),
                }))
            }
            Err(
                e
                @ (ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound),
            ) => return Err(AttemptError::Retry(RetryKind::Connect, e.to_string(), None)),
            Err(e) => return Err(AttemptError::Retry(RetryKind::Status, e.to_string(), None)),
        };
        let status = resp.status().as_u16();
        let ctype = header(&resp, "content-type").unwrap_or_default();
        let retry_after = header(&resp, "retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(60)));
        let text = match resp.body_mut().read_to_string() {
            Ok(t) => t,
            Err(ureq::Error::Timeout(t)) => {
                return Err(AttemptError::Retry(
                    RetryKind::Timeout,
                    format!("timeout reading the answer ({t})"),
                    None,
                ))
            }
            Err(e) => {
                return Err(AttemptError::Retry(
                    RetryKind::Status,
                    format!("reading the answer failed: {e}"),
                    None,
                ))
            }
        };
        if status == 429 || status >= 500 {
            return Err(AttemptError::Retry(
                RetryKind::Status,
                format!("HTTP {status}: {}", snippet(&text)),
                retry_after,
            ));
        }
        if status == 401 || status == 403 {
            return Err(AttemptError::Fatal(self.auth_error(url, status, &text)));
        }
        if !(200..300).contains(&status) {
            let fix = if status == 404 {
                format!(
                    "check `base_url` (the part before /v1/chat/completions) and that the server serves model {:?}",
                    self.config.model
                )
            } else {
                "check the request settings against the server's documentation".into()
            };
            return Err(AttemptError::Fatal(FeatureError::Http {
                url: url.clone(),
                status,
                body: snippet(&text),
                fix,
            }));
        }
        parse_chat_response(url, &ctype, &text).map_err(AttemptError::Fatal)
    }
}

/// Extracts `choices[0].message.content` from a chat-completions body.
pub(crate) fn parse_chat_response(
    url: &str,
    content_type: &str,
    body: &str,
) -> Result<String, FeatureError> {
    if looks_like_html(content_type, body) {
        return Err(FeatureError::NotJson {
            url: url.into(),
            what: "HTML".into(),
            snippet: snippet(body),
        });
    }
    let json: serde_json::Value =
        serde_json::from_str(body).map_err(|_| FeatureError::NotJson {
            url: url.into(),
            what: "non-JSON text".into(),
            snippet: snippet(body),
        })?;
    let choice = json.get("choices").and_then(|c| c.get(0));
    let content = choice
        .and_then(|c| c.get("message"))
        .and_then(|m| m.get("content"))
        .and_then(|c| c.as_str())
        .or_else(|| choice.and_then(|c| c.get("text")).and_then(|t| t.as_str()));
    match content {
        Some(c) => Ok(c.to_string()),
        None => Err(FeatureError::BadResponse {
            url: url.into(),
            problem: "`choices[0].message.content`".into(),
            snippet: snippet(body),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chat_bodies() {
        let ok = r#"{"choices":[{"message":{"role":"assistant","content":"true"}}]}"#;
        assert_eq!(
            parse_chat_response("u", "application/json", ok).unwrap(),
            "true"
        );
        let html = "<!DOCTYPE html><html>login</html>";
        let e = parse_chat_response("http://x/v1/chat/completions", "text/html", html).unwrap_err();
        assert!(matches!(e, FeatureError::NotJson { .. }), "{e}");
        assert!(e.to_string().contains("http://x/v1/chat/completions"));
        let e = parse_chat_response("u", "", "{\"foo\":1}").unwrap_err();
        assert!(matches!(e, FeatureError::BadResponse { .. }));
        let e = parse_chat_response("u", "", "plain words").unwrap_err();
        assert!(matches!(e, FeatureError::NotJson { .. }));
    }

    #[test]
    fn config_errors_are_clear() {
        let cache: Arc<dyn AnswerCache> = Arc::new(MemAnswerCache::new());
        let mut c = LlmConfig {
            base_url: "localhost:8087".into(),
            ..LlmConfig::default()
        };
        let e = LlmClient::new(c.clone(), cache.clone()).unwrap_err();
        assert!(e.to_string().contains("base_url"), "{e}");
        c.base_url = "http://127.0.0.1:1/v1/".into();
        let client = LlmClient::new(c, cache).unwrap();
        assert_eq!(client.chat_url, "http://127.0.0.1:1/v1/chat/completions");
    }

    #[test]
    fn cache_key_depends_on_everything() {
        let cache: Arc<dyn AnswerCache> = Arc::new(MemAnswerCache::new());
        let a = LlmClient::new(LlmConfig::default(), cache.clone()).unwrap();
        let b = LlmClient::new(
            LlmConfig {
                model: "other".into(),
                ..LlmConfig::default()
            },
            cache.clone(),
        )
        .unwrap();
        let c = LlmClient::new(
            LlmConfig {
                max_tokens: 7,
                ..LlmConfig::default()
            },
            cache,
        )
        .unwrap();
        assert_eq!(a.cache_key("p"), a.cache_key("p"));
        assert_ne!(a.cache_key("p"), a.cache_key("q"));
        assert_ne!(a.cache_key("p"), b.cache_key("p"));
        assert_ne!(a.cache_key("p"), c.cache_key("p"));
    }

    #[test]
    fn dir_cache_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let c = DirAnswerCache::new(dir.path().join("answers")).unwrap();
        let k = [7u8; 32];
        assert_eq!(c.get(&k), None);
        c.put(&k, "hello");
        c.put(&k, "hello again");
        assert_eq!(c.get(&k).as_deref(), Some("hello again"));
        assert_eq!(c.len(), 1);
    }
}

use thiserror::Error;

/// Errors of the feature stages and the LLM client. Each names what failed and the fix.
#[derive(Error, Debug)]
pub enum FeatureError {
    /// A configuration field is unusable.
    #[error("bad LLM/feature setting `{field}`: {problem}; fix: {fix}")]
    BadConfig {
        field: String,
        problem: String,
        fix: String,
    },

    /// `api_key_env` names an environment variable that is not set.
    #[error(
        "LLM API key: environment variable `{var}` (named by `api_key_env`) is not set or empty; \
         fix: export {var}=<key>, or remove `api_key_env` for a server that needs no key"
    )]
    MissingApiKey { var: String },

    /// The server could not be reached at all.
    #[error(
        "LLM server at {url} is unreachable: {reason}; fix: start an OpenAI-compatible server \
         there (e.g. scripts/llm-server.sh) or correct `base_url`"
    )]
    Unreachable { url: String, reason: String },

    /// The server answered with an HTTP error that retrying does not fix.
    #[error("LLM server {url} answered HTTP {status}: {body}; fix: {fix}")]
    Http {
        url: String,
        status: u16,
        body: String,
        fix: String,
    },

    /// The body was HTML or otherwise not JSON.
    #[error(
        "LLM server {url} did not answer JSON (got {what}: {snippet:?}); fix: point `base_url` \
         at an OpenAI-compatible API (the part before /v1/chat/completions), not a web page \
         or proxy login"
    )]
    NotJson {
        url: String,
        what: String,
        snippet: String,
    },

    /// JSON, but not a chat-completions response.
    #[error("LLM server {url} answered JSON without {problem}; body starts {snippet:?}")]
    BadResponse {
        url: String,
        problem: String,
        snippet: String,
    },

    /// Every attempt timed out.
    #[error(
        "LLM request to {url} timed out after {secs} s, {attempts} attempt(s); fix: raise \
         `timeout_secs`, lower `max_concurrency`, or check the server"
    )]
    Timeout {
        url: String,
        secs: u64,
        attempts: u32,
    },

    /// Retryable failures (429, 5xx, connection errors) persisted through every retry.
    #[error(
        "LLM request to {url} failed {attempts} time(s), last: {last}; fix: raise `max_retries` \
         / `backoff_ms`, or check the server's load and logs"
    )]
    RetriesExhausted {
        url: String,
        attempts: u32,
        last: String,
    },

    /// `max_requests` would be exceeded.
    #[error(
        "LLM request budget exhausted: `max_requests` = {max_requests} uncached requests already \
         sent; answers so far are cached, so raising the budget (or removing it) and rerunning \
         continues where this stopped"
    )]
    BudgetExhausted { max_requests: u64 },

    /// A rule cannot be used.
    #[error("rule {index} (class {class}): {problem}; fix: {fix}")]
    BadRule {
        index: usize,
        class: u32,
        problem: String,
        fix: String,
    },

    /// The dataset handed in cannot be used by this stage.
    #[error("dataset field `{field}`: {problem}; fix: {fix}")]
    BadDataset {
        field: String,
        problem: String,
        fix: String,
    },
}

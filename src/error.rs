//! Errors and exit codes: 0 done / nothing to do / already running, 2 bad input or config
//! (the message names the file, the field and the fix), 1 anything else.
//!
//! An error is the user's when it, or any cause in its chain, is a [`UserError`] or an
//! [`InputError`]. Stage crates' typed errors are sorted by [`ExitClass`]: bad input
//! becomes an [`InputError`] (keeping the typed error and its sources), a failure (an
//! unreachable server, a time-out, an I/O error) stays a plain error.

use std::error::Error as StdError;
use std::fmt;

/// A problem with the user's input or configuration: exit code 2.
#[derive(Debug, Clone, PartialEq)]
pub struct UserError(pub String);

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for UserError {}

/// A typed error that is the user's to fix (exit code 2). Transparent: it reads as the
/// error it wraps and hands on that error's sources.
#[derive(Debug)]
pub struct InputError(Box<dyn StdError + Send + Sync + 'static>);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for InputError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_USER: i32 = 2;

/// Exit code for an error: 2 when any cause in the chain is the user's.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    let is_user = |c: &(dyn StdError + 'static)| c.is::<UserError>() || c.is::<InputError>();
    if err.chain().any(is_user) {
        EXIT_USER
    } else {
        EXIT_FAILURE
    }
}

/// The error with its causes, `a: b: c`, leaving out a cause whose text the message
/// already carries (typed errors often quote their source).
pub fn render(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Wraps an error as the user's (exit code 2), keeping it and its sources in the chain.
pub fn input<E: StdError + Send + Sync + 'static>(e: E) -> anyhow::Error {
    anyhow::Error::new(InputError(Box::new(e)))
}

/// Whether a stage crate's error is bad input (exit code 2) or a failure (exit code 1).
pub trait ExitClass: StdError + Send + Sync + Sized + 'static {
    fn exit_code(&self) -> i32;

    /// The error as `anyhow::Error`, marked as the user's when it is.
    fn classified(self) -> anyhow::Error {
        if self.exit_code() == EXIT_USER {
            input(self)
        } else {
            anyhow::Error::new(self)
        }
    }
}

/// Input errors of the training crate are the user's; the rest are failures.
impl ExitClass for hhnas_train::TrainError {
    fn exit_code(&self) -> i32 {
        hhnas_train::TrainError::exit_code(self)
    }
}

/// Only an unreadable file is a failure; everything else is about the data given.
impl ExitClass for hhnas_spider::DataError {
    fn exit_code(&self) -> i32 {
        match self {
            hhnas_spider::DataError::Io { .. } => EXIT_FAILURE,
            _ => EXIT_USER,
        }
    }
}

/// Settings, keys, rules and data are the user's; a server that is down, slow, overloaded
/// or answers nonsense is a failure.
impl ExitClass for hhnas_features::FeatureError {
    fn exit_code(&self) -> i32 {
        use hhnas_features::FeatureError as F;
        match self {
            F::BadConfig { .. }
            | F::MissingApiKey { .. }
            | F::NotJson { .. }
            | F::BudgetExhausted { .. }
            | F::BadRule { .. }
            | F::BadDataset { .. } => EXIT_USER,
            // 4xx: the request is wrong (key, model name, URL); 5xx: the server failed.
            F::Http { status, .. } if *status < 500 => EXIT_USER,
            F::Http { .. }
            | F::Unreachable { .. }
            | F::BadResponse { .. }
            | F::Timeout { .. }
            | F::RetriesExhausted { .. } => EXIT_FAILURE,
        }
    }
}

/// A wrong base URL or path (4xx) is the user's; the network, the server, the disk and a
/// changed remote file are failures.
impl ExitClass for hhnas_spider::fetch::FetchError {
    fn exit_code(&self) -> i32 {
        use hhnas_spider::fetch::FetchError as F;
        match self {
            F::Status { status, .. } if (400..500).contains(status) => EXIT_USER,
            _ => EXIT_FAILURE,
        }
    }
}

/// Shorthand for returning a [`UserError`].
#[macro_export]
macro_rules! user_error {
    ($($arg:tt)*) => { anyhow::Error::new($crate::error::UserError(format!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classified_errors_keep_their_sources_and_exit_code() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = hhnas_spider::DataError::Io {
            file: "x.json".into(),
            source: io,
        }
        .classified()
        .context("stage spider failed");
        assert_eq!(exit_code(&e), EXIT_FAILURE);
        assert!(e.chain().any(|c| c.is::<std::io::Error>()));
        // The source's text is already in the message: said once.
        assert_eq!(render(&e).matches("denied").count(), 1, "{}", render(&e));

        let e = hhnas_features::FeatureError::MissingApiKey { var: "K".into() }.classified();
        assert_eq!(exit_code(&e), EXIT_USER);
        let e = hhnas_features::FeatureError::Unreachable {
            url: "http://x".into(),
            reason: "refused".into(),
        }
        .classified();
        assert_eq!(exit_code(&e), EXIT_FAILURE);
    }
}

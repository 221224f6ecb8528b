//! Stage crates' typed errors sorted by exit code ([`ExitClass`]): bad input becomes the
//! engine's [`InputError`] (keeping the typed error and its sources), a failure (an
//! unreachable server, a time-out, an I/O error) stays a plain error. The exit codes and
//! the user's errors themselves are the engine's (`hhnas_engine::error`).

use std::error::Error as StdError;

pub use hhnas_engine::error::{
    exit_code, input, render, InputError, UserError, EXIT_FAILURE, EXIT_OK, EXIT_USER,
};

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

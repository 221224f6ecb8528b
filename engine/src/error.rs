//! Errors and exit codes: 0 done / nothing to do / already running, 2 bad input or config
//! (the message names the file, the field and the fix), 1 anything else.
//!
//! An error is the user's when it, or any cause in its chain, is a [`UserError`] or an
//! [`InputError`] (a typed error of the user's input, kept with its sources: [`input`]).
//! Anything else (an unreachable server, a time-out, an I/O error) is a failure.

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

/// What a command achieved; errors travel as `anyhow::Error` instead. Each is exit 0.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    NothingToDo,
    AlreadyRunning(Option<u32>),
}

impl Outcome {
    pub fn exit_code(&self) -> i32 {
        EXIT_OK
    }
}
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

/// An [`UserError`] (exit code 2) from a format string: the message names the file or
/// key, what is wrong and the fix.
#[macro_export]
macro_rules! user_error {
    ($($arg:tt)*) => { anyhow::Error::new($crate::error::UserError(format!($($arg)*))) };
}

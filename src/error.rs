//! Errors and exit codes: 0 done / nothing to do / already running, 2 bad input or config
//! (the message names the file, the field and the fix), 1 anything else.

use std::fmt;

/// A problem with the user's input or configuration: exit code 2.
#[derive(Debug, Clone, PartialEq)]
pub struct UserError(pub String);

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_USER: i32 = 2;

/// Exit code for an error: 2 when any cause in the chain is a [`UserError`].
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if err.chain().any(|c| c.downcast_ref::<UserError>().is_some()) {
        EXIT_USER
    } else {
        EXIT_FAILURE
    }
}

/// Shorthand for returning a [`UserError`].
#[macro_export]
macro_rules! user_error {
    ($($arg:tt)*) => { anyhow::Error::new($crate::error::UserError(format!($($arg)*))) };
}

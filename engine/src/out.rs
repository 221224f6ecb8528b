//! Output that never panics. `println!` panics when stdout is a pipe whose reader has gone
//! (`hhnas-pipe run | head -1`); a run must not die of that. [`outln!`](crate::outln),
//! [`out!`](crate::out) and [`errln!`](crate::errln) write to stdout and stderr and drop
//! what cannot be written: the command goes on, detached from the pipe, and its journal
//! and store are what they would have been.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

#[doc(hidden)]
pub fn write_stdout(args: fmt::Arguments) {
    write_to(&mut io::stdout().lock(), args);
}

#[doc(hidden)]
pub fn write_stderr(args: fmt::Arguments) {
    write_to(&mut io::stderr().lock(), args);
}

fn write_to(w: &mut impl Write, args: fmt::Arguments) {
    let Err(e) = w.write_fmt(args).and_then(|()| w.flush()) else {
        return;
    };
    // A closed pipe is the reader's choice, not a problem. Anything else (a full disk
    // under a redirect) is said once, through the log.
    static WARNED: AtomicBool = AtomicBool::new(false);
    if e.kind() != io::ErrorKind::BrokenPipe && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!("cannot write output ({e}); going on without it");
    }
}

/// `println!` that does not panic when stdout is closed.
#[macro_export]
macro_rules! outln {
    () => { $crate::out::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::out::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that does not panic when stdout is closed.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::write_stdout(format_args!($($arg)*)) };
}

/// `eprintln!` that does not panic when stderr is closed.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::out::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

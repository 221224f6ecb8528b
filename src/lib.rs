//! hhnas-pipe: the ML wiring. The DAG's nodes (`dag`, `nodes`), the configuration, the
//! runner (`run`), the commands and `status`, over the generic engine (`hhnas-engine`:
//! store, journal, lock, run directories, the replay executor, launching) and the stage
//! crates under `stages/`.

// Output goes through `out!`/`outln!`/`errln!`, which survive a closed pipe.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod commands;
pub mod config;
pub mod dag;
pub mod error;
pub mod nodes;
pub mod run;
pub mod status;

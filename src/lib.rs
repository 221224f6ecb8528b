//! hhnas-pipe's engine: configuration, content-addressed store, run journal, run lock,
//! the DAG's nodes and their execution, the commands and status. It wires the stage
//! crates together and knows no ML.

// Output goes through `out!`/`outln!`/`errln!`, which survive a closed pipe.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod commands;
pub mod config;
pub mod error;
pub mod exec;
pub mod executor;
pub mod journal;
pub mod lock;
pub mod nodes;
pub mod out;
pub mod progress;
pub mod run;
pub mod runs;
pub mod slurm;
pub mod status;
pub mod store;

//! hhnas-pipe's engine: configuration, content-addressed store, run journal, run lock,
//! the pipeline runner and status. It wires the stage crates together and knows no ML.

pub mod config;
pub mod error;
pub mod journal;
pub mod lock;
pub mod pipeline;
pub mod progress;
pub mod runs;
pub mod status;
pub mod store;

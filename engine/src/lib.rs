//! hhnas-engine: the generic machinery of hhnas-pipe, which knows no ML. A content-
//! addressed store (`store`), the append-only journal of each run (`journal`), the run
//! lock with its heartbeat (`lock`), run directories (`rundir`), the replay executor that
//! replays a stored node or computes and stores it (`replay`, over any [`replay::Node`]),
//! progress and closed-pipe-safe output (`progress`, `out`), errors and exit codes
//! (`error`), and where runs execute: in process, one child per device, or Slurm
//! (`launch`, `slurm`).

// Output goes through `out!`/`outln!`/`errln!`, which survive a closed pipe.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod error;
pub mod host;
pub mod journal;
pub mod launch;
pub mod lock;
pub mod out;
pub mod progress;
pub mod replay;
pub mod rundir;
pub mod slurm;
pub mod store;

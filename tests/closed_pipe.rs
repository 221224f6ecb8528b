//! A closed stdout (`hhnas-pipe ... | head -1`), or stdout and stderr both closed
//! (`hhnas-pipe run 2>&1 | head -1`), never panics a command: what cannot be written is
//! dropped and the command finishes as it would have.

mod common;

use std::process::{Command, Output, Stdio};

use common::*;

/// Runs `cmd` with stdout connected to a pipe whose reading end is already closed.
fn with_closed_stdout(mut cmd: Command) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn assert_no_panic(out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("internal error"), "{err}");
}

#[test]
fn data_stats_into_a_closed_pipe_exits_0() {
    // The workspace's generated Spider directory (its config names it).
    let ws = Workspace::new(1);
    let mut cmd = ws.cmd(&["data-stats", "--config", ws.config().to_str().unwrap()]);
    cmd.env_remove("HHNAS_SPIDER_DIR");
    let out = with_closed_stdout(cmd);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn status_into_a_closed_pipe_exits_0() {
    let ws = Workspace::new(1);
    let out = with_closed_stdout(ws.cmd(&["status", "--all"]));
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// The run goes on without its reader and finishes: journal and report are complete.
#[test]
fn a_run_into_a_closed_pipe_finishes() {
    let ws = Workspace::new(1);
    let out = with_closed_stdout(ws.cmd(&["run", "--config", ws.config().to_str().unwrap()]));
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        ws.journal_lines().iter().any(|e| e["event"] == "finished"),
        "{}",
        text(&out)
    );
    assert!(ws.run_dir().join("report").join("report.md").is_file());
}

/// `hhnas-pipe run 2>&1 | head -3`: the log lines on stderr go to the closed pipe as well.
/// (The log writer used to report its failed write with `eprintln!`, which panicked on
/// the closed stderr and ended the run as "interrupted".)
#[test]
fn a_run_whose_log_goes_into_a_closed_pipe_finishes() {
    let ws = Workspace::new(2);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = ws
        .cmd(&["run", "--config", ws.config().to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(writer.try_clone().unwrap()))
        .stderr(Stdio::from(writer))
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(ws.journal_lines().iter().any(|e| e["event"] == "finished"));
}

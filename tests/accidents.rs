//! What a run survives besides kill -9 (tests/fault_injection.rs) and a full disk
//! (tests/disk_full.rs): its cache moved to another path mid-run, and SIGTERM or SIGINT
//! in the middle of an epoch.

mod common;

use std::os::unix::process::CommandExt;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A copy of the cache folder, taken while the run is stopped: to another path, as on
/// another machine.
fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// The cache of a run killed in the middle of its search, copied to another folder and
/// resumed there, ends as an uninterrupted run does: nothing in a run directory needs the
/// old path.
#[test]
fn a_cache_moved_mid_run_resumes_at_its_new_path() {
    let reference = Workspace::frozen(3);
    let out = reference.run_with(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let total = stage_lines(&reference);

    let ws = Workspace::frozen(3);
    let cfg = ws.config();
    let killed = run_and_kill(
        &ws,
        &["run", "--config", cfg.to_str().unwrap()],
        total / 2,
        Duration::from_millis(50),
    );
    assert!(killed, "the run finished before the kill");
    let moved = ws.path().join("moved-cache");
    copy_dir(&ws.cache(), &moved);
    std::fs::remove_dir_all(ws.cache()).unwrap();

    let out = Command::new(BIN)
        .current_dir(ws.path())
        .env_remove("HHNAS_SPIDER_DIR")
        .env("RUST_LOG", "warn")
        .arg("--cache-dir")
        .arg(&moved)
        .arg("resume")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let runs: Vec<_> = std::fs::read_dir(moved.join("runs"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("meta.json").is_file())
        .collect();
    assert_eq!(runs.len(), 1);
    let journal: Vec<serde_json::Value> =
        std::fs::read_to_string(runs[0].path().join("journal.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
    assert!(journal.iter().any(|e| e["event"] == "finished"));
    assert_eq!(
        comparable(&journal),
        comparable(&reference.journal_lines()),
        "the moved run ended differently"
    );
}

/// SIGTERM and SIGINT in the middle of a candidate's epochs: the process ends within a
/// few seconds, the lock is free (status says interrupted, nobody holds it), the journal
/// reads, and `resume` continues from the last finished epoch to the uninterrupted run's
/// end.
#[test]
fn sigterm_and_sigint_mid_epoch_leave_a_resumable_run() {
    let reference = Workspace::frozen(2);
    let out = reference.run_with(&[]);
    assert!(out.status.success(), "{}", text(&out));

    for signal in ["TERM", "INT"] {
        let ws = Workspace::frozen(2);
        let cfg = ws.config();
        let mut cmd = ws.cmd(&["run", "--config", cfg.to_str().unwrap()]);
        // A terminal's Ctrl-C meets SIGINT's default action; a test suite started in the
        // background (`cargo test &`) passes SIGINT on ignored, so restore the default.
        // SAFETY: only signal(2), async-signal-safe, runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until a candidate is training (its training file names a finished epoch).
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            assert!(child.try_wait().unwrap().is_none(), "the run ended first");
            let training = run_exists(&ws) && ws.run_dir().join("training.json").is_file();
            if training {
                break;
            }
            assert!(Instant::now() < deadline, "no candidate started training");
            std::thread::sleep(Duration::from_millis(10));
        }
        let sent = Instant::now();
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = child.wait().unwrap();
        let took = sent.elapsed();
        assert!(!status.success(), "SIG{signal}: the run ended normally");
        eprintln!("SIG{signal}: stopped after {took:?}");

        let out = ws.run(&["status", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(st["state"], "interrupted", "SIG{signal}: {st}");
        assert!(
            st["pid"].is_null(),
            "SIG{signal}: the lock is still held: {st}"
        );

        let out = ws.run(&["resume"]);
        assert!(out.status.success(), "{}", text(&out));
        let journal = ws.journal_lines();
        assert_eq!(
            comparable(&journal),
            comparable(&reference.journal_lines()),
            "SIG{signal}: the resumed run differs from an uninterrupted one"
        );
    }
}

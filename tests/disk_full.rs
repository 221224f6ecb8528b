//! The cache on a filesystem that fills up mid-run: the failing write leaves no temporary
//! file behind, the message names the filesystem, the bytes and the fix, nothing stored
//! before is lost, and once space is freed `resume` ends as an uninterrupted run does.
//! Mounting the small tmpfs needs root; without it the test says so and does nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A tmpfs mounted at a path for the test's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Files under `dir` whose names mark an unfinished write.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .map(|e| e.path().to_path_buf())
        .collect()
}

#[test]
fn a_full_disk_leaves_no_temporary_file_and_resume_finishes_the_run() {
    let reference = Workspace::frozen(2);
    let out = reference.run_with(&[]);
    assert!(out.status.success(), "{}", text(&out));

    let ws = Workspace::frozen(2);
    let Some(_fs) = Tmpfs::mount(&ws.cache(), "16m") else {
        eprintln!("skipped: mounting a tmpfs needs root (mount -t tmpfs)");
        return;
    };
    // Leave about 40 kB free: the dataset fits, a later node does not.
    let filler = ws.cache().join("filler");
    let free = {
        let probe = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(ws.cache())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&probe.stdout).to_string();
        text.lines().nth(1).unwrap().trim().parse::<u64>().unwrap()
    };
    std::fs::write(&filler, vec![0u8; (free - 40_000) as usize]).unwrap();

    let out = ws.run_with(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("{err}");
    assert!(err.contains("no space left on the filesystem"), "{err}");
    assert!(err.contains(&ws.cache().display().to_string()), "{err}");
    assert!(
        err.contains("bytes to write") && err.contains("resume"),
        "{err}"
    );
    assert_eq!(temp_files(&ws.cache()), Vec::<PathBuf>::new());
    let stored_before: Vec<PathBuf> = walkdir::WalkDir::new(ws.cache().join("store"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_path_buf())
        .collect();
    assert!(!stored_before.is_empty(), "the first nodes were stored");

    std::fs::remove_file(&filler).unwrap();
    let out = ws.run(&["resume"]);
    assert!(out.status.success(), "{}", text(&out));
    for p in &stored_before {
        assert!(p.is_file(), "{} was lost", p.display());
    }
    assert_eq!(
        comparable(&ws.journal_lines()),
        comparable(&reference.journal_lines()),
        "the resumed run differs from an uninterrupted one"
    );
}

/// The command in the workspace, on another cache folder.
fn in_cache(ws: &Workspace, cache: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .current_dir(ws.path())
        .env_remove("HHNAS_SPIDER_DIR")
        .env("RUST_LOG", "warn")
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .unwrap()
}

/// A read-only cache is refused before any work starts, with the folder and the fix.
#[test]
fn a_read_only_cache_is_refused_before_any_work() {
    let ws = Workspace::frozen(1);
    let out = ws.run_with(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let Some(_fs) = Tmpfs::mount(&ws.path().join("ro"), "16m") else {
        eprintln!("skipped: mounting a tmpfs needs root (mount -t tmpfs)");
        return;
    };
    // The finished run's cache copied onto a filesystem then made read-only.
    let ro = ws.path().join("ro").join("cache");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(ws.cache())
        .arg(&ro)
        .status()
        .unwrap();
    assert!(copied.success());
    let remount = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(ws.path().join("ro"))
        .status()
        .unwrap();
    assert!(remount.success());
    for args in [
        vec!["run", "--config", ws.config().to_str().unwrap()],
        vec!["resume"],
    ] {
        let out = in_cache(&ws, &ro, &args);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            err.contains(&ro.display().to_string())
                && err.contains("cannot be written")
                && err.contains("Fix:"),
            "{err}"
        );
    }
    // Reading still works: status of the finished run.
    let out = in_cache(&ws, &ro, &["status"]);
    assert!(out.status.success(), "{}", text(&out));
}

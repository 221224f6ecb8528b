//! What `run` checks and provides before it creates a run directory: a device this build
//! can use, and the Spider directory (fetched when it does not exist at all).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::*;

#[test]
#[cfg_attr(
    feature = "cuda",
    ignore = "this build has CUDA, so cuda:N is not refused"
)]
fn cuda_on_a_cpu_build_is_refused_before_any_run_directory() {
    let ws = Workspace::new(1);
    let out = ws.run_with(&["train.device=\"cuda:0\""]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cuda:0") && err.contains("without CUDA"),
        "{err}"
    );
    assert!(!run_exists(&ws), "a run directory was created");
    // Nothing ran: no stage wrote to the store.
    assert!(!ws.cache().join("store").exists());
}

#[test]
fn per_class_evidence_on_a_fine_tuned_encoder_names_the_key_and_the_fix() {
    let ws = Workspace::new(1);
    for key in [
        "char_neighbours",
        "char_svm",
        "schema_evidence",
        "schema_semantic",
    ] {
        let out = ws.run_with(&[&format!("features.{key}=true")]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("features.{key}")) && err.contains("encoder.mode = \"frozen\""),
            "{err}"
        );
    }
    assert!(!run_exists(&ws), "a run directory was created");
}

#[test]
fn lexical_dropout_out_of_range_or_on_the_dense_head_names_the_key_and_the_fix() {
    let ws = Workspace::new(1);
    for (sets, needle) in [
        (vec!["train.lexical_dropout=1.0"], "outside [0, 1)"),
        // The workspace's config trains the SPEC's dense head.
        (
            vec!["train.lexical_dropout=0.5"],
            "train.head = \"evidence\"",
        ),
    ] {
        let out = ws.run_with(&sets);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("train.lexical_dropout") && err.contains(needle) && err.contains("Fix"),
            "{err}"
        );
    }
    assert!(!run_exists(&ws), "a run directory was created");
}

#[test]
fn one_fold_or_cross_fitting_with_a_refit_names_the_key_and_the_fix() {
    let ws = Workspace::new(1);
    for (sets, key, needle) in [
        (
            vec!["train.bag_folds=1"],
            "train.bag_folds",
            "2 or more folds",
        ),
        (
            vec!["train.bag_folds=5", "ensemble.refit=true"],
            "ensemble.refit",
            "ensemble.refit = false, or train.bag_folds = 0",
        ),
    ] {
        let out = ws.run_with(&sets);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(key) && err.contains(needle) && err.contains("Fix"),
            "{err}"
        );
    }
    assert!(!run_exists(&ws), "a run directory was created");
}

/// A mirror that answers 404 to everything.
fn not_found_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    format!("http://{addr}/")
}

#[test]
fn a_missing_spider_directory_is_fetched_and_a_failed_fetch_says_why() {
    let ws = Workspace::new(1);
    let absent = ws.path().join("absent-spider");
    let out = ws
        .cmd(&[
            "run",
            "--config",
            ws.config().to_str().unwrap(),
            "--set",
            &format!("data.spider_dir=\"{}\"", absent.display()),
        ])
        .env("HHNAS_SPIDER_BASE_URL", not_found_server())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("fetching it from"), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["absent-spider", "Fix", "fetching Spider", "404"] {
        assert!(err.contains(needle), "expected `{needle}` in: {err}");
    }
    // Nothing half-fetched is left to pass for Spider, and no run was created.
    assert!(!absent.exists());
    assert!(!run_exists(&ws));
}

#[test]
fn a_missing_spider_directory_under_a_missing_parent_is_not_fetched() {
    let ws = Workspace::new(1);
    let out = ws
        .cmd(&[
            "run",
            "--config",
            ws.config().to_str().unwrap(),
            "--set",
            "data.spider_dir=\"/nonexistent/spider\"",
        ])
        .env("HHNAS_SPIDER_BASE_URL", not_found_server())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("fetching"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/spider"));
    assert!(!std::path::Path::new("/nonexistent").exists());
}

//! fetch_files against a tiny local HTTP server: success, retry after a dropped connection,
//! checksum mismatch, 404, and skipping files already present.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hhnas_spider::fetch::{fetch_files, FetchError, FetchOptions, RemoteFile};
use sha2::{Digest, Sha256};

mod common;

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// How the server answers one path.
#[derive(Clone)]
struct Route {
    body: Vec<u8>,
    /// Number of first requests answered with half the body, then a closed connection.
    drop_first: usize,
}

/// Serves `routes` on 127.0.0.1 from a background thread for up to `max_conns` connections.
/// Returns the base URL and the per-path request counter.
fn serve(
    routes: HashMap<String, Route>,
    max_conns: usize,
) -> (String, Arc<Mutex<HashMap<String, usize>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let hits2 = hits.clone();
    let served = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max_conns) {
            let Ok(mut stream) = stream else { continue };
            served.fetch_add(1, Ordering::SeqCst);
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // Drain headers.
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).is_err() || l == "\r\n" || l.is_empty() {
                    break;
                }
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_string();
            let n = {
                let mut h = hits2.lock().unwrap();
                let e = h.entry(path.clone()).or_insert(0);
                *e += 1;
                *e
            };
            match routes.get(&path) {
                Some(r) => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        r.body.len()
                    );
                    let _ = stream.write_all(head.as_bytes());
                    if n <= r.drop_first {
                        let _ = stream.write_all(&r.body[..r.body.len() / 2]);
                    } else {
                        let _ = stream.write_all(&r.body);
                    }
                }
                None => {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
            let _ = stream.flush();
            // Dropping the stream closes the connection.
        }
    });
    (format!("http://{addr}/base"), hits)
}

fn opts() -> FetchOptions {
    FetchOptions {
        max_attempts: 3,
        timeout: Duration::from_secs(10),
        retry_delay: Duration::from_millis(10),
    }
}

fn big_body(tag: u8) -> Vec<u8> {
    (0..200_000u32).map(|i| (i % 251) as u8 ^ tag).collect()
}

#[test]
fn downloads_verifies_and_retries_dropped_connection() {
    let a = big_body(1);
    let b = b"[{\"db_id\": \"x\"}]".to_vec();
    let routes = HashMap::from([
        (
            "/base/dir/a.json".to_string(),
            Route {
                body: a.clone(),
                drop_first: 1,
            },
        ),
        (
            "/base/b.json".to_string(),
            Route {
                body: b.clone(),
                drop_first: 0,
            },
        ),
    ]);
    let (base, hits) = serve(routes, 16);
    let dest = tempfile::tempdir().unwrap();
    let files = [
        RemoteFile::new("dir/a.json", "train_spider.json", &sha(&a)),
        RemoteFile::new("b.json", "tables.json", &sha(&b)),
    ];
    let rep = fetch_files(&base, &files, dest.path(), &opts()).unwrap();
    assert_eq!(
        std::fs::read(dest.path().join("train_spider.json")).unwrap(),
        a
    );
    assert_eq!(std::fs::read(dest.path().join("tables.json")).unwrap(), b);
    assert_eq!(rep.files[0].attempts, 2, "first attempt was cut short");
    assert_eq!(rep.files[1].attempts, 1);
    assert_eq!(rep.files[0].bytes, a.len() as u64);
    assert_eq!(hits.lock().unwrap()["/base/dir/a.json"], 2);
    let shown = rep.to_string();
    assert!(
        shown.contains("train_spider.json (200000 bytes") && shown.contains("2 attempt(s)"),
        "{shown}"
    );
    // Only the two final files: no temp files left behind.
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 2);

    // Second run: both present and verified, no requests.
    let rep = fetch_files(&base, &files, dest.path(), &opts()).unwrap();
    assert!(rep
        .files
        .iter()
        .all(|f| f.already_present && f.attempts == 0));
    assert_eq!(hits.lock().unwrap()["/base/dir/a.json"], 2);
}

#[test]
fn checksum_mismatch_is_rejected_and_leaves_nothing() {
    let good = big_body(2);
    let mut corrupt = good.clone();
    corrupt[1000] ^= 0xff;
    let routes = HashMap::from([(
        "/base/t.json".to_string(),
        Route {
            body: corrupt.clone(),
            drop_first: 0,
        },
    )]);
    let (base, _) = serve(routes, 4);
    let dest = tempfile::tempdir().unwrap();
    let files = [RemoteFile::new("t.json", "tables.json", &sha(&good))];
    let err = fetch_files(&base, &files, dest.path(), &opts()).unwrap_err();
    match &err {
        FetchError::Checksum {
            file,
            expected,
            got,
            ..
        } => {
            assert_eq!(file, "tables.json");
            assert_eq!(expected, &sha(&good));
            assert_eq!(got, &sha(&corrupt));
        }
        other => panic!("expected Checksum, got {other:?}"),
    }
    assert!(err.to_string().contains("sha256 mismatch"));
    assert_eq!(
        std::fs::read_dir(dest.path()).unwrap().count(),
        0,
        "no partial or temp file"
    );
}

#[test]
fn persistent_drop_gives_up_after_bounded_attempts() {
    let body = big_body(3);
    let routes = HashMap::from([(
        "/base/x.json".to_string(),
        Route {
            body: body.clone(),
            drop_first: 100,
        },
    )]);
    let (base, hits) = serve(routes, 8);
    let dest = tempfile::tempdir().unwrap();
    let files = [RemoteFile::new("x.json", "dev.json", &sha(&body))];
    let err = fetch_files(&base, &files, dest.path(), &opts()).unwrap_err();
    assert!(
        matches!(err, FetchError::Transport { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(hits.lock().unwrap()["/base/x.json"], 3);
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
}

#[test]
fn not_found_is_not_retried() {
    let (base, hits) = serve(HashMap::new(), 4);
    let dest = tempfile::tempdir().unwrap();
    let files = [RemoteFile::new("missing.json", "dev.json", &sha(b""))];
    let err = fetch_files(&base, &files, dest.path(), &opts()).unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Status {
                status: 404,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(hits.lock().unwrap()["/base/missing.json"], 1);
}

#[test]
fn default_file_list_is_pinned() {
    let f = hhnas_spider::fetch::spider_files();
    let names: Vec<&str> = f.iter().map(|x| x.local_name.as_str()).collect();
    assert_eq!(names, ["train_spider.json", "dev.json", "tables.json"]);
    assert!(f.iter().all(|x| x.sha256.len() == 64));
    assert!(
        hhnas_spider::fetch::DEFAULT_BASE_URL.contains("0b996a57b7e329c14c300a8fb13661da128a9ddc")
    );
}

/// The real Spider copies served from 127.0.0.1 (one connection dropped mid-body, then a
/// corrupted copy): the verified download builds the same 86-class dataset.
#[test]
fn real_spider_copies_download_verify_and_build() {
    let dir = common::spider_dir();
    let names = ["train_spider.json", "dev.json", "tables.json"];
    let bodies: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(dir.join(n)).unwrap())
        .collect();
    let routes: HashMap<String, Route> = names
        .iter()
        .zip(&bodies)
        .map(|(n, b)| {
            (
                format!("/base/{n}"),
                Route {
                    body: b.clone(),
                    drop_first: usize::from(*n == "train_spider.json"),
                },
            )
        })
        .collect();
    let (base, _) = serve(routes, 16);
    let files: Vec<RemoteFile> = names
        .iter()
        .zip(&bodies)
        .map(|(n, b)| RemoteFile::new(n, n, &sha(b)))
        .collect();
    let dest = tempfile::tempdir().unwrap();
    let rep = fetch_files(&base, &files, dest.path(), &opts()).unwrap();
    assert_eq!(
        rep.files[0].attempts, 2,
        "the dropped connection was retried"
    );
    let src = hhnas_spider::read_spider_dir(dest.path()).unwrap();
    let ds = hhnas_spider::build_dataset(&src, &hhnas_spider::DataParams::default()).unwrap();
    assert_eq!(ds.classes.len(), 86);

    // A corrupted copy on the server: rejected, nothing written.
    let mut bad = bodies[2].clone();
    bad[1000] ^= 0x20;
    let (base, _) = serve(
        HashMap::from([(
            "/base/tables.json".to_string(),
            Route {
                body: bad,
                drop_first: 0,
            },
        )]),
        8,
    );
    let dest = tempfile::tempdir().unwrap();
    let err = fetch_files(&base, &files[2..], dest.path(), &opts()).unwrap_err();
    assert!(matches!(err, FetchError::Checksum { .. }), "{err}");
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
}

//! `hhnas-pipe fetch-data`: downloads the Spider files from a GitHub-raw-style base URL,
//! checks their sha256 and writes them atomically (temp file + rename), so a destination file
//! is either absent or complete and verified.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Pinned commit of ygan/Spider-Syn; the checksums below belong to it.
pub const DEFAULT_BASE_URL: &str =
    "https://raw.githubusercontent.com/ygan/Spider-Syn/0b996a57b7e329c14c300a8fb13661da128a9ddc/";

/// One file to download.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    /// Path under the base URL.
    pub remote_path: String,
    /// File name under the destination directory.
    pub local_name: String,
    /// Expected sha256, lower-case hex.
    pub sha256: String,
}

impl RemoteFile {
    /// Convenience constructor.
    pub fn new(remote_path: &str, local_name: &str, sha256: &str) -> Self {
        RemoteFile {
            remote_path: remote_path.to_string(),
            local_name: local_name.to_string(),
            sha256: sha256.to_ascii_lowercase(),
        }
    }
}

/// The three files of the paper protocol at `DEFAULT_BASE_URL`.
pub fn spider_files() -> Vec<RemoteFile> {
    vec![
        RemoteFile::new(
            "Spider-Syn/train_spider.json",
            "train_spider.json",
            "f045467b2ec33df51362dddfcb9a9424470e3c0c5bacc2e2469805627300964a",
        ),
        RemoteFile::new(
            "Spider-Syn/dev.json",
            "dev.json",
            "c70b19cd000376d46331dce518c2bc5a672950c9bf2ee6ade7de519e373ee38d",
        ),
        RemoteFile::new(
            "preprocessed_dataset/tables.json",
            "tables.json",
            "50d118798901e5961f5f32a08bb2032224cec837a2c6da711d129a4a77ef56ff",
        ),
    ]
}

/// Retry and timeout policy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FetchOptions {
    /// Attempts per file (>= 1) for dropped connections, transport errors and 5xx answers.
    pub max_attempts: u32,
    /// Limit for one attempt, connection and body included.
    pub timeout: Duration,
    /// Pause before retry k is `retry_delay * k`.
    pub retry_delay: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            max_attempts: 4,
            timeout: Duration::from_secs(300),
            retry_delay: Duration::from_secs(2),
        }
    }
}

/// What happened to one file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FetchedFile {
    /// Destination path.
    pub path: PathBuf,
    /// Size in bytes.
    pub bytes: u64,
    /// Verified sha256.
    pub sha256: String,
    /// Download attempts made (0 when the file was already present and verified).
    pub attempts: u32,
    /// The file was already at the destination with the right checksum.
    pub already_present: bool,
}

/// Result of `fetch_spider` / `fetch_files`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FetchReport {
    /// One entry per requested file, in request order.
    pub files: Vec<FetchedFile>,
}

impl std::fmt::Display for FetchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, x) in self.files.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let how = if x.already_present {
                "already present, checksum ok".to_string()
            } else {
                format!("downloaded in {} attempt(s), checksum ok", x.attempts)
            };
            write!(
                f,
                "{} ({} bytes, sha256 {}): {how}",
                x.path.display(),
                x.bytes,
                x.sha256
            )?;
        }
        Ok(())
    }
}

/// Download errors.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Local file-system problem.
    #[error("{}: {source}. Fix: check that the destination is writable", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server answered with a non-success status (after retries for 5xx).
    #[error("{url}: HTTP status {status} after {attempts} attempt(s). Fix: check the base URL (`--base-url`) and the file path")]
    Status {
        /// Requested URL.
        url: String,
        /// Last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },
    /// Transport failed on every attempt.
    #[error("{url}: download failed after {attempts} attempt(s): {message}. Fix: check network access to the host, or download the files by hand into the Spider directory")]
    Transport {
        /// Requested URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// Last error.
        message: String,
    },
    /// Downloaded bytes do not match the pinned checksum; nothing was written.
    #[error("{file}: sha256 mismatch: expected {expected}, got {got} (from {url}). Fix: the remote file changed or is corrupt; check the base URL and commit, or supply a verified copy")]
    Checksum {
        /// Destination file name.
        file: String,
        /// Source URL.
        url: String,
        /// Pinned checksum.
        expected: String,
        /// Checksum of what arrived.
        got: String,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a file, or None when it does not exist.
fn file_sha256(path: &Path) -> Result<Option<(String, u64)>, FetchError> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(FetchError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h).map_err(|source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Some((hex(&h.finalize()), n)))
}

/// Outcome of one attempt that did not give a complete body.
enum AttemptError {
    /// Worth retrying (dropped connection, transport error, 5xx).
    Retry(String, Option<u16>),
    /// Not worth retrying (4xx).
    Fatal(u16),
    /// Local I/O.
    Io(FetchError),
}

/// One GET streamed into `tmp`, hashing as it goes.
fn attempt(
    agent: &ureq::Agent,
    url: &str,
    tmp: &mut tempfile::NamedTempFile,
) -> Result<(String, u64), AttemptError> {
    let io_err = |source: std::io::Error, p: &Path| {
        AttemptError::Io(FetchError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    // A previous failed attempt may have left bytes behind.
    tmp.as_file_mut()
        .set_len(0)
        .map_err(|e| io_err(e, tmp.path()))?;
    std::io::Seek::rewind(tmp.as_file_mut()).map_err(|e| io_err(e, tmp.path()))?;
    let resp = match agent.get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::StatusCode(s)) if s >= 500 => {
            return Err(AttemptError::Retry(format!("HTTP status {s}"), Some(s)))
        }
        Err(ureq::Error::StatusCode(s)) => return Err(AttemptError::Fatal(s)),
        Err(e) => return Err(AttemptError::Retry(e.to_string(), None)),
    };
    let mut reader = resp.into_body().into_reader();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        // ureq reports a body cut short of Content-Length as an error here.
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(AttemptError::Retry(format!("body read failed: {e}"), None)),
        };
        h.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(|e| io_err(e, tmp.path()))?;
        total += n as u64;
    }
    tmp.flush().map_err(|e| io_err(e, tmp.path()))?;
    Ok((hex(&h.finalize()), total))
}

/// Downloads `files` from `base_url` into `dest` (created if needed). A file already present
/// with the right checksum is kept. Each file is written to a temp file in `dest`, checked,
/// then renamed into place; on any error nothing partial remains at the destination name.
/// Long (~100 lines) because each error path of that transaction cleans up in place.
pub fn fetch_files(
    base_url: &str,
    files: &[RemoteFile],
    dest: &Path,
    opts: &FetchOptions,
) -> Result<FetchReport, FetchError> {
    std::fs::create_dir_all(dest).map_err(|source| FetchError::Io {
        path: dest.to_path_buf(),
        source,
    })?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(opts.timeout))
        .build()
        .into();
    let base = if base_url.ends_with('/') {
        base_url.to_string()
    } else {
        format!("{base_url}/")
    };
    let mut report = FetchReport { files: Vec::new() };
    for f in files {
        let path = dest.join(&f.local_name);
        if let Some((sha, n)) = file_sha256(&path)? {
            if sha == f.sha256 {
                report.files.push(FetchedFile {
                    path,
                    bytes: n,
                    sha256: sha,
                    attempts: 0,
                    already_present: true,
                });
                continue;
            }
        }
        let url = format!("{base}{}", f.remote_path.trim_start_matches('/'));
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.", f.local_name))
            .suffix(".part")
            .tempfile_in(dest)
            .map_err(|source| FetchError::Io {
                path: dest.to_path_buf(),
                source,
            })?;
        let max = opts.max_attempts.max(1);
        let mut attempts = 0;
        let (sha, n) = loop {
            attempts += 1;
            match attempt(&agent, &url, &mut tmp) {
                Ok(ok) => break ok,
                Err(AttemptError::Io(e)) => return Err(e),
                Err(AttemptError::Fatal(status)) => {
                    return Err(FetchError::Status {
                        url,
                        status,
                        attempts,
                    })
                }
                Err(AttemptError::Retry(message, status)) => {
                    if attempts >= max {
                        return Err(match status {
                            Some(status) => FetchError::Status {
                                url,
                                status,
                                attempts,
                            },
                            None => FetchError::Transport {
                                url,
                                attempts,
                                message,
                            },
                        });
                    }
                    std::thread::sleep(opts.retry_delay * attempts);
                }
            }
        };
        if sha != f.sha256 {
            // `tmp` is deleted on drop.
            return Err(FetchError::Checksum {
                file: f.local_name.clone(),
                url,
                expected: f.sha256.clone(),
                got: sha,
            });
        }
        tmp.as_file().sync_all().map_err(|source| FetchError::Io {
            path: tmp.path().to_path_buf(),
            source,
        })?;
        tmp.persist(&path).map_err(|e| FetchError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        report.files.push(FetchedFile {
            path,
            bytes: n,
            sha256: sha,
            attempts,
            already_present: false,
        });
    }
    Ok(report)
}

/// Downloads the pinned Spider files (`spider_files()`) from `base_url` (normally
/// `DEFAULT_BASE_URL`) into `dest` with default retry options.
pub fn fetch_spider(base_url: &str, dest: &Path) -> Result<FetchReport, FetchError> {
    fetch_files(base_url, &spider_files(), dest, &FetchOptions::default())
}

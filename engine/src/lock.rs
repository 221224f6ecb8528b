//! One lock per run: an exclusive advisory lock (flock) on `<run>/lock`, which the kernel
//! releases when the holder dies, plus the holder's pid and a heartbeat written into the
//! file for `status`. A pid left in the file by a holder that no longer holds the flock is
//! a stale lock from a killed process, and is taken over. The file also names the host,
//! so a run held by a Slurm task on a compute node reads as running on the login node
//! (by its heartbeat) and is never signalled from there.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::host::{hostname, now};

/// How often the holder rewrites its heartbeat.
pub const HEARTBEAT_SECS: u64 = 5;

/// A heartbeat older than this means the holder is gone even if its pid was reused.
pub const HEARTBEAT_STALE_SECS: f64 = 3.0 * HEARTBEAT_SECS as f64 + 5.0;

/// What the lock file says about its (last) holder.
#[derive(Clone, Debug, PartialEq)]
pub struct Holder {
    pub pid: u32,
    pub heartbeat: f64,
    /// The holder's host; absent in lock files written before it was recorded.
    pub host: Option<String>,
}

impl Holder {
    /// Whether the holder runs on this machine (old lock files: assumed so).
    pub fn is_local(&self) -> bool {
        self.host.as_deref().is_none_or(|h| h == hostname())
    }
}

/// The holder, if one is alive: a fresh heartbeat and, on this machine, a live pid. A
/// holder on another host is judged by its heartbeat alone.
pub fn live_holder(run_dir: &Path) -> Option<Holder> {
    read_holder(run_dir).filter(|h| {
        now() - h.heartbeat < HEARTBEAT_STALE_SECS && (!h.is_local() || pid_alive(h.pid))
    })
}

pub enum Acquire {
    /// We hold the lock; `stale` is the pid of a dead holder we took over from.
    Held(RunLock, Option<u32>),
    /// A live process holds it.
    Busy(Option<Holder>),
}

pub struct RunLock {
    path: PathBuf,
    file: Arc<File>,
    stop: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
}

pub fn lock_path(run_dir: &Path) -> PathBuf {
    run_dir.join("lock")
}

/// Reads the holder recorded in the lock file, if any. Never takes the lock, so `status`
/// can't make a concurrent `resume` think the run is busy.
pub fn read_holder(run_dir: &Path) -> Option<Holder> {
    let text = std::fs::read_to_string(lock_path(run_dir)).ok()?;
    parse_holder(&text)
}

fn parse_holder(text: &str) -> Option<Holder> {
    let mut parts = text.split_whitespace();
    let pid = parts.next()?.parse().ok()?;
    let heartbeat = parts.next()?.parse().ok()?;
    let host = parts.next().map(str::to_string);
    Some(Holder {
        pid,
        heartbeat,
        host,
    })
}

/// Whether a process with this pid exists (Linux /proc).
pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

pub fn acquire(run_dir: &Path) -> Result<Acquire> {
    let path = lock_path(run_dir);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening lock {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Ok(Acquire::Busy(parse_holder(&text)));
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let stale = parse_holder(&text).map(|h| h.pid);
    let file = Arc::new(file);
    write_heartbeat(&file)?;
    let stop = Arc::new(AtomicBool::new(false));
    let heartbeat = {
        let file = Arc::clone(&file);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut ticks = 0u64;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                ticks += 1;
                if ticks.is_multiple_of(HEARTBEAT_SECS * 5) {
                    let _ = write_heartbeat(&file);
                }
            }
        })
    };
    Ok(Acquire::Held(
        RunLock {
            path,
            file,
            stop,
            heartbeat: Some(heartbeat),
        },
        stale,
    ))
}

fn write_heartbeat(file: &File) -> Result<()> {
    let mut f = file;
    f.set_len(0)?;
    f.seek(SeekFrom::Start(0))?;
    writeln!(f, "{} {:.3} {}", std::process::id(), now(), hostname())?;
    f.sync_data()?;
    Ok(())
}

impl RunLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        // A clean exit leaves no pid behind, so the next holder sees no stale lock.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_is_busy_and_release_frees() {
        let dir = tempfile::tempdir().unwrap();
        let first = match acquire(dir.path()).unwrap() {
            Acquire::Held(l, stale) => {
                assert_eq!(stale, None);
                l
            }
            Acquire::Busy(_) => panic!("fresh lock must be free"),
        };
        match acquire(dir.path()).unwrap() {
            Acquire::Busy(Some(h)) => assert_eq!(h.pid, std::process::id()),
            _ => panic!("second acquire must be busy"),
        }
        drop(first);
        assert!(matches!(
            acquire(dir.path()).unwrap(),
            Acquire::Held(_, None)
        ));
    }

    #[test]
    fn pid_left_behind_is_reported_as_stale() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(lock_path(dir.path()), "999999 1.0\n").unwrap();
        match acquire(dir.path()).unwrap() {
            Acquire::Held(_, stale) => assert_eq!(stale, Some(999999)),
            Acquire::Busy(_) => panic!("unlocked file must be acquirable"),
        }
    }
}

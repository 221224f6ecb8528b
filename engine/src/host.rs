//! Where and when this process runs: the machine's name and the wall clock, for journal
//! lines, lock files and temporary file names on a shared filesystem.

use std::time::{SystemTime, UNIX_EPOCH};

/// This machine's name (Linux), for lock files and temporary file names on a shared
/// filesystem.
pub fn hostname() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
            .unwrap_or_else(|| "unknown-host".into())
    })
}

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

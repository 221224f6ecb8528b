//! Progress for people and for cron: a bar on a terminal, timestamped log lines otherwise.
//! Log verbosity follows `RUST_LOG` (default `info`).

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

/// Installs the tracing subscriber: timestamped lines on stderr. The SVG renderer's
/// warnings (a one-point chart line it skips) are noise to a user, so only its errors show.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,usvg=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogSink)
        // Colour codes only for people; cron logs stay plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// stderr for the log, where a line that cannot be written is dropped: a closed pipe
/// (`hhnas-pipe run 2>&1 | head`) or a full disk under `>> log 2>&1` must not end a run.
/// (tracing-subscriber reports a failed write with `eprintln!`, which panics when stderr
/// is what failed.)
struct LogSink;

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// Iteration progress of one run.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(total_iterations: u64) -> Self {
        // indicatif draws on stderr, so that is the stream that must be a terminal.
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total_iterations);
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} iterations  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        Progress { bar }
    }

    /// A status line: the bar's message on a terminal, a log line otherwise.
    pub fn message(&self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(msg.to_string()),
            None => tracing::info!("{msg}"),
        }
    }

    /// A line that stays (completed stages); printed above the bar on a terminal.
    pub fn line(&self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.println(msg),
            None => tracing::info!("{msg}"),
        }
    }

    pub fn set_position(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

//! The `hhnas-pipe` command line.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use hhnas_engine::errln;
use hhnas_engine::error::Outcome;
use hhnas_engine::error::{exit_code, render, EXIT_FAILURE};
use hhnas_engine::launch::Executor;
use hhnas_engine::progress::init_logging;
use hhnas_pipe::commands;
use hhnas_pipe::config::DeviceName;
use hhnas_pipe::run;

#[derive(Parser)]
#[command(
    name = "hhnas-pipe",
    version,
    about = "HHNAS-AM neural architecture search as a cached, resumable pipeline",
    after_help = "Exit codes: 0 finished, nothing to do or already running elsewhere; \
                  2 bad input or config; 1 any other failure."
)]
struct Cli {
    /// Cache directory (store and runs). Default: $HHNAS_CACHE or ./cache.
    #[arg(long, global = true, env = "HHNAS_CACHE", default_value = "cache")]
    cache_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ConfigArgs {
    /// Configuration file. Default: ./pipeline.toml, else the embedded default.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Profile from the config file (demo, paper, cpu-pretrained, ...).
    #[arg(long)]
    profile: Option<String>,
    /// Override a key, e.g. --set search.strategy=random (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Start a new run (one per seed with --seeds) and run it to the end.
    Run {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Independent experiments: one run per seed, e.g. --seeds 0,1,2,3.
        #[arg(long, value_delimiter = ',')]
        seeds: Vec<u64>,
        /// Run the seeds side by side, one process per device, e.g. --devices
        /// cuda:0,cuda:1 (seed i on device i mod n; "cpu,cpu" for two CPU processes).
        #[arg(long, value_delimiter = ',')]
        devices: Vec<String>,
        /// "local" (this machine) or "slurm" (one sbatch array task per seed, with the
        /// [slurm] section of the config; each task runs `resume RUN`).
        #[arg(long, default_value = "local")]
        executor: String,
    },
    /// Stop a run: cancel its Slurm task, or signal the local process working on it.
    /// Finished work stays in the cache; `resume` continues.
    Cancel { run: String },
    /// Continue the newest unfinished run (or RUN) from its frozen config.
    Resume { run: Option<String> },
    /// Show a run's state, iterations, best candidate and ETA.
    Status {
        run: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// List every run, one line each.
        #[arg(long)]
        all: bool,
    },
    /// Remove store entries that no run journal references.
    Gc {
        #[arg(long)]
        dry_run: bool,
    },
    /// Print class and split counts of the configured dataset.
    DataStats {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Also write the test split's questions to FILE, in the format `eval --input`
        /// reads (Spider: a JSON list of {db_id, question}; a labelled set: JSONL of its
        /// text and label fields), e.g. to reword them for a robustness check.
        #[arg(long, value_name = "FILE")]
        write_test: Option<PathBuf>,
    },
    /// Download Spider (Spider-Syn's copies at a pinned commit) and verify checksums.
    FetchData {
        /// Destination directory. Default: [data] spider_dir of the config.
        #[arg(long)]
        dest: Option<PathBuf>,
        /// Base URL of a mirror. Default: $HHNAS_SPIDER_BASE_URL, else Spider-Syn's copies at
        /// a pinned commit (`run` fetches from there too when the Spider directory is missing).
        #[arg(long)]
        base_url: Option<String>,
    },
    /// Test accuracy of a run's best (or a given) candidate, or accuracy on a question file.
    Eval {
        run: String,
        /// Train key (as in `status --json`) of the candidate; default the best.
        #[arg(long)]
        candidate: Option<String>,
        /// A Spider-format question file to evaluate instead of the test split.
        #[arg(long)]
        input: Option<PathBuf>,
    },
    /// Top-5 classes for a question from a run's best model.
    Predict {
        run: String,
        question: String,
        #[arg(long, default_value_t = 5)]
        top: usize,
    },
    /// Write Table 3, accuracy curves and P(s) plots for one or more runs.
    Report {
        runs: Vec<String>,
        /// Output directory. Default: the first run's report/ folder.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// The message of the last panic, printed only if it reaches `main`.
static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn main() -> ExitCode {
    // No panic reaches the user as a backtrace. The hook only records the message: a
    // panic that a stage catches and turns into an error (CUDA start-up) stays silent,
    // and one that reaches main is reported plainly with exit code 1.
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some(info.to_string());
        }
    }));
    init_logging();
    let cli = Cli::parse();
    let result = std::panic::catch_unwind(move || dispatch(cli));
    match result {
        Ok(Ok(outcome)) => ExitCode::from(outcome.exit_code() as u8),
        Ok(Err(err)) => {
            errln!("hhnas-pipe: error: {}", render(&err));
            ExitCode::from(exit_code(&err) as u8)
        }
        Err(_) => {
            let msg = LAST_PANIC
                .lock()
                .ok()
                .and_then(|mut m| m.take())
                .unwrap_or_else(|| "unknown panic".into());
            errln!(
                "hhnas-pipe: internal error: {msg}\nFinished work is safe in the cache; \
                 `hhnas-pipe resume` continues. Please report this."
            );
            ExitCode::from(EXIT_FAILURE as u8)
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<Outcome> {
    let cache = cli.cache_dir;
    match cli.command {
        Command::Run {
            cfg,
            seeds,
            devices,
            executor,
        } => run::cmd_run(
            &cache,
            cfg.config.as_deref(),
            cfg.profile.as_deref(),
            &cfg.sets,
            &seeds,
            &Executor::from_args(&executor, &devices, |d| DeviceName::try_from(d.to_string()))?,
        ),
        Command::Cancel { run } => commands::cmd_cancel(&cache, &run),
        Command::Resume { run } => run::cmd_resume(&cache, run.as_deref()),
        Command::Status { run, json, all } => {
            commands::cmd_status(&cache, run.as_deref(), json, all)
        }
        Command::Gc { dry_run } => commands::cmd_gc(&cache, dry_run),
        Command::DataStats { cfg, write_test } => commands::cmd_data_stats(
            cfg.config.as_deref(),
            cfg.profile.as_deref(),
            &cfg.sets,
            write_test.as_deref(),
        ),
        Command::FetchData { dest, base_url } => {
            commands::cmd_fetch_data(dest.as_deref(), base_url.as_deref())
        }
        Command::Eval {
            run,
            candidate,
            input,
        } => commands::cmd_eval(&cache, &run, candidate.as_deref(), input.as_deref()),
        Command::Predict { run, question, top } => {
            commands::cmd_predict(&cache, &run, &question, top)
        }
        Command::Report { runs, out } => commands::cmd_report(&cache, &runs, out.as_deref()),
    }
}

//! Shared helpers of the CLI tests: a small Spider-format dataset written by the test, a
//! tiny configuration, and a way to run the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_hhnas-pipe");

/// Writes a Spider-layout dataset: 6 databases with distinct vocabularies, 40 templated
/// questions each, plus tables.json. Small enough that a tiny model trains in seconds.
pub fn write_fixture_spider(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let dbs = [
        (
            "concert_singer",
            ["singer", "concert", "stadium"],
            ["age", "capacity", "country"],
        ),
        (
            "pets_1",
            ["pet", "student", "owner"],
            ["weight", "pet_type", "major"],
        ),
        (
            "flight_2",
            ["flight", "airport", "airline"],
            ["source", "destination", "abbreviation"],
        ),
        (
            "car_1",
            ["car", "maker", "model"],
            ["horsepower", "mpg", "cylinders"],
        ),
        (
            "museum_visit",
            ["museum", "visitor", "visit"],
            ["ticket", "open_year", "staff"],
        ),
        (
            "hospital_1",
            ["physician", "patient", "nurse"],
            ["department", "procedure", "room"],
        ),
    ];
    let templates = [
        "How many {t} are there?",
        "What is the average {c} of all {t}?",
        "List the {c} of each {t}.",
        "Show the {t} with the highest {c}.",
        "Which {t} has the most {u}?",
        "Count the {u} for every {t} ordered by {c}.",
        "Find the {c} and {d} of {t} records.",
        "What are the distinct {d} values among {u}?",
    ];
    let mut rows = Vec::new();
    for (db, tables, cols) in &dbs {
        for i in 0..40 {
            let tpl = templates[i % templates.len()];
            let q = tpl
                .replace("{t}", tables[i % 3])
                .replace("{u}", tables[(i + 1) % 3])
                .replace("{c}", &cols[i % 3].replace('_', " "))
                .replace("{d}", &cols[(i + 2) % 3].replace('_', " "));
            rows.push(serde_json::json!({
                "db_id": db,
                "question": format!("{q} (variant {i})"),
                "query": "SELECT 1",
            }));
        }
    }
    std::fs::write(
        dir.join("train_spider.json"),
        serde_json::to_string_pretty(&rows).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("dev.json"), "[]").unwrap();
    let tables: Vec<serde_json::Value> = dbs
        .iter()
        .map(|(db, tables, cols)| {
            let mut column_names = vec![serde_json::json!([-1, "*"])];
            for (ti, _) in tables.iter().enumerate() {
                for c in cols.iter() {
                    column_names.push(serde_json::json!([ti, c.replace('_', " ")]));
                }
            }
            serde_json::json!({
                "db_id": db,
                "table_names": tables,
                "table_names_original": tables,
                "column_names": column_names,
                "column_names_original": column_names,
                "column_types": vec!["text"; column_names.len()],
                "primary_keys": [],
                "foreign_keys": [],
            })
        })
        .collect();
    std::fs::write(
        dir.join("tables.json"),
        serde_json::to_string_pretty(&tables).unwrap(),
    )
    .unwrap();
}

/// A tiny configuration: scratch encoder of width 16, 2 epochs, `iterations` iterations.
pub fn tiny_config(spider_dir: &Path, iterations: u64) -> String {
    format!(
        r#"
profile = "tiny"
[run]
iterations = {iterations}
seed = 7
[data]
spider_dir = "{spider}"
merge = "none"
overlap_threshold = 0.8
split_seed = 0
ratios = [0.7, 0.15, 0.15]
include_others = false
[features]
rules = "schema"
judge = "lexical"
shortlist_k = 4
lexical_true_m = 2
llm_questions_per_class = 3
llm_rule_retries = 1
[features.llm]
base_url = "http://127.0.0.1:9"
model = "none"
api_key_env = ""
timeout_secs = 5
max_concurrency = 1
max_retries = 0
backoff_ms = 10
max_requests = 0
max_tokens = 16
max_schema_chars = 500
[encoder]
source = "scratch"
hidden = 16
layers = 1
heads = 2
intermediate = 32
vocab_size = 300
max_len = 16
freeze_embeddings = false
[train]
device = "cpu"
epochs = 2
batch_size = 16
patience = 0
max_train_rows = 0
sort_by_length = true
cnn_channels = 8
[search]
strategy = "hhnas"
max_prob = 0.9
[search.initial]
llm_branch = false
rule_branch = true
learning_rate = 3e-3
criterion_num = 0
layer_size1 = 64
layer_size2 = 32
dropout_rate = 0.1
kernel_size = 3
[search.space]
layer_size1 = [32, 64, 128]
layer_size2 = [32, 64]
[profiles.tiny.run]
"#,
        spider = spider_dir.display()
    )
}

fn frozen_config(c: String) -> String {
    c.replace(
        "freeze_embeddings = false",
        "freeze_embeddings = false\nmode = \"frozen\"\npooling = \"mean\"\nneighbours = true",
    )
    .replace("epochs = 2\n", "epochs = 60\n")
}

/// A test workspace: a fixture dataset, a config file and a cache directory.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new(iterations: u64) -> Self {
        Self::with_config(|c| c, iterations)
    }

    /// The tiny configuration with a frozen encoder, neighbour evidence by vectors and by
    /// character n-grams, the character n-gram SVM (all three drawn from the training and
    /// validation rows) and the evidence head, as the demo: the encode and the three
    /// evidence stages, then heads only; after the search an ensemble of the candidates,
    /// refit on training + validation rows.
    /// Heads over 168 rows train in milliseconds, so the candidates get 60 epochs: long
    /// enough for kills to land mid-candidate.
    pub fn frozen(iterations: u64) -> Self {
        Self::with_config(
            |c| {
                frozen_config(c)
                    .replace(
                        "epochs = 60\n",
                        "epochs = 60\nbranch_pool = \"per-class\"\nhead = \"evidence\"\n",
                    )
                    .replace(
                        "[features.llm]",
                        "char_neighbours = true\nchar_svm = true\nevidence_bank = \"train+valid\"\n[features.llm]",
                    )
                    .replace(
                        "[profiles.tiny.run]",
                        "[ensemble]\nenabled = true\nrounds = 5\nrefit = true\n[profiles.tiny.run]",
                    )
            },
            iterations,
        )
    }

    /// [`Self::frozen`] with cross-fitted candidates (`train.bag_folds = 3`) and without
    /// the refit, which cross-fitting excludes.
    pub fn frozen_bagged(iterations: u64) -> Self {
        let ws = Self::frozen(iterations);
        let config = ws
            .config_text()
            .replace("refit = true", "refit = false")
            .replace(
                "head = \"evidence\"\n",
                "head = \"evidence\"\nbag_folds = 3\n",
            );
        assert!(config.contains("bag_folds = 3"));
        std::fs::write(ws.config(), config).unwrap();
        ws
    }

    /// The frozen configuration with the SPEC's dense head and vector neighbours only (no
    /// key a release before the evidence head would refuse).
    pub fn frozen_dense(iterations: u64) -> Self {
        Self::with_config(frozen_config, iterations)
    }

    fn with_config(edit: impl Fn(String) -> String, iterations: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_fixture_spider(&dir.path().join("spider"));
        std::fs::write(
            dir.path().join("pipeline.toml"),
            edit(tiny_config(&dir.path().join("spider"), iterations)),
        )
        .unwrap();
        Workspace { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cache(&self) -> PathBuf {
        self.path().join("cache")
    }

    pub fn config(&self) -> PathBuf {
        self.path().join("pipeline.toml")
    }

    pub fn config_text(&self) -> String {
        std::fs::read_to_string(self.config()).unwrap()
    }

    /// The command with cache and working directory set; HHNAS_SPIDER_DIR cleared so the
    /// config decides.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.path())
            .env_remove("HHNAS_SPIDER_DIR")
            .env_remove("HHNAS_CACHE")
            .env("RUST_LOG", "warn")
            .arg("--cache-dir")
            .arg(self.cache())
            .args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// `run` on the workspace's config with `--set` overrides (`key=value` each).
    pub fn run_with(&self, sets: &[&str]) -> Output {
        self.run_cmd(sets).output().unwrap()
    }

    /// The `run` command on the workspace's config with `--set` overrides, not started.
    pub fn run_cmd(&self, sets: &[&str]) -> Command {
        let config = self.config();
        let mut args = vec!["run", "--config", config.to_str().unwrap()];
        for s in sets {
            args.extend(["--set", s]);
        }
        self.cmd(&args)
    }

    /// The only run directory.
    pub fn run_dir(&self) -> PathBuf {
        let mut runs: Vec<PathBuf> = std::fs::read_dir(self.cache().join("runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("meta.json").is_file())
            .collect();
        runs.sort();
        runs.pop().expect("a run directory")
    }

    /// Id of the newest run (its directory name).
    pub fn run_id(&self) -> String {
        self.run_dir()
            .file_name()
            .expect("run directory name")
            .to_string_lossy()
            .to_string()
    }

    pub fn journal_lines(&self) -> Vec<serde_json::Value> {
        self.journal_lines_of(&self.run_id())
    }

    /// The journal of run `id`, one JSON value per line.
    pub fn journal_lines_of(&self, id: &str) -> Vec<serde_json::Value> {
        let path = self.cache().join("runs").join(id).join("journal.jsonl");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The stage records of a journal with timing fields removed, keyed by (stage, iteration):
/// what must be equal between an interrupted and an uninterrupted run.
pub fn comparable(
    journal: &[serde_json::Value],
) -> Vec<(String, Option<u64>, String, serde_json::Value)> {
    let mut out: Vec<_> = journal
        .iter()
        .filter(|e| e["event"] == "stage")
        .map(|e| {
            let mut m = e["metrics"].clone();
            if let Some(obj) = m.as_object_mut() {
                obj.remove("compute_secs");
                obj.remove("examples_per_sec");
                obj.remove("epoch_secs");
            }
            (
                e["stage"].as_str().unwrap().to_string(),
                e["iteration"].as_u64(),
                e["key"].as_str().unwrap().to_string(),
                m,
            )
        })
        .collect();
    out.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    out.dedup();
    out
}

/// A run directory is in place (created atomically, with its meta.json).
pub fn run_exists(ws: &Workspace) -> bool {
    std::fs::read_dir(ws.cache().join("runs"))
        .map(|d| d.flatten().any(|e| e.path().join("meta.json").is_file()))
        .unwrap_or(false)
}

pub fn stage_lines(ws: &Workspace) -> usize {
    if !run_exists(ws) {
        return 0;
    }
    ws.journal_lines()
        .iter()
        .filter(|e| e["event"] == "stage")
        .count()
}

/// Starts `run`, waits until the journal holds `after` stage lines (plus `delay`), then
/// SIGKILLs it. Returns whether it was killed before finishing.
pub fn run_and_kill(ws: &Workspace, args: &[&str], after: usize, delay: Duration) -> bool {
    let mut child = ws
        .cmd(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(_status) = child.try_wait().unwrap() {
            return false;
        }
        if run_exists(ws) && stage_lines(ws) >= after {
            break;
        }
        assert!(Instant::now() < deadline, "run made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(delay);
    let killed = child.try_wait().unwrap().is_none();
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    killed
}

/// Starts `run` on the workspace's config with the `--set` overrides `sets`, and SIGKILLs
/// it once the run's `training.json` satisfies `accept` (waiting up to two minutes): a
/// candidate is then mid-training. Returns that file's path.
pub fn run_killed_mid_training(
    ws: &Workspace,
    sets: &[&str],
    accept: impl Fn(&serde_json::Value) -> bool,
) -> PathBuf {
    let mut child = ws
        .run_cmd(sets)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let training = loop {
        let found = std::fs::read_dir(ws.cache().join("runs"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path().join("training.json"))
            .filter(|p| {
                std::fs::read(p)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .is_some_and(|t| accept(&t))
            });
        if let Some(p) = found {
            break p;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no epoch as awaited finished"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    training
}

/// `HHNAS_SPIDER_DIR` as the test process sees it, a relative value taken from the
/// repository root (the README runs the suite from there; commands under test run in
/// their own temporary folders). `None` when unset.
pub fn shared_spider_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("HHNAS_SPIDER_DIR")?);
    Some(hhnas_spider::from_workspace_root(
        &dir,
        Path::new(env!("CARGO_MANIFEST_DIR")),
    ))
}

//! `pipeline.toml`: base sections plus named profiles that overlay them. The resolved
//! configuration of a run is frozen into its run directory, so a run never changes under
//! a resume even when the file does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::UserError;

mod params;
mod validate;
mod values;
pub use params::{check_device, data_params, encoder_config, train_config};
pub use values::{DataSource, DeviceName, Judge, Merge, RuleSource, SourceSpec};

/// A run directory's frozen configuration, as this binary reads it.
pub trait Frozen {
    fn config(&self) -> anyhow::Result<PipelineConfig>;
}

impl Frozen for hhnas_engine::rundir::RunDir {
    fn config(&self) -> anyhow::Result<PipelineConfig> {
        self.frozen_config()
    }
}

/// The file shipped with the project, compiled in so the tool runs with no config file.
pub const EMBEDDED: &str = include_str!("../../pipeline.toml");

/// The fully resolved configuration of one run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub run: RunSection,
    pub data: DataSection,
    pub features: FeaturesSection,
    pub encoder: EncoderSection,
    pub train: TrainSection,
    pub search: hhnas_search::SearchConfig,
    /// After the search: ensemble selection over its candidates and the refit. Absent in
    /// configs frozen before it existed: off, so those runs end as they did.
    #[serde(default)]
    pub ensemble: EnsembleSection,
    /// What each task asks Slurm for (`run --executor slurm`); absent in configs frozen
    /// before it existed, and optional: the cluster's defaults.
    #[serde(default)]
    pub slurm: hhnas_engine::slurm::SlurmSection,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Search iterations (each trains one candidate unless cached).
    pub iterations: u64,
    /// Seed of every random stream of the run (sampling, initialisation, shuffling).
    pub seed: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Where the rows come from: Spider, or a labelled text file of your own. Absent in
    /// configs frozen before it existed: Spider.
    #[serde(default)]
    pub source: DataSource,
    /// Spider directory; `HHNAS_SPIDER_DIR` overrides it.
    pub spider_dir: PathBuf,
    /// source = "labelled": a JSONL (one object per line) or CSV (header line) file.
    #[serde(default)]
    pub labelled_file: Option<PathBuf>,
    /// source = "labelled": the field / column holding the text.
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// source = "labelled": the field / column holding the label.
    #[serde(default = "default_label_field")]
    pub label_field: String,
    /// source = "labelled": an optional file of test rows in the same format; train and
    /// valid then both come from `labelled_file`.
    #[serde(default)]
    pub test_file: Option<PathBuf>,
    /// source = "labelled": an optional JSON object {label: description}, shown to the LLM
    /// judge and the LLM rule writer with the label's name.
    #[serde(default)]
    pub label_descriptions: Option<PathBuf>,
    pub merge: Merge,
    pub overlap_threshold: f64,
    /// For merge = "map": a JSON object file {db_id: class name}.
    pub map_file: Option<PathBuf>,
    pub split_seed: u64,
    pub ratios: [f64; 3],
    pub include_others: bool,
}

/// For `skip_serializing_if`: a switch added later is left out of frozen configs while
/// off, so they read as those of the release before it.
fn is_false(b: &bool) -> bool {
    !b
}

fn default_text_field() -> String {
    "text".to_string()
}

fn default_label_field() -> String {
    "label".to_string()
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FeaturesSection {
    pub rules: RuleSource,
    pub judge: Judge,
    /// Classes shortlisted by BM25 per question.
    pub shortlist_k: usize,
    /// For the lexical judge: how many of the shortlist count as true.
    pub lexical_true_m: usize,
    /// For llm rules: training questions shown per class.
    pub llm_questions_per_class: usize,
    /// For llm rules: re-asks of an invalid answer before falling back to schema rules.
    pub llm_rule_retries: u32,
    /// Score a training question without itself in its class's BM25 document (the
    /// shortlist and the lexical judge). Off only for the ablation; absent in configs
    /// frozen before it existed, which did not leave the row out.
    #[serde(default)]
    pub leave_one_out: bool,
    /// Lexical judge: 0 = true/false for the top `lexical_true_m`; N > 0 = every
    /// shortlisted class graded 1..=N by its BM25 score. Absent in older configs: 0.
    #[serde(default)]
    pub lexical_levels: u8,
    /// Frozen mode: the head also reads each question's character n-gram TF-IDF cosine
    /// to the nearest training question of every class (the `char_neighbours` node).
    /// Absent in configs frozen before it existed: off, as they ran.
    #[serde(default)]
    pub char_neighbours: bool,
    /// Frozen mode: the head also reads each question's decision values of a one-vs-rest
    /// linear SVM over character 2-5-gram TF-IDF, cross-fitted for training rows (the
    /// `char_svm` node). Absent in configs frozen before it existed: off, as they ran.
    #[serde(default)]
    pub char_svm: bool,
    /// Frozen mode: the head also reads, for every class, the share of the question's
    /// content words found among the class's schema words and the cosine of its word
    /// TF-IDF to them (the `schema_share` and `schema_cosine` nodes). Absent in configs
    /// frozen before it existed, and left out of frozen configs when off: off, as they ran.
    #[serde(default, skip_serializing_if = "is_false")]
    pub schema_evidence: bool,
    /// Frozen mode: the head also reads, for every class, how close in meaning the
    /// question's words are to the class's schema words (each word's encoder cosine to
    /// the nearest one; the `schema_semantic` node), so a synonym of a table's name
    /// counts. Not lexical: `train.lexical_dropout` leaves it in view. Absent in configs
    /// frozen before it existed, and left out of frozen configs when off: off, as they ran.
    #[serde(default, skip_serializing_if = "is_false")]
    pub schema_semantic: bool,
    /// Frozen mode, Spider data: the head also reads, for every class, the probability
    /// that the class's bank holds the question's paraphrase partner (the other wording
    /// of its SQL; the `partner` node). Absent in configs frozen before it existed, and
    /// left out of frozen configs when off: off, as they ran.
    #[serde(default, skip_serializing_if = "is_false")]
    pub partner_evidence: bool,
    /// The labelled rows the evidence nodes (neighbours, char_neighbours, char_svm) draw
    /// on, and whose questions schema_cosine fits its idf on. Absent in configs frozen
    /// before it existed: the training rows, as they ran.
    #[serde(default)]
    pub evidence_bank: EvidenceBank,
    pub llm: LlmSection,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LlmSection {
    pub base_url: String,
    pub model: String,
    /// Name of the environment variable holding the API key ("" = none).
    pub api_key_env: String,
    pub timeout_secs: u64,
    pub max_concurrency: usize,
    pub max_retries: u32,
    pub backoff_ms: u64,
    /// Request budget for one stage (0 = unlimited).
    pub max_requests: u64,
    pub max_tokens: u32,
    /// Schemas longer than this many characters are cut in prompts.
    pub max_schema_chars: usize,
}

/// The labelled rows per-class evidence is drawn from. Every row that is itself in the
/// bank leaves itself out (the SVM: gets values from a model fitted without it), so
/// training, validation and test rows all see evidence from rows other than their own.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum EvidenceBank {
    /// The training rows only.
    #[default]
    #[serde(rename = "train")]
    Train,
    /// The training and validation rows: the head still trains on training rows only
    /// and candidates are still chosen on validation accuracy; the test rows stay out.
    #[serde(rename = "train+valid")]
    TrainValid,
}

/// Whether the encoder trains with every candidate or runs once.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EncoderMode {
    /// The encoder is trained with each candidate (the paper's setting, for a GPU).
    #[default]
    Finetune,
    /// The encode stage runs the encoder once over every question; candidates train only
    /// their branches and head over its cached vectors (seconds each on a CPU).
    Frozen,
    /// The `warm` node fine-tunes the encoder once with a Model 1 head (`[encoder.warm]`),
    /// then the encode stage serves the tuned encoder's vectors frozen, as in `frozen`.
    Warm,
}

impl EncoderMode {
    /// Whether candidates train heads over the encode stage's vectors (frozen or warm).
    pub fn frozen_vectors(self) -> bool {
        matches!(self, EncoderMode::Frozen | EncoderMode::Warm)
    }
}

/// `[encoder.warm]`: the one fine-tuning of the encoder in `mode = "warm"`, a Model 1
/// candidate (the text-only classifier, AdamW) on the training rows, its best epoch by
/// validation accuracy kept. Its seed is its own, not the run's, so one warm stage serves
/// every seed of a study.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WarmSection {
    pub epochs: usize,
    pub learning_rate: f64,
    pub batch_size: usize,
    /// Stop after this many epochs without a better validation accuracy (0 = off).
    pub patience: usize,
    pub seed: u64,
}

impl Default for WarmSection {
    fn default() -> Self {
        WarmSection {
            epochs: 2,
            learning_rate: 5e-5,
            batch_size: 16,
            patience: 1,
            seed: 0,
        }
    }
}

impl WarmSection {
    fn is_default(&self) -> bool {
        *self == WarmSection::default()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EncoderSection {
    pub source: SourceSpec,
    /// Absent in configs frozen before it existed: fine-tuning, as they ran.
    #[serde(default)]
    pub mode: EncoderMode,
    /// Warm mode: the encoder's one fine-tuning. Absent in configs frozen before it
    /// existed, and left out of frozen configs when it is the default.
    #[serde(default, skip_serializing_if = "WarmSection::is_default")]
    pub warm: WarmSection,
    /// Frozen mode: how token states become the question's vector.
    #[serde(default)]
    pub pooling: hhnas_train::Pooling,
    /// Frozen mode: the head also reads each question's similarity to the nearest
    /// training question of every class (the `neighbours` node). Absent in configs
    /// frozen before it existed: off, as they ran.
    #[serde(default)]
    pub neighbours: bool,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab_size: usize,
    pub max_len: usize,
    pub freeze_embeddings: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    pub device: DeviceName,
    pub epochs: usize,
    pub batch_size: usize,
    /// Early stop after this many epochs without improvement (0 = off).
    pub patience: usize,
    /// Train on at most this many training rows (0 = all); for quick demos.
    pub max_train_rows: usize,
    pub sort_by_length: bool,
    pub cnn_channels: usize,
    /// Pooling of the CNN feature branches; absent in configs frozen before it existed.
    #[serde(default)]
    pub branch_pool: hhnas_train::BranchPool,
    /// The head of frozen-encoder candidates; absent in configs frozen before it existed:
    /// the SPEC's dense head, as they ran.
    #[serde(default)]
    pub head: hhnas_train::HeadKind,
    /// Share of training rows whose lexical evidence is hidden each epoch (0 = off);
    /// absent in configs frozen before it existed: off, as they ran.
    #[serde(default)]
    pub lexical_dropout: f64,
    /// Cross-fit every candidate over this many folds of the training and validation rows
    /// (0 = off, each candidate trains once); absent in configs frozen before it existed:
    /// off, as they ran.
    #[serde(default)]
    pub bag_folds: usize,
}

impl TrainSection {
    /// The number of folds candidates are cross-fitted over, when cross-fitting is on
    /// (`bag_folds` of 2 or more; 0 is off, 1 is refused by the checks).
    pub fn cross_fit_folds(&self) -> Option<usize> {
        (self.bag_folds >= 2).then_some(self.bag_folds)
    }
}

/// `[ensemble]`: what happens once the search has trained its candidates.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct EnsembleSection {
    /// Build an ensemble of the run's candidates by greedy forward selection with
    /// replacement on the validation split (the `ensemble` node).
    #[serde(default)]
    pub enabled: bool,
    /// Additions to the ensemble; the best-scoring prefix is kept.
    #[serde(default = "default_rounds")]
    pub rounds: usize,
    /// What selection maximises on the validation split: "accuracy" (ties by log loss)
    /// or "log-loss".
    #[serde(default)]
    pub metric: hhnas_ensemble::Metric,
    /// Retrain the final model's candidates on training + validation rows for the epochs
    /// selection found (the `refit` node); eval and predict then use the refit weights.
    #[serde(default)]
    pub refit: bool,
}

fn default_rounds() -> usize {
    hhnas_ensemble::SelectionParams::default().rounds
}

impl EnsembleSection {
    /// The selection's parameters, as the ensemble crate takes them.
    pub fn params(&self) -> hhnas_ensemble::SelectionParams {
        hhnas_ensemble::SelectionParams {
            rounds: self.rounds,
            metric: self.metric,
        }
    }
}

/// A config error: the file, the key and how to fix it.
pub(super) fn config_error(
    file: &str,
    key: &str,
    problem: impl std::fmt::Display,
    fix: &str,
) -> UserError {
    UserError(format!("{file}: `{key}`: {problem}. Fix: {fix}"))
}

/// Where the configuration came from, for messages and the frozen copy.
pub struct Loaded {
    pub config: PipelineConfig,
    pub profile: String,
    pub source: String,
    /// The raw file text (to tell later whether it changed).
    pub text: String,
}

/// Loads `path` (or the embedded default when `path` is None and `pipeline.toml` is
/// absent), applies `profile` (or the file's `profile`), then `--set` overrides.
pub fn load(
    path: Option<&Path>,
    profile: Option<&str>,
    sets: &[String],
) -> Result<Loaded, UserError> {
    let (text, source) = match path {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|e| {
                UserError(format!(
                    "{}: cannot read config ({e}). Fix: pass an existing file to --config",
                    p.display()
                ))
            })?,
            p.display().to_string(),
        ),
        None if Path::new("pipeline.toml").is_file() => (
            std::fs::read_to_string("pipeline.toml")
                .map_err(|e| UserError(format!("pipeline.toml: cannot read ({e})")))?,
            "pipeline.toml".to_string(),
        ),
        None => (EMBEDDED.to_string(), "embedded pipeline.toml".to_string()),
    };
    let (config, profile) = resolve(&text, &source, profile, sets)?;
    Ok(Loaded {
        config,
        profile,
        source,
        text,
    })
}

/// Parses and resolves a config text.
pub fn resolve(
    text: &str,
    source: &str,
    profile: Option<&str>,
    sets: &[String],
) -> Result<(PipelineConfig, String), UserError> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        UserError(format!(
            "{source}: not valid TOML: {e}Fix: correct the syntax"
        ))
    })?;
    let profiles = match table.remove("profiles") {
        Some(toml::Value::Table(t)) => t,
        Some(_) => {
            return Err(config_error(
                source,
                "profiles",
                "must be a table of tables",
                "write [profiles.NAME.SECTION] tables",
            ))
        }
        None => toml::Table::new(),
    };
    let default_profile = match table.remove("profile") {
        Some(toml::Value::String(s)) => Some(s),
        Some(_) => {
            return Err(config_error(
                source,
                "profile",
                "must be a string",
                "write profile = \"demo\"",
            ))
        }
        None => None,
    };
    let chosen = profile.map(str::to_string).or(default_profile);
    let mut resolved = toml::Value::Table(table);
    let name = match chosen {
        Some(name) => {
            let overlay = profiles.get(&name).ok_or_else(|| {
                let known: Vec<&String> = profiles.keys().collect();
                config_error(
                    source,
                    "profile",
                    format!("no profile named `{name}`"),
                    &format!("use one of {known:?}"),
                )
            })?;
            merge(&mut resolved, overlay);
            name
        }
        None => "base".to_string(),
    };
    for set in sets {
        apply_set(&mut resolved, set)?;
    }
    let mut config: PipelineConfig = serde_path_to_error::deserialize(resolved).map_err(|e| {
        let path = e.path().to_string();
        // The message alone: toml's Display appends the key again on a second line.
        config_error(
            source,
            &path,
            e.into_inner()
                .message()
                .split("\nin `")
                .next()
                .unwrap_or_default(),
            "see the comments in pipeline.toml for the keys and their values",
        )
    })?;
    // The partner evidence learns what marks a paraphrase from Spider's SQL, which a
    // labelled file lacks: the switch (on in the demo profile) is off there, said once.
    if config.features.partner_evidence && config.data.source != DataSource::Spider {
        config.features.partner_evidence = false;
        tracing::warn!(
            "features.partner_evidence is off for data.source = \"labelled\": it learns \
             what marks a paraphrase from the SQL of Spider's questions, which a labelled \
             file lacks"
        );
    }
    validate::validate(&config, source)?;
    Ok((config, name))
}

/// Overlays `over` onto `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Value, over: &toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// `--set section.key=value`, value parsed as TOML (bare words become strings).
fn apply_set(root: &mut toml::Value, set: &str) -> Result<(), UserError> {
    let (path, raw) = set.split_once('=').ok_or_else(|| {
        UserError(format!(
            "--set {set}: expected KEY=VALUE. Fix: e.g. --set search.strategy=random"
        ))
    })?;
    let value: toml::Value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut node = root;
    let parts: Vec<&str> = path.trim().split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let table = node.as_table_mut().ok_or_else(|| {
            UserError(format!("--set {set}: `{path}` does not name a config key"))
        })?;
        if i + 1 == parts.len() {
            table.insert(part.to_string(), value);
            return Ok(());
        }
        node = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    }
    Ok(())
}

/// A JSON object of strings named by `key` (`data.map_file`, `data.label_descriptions`):
/// `what` it holds and an `example` go into the error messages.
pub fn read_string_map(
    path: &Path,
    key: &str,
    what: &str,
    example: &str,
) -> Result<BTreeMap<String, String>, UserError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        UserError(format!(
            "{}: cannot read {what} ({e}). Fix: point {key} at a JSON object {example}",
            path.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        UserError(format!(
            "{}: not a JSON object of {what} ({e}). Fix: write {example}",
            path.display()
        ))
    })
}

//! Plain input records; the engine fills them from its journal and store.

use serde::{Deserialize, Serialize};

/// Everything one report shows: one or more search runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ReportInput {
    /// Runs, in the order they are shown.
    pub runs: Vec<RunRecord>,
}

/// One search run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct RunRecord {
    /// Run id (as in `cache/runs/<run-id>`).
    pub run_id: String,
    /// Search strategy, e.g. `hhnas-am`, `random`.
    pub strategy: String,
    /// Run seed.
    pub seed: u64,
    /// Evaluated candidates in iteration order.
    pub iterations: Vec<IterationRecord>,
    /// Best candidate by validation accuracy, with its test accuracy when computed.
    pub best: Option<BestCandidate>,
    /// Names of the mutable parameters, matching `IterationRecord::mutation_probs`.
    pub mutation_probs_names: Vec<String>,
    /// Test accuracy of the simple baseline on the same split (the character n-gram SVM
    /// alone), when the run computed it: the figure the best candidate must beat.
    #[serde(default)]
    pub baseline_test_acc: Option<f64>,
    /// The model after the search (an ensemble of its candidates, refit or not), when the
    /// run built one; eval and predict use it.
    #[serde(default)]
    pub final_model: Option<FinalModel>,
    /// The run's state as `status` spells it ("running", "finished", "interrupted", ...);
    /// a running run's HTML page reloads itself.
    #[serde(default)]
    pub state: String,
    /// Iterations the run's config asks for (0: not known).
    #[serde(default)]
    pub planned_iterations: usize,
    /// Cross-fitted candidates: the number of folds. Every validation figure of the run
    /// is then out of fold over the training and validation rows.
    #[serde(default)]
    pub cross_fit_folds: Option<usize>,
}

/// The model the nodes after the search chose, beside the best single candidate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct FinalModel {
    /// What it is, in words ("ensemble of 5 candidates, refit on train+valid").
    pub kind: String,
    /// (iteration, picks) of every member; picks / their sum is its weight.
    pub members: Vec<(usize, u32)>,
    /// Validation accuracy at selection.
    pub valid_acc: f64,
    /// Test accuracy of the model in use.
    pub test_acc: f64,
    /// Test accuracy of the model as selected, before a refit (equal without one).
    pub selected_test_acc: f64,
    /// Test accuracy of the best single candidate, on the same rows.
    pub single_test_acc: f64,
    /// Whether the members were refit on training + validation rows.
    pub refit: bool,
}

/// One evaluated candidate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct IterationRecord {
    /// Iteration number (0- or 1-based, as the engine counts).
    pub iteration: usize,
    /// Model number 1-4 (SPEC §3).
    pub model: u8,
    /// Candidate parameters as (name, value) text.
    pub params: Vec<(String, String)>,
    /// Best validation accuracy of the candidate, in [0, 1]; non-finite = failed candidate.
    pub valid_acc: f64,
    /// Training wall time in seconds.
    pub wall_secs: f64,
    /// Replayed from the cache rather than trained.
    pub cached: bool,
    /// P(s) per parameter at this iteration (order of `RunRecord::mutation_probs_names`).
    pub mutation_probs: Vec<f64>,
}

/// The best candidate of a run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct BestCandidate {
    /// Iteration it was evaluated at.
    pub iteration: usize,
    /// Model number 1-4.
    pub model: u8,
    /// Its parameters.
    pub params: Vec<(String, String)>,
    /// Its validation accuracy.
    pub valid_acc: f64,
    /// Its test accuracy, when computed.
    pub test_acc: Option<f64>,
}

/// One row of the paper's Table 3 for one run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ModelSummary {
    /// Model number 1-4.
    pub model: u8,
    /// Candidates of this model evaluated (failed ones included).
    pub count: usize,
    /// Highest finite validation accuracy (NaN when none was finite).
    pub max_valid: f64,
    /// Lowest finite validation accuracy (NaN when none was finite).
    pub min_valid: f64,
    /// Iteration of the maximum (earliest on ties).
    pub iter_of_max: usize,
}

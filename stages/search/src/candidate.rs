//! Candidates, the mutable parameters and their actions (SPEC §3-4).

use serde::{Deserialize, Serialize};

/// One point of the search space: the two mutable macro bits and the six micro parameters.
///
/// p1 (the RoBERTa encoder) is fixed on by the method and therefore not stored; [`Candidate::bits`]
/// reports it as 1. Bit order (SPEC §3): p2 = `rule_branch` (CNN over rule features),
/// p3 = `llm_branch` (CNN over LLM features), so Model = 2*p2 + p3 + 1 gives the paper's
/// numbering: Model 2 adds the LLM-feature CNN, Model 3 the rule-feature CNN.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Candidate {
    /// p3: CNN branch over LLM-judge features (Model 2's branch).
    pub llm_branch: bool,
    /// p2: CNN branch over rule features (Model 3's branch).
    pub rule_branch: bool,
    /// Learning rate (the real value, e.g. 1e-4; the search works on its log10).
    pub learning_rate: f64,
    /// Optimizer: 0 AdamW, 1 SGD with momentum 0.9, 2 RMSProp.
    pub criterion_num: u8,
    /// Width of the first head layer.
    pub layer_size1: usize,
    /// Width of the second head layer.
    pub layer_size2: usize,
    /// Dropout after each hidden head layer.
    pub dropout_rate: f64,
    /// Conv1d kernel size of the CNN branches (unused, and kept as is, by Model 1).
    pub kernel_size: usize,
}

impl Candidate {
    /// The paper's macro vector a = [p1, p2, p3] = [1, rule_branch, llm_branch]
    /// (p1 = RoBERTa, always on).
    pub fn bits(&self) -> [u8; 3] {
        [1, u8::from(self.rule_branch), u8::from(self.llm_branch)]
    }

    /// Restricted (2-bit) ArchIndex = 2*p2 + p3 = 2*rule_branch + llm_branch, in 0..=3.
    pub fn arch_index(&self) -> u8 {
        2 * u8::from(self.rule_branch) + u8::from(self.llm_branch)
    }

    /// Model number 1..=4: 1 RoBERTa alone, 2 + LLM-feature CNN, 3 + rule-feature CNN, 4 both.
    pub fn model_number(&self) -> u8 {
        self.arch_index() + 1
    }

    /// Whether `p` is one of this candidate's own mutable parameters (SPEC §3: "each model
    /// mutates only its own parameters"). The macro bits and the five head / optimizer
    /// parameters belong to every model; `kernel_size` belongs to the CNN branches, so only
    /// to Models 2-4. A parameter a model does not have is neither mutated nor credited in the
    /// Q-table while the candidate is that model; its stored value is kept unchanged.
    pub fn has_param(&self, p: Param) -> bool {
        match p {
            Param::KernelSize => self.llm_branch || self.rule_branch,
            _ => true,
        }
    }

    /// Human-readable name of the optimizer selected by `criterion_num`.
    pub fn criterion_name(&self) -> &'static str {
        criterion_name(self.criterion_num)
    }
}

/// Optimizer name for a criterion number (SPEC §4).
pub fn criterion_name(criterion_num: u8) -> &'static str {
    match criterion_num {
        0 => "AdamW",
        1 => "SGD(momentum 0.9)",
        2 => "RMSProp",
        _ => "unknown",
    }
}

/// The paper's full 3-bit ArchIndex: sum_{i=1..3} p_i * 2^(3-i) (bits are read as 0 or non-0).
pub fn arch_index_3bit(bits: [u8; 3]) -> u32 {
    bits.iter()
        .enumerate()
        .map(|(i, &p)| u32::from(p != 0) << (2 - i))
        .sum()
}

/// The paper's restricted ArchIndex with p1 fixed: sum_{i=2..3} p_i * 2^(3-i), in 0..=3.
pub fn arch_index_restricted(bits: [u8; 3]) -> u32 {
    bits.iter()
        .enumerate()
        .skip(1)
        .map(|(i, &p)| u32::from(p != 0) << (2 - i))
        .sum()
}

/// How a parameter mutates.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A macro bit: the only action is a flip.
    Bit,
    /// A grid parameter: one grid step up or down, stopping at the ends.
    Discrete,
    /// A real parameter: mean +/- |N(0, var)|, clipped to its range.
    Continuous,
}

/// The eight mutable parameters, in the fixed order used for Q-tables, tie breaks and reports.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Param {
    /// p3, the LLM-feature CNN branch.
    LlmBranch,
    /// p2, the rule-feature CNN branch.
    RuleBranch,
    /// Learning rate (searched in log10 space).
    LearningRate,
    /// Optimizer index.
    CriterionNum,
    /// First head layer width.
    LayerSize1,
    /// Second head layer width.
    LayerSize2,
    /// Dropout rate.
    DropoutRate,
    /// CNN kernel size.
    KernelSize,
}

impl Param {
    /// All parameters in their canonical order.
    pub const ALL: [Param; 8] = [
        Param::LlmBranch,
        Param::RuleBranch,
        Param::LearningRate,
        Param::CriterionNum,
        Param::LayerSize1,
        Param::LayerSize2,
        Param::DropoutRate,
        Param::KernelSize,
    ];

    /// The continuous parameters, which carry a mean and a variance.
    pub const CONTINUOUS: [Param; 2] = [Param::LearningRate, Param::DropoutRate];

    /// Stable snake_case name (also the serde name); used in seeds, so never change it.
    pub fn name(self) -> &'static str {
        match self {
            Param::LlmBranch => "llm_branch",
            Param::RuleBranch => "rule_branch",
            Param::LearningRate => "learning_rate",
            Param::CriterionNum => "criterion_num",
            Param::LayerSize1 => "layer_size1",
            Param::LayerSize2 => "layer_size2",
            Param::DropoutRate => "dropout_rate",
            Param::KernelSize => "kernel_size",
        }
    }

    /// Inverse of [`Param::name`].
    pub fn from_name(name: &str) -> Option<Param> {
        Param::ALL.into_iter().find(|p| p.name() == name)
    }

    /// How this parameter mutates.
    pub fn kind(self) -> ParamKind {
        match self {
            Param::LlmBranch | Param::RuleBranch => ParamKind::Bit,
            Param::LearningRate | Param::DropoutRate => ParamKind::Continuous,
            Param::CriterionNum | Param::LayerSize1 | Param::LayerSize2 | Param::KernelSize => {
                ParamKind::Discrete
            }
        }
    }
}

impl std::fmt::Display for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A mutation action (SPEC §5): bits flip, other parameters go up (+) or down (-).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Increase.
    Plus,
    /// Decrease.
    Minus,
    /// Flip a macro bit.
    Flip,
}

impl Action {
    /// "+", "-" or "flip".
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Plus => "+",
            Action::Minus => "-",
            Action::Flip => "flip",
        }
    }
}

/// Display string of one parameter of a candidate (used in mutations and reports).
pub fn display_value(c: &Candidate, param: Param) -> String {
    let on_off = |b: bool| if b { "on" } else { "off" }.to_string();
    match param {
        Param::LlmBranch => on_off(c.llm_branch),
        Param::RuleBranch => on_off(c.rule_branch),
        Param::LearningRate => format!("{:.3e}", c.learning_rate),
        Param::CriterionNum => format!("{} ({})", c.criterion_num, c.criterion_name()),
        Param::LayerSize1 => c.layer_size1.to_string(),
        Param::LayerSize2 => c.layer_size2.to_string(),
        Param::DropoutRate => format!("{:.4}", c.dropout_rate),
        Param::KernelSize => c.kernel_size.to_string(),
    }
}

/// Parameter name -> display value for status and report tables: first `model` (1-4 with its
/// composition), then the eight parameters in [`Param::ALL`] order.
pub fn describe(c: &Candidate) -> Vec<(String, String)> {
    let model = match c.model_number() {
        1 => "1 (RoBERTa)",
        2 => "2 (RoBERTa + LLM-feature CNN)",
        3 => "3 (RoBERTa + rule-feature CNN)",
        _ => "4 (RoBERTa + LLM-feature CNN + rule-feature CNN)",
    };
    let mut out = vec![("model".to_string(), model.to_string())];
    out.extend(
        Param::ALL
            .into_iter()
            .map(|p| (p.name().to_string(), display_value(c, p))),
    );
    out
}

/// One applied mutation, with display values before and after.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Mutation {
    /// The parameter that changed.
    pub param: Param,
    /// The action taken (Flip for bits).
    pub action: Action,
    /// Display value in the parent.
    pub from: String,
    /// Display value in the proposed candidate.
    pub to: String,
}

/// What `sample` proposes for one iteration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Proposal {
    /// The iteration this proposal was sampled for.
    pub iteration: u64,
    /// The candidate to train.
    pub candidate: Candidate,
    /// The candidate it was mutated from (None for iteration 0, random and fixed proposals).
    pub parent: Option<Candidate>,
    /// The mutations that turn `parent` into `candidate`; only ones that changed a value.
    pub mutations: Vec<Mutation>,
}

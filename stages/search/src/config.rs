//! Search configuration, its defaults (SPEC §4-5) and validation.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::candidate::Candidate;

/// A configuration error; `field` is the path of the offending field inside the search
/// configuration (e.g. `space.layer_size1`, `initial.kernel_size`).
#[derive(Debug, Error, Clone, PartialEq)]
#[error("search config field `{field}`: {problem}; fix: {fix}")]
pub struct ConfigError {
    /// Path of the field inside the search configuration.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

fn err(field: &str, problem: impl Into<String>, fix: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_string(),
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// Which search strategy proposes candidates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// HHNAS-AM: Q-table adaptive mutation of the current parent (SPEC §5).
    #[default]
    Hhnas,
    /// Uniform random sampling over the space (iteration 0 still evaluates `initial`).
    Random,
    /// Regularized (aging) evolution: random until the population is full, then tournament
    /// selection of `sample_size` members, mutation of one random parameter of the winner
    /// (one its model has: never `kernel_size` of a Model 1 winner), and removal of the
    /// oldest member.
    Evolution {
        /// Number of members kept alive.
        population: usize,
        /// Tournament size (1..=population).
        sample_size: usize,
    },
    /// Train `initial` only: every call to `sample` returns `initial`; the engine runs a single
    /// iteration (a baseline / smoke-test mode).
    Fixed,
    /// No search at the search's budget: every iteration trains `initial` again, each with
    /// a training seed of its own (the engine derives it from the run seed and the
    /// iteration), so an ensemble of the run is an ensemble of seeds of one candidate.
    Repeat,
}

/// How the variance of a continuous parameter is updated (paper, "Variance Update"; SPEC §5).
/// Configuration spellings: `"distance"`, `"distance-literal"` (also `"distance_literal"`),
/// `"moment"`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum VarianceRule {
    /// Distance-based (heuristic) rule as the paper's prose describes it, with z = (s - mu) /
    /// sigma: outside (mu - sigma, mu + sigma) var += k (|z| - 1)(p - p_bar); inside
    /// var -= k (1 - |z|)(p - p_bar), so a good sample near the mean narrows the search.
    #[default]
    Distance,
    /// The distance rule's formulas exactly as the paper prints them (case 2 adds
    /// k (1 - |z|)(p - p_bar), widening on a good sample near the mean); for ablation.
    #[serde(rename = "distance-literal", alias = "distance_literal")]
    DistanceLiteral,
    /// Statistical moment rule: var += k ((s - mu)^2 - var) / var * (p - p_bar).
    Moment,
}

/// What a mutation earns in the Q-table and the continuous moments (SPEC §5; our reading in
/// docs/SEARCH.md). Configuration spellings: `"difference"`, `{ rank = { window = 10 } }`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Reward {
    /// The paper: Q(s,a) += alpha (r - r_parent) and the moments move with (p - p_bar), in
    /// accuracy units. With accuracy differences of a few tenths of a point the policy
    /// hardly moves (P(s) stays within 0.04 of max_prob in 30 iterations).
    #[default]
    Difference,
    /// Scale-free: r - r_parent is replaced by its mid-rank among the run's last `window`
    /// improvements over a parent, mapped to [-1, 1] (+1: better than every recent one), and
    /// p - p_bar by the mid-rank of p among the last `window` accuracies. A mutation that
    /// helps more than the recent ones raises its Q by up to alpha, whatever the accuracy
    /// scale of the task; a diverged candidate costs no more than the worst recent one.
    Rank {
        /// How many recent evaluations each rank is taken among (>= 1).
        window: usize,
    },
}

impl Reward {
    /// The paper's rule, which keys spell as before this option existed.
    pub fn is_difference(&self) -> bool {
        *self == Reward::Difference
    }
}

/// SelectFeatures: which candidate becomes the next parent.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    /// The mutated candidate becomes the parent if its accuracy >= the parent's.
    #[default]
    Greedy,
    /// The mutated candidate always becomes the parent.
    Always,
}

/// Ranges and grids of the micro parameters (SPEC §4).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SearchSpace {
    /// Learning rate range as (log10 low, log10 high).
    pub lr_log10: (f64, f64),
    /// Number of optimizers: criterion_num ranges over 0..criteria (at most 3).
    pub criteria: u8,
    /// Grid of layer_size1 values, strictly increasing.
    pub layer_size1: Vec<usize>,
    /// Grid of layer_size2 values, strictly increasing.
    pub layer_size2: Vec<usize>,
    /// Dropout range (low, high) within [0, 1).
    pub dropout: (f64, f64),
    /// Grid of kernel sizes, strictly increasing.
    pub kernel_size: Vec<usize>,
}

impl Default for SearchSpace {
    fn default() -> Self {
        SearchSpace {
            lr_log10: (-6.0, -2.0),
            criteria: 3,
            layer_size1: vec![64, 128, 256, 512, 768, 1024],
            layer_size2: vec![32, 64, 128, 256, 512],
            dropout: (0.0, 0.7),
            kernel_size: vec![1, 3, 5, 7, 9],
        }
    }
}

/// Step statistics of one continuous parameter, all in that parameter's search units
/// (log10 for the learning rate, the raw rate for dropout).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContinuousSetting {
    /// k in the mean rule mu += k * sign(s - mu) * (p - p_bar).
    pub k_mean: f64,
    /// k in the variance rules.
    pub k_var: f64,
    /// Variance at the start of the run.
    pub var_init: f64,
    /// Lower bound of the variance (keeps exploring).
    pub var_min: f64,
    /// Upper bound of the variance (keeps steps within a sensible size).
    pub var_max: f64,
}

/// Everything the search needs besides the state.
///
/// Defaults (our choices where the paper gives no numbers; see the field docs):
/// q_init 1.0, q_min 0.05, alpha 1.0, max_prob 0.5 (SPEC §5); learning rate in log10 units
/// k_mean 1.0, k_var 0.5, var 0.25 in [0.01, 1.0] (steps of about half a decade); dropout
/// k_mean 0.2, k_var 0.02, var 0.01 in [0.0004, 0.04] (steps of about 0.1); distance rule,
/// greedy selection; initial candidate = Model 1, lr 2e-5, AdamW, 256/128, dropout 0.1,
/// kernel 3 (a standard RoBERTa fine-tuning setting).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Search strategy.
    pub strategy: Strategy,
    /// Initial value of every Q(s, a).
    pub q_init: f64,
    /// Floor of every Q(s, a) (so no mutation probability reaches zero).
    pub q_min: f64,
    /// Q learning rate alpha in Q(s,a) += alpha * (r - r_parent).
    pub alpha: f64,
    /// Upper bound of every mutation probability, in (0, 1].
    pub max_prob: f64,
    /// Mean/variance settings of the learning rate, in log10 units.
    pub learning_rate: ContinuousSetting,
    /// Mean/variance settings of the dropout rate.
    pub dropout_rate: ContinuousSetting,
    /// Variance update rule.
    pub variance_rule: VarianceRule,
    /// SelectFeatures rule.
    pub select: Select,
    /// The candidate evaluated at iteration 0 (and the first parent).
    pub initial: Candidate,
    /// Grids and ranges.
    pub space: SearchSpace,
    /// The learning signal of the Q-table and the moments. Left out of the encoding when it
    /// is the paper's, so the keys of runs made before this option existed do not change
    /// (the config is hashed, never decoded, as bincode).
    #[serde(skip_serializing_if = "Reward::is_difference")]
    pub reward: Reward,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            strategy: Strategy::Hhnas,
            q_init: 1.0,
            q_min: 0.05,
            alpha: 1.0,
            max_prob: 0.5,
            learning_rate: ContinuousSetting {
                k_mean: 1.0,
                k_var: 0.5,
                var_init: 0.25,
                var_min: 0.01,
                var_max: 1.0,
            },
            dropout_rate: ContinuousSetting {
                k_mean: 0.2,
                k_var: 0.02,
                var_init: 0.01,
                var_min: 0.0004,
                var_max: 0.04,
            },
            variance_rule: VarianceRule::Distance,
            select: Select::Greedy,
            initial: Candidate {
                llm_branch: false,
                rule_branch: false,
                learning_rate: 2e-5,
                criterion_num: 0,
                layer_size1: 256,
                layer_size2: 128,
                dropout_rate: 0.1,
                kernel_size: 3,
            },
            space: SearchSpace::default(),
            reward: Reward::Difference,
        }
    }
}

fn check_grid(field: &str, grid: &[usize]) -> Result<(), ConfigError> {
    if grid.is_empty() {
        return Err(err(
            field,
            "the grid is empty",
            "list at least one value, e.g. [64, 128, 256]",
        ));
    }
    if grid.contains(&0) {
        return Err(err(field, "contains 0", "use positive sizes only"));
    }
    if grid.windows(2).any(|w| w[0] >= w[1]) {
        return Err(err(
            field,
            format!("{grid:?} is not strictly increasing"),
            "sort the values ascending and remove duplicates (steps move to the neighbour)",
        ));
    }
    Ok(())
}

fn check_continuous(field: &str, s: &ContinuousSetting) -> Result<(), ConfigError> {
    let f = |name: &str| format!("{field}.{name}");
    for (name, v) in [("k_mean", s.k_mean), ("k_var", s.k_var)] {
        if !v.is_finite() || v < 0.0 {
            return Err(err(
                &f(name),
                format!("{v} is not a finite number >= 0"),
                "use a small non-negative constant such as 0.5",
            ));
        }
    }
    if !s.var_min.is_finite() || s.var_min <= 0.0 {
        return Err(err(
            &f("var_min"),
            format!("{} is not a finite number > 0", s.var_min),
            "use a small positive variance so steps never collapse to zero",
        ));
    }
    if !s.var_max.is_finite() || s.var_max < s.var_min {
        return Err(err(
            &f("var_max"),
            format!("{} is not finite and >= var_min ({})", s.var_max, s.var_min),
            "set var_max >= var_min",
        ));
    }
    if !s.var_init.is_finite() || s.var_init < s.var_min || s.var_init > s.var_max {
        return Err(err(
            &f("var_init"),
            format!(
                "{} is outside [var_min, var_max] = [{}, {}]",
                s.var_init, s.var_min, s.var_max
            ),
            "pick an initial variance between var_min and var_max",
        ));
    }
    Ok(())
}

fn check_range(field: &str, r: (f64, f64), fix: &str) -> Result<(), ConfigError> {
    if !r.0.is_finite() || !r.1.is_finite() || r.0 >= r.1 {
        return Err(err(
            field,
            format!("({}, {}) is not a finite range with low < high", r.0, r.1),
            fix,
        ));
    }
    Ok(())
}

impl SearchConfig {
    /// Checks every constant, range, grid and the initial candidate; the error names the field.
    ///
    /// `sample` and `update` never panic, but on a configuration that fails this check their
    /// results are unspecified, so the engine calls this first.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.q_init.is_finite() || self.q_init <= 0.0 {
            return Err(err(
                "q_init",
                format!("{} is not a finite number > 0", self.q_init),
                "use 1.0 (the default)",
            ));
        }
        if !self.q_min.is_finite() || self.q_min <= 0.0 {
            return Err(err(
                "q_min",
                format!("{} is not a finite number > 0", self.q_min),
                "use a small positive floor such as 0.05 so no probability reaches zero",
            ));
        }
        if self.q_min > self.q_init {
            return Err(err(
                "q_min",
                format!("{} is above q_init ({})", self.q_min, self.q_init),
                "set q_min <= q_init",
            ));
        }
        if !self.alpha.is_finite() || self.alpha < 0.0 {
            return Err(err(
                "alpha",
                format!("{} is not a finite number >= 0", self.alpha),
                "use 1.0 (the default)",
            ));
        }
        if !(self.max_prob > 0.0 && self.max_prob <= 1.0) {
            return Err(err(
                "max_prob",
                format!("{} is outside (0, 1]", self.max_prob),
                "use a probability such as 0.5",
            ));
        }
        check_continuous("learning_rate", &self.learning_rate)?;
        check_continuous("dropout_rate", &self.dropout_rate)?;
        if let Strategy::Evolution {
            population,
            sample_size,
        } = self.strategy
        {
            if population < 2 {
                return Err(err(
                    "strategy.evolution.population",
                    format!("{population} is below 2"),
                    "use a population of at least 2, e.g. 10",
                ));
            }
            if sample_size == 0 || sample_size > population {
                return Err(err(
                    "strategy.evolution.sample_size",
                    format!("{sample_size} is outside 1..=population ({population})"),
                    "use a tournament size between 1 and the population, e.g. 3",
                ));
            }
        }
        if let Reward::Rank { window: 0 } = self.reward {
            return Err(err(
                "reward.rank.window",
                "0 recent evaluations leave nothing to rank against",
                "use a window of at least 1, e.g. 10",
            ));
        }
        self.validate_space()?;
        self.validate_initial()
    }

    /// The search space: ranges ordered, grids non-empty, at most three optimizers.
    fn validate_space(&self) -> Result<(), ConfigError> {
        let sp = &self.space;
        check_range(
            "space.lr_log10",
            sp.lr_log10,
            "give (log10 low, log10 high) with low < high, e.g. [-6.0, -2.0]",
        )?;
        if sp.criteria == 0 || sp.criteria > 3 {
            return Err(err(
                "space.criteria",
                format!("{} is outside 1..=3", sp.criteria),
                "use 3 (0 AdamW, 1 SGD, 2 RMSProp) or fewer to drop the later ones",
            ));
        }
        check_grid("space.layer_size1", &sp.layer_size1)?;
        check_grid("space.layer_size2", &sp.layer_size2)?;
        check_range(
            "space.dropout",
            sp.dropout,
            "give (low, high) with 0 <= low < high < 1, e.g. [0.0, 0.7]",
        )?;
        if sp.dropout.0 < 0.0 || sp.dropout.1 >= 1.0 {
            return Err(err(
                "space.dropout",
                format!("({}, {}) is not within [0, 1)", sp.dropout.0, sp.dropout.1),
                "give (low, high) with 0 <= low < high < 1, e.g. [0.0, 0.7]",
            ));
        }
        check_grid("space.kernel_size", &sp.kernel_size)?;
        Ok(())
    }

    /// The initial candidate lies inside the search space.
    fn validate_initial(&self) -> Result<(), ConfigError> {
        let sp = &self.space;
        let c = &self.initial;
        let lr_ok = c.learning_rate.is_finite() && c.learning_rate > 0.0 && {
            let l = c.learning_rate.log10();
            // A small tolerance: 10^x round trips are not exact.
            l >= sp.lr_log10.0 - 1e-9 && l <= sp.lr_log10.1 + 1e-9
        };
        if !lr_ok {
            return Err(err(
                "initial.learning_rate",
                format!(
                    "{} is not within 10^{} ..= 10^{}",
                    c.learning_rate, sp.lr_log10.0, sp.lr_log10.1
                ),
                "pick a positive learning rate inside space.lr_log10",
            ));
        }
        if c.criterion_num >= sp.criteria {
            return Err(err(
                "initial.criterion_num",
                format!(
                    "{} is not below space.criteria ({})",
                    c.criterion_num, sp.criteria
                ),
                "use 0 (AdamW), 1 (SGD) or 2 (RMSProp) within space.criteria",
            ));
        }
        for (field, v, grid) in [
            ("initial.layer_size1", c.layer_size1, &sp.layer_size1),
            ("initial.layer_size2", c.layer_size2, &sp.layer_size2),
            ("initial.kernel_size", c.kernel_size, &sp.kernel_size),
        ] {
            if !grid.contains(&v) {
                return Err(err(
                    field,
                    format!("{v} is not in the grid {grid:?}"),
                    "pick one of the grid values",
                ));
            }
        }
        if !(c.dropout_rate >= sp.dropout.0 && c.dropout_rate <= sp.dropout.1) {
            return Err(err(
                "initial.dropout_rate",
                format!(
                    "{} is outside space.dropout ({}, {})",
                    c.dropout_rate, sp.dropout.0, sp.dropout.1
                ),
                "pick a dropout rate inside space.dropout",
            ));
        }
        Ok(())
    }

    /// The mean/variance settings of a continuous parameter (None for the others).
    pub fn continuous_setting(&self, p: crate::Param) -> Option<&ContinuousSetting> {
        match p {
            crate::Param::LearningRate => Some(&self.learning_rate),
            crate::Param::DropoutRate => Some(&self.dropout_rate),
            _ => None,
        }
    }
}

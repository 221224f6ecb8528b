//! Search state and its update after an evaluation (Algorithm 1, lines 11-15).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::candidate::{Action, Candidate, Param, ParamKind, Proposal};
use crate::config::{Reward, SearchConfig, Select, Strategy, VarianceRule};
use crate::formulas::{
    clamp, mean_update, q_update, rank_signal, variance_distance, variance_distance_literal,
    variance_moment,
};
use crate::space::{range, search_value};

/// Q(s,+) and Q(s,-) of one parameter (bits keep both equal: their only action is a flip).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct QPair {
    /// Q(s,+).
    pub plus: f64,
    /// Q(s,-).
    pub minus: f64,
}

impl QPair {
    /// Q(s) = Q(s,+) + Q(s,-).
    pub fn total(&self) -> f64 {
        self.plus + self.minus
    }
}

/// Mean and variance of a continuous parameter, in its search units (log10 for the lr).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Moments {
    /// mu_s: the centre continuous mutations are drawn around.
    pub mean: f64,
    /// var_s: the variance of the step |x|, x ~ N(0, var_s).
    pub variance: f64,
}

/// A candidate with its (sanitised) accuracy and the iteration that evaluated it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Evaluated {
    /// The candidate.
    pub candidate: Candidate,
    /// Its validation accuracy in [0, 1].
    pub accuracy: f64,
    /// The iteration it was evaluated in (for evolution members: its birth, i.e. its age).
    pub iteration: u64,
}

/// Everything the search carries from one iteration to the next.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SearchState {
    /// Number of updates applied so far (= the next iteration to sample).
    pub iteration: u64,
    /// Q-table, one entry per parameter of [`Param::ALL`].
    pub q: BTreeMap<Param, QPair>,
    /// Mean and variance per continuous parameter.
    pub moments: BTreeMap<Param, Moments>,
    /// Running average accuracy p_bar over all evaluations so far.
    pub mean_accuracy: f64,
    /// Number of evaluations in `mean_accuracy`.
    pub evaluated: u64,
    /// The parent the next HHNAS-AM proposal mutates (None before the first evaluation).
    pub parent: Option<Evaluated>,
    /// Best candidate so far (first one wins ties).
    pub best: Option<Evaluated>,
    /// Evolution only: live population, oldest first.
    pub population: Vec<Evaluated>,
    /// `Reward::Rank` only: what the next evaluation is ranked among.
    pub recent: Recent,
}

/// The last evaluations a rank reward compares with, oldest first, at most `window` each.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Recent {
    /// Validation accuracies (p), for the moments' signal.
    pub accuracies: Vec<f64>,
    /// Improvements over the parent (r - r_parent), for the Q-table's signal.
    pub improvements: Vec<f64>,
}

impl Recent {
    fn push(list: &mut Vec<f64>, value: f64, window: usize) {
        list.push(value);
        let excess = list.len().saturating_sub(window);
        list.drain(..excess);
    }
}

/// What a mutation earns: the Q step (in place of r - r_parent) and the moments' signal (in
/// place of p - p_bar), by the configured reward rule.
struct Signals {
    q_step: f64,
    moment_step: f64,
}

fn signals(state: &SearchState, cfg: &SearchConfig, r: f64, parent: f64) -> Signals {
    match cfg.reward {
        Reward::Difference => Signals {
            q_step: r - parent,
            moment_step: r - state.mean_accuracy,
        },
        Reward::Rank { .. } => Signals {
            q_step: rank_signal(&state.recent.improvements, r - parent),
            moment_step: rank_signal(&state.recent.accuracies, r),
        },
    }
}

/// The state before iteration 0: all Q = q_init, means at the initial candidate's values
/// (log10 for the learning rate), variances at their configured initial values.
pub fn init_state(cfg: &SearchConfig) -> SearchState {
    let q = Param::ALL
        .into_iter()
        .map(|p| {
            (
                p,
                QPair {
                    plus: cfg.q_init,
                    minus: cfg.q_init,
                },
            )
        })
        .collect();
    let moments = Param::CONTINUOUS
        .into_iter()
        .map(|p| {
            let var = cfg.continuous_setting(p).map_or(1.0, |s| s.var_init);
            (
                p,
                Moments {
                    mean: search_value(&cfg.initial, p),
                    variance: var,
                },
            )
        })
        .collect();
    SearchState {
        iteration: 0,
        q,
        moments,
        mean_accuracy: 0.0,
        evaluated: 0,
        parent: None,
        best: None,
        population: Vec::new(),
        recent: Recent::default(),
    }
}

/// Accuracy as the search uses it: NaN / infinite (a failed run) count as 0, and the value
/// is clipped to [0, 1].
pub fn sanitize_accuracy(accuracy: f64) -> f64 {
    if accuracy.is_finite() {
        accuracy.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// The state after `proposal` (sampled from `state`) was evaluated with `accuracy`.
///
/// HHNAS-AM: for each mutated parameter Q(s,a) <- max(q_min, Q(s,a) + alpha (r - r_parent));
/// a flip adds half of alpha (r - r_parent) to each of Q(s,+) = Q(s,-) (each floored at
/// q_min), so Q(s) moves as much as for a micro move (SPEC §5). A listed mutation of a
/// parameter the candidate's model does not have ([`Candidate::has_param`]; `sample` never
/// makes one) is ignored: neither credited nor blamed. For each mutated continuous
/// parameter the mean rule and the
/// configured variance rule with p_bar = the running average *before* this accuracy is added
/// and mu = the mean the sample was drawn around (both updates use the old mean); mean clipped
/// to the range, variance to [var_min, var_max]; then SelectFeatures. Every strategy updates
/// the running average, the count and the best candidate; evolution appends the candidate to
/// its population and drops the oldest member beyond the population size.
pub fn update(
    state: &SearchState,
    cfg: &SearchConfig,
    proposal: &Proposal,
    accuracy: f64,
) -> SearchState {
    let r = sanitize_accuracy(accuracy);
    let mut next = state.clone();
    let evaluated = Evaluated {
        candidate: proposal.candidate.clone(),
        accuracy: r,
        iteration: proposal.iteration,
    };

    match cfg.strategy {
        Strategy::Hhnas => {
            if let Some(parent) = &state.parent {
                let sig = signals(state, cfg, r, parent.accuracy);
                for m in &proposal.mutations {
                    if !proposal.candidate.has_param(m.param) {
                        continue;
                    }
                    let q = next.q.entry(m.param).or_insert(QPair {
                        plus: cfg.q_init,
                        minus: cfg.q_init,
                    });
                    let step = |v: f64, alpha: f64| q_update(v, alpha, sig.q_step, 0.0, cfg.q_min);
                    match m.action {
                        // Bits have one action, stored as Q(s,+) = Q(s,-); half the step to
                        // each half so Q(s) moves by alpha (r - r_parent) (SPEC §5).
                        Action::Flip => {
                            q.plus = step(q.plus, cfg.alpha / 2.0);
                            q.minus = step(q.minus, cfg.alpha / 2.0);
                        }
                        Action::Plus => q.plus = step(q.plus, cfg.alpha),
                        Action::Minus => q.minus = step(q.minus, cfg.alpha),
                    }
                    if m.param.kind() == ParamKind::Continuous && state.evaluated > 0 {
                        let moment = MomentUpdate {
                            param: m.param,
                            value: search_value(&proposal.candidate, m.param),
                            signal: sig.moment_step,
                        };
                        update_moments(&mut next, state, cfg, moment);
                    }
                }
                if let Reward::Rank { window } = cfg.reward {
                    Recent::push(&mut next.recent.improvements, r - parent.accuracy, window);
                }
            }
            if let Reward::Rank { window } = cfg.reward {
                Recent::push(&mut next.recent.accuracies, r, window);
            }
            let take = match (cfg.select, &state.parent) {
                (Select::Always, _) | (_, None) => true,
                (Select::Greedy, Some(parent)) => r >= parent.accuracy,
            };
            if take {
                next.parent = Some(evaluated.clone());
            }
        }
        Strategy::Evolution { population, .. } => {
            next.population.push(evaluated.clone());
            // Aging: the oldest member dies, whatever its accuracy.
            while next.population.len() > population.max(1) {
                next.population.remove(0);
            }
        }
        Strategy::Random | Strategy::Fixed | Strategy::Repeat => {}
    }

    let n = state.evaluated as f64;
    next.mean_accuracy = (state.mean_accuracy * n + r) / (n + 1.0);
    next.evaluated = state.evaluated + 1;
    if state.best.as_ref().is_none_or(|b| r > b.accuracy) {
        next.best = Some(evaluated);
    }
    next.iteration = proposal.iteration.saturating_add(1);
    next
}

/// One mutated continuous parameter: its new value (search units) and the signal that
/// stands for p - p_bar.
struct MomentUpdate {
    param: Param,
    value: f64,
    signal: f64,
}

/// Mean and variance update of one mutated continuous parameter. The formulas take p and
/// p_bar; the signal is passed as p - p_bar with p_bar = 0, which is what each formula uses.
fn update_moments(
    next: &mut SearchState,
    state: &SearchState,
    cfg: &SearchConfig,
    m: MomentUpdate,
) {
    let p = m.param;
    let Some(setting) = cfg.continuous_setting(p) else {
        return;
    };
    let Some(old) = state.moments.get(&p).copied() else {
        return;
    };
    let (s, signal) = (m.value, m.signal);
    let (lo, hi) = range(&cfg.space, p);
    let mean = clamp(
        mean_update(old.mean, setting.k_mean, s, signal, 0.0),
        lo,
        hi,
    );
    let var = match cfg.variance_rule {
        VarianceRule::Distance => {
            variance_distance(old.variance, setting.k_var, s, old.mean, signal, 0.0)
        }
        VarianceRule::DistanceLiteral => {
            variance_distance_literal(old.variance, setting.k_var, s, old.mean, signal, 0.0)
        }
        VarianceRule::Moment => {
            variance_moment(old.variance, setting.k_var, s, old.mean, signal, 0.0)
        }
    };
    let variance = clamp(var, setting.var_min, setting.var_max);
    next.moments.insert(p, Moments { mean, variance });
}

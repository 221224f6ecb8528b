//! Proposing the next candidate (Algorithm 1, lines 5-9) and the baselines.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Normal};

use crate::candidate::{display_value, Action, Candidate, Mutation, Param, ParamKind, Proposal};
use crate::config::{SearchConfig, Strategy};
use crate::formulas::{mutation_probability, plus_probability};
use crate::space::{
    discrete_value, grid, grid_index, range, search_value, set_discrete, set_search_value,
};
use crate::state::{QPair, SearchState};

/// A ChaCha20 stream seeded by blake3 of (run seed, iteration, purpose) (SPEC §5), so every
/// draw is reproducible and independent of how many draws other purposes made.
pub fn rng_stream(run_seed: u64, iteration: u64, purpose: &str) -> ChaCha20Rng {
    let mut h = blake3::Hasher::new();
    h.update(b"hhnas-search/rng/v1\0");
    h.update(&run_seed.to_le_bytes());
    h.update(&iteration.to_le_bytes());
    h.update(purpose.as_bytes());
    ChaCha20Rng::from_seed(*h.finalize().as_bytes())
}

fn q_of(state: &SearchState, cfg: &SearchConfig, p: Param) -> QPair {
    state.q.get(&p).copied().unwrap_or(QPair {
        plus: cfg.q_init,
        minus: cfg.q_init,
    })
}

fn hhnas_probabilities(state: &SearchState, cfg: &SearchConfig) -> Vec<(Param, f64)> {
    let totals: Vec<(Param, f64)> = Param::ALL
        .into_iter()
        .map(|p| (p, q_of(state, cfg, p).total()))
        .collect();
    let q_max = totals
        .iter()
        .map(|&(_, q)| q)
        .fold(f64::NEG_INFINITY, f64::max);
    totals
        .into_iter()
        .map(|(p, q)| (p, mutation_probability(q, q_max, cfg.max_prob)))
        .collect()
}

/// Probability that each parameter changes in the next proposal, in [`Param::ALL`] order.
///
/// HHNAS-AM: P(s) = Q(s) / max Q * max_prob over the whole Q-table (SPEC §5; before the
/// at-least-one rule). P(s) applies only where the child's model has the parameter
/// ([`Candidate::has_param`]): `kernel_size` never changes while the child is Model 1.
/// Evolution: 1/8 each (one uniformly chosen parameter of the winner's model; for a Model 1
/// winner that is 1/7 each and 0 for `kernel_size`, which this summary does not know about).
/// Random: 1 each (everything is
/// redrawn). Fixed and repeat: 0 each.
pub fn mutation_probabilities(state: &SearchState, cfg: &SearchConfig) -> Vec<(Param, f64)> {
    match cfg.strategy {
        Strategy::Hhnas => hhnas_probabilities(state, cfg),
        Strategy::Evolution { .. } => Param::ALL
            .into_iter()
            .map(|p| (p, 1.0 / Param::ALL.len() as f64))
            .collect(),
        Strategy::Random => Param::ALL.into_iter().map(|p| (p, 1.0)).collect(),
        Strategy::Fixed | Strategy::Repeat => Param::ALL.into_iter().map(|p| (p, 0.0)).collect(),
    }
}

fn start(cfg: &SearchConfig, iteration: u64) -> Proposal {
    Proposal {
        iteration,
        candidate: cfg.initial.clone(),
        parent: None,
        mutations: Vec::new(),
    }
}

/// Proposes the candidate for `iteration`.
///
/// Every strategy evaluates `cfg.initial` first (while the state holds no evaluation).
/// HHNAS-AM then mutates the state's parent: first the macro bits, each independently with
/// P(s) (a flip may add or remove a CNN branch); then, once the architecture is selected
/// (SPEC §5), each micro parameter *of the child's architecture after those flips*
/// ([`Candidate::has_param`]) independently with P(s), so a Model 1 child never mutates
/// `kernel_size` and a child that just gained a branch may. If no value changed, the
/// parameter of the parent's model with the largest P(s) (ties: first in [`Param::ALL`]
/// order) that can change is mutated; a parameter the model does not have is never forced.
/// Bits flip; discrete parameters take one grid step, + with
/// probability Q(s,+)/(Q(s,+)+Q(s,-)), and a step off the end of the grid is no change;
/// continuous parameters become mu +/- |x|, x ~ N(0, var), clipped to their range.
/// Random draws every parameter uniformly (the learning rate log-uniformly). Evolution: see
/// [`Strategy::Evolution`]. Fixed always returns `initial`.
///
/// Same (state, cfg, run_seed, iteration) always gives the same proposal. Never panics; on a
/// configuration that fails [`SearchConfig::validate`] the result is unspecified.
pub fn sample(state: &SearchState, cfg: &SearchConfig, run_seed: u64, iteration: u64) -> Proposal {
    if state.evaluated == 0 {
        return start(cfg, iteration);
    }
    match cfg.strategy {
        Strategy::Hhnas => sample_hhnas(state, cfg, run_seed, iteration),
        Strategy::Random => Proposal {
            iteration,
            candidate: random_candidate(cfg, run_seed, iteration, "random"),
            parent: None,
            mutations: Vec::new(),
        },
        Strategy::Evolution {
            population,
            sample_size,
        } => sample_evolution(state, cfg, run_seed, iteration, population, sample_size),
        Strategy::Fixed | Strategy::Repeat => start(cfg, iteration),
    }
}

fn sample_hhnas(state: &SearchState, cfg: &SearchConfig, seed: u64, iteration: u64) -> Proposal {
    let Some(parent) = &state.parent else {
        return start(cfg, iteration);
    };
    let probs = hhnas_probabilities(state, cfg);
    let mut cand = parent.candidate.clone();
    let mut mutations = Vec::new();
    // Macro bits first, then the micro parameters the resulting architecture has. Each
    // parameter draws from its own stream, so skipping one shifts no other draw.
    let (bits, micro): (Vec<_>, Vec<_>) = probs
        .iter()
        .copied()
        .partition(|&(p, _)| p.kind() == ParamKind::Bit);
    for (p, prob) in bits.into_iter().chain(micro) {
        if !cand.has_param(p) {
            continue;
        }
        let mut rng = rng_stream(seed, iteration, &format!("hhnas/mutate/{}", p.name()));
        let u: f64 = rng.random();
        if u < prob {
            if let Some(m) = mutate_hhnas(&mut cand, p, state, cfg, &mut rng, false) {
                mutations.push(m);
            }
        }
    }
    if mutations.is_empty() {
        // At least one mutation (SPEC §5): stable sort keeps Param order among equal P(s).
        // Nothing changed, so `cand` is still the parent: only its model's parameters.
        let mut order: Vec<(Param, f64)> = probs
            .into_iter()
            .filter(|&(p, _)| cand.has_param(p))
            .collect();
        order.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (p, _) in order {
            let mut rng = rng_stream(seed, iteration, &format!("hhnas/fallback/{}", p.name()));
            if let Some(m) = mutate_hhnas(&mut cand, p, state, cfg, &mut rng, true) {
                mutations.push(m);
                break;
            }
        }
    }
    Proposal {
        iteration,
        candidate: cand,
        parent: Some(parent.candidate.clone()),
        mutations,
    }
}

/// Applies one HHNAS-AM mutation of `p` to `cand`; None if the value would not change.
/// `force` (the at-least-one fallback) tries the other direction before giving up.
fn mutate_hhnas(
    cand: &mut Candidate,
    p: Param,
    state: &SearchState,
    cfg: &SearchConfig,
    rng: &mut ChaCha20Rng,
    force: bool,
) -> Option<Mutation> {
    let from = display_value(cand, p);
    let q = q_of(state, cfg, p);
    let plus = rng.random::<f64>() < plus_probability(q.plus, q.minus);
    let action = match p.kind() {
        ParamKind::Bit => flip(cand, p),
        ParamKind::Discrete => {
            let g = grid(&cfg.space, p);
            let i = grid_index(&g, discrete_value(cand, p))?;
            let up = (i + 1 < g.len()).then_some(i + 1);
            let down = i.checked_sub(1);
            let (target, plus) = match (plus, force) {
                (true, false) => (up?, true),
                (false, false) => (down?, false),
                (true, true) => up.map(|t| (t, true)).or(down.map(|t| (t, false)))?,
                (false, true) => down.map(|t| (t, false)).or(up.map(|t| (t, true)))?,
            };
            set_discrete(cand, p, g[target]);
            if plus {
                Action::Plus
            } else {
                Action::Minus
            }
        }
        ParamKind::Continuous => {
            let m = state.moments.get(&p).copied()?;
            let sd = m.variance.max(0.0).sqrt();
            let x = Normal::new(0.0, sd).map_or(0.0, |n| n.sample(rng)).abs();
            let before = cand.clone();
            let try_dir = |plus: bool, cand: &mut Candidate| {
                *cand = before.clone();
                let v = if plus { m.mean + x } else { m.mean - x };
                set_search_value(cand, &cfg.space, p, v);
                *cand != before
            };
            let mut dir = plus;
            if !try_dir(dir, cand) {
                if !force {
                    *cand = before;
                    return None;
                }
                dir = !dir;
                if !try_dir(dir, cand) {
                    *cand = before;
                    return None;
                }
            }
            if dir {
                Action::Plus
            } else {
                Action::Minus
            }
        }
    };
    Some(Mutation {
        param: p,
        action,
        from,
        to: display_value(cand, p),
    })
}

/// Whether a uniform draw from lo..hi is possible (random_range panics otherwise).
fn finite_range(lo: f64, hi: f64) -> bool {
    lo.is_finite() && hi.is_finite() && lo < hi
}

/// A uniformly random candidate (log-uniform learning rate), one stream per parameter.
fn random_candidate(cfg: &SearchConfig, seed: u64, iteration: u64, prefix: &str) -> Candidate {
    let mut c = cfg.initial.clone();
    for p in Param::ALL {
        let mut rng = rng_stream(seed, iteration, &format!("{prefix}/{}", p.name()));
        match p.kind() {
            ParamKind::Bit => {
                let b = rng.random::<bool>();
                match p {
                    Param::LlmBranch => c.llm_branch = b,
                    _ => c.rule_branch = b,
                }
            }
            ParamKind::Discrete => {
                let g = grid(&cfg.space, p);
                if !g.is_empty() {
                    set_discrete(&mut c, p, g[rng.random_range(0..g.len())]);
                }
            }
            ParamKind::Continuous => {
                let (lo, hi) = range(&cfg.space, p);
                let v = if finite_range(lo, hi) {
                    rng.random_range(lo..hi)
                } else {
                    lo
                };
                set_search_value(&mut c, &cfg.space, p, v);
            }
        }
    }
    c
}

fn sample_evolution(
    state: &SearchState,
    cfg: &SearchConfig,
    seed: u64,
    iteration: u64,
    population: usize,
    sample_size: usize,
) -> Proposal {
    let pop = &state.population;
    if pop.len() < population || pop.is_empty() {
        return Proposal {
            iteration,
            candidate: random_candidate(cfg, seed, iteration, "evolution/random"),
            parent: None,
            mutations: Vec::new(),
        };
    }
    let mut rng = rng_stream(seed, iteration, "evolution/tournament");
    let k = sample_size.clamp(1, pop.len());
    let picked = rand::seq::index::sample(&mut rng, pop.len(), k);
    // Highest accuracy wins; ties go to the older member (lower index).
    let mut winner = pop.len();
    for i in picked.iter() {
        let better = winner == pop.len()
            || pop[i].accuracy > pop[winner].accuracy
            || (pop[i].accuracy == pop[winner].accuracy && i < winner);
        if better {
            winner = i;
        }
    }
    let parent = pop[winner.min(pop.len() - 1)].candidate.clone();
    let mut cand = parent.clone();
    let mut rng = rng_stream(seed, iteration, "evolution/mutate");
    // Only parameters the winner's model has (SPEC §3), so a Model 1 winner is never
    // "mutated" into the same network with another kernel_size.
    let changeable: Vec<Param> = Param::ALL
        .into_iter()
        .filter(|&p| parent.has_param(p))
        .filter(|&p| match p.kind() {
            ParamKind::Bit => true,
            ParamKind::Discrete => grid(&cfg.space, p).len() >= 2,
            ParamKind::Continuous => {
                let (lo, hi) = range(&cfg.space, p);
                finite_range(lo, hi)
            }
        })
        .collect();
    let mut mutations = Vec::new();
    if !changeable.is_empty() {
        let p = changeable[rng.random_range(0..changeable.len())];
        let from = display_value(&cand, p);
        let action = match p.kind() {
            ParamKind::Bit => flip(&mut cand, p),
            ParamKind::Discrete => {
                let g = grid(&cfg.space, p);
                let cur = grid_index(&g, discrete_value(&cand, p)).unwrap_or(0);
                // A uniformly chosen *other* grid value.
                let mut j = rng.random_range(0..g.len() - 1);
                if j >= cur {
                    j += 1;
                }
                set_discrete(&mut cand, p, g[j]);
                if j > cur {
                    Action::Plus
                } else {
                    Action::Minus
                }
            }
            ParamKind::Continuous => {
                let (lo, hi) = range(&cfg.space, p);
                let old = search_value(&cand, p);
                let v = rng.random_range(lo..hi);
                set_search_value(&mut cand, &cfg.space, p, v);
                if v >= old {
                    Action::Plus
                } else {
                    Action::Minus
                }
            }
        };
        mutations.push(Mutation {
            param: p,
            action,
            from,
            to: display_value(&cand, p),
        });
    }
    Proposal {
        iteration,
        candidate: cand,
        parent: Some(parent),
        mutations,
    }
}

/// Flips a macro bit (the only mutation a bit has).
fn flip(cand: &mut Candidate, p: Param) -> Action {
    match p {
        Param::LlmBranch => cand.llm_branch = !cand.llm_branch,
        _ => cand.rule_branch = !cand.rule_branch,
    }
    Action::Flip
}

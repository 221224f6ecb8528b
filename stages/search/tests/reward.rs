//! The reward rules (SPEC §5's open point): the paper's difference and the rank reward.
//!
//! The landscape here is what the frozen demo sees: every candidate within a point of the
//! others. Growing layer_size1 helps by 0.2 points a grid step, any change of the dropout
//! rate away from 0.1 hurts by 0.3 points per 0.1, everything else is neutral.

use hhnas_search::formulas::rank_signal;
use hhnas_search::{
    init_state, mutation_probabilities, sample, update, Candidate, Param, Reward, SearchConfig,
    SearchState,
};

fn accuracy(c: &Candidate, cfg: &SearchConfig) -> f64 {
    let grid = &cfg.space.layer_size1;
    let step = grid.iter().position(|&g| g == c.layer_size1).unwrap() as f64;
    0.95 + 0.002 * step - 0.03 * (c.dropout_rate - 0.1).abs()
}

fn search(cfg: &SearchConfig, seed: u64, iterations: u64) -> SearchState {
    let mut state = init_state(cfg);
    for t in 0..iterations {
        let p = sample(&state, cfg, seed, t);
        let acc = accuracy(&p.candidate, cfg);
        state = update(&state, cfg, &p, acc);
    }
    state
}

fn p_of(state: &SearchState, cfg: &SearchConfig, param: Param) -> f64 {
    mutation_probabilities(state, cfg)
        .into_iter()
        .find(|(p, _)| *p == param)
        .unwrap()
        .1
}

fn config(reward: Reward, alpha: f64) -> SearchConfig {
    let mut cfg = SearchConfig {
        reward,
        alpha,
        ..SearchConfig::default()
    };
    // Start at the bottom of the grid so growing it keeps helping for a while.
    cfg.initial.layer_size1 = 64;
    cfg
}

#[test]
fn rank_signal_is_a_mid_rank_in_minus_one_to_one() {
    assert_eq!(rank_signal(&[0.1, 0.2, 0.3], 0.5), 1.0);
    assert_eq!(rank_signal(&[0.1, 0.2, 0.3], 0.0), -1.0);
    assert_eq!(rank_signal(&[0.1, 0.2, 0.3], 0.2), 0.0);
    assert_eq!(rank_signal(&[0.2, 0.2], 0.2), 0.0);
    assert_eq!(rank_signal(&[0.1, 0.3], 0.2), 0.0);
    assert_eq!(rank_signal(&[0.1, 0.2, 0.3, 0.4], 0.25), 0.0);
    // No history: against no change.
    assert_eq!(rank_signal(&[], 0.004), 1.0);
    assert_eq!(rank_signal(&[], -0.004), -1.0);
    // Scale-free.
    assert_eq!(
        rank_signal(&[0.001, 0.002], 0.0015),
        rank_signal(&[10.0, 20.0], 15.0)
    );
}

/// The point of the rank reward: a parameter whose mutations keep helping ends well above
/// one whose mutations keep hurting, on accuracy differences of tenths of a point, where
/// the paper's rule leaves every P(s) within a few hundredths of max_prob.
#[test]
fn rank_reward_separates_a_helping_parameter_from_a_hurting_one() {
    let mut rank_gaps = Vec::new();
    let mut difference_spreads = Vec::new();
    for seed in 0..10 {
        let cfg = config(Reward::Rank { window: 10 }, 0.25);
        let s = search(&cfg, seed, 30);
        let gap = p_of(&s, &cfg, Param::LayerSize1) - p_of(&s, &cfg, Param::DropoutRate);
        rank_gaps.push(gap);

        let cfg = config(Reward::Difference, 1.0);
        let s = search(&cfg, seed, 30);
        let probs: Vec<f64> = mutation_probabilities(&s, &cfg)
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        let spread = probs.iter().cloned().fold(f64::MIN, f64::max)
            - probs.iter().cloned().fold(f64::MAX, f64::min);
        difference_spreads.push(spread);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        mean(&rank_gaps) > 0.15,
        "P(layer_size1) - P(dropout_rate) under the rank reward: {rank_gaps:?}"
    );
    assert!(
        rank_gaps.iter().filter(|&&g| g > 0.0).count() >= 8,
        "{rank_gaps:?}"
    );
    assert!(
        mean(&difference_spreads) < 0.05,
        "the paper's rule moved P(s) by {difference_spreads:?} on this scale"
    );
}

/// The rank reward's window holds at most `window` entries of each kind, oldest dropped,
/// and the paper's rule keeps none.
#[test]
fn recent_outcomes_keep_the_window() {
    let cfg = config(Reward::Rank { window: 3 }, 0.25);
    let s = search(&cfg, 1, 8);
    assert_eq!(s.recent.accuracies.len(), 3);
    assert_eq!(s.recent.improvements.len(), 3);
    let cfg = config(Reward::Difference, 1.0);
    let s = search(&cfg, 1, 8);
    assert!(s.recent.accuracies.is_empty() && s.recent.improvements.is_empty());
}

#[test]
fn a_rank_window_of_zero_is_refused_with_its_field() {
    let cfg = config(Reward::Rank { window: 0 }, 0.25);
    let e = cfg.validate().unwrap_err();
    assert_eq!(e.field, "reward.rank.window");
}

//! Property tests over whole runs of every strategy.

use hhnas_search::{
    in_space, init_state, mutation_probabilities, sample, update, Param, ParamKind, SearchConfig,
    Select, Strategy, VarianceRule,
};
use proptest::prelude::*;
use proptest::strategy::Strategy as _;

fn strategy_cfg(which: u8, rule: u8, always: bool) -> SearchConfig {
    let strategy = match which {
        0 | 1 => Strategy::Hhnas,
        2 => Strategy::Random,
        _ => Strategy::Evolution {
            population: 4,
            sample_size: 2,
        },
    };
    SearchConfig {
        strategy,
        variance_rule: match rule {
            0 => VarianceRule::Distance,
            1 => VarianceRule::DistanceLiteral,
            _ => VarianceRule::Moment,
        },
        select: if always {
            Select::Always
        } else {
            Select::Greedy
        },
        ..SearchConfig::default()
    }
}

/// Accuracies, including failed (NaN) and out-of-range values, which count as 0 / clipped.
fn accuracy() -> impl proptest::strategy::Strategy<Value = f64> {
    prop_oneof![
        8 => 0.0..=1.0f64,
        1 => Just(f64::NAN),
        1 => -1.0..2.0f64,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn runs_keep_invariants(
        seed in any::<u64>(),
        which in 0u8..4,
        rule in 0u8..3,
        always in any::<bool>(),
        accs in proptest::collection::vec(accuracy(), 1..30),
    ) {
        let cfg = strategy_cfg(which, rule, always);
        prop_assert!(cfg.validate().is_ok());
        let mut state = init_state(&cfg);
        for (t, &acc) in accs.iter().enumerate() {
            let t = t as u64;
            let p = sample(&state, &cfg, seed, t);
            // Determinism of sample.
            prop_assert_eq!(&p, &sample(&state, &cfg, seed, t));
            prop_assert!(in_space(&p.candidate, &cfg.space), "{:?}", p.candidate);
            prop_assert_eq!(p.candidate.bits()[0], 1);
            prop_assert!(p.candidate.model_number() >= 1 && p.candidate.model_number() <= 4);
            if t == 0 {
                prop_assert_eq!(&p.candidate, &cfg.initial);
                prop_assert!(p.mutations.is_empty());
            }
            if cfg.strategy == Strategy::Hhnas && t > 0 {
                let parent = p.parent.clone().unwrap();
                prop_assert_eq!(&parent, &state.parent.as_ref().unwrap().candidate);
                // At least one mutation, and it really changed the candidate.
                prop_assert!(!p.mutations.is_empty());
                prop_assert!(p.candidate != parent);
                // Each model mutates only its own parameters (SPEC §3).
                for m in &p.mutations {
                    prop_assert!(p.candidate.has_param(m.param), "{}", m.param);
                }
            }
            // Mutations list exactly the parameters that differ from the parent.
            if let Some(parent) = &p.parent {
                for param in Param::ALL {
                    let changed = hhnas_search::display_value(parent, param)
                        != hhnas_search::display_value(&p.candidate, param);
                    let listed = p.mutations.iter().any(|m| m.param == param);
                    if param.kind() != ParamKind::Continuous {
                        prop_assert_eq!(changed, listed, "{}", param);
                    } else if changed {
                        prop_assert!(listed, "{}", param);
                    }
                }
            }
            let next = update(&state, &cfg, &p, acc);
            // Determinism of update.
            prop_assert_eq!(&next, &update(&state, &cfg, &p, acc));
            for q in next.q.values() {
                prop_assert!(q.plus >= cfg.q_min && q.minus >= cfg.q_min);
            }
            for (param, prob) in mutation_probabilities(&next, &cfg) {
                prop_assert!((0.0..=cfg.max_prob.max(1.0)).contains(&prob), "{} {}", param, prob);
                if cfg.strategy == Strategy::Hhnas {
                    prop_assert!(prob <= cfg.max_prob && prob > 0.0);
                }
            }
            for (param, m) in &next.moments {
                let s = cfg.continuous_setting(*param).unwrap();
                prop_assert!(m.variance >= s.var_min && m.variance <= s.var_max);
                let (lo, hi) = match param {
                    Param::LearningRate => cfg.space.lr_log10,
                    _ => cfg.space.dropout,
                };
                prop_assert!(m.mean >= lo && m.mean <= hi);
            }
            prop_assert!(next.mean_accuracy >= 0.0 && next.mean_accuracy <= 1.0);
            prop_assert_eq!(next.evaluated, t + 1);
            let best = next.best.as_ref().unwrap();
            prop_assert!(best.accuracy.is_finite());
            if let Strategy::Evolution { population, .. } = cfg.strategy {
                prop_assert!(next.population.len() <= population);
            }
            state = next;
        }
    }

    /// Different seeds or iterations give (almost always) different proposals, but the same
    /// inputs the same; a resumed run (state rebuilt by replaying) proposes the same.
    #[test]
    fn replay_gives_same_proposals(seed in any::<u64>(), accs in proptest::collection::vec(0.0..1.0f64, 2..12)) {
        let cfg = SearchConfig::default();
        let run = |cfg: &SearchConfig| {
            let mut state = init_state(cfg);
            let mut out = Vec::new();
            for (t, &a) in accs.iter().enumerate() {
                let p = sample(&state, cfg, seed, t as u64);
                state = update(&state, cfg, &p, a);
                out.push(p);
            }
            (out, state)
        };
        prop_assert_eq!(run(&cfg), run(&cfg));
    }
}

/// A configuration that may fail `validate` in any way the types allow.
fn wild_config() -> impl proptest::strategy::Strategy<Value = SearchConfig> {
    let f = || {
        prop_oneof![
            4 => -10.0..10.0f64,
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
            1 => Just(f64::NEG_INFINITY),
            1 => Just(0.0),
        ]
    };
    let grid = || proptest::collection::vec(0usize..2000, 0..5);
    (
        (f(), f(), f(), f(), f(), f()),
        (f(), f(), f(), f(), f()),
        (0u8..6, grid(), grid(), grid()),
        (0usize..4, 0usize..6, 0u8..4, any::<bool>()),
    )
        .prop_map(|(a, b, (criteria, g1, g2, gk), (pop, ss, which, rule))| {
            let mut c = SearchConfig {
                q_init: a.0,
                q_min: a.1,
                alpha: a.2,
                max_prob: a.3,
                ..SearchConfig::default()
            };
            c.space.lr_log10 = (a.4, a.5);
            c.space.dropout = (b.0, b.1);
            c.learning_rate.var_init = b.2;
            c.learning_rate.var_min = b.3;
            c.dropout_rate.var_max = b.4;
            c.space.criteria = criteria;
            c.space.layer_size1 = g1;
            c.space.layer_size2 = g2;
            c.space.kernel_size = gk;
            c.strategy = match which {
                0 => Strategy::Hhnas,
                1 => Strategy::Random,
                2 => Strategy::Evolution {
                    population: pop,
                    sample_size: ss,
                },
                _ => Strategy::Fixed,
            };
            if rule {
                c.variance_rule = VarianceRule::Moment;
            }
            c
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Invalid configurations are reported by `validate`, and `sample`/`update` still never
    /// panic on them (their results are unspecified).
    #[test]
    fn invalid_configs_never_panic(cfg in wild_config(), seed in any::<u64>(), accs in proptest::collection::vec(accuracy(), 1..12)) {
        let _ = cfg.validate();
        let mut state = init_state(&cfg);
        for (t, &a) in accs.iter().enumerate() {
            let p = sample(&state, &cfg, seed, t as u64);
            let _ = mutation_probabilities(&state, &cfg);
            let _ = hhnas_search::describe(&p.candidate);
            state = update(&state, &cfg, &p, a);
        }
    }
}

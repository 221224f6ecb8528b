//! Behaviour of sample/update beyond the formulas.

use hhnas_search::{
    describe, init_state, mutation_probabilities, sample, update, Action, Param, QPair,
    SearchConfig, Select, Strategy,
};

#[test]
fn greedy_keeps_better_parent_always_takes_child() {
    for (select, expect_child) in [(Select::Greedy, false), (Select::Always, true)] {
        let cfg = SearchConfig {
            select,
            ..SearchConfig::default()
        };
        let s0 = init_state(&cfg);
        let s1 = update(&s0, &cfg, &sample(&s0, &cfg, 1, 0), 0.7);
        let p1 = sample(&s1, &cfg, 1, 1);
        let s2 = update(&s1, &cfg, &p1, 0.4);
        let parent = &s2.parent.as_ref().unwrap().candidate;
        assert_eq!(parent == &p1.candidate, expect_child, "{select:?}");
        // Best is tracked either way.
        assert_eq!(s2.best.as_ref().unwrap().accuracy, 0.7);
        assert_eq!(s2.best.as_ref().unwrap().iteration, 0);
        // Equal accuracy counts as no worse for greedy.
        let s3 = update(&s2, &cfg, &sample(&s2, &cfg, 1, 2), 0.7);
        assert_eq!(
            s3.parent.as_ref().unwrap().candidate,
            sample(&s2, &cfg, 1, 2).candidate
        );
    }
}

#[test]
fn failed_accuracy_counts_as_zero() {
    let cfg = SearchConfig::default();
    let s0 = init_state(&cfg);
    let s1 = update(&s0, &cfg, &sample(&s0, &cfg, 0, 0), f64::NAN);
    assert_eq!(s1.mean_accuracy, 0.0);
    assert_eq!(s1.parent.as_ref().unwrap().accuracy, 0.0);
    let s2 = update(&s1, &cfg, &sample(&s1, &cfg, 0, 1), f64::INFINITY);
    assert_eq!(s2.best.as_ref().unwrap().accuracy, 0.0);
}

/// Direction frequencies follow Q(s,+)/(Q(s,+)+Q(s,-)) and mutation frequencies follow P(s),
/// over many seeds (deterministic: the seeds are fixed).
#[test]
fn draw_frequencies_follow_q_table() {
    // Parent = Model 4, which has kernel_size (Model 1 does not: SPEC §3).
    let mut cfg = SearchConfig::default();
    cfg.initial.llm_branch = true;
    cfg.initial.rule_branch = true;
    let s0 = init_state(&cfg);
    let mut s1 = update(&s0, &cfg, &sample(&s0, &cfg, 0, 0), 0.5);
    // kernel_size sits mid-grid (3 of [1,3,5,7,9]); Q+ = 3, Q- = 1 -> P(+) = 0.75, and
    // Q(kernel) = 4 is the max, so P(kernel) = max_prob, the others 2/4 * 0.5 = 0.25.
    s1.q.insert(
        Param::KernelSize,
        QPair {
            plus: 3.0,
            minus: 1.0,
        },
    );
    let probs = mutation_probabilities(&s1, &cfg);
    assert_eq!(probs[7], (Param::KernelSize, 0.5));
    assert_eq!(probs[0], (Param::LlmBranch, 0.25));
    let n = 4000;
    let (mut plus, mut kernel, mut llm) = (0, 0, 0);
    for seed in 0..n {
        let p = sample(&s1, &cfg, seed, 1);
        for m in &p.mutations {
            match m.param {
                Param::KernelSize => {
                    kernel += 1;
                    if m.action == Action::Plus {
                        plus += 1;
                    }
                }
                Param::LlmBranch => llm += 1,
                _ => {}
            }
        }
    }
    let f_plus = plus as f64 / kernel as f64;
    assert!((f_plus - 0.75).abs() < 0.03, "P(+) {f_plus}");
    // kernel: 0.5 unless both bits flipped off (the child is then Model 1, without
    // kernel_size: 1/16), plus the fallback share when nothing else changed:
    // 0.5 * 0.75^6 * (1 - 0.125) ~ 0.078 (criterion_num sits at 0, so only its + step
    // changes it): 0.469 + 0.078 = 0.547.
    let f_kernel = kernel as f64 / n as f64;
    assert!((f_kernel - 0.547).abs() < 0.03, "P(kernel) {f_kernel}");
    let f_llm = llm as f64 / n as f64;
    assert!((f_llm - 0.25).abs() < 0.03, "P(llm) {f_llm}");
}

/// Discrete steps stop at the grid ends: from the top of layer_size1 only - can apply.
#[test]
fn discrete_steps_stop_at_ends() {
    let mut cfg = SearchConfig::default();
    cfg.initial.layer_size1 = 1024;
    let s0 = init_state(&cfg);
    let mut s1 = update(&s0, &cfg, &sample(&s0, &cfg, 0, 0), 0.5);
    // Force layer_size1 to dominate and point up: P(+) = 0.95.
    s1.q.insert(
        Param::LayerSize1,
        QPair {
            plus: 19.0,
            minus: 1.0,
        },
    );
    for seed in 0..300 {
        let p = sample(&s1, &cfg, seed, 1);
        for m in p.mutations.iter().filter(|m| m.param == Param::LayerSize1) {
            assert_eq!(m.action, Action::Minus);
            assert_eq!(p.candidate.layer_size1, 768);
        }
    }
}

#[test]
fn evolution_fills_then_ages() {
    let cfg = SearchConfig {
        strategy: Strategy::Evolution {
            population: 3,
            sample_size: 2,
        },
        ..SearchConfig::default()
    };
    let mut s = init_state(&cfg);
    for t in 0..8u64 {
        let p = sample(&s, &cfg, 5, t);
        if t < 3 {
            assert!(p.mutations.is_empty() && p.parent.is_none(), "t {t}");
        } else {
            assert_eq!(p.mutations.len(), 1, "t {t}");
            let parent = p.parent.clone().unwrap();
            assert!(s.population.iter().any(|m| m.candidate == parent));
            assert_ne!(parent, p.candidate);
        }
        s = update(&s, &cfg, &p, 0.1 * t as f64);
    }
    let born: Vec<u64> = s.population.iter().map(|m| m.iteration).collect();
    assert_eq!(born, vec![5, 6, 7]);
}

#[test]
fn fixed_and_random() {
    let fixed = SearchConfig {
        strategy: Strategy::Fixed,
        ..SearchConfig::default()
    };
    let s = init_state(&fixed);
    let s = update(&s, &fixed, &sample(&s, &fixed, 0, 0), 0.3);
    assert_eq!(sample(&s, &fixed, 0, 1).candidate, fixed.initial);
    assert!(mutation_probabilities(&s, &fixed)
        .iter()
        .all(|p| p.1 == 0.0));

    let random = SearchConfig {
        strategy: Strategy::Random,
        ..SearchConfig::default()
    };
    let s = init_state(&random);
    let s = update(&s, &random, &sample(&s, &random, 0, 0), 0.3);
    let models: std::collections::BTreeSet<u8> = (1..200)
        .map(|t| sample(&s, &random, 9, t).candidate.model_number())
        .collect();
    assert_eq!(models.len(), 4);
    let lrs: Vec<f64> = (1..200)
        .map(|t| sample(&s, &random, 9, t).candidate.learning_rate.log10())
        .collect();
    // log-uniform: about half of the draws below 1e-4
    let below = lrs.iter().filter(|&&l| l < -4.0).count();
    assert!((70..130).contains(&below), "{below}");
}

#[test]
fn describe_lists_model_and_params() {
    let mut c = SearchConfig::default().initial;
    c.llm_branch = true;
    let d = describe(&c);
    assert_eq!(d.len(), 9);
    assert_eq!(d[0].0, "model");
    assert!(d[0].1.starts_with("2 "));
    let names: Vec<&str> = d[1..].iter().map(|(k, _)| k.as_str()).collect();
    let expected: Vec<&str> = Param::ALL.iter().map(|p| p.name()).collect();
    assert_eq!(names, expected);
    assert_eq!(d[1].1, "on");
    assert_eq!(d[3].1, "2.000e-5");
    assert_eq!(d[4].1, "0 (AdamW)");
    for p in Param::ALL {
        assert_eq!(Param::from_name(p.name()), Some(p));
    }
}

/// Stored types round-trip through bincode's serde mode, as the engine stores them.
#[test]
fn bincode_round_trip() {
    let cfg = SearchConfig {
        strategy: Strategy::Evolution {
            population: 3,
            sample_size: 2,
        },
        ..SearchConfig::default()
    };
    let bc = bincode::config::standard();
    let mut s = init_state(&cfg);
    for t in 0..6 {
        let p = sample(&s, &cfg, 3, t);
        let bytes = bincode::serde::encode_to_vec(&p, bc).unwrap();
        let (back, _): (hhnas_search::Proposal, usize) =
            bincode::serde::decode_from_slice(&bytes, bc).unwrap();
        assert_eq!(back, p);
        s = update(&s, &cfg, &p, 0.5);
    }
    let bytes = bincode::serde::encode_to_vec(&s, bc).unwrap();
    let (back, _): (hhnas_search::SearchState, usize) =
        bincode::serde::decode_from_slice(&bytes, bc).unwrap();
    assert_eq!(back, s);
    // The config is read from TOML and only hashed as bincode (keys): a field at its
    // default is left out of the hash, so it must round-trip through TOML.
    let text = toml::to_string(&cfg).unwrap();
    let back: SearchConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, cfg);
}

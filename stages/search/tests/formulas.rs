//! One test per paper formula, with numbers computed by hand.

use hhnas_search::formulas::{
    mean_update, mutation_probability, plus_probability, q_update, variance_distance,
    variance_distance_literal, variance_moment,
};
use hhnas_search::{
    arch_index_3bit, arch_index_restricted, init_state, update, Action, Candidate, Mutation, Param,
    Proposal, SearchConfig, VarianceRule,
};

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

/// The paper's worked example: a = [0,0,0], pi = [0.5, 0.75, 0.3]; with uniform draws
/// u = [0.2, 0.9, 0.1] the mutation rule (u < pi) flips p1 and p3, giving [1,0,1] = ArchIndex 5.
#[test]
fn paper_example_arch_index_5() {
    let a = [0u8, 0, 0];
    let pi = [0.5, 0.75, 0.3];
    let u = [0.2, 0.9, 0.1];
    let mut next = a;
    for i in 0..3 {
        if u[i] < pi[i] {
            next[i] ^= 1;
        }
    }
    assert_eq!(next, [1, 0, 1]);
    assert_eq!(arch_index_3bit(next), 5); // 1*4 + 0*2 + 1*1
    assert_eq!(arch_index_3bit([1, 1, 1]), 7);
    assert_eq!(arch_index_3bit([0, 0, 0]), 0);
}

/// Restricted ArchIndex = sum_{i=2..3} p_i 2^(3-i), p1 ignored; Model = ArchIndex + 1 with the
/// paper's model names (Model 2 = LLM-feature CNN, Model 3 = rule-feature CNN).
#[test]
fn restricted_arch_index_and_models() {
    assert_eq!(arch_index_restricted([1, 0, 0]), 0);
    assert_eq!(arch_index_restricted([1, 0, 1]), 1);
    assert_eq!(arch_index_restricted([1, 1, 0]), 2);
    assert_eq!(arch_index_restricted([1, 1, 1]), 3);
    let base = SearchConfig::default().initial;
    let with = |llm: bool, rule: bool| Candidate {
        llm_branch: llm,
        rule_branch: rule,
        ..base.clone()
    };
    for (llm, rule, model) in [
        (false, false, 1),
        (true, false, 2),
        (false, true, 3),
        (true, true, 4),
    ] {
        let c = with(llm, rule);
        assert_eq!(c.model_number(), model);
        assert_eq!(c.bits()[0], 1);
        assert_eq!(u32::from(c.arch_index()), arch_index_restricted(c.bits()));
        assert_eq!(c.arch_index() + 1, c.model_number());
    }
}

/// P(s) = Q(s)/max Q * maxProb; direction + with Q(s,+)/(Q(s,+)+Q(s,-)).
#[test]
fn probabilities() {
    close(mutation_probability(2.2, 2.2, 0.5), 0.5);
    close(mutation_probability(2.0, 2.2, 0.5), 2.0 / 2.2 * 0.5);
    close(mutation_probability(0.1, 4.0, 1.0), 0.025);
    close(plus_probability(1.2, 0.6), 2.0 / 3.0);
    close(plus_probability(1.0, 1.0), 0.5);
}

/// Q(s,a) <- max(q_min, Q(s,a) + alpha (r - r_parent)): up, down and the floor.
#[test]
fn q_update_up_down_floor() {
    close(q_update(1.0, 1.0, 0.8, 0.6, 0.05), 1.2);
    close(q_update(1.0, 1.0, 0.5, 0.8, 0.05), 0.7);
    close(q_update(1.0, 0.5, 0.5, 0.8, 0.05), 0.85);
    close(q_update(0.1, 1.0, 0.2, 0.9, 0.05), 0.05);
}

/// mu <- mu + k sign(s - mu)(p - p_bar), both directions of s and of p - p_bar.
#[test]
fn mean_rule_both_directions() {
    // above the mean, better than average: mean moves up
    close(mean_update(-4.0, 1.0, -3.5, 0.8, 0.6), -3.8);
    // below the mean, better than average: mean moves down
    close(mean_update(-4.0, 1.0, -4.5, 0.8, 0.6), -4.2);
    // above the mean, worse than average: mean moves down (away from the bad sample)
    close(mean_update(-4.0, 1.0, -3.5, 0.5, 0.6), -4.1);
    // below the mean, worse than average: mean moves up
    close(mean_update(-4.0, 1.0, -4.5, 0.5, 0.6), -3.9);
    // at the mean: no move
    close(mean_update(-4.0, 1.0, -4.0, 0.9, 0.1), -4.0);
}

/// Distance rule as SPEC §5 reads the prose, var = 0.25 (sigma 0.5), mu = -4, k = 0.5,
/// p - p_bar = 0.2 or -0.1. Case 2 (inside) subtracts: a good sample near the mean narrows.
#[test]
fn variance_distance_both_cases() {
    // outside: s = -3, d = 2 -> 0.25 + 0.5 * (2 - 1) * 0.2
    close(variance_distance(0.25, 0.5, -3.0, -4.0, 0.8, 0.6), 0.35);
    // inside: s = -3.75, d = 0.5 -> 0.25 - 0.5 * (1 - 0.5) * 0.2
    close(variance_distance(0.25, 0.5, -3.75, -4.0, 0.8, 0.6), 0.20);
    // inside, worse than average -> 0.25 - 0.5 * 0.5 * (-0.1)
    close(variance_distance(0.25, 0.5, -3.75, -4.0, 0.5, 0.6), 0.275);
    // outside, worse than average: s = -5, d = 2 -> 0.25 + 0.5 * 1 * (-0.1)
    close(variance_distance(0.25, 0.5, -5.0, -4.0, 0.5, 0.6), 0.20);
}

/// The paper's printed distance formula (`distance-literal`): case 2 adds.
#[test]
fn variance_distance_literal_both_cases() {
    // outside: as the prose rule
    close(
        variance_distance_literal(0.25, 0.5, -3.0, -4.0, 0.8, 0.6),
        0.35,
    );
    close(
        variance_distance_literal(0.25, 0.5, -5.0, -4.0, 0.5, 0.6),
        0.20,
    );
    // inside: s = -3.75, d = 0.5 -> 0.25 + 0.5 * (1 - 0.5) * 0.2
    close(
        variance_distance_literal(0.25, 0.5, -3.75, -4.0, 0.8, 0.6),
        0.30,
    );
    // inside, worse than average -> 0.25 + 0.5 * 0.5 * (-0.1)
    close(
        variance_distance_literal(0.25, 0.5, -3.75, -4.0, 0.5, 0.6),
        0.225,
    );
}

/// Moment rule: var + k ((s - mu)^2 - var)/var (p - p_bar).
#[test]
fn variance_moment_both_cases() {
    // (s - mu)^2 = 1 > var: (1 - 0.25)/0.25 = 3 -> 0.25 + 0.5 * 3 * 0.2
    close(variance_moment(0.25, 0.5, -3.0, -4.0, 0.8, 0.6), 0.55);
    // (s - mu)^2 = 0.0625 < var: -0.75 -> 0.25 + 0.5 * (-0.75) * 0.2
    close(variance_moment(0.25, 0.5, -3.75, -4.0, 0.8, 0.6), 0.175);
}

/// The same formulas through `update`: a hand-built proposal that raised the learning rate.
#[test]
fn update_applies_formulas_and_clamps() {
    for (rule, expected_var) in [
        // d = |(-3.5 - log10 2e-5) / 0.5|, var = 0.25 + 0.5 (d - 1) 0.2
        (VarianceRule::Distance, None),
        (VarianceRule::DistanceLiteral, None),
        (VarianceRule::Moment, Some(())),
    ] {
        let cfg = SearchConfig {
            variance_rule: rule,
            ..SearchConfig::default()
        };
        let s0 = init_state(&cfg);
        let p0 = hhnas_search::sample(&s0, &cfg, 7, 0);
        assert_eq!(p0.candidate, cfg.initial);
        let s1 = update(&s0, &cfg, &p0, 0.6);
        close(s1.mean_accuracy, 0.6);
        let mut child = cfg.initial.clone();
        child.learning_rate = 10f64.powf(-3.5);
        let prop = Proposal {
            iteration: 1,
            candidate: child.clone(),
            parent: Some(cfg.initial.clone()),
            mutations: vec![Mutation {
                param: Param::LearningRate,
                action: Action::Plus,
                from: "2e-5".into(),
                to: "3.2e-4".into(),
            }],
        };
        let s2 = update(&s1, &cfg, &prop, 0.8);
        let q = s2.q[&Param::LearningRate];
        close(q.plus, 1.2);
        close(q.minus, 1.0);
        assert_eq!(s2.q[&Param::KernelSize], s1.q[&Param::KernelSize]);
        let mu0 = 2e-5f64.log10();
        let m = s2.moments[&Param::LearningRate];
        assert!((m.mean - (mu0 + 0.2)).abs() < 1e-9);
        let d = ((-3.5 - mu0) / 0.5f64).abs();
        let var = match expected_var {
            None => 0.25 + 0.5 * (d - 1.0) * 0.2,
            Some(()) => 0.25 + 0.5 * (((-3.5 - mu0).powi(2) - 0.25) / 0.25) * 0.2,
        };
        // Moment gives 0.25 + 0.1 * (1.4375 / 0.25 - 1) = 0.725 (within [0.01, 1.0]).
        assert!((m.variance - var.clamp(0.01, 1.0)).abs() < 1e-9, "{rule:?}");
        // Dropout was not mutated: unchanged.
        assert_eq!(
            s2.moments[&Param::DropoutRate],
            s1.moments[&Param::DropoutRate]
        );
        close(s2.mean_accuracy, 0.7);
        assert_eq!(s2.parent.as_ref().unwrap().candidate, child);
        assert_eq!(s2.best.as_ref().unwrap().iteration, 1);

        // A much worse child: Q(lr,+) falls, then hits the q_min floor; the parent stays.
        let s3 = update(&s2, &cfg, &prop, 0.0);
        close(s3.q[&Param::LearningRate].plus, (1.2f64 - 0.8).max(0.05));
        let s4 = update(&s3, &cfg, &prop, 0.0);
        close(s4.q[&Param::LearningRate].plus, 0.05);
        assert_eq!(s4.parent.as_ref().unwrap().accuracy, 0.8);
    }
}

/// A flip updates Q(s,+) and Q(s,-) alike, each by half of alpha (r - r_parent) (SPEC §5).
#[test]
fn flip_updates_both_sides() {
    let cfg = SearchConfig::default();
    let s1 = update(
        &init_state(&cfg),
        &cfg,
        &hhnas_search::sample(&init_state(&cfg), &cfg, 0, 0),
        0.5,
    );
    let mut child = cfg.initial.clone();
    child.rule_branch = true;
    let prop = Proposal {
        iteration: 1,
        candidate: child,
        parent: Some(cfg.initial.clone()),
        mutations: vec![Mutation {
            param: Param::RuleBranch,
            action: Action::Flip,
            from: "off".into(),
            to: "on".into(),
        }],
    };
    let s2 = update(&s1, &cfg, &prop, 0.75);
    let q = s2.q[&Param::RuleBranch];
    // r - r_parent = 0.25: each half + 0.125, Q(s) = 2.25 (+ 0.25, as a micro move's Q(s)).
    close(q.plus, 1.125);
    close(q.minus, 1.125);
    let p = hhnas_search::mutation_probabilities(&s2, &cfg);
    assert_eq!(p[1], (Param::RuleBranch, 0.5));
    close(p[0].1, 2.0 / 2.25 * 0.5);
}

//! Synthetic benchmark: HHNAS-AM vs random search vs regularized evolution on a cheap known
//! objective over the real search space (no training). Run with
//! `cargo bench -p hhnas-search --bench synthetic`.
//!
//! Objective (a stand-in for validation accuracy, optimum 0.97): Model 4 best, then 1, 3, 2
//! (the paper's Spider ranking); a Gaussian bump in log10 learning rate centred on 1e-4;
//! AdamW best; quadratic penalties in grid position around layer_size1 = 512,
//! layer_size2 = 128, kernel_size = 5, and around dropout 0.3. The observed accuracy adds
//! N(0, 0.01) noise. Reported "best" is the true objective of the candidate the search itself
//! ranks best (by noisy accuracy), which is what a user would deploy.

use hhnas_search::{
    init_state, mutation_probabilities, rng_stream, sample, update, Candidate, ContinuousSetting,
    Reward, SearchConfig, Select, Strategy, VarianceRule,
};
use rand_distr::{Distribution, Normal};

const OPTIMUM: f64 = 0.97;
const ITERATIONS: u64 = 50;
const SEEDS: u64 = 20;
const NOISE_SD: f64 = 0.01;

fn grid_pos(grid: &[usize], v: usize) -> f64 {
    grid.iter().position(|&g| g == v).unwrap_or(0) as f64
}

/// Which synthetic landscape to score with.
#[derive(Clone, Copy)]
enum Landscape {
    /// One smooth basin (described in the module docs).
    Smooth,
    /// Two basins: a broad local optimum 0.90 around the initial candidate (Model 1, lr 2e-5)
    /// and the global optimum 0.97 far away (Model 4, lr 1e-3, layer_size1 1024, kernel 7).
    Deceptive,
    /// The smooth basin squeezed to a tenth (every candidate within about 2.5 points of
    /// 0.955, as on the frozen demo) with noise sd 0.002: the scale at which the paper's
    /// reward hardly moves the Q-table.
    Flat,
}

impl Landscape {
    fn noise_sd(self) -> f64 {
        match self {
            Landscape::Flat => 0.002,
            _ => NOISE_SD,
        }
    }

    fn optimum(self) -> f64 {
        match self {
            Landscape::Flat => FLAT_TOP,
            _ => OPTIMUM,
        }
    }

    /// "Reached": within 1 % of the optimum, on the flat landscape within the same share
    /// of its squeezed range.
    fn reach_gap(self) -> f64 {
        match self {
            Landscape::Flat => 0.1 * 0.01 * OPTIMUM,
            _ => 0.01 * OPTIMUM,
        }
    }
}

/// The best value of the flat landscape.
const FLAT_TOP: f64 = 0.955;

fn objective(c: &Candidate, cfg: &SearchConfig, land: Landscape) -> f64 {
    match land {
        Landscape::Smooth => smooth(c, cfg),
        Landscape::Deceptive => deceptive(c, cfg),
        Landscape::Flat => FLAT_TOP - 0.1 * (OPTIMUM - smooth(c, cfg)),
    }
}

fn deceptive(c: &Candidate, cfg: &SearchConfig) -> f64 {
    let bump = |x: f64, w: f64| 1.0 - (-(x * x) / (2.0 * w * w)).exp();
    let lr = c.learning_rate.log10();
    let l1 = grid_pos(&cfg.space.layer_size1, c.layer_size1);
    let k = grid_pos(&cfg.space.kernel_size, c.kernel_size);
    let crit = [0.0, 0.06, 0.03][usize::from(c.criterion_num).min(2)];
    let drop = 0.3 * (c.dropout_rate - 0.2).powi(2);
    let local = 0.90
        - if c.model_number() == 1 { 0.0 } else { 0.06 }
        - 0.2 * bump(lr + 4.7, 0.5)
        - 0.01 * (l1 - 2.0).powi(2)
        - 0.01 * (k - 1.0).powi(2)
        - crit
        - drop;
    let global = OPTIMUM
        - if c.model_number() == 4 { 0.0 } else { 0.15 }
        - 0.3 * bump(lr + 3.0, 0.4)
        - 0.015 * (l1 - 5.0).powi(2)
        - 0.015 * (k - 3.0).powi(2)
        - crit
        - drop;
    local.max(global)
}

fn smooth(c: &Candidate, cfg: &SearchConfig) -> f64 {
    let model = match c.model_number() {
        4 => 0.0,
        1 => 0.04,
        3 => 0.07,
        _ => 0.10,
    };
    let x = c.learning_rate.log10() + 4.0;
    let lr = 0.25 * (1.0 - (-(x * x) / (2.0 * 0.6 * 0.6)).exp());
    let crit = [0.0, 0.06, 0.03][usize::from(c.criterion_num).min(2)];
    let l1 = 0.01 * (grid_pos(&cfg.space.layer_size1, c.layer_size1) - 3.0).powi(2);
    let l2 = 0.01 * (grid_pos(&cfg.space.layer_size2, c.layer_size2) - 2.0).powi(2);
    let drop = 0.3 * (c.dropout_rate - 0.3).powi(2);
    let kernel = 0.01 * (grid_pos(&cfg.space.kernel_size, c.kernel_size) - 2.0).powi(2);
    OPTIMUM - model - lr - crit - l1 - l2 - drop - kernel
}

struct RunResult {
    best_true: f64,
    best_model: u8,
    /// max - min of P(s) over the parameters after the last update.
    p_spread: f64,
    /// First iteration whose candidate is within 1% of the optimum (true objective).
    reached: Option<u64>,
}

fn run(cfg: &SearchConfig, seed: u64, land: Landscape) -> RunResult {
    let noise = Normal::new(0.0, land.noise_sd()).expect("valid sd");
    let mut state = init_state(cfg);
    let mut reached = None;
    for t in 0..ITERATIONS {
        let p = sample(&state, cfg, seed, t);
        let truth = objective(&p.candidate, cfg, land);
        if reached.is_none() && truth >= land.optimum() - land.reach_gap() {
            reached = Some(t);
        }
        let mut rng = rng_stream(seed, t, "bench/noise");
        let acc = (truth + noise.sample(&mut rng)).clamp(0.0, 1.0);
        state = update(&state, cfg, &p, acc);
    }
    let best = state.best.as_ref().expect("50 evaluations");
    let probs: Vec<f64> = mutation_probabilities(&state, cfg)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let p_spread = probs.iter().cloned().fold(f64::MIN, f64::max)
        - probs.iter().cloned().fold(f64::MAX, f64::min);
    RunResult {
        p_spread,
        best_true: objective(&best.candidate, cfg, land),
        best_model: best.candidate.model_number(),
        reached,
    }
}

/// The rank reward with the step sizes the demo profile uses (pipeline.toml): the Q step and
/// the moments move by at most alpha / k per evaluation, in units of "better than every
/// recent one".
pub fn rank_config(base: &SearchConfig) -> SearchConfig {
    SearchConfig {
        reward: Reward::Rank { window: 10 },
        alpha: 0.25,
        learning_rate: ContinuousSetting {
            k_mean: 0.1,
            k_var: 0.05,
            ..base.learning_rate.clone()
        },
        dropout_rate: ContinuousSetting {
            k_mean: 0.02,
            k_var: 0.002,
            ..base.dropout_rate.clone()
        },
        ..base.clone()
    }
}

fn main() {
    let base = SearchConfig::default();
    let variants: Vec<(&str, SearchConfig)> = vec![
        ("hhnas rank reward (demo profile)", rank_config(&base)),
        ("hhnas (distance, greedy)", base.clone()),
        (
            "hhnas (distance-literal, greedy)",
            SearchConfig {
                variance_rule: VarianceRule::DistanceLiteral,
                ..base.clone()
            },
        ),
        (
            "hhnas (moment, greedy)",
            SearchConfig {
                variance_rule: VarianceRule::Moment,
                ..base.clone()
            },
        ),
        (
            "hhnas (distance, always)",
            SearchConfig {
                select: Select::Always,
                ..base.clone()
            },
        ),
        (
            "hhnas, no adaptation (alpha=0, k=0)",
            SearchConfig {
                alpha: 0.0,
                learning_rate: hhnas_search::ContinuousSetting {
                    k_mean: 0.0,
                    k_var: 0.0,
                    ..base.learning_rate.clone()
                },
                dropout_rate: hhnas_search::ContinuousSetting {
                    k_mean: 0.0,
                    k_var: 0.0,
                    ..base.dropout_rate.clone()
                },
                ..base.clone()
            },
        ),
        (
            "random",
            SearchConfig {
                strategy: Strategy::Random,
                ..base.clone()
            },
        ),
        (
            "evolution (pop 10, tournament 3)",
            SearchConfig {
                strategy: Strategy::Evolution {
                    population: 10,
                    sample_size: 3,
                },
                ..base.clone()
            },
        ),
    ];
    for (land, name) in [
        (Landscape::Smooth, "smooth"),
        (
            Landscape::Deceptive,
            "deceptive (local 0.90 near the start, global 0.97 far)",
        ),
        (
            Landscape::Flat,
            "flat (the smooth one at a tenth of its scale, as on the frozen demo)",
        ),
    ] {
        table(&variants, &base, land, name);
    }
}

fn table(variants: &[(&str, SearchConfig)], base: &SearchConfig, land: Landscape, title: &str) {
    println!(
        "\n{title} objective, optimum {}, noise sd {}, {ITERATIONS} iterations x {SEEDS} seeds; \
         initial candidate scores {:.4}",
        land.optimum(),
        land.noise_sd(),
        objective(&base.initial, base, land)
    );
    println!(
        "{:<38} {:>10} {:>8} {:>8} {:>10} {:>12} {:>9} {:>9}",
        "strategy", "mean best", "sd", "worst", "reached1%", "mean iter", "Model4", "P spread"
    );
    let mut summary = Vec::new();
    for (name, cfg) in variants {
        cfg.validate().expect("valid config");
        let results: Vec<RunResult> = (0..SEEDS).map(|s| run(cfg, 1000 + s, land)).collect();
        let n = results.len() as f64;
        let mean = results.iter().map(|r| r.best_true).sum::<f64>() / n;
        let sd = (results
            .iter()
            .map(|r| (r.best_true - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0))
            .sqrt();
        let worst = results
            .iter()
            .map(|r| r.best_true)
            .fold(f64::INFINITY, f64::min);
        let hits: Vec<u64> = results.iter().filter_map(|r| r.reached).collect();
        let mean_iter = if hits.is_empty() {
            "not reached".to_string()
        } else {
            format!("{:.1}", hits.iter().sum::<u64>() as f64 / hits.len() as f64)
        };
        let m4 = results.iter().filter(|r| r.best_model == 4).count();
        let spread = results.iter().map(|r| r.p_spread).sum::<f64>() / n;
        println!(
            "{:<38} {:>10.4} {:>8.4} {:>8.4} {:>7}/{:<2} {:>12} {:>6}/{:<2} {:>9.3}",
            name,
            mean,
            sd,
            worst,
            hits.len(),
            SEEDS,
            mean_iter,
            m4,
            SEEDS,
            spread
        );
        summary.push((name.to_string(), mean));
    }
    let winner = summary
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("variants");
    println!(
        "highest mean best-found: {} ({:.4}); 'mean iter' averages only the runs that reached \
         within 1% of the optimum",
        winner.0, winner.1
    );
}

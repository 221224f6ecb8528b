//! Writes a report of two synthetic runs into the directory given as first argument
//! (default `report-demo`), to eyeball the charts: `cargo run -p hhnas-report --example demo_report`.

use hhnas_report::*;

fn synthetic(run_id: &str, strategy: &str, seed: u64) -> RunRecord {
    let names: Vec<String> = [
        "p2",
        "p3",
        "learning_rate",
        "criterion_num",
        "layer_size1",
        "layer_size2",
        "dropout_rate",
        "kernel_size",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // A cheap deterministic pseudo-random walk; no RNG dependency needed for a demo.
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as f64 / (1u64 << 31) as f64
    };
    let iterations: Vec<IterationRecord> = (0..60)
        .map(|i| {
            let model = 1 + (next() * 4.0) as u8 % 4;
            let base = [0.80, 0.70, 0.83, 0.86][model as usize - 1];
            let probs = (0..names.len()).map(|_| 0.1 + 0.4 * next()).collect();
            IterationRecord {
                iteration: i,
                model,
                params: vec![(
                    "learning_rate".into(),
                    format!("{:.2e}", 10f64.powf(-6.0 + 4.0 * next())),
                )],
                valid_acc: (base + 0.08 * (next() - 0.5) + 0.001 * i as f64).min(1.0),
                wall_secs: 30.0 + 10.0 * next(),
                cached: false,
                mutation_probs: probs,
            }
        })
        .collect();
    let best = iterations
        .iter()
        .max_by(|a, b| a.valid_acc.total_cmp(&b.valid_acc))
        .map(|b| BestCandidate {
            iteration: b.iteration,
            model: b.model,
            params: b.params.clone(),
            valid_acc: b.valid_acc,
            test_acc: Some(b.valid_acc - 0.01),
        });
    RunRecord {
        run_id: run_id.into(),
        strategy: strategy.into(),
        seed,
        iterations,
        best,
        mutation_probs_names: names,
        baseline_test_acc: None,
        final_model: None,
        state: "finished".into(),
        planned_iterations: 0,
        cross_fit_folds: None,
    }
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "report-demo".into());
    let input = ReportInput {
        runs: vec![
            synthetic("am-1", "hhnas-am", 1),
            synthetic("rand-1", "random", 2),
        ],
    };
    match write_report(&input, out.as_ref(), ReportFiles::All) {
        Ok(files) => files.iter().for_each(|f| println!("{}", f.display())),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

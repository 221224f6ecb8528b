//! Table 3 on hand-made numbers, Markdown rows, CSV rows, SVG files.

use hhnas_report::*;

fn it(iteration: usize, model: u8, valid_acc: f64, probs: &[f64]) -> IterationRecord {
    IterationRecord {
        iteration,
        model,
        params: vec![
            ("learning_rate".into(), format!("1e-{}", 3 + iteration % 2)),
            ("kernel_size".into(), "3".into()),
        ],
        valid_acc,
        wall_secs: 10.0,
        cached: iteration == 0,
        mutation_probs: probs.to_vec(),
    }
}

fn run(id: &str) -> RunRecord {
    RunRecord {
        run_id: id.into(),
        strategy: "hhnas-am".into(),
        seed: 3,
        iterations: vec![
            it(0, 1, 0.50, &[0.5, 0.5]),
            it(1, 3, 0.62, &[0.5, 0.4]),
            it(2, 4, 0.71, &[0.45, 0.5]),
            it(3, 3, 0.60, &[0.3, 0.5]),
            it(4, 4, 0.71, &[0.2, 0.5]),
            it(5, 3, 0.65, &[0.25, 0.5]),
            it(6, 4, f64::NAN, &[0.25, 0.5]),
            it(7, 4, 0.55, &[0.25, 0.45]),
        ],
        best: Some(BestCandidate {
            iteration: 2,
            model: 4,
            params: vec![("learning_rate".into(), "1e-3".into())],
            valid_acc: 0.71,
            test_acc: Some(0.6875),
        }),
        mutation_probs_names: vec!["p2".into(), "learning_rate".into()],
        baseline_test_acc: None,
        final_model: None,
        state: "running".into(),
        planned_iterations: 10,
        cross_fit_folds: None,
    }
}

#[test]
fn the_best_is_put_beside_the_baseline_and_a_loss_is_said_plainly() {
    let mut r = run("r");
    assert!(!render_markdown(&ReportInput {
        runs: vec![r.clone()]
    })
    .contains("SVM alone"));
    r.baseline_test_acc = Some(0.65);
    let md = render_markdown(&ReportInput {
        runs: vec![r.clone()],
    });
    assert!(
        md.contains("scores 0.6500 test") && md.contains("1.058x it, above it"),
        "{md}"
    );
    r.baseline_test_acc = Some(0.70);
    let md = render_markdown(&ReportInput { runs: vec![r] });
    assert!(md.contains("0.982x it, **not above it"), "{md}");
}

#[test]
fn table3_counts_max_min_and_iteration_of_max() {
    let t = table3(&run("r"));
    assert_eq!(t.len(), 3, "model 2 never evaluated");
    let m = |k: u8| t.iter().find(|s| s.model == k).unwrap().clone();
    assert_eq!(
        (m(1).count, m(1).max_valid, m(1).min_valid, m(1).iter_of_max),
        (1, 0.50, 0.50, 0)
    );
    assert_eq!(
        (m(3).count, m(3).max_valid, m(3).min_valid, m(3).iter_of_max),
        (3, 0.65, 0.60, 5)
    );
    // Tie at 0.71 keeps the earliest iteration; the failed (NaN) one counts but is not compared.
    assert_eq!(
        (m(4).count, m(4).max_valid, m(4).min_valid, m(4).iter_of_max),
        (4, 0.71, 0.55, 2)
    );
    assert_eq!(t.iter().map(|s| s.model).collect::<Vec<_>>(), [1, 3, 4]);
}

#[test]
fn best_so_far_is_monotone() {
    let b = best_so_far(&run("r"));
    let v: Vec<f64> = b.iter().map(|p| p.1).collect();
    assert_eq!(v, [0.5, 0.62, 0.71, 0.71, 0.71, 0.71, 0.71, 0.71]);
}

#[test]
fn markdown_has_table3_rows_and_best() {
    let md = render_markdown(&ReportInput {
        runs: vec![run("run-a")],
    });
    assert!(md.contains("| Model 3 | 3 | 0.6500 | 0.6000 | 5 |"), "{md}");
    assert!(md.contains("| Model 4 | 4 | 0.7100 | 0.5500 | 2 |"), "{md}");
    assert!(md.contains("| Model 2 | 0 | - | - | - |"), "{md}");
    assert!(
        md.contains("Model 4 at iteration 2: validation accuracy 0.7100, test accuracy 0.6875."),
        "{md}"
    );
    assert!(md.contains("| learning_rate | 0.450 |"), "final P(s): {md}");
    assert!(md.contains("(accuracy.svg)") && md.contains("(mutation_probs.svg)"));
    assert!(!md.contains("Runs compared"));
    assert!(md.contains("8 iterations (1 replayed from cache)"));
    assert!(!md.contains("cross-fitted"));
}

#[test]
fn a_cross_fitted_run_says_its_validation_figures_are_out_of_fold() {
    let md = render_markdown(&ReportInput {
        runs: vec![RunRecord {
            cross_fit_folds: Some(5),
            ..run("run-a")
        }],
    });
    assert!(
        md.contains("cross-fitted over 5 folds: every validation figure below is out of fold"),
        "{md}"
    );
}

#[test]
fn markdown_compares_several_runs() {
    let mut b = run("run/b");
    b.strategy = "random".into();
    b.best = None;
    let md = render_markdown(&ReportInput {
        runs: vec![run("run-a"), b],
    });
    assert!(md.contains("## Runs compared"));
    assert!(
        md.contains("| run-a | hhnas-am | 3 | 8 | 0.7100 | 0.6875 | Model 4 | 2 |"),
        "{md}"
    );
    assert!(
        md.contains("| run/b | random | 3 | 8 | - | - | - | - |"),
        "{md}"
    );
    assert!(md.contains("(best_so_far.svg)") && md.contains("(accuracy_run_b.svg)"));
}

#[test]
fn csv_has_one_row_per_run_iteration() {
    let csv = render_csv(&ReportInput {
        runs: vec![run("a"), run("b")],
    });
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 16);
    assert_eq!(
        lines[0],
        "run_id,strategy,seed,iteration,model,valid_acc,best_so_far,wall_secs,cached,learning_rate,kernel_size,P(p2),P(learning_rate)"
    );
    assert_eq!(
        lines[2],
        "a,hhnas-am,3,1,3,0.62,0.62,10,false,1e-4,3,0.5,0.4"
    );
    assert_eq!(
        lines[7], "a,hhnas-am,3,6,4,,0.71,10,false,1e-3,3,0.25,0.5",
        "NaN accuracy as blank"
    );
    assert!(lines[9].starts_with("b,"));
}

#[test]
fn write_report_writes_nonempty_svgs() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = run("b");
    b.iterations.truncate(1);
    let input = ReportInput {
        runs: vec![
            run("a"),
            b,
            RunRecord {
                run_id: "empty".into(),
                ..Default::default()
            },
        ],
    };
    let files = write_report(&input, &dir.path().join("out"), ReportFiles::All).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names[0], "report.md");
    assert_eq!(names[1], "report.html");
    assert_eq!(names[2], "iterations.csv");
    for n in [
        "accuracy_a.svg",
        "accuracy_a.png",
        "mutation_probs_a.svg",
        "mutation_probs_a.png",
        "accuracy_empty.svg",
        "best_so_far.svg",
        "best_so_far.png",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    // report.md, report.html, iterations.csv; 7 charts as SVG and PNG.
    assert_eq!(files.len(), 3 + 7 * 2);
    for f in &files {
        let body = std::fs::read(f).unwrap();
        assert!(!body.is_empty(), "{f:?} empty");
        match f.extension().unwrap().to_str().unwrap() {
            "svg" => {
                let body = String::from_utf8(body).unwrap();
                assert!(
                    body.starts_with("<svg") && body.trim_end().ends_with("</svg>"),
                    "{f:?}"
                );
                // The PNG is the same figure at twice the size.
                let png = std::fs::read(f.with_extension("png")).unwrap();
                let pixmap = resvg::tiny_skia::Pixmap::decode_png(&png).unwrap();
                let width: u32 = attribute(&body, "width");
                assert_eq!(pixmap.width(), 2 * width, "{f:?}");
            }
            "png" => assert!(body.starts_with(b"\x89PNG"), "{f:?}"),
            _ => {}
        }
    }
    // Every chart inline, nothing fetched, and a reload while a run is live.
    let html = std::fs::read_to_string(dir.path().join("out/report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 7);
    assert!(!html.contains("<img") && !html.contains("<script"));
    assert!(html.contains("<meta http-equiv=\"refresh\""));
    assert!(
        html.contains("<table>")
            && html.contains("State: <strong>running</strong> (8 of 10 iterations)")
    );
    let acc = std::fs::read_to_string(dir.path().join("out/accuracy_a.svg")).unwrap();
    assert!(
        acc.contains("Model 4: 4 evaluated, max 0.7100"),
        "panel caption"
    );
    assert!(acc.contains("<circle"), "markers drawn");
    let probs = std::fs::read_to_string(dir.path().join("out/mutation_probs_a.svg")).unwrap();
    assert!(probs.contains("learning_rate") && probs.contains("<polyline"));
    let best = std::fs::read_to_string(dir.path().join("out/best_so_far.svg")).unwrap();
    assert!(best.contains("a (hhnas-am, seed 3)"));
}

#[test]
fn single_run_uses_plain_chart_names_and_empty_input_renders() {
    let names = chart_names(&ReportInput {
        runs: vec![run("x")],
    });
    assert_eq!(names.runs[0].accuracy, "accuracy.svg");
    assert!(names.best_so_far.is_none());
    assert!(render_markdown(&ReportInput::default()).contains("No runs recorded."));
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        write_report(&ReportInput::default(), dir.path(), ReportFiles::All)
            .unwrap()
            .len(),
        3
    );
}

/// The value of the first `name="..."` attribute in `svg`.
fn attribute(svg: &str, name: &str) -> u32 {
    let start = svg.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    let len = svg[start..].find('"').unwrap();
    svg[start..start + len].parse().unwrap()
}

/// The model after the search is shown beside the best single candidate, with the refit
/// row when there is one, and a loss to the best single is said plainly.
#[test]
fn the_final_model_is_put_beside_the_best_single_candidate() {
    let mut r = run("ens");
    r.final_model = Some(hhnas_report::FinalModel {
        kind: "ensemble of 2 candidates, refit on train+valid".into(),
        members: vec![(2, 3), (4, 1)],
        valid_acc: 0.74,
        test_acc: 0.7001,
        selected_test_acc: 0.6950,
        single_test_acc: 0.6875,
        refit: true,
    });
    let md = hhnas_report::render_markdown(&ReportInput {
        runs: vec![r.clone()],
    });
    assert!(
        md.contains("### The model in use: ensemble of 2 candidates, refit on train+valid"),
        "{md}"
    );
    assert!(
        md.contains("| best single candidate | 0.7100 | 0.6875 |"),
        "{md}"
    );
    assert!(
        md.contains("| ensemble as selected | 0.7400 | 0.6950 |"),
        "{md}"
    );
    assert!(
        md.contains("refit on training + validation rows | (trained on them) | 0.7001 |"),
        "{md}"
    );
    assert!(
        md.contains("Members: iteration 2 x3, iteration 4 x1"),
        "{md}"
    );
    assert!(md.contains("is above the best"), "{md}");
    r.final_model.as_mut().unwrap().test_acc = 0.68;
    let md = hhnas_report::render_markdown(&ReportInput { runs: vec![r] });
    assert!(md.contains("**below**"), "{md}");
    let plain = hhnas_report::render_markdown(&ReportInput {
        runs: vec![run("single")],
    });
    assert!(plain.contains("use the best single candidate"), "{plain}");
}

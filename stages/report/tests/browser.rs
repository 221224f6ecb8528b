//! The HTML report in a real headless browser (Debian's `chromium`): the page of a comparison
//! of two runs loads without console errors, its DOM holds the inline charts, and a
//! screenshot shows them (coloured chart lines, not a blank or text-only page). Skipped, with
//! the reason printed, where no browser is installed (`apt install chromium`, or
//! `HHNAS_CHROMIUM=/path/to/browser`).

use std::path::{Path, PathBuf};
use std::process::Command;

use hhnas_report::{
    write_report, BestCandidate, IterationRecord, ReportFiles, ReportInput, RunRecord,
};

fn browser() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HHNAS_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

fn run(id: &str, seed: u64, state: &str) -> RunRecord {
    let names: Vec<String> = ["learning_rate", "dropout_rate", "kernel_size"]
        .map(String::from)
        .to_vec();
    let iterations: Vec<IterationRecord> = (0..12)
        .map(|i| IterationRecord {
            iteration: i,
            model: (i % 4 + 1) as u8,
            params: vec![(
                "learning_rate".into(),
                format!("{:.4}", 0.001 * (i + 1) as f64),
            )],
            valid_acc: 0.80 + 0.01 * ((i * 7 + seed as usize) % 13) as f64,
            wall_secs: 3.0,
            cached: false,
            mutation_probs: vec![0.5 + 0.02 * i as f64, 0.5 - 0.02 * i as f64, 0.5],
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
        run_id: id.into(),
        strategy: "hhnas".into(),
        seed,
        iterations,
        best,
        mutation_probs_names: names,
        baseline_test_acc: Some(0.85),
        state: state.into(),
        planned_iterations: 12,
        cross_fit_folds: None,
        ..RunRecord::default()
    }
}

fn chromium(browser: &Path, args: &[&str], page: &Path) -> std::process::Output {
    let url = format!("file://{}", page.display());
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .args(args)
        .arg(&url)
        .output()
        .expect("browser starts")
}

#[test]
fn html_report_loads_in_a_headless_browser_and_shows_the_plots() {
    let Some(browser) = browser() else {
        eprintln!("skipped: no chromium on PATH (apt install chromium, or set HHNAS_CHROMIUM)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = ReportInput {
        runs: vec![run("run-a", 0, "finished"), run("run-b", 1, "running")],
    };
    write_report(&input, dir.path(), ReportFiles::All).unwrap();
    let page = dir.path().join("report.html");

    let dom = chromium(&browser, &["--dump-dom"], &page);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let html = String::from_utf8_lossy(&dom.stdout);
    // Five inline charts: best-so-far, and accuracy + P(s) per run.
    assert_eq!(html.matches("<svg").count(), 5, "{html}");
    assert!(html.contains("Runs compared") && html.contains("run-b: running"));
    let log = String::from_utf8_lossy(&dom.stderr);
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("net::ERR"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");

    let shot = dir.path().join("shot.png");
    let arg = format!("--screenshot={}", shot.display());
    let out = chromium(&browser, &[&arg, "--window-size=1200,3000"], &page);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pixmap = resvg::tiny_skia::Pixmap::load_png(&shot).expect("a PNG screenshot");
    // Chart lines are coloured; text, tables and the page are grey or white.
    let coloured = pixmap
        .pixels()
        .iter()
        .filter(|p| {
            let (r, g, b) = (p.red() as i32, p.green() as i32, p.blue() as i32);
            r.max(g).max(b) - r.min(g).min(b) > 80
        })
        .count();
    assert!(
        coloured > 2_000,
        "only {coloured} coloured pixels: the plots do not show"
    );
}

//! The report as Markdown and CSV.

use std::fmt::Write;

use crate::charts::{chart_names, ChartNames, RunCharts};
use crate::summary::table3;
use crate::types::{ReportInput, RunRecord};

fn acc(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        "failed".to_string()
    }
}

/// Markdown cells must not contain raw `|` or newlines.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn params_text(p: &[(String, String)]) -> String {
    p.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The whole report as Markdown: per run a summary, Table 3, the best candidate, the final
/// P(s) and links to the charts `write_report` writes next to it; with several runs, a
/// comparison table first.
pub fn render_markdown(input: &ReportInput) -> String {
    let names = chart_names(input);
    let mut md = String::new();
    let _ = writeln!(md, "# HHNAS-AM search report\n");
    if input.runs.is_empty() {
        let _ = writeln!(md, "No runs recorded.");
        return md;
    }
    if input.runs.len() > 1 {
        runs_compared(&mut md, input, &names);
    }
    for (r, n) in input.runs.iter().zip(&names.runs) {
        run_section(&mut md, r, n);
    }
    md
}

/// The table of every run's best candidate, and the best-so-far chart.
fn runs_compared(md: &mut String, input: &ReportInput, names: &ChartNames) {
    let _ = writeln!(md, "## Runs compared\n");
    let _ = writeln!(
        md,
        "| run | strategy | seed | iterations | best valid acc | test acc of best | best model | iteration of best |"
    );
    let _ = writeln!(
        md,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for r in &input.runs {
        let (bv, bt, bm, bi) = match &r.best {
            Some(b) => (
                acc(b.valid_acc),
                b.test_acc.map(acc).unwrap_or_else(|| "-".into()),
                format!("Model {}", b.model),
                b.iteration.to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {bv} | {bt} | {bm} | {bi} |",
            cell(&r.run_id),
            cell(&r.strategy),
            r.seed,
            r.iterations.len()
        );
    }
    if let Some(name) = &names.best_so_far {
        let _ = writeln!(md, "\n![best validation accuracy so far per run]({name})\n");
    }
}

/// One run: its summary line, Table 3, the best candidate, the top five, P(s), charts.
fn run_section(md: &mut String, r: &RunRecord, n: &RunCharts) {
    let cached = r.iterations.iter().filter(|i| i.cached).count();
    let wall: f64 = r
        .iterations
        .iter()
        .map(|i| i.wall_secs)
        .filter(|w| w.is_finite())
        .sum();
    let _ = writeln!(md, "## Run {}\n", cell(&r.run_id));
    if !r.state.is_empty() {
        let planned = if r.planned_iterations > 0 {
            format!(
                " ({} of {} iterations)",
                r.iterations.len(),
                r.planned_iterations
            )
        } else {
            String::new()
        };
        let _ = writeln!(md, "State: **{}**{planned}.\n", r.state);
    }
    let _ = writeln!(
        md,
        "Strategy `{}`, seed {}, {} iterations ({} replayed from cache), training wall time {:.1} s.\n",
        r.strategy,
        r.seed,
        r.iterations.len(),
        cached,
        wall
    );
    baseline_line(md, r);
    if let Some(k) = r.cross_fit_folds {
        let _ = writeln!(
            md,
            "Candidates are cross-fitted over {k} folds: every validation figure below is \
             out of fold over the training and validation rows.\n"
        );
    }
    let _ = writeln!(md, "### Models (Table 3)\n");
    let _ = writeln!(
        md,
        "| model | evaluated | max valid acc | min valid acc | iteration of max |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: |");
    table3_section(md, r);
    best_section(md, r);
    final_section(md, r);
    top_section(md, r);
    probs_section(md, r);
    let _ = writeln!(
        md,
        "![validation accuracy per model over iterations]({})\n",
        n.accuracy
    );
    let _ = writeln!(
        md,
        "![mutation probabilities over iterations]({})\n",
        n.probs
    );
}

/// The best candidate beside the simple baseline, said plainly when it does not beat it.
fn baseline_line(md: &mut String, r: &RunRecord) {
    let (Some(best), Some(base)) = (
        r.best.as_ref().and_then(|b| b.test_acc),
        r.baseline_test_acc,
    ) else {
        return;
    };
    let verdict = if best > base {
        "above it"
    } else {
        "**not above it: the hybrid does not beat this simple baseline**"
    };
    let _ = writeln!(
        md,
        "The character n-gram SVM alone scores {} test on the same split; the best candidate's \
         test accuracy, {}, is {:.3}x it, {verdict}.\n",
        acc(base),
        acc(best),
        best / base
    );
}

/// The model after the search beside the best single candidate, and which one eval and
/// predict use.
fn final_section(md: &mut String, r: &RunRecord) {
    let Some(f) = &r.final_model else {
        if r.best.is_some() {
            let _ = writeln!(
                md,
                "`eval` and `predict` use the best single candidate (no ensemble was built).\n"
            );
        }
        return;
    };
    let _ = writeln!(md, "### The model in use: {}\n", f.kind);
    let _ = writeln!(md, "| model | valid acc | test acc |");
    let _ = writeln!(md, "| --- | ---: | ---: |");
    let single_valid = r
        .best
        .as_ref()
        .map(|b| acc(b.valid_acc))
        .unwrap_or("-".into());
    let _ = writeln!(
        md,
        "| best single candidate | {single_valid} | {} |",
        acc(f.single_test_acc)
    );
    let selected = if f.members.len() > 1 || f.members.first().is_some_and(|m| m.1 > 1) {
        "ensemble as selected"
    } else {
        "selected candidate"
    };
    let _ = writeln!(
        md,
        "| {selected} | {} | {} |",
        acc(f.valid_acc),
        acc(f.selected_test_acc)
    );
    if f.refit {
        let _ = writeln!(
            md,
            "| the same, refit on training + validation rows | (trained on them) | {} |",
            acc(f.test_acc)
        );
    }
    let members: Vec<String> = f
        .members
        .iter()
        .map(|(i, p)| format!("iteration {i} x{p}"))
        .collect();
    let _ =
        writeln!(
        md,
        "\nMembers: {}. `eval` and `predict` use this model{}; its test accuracy is {} the best \
         single candidate's.\n",
        members.join(", "),
        if f.refit { " with the refit weights" } else { "" },
        if f.test_acc > f.single_test_acc {
            "above"
        } else if f.test_acc == f.single_test_acc {
            "equal to"
        } else {
            "**below**"
        }
    );
}

/// Table 3 of the paper: per model, how many were evaluated and their best and worst.
fn table3_section(md: &mut String, r: &RunRecord) {
    let t3 = table3(r);
    for m in 1..=4u8 {
        match t3.iter().find(|s| s.model == m) {
            Some(s) => {
                let _ = writeln!(
                    md,
                    "| Model {} | {} | {} | {} | {} |",
                    m,
                    s.count,
                    acc(s.max_valid),
                    acc(s.min_valid),
                    s.iter_of_max
                );
            }
            None => {
                let _ = writeln!(md, "| Model {m} | 0 | - | - | - |");
            }
        }
    }
    // Models outside 1-4 would be an engine bug; still show them rather than hide data.
    for s in t3.iter().filter(|s| !(1..=4).contains(&s.model)) {
        let _ = writeln!(
            md,
            "| Model {} | {} | {} | {} | {} |",
            s.model,
            s.count,
            acc(s.max_valid),
            acc(s.min_valid),
            s.iter_of_max
        );
    }
    let _ = writeln!(md);
}

fn best_section(md: &mut String, r: &RunRecord) {
    if let Some(b) = &r.best {
        let _ = writeln!(md, "### Best candidate\n");
        let _ = writeln!(
            md,
            "Model {} at iteration {}: validation accuracy {}, test accuracy {}.\n",
            b.model,
            b.iteration,
            acc(b.valid_acc),
            b.test_acc.map(acc).unwrap_or_else(|| "not computed".into())
        );
        if !b.params.is_empty() {
            let _ = writeln!(md, "| parameter | value |");
            let _ = writeln!(md, "| --- | --- |");
            for (k, v) in &b.params {
                let _ = writeln!(md, "| {} | {} |", cell(k), cell(v));
            }
            let _ = writeln!(md);
        }
    }
}

/// The five candidates with the highest validation accuracy.
fn top_section(md: &mut String, r: &RunRecord) {
    let mut top: Vec<&crate::types::IterationRecord> = r
        .iterations
        .iter()
        .filter(|i| i.valid_acc.is_finite())
        .collect();
    // Stable sort: ties keep iteration order.
    top.sort_by(|a, b| b.valid_acc.total_cmp(&a.valid_acc));
    if !top.is_empty() {
        let _ = writeln!(md, "### Top candidates\n");
        let _ = writeln!(md, "| iteration | model | valid acc | parameters |");
        let _ = writeln!(md, "| ---: | ---: | ---: | --- |");
        for it in top.iter().take(5) {
            let _ = writeln!(
                md,
                "| {} | Model {} | {} | {} |",
                it.iteration,
                it.model,
                acc(it.valid_acc),
                cell(&params_text(&it.params))
            );
        }
        let _ = writeln!(md);
    }
}

/// The mutation probabilities after the last iteration.
fn probs_section(md: &mut String, r: &RunRecord) {
    if let Some(last) = r.iterations.last() {
        if !r.mutation_probs_names.is_empty() && !last.mutation_probs.is_empty() {
            let _ = writeln!(
                md,
                "### Mutation probabilities P(s) after iteration {}\n",
                last.iteration
            );
            let _ = writeln!(md, "| parameter | P(s) |");
            let _ = writeln!(md, "| --- | ---: |");
            for (name, p) in r.mutation_probs_names.iter().zip(&last.mutation_probs) {
                let _ = writeln!(md, "| {} | {:.3} |", cell(name), p);
            }
            let _ = writeln!(md);
        }
    }
}

/// One CSV row per run x iteration: run_id, strategy, seed, iteration, model, valid_acc,
/// best_so_far, wall_secs, cached, then one column per parameter name and one `P(<name>)`
/// column per mutation-probability name (union over runs, first-seen order; empty where a
/// run lacks it).
pub fn render_csv(input: &ReportInput) -> String {
    let mut param_cols: Vec<&str> = Vec::new();
    let mut prob_cols: Vec<&str> = Vec::new();
    for r in &input.runs {
        for it in &r.iterations {
            for (k, _) in &it.params {
                if !param_cols.contains(&k.as_str()) {
                    param_cols.push(k);
                }
            }
        }
        for n in &r.mutation_probs_names {
            if !prob_cols.contains(&n.as_str()) {
                prob_cols.push(n);
            }
        }
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = [
        "run_id",
        "strategy",
        "seed",
        "iteration",
        "model",
        "valid_acc",
        "best_so_far",
        "wall_secs",
        "cached",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(param_cols.iter().map(|s| s.to_string()));
    header.extend(prob_cols.iter().map(|s| format!("P({s})")));
    // Writing into a Vec cannot fail for I/O reasons; the field counts are uniform.
    let _ = w.write_record(&header);
    for r in &input.runs {
        let mut best = f64::NAN;
        for it in &r.iterations {
            if it.valid_acc.is_finite() && (best.is_nan() || it.valid_acc > best) {
                best = it.valid_acc;
            }
            let mut row = vec![
                r.run_id.clone(),
                r.strategy.clone(),
                r.seed.to_string(),
                it.iteration.to_string(),
                it.model.to_string(),
                num(it.valid_acc),
                num(best),
                num(it.wall_secs),
                it.cached.to_string(),
            ];
            for c in &param_cols {
                row.push(
                    it.params
                        .iter()
                        .find(|(k, _)| k == c)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default(),
                );
            }
            for c in &prob_cols {
                let v = r
                    .mutation_probs_names
                    .iter()
                    .position(|n| n == c)
                    .and_then(|i| it.mutation_probs.get(i))
                    .map(|p| num(*p))
                    .unwrap_or_default();
                row.push(v);
            }
            let _ = w.write_record(&row);
        }
    }
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

/// Full precision, empty for non-finite (so spreadsheets read a blank, not "NaN").
fn num(x: f64) -> String {
    if x.is_finite() {
        x.to_string()
    } else {
        String::new()
    }
}

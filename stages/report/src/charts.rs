//! SVG charts via plotters (SVG backend only). Each render function returns the SVG text, so
//! rendering stays pure and testable; `write_report` puts them on disk.

use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::summary::best_so_far;
use crate::types::{ReportInput, RunRecord};
use crate::ReportError;

/// Chart file names of one run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RunCharts {
    /// Validation accuracy per model over iterations (Figs 3-4).
    pub accuracy: String,
    /// P(s) over iterations.
    pub probs: String,
}

/// Chart file names of a report.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ChartNames {
    /// Per run, in input order.
    pub runs: Vec<RunCharts>,
    /// Best-so-far comparison, only with several runs.
    pub best_so_far: Option<String>,
}

/// Keeps file names portable: run ids may hold any character.
fn sanitize(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() {
        "run".to_string()
    } else {
        t
    }
}

/// File names for the charts: `accuracy.svg` / `mutation_probs.svg` for one run, else
/// suffixed by the sanitized run id (made unique with an index when two ids collide).
pub fn chart_names(input: &ReportInput) -> ChartNames {
    if input.runs.len() == 1 {
        return ChartNames {
            runs: vec![RunCharts {
                accuracy: "accuracy.svg".into(),
                probs: "mutation_probs.svg".into(),
            }],
            best_so_far: None,
        };
    }
    let mut used: Vec<String> = Vec::new();
    let runs = input
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut stem = sanitize(&r.run_id);
            if used.contains(&stem) {
                stem = format!("{stem}_{i}");
            }
            used.push(stem.clone());
            RunCharts {
                accuracy: format!("accuracy_{stem}.svg"),
                probs: format!("mutation_probs_{stem}.svg"),
            }
        })
        .collect();
    ChartNames {
        runs,
        best_so_far: (input.runs.len() > 1).then(|| "best_so_far.svg".to_string()),
    }
}

/// tab10: distinguishable, colour-blind-tolerant series colours.
const TAB10: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws into a string-backed SVG; plotters errors become `ReportError::Chart`.
fn svg(
    name: &str,
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Result<(), String>,
) -> Result<String, ReportError> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|_| draw(&root))
            .and_then(|_| root.present().map_err(|e| e.to_string()))
            .map_err(|message| ReportError::Chart {
                chart: name.to_string(),
                message,
            })?;
    }
    Ok(buf)
}

/// x range covering a run's iterations, never empty.
fn x_range(its: impl Iterator<Item = usize>) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (usize::MAX, 0usize);
    for i in its {
        lo = lo.min(i);
        hi = hi.max(i);
    }
    if lo > hi {
        return 0.0..1.0;
    }
    // Half a step of padding so end markers are not clipped.
    lo as f64 - 0.5..hi.max(lo + 1) as f64 + 0.5
}

/// Lower y bound: the lowest finite value floored to 0.1, so curves near the top are not
/// squashed; 0 when there is none.
fn y_floor(values: impl Iterator<Item = f64>) -> f64 {
    let lo = values
        .filter(|v| v.is_finite())
        .fold(f64::INFINITY, f64::min);
    if lo.is_finite() {
        ((lo * 10.0).floor() / 10.0).clamp(0.0, 0.9)
    } else {
        0.0
    }
}

fn int_label(x: &f64) -> String {
    format!("{x:.0}")
}

/// Validation accuracy over iterations, one panel per model (the paper's Figures 3 and 4).
pub fn render_accuracy_svg(run: &RunRecord, name: &str) -> Result<String, ReportError> {
    let xr = x_range(run.iterations.iter().map(|i| i.iteration));
    // One y range for all four panels so models compare at a glance.
    let y_lo = y_floor(run.iterations.iter().map(|i| i.valid_acc));
    svg(name, (1000, 700), |root| {
        let root = root
            .titled(
                &format!("Run {}: validation accuracy per model", run.run_id),
                ("sans-serif", 20),
            )
            .map_err(|e| e.to_string())?;
        for (k, area) in root.split_evenly((2, 2)).iter().enumerate() {
            let model = k as u8 + 1;
            let pts: Vec<(f64, f64)> = run
                .iterations
                .iter()
                .filter(|i| i.model == model && i.valid_acc.is_finite())
                .map(|i| (i.iteration as f64, i.valid_acc))
                .collect();
            let n = run.iterations.iter().filter(|i| i.model == model).count();
            let best = pts.iter().map(|p| p.1).fold(f64::NAN, f64::max);
            let caption = if best.is_finite() {
                format!("Model {model}: {n} evaluated, max {best:.4}")
            } else {
                format!("Model {model}: {n} evaluated")
            };
            let mut chart = ChartBuilder::on(area)
                .caption(caption, ("sans-serif", 15))
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(45)
                .build_cartesian_2d(xr.clone(), y_lo..1.0)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("iteration")
                .y_desc("valid acc")
                .x_label_formatter(&int_label)
                .draw()
                .map_err(|e| e.to_string())?;
            let color = TAB10[k];
            if pts.len() > 1 {
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(1)))
                    .map_err(|e| e.to_string())?;
            }
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// Mutation probability P(s) of every parameter over iterations.
pub fn render_probs_svg(run: &RunRecord, name: &str) -> Result<String, ReportError> {
    let xr = x_range(run.iterations.iter().map(|i| i.iteration));
    svg(name, (900, 500), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("Run {}: mutation probabilities P(s)", run.run_id),
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(xr.clone(), 0.0..1.05)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("iteration")
            .y_desc("P(s)")
            .x_label_formatter(&int_label)
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, pname) in run.mutation_probs_names.iter().enumerate() {
            let pts: Vec<(f64, f64)> = run
                .iterations
                .iter()
                .filter_map(|i| i.mutation_probs.get(k).map(|p| (i.iteration as f64, *p)))
                .filter(|p| p.1.is_finite())
                .collect();
            let color = TAB10[k % TAB10.len()];
            // One point is a dot: a one-point polyline is no line (the PNG rasteriser
            // warns about each).
            let series = match pts.len() {
                1 => chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled()))),
                _ => chart.draw_series(LineSeries::new(pts, color.stroke_width(2))),
            };
            series
                .map_err(|e| e.to_string())?
                .label(pname.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        if !run.mutation_probs_names.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// Best validation accuracy so far against iteration, one line per run, for comparing runs
/// (and strategies) on one axis.
pub fn render_best_so_far_svg(input: &ReportInput, name: &str) -> Result<String, ReportError> {
    let curves: Vec<Vec<(f64, f64)>> = input
        .runs
        .iter()
        .map(|r| {
            best_so_far(r)
                .into_iter()
                .map(|(i, a)| (i as f64, a))
                .collect()
        })
        .collect();
    let xr = x_range(
        input
            .runs
            .iter()
            .flat_map(|r| r.iterations.iter().map(|i| i.iteration)),
    );
    let y_lo = y_floor(curves.iter().flatten().map(|p| p.1));
    svg(name, (900, 500), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Best validation accuracy so far", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(xr.clone(), y_lo..1.0)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("iteration")
            .y_desc("best valid acc")
            .x_label_formatter(&int_label)
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, (r, pts)) in input.runs.iter().zip(curves).enumerate() {
            let color = TAB10[k % TAB10.len()];
            let series = match pts.len() {
                1 => chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled()))),
                _ => chart.draw_series(LineSeries::new(pts, color.stroke_width(2))),
            };
            series
                .map_err(|e| e.to_string())?
                .label(format!("{} ({}, seed {})", r.run_id, r.strategy, r.seed))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

//! hhnas-report: renders a search report (paper's Table 3, accuracy per model over
//! iterations as in Figs 3-4, P(s) over iterations, run comparison) from plain records, as
//! Markdown, CSV and SVG. No dependency on the other stage crates.

mod charts;
mod render;
mod summary;
mod types;

use std::path::{Path, PathBuf};

pub use charts::{
    chart_names, render_accuracy_svg, render_best_so_far_svg, render_probs_svg, ChartNames,
    RunCharts,
};
pub use render::{render_csv, render_markdown};
pub use summary::{best_so_far, table3};
pub use types::{BestCandidate, FinalModel, IterationRecord, ModelSummary, ReportInput, RunRecord};

/// Report errors.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Writing a file failed.
    #[error("{}: cannot write ({source}). Fix: check that the report directory is writable", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// plotters failed to draw a chart.
    #[error("{chart}: chart drawing failed: {message}. Fix: report this as a bug with the run's iterations.csv")]
    Chart {
        /// Chart file name.
        chart: String,
        /// plotters' message.
        message: String,
    },
}

fn write(path: PathBuf, body: &str, out: &mut Vec<PathBuf>) -> Result<(), ReportError> {
    std::fs::write(&path, body).map_err(|source| ReportError::Io {
        path: path.clone(),
        source,
    })?;
    out.push(path);
    Ok(())
}

/// Writes `report.md`, `iterations.csv` and the SVG charts into `out_dir` (created if
/// needed). Returns the paths written, report.md first.
pub fn write_report(input: &ReportInput, out_dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(out_dir).map_err(|source| ReportError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    write(out_dir.join("report.md"), &render_markdown(input), &mut out)?;
    write(out_dir.join("iterations.csv"), &render_csv(input), &mut out)?;
    let names = chart_names(input);
    for (run, n) in input.runs.iter().zip(&names.runs) {
        write(
            out_dir.join(&n.accuracy),
            &render_accuracy_svg(run, &n.accuracy)?,
            &mut out,
        )?;
        write(
            out_dir.join(&n.probs),
            &render_probs_svg(run, &n.probs)?,
            &mut out,
        )?;
    }
    if let Some(name) = &names.best_so_far {
        write(
            out_dir.join(name),
            &render_best_so_far_svg(input, name)?,
            &mut out,
        )?;
    }
    Ok(out)
}

//! hhnas-report: renders a search report (paper's Table 3, accuracy per model over
//! iterations as in Figs 3-4, P(s) over iterations, run comparison) from plain records, as
//! Markdown, one self-contained HTML page, CSV, and SVG + PNG charts. No dependency on the
//! other stage crates.

mod charts;
mod html;
mod render;
mod summary;
mod types;

use std::path::{Path, PathBuf};

pub use charts::{
    chart_names, render_accuracy_svg, render_best_so_far_svg, render_probs_svg, ChartNames,
    RunCharts,
};
pub use html::{render_html, render_png, REFRESH_SECS};
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
    /// plotters failed to draw a chart, or resvg to render it as PNG.
    #[error("{chart}: chart drawing failed: {message}. Fix: report this as a bug with the run's iterations.csv")]
    Chart {
        /// Chart file name.
        chart: String,
        /// plotters' message.
        message: String,
    },
}

/// Writes `body` to `path` through a temporary file in the same folder and a rename, so a
/// browser or a reader never sees half a file, and a failed write leaves nothing behind.
fn write(path: PathBuf, body: &[u8], out: &mut Vec<PathBuf>) -> Result<(), ReportError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("report");
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = std::fs::write(&tmp, body).and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(source) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(ReportError::Io { path, source });
    }
    out.push(path);
    Ok(())
}

/// Every chart of `input` as (file name, SVG text), in the order the report shows them.
fn charts(input: &ReportInput) -> Result<Vec<(String, String)>, ReportError> {
    let names = chart_names(input);
    let mut charts = Vec::new();
    if let Some(name) = &names.best_so_far {
        charts.push((name.clone(), render_best_so_far_svg(input, name)?));
    }
    for (run, n) in input.runs.iter().zip(&names.runs) {
        charts.push((n.accuracy.clone(), render_accuracy_svg(run, &n.accuracy)?));
        charts.push((n.probs.clone(), render_probs_svg(run, &n.probs)?));
    }
    Ok(charts)
}

/// Which files [`write_report`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFiles {
    /// Everything, the PNG copies of the charts included.
    All,
    /// What a run in progress rewrites after each iteration: no PNG (the largest and
    /// slowest files; they come with the final report).
    Live,
}

/// Writes `report.html` (self-contained), `report.md`, `iterations.csv`, and every chart as
/// SVG (and PNG with [`ReportFiles::All`]) into `out_dir` (created if needed), each file
/// atomically. Returns the paths written, report.md first, report.html second.
pub fn write_report(
    input: &ReportInput,
    out_dir: &Path,
    files: ReportFiles,
) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(out_dir).map_err(|source| ReportError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    let markdown = render_markdown(input);
    let charts = charts(input)?;
    write(out_dir.join("report.md"), markdown.as_bytes(), &mut out)?;
    let page = render_html(input, &markdown, &charts);
    write(out_dir.join("report.html"), page.as_bytes(), &mut out)?;
    write(
        out_dir.join("iterations.csv"),
        render_csv(input).as_bytes(),
        &mut out,
    )?;
    for (name, svg) in &charts {
        write(out_dir.join(name), svg.as_bytes(), &mut out)?;
        if files == ReportFiles::Live {
            continue;
        }
        let png = render_png(svg).map_err(|message| ReportError::Chart {
            chart: name.clone(),
            message,
        })?;
        write(out_dir.join(name).with_extension("png"), &png, &mut out)?;
    }
    Ok(out)
}

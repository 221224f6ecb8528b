//! One self-contained HTML page (the Markdown report rendered by pulldown-cmark, every chart
//! inlined as SVG, no script, no network) and PNG copies of the charts (resvg).

use std::sync::OnceLock;

use pulldown_cmark::{html, Options, Parser};

use crate::types::ReportInput;

/// Seconds between reloads of a page whose run is still going: a browser left open on it
/// follows the run, one iteration at a time.
pub const REFRESH_SECS: u32 = 30;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;\
padding:0 1em;color:#222}table{border-collapse:collapse;margin:.5em 0 1em}\
th,td{border:1px solid #ccc;padding:.25em .6em;font-variant-numeric:tabular-nums}\
th{background:#f3f3f3}code{background:#f6f6f6;padding:0 .2em}\
figure{margin:1em 0}figure svg{max-width:100%;height:auto}\
.state{display:inline-block;padding:.2em .6em;border-radius:.3em;background:#eef}";

/// The HTML page of `input`. `charts` holds (file name, SVG text) of every chart the
/// Markdown links to; each link becomes the SVG itself, so the page needs no other file.
pub fn render_html(input: &ReportInput, markdown: &str, charts: &[(String, String)]) -> String {
    let mut body = String::new();
    html::push_html(&mut body, Parser::new_ext(markdown, Options::ENABLE_TABLES));
    for (name, svg) in charts {
        body = inline_image(&body, name, svg);
    }
    let live = input.runs.iter().any(|r| r.state == "running");
    let refresh = if live {
        format!("<meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\n")
    } else {
        String::new()
    };
    let states: Vec<String> = input
        .runs
        .iter()
        .map(|r| {
            format!(
                "<span class=\"state\">{}: {}</span>",
                escape(&r.run_id),
                escape(if r.state.is_empty() {
                    "unknown"
                } else {
                    &r.state
                })
            )
        })
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n{refresh}\
<title>HHNAS-AM search report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
<p>{}</p>\n{body}</body>\n</html>\n",
        states.join(" ")
    )
}

/// Replaces the `<img>` that pulldown-cmark wrote for `name` by a figure holding the SVG.
fn inline_image(body: &str, name: &str, svg: &str) -> String {
    let needle = format!("<img src=\"{}\"", escape(name));
    let Some(start) = body.find(&needle) else {
        return body.to_string();
    };
    let Some(len) = body[start..].find("/>") else {
        return body.to_string();
    };
    let svg = svg
        .trim_start()
        .strip_prefix("<?xml")
        .and_then(|s| s.split_once("?>"))
        .map(|(_, rest)| rest)
        .unwrap_or(svg);
    format!(
        "{}<figure>{}</figure>{}",
        &body[..start],
        svg.trim(),
        &body[start + len + 2..]
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The system's fonts, loaded once per process (the charts' text needs them).
fn fonts() -> std::sync::Arc<resvg::usvg::fontdb::Database> {
    static FONTS: OnceLock<std::sync::Arc<resvg::usvg::fontdb::Database>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let mut db = resvg::usvg::fontdb::Database::new();
            db.load_system_fonts();
            db.set_sans_serif_family("DejaVu Sans");
            std::sync::Arc::new(db)
        })
        .clone()
}

/// The same figure as PNG, at twice the SVG's size (for slides and papers), on white.
pub fn render_png(svg: &str) -> Result<Vec<u8>, String> {
    use resvg::{tiny_skia, usvg};
    let options = usvg::Options {
        fontdb: fonts(),
        font_family: "DejaVu Sans".into(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &options).map_err(|e| e.to_string())?;
    let scale = 2.0;
    let size = tree
        .size()
        .to_int_size()
        .scale_by(scale)
        .ok_or("empty figure")?;
    let mut pixmap =
        tiny_skia::Pixmap::new(size.width(), size.height()).ok_or("figure too large")?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().map_err(|e| e.to_string())
}

//! Line charts as small SVG files (no plotting dependency for a few polylines): the training
//! loss curve and the examples' prediction plots.

use std::fmt::Write;
use std::path::Path;

use crate::error::{Result, RnnError};
use crate::tensor_file::write_atomically;

const COLOURS: [&str; 4] = ["steelblue", "darkorange", "seagreen", "purple"];

/// One named line of (x, y) points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: &'a [(f64, f64)],
}

/// Writes `points` as a line chart; `reference`, when given, is a dashed horizontal line
/// (e.g. the validation loss).
pub fn write_line_svg(
    path: &Path,
    title: &str,
    points: &[(f64, f64)],
    reference: Option<(&str, f64)>,
) -> Result<()> {
    write_chart_svg(path, title, &[Series { name: "", points }], reference)
}

/// Writes several series on shared axes, with a legend.
pub fn write_chart_svg(
    path: &Path,
    title: &str,
    series: &[Series<'_>],
    reference: Option<(&str, f64)>,
) -> Result<()> {
    let (w, h, m) = (640.0, 400.0, 50.0);
    let all = || {
        series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let (x0, x1) = bounds(all().map(|p| p.0));
    let (y0, y1) = bounds(all().map(|p| p.1).chain(reference.map(|r| r.1)));
    let sx = |x: f64| m + (x - x0) / (x1 - x0) * (w - 2.0 * m);
    let sy = |y: f64| h - m - (y - y0) / (y1 - y0) * (h - 2.0 * m);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{m}" y="25" font-size="15">{title}</text>"#
    );
    let _ = writeln!(
        svg,
        r#"<path d="M{m} {m} V{} H{}" stroke="black" fill="none"/>"#,
        h - m,
        w - m
    );
    for (value, y) in [(y0, h - m), (y1, m)] {
        let _ = writeln!(svg, r#"<text x="5" y="{}">{value:.3}</text>"#, y + 4.0);
    }
    for (value, x) in [(x0, m), (x1, w - m)] {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}">{value:.0}</text>"#,
            x - 10.0,
            h - m + 18.0
        );
    }
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let line: Vec<String> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" stroke="{colour}" fill="none"/>"#,
            line.join(" ")
        );
        if !s.name.is_empty() {
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" fill="{colour}">{}</text>"#,
                w - m - 120.0,
                m + 15.0 * i as f64,
                s.name
            );
        }
    }
    if let Some((label, y)) = reference {
        let _ = writeln!(
            svg,
            r#"<path d="M{m} {0:.1} H{1}" stroke="crimson" stroke-dasharray="6 4"/><text x="{2}" y="{3:.1}" fill="crimson">{label} {y:.3}</text>"#,
            sy(y),
            w - m,
            w - m - 140.0,
            sy(y) - 6.0
        );
    }
    svg.push_str("</svg>\n");
    write_atomically(path, svg.as_bytes()).map_err(|e| RnnError::File {
        path: path.into(),
        message: format!("cannot write: {e}"),
    })
}

/// The range of the finite values, never empty.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo.is_finite() {
        (lo, hi.max(lo + 1e-9))
    } else {
        (0.0, 1.0)
    }
}

//! Tiny SVG line charts (no plotting dependency): loss curves for `chords train`, the
//! convergence and speed-up plots of `chords bench`.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// An SVG line chart of named `(x, y)` series; `log_y` draws y on a log scale (values
/// ≤ 0 are left out there).
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    log_y: bool,
    series: &[(String, Vec<(f64, f64)>)],
) -> String {
    let (w, h, m) = (720.0, 440.0, 70.0);
    let keep = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite() && (!log_y || p.1 > 0.0);
    let points: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.1.iter().filter(keep).copied())
        .collect();
    let fy = |v: f64| if log_y { v.log10() } else { v };
    let (x0, x1) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = points.iter().fold((f64::MAX, f64::MIN), |(a, b), p| {
        (a.min(fy(p.1)), b.max(fy(p.1)))
    });
    let (x0, x1) = if points.is_empty() {
        (0.0, 1.0)
    } else {
        (x0, x1.max(x0 + 1e-9))
    };
    let (y0, y1) = match (points.is_empty(), log_y) {
        (true, _) => (0.0, 1.0),
        (false, true) => (y0.floor(), y1.ceil().max(y0.floor() + 1.0)),
        (false, false) => (y0.min(0.0), y1 * 1.05 + 1e-9),
    };
    let x = |v: f64| m + (w - 2.0 * m) * (v - x0) / (x1 - x0);
    let y = |v: f64| h - m - (h - 2.0 * m) * (fy(v) - y0) / (y1 - y0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{cx}" y="20" text-anchor="middle" font-size="14">{title}</text>
<line x1="{m}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{m}" y1="{m}" x2="{m}" y2="{b}" stroke="black"/>
<text x="{cx}" y="{lx}" text-anchor="middle">{x_label} ({x0} to {x1})</text>
<text x="15" y="{cy}" transform="rotate(-90 15 {cy})" text-anchor="middle">{y_label}</text>
"#,
        b = h - m,
        r = w - m,
        cx = w / 2.0,
        lx = h - 20.0,
        cy = h / 2.0
    );
    // Five y ticks (decades on a log scale).
    let ticks: Vec<f64> = if log_y {
        (y0 as i32..=y1 as i32).map(|d| 10f64.powi(d)).collect()
    } else {
        (0..=4).map(|i| y0 + (y1 - y0) * i as f64 / 4.0).collect()
    };
    for t in ticks {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            m - 5.0,
            y(t) + 4.0,
            if log_y {
                format!("{t:.0e}")
            } else {
                format!("{t:.2}")
            }
        );
    }
    for (i, (name, pts)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let coords: Vec<String> = pts
            .iter()
            .filter(keep)
            .map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/><text x="{}" y="{}" fill="{colour}">{name}</text>"#,
            coords.join(" "),
            w - m - 180.0,
            m + 15.0 * i as f64
        );
    }
    svg + "</svg>\n"
}

/// Plots the `train_loss` and `held_out_loss` columns of `csv` (log scale) against `step`.
pub fn loss_curves(csv: &Path, svg: &Path) -> Result<()> {
    let text = fs::read_to_string(csv).with_context(|| format!("cannot read {}", csv.display()))?;
    let rows: Vec<[f64; 3]> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let v: Vec<f64> = l.split(',').filter_map(|x| x.parse().ok()).collect();
            (v.len() == 3).then(|| [v[0], v[1], v[2]])
        })
        .collect();
    let column = |c: usize| rows.iter().map(|r| (r[0], r[c])).collect();
    let chart = line_chart(
        "emoji model: flow-matching loss",
        "training step",
        "loss (log scale)",
        true,
        &[
            ("training (mean per interval)".into(), column(1)),
            ("held out".into(), column(2)),
        ],
    );
    fs::write(svg, chart).with_context(|| format!("cannot write {}", svg.display()))
}

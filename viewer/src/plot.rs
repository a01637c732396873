//! Tiny SVG line plots (no plotting dependency): loss curves for `chords train`.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

/// Plots the `train_loss` and `held_out_loss` columns of `csv` (log scale) against `step`.
pub fn loss_curves(csv: &Path, svg: &Path) -> Result<()> {
    let text = fs::read_to_string(csv).with_context(|| format!("cannot read {}", csv.display()))?;
    let rows: Vec<[f64; 3]> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let v: Vec<f64> = l.split(',').filter_map(|x| x.parse().ok()).collect();
            (v.len() == 3 && v[1] > 0.0 && v[2] > 0.0).then(|| [v[0], v[1], v[2]])
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let (w, h, m) = (640.0, 400.0, 60.0);
    let max_step = rows.iter().map(|r| r[0]).fold(1.0, f64::max);
    let (lo, hi) = rows
        .iter()
        .flat_map(|r| [r[1], r[2]])
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let x = |s: f64| m + (w - 2.0 * m) * s / max_step;
    let y = |v: f64| h - m - (h - 2.0 * m) * (v.log10() - lo) / (hi - lo);
    let line = |col: usize, colour: &str| {
        let points: Vec<String> = rows
            .iter()
            .map(|r| format!("{:.1},{:.1}", x(r[0]), y(r[col])))
            .collect();
        format!(
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        )
    };
    let mut svg_text = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<line x1="{m}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{m}" y1="{m}" x2="{m}" y2="{b}" stroke="black"/>
<text x="{cx}" y="{lx}" text-anchor="middle">training step (max {max_step})</text>
<text x="15" y="{cy}" transform="rotate(-90 15 {cy})" text-anchor="middle">flow-matching loss (log scale)</text>
"#,
        b = h - m,
        r = w - m,
        cx = w / 2.0,
        lx = h - 20.0,
        cy = h / 2.0
    );
    let mut decade = lo;
    while decade <= hi {
        let v = 10f64.powf(decade);
        svg_text += &format!(
            r#"<text x="{}" y="{:.1}" text-anchor="end">{v}</text>"#,
            m - 5.0,
            y(v) + 4.0
        );
        decade += 1.0;
    }
    svg_text += &line(1, "#1f77b4");
    svg_text += &line(2, "#d62728");
    svg_text += &format!(
        r##"<text x="{0}" y="{1}" fill="#1f77b4">training (mean per interval)</text><text x="{0}" y="{2}" fill="#d62728">held out</text></svg>"##,
        w - m - 200.0,
        m - 25.0,
        m - 10.0
    );
    fs::write(svg, svg_text + "\n").with_context(|| format!("cannot write {}", svg.display()))
}

//! Charts of `chords train`'s loss log (PNG, drawn by [`crate::raster`]).

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

/// Plots the `train_loss` and `held_out_loss` columns of `csv` (log scale) against `step`.
pub fn loss_curves(csv: &Path, png: &Path) -> Result<()> {
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
    let chart = crate::raster::line_chart_png(
        "emoji model: flow-matching loss",
        "training step",
        "loss (log scale)",
        true,
        &[
            ("training (mean per interval)".into(), column(1)),
            ("held out".into(), column(2)),
        ],
    )?;
    fs::write(png, chart).with_context(|| format!("cannot write {}", png.display()))
}

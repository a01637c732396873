//! Charts of `chords train`'s loss log (PNG, drawn by [`crate::raster`]).

use std::path::Path;

use anyhow::Result;

/// Plots the `train_loss` and `evaluation_loss` columns of `csv` (log scale) against `step`.
pub fn loss_curves(csv: &Path, png: &Path) -> Result<()> {
    let text = chords::read::read_text(csv, crate::train::MAX_LOG_BYTES)?;
    // Rows: step, training loss, evaluation loss, and (newer logs) the average's evaluation loss.
    let rows: Vec<Vec<f64>> = text
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .filter_map(|x| x.parse().ok())
                .collect::<Vec<f64>>()
        })
        .filter(|v| v.len() >= 3)
        .collect();
    let column = |c: usize| {
        rows.iter()
            .filter(|r| r.len() > c)
            .map(|r| (r[0], r[c]))
            .collect::<Vec<_>>()
    };
    let mut series = vec![
        ("training (mean per interval)".to_string(), column(1)),
        ("evaluation".to_string(), column(2)),
    ];
    let averaged = column(3);
    if !averaged.is_empty() {
        series.push(("evaluation, averaged weights".to_string(), averaged));
    }
    let chart = crate::raster::line_chart_png(
        "emoji model: flow-matching loss",
        "training step",
        "loss (log scale)",
        true,
        &series,
    )?;
    crate::files::write_atomic(png, &chart)
}

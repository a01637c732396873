//! `chords bench`'s report: the main tables as markdown and the plots (convergence,
//! speed-up against cores, and the equal-quality trade-off per K).

use anyhow::Result;

use super::{BenchArgs, CALIBRATION_SEED, Curve, Row, quality};
use crate::files::write_atomic;
use crate::raster;

/// The rows as markdown tables, one per model.
pub(super) fn markdown(rows: &[Row], args: &BenchArgs) -> String {
    let mut text = String::new();
    let mut models: Vec<&str> = rows.iter().map(|r| r.model).collect();
    models.dedup();
    for model in models {
        text += &format!(
            "\n### {model}: T = {}, Euler, {} sample(s), CPU backend, a worker thread per core\n\n",
            args.steps, args.samples
        );
        text += "| sampler | init | K | sequence | speed-up | rounds | time / sample (ms) | latent RMSE | PSNR (dB) |\n";
        text += "|---|---|---:|---|---:|---:|---:|---:|---:|\n";
        for r in rows.iter().filter(|r| r.model == model) {
            text += &format!(
                "| {} | {} | {} | {} | {:.2}× | {:.1} | {:.1} | {:.2e} | {} |\n",
                r.sampler,
                r.init.unwrap_or("–"),
                r.cores,
                r.sequence.as_deref().unwrap_or("–"),
                r.speedup,
                r.rounds,
                r.time_per_sample_ms,
                r.latent_rmse,
                if r.psnr_db.is_finite() {
                    format!("{:.1}", r.psnr_db)
                } else {
                    "∞".into()
                }
            );
        }
        let planned: Vec<String> = rows
            .iter()
            .filter(|r| r.model == model)
            .filter_map(|r| r.planning_s.map(|s| format!("{s:.1} s at K = {}", r.cores)))
            .collect();
        if !planned.is_empty() {
            text += &format!(
                "\nThe `optimal` sequences were planned on the model itself ({} calibration \
                 seed(s) from {CALIBRATION_SEED}, none of them measured above) in {}.\n",
                args.calibration_seeds,
                planned.join(", ")
            );
        }
    }
    text
}

/// `convergence.png` (the paper's Figure 5) and `speedup.png` (Figure 4).
pub(super) fn write_plots(rows: &[Row], curves: &[Curve], args: &BenchArgs) -> Result<()> {
    let k = args.cores.iter().copied().max().unwrap_or(1);
    let series: Vec<(String, Vec<(f64, f64)>)> = curves
        .iter()
        .filter(|c| c.1 == k)
        .map(|c| {
            let points = c.3.iter().copied().filter(|p| p.1 > 0.0).collect();
            (format!("{} {}", c.0, c.2), points)
        })
        .collect();
    let convergence = raster::line_chart_png(
        &format!("CHORDS, K = {k}: distance of each streamed output to the final one"),
        "round",
        "mean |output - final| (log scale)",
        true,
        &series,
    )?;
    write_atomic(&args.out.join("convergence.png"), &convergence)?;
    let mut speedups: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in rows.iter().filter(|r| r.sampler != "sequential") {
        let label = match r.init {
            Some(init) => format!("{} chords {init}", r.model),
            None => format!("{} {}", r.model, r.sampler),
        };
        match speedups.iter_mut().find(|s| s.0 == label) {
            Some(s) => s.1.push((r.cores as f64, r.speedup)),
            None => speedups.push((label, vec![(r.cores as f64, r.speedup)])),
        }
    }
    let chart = raster::line_chart_png(
        "speed-up (T / rounds) against cores",
        "cores K",
        "speed-up",
        false,
        &speedups,
    )?;
    write_atomic(&args.out.join("speedup.png"), &chart)?;
    Ok(())
}

/// `tradeoff-k{K}.png`: per K, each model's and sampler's speed-up against worst PSNR
/// over its configurations (the equal-quality trade-off curve).
pub(super) fn write_tradeoff_plots(points: &[quality::Point], args: &BenchArgs) -> Result<()> {
    for &k in &args.cores {
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        let mut groups: Vec<(&str, &str)> = Vec::new();
        for p in points.iter().filter(|p| p.cores == k) {
            if !groups.contains(&(p.model, p.sampler)) {
                groups.push((p.model, p.sampler));
            }
        }
        for (model, sampler) in groups {
            let of: Vec<&quality::Point> = points
                .iter()
                .filter(|p| (p.model, p.sampler, p.cores) == (model, sampler, k))
                .collect();
            series.push((
                format!("{model} {sampler}"),
                quality::frontier(&of, args.steps),
            ));
        }
        let chart = raster::line_chart_png(
            &format!("K = {k}: speed-up against the worst sample's PSNR"),
            "PSNR against the sequential solve (dB)",
            "speed-up",
            false,
            &series,
        )?;
        write_atomic(&args.out.join(format!("tradeoff-k{k}.png")), &chart)?;
    }
    Ok(())
}

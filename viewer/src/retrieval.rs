//! `chords retrieval`: how recognisable the emoji model's pictures are.
//!
//! For `--count` emoji drawn at random (distinct, each in a random style, from `--seed`),
//! it samples the `--steps`-step sequential solve and CHORDS's fastest hit on `--cores`
//! cores (the paper's sequence) from the same noise, and finds the nearest of all training
//! pictures (the built-in atlas, both styles) by L2 distance on RGB pixels over white. The
//! score is the share of samples whose nearest picture is the emoji asked for (in either
//! style), and the share whose nearest picture is that emoji in the style asked for.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, bail};
use chords::{
    Backend, CpuBackend, Event, FlowSchedule, InitSequence, InitStrategy, RunOptions, Sampler,
    StopRule,
};
use chords_emoji::{EmojiModel, NUMEL, Style, catalog, condition, condition_parts, conditions};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::raster::{Tile, picture_grid_png};

/// Arguments of `chords retrieval`.
#[derive(Debug, clap::Args)]
pub struct RetrievalArgs {
    /// Emoji to draw (distinct, at random).
    #[arg(long, default_value_t = 200)]
    pub count: usize,
    /// Seed of the draw and of each sample's noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Euler steps of the sequential solve.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// CHORDS cores (the paper's sequence for 4, 6 and 8, scaled to --steps).
    #[arg(long, default_value_t = 8)]
    pub cores: usize,
    /// Classifier-free guidance scale (default: the model's, 2).
    #[arg(long, allow_negative_numbers = true)]
    pub guidance: Option<f32>,
    /// Emoji weights file (default: the shipped weights).
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,
    /// Also draw the first --grid-count samples as a PNG: the requested emoji's training
    /// picture, the sequential solve and CHORDS's fastest hit, with the name under them.
    #[arg(long, value_name = "PNG")]
    pub grid: Option<PathBuf>,
    /// Samples in the --grid picture.
    #[arg(long, default_value_t = 64)]
    pub grid_count: usize,
    /// Replace an existing --grid file.
    #[arg(long)]
    pub overwrite: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One drawn emoji and what the samplers made of it.
struct Draw {
    condition: usize,
    sequential: Vec<f32>,
    chords: Vec<f32>,
}

/// The draw: `count` distinct emoji, each with a style, and a noise seed each.
fn draw(count: usize, seed: u64) -> Vec<(usize, u64)> {
    let mut rng = chords::noise::SplitMix64::new(seed);
    let mut emoji: Vec<usize> = (0..catalog().len()).collect();
    (0..count)
        .map(|k| {
            // A partial Fisher–Yates shuffle: position k takes a random one of the rest.
            let j = k + (rng.uniform() * (emoji.len() - k) as f64) as usize % (emoji.len() - k);
            emoji.swap(k, j);
            let style = Style::ALL[usize::from(rng.uniform() >= 0.5)];
            (condition(emoji[k], style), rng.next_u64())
        })
        .collect()
}

/// The index of the picture in `atlas` nearest to `sample` (L2 on the pixels as a PNG
/// shows them).
pub fn nearest(atlas: &[f32], sample: &[f32]) -> usize {
    let shown: Vec<f32> = sample
        .iter()
        .map(|v| f32::from(chords::preview::to_byte(*v)) / 255.0 * 2.0 - 1.0)
        .collect();
    let mut best = (f32::INFINITY, 0);
    for (i, picture) in atlas.chunks_exact(NUMEL).enumerate() {
        let d: f32 = picture
            .iter()
            .zip(&shown)
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        if d < best.0 {
            best = (d, i);
        }
    }
    best.1
}

/// Runs `sampler` on the CPU and returns its first hit (the stop rule decides which).
fn first_hit(
    mut sampler: impl Sampler<CpuBackend>,
    model: &EmojiModel,
    stop: StopRule,
) -> Result<Vec<f32>> {
    let options = RunOptions::default().with_threads(0).with_stop(stop);
    let mut hit = None;
    chords::run(&mut sampler, &CpuBackend, model, &options, &mut |e| {
        if let Event::Hit(h) = e {
            hit.get_or_insert_with(|| h.latent.as_slice().to_vec());
        }
    })?;
    hit.ok_or_else(|| anyhow::anyhow!("the run produced no output"))
}

/// Runs `chords retrieval`.
pub fn run(args: &RetrievalArgs) -> Result<()> {
    let n = catalog().len();
    if args.count == 0 || args.count > n {
        bail!(
            "--count must be between 1 and {n} (the emoji in the catalogue), got {}",
            args.count
        );
    }
    crate::limits::check_counts(args.steps, args.cores)?;
    if let Some(path) = &args.grid
        && path.exists()
        && !args.overwrite
    {
        bail!(
            "--grid {} exists; pass --overwrite to replace it",
            path.display()
        );
    }
    let atlas = crate::atlas::decode(crate::atlas::SHIPPED, conditions())?;
    let device = chords_emoji::cpu_device();
    let model = EmojiModel::load_or_shipped(args.weights.as_deref(), &device)?;
    let model = model.with_guidance(args.guidance.unwrap_or(chords_emoji::DEFAULT_GUIDANCE))?;
    let solver = Arc::new(chords::Euler::new(FlowSchedule::new(args.steps, 1.0)?));
    let init = InitSequence::from_strategy(InitStrategy::Paper, args.steps, args.cores)?;
    let bar = ProgressBar::new(args.count as u64);
    bar.set_style(
        ProgressStyle::with_template("retrieval [{bar:30}] {pos}/{len} ({elapsed}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = Instant::now();
    // The samples are independent: one worker thread per CPU core takes every n-th.
    let drawn = draw(args.count, args.seed);
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(drawn.len());
    let sample = |&(condition, seed): &(usize, u64)| -> Result<Draw> {
        let model = model.clone().with_condition(condition)?;
        let x0 = CpuBackend.upload(0, &chords::noise::gaussian(seed, NUMEL))?;
        let sequential = first_hit(
            chords::Sequential::new(solver.clone(), x0.clone()),
            &model,
            StopRule::All,
        )?;
        let chords = first_hit(
            chords::Chords::new(solver.clone(), init.clone(), x0)?,
            &model,
            StopRule::CoreIndex(1),
        )?;
        bar.inc(1);
        Ok(Draw {
            condition,
            sequential,
            chords,
        })
    };
    let parts: Vec<Result<Vec<Draw>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (drawn, sample) = (&drawn, &sample);
                s.spawn(move || drawn.iter().skip(w).step_by(workers).map(sample).collect())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|payload| {
                    Err(anyhow::anyhow!(
                        "a retrieval worker failed: {}",
                        chords::panic_message(payload.as_ref())
                    ))
                })
            })
            .collect()
    });
    // Back to the order of the draw: worker w holds samples w, w + workers, …
    let mut parts: Vec<std::vec::IntoIter<Draw>> = parts
        .into_iter()
        .map(|part| part.map(Vec::into_iter))
        .collect::<Result<_>>()?;
    let draws: Vec<Draw> = (0..drawn.len())
        .filter_map(|i| parts[i % workers].next())
        .collect();
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();

    let score = |pick: &dyn Fn(&Draw) -> &[f32]| {
        let (mut emoji, mut exact, mut misses) = (0, 0, Vec::new());
        for d in &draws {
            let found = nearest(&atlas, pick(d));
            let (want, _) = condition_parts(d.condition).unwrap_or((usize::MAX, Style::Noto));
            let (got, _) = condition_parts(found).unwrap_or((usize::MAX, Style::Noto));
            emoji += usize::from(got == want);
            exact += usize::from(found == d.condition);
            if got != want {
                misses.push((d.condition, found));
            }
        }
        (emoji, exact, misses)
    };
    let name = |c: usize| {
        condition_parts(c).map_or("?".to_string(), |(e, s)| {
            format!("{} ({s})", catalog()[e].name)
        })
    };
    let sequential = score(&|d| &d.sequential);
    let chords = score(&|d| &d.chords);
    let count = args.count as f64;
    if args.json {
        let part = |(emoji, exact, misses): &(usize, usize, Vec<(usize, usize)>)| {
            json!({
                "emoji_accuracy": *emoji as f64 / count,
                "style_accuracy": *exact as f64 / count,
                "misses": misses.iter().map(|(want, got)| json!({"requested": name(*want), "nearest": name(*got)})).collect::<Vec<_>>(),
            })
        };
        let report = json!({
            "count": args.count, "seed": args.seed, "steps": args.steps, "cores": args.cores,
            "init": init.to_string(), "guidance": model.guidance_scale(), "seconds": seconds,
            "sequential": part(&sequential), "chords_first_hit": part(&chords),
        });
        println!("{report}");
    } else {
        println!(
            "retrieval: {} emoji (seed {}), {}-step Euler, guidance {}, nearest of {} training pictures by L2",
            args.count,
            args.seed,
            args.steps,
            model.guidance_scale(),
            conditions()
        );
        println!("| sampler | nearest is the emoji | nearest is the emoji in its style |");
        println!("|---|---|---|");
        for (label, (emoji, exact, _)) in [
            ("sequential solve".to_string(), &sequential),
            (
                format!("CHORDS fastest hit, {} cores ({init})", args.cores),
                &chords,
            ),
        ] {
            println!(
                "| {label} | {:.1} % ({emoji}/{}) | {:.1} % ({exact}/{}) |",
                100.0 * *emoji as f64 / count,
                args.count,
                100.0 * *exact as f64 / count,
                args.count
            );
        }
        for (label, (_, _, misses)) in [("sequential", &sequential), ("CHORDS", &chords)] {
            let listed: Vec<String> = misses
                .iter()
                .map(|(want, got)| format!("{} → {}", name(*want), name(*got)))
                .collect();
            if !listed.is_empty() {
                println!("{label} misses: {}", listed.join("; "));
            }
        }
        println!("({seconds:.0} s)");
    }
    if let Some(path) = &args.grid {
        let tiles: Vec<Tile> = draws
            .iter()
            .take(args.grid_count)
            .map(|d| Tile {
                label: condition_parts(d.condition)
                    .map_or(String::new(), |(e, _)| catalog()[e].name.to_string()),
                pictures: vec![
                    &atlas[d.condition * NUMEL..(d.condition + 1) * NUMEL],
                    &d.sequential,
                    &d.chords,
                ],
            })
            .collect();
        crate::files::write_atomic(path, &picture_grid_png(8, &tiles)?)?;
        eprintln!(
            "wrote {} (each: requested | sequential | CHORDS)",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_draw_is_distinct_seeded_and_covers_both_styles() {
        let a = draw(300, 1);
        assert_eq!(a, draw(300, 1));
        assert_ne!(a, draw(300, 2));
        let mut emoji: Vec<usize> = a
            .iter()
            .map(|(c, _)| condition_parts(*c).unwrap().0)
            .collect();
        emoji.sort_unstable();
        emoji.dedup();
        assert_eq!(emoji.len(), 300, "distinct emoji");
        let twemoji = a
            .iter()
            .filter(|(c, _)| condition_parts(*c).unwrap().1 == Style::Twemoji)
            .count();
        assert!((100..200).contains(&twemoji), "{twemoji}");
        assert_eq!(draw(catalog().len(), 3).len(), catalog().len());
    }

    #[test]
    fn nearest_finds_the_closest_picture() {
        let atlas: Vec<f32> = [-1.0f32, 0.0, 1.0]
            .iter()
            .flat_map(|v| vec![*v; NUMEL])
            .collect();
        assert_eq!(nearest(&atlas, &vec![0.2; NUMEL]), 1);
        assert_eq!(nearest(&atlas, &vec![0.9; NUMEL]), 2);
        assert_eq!(nearest(&atlas, &vec![-3.0; NUMEL]), 0);
    }
}

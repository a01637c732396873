//! `chords bench`: every sampler at several core counts on the built-in models, shaped like
//! the paper's Tables 1–3; the equal-quality tables (`quality`); `--wall` timing (`wall`);
//! the markdown and the plots (`report`).
//!
//! For each model and K: sequential (once), ParaDIGMS (τ 0.1), SRDS (τ 1e-3) and CHORDS with
//! the paper's, the uniform and the planner's sequences (planned on the model itself from
//! calibration seeds that are not measured). CHORDS is scored at its first hit (the
//! paper's headline output); the baselines when they have converged. Speed-up is
//! T / rounds; time per sample is the wall time to that output on this machine; RMSE is
//! against the sequential solve from the same noise, and PSNR compares the two as 8-bit
//! pictures. The equal-quality tables also sweep the baselines' tolerances and CHORDS's
//! stop rules, and report per sampler and K the largest speed-up reaching each `--psnr`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chords::{
    CpuBackend, CpuLatent, Event, GaussianMixture, InitSequence, InitStrategy, Model, Prediction,
    RunOptions, Solver, StopRule, noise, planner, run,
};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::json;

use crate::cli::SamplerKind;
use crate::files::write_atomic;
use crate::job::{Method, PARADIGMS_TOLERANCE, SRDS_TOLERANCE};

mod quality;
mod report;
mod wall;

pub use wall::WallConfig;

/// The ParaDIGMS tolerances the equal-quality tables sweep (the table's τ among them).
const PARADIGMS_SWEEP: [f64; 6] = [0.3, 0.1, 0.03, 0.01, 3e-3, 1e-3];
/// The SRDS tolerances swept.
const SRDS_SWEEP: [f64; 5] = [1e-2, 3e-3, 1e-3, 3e-4, 1e-4];
/// The `residual:τ` stop rules tried on CHORDS's streamed hits (besides `core-index:N`).
const RESIDUAL_SWEEP: [f64; 7] = [1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5];

/// `chords bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Models to measure.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [BenchModel::Mixture, BenchModel::Emoji])]
    pub models: Vec<BenchModel>,
    /// Core counts K.
    #[arg(long, value_delimiter = ',', default_values_t = [4, 6, 8])]
    pub cores: Vec<usize>,
    /// Steps T.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Samples (noise seeds 0..N) per configuration; figures are their means.
    #[arg(long, default_value_t = 2)]
    pub samples: usize,
    /// Noise seeds the planner of the `optimal` rows calibrates on, on the model itself:
    /// seeds 1000, 1001, …, none of which is measured.
    #[arg(long, default_value_t = 2)]
    pub calibration_seeds: usize,
    /// Emoji weights (default: the shipped ones).
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,
    /// The solver every model is sampled with (default: Euler on chords's flow grid; a VP
    /// solver or config measures the mixture only, the emoji model being a flow model).
    #[command(flatten)]
    pub solver: crate::solver::SolverArgs,
    /// PSNR targets (dB) of the equal-quality tables: per sampler and K, the largest
    /// speed-up among its configurations whose output reaches the target on every sample.
    #[arg(long, value_delimiter = ',', default_values_t = [30.0, 40.0])]
    pub psnr: Vec<f64>,
    /// Also time every row's wall clock to its output in these configurations (`--wall`
    /// alone: all of them), against the fastest sequential solve of the same run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        num_args = 0..,
        default_missing_values = ["cpu-threads", "cpu-lanes", "wgpu-lanes", "wgpu-per-core"]
    )]
    pub wall: Option<Vec<WallConfig>>,
    /// The main table only, fast: no tolerance sweeps (the equal-quality tables see the
    /// table's configurations alone) and no planner (no `optimal` rows).
    #[arg(long)]
    pub quick: bool,
    /// Print the rows as JSON instead of the markdown table.
    #[arg(long)]
    pub json: bool,
    /// Where to write bench.md, bench.json and the plots.
    #[arg(long, default_value = "out/bench")]
    pub out: PathBuf,
}

/// Models `chords bench` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchModel {
    /// The built-in Gaussian mixture (exact denoiser, 8 components of 3×32×32).
    Mixture,
    /// The emoji flow-matching network (grinning in the Noto style, guidance 2).
    Emoji,
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
struct Row {
    model: &'static str,
    sampler: &'static str,
    init: Option<&'static str>,
    cores: usize,
    sequence: Option<String>,
    speedup: f64,
    rounds: f64,
    time_per_sample_ms: f64,
    latent_rmse: f64,
    psnr_db: f64,
    /// Seconds the planner took to calibrate this row's sequence (`optimal` rows).
    planning_s: Option<f64>,
}

/// One sampler of the table: what `chords render` would run, and for CHORDS the name of
/// its sequence.
#[derive(Debug, Clone)]
struct Entry {
    init: Option<&'static str>,
    method: Method,
    planning_s: Option<f64>,
    /// Whether it is a row of the main table (the other baseline tolerances only feed the
    /// equal-quality tables).
    in_table: bool,
}

impl Entry {
    fn chords(init: &'static str, sequence: InitSequence) -> Self {
        Self {
            init: Some(init),
            method: Method::Chords(sequence),
            planning_s: None,
            in_table: true,
        }
    }

    /// A baseline at `tolerance`; in the main table at the sampler's default tolerance.
    fn baseline(sampler: SamplerKind, cores: usize, tolerance: f64) -> Self {
        let (method, in_table) = match sampler {
            SamplerKind::Paradigms => (
                Method::Paradigms { cores, tolerance },
                tolerance == PARADIGMS_TOLERANCE,
            ),
            _ => (
                Method::Srds { cores, tolerance },
                tolerance == SRDS_TOLERANCE,
            ),
        };
        Self {
            init: None,
            method,
            planning_s: None,
            in_table,
        }
    }
}

/// The first noise seed the planner calibrates on (bench measures seeds 0..N, N ≤ 1000).
const CALIBRATION_SEED: u64 = 1000;

/// What one run gives: rounds and wall time to the scored output, the output, and every
/// streamed output's `(round, latent)` for the convergence curve.
struct Measured {
    sampler: &'static str,
    rounds: usize,
    wall_ms: f64,
    output: Vec<f32>,
    stream: Vec<(usize, Vec<f32>)>,
}

fn measure<M: Model<CpuBackend>>(
    model: &M,
    solver: &Arc<dyn Solver>,
    method: &Method,
    x0: &[f32],
) -> Result<Measured> {
    let x0 = CpuLatent::from(x0.to_vec());
    let mut sampler = method.build::<CpuBackend>(solver.clone(), x0)?;
    // One worker thread per core, as `chords render` runs; a batching model (emoji) gets
    // each round as one stacked call instead.
    let options = RunOptions::default()
        .with_threads(0)
        .with_stop(StopRule::All);
    let started = Instant::now();
    let mut scored = None;
    let mut stream = Vec::new();
    run(sampler.as_mut(), &CpuBackend, model, &options, &mut |e| {
        if let Event::Hit(o) = e {
            let data = o.latent.as_slice().to_vec();
            // The first hit: CHORDS's fastest core, or a baseline's only output.
            if o.position == 1 {
                scored = Some((o.round, started.elapsed().as_secs_f64() * 1e3, data.clone()));
            }
            stream.push((o.round, data));
        }
    })?;
    let (rounds, wall_ms, output) = scored.context("the run produced no output")?;
    Ok(Measured {
        sampler: sampler.name(),
        rounds,
        wall_ms,
        output,
        stream,
    })
}

/// PSNR in dB of two latents as 8-bit pictures (the preview mapping).
fn psnr(shape: &[usize], a: &[f32], b: &[f32]) -> Result<f64> {
    let picture = |x| chords::preview::rgba8(shape, x).context("latent is not a picture");
    let (pa, pb) = (picture(a)?.pixels, picture(b)?.pixels);
    let mse = pa
        .iter()
        .zip(&pb)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        / pa.len().max(1) as f64;
    Ok(if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64.powi(2) / mse).log10()
    })
}

/// Runs `chords bench`.
pub fn run_bench(args: &BenchArgs) -> Result<()> {
    for &k in &args.cores {
        crate::limits::check_counts(args.steps, k)?;
        // Both benchmark models have the emoji network's 3×32×32 latent.
        let elements = chords_emoji::SHAPE.iter().product();
        for sampler in [
            SamplerKind::Chords,
            SamplerKind::Paradigms,
            SamplerKind::Srds,
        ] {
            crate::limits::check_memory(sampler, args.steps, k, elements)?;
        }
    }
    if args.samples > 1000 {
        bail!(
            "--samples {} is above the limit of 1000 noise seeds",
            args.samples
        );
    }
    if args.samples == 0 || args.steps == 0 || args.cores.contains(&0) {
        bail!("--samples, --steps and every --cores must be at least 1");
    }
    if args.psnr.is_empty() || args.psnr.iter().any(|d| !(d.is_finite() && *d > 0.0)) {
        bail!("--psnr needs one or more positive, finite targets in dB, e.g. 30,40");
    }
    if !(1..=100).contains(&args.calibration_seeds) {
        bail!(
            "--calibration-seeds {} is outside 1 to 100",
            args.calibration_seeds
        );
    }
    if let Some(k) = args.cores.iter().find(|&&k| k > args.steps) {
        bail!("{k} cores need at least {k} steps, got {}", args.steps);
    }
    let solver = args.solver.build(args.steps)?.solver;
    if solver.prediction() != Prediction::Velocity && args.models.contains(&BenchModel::Emoji) {
        bail!(
            "the emoji model is a flow-matching model; with a VP solver bench the mixture alone \
             (--models mixture)"
        );
    }
    let _claim = crate::files::Claim::new(&args.out)?;
    let mut results = Results::default();
    for &model in &args.models {
        match model {
            BenchModel::Mixture => {
                let (means, shape) = chords::mixture::demo_means();
                let mixture = GaussianMixture::new(means, shape, 0.05, solver.prediction())?;
                let latent = mixture.latent_shape().to_vec();
                bench_model("mixture", &mixture, &latent, &solver, args, &mut results)?;
            }
            BenchModel::Emoji => {
                let device = chords_emoji::cpu_device();
                let emoji =
                    chords_emoji::EmojiModel::load_or_shipped(args.weights.as_deref(), &device)?
                        .with_emoji(
                            chords_emoji::find_emoji(chords_emoji::DEFAULT_EMOJI)?,
                            chords_emoji::Style::Noto,
                        )?
                        .with_batching(true);
                let latent = chords_emoji::SHAPE.to_vec();
                bench_model("emoji", &emoji, &latent, &solver, args, &mut results)?;
            }
        }
    }
    let Results {
        rows,
        curves,
        points,
        wall: mut wall_rows,
    } = results;
    wall::relate(&mut wall_rows);
    let equal = quality::best_at(&points, &args.psnr, args.steps);
    let mut table = report::markdown(&rows, args) + &quality::markdown(&equal, args.samples);
    let mut json = json!({ "rows": rows, "equal_quality": equal });
    if args.wall.is_some() {
        table += &wall::markdown(&wall_rows, args.samples);
        json["wall"] = serde_json::to_value(&wall_rows)?;
    }
    let json_text = serde_json::to_string_pretty(&json)?;
    write_atomic(&args.out.join("bench.md"), table.as_bytes())?;
    write_atomic(&args.out.join("bench.json"), json_text.as_bytes())?;
    report::write_plots(&rows, &curves, args)?;
    report::write_tradeoff_plots(&points, args)?;
    if args.json {
        println!("{json_text}");
    } else {
        print!("{table}");
    }
    eprintln!(
        "wrote bench.md, bench.json, convergence.png, speedup.png and tradeoff-k*.png to {}",
        args.out.display()
    );
    Ok(())
}

/// `(model, K, sequence name, [(round, L1 to the final output)])` for the convergence plot.
type Curve = (&'static str, usize, &'static str, Vec<(f64, f64)>);

/// Everything measured, over all models.
#[derive(Default)]
struct Results {
    rows: Vec<Row>,
    curves: Vec<Curve>,
    points: Vec<quality::Point>,
    wall: Vec<wall::WallRow>,
}

/// The `optimal` entry: the planner's sequence for `k` cores at `speedup`, scored by
/// `scorer`, with a progress bar and the planning time.
fn planned(
    name: &str,
    steps: usize,
    k: usize,
    speedup: f64,
    scorer: &mut dyn planner::Scorer,
) -> Result<Entry> {
    let bar = ProgressBar::new(planner::max_scores(k) as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>8} planning K={msg} [{bar:30}] {pos}/{len} sequences at most ({elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(name.to_string());
    bar.set_message(k.to_string());
    let started = Instant::now();
    let optimal = planner::plan(steps, k, speedup, scorer, &mut |d, _| {
        bar.set_position(d as u64)
    })?;
    bar.finish_and_clear();
    let mut entry = Entry::chords("optimal", optimal);
    entry.planning_s = Some(started.elapsed().as_secs_f64());
    Ok(entry)
}

/// Measures every sampler on `model`; with `--wall` also times the table's rows.
fn bench_model<M: wall::WallModel>(
    name: &'static str,
    model: &M,
    latent: &[usize],
    solver: &Arc<dyn Solver>,
    args: &BenchArgs,
    results: &mut Results,
) -> Result<()> {
    let Results {
        rows,
        curves,
        points,
        ..
    } = results;
    let steps = args.steps;
    let start = |s: u64| {
        let mut x = noise::gaussian(s, latent.iter().product());
        noise::scale_to_initial(solver.as_ref(), &mut x);
        x
    };
    let seeds: Vec<Vec<f32>> = (0..args.samples as u64).map(start).collect();
    // The planner's runs: one call per core on a worker thread each (faster on the CPU
    // than one batched call), from calibration seeds no row measures.
    let unbatched = model.batched(false);
    let mut scorer = if args.quick {
        None
    } else {
        let calibration = (0..args.calibration_seeds as u64)
            .map(|s| start(CALIBRATION_SEED + s))
            .collect();
        Some(planner::ModelScorer::new(
            &unbatched,
            solver.clone(),
            calibration,
        )?)
    };
    let mut plans = Vec::new();
    for &k in &args.cores {
        let sweep = |sampler, taus: &[f64]| {
            taus.iter()
                .map(|&tau| Entry::baseline(sampler, k, tau))
                .collect::<Vec<_>>()
        };
        let (paradigms, srds): (&[f64], &[f64]) = if args.quick {
            (&[PARADIGMS_TOLERANCE], &[SRDS_TOLERANCE])
        } else {
            (&PARADIGMS_SWEEP, &SRDS_SWEEP)
        };
        let mut entries = sweep(SamplerKind::Paradigms, paradigms);
        entries.extend(sweep(SamplerKind::Srds, srds));
        // The planner aims at the paper sequence's speed-up, or the uniform one's where the
        // paper has no sequence for K.
        let paper = InitSequence::from_strategy(InitStrategy::Paper, steps, k).ok();
        let uniform = InitSequence::from_strategy(InitStrategy::Uniform, steps, k)?;
        let speedup = paper.as_ref().unwrap_or(&uniform).plan().hits[0].speedup;
        if let Some(init) = paper {
            entries.push(Entry::chords("paper", init));
        }
        if let Some(scorer) = scorer.as_mut() {
            entries.push(planned(name, steps, k, speedup, scorer)?);
        }
        entries.push(Entry::chords("uniform", uniform));
        plans.push((k, entries));
    }
    let runs = (1 + plans.iter().map(|(_, e)| e.len()).sum::<usize>()) * seeds.len();
    let bar = ProgressBar::new(runs as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} runs {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(name);
    bar.set_message("sequential");
    let mut references = Vec::new();
    let mut sequential_ms = 0.0;
    for x0 in &seeds {
        let m = measure(model, solver, &Method::Sequential, x0)?;
        sequential_ms += m.wall_ms / seeds.len() as f64;
        references.push(m.output);
        bar.inc(1);
    }
    rows.push(Row {
        model: name,
        sampler: "sequential",
        init: None,
        cores: 1,
        sequence: None,
        speedup: 1.0,
        rounds: steps as f64,
        time_per_sample_ms: sequential_ms,
        latent_rmse: 0.0,
        psnr_db: f64::INFINITY,
        planning_s: None,
    });
    points.push(quality::Point {
        model: name,
        sampler: "sequential",
        cores: 1,
        config: format!("{steps} steps"),
        samples: vec![(steps, f64::INFINITY); seeds.len()],
    });
    let mut cases = vec![wall::Case {
        init: None,
        method: Method::Sequential,
    }];
    for (k, entries) in plans {
        for entry in entries {
            let init = entry.init;
            let sequence = entry.method.init().map(ToString::to_string);
            let n = seeds.len() as f64;
            let (mut rounds, mut ms, mut rmse, mut db) = (0.0, 0.0, 0.0, 0.0);
            let mut sampler = "";
            // Per sample: every streamed hit's (round, latent, PSNR), or the one output's.
            let mut outputs: Vec<Vec<(usize, Vec<f32>, f64)>> = Vec::new();
            for (x0, reference) in seeds.iter().zip(&references) {
                let m = measure(model, solver, &entry.method, x0)?;
                sampler = m.sampler;
                bar.set_message(format!("{sampler} {} K={k}", init.unwrap_or("")));
                rounds += m.rounds as f64 / n;
                ms += m.wall_ms / n;
                rmse += chords::rmse(&m.output, reference) / n;
                let output_db = psnr(latent, &m.output, reference)?;
                db += output_db / n;
                outputs.push(if init.is_some() {
                    m.stream
                        .iter()
                        .map(|(r, x)| Ok((*r, x.clone(), psnr(latent, x, reference)?)))
                        .collect::<Result<_>>()?
                } else {
                    vec![(m.rounds, Vec::new(), output_db)]
                });
                let first_of_its_kind =
                    init.filter(|i| !curves.iter().any(|c| c.0 == name && c.1 == k && c.2 == *i));
                if let Some(init) = first_of_its_kind {
                    let last = &m.stream.last().context("no outputs")?.1;
                    let l1 = |x: &[f32]| {
                        x.iter()
                            .zip(last)
                            .map(|(a, b)| (a - b).abs() as f64)
                            .sum::<f64>()
                            / x.len() as f64
                    };
                    let points = m.stream.iter().map(|(r, x)| (*r as f64, l1(x))).collect();
                    curves.push((name, k, init, points));
                }
                bar.inc(1);
            }
            let point = |config: String, samples| quality::Point {
                model: name,
                sampler,
                cores: k,
                config,
                samples,
            };
            match (&entry.method, init) {
                (Method::Chords(_), Some(init)) => {
                    let hits: Vec<Vec<&[f32]>> = outputs
                        .iter()
                        .map(|o| o.iter().map(|h| h.1.as_slice()).collect())
                        .collect();
                    for (rule, stops) in quality::chords_stops(&hits, &RESIDUAL_SWEEP) {
                        let samples = outputs
                            .iter()
                            .zip(&stops)
                            .map(|(o, &i)| (o[i].0, o[i].2))
                            .collect();
                        points.push(point(format!("{init} {rule}"), samples));
                    }
                }
                (Method::Paradigms { tolerance, .. } | Method::Srds { tolerance, .. }, _) => {
                    let samples = outputs.iter().map(|o| (o[0].0, o[0].2)).collect();
                    points.push(point(format!("τ={tolerance}"), samples));
                }
                _ => {}
            }
            if !entry.in_table {
                continue;
            }
            cases.push(wall::Case {
                init,
                method: entry.method.clone(),
            });
            rows.push(Row {
                model: name,
                sampler,
                init,
                cores: k,
                sequence,
                speedup: steps as f64 / rounds,
                rounds,
                time_per_sample_ms: ms,
                latent_rmse: rmse,
                psnr_db: db,
                planning_s: entry.planning_s,
            });
        }
    }
    bar.finish_and_clear();
    if let Some(configs) = &args.wall {
        let bar = ProgressBar::new_spinner();
        bar.set_prefix(name);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>8} {spinner} timing {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let job = wall::Timing {
            solver,
            cases: &cases,
            starts: &seeds,
        };
        let timed = wall::time_everywhere(name, model, &job, configs, &mut |m| {
            bar.set_message(m);
            bar.tick();
        })?;
        results.wall.extend(timed);
        bar.finish_and_clear();
    }
    Ok(())
}

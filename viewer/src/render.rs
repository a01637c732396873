//! `chords render`: one sampling run, every streamed output written as .npy and PNG, and a
//! `report.json` naming them with the run's figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chords::{
    Backend, BetaSchedule, Chords, CpuBackend, CpuLatent, Ddim, Euler, Event, FlowSchedule,
    GaussianMixture, InitSequence, Output, Prediction, RunOptions, Sampler, Sequential, Solver,
    Spacing, StopRule, VpSchedule,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::cli::{BetasKind, PredictionKind, RenderArgs, SamplerKind, SolverKind, SpacingKind};
use crate::files::OutDir;
use crate::plan;

/// Runs `chords render`.
pub fn run(args: &RenderArgs) -> Result<()> {
    // Everything is validated before any work starts or any file is written.
    let stop: StopRule = args.stop.parse()?;
    let solver = solver(args)?;
    let (means, means_shape) = load_means(args)?;
    let latent_shape = means_shape[1..].to_vec();
    let x0 = initial_noise(args, &latent_shape)?;
    let model = GaussianMixture::new(means, means_shape, args.sigma_data, solver.prediction())
        .context("invalid mixture model")?;
    let init = match args.sampler {
        SamplerKind::Chords => Some(plan::sequence(&args.schedule)?),
        SamplerKind::Sequential => None,
    };
    let cores = init.as_ref().map_or(1, InitSequence::cores);
    stop.validate(cores)?;
    let inputs: Vec<&std::path::Path> = args
        .means
        .iter()
        .chain(&args.x0)
        .map(|p| p.as_path())
        .collect();
    let out = OutDir::prepare(&args.out, args.overwrite, &inputs)?;

    let backend = CpuBackend;
    let threads = if args.threads == 0 {
        cores
    } else {
        args.threads
    };
    let options = RunOptions { threads, stop };
    let expected_rounds = expected_rounds(init.as_ref(), &stop, args.schedule.steps);
    let run = sample(
        &backend,
        &model,
        solver.clone(),
        init.as_ref(),
        &x0,
        &options,
        expected_rounds,
    )?;

    let reference = if args.reference {
        let started = Instant::now();
        let options = RunOptions {
            threads: 1,
            stop: StopRule::All,
        };
        let seq = sample(
            &backend,
            &model,
            solver.clone(),
            None,
            &x0,
            &options,
            args.schedule.steps,
        )?;
        let hit = seq
            .outputs
            .last()
            .context("the sequential solve produced no output")?;
        Some((backend.download(&hit.latent)?, started.elapsed()))
    } else {
        None
    };

    // Write every output, then the report.
    let describe = |stem: &str, o: &Output<CpuLatent>| -> Result<Value> {
        let data = backend.download(&o.latent)?;
        let (file, png) = out.write_latent(stem, &latent_shape, &data)?;
        let mut entry = json!({
            "core": o.core, "round": o.round, "speedup": o.speedup, "file": file, "png": png,
        });
        if let Some((reference, _)) = &reference {
            entry["rmse_vs_sequential"] = json!(rmse(&data, reference));
        }
        Ok(entry)
    };
    let mut preview = Value::Null;
    let mut hits = Vec::new();
    for o in &run.outputs {
        if o.position == 0 {
            preview = describe("preview", o)?;
        } else {
            hits.push(describe(&format!("hit{}-core{}", o.position, o.core), o)?);
        }
    }
    let mut report = json!({
        "sampler": run.sampler,
        "model": "mixture",
        "solver": format!("{:?}", args.solver).to_lowercase(),
        "steps": args.schedule.steps,
        "cores": cores,
        "init": init.as_ref().map(|i| i.starts().to_vec()),
        "backend": backend.name(),
        "threads": threads,
        "stop": stop.to_string(),
        "stopped_by": match run.summary.reason {
            chords::StopReason::Rule => "rule",
            chords::StopReason::Finished => "finished",
        },
        "seed": if args.x0.is_some() { Value::Null } else { json!(args.seed) },
        "latent_shape": latent_shape,
        "rounds": run.summary.rounds,
        "model_calls": run.summary.model_calls,
        "wall_ms": run.wall.as_secs_f64() * 1e3,
        "hits": hits,
    });
    if run.sampler == "chords" {
        report["preview"] = preview;
    }
    if let Some((data, wall)) = &reference {
        let (file, png) = out.write_latent("sequential", &latent_shape, data)?;
        report["reference"] =
            json!({"file": file, "png": png, "wall_ms": wall.as_secs_f64() * 1e3});
    }
    let path = out.write_report(&report)?;
    eprintln!(
        "{} rounds, {} model calls, {:.1} ms; wrote {} output(s) and {}",
        run.summary.rounds,
        run.summary.model_calls,
        run.wall.as_secs_f64() * 1e3,
        run.outputs.len(),
        path.display()
    );
    Ok(())
}

/// The solver the arguments select.
fn solver(args: &RenderArgs) -> Result<Arc<dyn Solver>> {
    let steps = args.schedule.steps;
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    Ok(match args.solver {
        SolverKind::Euler => Arc::new(Euler::new(FlowSchedule::new(steps, args.shift)?)),
        SolverKind::Ddim => {
            let betas = match args.betas {
                BetasKind::Linear => BetaSchedule::LINEAR,
                BetasKind::ScaledLinear => BetaSchedule::SCALED_LINEAR,
            };
            let spacing = match args.spacing {
                SpacingKind::Leading => Spacing::Leading { offset: 0 },
                SpacingKind::Trailing => Spacing::Trailing,
            };
            let prediction = match args.prediction {
                PredictionKind::Epsilon => Prediction::Epsilon,
                PredictionKind::V => Prediction::V,
                PredictionKind::Sample => Prediction::Sample,
            };
            Arc::new(Ddim::new(
                VpSchedule::new(steps, betas, spacing)?,
                prediction,
            )?)
        }
    })
}

/// The mixture means: `--means` (M, C, H, W) or the built-in pictures.
fn load_means(args: &RenderArgs) -> Result<(Vec<f32>, Vec<usize>)> {
    let Some(path) = &args.means else {
        return Ok(chords::mixture::demo_means());
    };
    let array = chords::npy::read(path)?;
    if array.shape.len() != 4 || array.shape.contains(&0) {
        bail!(
            "{}: means must have shape (M, C, H, W) with no zero dimension, got {:?}",
            path.display(),
            array.shape
        );
    }
    Ok((array.data, array.shape))
}

/// The initial latent: `--x0` (checked against the means' shape) or seeded Gaussian noise.
fn initial_noise(args: &RenderArgs, shape: &[usize]) -> Result<Vec<f32>> {
    let Some(path) = &args.x0 else {
        return Ok(chords::noise::gaussian(args.seed, shape.iter().product()));
    };
    let array = chords::npy::read(path)?;
    if array.shape != shape {
        bail!(
            "{}: x0 has shape {:?} but the latent (one mean) has shape {shape:?}",
            path.display(),
            array.shape
        );
    }
    if let Some(i) = array.data.iter().position(|v| !v.is_finite()) {
        bail!(
            "{}: x0 holds a non-finite value at element {i}",
            path.display()
        );
    }
    Ok(array.data)
}

/// How many rounds the progress bar should expect.
fn expected_rounds(init: Option<&InitSequence>, stop: &StopRule, steps: usize) -> usize {
    match (init, stop) {
        (Some(init), StopRule::CoreIndex(0)) => init.plan().preview_round,
        (Some(init), StopRule::CoreIndex(n)) => {
            init.plan().hits.get(n - 1).map_or(steps, |h| h.round)
        }
        _ => steps,
    }
}

/// A finished sampling run.
struct SampleRun {
    sampler: &'static str,
    outputs: Vec<Output<CpuLatent>>,
    summary: chords::RunSummary,
    wall: Duration,
}

/// Runs CHORDS (with `init`) or the sequential solve, with a progress bar on stderr.
fn sample(
    backend: &CpuBackend,
    model: &GaussianMixture,
    solver: Arc<dyn Solver>,
    init: Option<&InitSequence>,
    x0: &[f32],
    options: &RunOptions,
    expected_rounds: usize,
) -> Result<SampleRun> {
    let x0 = backend.upload(0, x0)?;
    let mut sampler: Box<dyn Sampler<CpuBackend>> = match init {
        Some(init) => Box::new(Chords::new(solver, init.clone(), x0)?),
        None => Box::new(Sequential::new(solver, x0)),
    };
    let bar = ProgressBar::new(expected_rounds as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] round {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(sampler.name());
    let mut outputs = Vec::new();
    let started = Instant::now();
    let summary = chords::run(
        sampler.as_mut(),
        backend,
        model,
        options,
        &mut |event| match event {
            Event::Preview(o) | Event::Hit(o) => {
                bar.set_message(format!("{} output(s)", outputs.len() + 1));
                outputs.push(o.clone());
            }
            Event::RoundFinished { round, .. } => bar.set_position(*round as u64),
            _ => {}
        },
    );
    let wall = started.elapsed();
    bar.finish_and_clear();
    Ok(SampleRun {
        sampler: sampler.name(),
        outputs,
        summary: summary?,
        wall,
    })
}

/// Root-mean-square difference of two latents.
fn rmse(a: &[f32], b: &[f32]) -> f64 {
    let sq: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    (sq / a.len().max(1) as f64).sqrt()
}

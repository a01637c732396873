//! `chords plan`: the output schedule of an initialisation sequence, and the solver's grid
//! (no model involved unless `--calibrate`).

use std::io::Write;

use anyhow::{Result, bail};
use chords::planner::{self, ModelScorer, Scorer};
use chords::{GaussianMixture, InitSequence, InitStrategy, Solver};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::cli::{PlanArgs, ScheduleArgs, Strategy};

/// The sequence the schedule arguments describe, validated. `--strategy optimal` scores
/// candidates with `calibration` when `--calibrate` is given, else on the test ODE; a
/// calibration scorer should already score [`ScheduleArgs::objective`].
pub fn sequence(args: &ScheduleArgs, calibration: Option<&mut dyn Scorer>) -> Result<InitSequence> {
    let planner_only = args.speedup.is_some() || args.calibrate || args.objective.is_some();
    if planner_only && !matches!(args.strategy, Strategy::Optimal) {
        bail!("--speedup, --calibrate and --objective belong to --strategy optimal");
    }
    if args.cores == 0 {
        anyhow::bail!("--cores must be at least 1");
    }
    if args.steps == 0 {
        anyhow::bail!("--steps must be at least 1");
    }
    let seq = match &args.init {
        Some(text) => InitSequence::parse_for(text, args.steps, args.cores)?,
        None => {
            let strategy = match args.strategy {
                Strategy::Paper => InitStrategy::Paper,
                Strategy::Uniform => InitStrategy::Uniform,
                Strategy::Optimal => return optimal(args, calibration),
            };
            InitSequence::from_strategy(strategy, args.steps, args.cores)?
        }
    };
    Ok(seq)
}

/// The planner's sequence, with a progress bar.
fn optimal(args: &ScheduleArgs, calibration: Option<&mut dyn Scorer>) -> Result<InitSequence> {
    let (steps, cores) = (args.steps, args.cores);
    let speedup = match args.speedup {
        Some(x) => x,
        None => InitSequence::from_strategy(InitStrategy::Paper, steps, cores)
            .or_else(|_| InitSequence::from_strategy(InitStrategy::Uniform, steps, cores))?
            .plan()
            .hits
            .first()
            .map_or(1.0, |h| h.speedup),
    };
    planner::fastest_start(steps, cores, speedup)?;
    let bar = ProgressBar::new(planner::max_scores(cores) as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "  planning [{bar:30}] {pos}/{len} sequences scored at most ({elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let scored = std::cell::Cell::new(0);
    let mut progress = |done: usize, _of: usize| {
        scored.set(done);
        bar.set_position(done as u64);
    };
    let seq = match calibration {
        Some(scorer) if args.calibrate => {
            planner::plan(steps, cores, speedup, scorer, &mut progress)?
        }
        _ => {
            let surrogate = planner::Surrogate::new(steps)?;
            let mut scorer = surrogate
                .scorer()?
                .with_objective(args.objective.unwrap_or_default());
            planner::plan(steps, cores, speedup, &mut scorer, &mut progress)?
        }
    };
    bar.finish_and_clear();
    eprintln!(
        "planned {seq} in {:.1} s ({} sequences scored)",
        started.elapsed().as_secs_f64(),
        scored.get()
    );
    Ok(seq)
}

/// Prints the plan as a table or as JSON.
pub fn run(args: &PlanArgs) -> Result<()> {
    crate::limits::check_counts(args.schedule.steps, args.schedule.cores)?;
    let solver = args.solver.build(args.schedule.steps)?.solver;
    let seq = if args.schedule.calibrate {
        // `chords plan --calibrate`: the built-in mixture is the model, on the solver's grid.
        let (means, shape) = chords::mixture::demo_means();
        let model = GaussianMixture::new(means, shape, 0.5, solver.prediction())?;
        let starts = (0..2)
            .map(|s| {
                let mut x = chords::noise::gaussian(s, model.latent_shape().iter().product());
                chords::noise::scale_to_initial(solver.as_ref(), &mut x);
                x
            })
            .collect();
        let mut scorer = ModelScorer::new(&model, solver.clone(), starts)?
            .with_objective(args.schedule.objective.unwrap_or_default());
        sequence(&args.schedule, Some(&mut scorer))?
    } else {
        sequence(&args.schedule, None)?
    };
    let plan = seq.plan();
    let mut out = std::io::stdout().lock();
    if args.json {
        let hits: Vec<_> = plan
            .hits
            .iter()
            .map(|h| json!({"core": h.core, "round": h.round, "speedup": (h.speedup * 100.0).round() / 100.0}))
            .collect();
        let json = json!({
            "steps": plan.steps,
            "cores": plan.starts.len(),
            "init": plan.starts,
            "preview_round": plan.preview_round,
            "hits": hits,
            "grid": grid(solver.as_ref()),
        });
        writeln!(out, "{json}")?;
        return Ok(());
    }
    let seq: Vec<String> = plan.starts.iter().map(ToString::to_string).collect();
    writeln!(
        out,
        "steps {}, cores {}, init {}",
        plan.steps,
        plan.starts.len(),
        seq.join("-")
    )?;
    writeln!(out, "preview after round {}", plan.preview_round)?;
    writeln!(
        out,
        "{:>6} {:>6} {:>6} {:>8}",
        "output", "core", "round", "speedup"
    )?;
    for (n, h) in plan.hits.iter().enumerate() {
        writeln!(
            out,
            "{:>6} {:>6} {:>6} {:>7.2}x",
            n + 1,
            h.core,
            h.round,
            h.speedup
        )?;
    }
    Ok(())
}

/// Every grid point of `solver`, the end included: the model's time input there (`null` at
/// the end, never evaluated) and the point's `x = alpha·x_data + sigma·ε`.
pub fn grid(solver: &dyn Solver) -> serde_json::Value {
    let points: Vec<_> = (0..=solver.steps())
        .map(|i| {
            let p = solver.point(i);
            let t = (i < solver.steps()).then_some(p.t);
            json!({"index": i, "timestep": t, "alpha": p.alpha, "sigma": p.sigma})
        })
        .collect();
    json!(points)
}

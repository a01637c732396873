//! `chords render`: one sampling run, every streamed output written as .npy and PNG, and a
//! `report.json` naming them with the run's figures.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chords::{
    Backend, CancelToken, Event, Model, RunOptions, RunSummary, Solver, StopReason, StopRule,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::cli::RenderArgs;
use crate::files::OutDir;
use crate::frames::{Frame, FrameLog, Pictures};
use crate::job::{self, Job, Method, OnBackend};

/// `chords render`'s work on a backend: the run (and the reference), with its frames.
struct RenderWork {
    frames: bool,
}

impl OnBackend for RenderWork {
    type Output = (Executed, Option<FrameLog>);

    fn run<B: Pictures, M: Model<B>>(
        self,
        backend: &B,
        model: &M,
        job: &Job,
    ) -> Result<Self::Output> {
        execute(backend, model, job, self.frames)
    }
}

/// Ctrl-C's target: the token of the render running now, if any. The process-wide handler
/// (ctrlc allows one per process) is installed by the first render and cancels whichever
/// render is running, so the window can render again ("Save frames") without a second
/// handler; with no render running, Ctrl-C exits at once.
static CTRL_C_TARGET: Mutex<Option<CancelToken>> = Mutex::new(None);
static CTRL_C_HANDLER: OnceLock<Result<(), String>> = OnceLock::new();

/// The current render's claim on Ctrl-C; released when dropped.
struct CtrlC;

impl CtrlC {
    /// Makes Ctrl-C cancel `token` (a second Ctrl-C exits with code 130) until dropped.
    fn cancels(token: CancelToken) -> Result<Self> {
        CTRL_C_HANDLER
            .get_or_init(|| {
                ctrlc::set_handler(|| {
                    let target = CTRL_C_TARGET.lock().ok().and_then(|t| t.clone());
                    match target {
                        Some(token) if !token.is_cancelled() => token.cancel(),
                        _ => std::process::exit(130),
                    }
                })
                .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|e| anyhow::anyhow!("cannot install the Ctrl-C handler: {e}"))?;
        if let Ok(mut target) = CTRL_C_TARGET.lock() {
            *target = Some(token);
        }
        Ok(Self)
    }
}

impl Drop for CtrlC {
    fn drop(&mut self) {
        if let Ok(mut target) = CTRL_C_TARGET.lock() {
            *target = None;
        }
    }
}

/// Runs `chords render`.
pub fn run(args: &RenderArgs) -> Result<()> {
    if args.frame_kind.is_some() && !args.frames {
        anyhow::bail!("--frame-kind belongs to --frames");
    }
    let job = job::prepare(args, None)?;
    let inputs: Vec<&Path> = args
        .means
        .iter()
        .chain(&args.x0)
        .map(|p| p.as_path())
        .collect();
    let out = OutDir::prepare(&args.out, args.overwrite, &inputs)?;
    // Ctrl-C stops the run after the round in progress; the outputs so far and the report
    // are still written. A second Ctrl-C exits at once.
    let _ctrl_c = CtrlC::cancels(job.options.cancel.clone())?;
    let ((result, frames), device) = job::dispatch(
        &job,
        RenderWork {
            frames: args.frames,
        },
    )?;
    let mut report = write_outputs(args, &job, &out, &result, device)?;
    if let Some(frames) = &frames {
        let (count, sheet) = frames.write(&out)?;
        report["frames"] =
            json!({"count": count, "dir": crate::frames::FRAMES_DIR, "contact_sheet": sheet});
    }
    let path = out.write_report(&report)?;
    if result.run.summary.reason == StopReason::Cancelled {
        return Err(Cancelled {
            rounds: result.run.summary.rounds,
            outputs: result.run.outputs.len(),
            report: path.display().to_string(),
        }
        .into());
    }
    eprintln!(
        "{} rounds, {} model calls, {:.1} ms on {}; wrote {} output(s){} and {}",
        result.run.summary.rounds,
        result.run.summary.model_calls,
        result.run.wall.as_secs_f64() * 1e3,
        result.backend,
        result.run.outputs.len(),
        frames.map_or(String::new(), |f| format!(", {} frames", f.frames().len())),
        path.display()
    );
    Ok(())
}

/// A run stopped by Ctrl-C; its outputs and report were written.
#[derive(Debug)]
pub struct Cancelled {
    rounds: usize,
    outputs: usize,
    report: String,
}

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cancelled after round {}; kept {} output(s) and wrote {}",
            self.rounds, self.outputs, self.report
        )
    }
}

impl std::error::Error for Cancelled {}

/// A sampling run, with outputs on the host.
struct HostRun {
    sampler: &'static str,
    /// `(position, core, round, speedup, data)` in stream order.
    outputs: Vec<(usize, usize, usize, f64, Vec<f32>)>,
    summary: RunSummary,
    wall: Duration,
}

/// The main run and, with `--reference`, the sequential solve, on one backend.
struct Executed {
    backend: String,
    run: HostRun,
    reference: Option<(Vec<f32>, Duration)>,
}

fn execute<B: Pictures, M: Model<B>>(
    backend: &B,
    model: &M,
    job: &Job,
    frames: bool,
) -> Result<(Executed, Option<FrameLog>)> {
    let mut log = FrameLog::default();
    let mut failure = None;
    let run = sample(
        backend,
        model,
        job.solver.clone(),
        &job.method,
        &job.x0,
        &job.options,
        job.expected_rounds,
        &mut |event| {
            // With estimates asked for, a frame is a core's estimate; else its next point.
            let pictured = match event {
                Event::Estimate {
                    round,
                    core,
                    index,
                    latent,
                } if job.options.estimates => Some((round, core, index, latent)),
                Event::CoreUpdated {
                    round,
                    core,
                    index,
                    latent,
                } if !job.options.estimates => Some((round, core, index, latent)),
                _ => None,
            };
            if let (true, None, Some((round, core, index, latent))) = (frames, &failure, pictured) {
                match backend.picture(latent, &job.latent_shape) {
                    Ok(image) => log.push(Frame {
                        round: *round,
                        core: *core,
                        index: *index,
                        image,
                    }),
                    Err(e) => {
                        failure = Some(e);
                        job.options.cancel.cancel();
                    }
                }
            }
        },
    )?;
    if let Some(e) = failure {
        return Err(e.context("cannot draw a frame"));
    }
    let cancelled = run.summary.reason == StopReason::Cancelled;
    let reference = if job.reference && !cancelled {
        let options = RunOptions::default()
            .with_threads(1)
            .with_stop(StopRule::All);
        let seq = sample(
            backend,
            model,
            job.solver.clone(),
            &Method::Sequential,
            &job.x0,
            &options,
            job.solver.steps(),
            &mut |_| {},
        )?;
        let (.., data) = seq
            .outputs
            .into_iter()
            .last()
            .context("the sequential solve produced no output")?;
        Some((data, seq.wall))
    } else {
        None
    };
    Ok((
        Executed {
            backend: backend.name(),
            run,
            reference,
        },
        frames.then_some(log),
    ))
}

/// Writes every output and builds the report.
fn write_outputs(
    args: &RenderArgs,
    job: &Job,
    out: &OutDir,
    result: &Executed,
    device: Value,
) -> Result<Value> {
    let describe = |stem: &str,
                    (_, core, round, speedup, data): &(usize, usize, usize, f64, Vec<f32>)|
     -> Result<Value> {
        let (file, png) = out.write_latent(stem, &job.latent_shape, data)?;
        let mut entry =
            json!({"core": core, "round": round, "speedup": speedup, "file": file, "png": png});
        if let Some((reference, _)) = &result.reference {
            entry["rmse_vs_sequential"] = json!(chords::rmse(data, reference));
        }
        Ok(entry)
    };
    let mut preview = Value::Null;
    let mut hits = Vec::new();
    for o in &result.run.outputs {
        if o.0 == 0 {
            preview = describe("preview", o)?;
        } else {
            hits.push(describe(&format!("hit{}-core{}", o.0, o.1), o)?);
        }
    }
    let run = &result.run;
    let mut report = json!({
        "sampler": run.sampler,
        "model": job.model.describe(args, job.pool.is_some()),
        "solver": job.solver_name,
        "scheduler_config": job.scheduler_config.as_ref().map(|(path, class)| {
            json!({"file": path.display().to_string(), "class": class})
        }),
        "steps": args.schedule.steps,
        "cores": job.cores,
        "init": job.method.init().map(|i| i.starts().to_vec()),
        "tolerance": job.method.tolerance(),
        "backend": result.backend,
        "adapters": device["adapters"],
        "bytes_transferred": device["bytes_transferred"],
        "threads": job.options.threads,
        "stop": job.options.stop.to_string(),
        "stopped_by": run.summary.reason.name(),
        "cancelled": run.summary.reason == StopReason::Cancelled,
        "retired_cores": run.summary.retired,
        "seed": if args.x0.is_some() { Value::Null } else { json!(args.seed) },
        "latent_shape": job.latent_shape,
        "rounds": run.summary.rounds,
        "model_calls": run.summary.model_calls,
        "wall_ms": run.wall.as_secs_f64() * 1e3,
        "hits": hits,
    });
    if run.sampler == "chords" {
        report["preview"] = preview;
    }
    if let Some((data, wall)) = &result.reference {
        let (file, png) = out.write_latent("sequential", &job.latent_shape, data)?;
        report["reference"] =
            json!({"file": file, "png": png, "wall_ms": wall.as_secs_f64() * 1e3});
    }
    Ok(report)
}

/// Runs the sampler `method` with a progress bar on stderr, showing every event to
/// `observe`, then downloads the outputs (outside the timed part).
#[allow(clippy::too_many_arguments)]
fn sample<B: Backend, M: Model<B>>(
    backend: &B,
    model: &M,
    solver: Arc<dyn Solver>,
    method: &Method,
    x0: &[f32],
    options: &RunOptions,
    expected_rounds: usize,
    observe: &mut dyn FnMut(&Event<B::Latent>),
) -> Result<HostRun> {
    let x0 = backend.upload(0, x0)?;
    let mut sampler = method.build::<B>(solver, x0)?;
    let bar = ProgressBar::new(expected_rounds as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] round {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(sampler.name());
    let mut outputs = Vec::new();
    let started = Instant::now();
    let summary = chords::run(sampler.as_mut(), backend, model, options, &mut |event| {
        observe(event);
        match event {
            Event::Preview(o) | Event::Hit(o) => {
                bar.set_message(format!("{} output(s)", outputs.len() + 1));
                outputs.push(o.clone());
            }
            Event::RoundFinished { round, .. } => bar.set_position(*round as u64),
            _ => {}
        }
    });
    let wall = started.elapsed();
    bar.finish_and_clear();
    let summary = summary?;
    let outputs = outputs
        .into_iter()
        .map(|o| {
            Ok((
                o.position,
                o.core,
                o.round,
                o.speedup,
                backend.download(&o.latent)?,
            ))
        })
        .collect::<Result<_>>()?;
    Ok(HostRun {
        sampler: sampler.name(),
        outputs,
        summary,
        wall,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_render_of_a_process_can_claim_ctrl_c() {
        // The window renders again for "Save frames": the handler must not be installed twice.
        for _ in 0..3 {
            let token = CancelToken::new();
            let claim = CtrlC::cancels(token.clone()).expect("Ctrl-C claimed");
            drop(claim);
        }
    }
}

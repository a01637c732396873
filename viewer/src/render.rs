//! `chords render`: one sampling run, every streamed output written as .npy and PNG, and a
//! `report.json` naming them with the run's figures.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chords::planner::{ModelScorer, Scorer};
use chords::{
    Backend, CancelToken, Chords, CpuBackend, Event, GaussianMixture, InitSequence, Model,
    Paradigms, Prediction, RunOptions, RunSummary, Sampler, Sequential, Solver, Srds, StopReason,
    StopRule,
};
use chords_burn::WgpuBurnModel;
use chords_emoji::EmojiModel;
use chords_wgpu::{DevicePool, DeviceSharing, GpuMixture, PoolOptions, WgpuBackend, WgpuError};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::cli::{
    BackendKind, DEFAULT_SIGMA_DATA, DevicesKind, ModelKind, RenderArgs, SamplerKind,
};
use crate::files::OutDir;
use crate::frames::{Frame, FrameLog, Pictures};
use crate::plan;

/// Everything a run needs, validated before any work starts or any file is written.
pub(crate) struct Job {
    pub solver: Arc<dyn Solver>,
    /// The solver's name and the scheduler config it follows (for the report).
    pub solver_name: &'static str,
    pub scheduler_config: Option<(std::path::PathBuf, Option<String>)>,
    pub model: ModelChoice,
    pub latent_shape: Vec<usize>,
    pub x0: Vec<f32>,
    pub method: Method,
    pub cores: usize,
    pub options: RunOptions,
    pub expected_rounds: usize,
    pub reference: bool,
    /// The wgpu devices, or `None` for the CPU backend.
    pub pool: Option<Arc<DevicePool>>,
}

/// A wgpu device the caller already has (the viewer window's), with its instance and
/// adapter: `--backend wgpu` without `--adapters` puts every core on it.
pub(crate) struct OwnDevice {
    pub instance: chords_wgpu::wgpu::Instance,
    pub adapter: chords_wgpu::wgpu::Adapter,
    pub device: chords_wgpu::wgpu::Device,
    pub queue: chords_wgpu::wgpu::Queue,
}

/// ParaDIGMS's default tolerance τ (`render --sampler paradigms`, `bench`).
pub(crate) const PARADIGMS_TOLERANCE: f64 = 0.1;
/// SRDS's default tolerance τ (`render --sampler srds`, `bench`).
pub(crate) const SRDS_TOLERANCE: f64 = 1e-3;

/// The sampler a run uses.
#[derive(Debug, Clone)]
pub(crate) enum Method {
    Chords(InitSequence),
    Sequential,
    Paradigms { cores: usize, tolerance: f64 },
    Srds { cores: usize, tolerance: f64 },
}

impl Method {
    pub(crate) fn from_args(
        args: &RenderArgs,
        calibration: Option<&mut dyn Scorer>,
    ) -> Result<Self> {
        let baseline = |default: f64| -> Result<(usize, f64)> {
            if args.schedule.cores == 0 {
                bail!("--cores must be at least 1");
            }
            Ok((args.schedule.cores, args.tolerance.unwrap_or(default)))
        };
        Ok(match args.sampler {
            SamplerKind::Chords => Self::Chords(plan::sequence(&args.schedule, calibration)?),
            SamplerKind::Sequential => Self::Sequential,
            SamplerKind::Paradigms => {
                let (cores, tolerance) = baseline(PARADIGMS_TOLERANCE)?;
                Self::Paradigms { cores, tolerance }
            }
            SamplerKind::Srds => {
                let (cores, tolerance) = baseline(SRDS_TOLERANCE)?;
                Self::Srds { cores, tolerance }
            }
        })
    }

    pub(crate) fn init(&self) -> Option<&InitSequence> {
        match self {
            Self::Chords(init) => Some(init),
            _ => None,
        }
    }

    pub(crate) fn cores(&self) -> usize {
        match self {
            Self::Chords(init) => init.cores(),
            Self::Sequential => 1,
            Self::Paradigms { cores, .. } | Self::Srds { cores, .. } => *cores,
        }
    }

    fn tolerance(&self) -> Option<f64> {
        match self {
            Self::Paradigms { tolerance, .. } | Self::Srds { tolerance, .. } => Some(*tolerance),
            _ => None,
        }
    }

    pub(crate) fn build<'a, B: Backend + 'a>(
        &self,
        solver: Arc<dyn Solver>,
        x0: B::Latent,
    ) -> Result<Box<dyn Sampler<B> + 'a>> {
        Ok(match self {
            Self::Chords(init) => Box::new(Chords::new(solver, init.clone(), x0)?),
            Self::Sequential => Box::new(Sequential::new(solver, x0)),
            Self::Paradigms { cores, tolerance } => {
                Box::new(Paradigms::new(solver, *cores, *tolerance, x0)?)
            }
            Self::Srds { cores, tolerance } => Box::new(Srds::new(solver, *cores, *tolerance, x0)?),
        })
    }
}

/// The model a run samples from.
pub(crate) enum ModelChoice {
    Mixture(GaussianMixture),
    Emoji(Box<EmojiModel>),
}

impl ModelChoice {
    fn describe(&self, args: &RenderArgs, on_pool: bool) -> Value {
        match self {
            Self::Mixture(m) => {
                json!({"name": "mixture", "components": m.components(), "sigma_data": m.sigma_data()})
            }
            Self::Emoji(_) => {
                let burn = match args.backend {
                    BackendKind::Cuda => "burn-cuda",
                    _ if on_pool => "burn-wgpu",
                    _ => "burn-ndarray",
                };
                json!({"name": "emoji", "class": args.class(), "guidance": args.guidance(), "burn": burn})
            }
        }
    }
}

/// The emoji model with the arguments' weights (default: the shipped ones), class and
/// guidance, on burn-ndarray (burn-cuda with `--backend cuda`).
fn emoji_model(args: &RenderArgs) -> Result<EmojiModel> {
    let class = chords_emoji::class_index(args.class()).map_err(anyhow::Error::msg)?;
    let device = match args.backend {
        BackendKind::Cuda => chords_emoji::cuda_device(0)?,
        _ => chords_emoji::cpu_device(),
    };
    let model = match &args.weights {
        Some(path) => EmojiModel::load(path, &device)?,
        None => EmojiModel::shipped(&device)?,
    };
    Ok(model.with_class(class)?.with_guidance(args.guidance())?)
}

/// Checks the arguments and builds everything a run needs; writes nothing.
pub(crate) fn prepare(args: &RenderArgs, own: Option<OwnDevice>) -> Result<Job> {
    let stop: StopRule = args.stop.parse()?;
    crate::limits::check_counts(args.schedule.steps, args.schedule.cores)?;
    let chosen = args.solver.build(args.schedule.steps)?;
    let solver = chosen.solver.clone();
    args.check_applicable(args.model(solver.prediction()))?;
    let model = match args.model(solver.prediction()) {
        ModelKind::Mixture => {
            let (means, means_shape) = load_means(args)?;
            if args.backend == BackendKind::Cuda {
                bail!(
                    "--backend cuda runs the emoji model; the mixture runs on --backend cpu or wgpu"
                );
            }
            let sigma_data = args.sigma_data.unwrap_or(DEFAULT_SIGMA_DATA);
            let model = GaussianMixture::new(means, means_shape, sigma_data, solver.prediction())
                .context("invalid mixture model")?;
            ModelChoice::Mixture(model)
        }
        ModelKind::Emoji => {
            if solver.prediction() != Prediction::Velocity {
                bail!(
                    "the emoji model is a flow-matching model: use --solver euler or a \
                     FlowMatchEulerDiscreteScheduler config"
                );
            }
            ModelChoice::Emoji(Box::new(emoji_model(args)?))
        }
    };
    let latent_shape = match &model {
        ModelChoice::Mixture(m) => m.latent_shape().to_vec(),
        ModelChoice::Emoji(_) => chords_emoji::SHAPE.to_vec(),
    };
    let elements = latent_shape.iter().product();
    crate::limits::check_memory(
        args.sampler,
        args.schedule.steps,
        args.schedule.cores,
        elements,
    )?;
    let mut x0 = initial_noise(args, &latent_shape)?;
    chords::noise::scale_to_initial(solver.as_ref(), &mut x0);
    let method = if args.schedule.calibrate {
        // Candidates are scored on this very model and starting point, on the CPU.
        let solver = solver.clone();
        match &model {
            ModelChoice::Mixture(m) => {
                let mut scorer = ModelScorer::new(m, solver, vec![x0.clone()])?;
                Method::from_args(args, Some(&mut scorer))?
            }
            ModelChoice::Emoji(m) => {
                let mut scorer = ModelScorer::new(m.as_ref(), solver, vec![x0.clone()])?;
                Method::from_args(args, Some(&mut scorer))?
            }
        }
    } else {
        Method::from_args(args, None)?
    };
    let cores = method.cores();
    stop.validate(cores)?;
    let threads = if args.threads == 0 {
        cores.min(chords::MAX_DEFAULT_THREADS)
    } else {
        args.threads
    };
    let expected_rounds = expected_rounds(method.init(), &stop, args.schedule.steps);
    let pool = match (args.backend, own) {
        (BackendKind::Cpu | BackendKind::Cuda, _) => None,
        (BackendKind::Wgpu | BackendKind::Auto, Some(own)) if args.adapters.is_empty() => {
            Some(Arc::new(DevicePool::from_setup(
                own.instance,
                own.adapter,
                own.device,
                own.queue,
                cores,
            )?))
        }
        (BackendKind::Wgpu, _) => Some(device_pool(args, cores)?),
        (BackendKind::Auto, _) => match device_pool(args, cores) {
            Ok(pool) => Some(pool),
            Err(e) => {
                eprintln!("warning: {e:#}; running on the CPU");
                None
            }
        },
    };
    // `auto` runs the emoji network with burn-wgpu only on hardware devices: on a software
    // adapter such as lavapipe burn-ndarray is several times faster.
    let pool = match (&model, args.backend, pool) {
        (ModelChoice::Emoji(_), BackendKind::Auto, Some(pool))
            if pool
                .gpus()
                .iter()
                .any(|g| g.info().device_type == chords_wgpu::wgpu::DeviceType::Cpu) =>
        {
            tracing::info!(
                "the emoji model runs on burn-ndarray: {} is a software adapter",
                pool.describe().join("; ")
            );
            None
        }
        (_, _, pool) => pool,
    };
    if let Some(pool) = &pool {
        pool.check_latent(x0.len())?;
        match &model {
            ModelChoice::Mixture(m) => pool
                .gpus()
                .iter()
                .try_for_each(|g| g.check_size("the mixture means", m.means().len() as u64 * 4))?,
            // burn-wgpu adopts each of the pool's devices; checked here, before any file is
            // written.
            ModelChoice::Emoji(_) => {
                WgpuBurnModel::<chords_emoji::EmojiNet, 4>::check(&WgpuBackend::new(pool.clone()))?
            }
        }
    }
    Ok(Job {
        solver,
        solver_name: chosen.name,
        scheduler_config: chosen.config,
        model,
        latent_shape,
        x0,
        method,
        cores,
        // With a second device to move to, keep core 0's point on the host too, so losing
        // core 0's device costs a move, not the run.
        options: RunOptions::default()
            .with_threads(threads)
            .with_stop(stop)
            .with_mirror(pool.as_ref().is_some_and(|p| p.gpus().len() > 1)),
        expected_rounds,
        reference: args.reference,
        pool,
    })
}

/// Work to do on whichever backend and model a [`Job`] selected.
pub(crate) trait OnBackend {
    /// What the work returns.
    type Output;
    /// Does the work.
    fn run<B: Pictures, M: Model<B>>(
        self,
        backend: &B,
        model: &M,
        job: &Job,
    ) -> Result<Self::Output>;
}

/// Runs `work` on the job's backend and model; also returns the devices' description for
/// the report.
pub(crate) fn dispatch<W: OnBackend>(job: &Job, work: W) -> Result<(W::Output, Value)> {
    let Some(pool) = &job.pool else {
        let output = match &job.model {
            ModelChoice::Mixture(m) => work.run(&CpuBackend, m, job)?,
            ModelChoice::Emoji(m) => work.run(&CpuBackend, m.as_ref(), job)?,
        };
        return Ok((output, json!({"adapters": [], "bytes_transferred": 0})));
    };
    let backend = WgpuBackend::new(pool.clone());
    let output = match &job.model {
        ModelChoice::Mixture(mixture) => {
            work.run(&backend, &GpuMixture::new(&backend, mixture)?, job)?
        }
        ModelChoice::Emoji(m) => {
            work.run(&backend, &WgpuBurnModel::new(m.burn(), &backend)?, job)?
        }
    };
    let adapters: Vec<Value> = pool
        .gpus()
        .iter()
        .enumerate()
        .map(|(g, gpu)| {
            let cores: Vec<usize> = (0..job.cores)
                .filter(|c| pool.gpu_index(*c).ok() == Some(g))
                .collect();
            json!({
                "name": gpu.info().name,
                "backend": format!("{:?}", gpu.info().backend),
                "device_type": format!("{:?}", gpu.info().device_type),
                "cores": cores,
            })
        })
        .collect();
    Ok((
        output,
        json!({"adapters": adapters, "bytes_transferred": backend.bytes_transferred()}),
    ))
}

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
    let job = prepare(args, None)?;
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
    let ((result, frames), device) = dispatch(
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

/// The wgpu device pool the arguments ask for.
fn device_pool(args: &RenderArgs, cores: usize) -> Result<Arc<DevicePool>, WgpuError> {
    let sharing = match args.devices.unwrap_or(DevicesKind::PerAdapter) {
        DevicesKind::PerAdapter => DeviceSharing::PerAdapter,
        DevicesKind::PerCore => DeviceSharing::PerCore,
    };
    let options = PoolOptions::new(cores)
        .with_adapters(args.adapters.clone())
        .with_sharing(sharing);
    DevicePool::new(&options).map(Arc::new)
}

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
            if let (
                true,
                None,
                Event::CoreUpdated {
                    round,
                    core,
                    index,
                    latent,
                },
            ) = (frames, &failure, event)
            {
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
    crate::limits::check_latent(&array.shape[1..])
        .with_context(|| format!("{}", path.display()))?;
    Ok((array.data, array.shape))
}

/// `--x0` (checked against the latent's shape) or seeded unit Gaussian noise.
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

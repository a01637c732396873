//! A run's job, checked and built before any work starts or any file is written
//! (`prepare`: solver, model, noise, sampler method, devices, options), and running work on
//! the backend and model it chose (`dispatch`). Shared by `chords render`, the window's
//! session and `bench`.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chords::planner::{ModelScorer, Scorer};
use chords::{
    Backend, Chords, CpuBackend, GaussianMixture, InitSequence, Model, Paradigms, Prediction,
    RunOptions, Sampler, Sequential, Solver, Srds, StopRule,
};
use chords_burn::WgpuBurnModel;
use chords_emoji::EmojiModel;
use chords_wgpu::{DevicePool, DeviceSharing, GpuMixture, PoolOptions, WgpuBackend, WgpuError};
use serde_json::{Value, json};

use crate::cli::{
    BackendKind, DEFAULT_SIGMA_DATA, DevicesKind, FrameKind, ModelKind, RenderArgs, SamplerKind,
};
use crate::frames::Pictures;
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

    pub(crate) fn tolerance(&self) -> Option<f64> {
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
    pub(crate) fn describe(&self, args: &RenderArgs, on_pool: bool) -> Value {
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
                json!({"name": "emoji", "emoji": args.emoji(), "style": args.style(), "guidance": args.guidance(), "burn": burn})
            }
        }
    }
}

/// The emoji and style a `--emoji` and `--style` name.
pub(crate) fn emoji_and_style(emoji: &str, style: &str) -> Result<(usize, chords_emoji::Style)> {
    let style = style.parse().map_err(anyhow::Error::msg)?;
    Ok((chords_emoji::find_emoji(emoji)?, style))
}

/// The emoji model with the arguments' weights (default: the shipped ones), emoji, style
/// and guidance, on burn-ndarray (burn-cuda with `--backend cuda`).
fn emoji_model(args: &RenderArgs) -> Result<EmojiModel> {
    let (emoji, style) = emoji_and_style(args.emoji(), args.style())?;
    let device = match args.backend {
        BackendKind::Cuda => chords_emoji::cuda_device(0)?,
        _ => chords_emoji::cpu_device(),
    };
    let model = EmojiModel::load_or_shipped(args.weights.as_deref(), &device)?;
    Ok(model
        .with_emoji(emoji, style)?
        .with_guidance(args.guidance())?)
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
        let objective = args.schedule.objective.unwrap_or_default();
        match &model {
            ModelChoice::Mixture(m) => {
                let mut scorer =
                    ModelScorer::new(m, solver, vec![x0.clone()])?.with_objective(objective);
                Method::from_args(args, Some(&mut scorer))?
            }
            ModelChoice::Emoji(m) => {
                let mut scorer = ModelScorer::new(m.as_ref(), solver, vec![x0.clone()])?
                    .with_objective(objective);
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
            .with_mirror(pool.as_ref().is_some_and(|p| p.gpus().len() > 1))
            .with_estimates(args.frames && args.frame_kind() == FrameKind::Estimate),
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

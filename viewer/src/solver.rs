//! `--solver`, `--scheduler-config` and the options of chords's own grids: which solver a
//! command samples with (shared by `plan`, `render`, `bench` and the window).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chords::diffusers::{DiffusersOptions, SchedulerConfig, SchedulerKind, solver_from_config};
use chords::{BetaSchedule, Ddim, Euler, FlowSchedule, Prediction, Solver, Spacing, VpSchedule};
use clap::{Args, ValueEnum};

/// Largest scheduler config read (real ones are under 2 KiB; `trained_betas` of 1000
/// training steps is about 25 KiB).
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Solvers (and so the model's parameterisation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SolverKind {
    /// Flow matching: Euler on the σ grid, the model predicts the velocity
    /// (diffusers' FlowMatchEulerDiscreteScheduler).
    Euler,
    /// Variance preserving: DDIM, η = 0 (diffusers' DDIMScheduler).
    Ddim,
    /// Variance preserving, Euler in σ = √((1-ᾱ)/ᾱ) space (diffusers' EulerDiscreteScheduler).
    EulerDiscrete,
}

impl SolverKind {
    fn scheduler(self) -> SchedulerKind {
        match self {
            Self::Euler => SchedulerKind::FlowMatchEuler,
            Self::Ddim => SchedulerKind::Ddim,
            Self::EulerDiscrete => SchedulerKind::EulerDiscrete,
        }
    }
}

/// What a VP model predicts (ddim, euler-discrete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PredictionKind {
    /// The noise ε.
    Epsilon,
    /// v = α·ε − σ·x0.
    V,
    /// The clean sample x0.
    Sample,
}

/// Beta schedules (ddim, euler-discrete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BetasKind {
    /// Linear 1e-4 to 0.02 (DDPM).
    Linear,
    /// Scaled linear 0.00085 to 0.012 (Stable Diffusion).
    ScaledLinear,
}

/// Timestep spacing (ddim, euler-discrete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpacingKind {
    /// diffusers "leading" (steps_offset 0).
    Leading,
    /// diffusers "trailing": starts at the last training step.
    Trailing,
    /// diffusers "linspace": both ends of the training range.
    Linspace,
}

/// The solver options.
#[derive(Debug, Clone, Default, Args)]
pub struct SolverArgs {
    /// A diffusers scheduler_config.json (a model's `scheduler/scheduler_config.json`):
    /// sample on exactly that pipeline's grid, time inputs and step. DDIMScheduler,
    /// EulerDiscreteScheduler and FlowMatchEulerDiscreteScheduler are built as they are;
    /// other classes need --solver.
    #[arg(long, value_name = "FILE")]
    pub scheduler_config: Option<PathBuf>,
    /// The solver: euler (flow matching; the default), ddim or euler-discrete (variance
    /// preserving). With --scheduler-config: the config's class unless named.
    #[arg(long, value_enum)]
    pub solver: Option<SolverKind>,
    /// μ of a `use_dynamic_shifting` config (Flux): the pipeline's `mu`.
    #[arg(long, allow_negative_numbers = true, conflicts_with = "image_seq_len")]
    pub mu: Option<f64>,
    /// The latent's token count, from which a `use_dynamic_shifting` config's μ follows
    /// (diffusers' calculate_shift); (H/16)·(W/16) for Flux at H×W pixels.
    #[arg(long)]
    pub image_seq_len: Option<u64>,
    /// Use the sigmas diffusers' FluxPipeline passes to `set_timesteps`, linspace(1, 1/T, T),
    /// instead of the scheduler's own spacing (flow-matching configs).
    #[arg(long)]
    pub flux_sigmas: bool,
    /// Flow-matching σ shift of chords's own grid (euler; default 1).
    #[arg(long, allow_negative_numbers = true)]
    pub shift: Option<f64>,
    /// What the model predicts (ddim, euler-discrete; default epsilon).
    #[arg(long, value_enum)]
    pub prediction: Option<PredictionKind>,
    /// Beta schedule (ddim, euler-discrete; default linear).
    #[arg(long, value_enum)]
    pub betas: Option<BetasKind>,
    /// Timestep spacing (ddim, euler-discrete; default trailing).
    #[arg(long, value_enum)]
    pub spacing: Option<SpacingKind>,
}

/// A solver and how it was chosen.
#[derive(Debug, Clone)]
pub struct ChosenSolver {
    /// The solver.
    pub solver: Arc<dyn Solver>,
    /// Its name (`euler`, `ddim`, `euler-discrete`).
    pub name: &'static str,
    /// The scheduler config it follows, and that config's class.
    pub config: Option<(PathBuf, Option<String>)>,
}

impl SolverArgs {
    /// The solver at `steps` steps. Warns once on stderr about config fields chords does
    /// not know.
    pub fn build(&self, steps: usize) -> Result<ChosenSolver> {
        if steps == 0 {
            bail!("--steps must be at least 1");
        }
        if let Some(path) = &self.scheduler_config {
            return self.from_config(path, steps);
        }
        if self.mu.is_some() || self.image_seq_len.is_some() || self.flux_sigmas {
            bail!(
                "--mu, --image-seq-len and --flux-sigmas belong to --scheduler-config \
                 (flow-matching configs)"
            );
        }
        let kind = self.solver.unwrap_or(SolverKind::Euler);
        if kind == SolverKind::Euler {
            for (given, name) in [
                (self.prediction.is_some(), "--prediction"),
                (self.betas.is_some(), "--betas"),
                (self.spacing.is_some(), "--spacing"),
            ] {
                if given {
                    bail!("{name} belongs to the VP solvers (--solver ddim or euler-discrete)");
                }
            }
            let shift = self.shift.unwrap_or(1.0);
            return Ok(ChosenSolver {
                solver: Arc::new(Euler::new(FlowSchedule::new(steps, shift)?)),
                name: "euler",
                config: None,
            });
        }
        if self.shift.is_some() {
            bail!("--shift belongs to --solver euler (flow matching)");
        }
        let prediction = match self.prediction.unwrap_or(PredictionKind::Epsilon) {
            PredictionKind::Epsilon => Prediction::Epsilon,
            PredictionKind::V => Prediction::V,
            PredictionKind::Sample => Prediction::Sample,
        };
        let betas = match self.betas.unwrap_or(BetasKind::Linear) {
            BetasKind::Linear => BetaSchedule::LINEAR,
            BetasKind::ScaledLinear => BetaSchedule::SCALED_LINEAR,
        };
        let spacing = self.spacing.unwrap_or(SpacingKind::Trailing);
        if kind == SolverKind::Ddim {
            let spacing = match spacing {
                SpacingKind::Leading => Spacing::Leading { offset: 0 },
                SpacingKind::Trailing => Spacing::Trailing,
                SpacingKind::Linspace => Spacing::Linspace,
            };
            return Ok(ChosenSolver {
                solver: Arc::new(Ddim::new(
                    VpSchedule::new(steps, betas, spacing)?,
                    prediction,
                )?),
                name: "ddim",
                config: None,
            });
        }
        // euler-discrete without a config: diffusers' EulerDiscreteScheduler with chords's
        // VP options as its fields.
        let (start, end, schedule) = match betas {
            BetaSchedule::ScaledLinear { start, end } => (start, end, "scaled_linear"),
            BetaSchedule::Linear { start, end } => (start, end, "linear"),
            _ => unreachable!("--betas offers linear and scaled-linear"),
        };
        let config = serde_json::json!({
            "_class_name": "EulerDiscreteScheduler",
            "beta_start": start,
            "beta_end": end,
            "beta_schedule": schedule,
            "prediction_type": match prediction {
                Prediction::V => "v_prediction",
                Prediction::Sample => "sample",
                _ => "epsilon",
            },
            "timestep_spacing": match spacing {
                SpacingKind::Leading => "leading",
                SpacingKind::Trailing => "trailing",
                SpacingKind::Linspace => "linspace",
            },
        });
        let config = SchedulerConfig::parse(&config.to_string())?;
        let built = solver_from_config(&config, steps, &DiffusersOptions::default())?;
        Ok(ChosenSolver {
            solver: built.solver,
            name: "euler-discrete",
            config: None,
        })
    }

    fn from_config(&self, path: &Path, steps: usize) -> Result<ChosenSolver> {
        for (given, name) in [
            (self.shift.is_some(), "--shift"),
            (self.prediction.is_some(), "--prediction"),
            (self.betas.is_some(), "--betas"),
            (self.spacing.is_some(), "--spacing"),
        ] {
            if given {
                bail!(
                    "{name} sets chords's own grids; with --scheduler-config the config's fields \
                     decide (edit a copy of {})",
                    path.display()
                );
            }
        }
        let text = read_config(path)?;
        let config =
            SchedulerConfig::parse(&text).with_context(|| format!("{}", path.display()))?;
        let mut options = DiffusersOptions::default();
        options.solver = self.solver.map(SolverKind::scheduler);
        options.mu = self.mu;
        options.image_seq_len = self.image_seq_len;
        options.sigmas = self
            .flux_sigmas
            .then(|| chords::diffusers::flux_pipeline_sigmas(steps));
        let built = solver_from_config(&config, steps, &options)
            .with_context(|| format!("{}", path.display()))?;
        if !built.unknown_fields.is_empty() {
            eprintln!(
                "warning: {}: fields no diffusers scheduler known to chords has, ignored: {}",
                path.display(),
                built.unknown_fields.join(", ")
            );
        }
        Ok(ChosenSolver {
            solver: built.solver,
            name: built.kind.name(),
            config: Some((path.to_path_buf(), config.class_name().map(str::to_owned))),
        })
    }
}

/// Reads a scheduler config: a regular file of at most [`MAX_CONFIG_BYTES`], UTF-8.
fn read_config(path: &Path) -> Result<String> {
    chords::read::read_text(path, MAX_CONFIG_BYTES)
        .map_err(|e| anyhow::anyhow!("scheduler config {e}"))
}

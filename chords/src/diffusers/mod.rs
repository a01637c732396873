//! diffusers scheduler configs: the grid, time inputs and step a diffusers pipeline uses.
//!
//! A model trained with diffusers ships `scheduler/scheduler_config.json`. [`solver_from_config`]
//! reads it and builds the chords [`Solver`] whose grid, model time input (diffusers'
//! `timestep`) and step coefficients are those of diffusers' `set_timesteps(T)` and `step`
//! for that config, so "CHORDS's last output equals the sequential solve" means *equals the
//! pipeline's own loop*. Three scheduler classes are one-step maps of `(x, model output)`
//! and are built exactly:
//! * `DDIMScheduler` (η = 0) → [`Ddim`](crate::Ddim) on a [`VpSchedule`](crate::VpSchedule);
//! * `EulerDiscreteScheduler` (no churn) → [`EulerDiscrete`](crate::EulerDiscrete) on a
//!   [`SigmaSchedule`](crate::SigmaSchedule);
//! * `FlowMatchEulerDiscreteScheduler` → [`Euler`](crate::Euler) on a
//!   [`FlowSchedule`](crate::FlowSchedule).
//!
//! A config of another class (PNDM, DPM-Solver, UniPC, …) is sampled with one of these named
//! in [`DiffusersOptions::solver`], as diffusers' `DDIMScheduler.from_config(config)` does.
//!
//! Where chords and diffusers differ in arithmetic: diffusers computes betas and `ᾱ` in
//! float32 torch tensors, chords in f64 (the flow-matching grid is rounded to f32 where
//! diffusers rounds it, so its σ and timesteps are diffusers' own values).
//!
//! ```
//! use chords::diffusers::{DiffusersOptions, SchedulerConfig, solver_from_config};
//! let config = SchedulerConfig::parse(r#"{
//!     "_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear",
//!     "beta_start": 0.00085, "beta_end": 0.012, "clip_sample": false,
//!     "set_alpha_to_one": false, "steps_offset": 1
//! }"#).unwrap();
//! let built = solver_from_config(&config, 50, &DiffusersOptions::default()).unwrap();
//! // Stable Diffusion 1.5's first DDIM timestep at 50 steps.
//! assert_eq!(built.solver.timestep(0).t, 981.0);
//! ```

mod config;
mod flow;
mod vp;

pub use config::SchedulerConfig;

use std::sync::Arc;

use crate::solver::Solver;

/// Most training timesteps a config may declare: far above any real model's 1000, low
/// enough that the tables built from it stay small.
pub const MAX_TRAIN_TIMESTEPS: usize = 100_000;

/// The one-step diffusers schedulers chords builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchedulerKind {
    /// `DDIMScheduler`, deterministic (η = 0).
    Ddim,
    /// `EulerDiscreteScheduler` without churn.
    EulerDiscrete,
    /// `FlowMatchEulerDiscreteScheduler`.
    FlowMatchEuler,
}

impl SchedulerKind {
    /// diffusers' class name.
    pub fn class_name(self) -> &'static str {
        match self {
            Self::Ddim => "DDIMScheduler",
            Self::EulerDiscrete => "EulerDiscreteScheduler",
            Self::FlowMatchEuler => "FlowMatchEulerDiscreteScheduler",
        }
    }

    /// chords's name (`--solver`): `ddim`, `euler-discrete`, `euler`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ddim => "ddim",
            Self::EulerDiscrete => "euler-discrete",
            Self::FlowMatchEuler => "euler",
        }
    }

    /// The kind a diffusers class name is, if chords builds it.
    pub fn from_class_name(class: &str) -> Option<Self> {
        [Self::Ddim, Self::EulerDiscrete, Self::FlowMatchEuler]
            .into_iter()
            .find(|k| k.class_name() == class)
    }
}

/// What a config alone does not say.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct DiffusersOptions {
    /// Sample with this scheduler instead of the config's class (diffusers'
    /// `<Class>.from_config(config)`); needed for classes chords does not build.
    pub solver: Option<SchedulerKind>,
    /// The flow shift μ of `use_dynamic_shifting` configs (Flux), as the pipeline passes it
    /// to `set_timesteps(mu=…)`.
    pub mu: Option<f64>,
    /// The image's token count, from which μ follows as diffusers' `calculate_shift` computes
    /// it (`base_shift` at `base_image_seq_len` to `max_shift` at `max_image_seq_len`).
    pub image_seq_len: Option<u64>,
}

/// The solver a config builds, and what the config held that chords did not know.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FromConfig {
    /// The solver: diffusers' grid, time inputs and step.
    pub solver: Arc<dyn Solver>,
    /// The scheduler it follows.
    pub kind: SchedulerKind,
    /// Fields no diffusers scheduler known to chords has (to warn about once).
    pub unknown_fields: Vec<String>,
}

/// What is wrong with a scheduler config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The text is not a JSON object.
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// A field has a value chords cannot follow.
    #[error("`{field}` = {value}: {reason}")]
    Field {
        /// The field.
        field: String,
        /// Its value as written.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// The config's class is not a one-step solver chords builds; a solver must be named.
    #[error("{class}: {reason}")]
    NeedsSolver {
        /// The config's `_class_name` (or a note that it has none).
        class: String,
        /// Why, and what to name.
        reason: String,
    },
    /// Options that the config does not use, or that it needs and lacks.
    #[error("{0}")]
    Options(String),
    /// The grid the config describes is invalid for the step count.
    #[error(transparent)]
    Grid(#[from] crate::Error),
}

/// Builds the solver of `config` at `steps` inference steps.
pub fn solver_from_config(
    config: &SchedulerConfig,
    steps: usize,
    options: &DiffusersOptions,
) -> Result<FromConfig, ConfigError> {
    let kind = match options.solver {
        Some(kind) => kind,
        None => config.kind()?,
    };
    if kind != SchedulerKind::FlowMatchEuler && (options.mu.is_some() || options.image_seq_len.is_some())
    {
        return Err(ConfigError::Options(format!(
            "--mu and --image-seq-len set the dynamic shift of flow-matching configs; {} has none",
            kind.class_name()
        )));
    }
    let mut fields = config.reader();
    let solver: Arc<dyn Solver> = match kind {
        SchedulerKind::Ddim => Arc::new(vp::ddim(&mut fields, steps)?),
        SchedulerKind::EulerDiscrete => Arc::new(vp::euler_discrete(&mut fields, steps)?),
        SchedulerKind::FlowMatchEuler => Arc::new(flow::euler(&mut fields, steps, options)?),
    };
    Ok(FromConfig {
        solver,
        kind,
        unknown_fields: fields.unknown(),
    })
}

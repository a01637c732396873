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
//! The tables are diffusers' own numbers: betas, `ᾱ` and σ are computed in float32 the way
//! torch computes them, and rounded to float32 where diffusers rounds (tested against
//! diffusers 0.42.1 for every shipped config). Only the step coefficients themselves are
//! computed in f64 from those tables, where diffusers multiplies float32 tensors.
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
mod torch32;
mod vp;

pub use config::SchedulerConfig;

use std::sync::Arc;

use crate::solver::Solver;

/// Most training timesteps a config may declare: far above any real model's 1000, low
/// enough that the tables built from it stay small.
pub const MAX_TRAIN_TIMESTEPS: usize = 100_000;

/// Most inference steps a config is built for (VP configs also take at most their
/// `num_train_timesteps`).
pub const MAX_STEPS: usize = 100_000;

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
    /// Sigmas a pipeline passes to `set_timesteps(sigmas=…)` (flow matching), one per step
    /// before the shift: FluxPipeline passes [`flux_pipeline_sigmas`].
    pub sigmas: Option<Vec<f64>>,
}

/// The sigmas diffusers' `FluxPipeline` passes to `set_timesteps`: `linspace(1, 1/T, T)`.
///
/// ```
/// assert_eq!(chords::diffusers::flux_pipeline_sigmas(4), vec![1.0, 0.75, 0.5, 0.25]);
/// ```
pub fn flux_pipeline_sigmas(steps: usize) -> Vec<f64> {
    crate::schedule::numpy::linspace(1.0, 1.0 / steps as f64, steps)
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
    if steps > MAX_STEPS {
        return Err(ConfigError::Options(format!(
            "--steps {steps}: a scheduler config is built for at most {MAX_STEPS} steps"
        )));
    }
    if kind != SchedulerKind::FlowMatchEuler
        && (options.mu.is_some() || options.image_seq_len.is_some())
    {
        return Err(ConfigError::Options(format!(
            "--mu and --image-seq-len set the dynamic shift of flow-matching configs; {} has none",
            kind.class_name()
        )));
    }
    if kind != SchedulerKind::FlowMatchEuler && options.sigmas.is_some() {
        return Err(ConfigError::Options(format!(
            "given sigmas (--flux-sigmas) belong to flow-matching configs, not {}",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn build(
        json: &str,
        steps: usize,
        options: &DiffusersOptions,
    ) -> Result<FromConfig, ConfigError> {
        solver_from_config(&SchedulerConfig::parse(json)?, steps, options)
    }

    fn error(json: &str, steps: usize, options: &DiffusersOptions) -> String {
        match build(json, steps, options) {
            Ok(_) => panic!("{json} built"),
            Err(e) => e.to_string(),
        }
    }

    const DDIM: &str = r#"{"_class_name": "DDIMScheduler", "clip_sample": false"#;

    #[test]
    fn not_json_or_not_an_object_is_refused() {
        assert!(error("{", 10, &DiffusersOptions::default()).starts_with("not a JSON object"));
        assert!(error("[1]", 10, &DiffusersOptions::default()).contains("an array"));
    }

    #[test]
    fn other_classes_need_a_named_solver_and_say_why() {
        let pndm = r#"{"_class_name": "PNDMScheduler", "clip_sample": false}"#;
        let e = error(pndm, 10, &DiffusersOptions::default());
        assert!(
            e.contains("PNDMScheduler") && e.contains("multistep") && e.contains("--solver ddim"),
            "{e}"
        );
        let e = error(
            r#"{"_class_name": "EulerAncestralDiscreteScheduler"}"#,
            10,
            &DiffusersOptions::default(),
        );
        assert!(e.contains("stochastic"), "{e}");
        let e = error("{}", 10, &DiffusersOptions::default());
        assert!(e.contains("no `_class_name`"), "{e}");
        let options = DiffusersOptions {
            solver: Some(SchedulerKind::Ddim),
            ..Default::default()
        };
        let built = build(pndm, 10, &options).unwrap();
        assert_eq!(built.kind, SchedulerKind::Ddim);
        assert!(built.unknown_fields.is_empty());
    }

    #[test]
    fn non_linear_or_stochastic_features_are_refused_by_field() {
        let none = DiffusersOptions::default();
        // DDIM clips by default, as in diffusers.
        let e = error(r#"{"_class_name": "DDIMScheduler"}"#, 10, &none);
        assert!(e.starts_with("`clip_sample` = (default)"), "{e}");
        let e = error(&format!(r#"{DDIM}, "thresholding": true}}"#), 10, &none);
        assert!(e.starts_with("`thresholding` = true"), "{e}");
        let e = error(
            &format!(r#"{DDIM}, "beta_schedule": "sigmoid"}}"#),
            10,
            &none,
        );
        assert!(e.starts_with("`beta_schedule` = \"sigmoid\""), "{e}");
        let e = error(
            &format!(r#"{DDIM}, "timestep_spacing": "middle"}}"#),
            10,
            &none,
        );
        assert!(e.starts_with("`timestep_spacing` = \"middle\""), "{e}");
        let e = error(
            &format!(r#"{DDIM}, "num_train_timesteps": "many"}}"#),
            10,
            &none,
        );
        assert!(e.starts_with("`num_train_timesteps` = \"many\""), "{e}");
        let e = error(
            &format!(r#"{DDIM}, "rescale_betas_zero_snr": true, "timestep_spacing": "trailing"}}"#),
            10,
            &none,
        );
        assert!(
            e.starts_with("`rescale_betas_zero_snr` = true") && e.contains("v_prediction"),
            "{e}"
        );
        let flow =
            r#"{"_class_name": "FlowMatchEulerDiscreteScheduler", "stochastic_sampling": true}"#;
        assert!(error(flow, 10, &none).starts_with("`stochastic_sampling` = true"));
        let flow = r#"{"_class_name": "FlowMatchEulerDiscreteScheduler", "invert_sigmas": true}"#;
        assert!(error(flow, 10, &none).starts_with("`invert_sigmas` = true"));
        let euler = r#"{"_class_name": "EulerDiscreteScheduler", "use_beta_sigmas": true}"#;
        assert!(error(euler, 10, &none).starts_with("`use_beta_sigmas` = true"));
        let trained = format!(r#"{DDIM}, "num_train_timesteps": 4, "trained_betas": [0.1, 0.2]}}"#);
        assert!(error(&trained, 2, &none).contains("holds 2 betas"));
    }

    #[test]
    fn step_counts_diffusers_cannot_take_are_refused() {
        let none = DiffusersOptions::default();
        assert!(
            error(&format!("{DDIM}}}"), 1001, &none).contains("1 to num_train_timesteps (1000)")
        );
        assert!(error(&format!("{DDIM}}}"), 0, &none).contains("--steps 0"));
        let trailing = format!(r#"{DDIM}, "timestep_spacing": "trailing"}}"#);
        assert!(error(&trailing, 61, &none).contains("62 timesteps"));
    }

    #[test]
    fn dynamic_shifting_needs_mu_and_only_it_takes_one() {
        let flux =
            r#"{"_class_name": "FlowMatchEulerDiscreteScheduler", "use_dynamic_shifting": true}"#;
        assert!(error(flux, 10, &DiffusersOptions::default()).contains("--mu"));
        // calculate_shift at the base length is base_shift: μ = 0.5.
        let by_len = build(
            flux,
            10,
            &DiffusersOptions {
                image_seq_len: Some(256),
                ..Default::default()
            },
        )
        .unwrap();
        let by_mu = build(
            flux,
            10,
            &DiffusersOptions {
                mu: Some(0.5),
                ..Default::default()
            },
        )
        .unwrap();
        for i in 0..=10 {
            assert_eq!(by_len.solver.point(i), by_mu.solver.point(i));
        }
        let sd3 = r#"{"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3.0}"#;
        let e = error(
            sd3,
            10,
            &DiffusersOptions {
                mu: Some(0.5),
                ..Default::default()
            },
        );
        assert!(e.contains("use_dynamic_shifting false"), "{e}");
        let e = error(
            &format!("{DDIM}}}"),
            10,
            &DiffusersOptions {
                mu: Some(0.5),
                ..Default::default()
            },
        );
        assert!(e.contains("DDIMScheduler has none"), "{e}");
    }

    #[test]
    fn unknown_fields_are_listed_and_known_ones_are_not() {
        let json = format!(
            r#"{DDIM}, "skip_prk_steps": true, "colour": "blue", "_diffusers_version": "0.1"}}"#
        );
        let built = build(&json, 10, &DiffusersOptions::default()).unwrap();
        assert_eq!(built.unknown_fields, vec!["colour".to_string()]);
    }

    #[test]
    fn sd15_ddim_starts_at_981_and_ends_on_alpha_bar_zero() {
        let sd15 = r#"{"_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear",
            "beta_start": 0.00085, "beta_end": 0.012, "clip_sample": false,
            "set_alpha_to_one": false, "steps_offset": 1}"#;
        let s = build(sd15, 50, &DiffusersOptions::default())
            .unwrap()
            .solver;
        assert_eq!((s.timestep(0).t, s.timestep(49).t), (981.0, 1.0));
        // set_alpha_to_one false: the last step lands on ᾱ[0] = 1 - β_0 (float32).
        let ab0 = 1.0 - f64::from(0.00085f64.sqrt() as f32).powi(2);
        assert!((s.point(50).alpha.powi(2) - ab0).abs() < 1e-7);
    }
}

#[cfg(test)]
mod hostile {
    use super::*;
    use proptest::prelude::*;

    /// Values of every kind a config field could hold.
    fn value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::json;
        prop_oneof![
            Just(json!(null)),
            any::<bool>().prop_map(|b| json!(b)),
            prop_oneof![
                Just(0.0),
                Just(-1.0),
                Just(1.0),
                Just(1e-12),
                Just(0.5),
                Just(0.999_999),
                Just(1e300),
                -5.0..5.0f64,
                0.0..0.05f64,
            ]
            .prop_map(|x| json!(x)),
            prop_oneof![
                Just(0u64),
                Just(1),
                Just(7),
                Just(1000),
                Just(100_001),
                Just(u64::MAX)
            ]
            .prop_map(|x| json!(x)),
            prop::sample::select(vec![
                "linear",
                "scaled_linear",
                "squaredcos_cap_v2",
                "leading",
                "trailing",
                "linspace",
                "epsilon",
                "v_prediction",
                "sample",
                "log_linear",
                "zero",
                "sigma_min",
                "continuous",
                "exponential",
                "DDIMScheduler",
                "",
            ])
            .prop_map(|s| json!(s)),
            prop::collection::vec(0.0..1.2f64, 0..12).prop_map(|v| json!(v)),
        ]
    }

    fn config() -> impl Strategy<Value = String> {
        let fields = prop::sample::select(vec![
            "num_train_timesteps",
            "beta_start",
            "beta_end",
            "beta_schedule",
            "trained_betas",
            "prediction_type",
            "clip_sample",
            "set_alpha_to_one",
            "steps_offset",
            "timestep_spacing",
            "rescale_betas_zero_snr",
            "interpolation_type",
            "use_karras_sigmas",
            "use_exponential_sigmas",
            "sigma_min",
            "sigma_max",
            "timestep_type",
            "final_sigmas_type",
            "shift",
            "use_dynamic_shifting",
            "base_shift",
            "max_shift",
            "base_image_seq_len",
            "max_image_seq_len",
            "shift_terminal",
            "time_shift_type",
        ]);
        let class = prop::sample::select(vec![
            "DDIMScheduler",
            "EulerDiscreteScheduler",
            "FlowMatchEulerDiscreteScheduler",
            "PNDMScheduler",
        ]);
        (class, prop::collection::vec((fields, value()), 0..6)).prop_map(|(class, fields)| {
            let mut map = serde_json::Map::new();
            map.insert("_class_name".into(), class.into());
            // Most DDIM configs must say clip_sample: false to build at all.
            map.insert("clip_sample".into(), false.into());
            for (k, v) in fields {
                map.insert(k.into(), v);
            }
            serde_json::Value::Object(map).to_string()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Whatever a config holds: a typed error or a solver whose every grid point and
        /// jump can be asked for, never a panic.
        #[test]
        fn any_config_builds_or_is_refused(
            text in config(),
            steps in prop_oneof![1 => Just(0usize), 20 => 1..60usize, 1 => Just(1000), 1 => Just(1001)],
            mu in prop::option::weighted(0.15, -3.0..3.0f64),
            seq_len in prop::option::weighted(0.05, 0..10_000u64),
            kind in prop::option::of(prop::sample::select(vec![
                SchedulerKind::Ddim,
                SchedulerKind::EulerDiscrete,
                SchedulerKind::FlowMatchEuler,
            ])),
        ) {
            let config = SchedulerConfig::parse(&text).unwrap();
            let options = DiffusersOptions { solver: kind, mu, image_seq_len: seq_len, sigmas: None };
            if let Ok(built) = solver_from_config(&config, steps, &options) {
                let s = built.solver;
                prop_assert_eq!(s.steps(), steps);
                for i in 0..=steps {
                    let t = s.point(i);
                    prop_assert!(t.alpha.is_finite() && t.sigma.is_finite());
                    let _ = s.timestep(i);
                }
                for i in 0..steps {
                    let j = s.jump(i, i + 1);
                    prop_assert!(j.a.is_finite() && j.b.is_finite(), "{:?} at {}: {:?}", built.kind, i, j);
                }
                prop_assert!(s.initial_noise_scale().is_finite());
            }
        }
    }
}

//! The parsed `scheduler_config.json` and typed access to its fields.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{ConfigError, SchedulerKind};

/// A diffusers `scheduler_config.json`, parsed.
///
/// ```
/// let c = chords::diffusers::SchedulerConfig::parse(r#"{"_class_name": "PNDMScheduler"}"#).unwrap();
/// assert_eq!(c.class_name(), Some("PNDMScheduler"));
/// assert!(chords::diffusers::SchedulerConfig::parse("[1, 2]").is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    fields: Map<String, Value>,
}

impl SchedulerConfig {
    /// Parses the JSON text of a config: an object of fields.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(fields)) => Ok(Self { fields }),
            Ok(other) => Err(ConfigError::NotJson(format!(
                "the top level is {}, not an object of fields",
                kind_of(&other)
            ))),
            Err(e) => Err(ConfigError::NotJson(e.to_string())),
        }
    }

    /// The config's `_class_name`, if it has one.
    pub fn class_name(&self) -> Option<&str> {
        self.fields.get("_class_name").and_then(Value::as_str)
    }

    /// The scheduler the config's class is, or why it needs a solver named.
    pub(super) fn kind(&self) -> Result<SchedulerKind, ConfigError> {
        let named = "name one with --solver ddim, --solver euler-discrete (VP models) or \
                     --solver euler (flow matching), as diffusers' `<Scheduler>.from_config(config)` \
                     would";
        let Some(class) = self.class_name() else {
            return Err(ConfigError::NeedsSolver {
                class: "the config has no `_class_name`".into(),
                reason: format!("which scheduler it belongs to is unknown; {named}"),
            });
        };
        if let Some(kind) = SchedulerKind::from_class_name(class) {
            return Ok(kind);
        }
        let why = if MULTISTEP.contains(&class) {
            "a multistep or multi-stage solver: its step uses model outputs of earlier steps or \
             of extra evaluations, while CHORDS jumps between any two grid points with a one-step \
             map of (x, model output) alone"
        } else if STOCHASTIC.contains(&class) {
            "a stochastic sampler: its step adds fresh noise, while CHORDS needs a deterministic \
             one-step map of (x, model output)"
        } else {
            "not a scheduler chords knows"
        };
        Err(ConfigError::NeedsSolver {
            class: class.into(),
            reason: format!("{why}; {named}"),
        })
    }

    /// A reader that records which fields were looked at.
    pub(super) fn reader(&self) -> Fields<'_> {
        Fields {
            fields: &self.fields,
            used: BTreeSet::new(),
        }
    }
}

/// Multistep and multi-stage diffusers schedulers (not one-step maps).
const MULTISTEP: &[&str] = &[
    "PNDMScheduler",
    "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler",
    "DPMSolverMultistepInverseScheduler",
    "EDMDPMSolverMultistepScheduler",
    "UniPCMultistepScheduler",
    "DEISMultistepScheduler",
    "LMSDiscreteScheduler",
    "HeunDiscreteScheduler",
    "KDPM2DiscreteScheduler",
    "SASolverScheduler",
    "FlowMatchHeunDiscreteScheduler",
    "CogVideoXDPMScheduler",
];

/// Stochastic diffusers schedulers.
const STOCHASTIC: &[&str] = &[
    "DDPMScheduler",
    "EulerAncestralDiscreteScheduler",
    "KDPM2AncestralDiscreteScheduler",
    "DPMSolverSDEScheduler",
    "EDMEulerScheduler",
    "LCMScheduler",
    "TCDScheduler",
    "ScoreSdeVeScheduler",
    "DDPMWuerstchenScheduler",
];

/// Fields of diffusers schedulers that the solver being built does not read: they change
/// nothing for it (diffusers' `from_config` ignores them the same way).
const KNOWN_ELSEWHERE: &[&str] = &[
    "num_train_timesteps",
    "beta_start",
    "beta_end",
    "beta_schedule",
    "trained_betas",
    "prediction_type",
    "clip_sample",
    "clip_sample_range",
    "set_alpha_to_one",
    "steps_offset",
    "skip_prk_steps",
    "thresholding",
    "dynamic_thresholding_ratio",
    "sample_max_value",
    "timestep_spacing",
    "rescale_betas_zero_snr",
    "interpolation_type",
    "use_karras_sigmas",
    "use_exponential_sigmas",
    "use_beta_sigmas",
    "sigma_min",
    "sigma_max",
    "sigma_data",
    "timestep_type",
    "final_sigmas_type",
    "shift",
    "use_dynamic_shifting",
    "base_shift",
    "max_shift",
    "base_image_seq_len",
    "max_image_seq_len",
    "invert_sigmas",
    "shift_terminal",
    "time_shift_type",
    "stochastic_sampling",
    "solver_order",
    "solver_type",
    "algorithm_type",
    "lower_order_final",
    "euler_at_final",
    "use_lu_lambdas",
    "use_flow_sigmas",
    "flow_shift",
    "lambda_min_clipped",
    "variance_type",
    "predict_x0",
    "disable_corrector",
    "solver_p",
    "final_sigmas_type",
    "original_inference_steps",
    "timestep_scaling",
    "rho",
    "s_noise",
    "noise_sampler_seed",
];

/// Typed access to a config's fields; `null` reads as the default, as in diffusers.
#[derive(Debug)]
pub(super) struct Fields<'a> {
    fields: &'a Map<String, Value>,
    used: BTreeSet<&'static str>,
}

impl Fields<'_> {
    fn get(&mut self, field: &'static str) -> Option<&Value> {
        self.used.insert(field);
        self.fields.get(field).filter(|v| !v.is_null())
    }

    /// A refusal of `field`'s value.
    pub(super) fn refuse(&self, field: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Field {
            field: field.into(),
            value: self
                .fields
                .get(field)
                .map_or_else(|| "(default)".into(), |v| v.to_string()),
            reason: reason.into(),
        }
    }

    /// A finite number, or `default` when absent or null.
    pub(super) fn number(&mut self, field: &'static str, default: f64) -> Result<f64, ConfigError> {
        self.optional_number(field).map(|v| v.unwrap_or(default))
    }

    /// A finite number, or `None` when absent or null.
    pub(super) fn optional_number(
        &mut self,
        field: &'static str,
    ) -> Result<Option<f64>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(self.refuse(field, "expected a finite number")),
            },
        }
    }

    /// A whole number ≥ 0, or `default`.
    pub(super) fn whole(&mut self, field: &'static str, default: u64) -> Result<u64, ConfigError> {
        match self.get(field) {
            None => Ok(default),
            Some(v) => match v.as_u64() {
                Some(x) => Ok(x),
                None => match v.as_f64() {
                    // diffusers configs sometimes write integers as 1000.0.
                    Some(x) if x >= 0.0 && x.fract() == 0.0 && x < 9.0e15 => Ok(x as u64),
                    _ => Err(self.refuse(field, "expected a whole number ≥ 0")),
                },
            },
        }
    }

    /// A boolean, or `default`.
    pub(super) fn flag(&mut self, field: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(field) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.refuse(field, "expected true or false")),
        }
    }

    /// A string, or `default`.
    pub(super) fn text(
        &mut self,
        field: &'static str,
        default: &'static str,
    ) -> Result<String, ConfigError> {
        match self.get(field) {
            None => Ok(default.into()),
            Some(v) => v
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| self.refuse(field, "expected a string")),
        }
    }

    /// An array of finite numbers, or `None`.
    pub(super) fn numbers(&mut self, field: &'static str) -> Result<Option<Vec<f64>>, ConfigError> {
        let Some(v) = self.get(field) else {
            return Ok(None);
        };
        let values = v
            .as_array()
            .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>());
        match values {
            Some(values) if values.iter().all(|x| x.is_finite()) => Ok(Some(values)),
            _ => Err(self.refuse(field, "expected an array of finite numbers")),
        }
    }

    /// A field that must hold `wanted` (or be absent, when its default is `wanted`):
    /// features chords cannot follow.
    pub(super) fn require_flag(
        &mut self,
        field: &'static str,
        default: bool,
        wanted: bool,
        reason: &str,
    ) -> Result<(), ConfigError> {
        if self.flag(field, default)? == wanted {
            Ok(())
        } else {
            Err(self.refuse(field, reason))
        }
    }

    /// Fields that neither the solver built nor any known diffusers scheduler reads.
    pub(super) fn unknown(&self) -> Vec<String> {
        self.fields
            .keys()
            .filter(|k| {
                !k.starts_with('_')
                    && !self.used.contains(k.as_str())
                    && !KNOWN_ELSEWHERE.contains(&k.as_str())
            })
            .cloned()
            .collect()
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

//! `FlowMatchEulerDiscreteScheduler`: flow-matching models (SD3, Flux).

use super::config::Fields;
use super::vp::{Ramp, train_steps};
use super::{ConfigError, DiffusersOptions};
use crate::schedule::FlowSchedule;
use crate::schedule::numpy::linspace;
use crate::solver::Euler;

/// `FlowMatchEulerDiscreteScheduler` at `steps` steps, as `set_timesteps(steps, mu=…)`
/// builds it (the sigmas diffusers' SD3 pipeline uses).
pub(super) fn euler(
    fields: &mut Fields<'_>,
    steps: usize,
    options: &DiffusersOptions,
) -> Result<Euler, ConfigError> {
    if steps == 0 {
        return Err(ConfigError::Options("--steps must be at least 1".into()));
    }
    let n = train_steps(fields)?;
    let shift = fields.number("shift", 1.0)?;
    if shift <= 0.0 {
        return Err(fields.refuse("shift", "must be positive"));
    }
    let dynamic = fields.flag("use_dynamic_shifting", false)?;
    let exponential_shift = match fields.text("time_shift_type", "exponential")?.as_str() {
        "exponential" => true,
        "linear" => false,
        _ => return Err(fields.refuse("time_shift_type", "supported: exponential, linear")),
    };
    let mu = if dynamic {
        Some(mu(fields, options)?)
    } else if options.mu.is_some() || options.image_seq_len.is_some() {
        return Err(ConfigError::Options(
            "--mu and --image-seq-len set the dynamic shift; this config has \
             use_dynamic_shifting false, so its shift is the config's `shift`"
                .into(),
        ));
    } else {
        None
    };
    fields.require_flag(
        "invert_sigmas",
        false,
        false,
        "inverted sigmas (the model then predicts the reversed velocity) are not supported",
    )?;
    fields.require_flag(
        "stochastic_sampling",
        false,
        false,
        "stochastic sampling adds fresh noise at every step; CHORDS needs a deterministic \
         one-step map of (x, model output)",
    )?;
    let ramp = Ramp::from_fields(fields)?;
    let terminal = fields
        .optional_number("shift_terminal")?
        .filter(|t| *t != 0.0);
    if let Some(t) = terminal
        && !(t > 0.0 && t < 1.0)
    {
        return Err(fields.refuse("shift_terminal", "must lie strictly between 0 and 1"));
    }

    // __init__ (float32 tensors): σ_min is the shifted 1/N unless the shift is dynamic.
    let (nf, shift32) = (n as f32, shift as f32);
    let shifted32 = |s: f32| shift32 * s / (1.0 + (shift - 1.0) as f32 * s);
    let sigma_min = if dynamic {
        1.0 / nf
    } else {
        shifted32(1.0 / nf)
    } as f64;
    let sigma_max = if dynamic { 1.0 } else { shifted32(1.0) } as f64;

    // set_timesteps: the sigmas given (FluxPipeline's), which numpy keeps in float32, or
    // linspace from σ_max to σ_min in float64.
    let given = options.sigmas.is_some();
    let mut sigmas: Vec<f64> = match &options.sigmas {
        Some(given) => {
            if given.len() != steps {
                return Err(ConfigError::Options(format!(
                    "{} sigmas given for {steps} steps",
                    given.len()
                )));
            }
            if let Some(bad) = given.iter().find(|s| !(**s > 0.0 && **s <= 1.0)) {
                return Err(ConfigError::Options(format!(
                    "given sigmas must lie in (0, 1], got {bad}"
                )));
            }
            given.iter().map(|&s| f64::from(s as f32)).collect()
        }
        None => linspace(sigma_max * n as f64, sigma_min * n as f64, steps)
            .into_iter()
            .map(|t| t / n as f64)
            .collect(),
    };
    for s in &mut sigmas {
        *s = if given {
            // numpy float32 arrays with Python scalars: every operation rounds to float32.
            let x = *s as f32;
            let r = 1.0 / x - 1.0;
            f64::from(match mu {
                Some(mu) if exponential_shift => (mu.exp() as f32) / ((mu.exp() as f32) + r),
                Some(mu) => (mu as f32) / ((mu as f32) + r),
                None => shift32 * x / (1.0 + (shift - 1.0) as f32 * x),
            })
        } else {
            match mu {
                Some(mu) if exponential_shift => mu.exp() / (mu.exp() + (1.0 / *s - 1.0)),
                Some(mu) => mu / (mu + (1.0 / *s - 1.0)),
                None => shift * *s / (1.0 + (shift - 1.0) * *s),
            }
        };
    }
    if let Some(terminal) = terminal {
        let scale = (1.0 - sigmas[steps - 1]) / (1.0 - terminal);
        for s in &mut sigmas {
            *s = 1.0 - (1.0 - *s) / scale;
        }
    }
    if ramp != Ramp::None {
        sigmas = ramp.sigmas(sigmas[steps - 1], sigmas[0], steps);
    }
    let sigmas32: Vec<f32> = sigmas.iter().map(|&s| s as f32).collect();
    let times: Vec<f64> = sigmas32.iter().map(|&s| (s * nf) as f64).collect();
    let mut sigmas: Vec<f64> = sigmas32.into_iter().map(f64::from).collect();
    sigmas.push(0.0);
    if let Some(bad) = sigmas.iter().find(|s| !(0.0..=1.0).contains(*s)) {
        return Err(ConfigError::Options(format!(
            "the config's shifts give σ = {bad} at {steps} steps, outside [0, 1]"
        )));
    }
    Ok(Euler::new(FlowSchedule::from_sigmas(sigmas, times)?))
}

/// μ of a dynamic-shift config: `--mu`, or diffusers' `calculate_shift` of `--image-seq-len`.
fn mu(fields: &mut Fields<'_>, options: &DiffusersOptions) -> Result<f64, ConfigError> {
    let base_shift = fields.number("base_shift", 0.5)?;
    let max_shift = fields.number("max_shift", 1.15)?;
    let base_len = fields.whole("base_image_seq_len", 256)? as f64;
    let max_len = fields.whole("max_image_seq_len", 4096)? as f64;
    match (options.mu, options.image_seq_len) {
        (Some(_), Some(_)) => Err(ConfigError::Options(
            "give --mu or --image-seq-len, not both".into(),
        )),
        (Some(mu), None) if mu.is_finite() => Ok(mu),
        (Some(mu), None) => Err(ConfigError::Options(format!(
            "--mu must be a finite number, got {mu}"
        ))),
        (None, Some(len)) => {
            if max_len == base_len {
                return Err(fields.refuse(
                    "max_image_seq_len",
                    "equals base_image_seq_len, so the shift's slope is undefined",
                ));
            }
            let m = (max_shift - base_shift) / (max_len - base_len);
            let b = base_shift - m * base_len;
            Ok(len as f64 * m + b)
        }
        (None, None) => Err(ConfigError::Options(
            "this config has use_dynamic_shifting: the shift follows the image size; give \
             --mu, or --image-seq-len (the latent's token count, e.g. (H/16)·(W/16) for Flux)"
                .into(),
        )),
    }
}

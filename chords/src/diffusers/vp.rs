//! `DDIMScheduler` and `EulerDiscreteScheduler`: VP models.

use super::config::Fields;
use super::torch32;
use super::{ConfigError, MAX_TRAIN_TIMESTEPS};
use crate::schedule::numpy::{arange_down, interp_index, linspace};
use crate::schedule::{BetaSchedule, SigmaSchedule, Spacing, VpSchedule};
use crate::solver::{Ddim, EulerDiscrete, Prediction};

/// `num_train_timesteps` (default 1000), bounded.
pub(super) fn train_steps(fields: &mut Fields<'_>) -> Result<usize, ConfigError> {
    let n = fields.whole("num_train_timesteps", 1000)?;
    if n == 0 || n > MAX_TRAIN_TIMESTEPS as u64 {
        return Err(fields.refuse(
            "num_train_timesteps",
            format!("must be 1 to {MAX_TRAIN_TIMESTEPS}"),
        ));
    }
    Ok(n as usize)
}

/// `ᾱ` of every training step as diffusers' float32 tables hold it: betas from
/// `trained_betas` or `beta_schedule`, rescaled to zero terminal SNR when asked.
fn training_alphas_cumprod(fields: &mut Fields<'_>, n: usize) -> Result<Vec<f64>, ConfigError> {
    let betas: Vec<f32> = match fields.numbers("trained_betas")? {
        Some(betas) => {
            if betas.len() != n {
                return Err(fields.refuse(
                    "trained_betas",
                    format!("holds {} betas but num_train_timesteps is {n}", betas.len()),
                ));
            }
            betas.iter().map(|&b| b as f32).collect()
        }
        None => {
            let (start, end) = (
                fields.number("beta_start", 0.0001)?,
                fields.number("beta_end", 0.02)?,
            );
            match fields.text("beta_schedule", "linear")?.as_str() {
                "linear" => torch32::linspace(start, end, n),
                "scaled_linear" if start >= 0.0 && end >= 0.0 => {
                    torch32::linspace(start.sqrt(), end.sqrt(), n)
                        .into_iter()
                        .map(|b| b * b)
                        .collect()
                }
                "squaredcos_cap_v2" => BetaSchedule::SquaredCosCapV2
                    .betas(n)
                    .into_iter()
                    .map(|b| b as f32)
                    .collect(),
                _ => {
                    return Err(fields.refuse(
                        "beta_schedule",
                        "supported: linear, scaled_linear (with betas ≥ 0), squaredcos_cap_v2",
                    ));
                }
            }
        }
    };
    if let Some(b) = betas.iter().find(|b| !(**b > 0.0 && **b < 1.0)) {
        return Err(fields.refuse(
            "beta_schedule",
            format!("gives a beta of {b}; betas must lie strictly between 0 and 1"),
        ));
    }
    let betas = if fields.flag("rescale_betas_zero_snr", false)? {
        torch32::rescale_zero_terminal_snr(&betas)
    } else {
        betas
    };
    Ok(torch32::alphas_cumprod(&betas)
        .into_iter()
        .map(f64::from)
        .collect())
}

/// `prediction_type` of a VP model.
fn prediction(fields: &mut Fields<'_>, sample_names: &[&str]) -> Result<Prediction, ConfigError> {
    let p = fields.text("prediction_type", "epsilon")?;
    match p.as_str() {
        "epsilon" => Ok(Prediction::Epsilon),
        "v_prediction" => Ok(Prediction::V),
        s if sample_names.contains(&s) => Ok(Prediction::Sample),
        _ => Err(fields.refuse(
            "prediction_type",
            format!(
                "supported: epsilon, v_prediction, {}",
                sample_names.join(", ")
            ),
        )),
    }
}

/// A step count within `1..=n`.
fn check_steps(steps: usize, n: usize) -> Result<(), ConfigError> {
    if steps == 0 || steps > n {
        return Err(ConfigError::Options(format!(
            "--steps {steps}: a VP scheduler takes 1 to num_train_timesteps ({n}) steps"
        )));
    }
    Ok(())
}

/// `DDIMScheduler` at `steps` steps.
pub(super) fn ddim(fields: &mut Fields<'_>, steps: usize) -> Result<Ddim, ConfigError> {
    let n = train_steps(fields)?;
    check_steps(steps, n)?;
    let ab = training_alphas_cumprod(fields, n)?;
    let prediction = prediction(fields, &["sample"])?;
    fields.require_flag(
        "clip_sample",
        true,
        false,
        "clipping the predicted sample is a non-linear step, and CHORDS's jumps are linear in \
         (x, model output); set it to false (Stable Diffusion's configs do)",
    )?;
    fields.require_flag(
        "thresholding",
        false,
        false,
        "dynamic thresholding is a non-linear step, and CHORDS's jumps are linear in \
         (x, model output)",
    )?;
    let final_alpha_bar = if fields.flag("set_alpha_to_one", true)? {
        1.0
    } else {
        ab[0]
    };
    let spacing = spacing(fields, "leading")?;
    let schedule = VpSchedule::from_alphas_cumprod(steps, &ab, spacing, final_alpha_bar)?;
    if prediction == Prediction::Epsilon && (0..steps).any(|i| schedule.alpha_bar(i) == 0.0) {
        return Err(fields.refuse(
            "rescale_betas_zero_snr",
            "with prediction_type epsilon the first step sits at ᾱ = 0, where the sample \
             estimate divides by zero (diffusers gives NaN); use a v_prediction model",
        ));
    }
    if prediction == Prediction::Sample && (0..steps).any(|i| schedule.alpha_bar(i) == 1.0) {
        return Err(fields.refuse(
            "beta_start",
            "gives ᾱ = 1 (no noise) at an evaluated timestep, where a sample-predicting \
             model's noise estimate divides by zero",
        ));
    }
    Ok(Ddim::new(schedule, prediction)?)
}

/// `timestep_spacing` (with `steps_offset` for "leading").
fn spacing(fields: &mut Fields<'_>, default: &'static str) -> Result<Spacing, ConfigError> {
    let offset = fields.whole("steps_offset", 0)?;
    match fields.text("timestep_spacing", default)?.as_str() {
        "leading" => Ok(Spacing::Leading {
            offset: usize::try_from(offset)
                .ok()
                .filter(|o| *o <= MAX_TRAIN_TIMESTEPS)
                .ok_or_else(|| fields.refuse("steps_offset", "too large"))?,
        }),
        "trailing" => Ok(Spacing::Trailing),
        "linspace" => Ok(Spacing::Linspace),
        _ => Err(fields.refuse("timestep_spacing", "supported: leading, trailing, linspace")),
    }
}

/// `EulerDiscreteScheduler` at `steps` steps.
pub(super) fn euler_discrete(
    fields: &mut Fields<'_>,
    steps: usize,
) -> Result<EulerDiscrete, ConfigError> {
    let n = train_steps(fields)?;
    check_steps(steps, n)?;
    let mut ab = training_alphas_cumprod(fields, n)?;
    if fields.flag("rescale_betas_zero_snr", false)? {
        // diffusers: "close to 0 without being 0 so the first sigma is not inf".
        ab[n - 1] = 2f64.powi(-24);
    }
    let prediction = prediction(fields, &["sample", "original_sample"])?;
    // σ of each training step: `((1 - ᾱ) / ᾱ) ** 0.5` in float32, and its log (numpy, float32).
    let train_sigmas: Vec<f64> = ab.iter().map(|&a| f64::from(sigma_of(a as f32))).collect();
    let log_sigmas: Vec<f64> = train_sigmas
        .iter()
        .map(|&s| f64::from((s as f32).ln()))
        .collect();

    let spacing = fields.text("timestep_spacing", "linspace")?;
    let offset = fields.whole("steps_offset", 0)?;
    let mut times: Vec<f64> = match spacing.as_str() {
        "linspace" => linspace(0.0, (n - 1) as f64, steps)
            .into_iter()
            .rev()
            .map(f32_round)
            .collect(),
        "leading" => {
            let ratio = n / steps;
            (0..steps)
                .rev()
                .map(|i| f32_round((i * ratio) as f64 + offset as f64))
                .collect()
        }
        "trailing" => {
            let values = arange_down(n as f64, n as f64 / steps as f64);
            if values.len() != steps {
                return Err(ConfigError::Options(format!(
                    "--steps {steps}: diffusers' trailing spacing gives {} timesteps for {steps} \
                     steps over {n} training steps (numpy's arange rounds its length up); choose \
                     another step count",
                    values.len()
                )));
            }
            values
                .into_iter()
                .map(|v| f32_round(v.round_ties_even()) - 1.0)
                .collect()
        }
        _ => {
            return Err(fields.refuse("timestep_spacing", "supported: linspace, leading, trailing"));
        }
    };
    if let Some(t) = times.iter().find(|t| **t > (n - 1) as f64) {
        return Err(fields.refuse(
            "steps_offset",
            format!(
                "puts a timestep at {t}, past the last training step ({})",
                n - 1
            ),
        ));
    }

    let interpolation = fields.text("interpolation_type", "linear")?;
    let mut sigmas: Vec<f64> = match interpolation.as_str() {
        "linear" => times
            .iter()
            .map(|&t| interp_index(t, &train_sigmas))
            .collect(),
        // diffusers: T + 1 log-spaced sigmas (torch.linspace in float32) before the final one
        // is appended; the T steps then end on the smallest of them.
        "log_linear" => linspace(log_sigmas[n - 1], log_sigmas[0], steps + 1)
            .into_iter()
            .map(|l| f32_round(f32_round(l).exp()))
            .collect(),
        _ => {
            return Err(fields.refuse("interpolation_type", "supported: linear, log_linear"));
        }
    };
    let ramp = Ramp::from_fields(fields)?;
    if ramp != Ramp::None {
        let first = sigmas.first().copied().unwrap_or(1.0);
        let last = sigmas.last().copied().unwrap_or(1.0);
        let lo = fields.optional_number("sigma_min")?.unwrap_or(last);
        let hi = fields.optional_number("sigma_max")?.unwrap_or(first);
        if !(lo > 0.0 && hi >= lo) {
            return Err(fields.refuse("sigma_min", "needs 0 < sigma_min ≤ sigma_max"));
        }
        sigmas = ramp.sigmas(lo, hi, steps);
        times = sigmas.iter().map(|&s| sigma_to_t(s, &log_sigmas)).collect();
    }
    let last = match fields.text("final_sigmas_type", "zero")?.as_str() {
        "zero" => 0.0,
        "sigma_min" => f64::from(sigma_of(ab[0] as f32)),
        _ => return Err(fields.refuse("final_sigmas_type", "supported: zero, sigma_min")),
    };
    if sigmas.len() == steps {
        sigmas.push(last);
    }
    let sigmas: Vec<f64> = sigmas.into_iter().map(f32_round).collect();
    let continuous = match fields.text("timestep_type", "discrete")?.as_str() {
        "discrete" => false,
        "continuous" => true,
        _ => return Err(fields.refuse("timestep_type", "supported: discrete, continuous")),
    };
    let times: Vec<f64> = if continuous && prediction == Prediction::V {
        sigmas[..steps]
            .iter()
            .map(|&s| f32_round(0.25 * f32_round(s.ln())))
            .collect()
    } else {
        times.into_iter().map(f32_round).collect()
    };
    let max_sigma = sigmas.iter().copied().fold(0.0, f64::max);
    let init_noise_sigma = if matches!(spacing.as_str(), "linspace" | "trailing") {
        max_sigma
    } else {
        let m = max_sigma as f32;
        f64::from((m * m + 1.0).sqrt())
    };
    Ok(EulerDiscrete::new(
        SigmaSchedule::new(sigmas, times, init_noise_sigma)?,
        prediction,
    )?)
}

/// How a scheduler respaces its sigmas (`use_karras_sigmas`, `use_exponential_sigmas`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ramp {
    /// As spaced.
    None,
    /// Karras et al.'s ρ = 7 ramp.
    Karras,
    /// Log-linear from the largest to the smallest σ.
    Exponential,
}

impl Ramp {
    /// The respacing a config asks for (at most one; beta sigmas are refused).
    pub(super) fn from_fields(fields: &mut Fields<'_>) -> Result<Self, ConfigError> {
        fields.require_flag(
            "use_beta_sigmas",
            false,
            false,
            "beta-distributed sigmas are not supported; use use_karras_sigmas or \
             use_exponential_sigmas",
        )?;
        let karras = fields.flag("use_karras_sigmas", false)?;
        let exponential = fields.flag("use_exponential_sigmas", false)?;
        match (karras, exponential) {
            (true, true) => Err(fields.refuse(
                "use_exponential_sigmas",
                "only one of use_karras_sigmas and use_exponential_sigmas can be set",
            )),
            (true, false) => Ok(Self::Karras),
            (false, true) => Ok(Self::Exponential),
            (false, false) => Ok(Self::None),
        }
    }

    /// `steps` sigmas from `hi` down to `lo` (not called for [`Ramp::None`]).
    pub(super) fn sigmas(self, lo: f64, hi: f64, steps: usize) -> Vec<f64> {
        match self {
            Self::Karras => karras_sigmas(lo, hi, steps),
            _ => linspace(hi.ln(), lo.ln(), steps)
                .into_iter()
                .map(f64::exp)
                .collect(),
        }
    }
}

/// Karras et al.'s σ ramp with ρ = 7 from `hi` to `lo` over `steps` points.
fn karras_sigmas(lo: f64, hi: f64, steps: usize) -> Vec<f64> {
    let rho = 7.0;
    let (min_inv, max_inv) = (lo.powf(1.0 / rho), hi.powf(1.0 / rho));
    linspace(0.0, 1.0, steps)
        .into_iter()
        .map(|r| (max_inv + r * (min_inv - max_inv)).powf(rho))
        .collect()
}

/// diffusers' `_sigma_to_t`: the fractional training timestep of `sigma`, interpolating
/// `log σ` between the two training steps around it.
fn sigma_to_t(sigma: f64, log_sigmas: &[f64]) -> f64 {
    let log_sigma = sigma.max(1e-10).ln();
    let below = log_sigmas.iter().filter(|&&l| log_sigma - l >= 0.0).count();
    let low_idx = below
        .saturating_sub(1)
        .min(log_sigmas.len().saturating_sub(2));
    let high_idx = (low_idx + 1).min(log_sigmas.len() - 1);
    let (low, high) = (log_sigmas[low_idx], log_sigmas[high_idx]);
    let w = if low == high {
        0.0
    } else {
        ((low - log_sigma) / (low - high)).clamp(0.0, 1.0)
    };
    (1.0 - w) * low_idx as f64 + w * high_idx as f64
}

/// `((1 - ᾱ) / ᾱ) ** 0.5` in float32.
fn sigma_of(alpha_bar: f32) -> f32 {
    ((1.0 - alpha_bar) / alpha_bar).sqrt()
}

/// `x` rounded to float32, where diffusers stores a value as float32.
pub(super) fn f32_round(x: f64) -> f64 {
    x as f32 as f64
}

//! Noise schedules: where each grid index sits on the noise axis.
//!
//! Two families (DESIGN.md section 2):
//! * [`FlowSchedule`]: rectified flow, `x_σ = (1-σ)·x_data + σ·ε`, `σ_i = 1 - i/T` with an
//!   optional shift `σ ← s·σ / (1 + (s-1)·σ)` (SD3 / Flux).
//! * [`VpSchedule`]: variance preserving, `x_t = √ᾱ_t·x_0 + √(1-ᾱ_t)·ε`, with linear or
//!   scaled-linear betas over 1000 training steps and diffusers' "leading" / "trailing"
//!   timestep spacing. Grid index `T` is the clean end, `ᾱ = 1` (diffusers'
//!   `set_alpha_to_one`).

use crate::error::{Error, Result};

/// Where a grid index sits on the noise axis, as a model sees it.
///
/// Every schedule here writes the noisy latent as `x = alpha·x_data + sigma·ε`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timestep {
    /// Grid index, `0..=T` (0 is pure noise).
    pub index: usize,
    /// The model's time input: σ for flow matching, the training timestep for VP models.
    pub t: f64,
    /// Coefficient of the data in `x` (`1-σ` for flow, `√ᾱ` for VP).
    pub alpha: f64,
    /// Coefficient of the noise in `x` (`σ` for flow, `√(1-ᾱ)` for VP).
    pub sigma: f64,
}

/// Rectified-flow σ grid: `σ_i = 1 - i/T`, optionally shifted.
///
/// ```
/// let s = chords::FlowSchedule::new(4, 1.0).unwrap();
/// assert_eq!(s.sigma(1), 0.75);
/// assert_eq!(s.sigma(4), 0.0);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSchedule {
    sigmas: Vec<f64>,
    shift: f64,
}

impl FlowSchedule {
    /// A grid of `steps` steps (`steps + 1` points) with shift `shift` (1 = no shift).
    pub fn new(steps: usize, shift: f64) -> Result<Self> {
        if steps == 0 {
            return Err(Error::Config("steps must be at least 1".into()));
        }
        if !(shift.is_finite() && shift > 0.0) {
            return Err(Error::Config(format!(
                "flow shift must be a positive number, got {shift}"
            )));
        }
        let sigmas = (0..=steps)
            .map(|i| {
                let s = 1.0 - i as f64 / steps as f64;
                shift * s / (1.0 + (shift - 1.0) * s)
            })
            .collect();
        Ok(Self { sigmas, shift })
    }

    /// Number of steps T.
    pub fn steps(&self) -> usize {
        self.sigmas.len() - 1
    }

    /// The shift this grid was built with.
    pub fn shift(&self) -> f64 {
        self.shift
    }

    /// σ at grid index `i` (1 at `i = 0`, 0 at `i = T`).
    pub fn sigma(&self, i: usize) -> f64 {
        self.sigmas[i]
    }

    /// The model input at grid index `i`.
    pub fn timestep(&self, i: usize) -> Timestep {
        let s = self.sigmas[i];
        Timestep {
            index: i,
            t: s,
            alpha: 1.0 - s,
            sigma: s,
        }
    }
}

/// How the betas of a VP model grow over its training steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BetaSchedule {
    /// `β` linear from `start` to `end` (DDPM: 1e-4 to 0.02).
    Linear {
        /// First beta.
        start: f64,
        /// Last beta.
        end: f64,
    },
    /// `√β` linear from `√start` to `√end` (Stable Diffusion: 0.00085 to 0.012).
    ScaledLinear {
        /// First beta.
        start: f64,
        /// Last beta.
        end: f64,
    },
}

impl BetaSchedule {
    /// DDPM's linear betas, 1e-4 to 0.02.
    pub const LINEAR: Self = Self::Linear {
        start: 1e-4,
        end: 0.02,
    };
    /// Stable Diffusion's scaled-linear betas, 0.00085 to 0.012.
    pub const SCALED_LINEAR: Self = Self::ScaledLinear {
        start: 0.00085,
        end: 0.012,
    };

    /// The betas over `train_steps` training steps.
    pub fn betas(&self, train_steps: usize) -> Vec<f64> {
        let lerp = |a: f64, b: f64, k: usize| {
            if train_steps == 1 {
                a
            } else {
                a + (b - a) * k as f64 / (train_steps - 1) as f64
            }
        };
        (0..train_steps)
            .map(|k| match *self {
                Self::Linear { start, end } => lerp(start, end, k),
                Self::ScaledLinear { start, end } => lerp(start.sqrt(), end.sqrt(), k).powi(2),
            })
            .collect()
    }
}

/// How the T inference timesteps are picked among the training steps (as diffusers does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spacing {
    /// `(0..T)·⌊N/T⌋`, reversed, plus an offset: starts at or below `N - N/T`.
    Leading {
        /// diffusers' `steps_offset` (0 for DDIM's default config, 1 for Stable Diffusion).
        offset: usize,
    },
    /// `round(N - i·N/T) - 1`: starts at the last training step `N - 1`.
    Trailing,
}

/// A variance-preserving schedule sampled at T inference timesteps.
#[derive(Debug, Clone, PartialEq)]
pub struct VpSchedule {
    timesteps: Vec<usize>,
    /// `ᾱ` at grid indices `0..=T`; index T is 1 (clean).
    alpha_bars: Vec<f64>,
}

impl VpSchedule {
    /// Number of training steps of the models this project targets.
    pub const TRAIN_STEPS: usize = 1000;

    /// T inference steps over 1000 training steps.
    pub fn new(steps: usize, betas: BetaSchedule, spacing: Spacing) -> Result<Self> {
        Self::with_train_steps(steps, betas, spacing, Self::TRAIN_STEPS)
    }

    /// T inference steps over `train_steps` training steps.
    pub fn with_train_steps(
        steps: usize,
        betas: BetaSchedule,
        spacing: Spacing,
        train_steps: usize,
    ) -> Result<Self> {
        if steps == 0 || steps > train_steps {
            return Err(Error::Config(format!(
                "a VP schedule needs 1 to {train_steps} steps, got {steps}"
            )));
        }
        let betas = betas.betas(train_steps);
        if betas.iter().any(|b| !(*b > 0.0 && *b < 1.0)) {
            return Err(Error::Config(
                "betas must lie strictly between 0 and 1".into(),
            ));
        }
        let mut cumulative = Vec::with_capacity(train_steps);
        let mut prod = 1.0;
        for b in &betas {
            prod *= 1.0 - b;
            cumulative.push(prod);
        }
        let timesteps: Vec<usize> = match spacing {
            Spacing::Leading { offset } => {
                let ratio = train_steps / steps;
                (0..steps)
                    .rev()
                    .map(|i| (i * ratio + offset).min(train_steps - 1))
                    .collect()
            }
            Spacing::Trailing => {
                let ratio = train_steps as f64 / steps as f64;
                (0..steps)
                    .map(|i| {
                        ((train_steps as f64 - i as f64 * ratio).round_ties_even() as usize)
                            .saturating_sub(1)
                    })
                    .collect()
            }
        };
        let mut alpha_bars: Vec<f64> = timesteps.iter().map(|&t| cumulative[t]).collect();
        alpha_bars.push(1.0);
        Ok(Self {
            timesteps,
            alpha_bars,
        })
    }

    /// Number of steps T.
    pub fn steps(&self) -> usize {
        self.timesteps.len()
    }

    /// The training timestep at grid index `i < T`.
    pub fn training_timestep(&self, i: usize) -> usize {
        self.timesteps[i]
    }

    /// `ᾱ` at grid index `i` (`i = T` gives 1).
    pub fn alpha_bar(&self, i: usize) -> f64 {
        self.alpha_bars[i]
    }

    /// The model input at grid index `i`; at `i = T` the timestep `t` is -1 (never evaluated).
    pub fn timestep(&self, i: usize) -> Timestep {
        let ab = self.alpha_bars[i];
        let t = self.timesteps.get(i).map_or(-1.0, |&t| t as f64);
        Timestep {
            index: i,
            t,
            alpha: ab.sqrt(),
            sigma: (1.0 - ab).sqrt(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_grid_with_shift_matches_closed_form() {
        let s = FlowSchedule::new(4, 3.0).unwrap();
        // σ = 0.5 shifted by 3: 1.5 / 2 = 0.75.
        assert!((s.sigma(2) - 0.75).abs() < 1e-15);
        assert_eq!(s.sigma(0), 1.0);
        assert_eq!(s.sigma(4), 0.0);
        let t = s.timestep(2);
        assert!((t.alpha - 0.25).abs() < 1e-15 && (t.sigma - 0.75).abs() < 1e-15);
    }

    #[test]
    fn leading_and_trailing_spacing_match_diffusers() {
        // diffusers DDIMScheduler(num_train_timesteps=1000).set_timesteps(10)
        let lead =
            VpSchedule::new(10, BetaSchedule::LINEAR, Spacing::Leading { offset: 0 }).unwrap();
        assert_eq!(
            lead.timesteps,
            vec![900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
        );
        let sd = VpSchedule::new(
            10,
            BetaSchedule::SCALED_LINEAR,
            Spacing::Leading { offset: 1 },
        )
        .unwrap();
        assert_eq!(
            sd.timesteps,
            vec![901, 801, 701, 601, 501, 401, 301, 201, 101, 1]
        );
        let trail = VpSchedule::new(10, BetaSchedule::LINEAR, Spacing::Trailing).unwrap();
        assert_eq!(
            trail.timesteps,
            vec![999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
        );
        // 1000 / 3 = 333.3…: np.round([1000, 666.67, 333.33]) - 1
        let t3 = VpSchedule::new(3, BetaSchedule::LINEAR, Spacing::Trailing).unwrap();
        assert_eq!(t3.timesteps, vec![999, 666, 332]);
    }

    #[test]
    fn alpha_bar_is_the_product_of_one_minus_beta() {
        let s =
            VpSchedule::new(1000, BetaSchedule::LINEAR, Spacing::Leading { offset: 0 }).unwrap();
        // index T-1 is training step 0: ᾱ = 1 - β_0.
        assert!((s.alpha_bar(999) - (1.0 - 1e-4)).abs() < 1e-15);
        // training step 1: (1 - β_0)(1 - β_1), β_1 = 1e-4 + (0.02 - 1e-4)/999.
        let b1 = 1e-4 + (0.02 - 1e-4) / 999.0;
        assert!((s.alpha_bar(998) - (1.0 - 1e-4) * (1.0 - b1)).abs() < 1e-15);
        assert_eq!(s.alpha_bar(1000), 1.0);
        // Scaled linear: β_999 = 0.012 exactly.
        let b = BetaSchedule::SCALED_LINEAR.betas(1000);
        assert!((b[999] - 0.012).abs() < 1e-15 && (b[0] - 0.00085).abs() < 1e-15);
    }

    #[test]
    fn bad_schedules_are_errors() {
        assert!(FlowSchedule::new(0, 1.0).is_err());
        assert!(FlowSchedule::new(10, 0.0).is_err());
        assert!(VpSchedule::new(1001, BetaSchedule::LINEAR, Spacing::Trailing).is_err());
    }
}

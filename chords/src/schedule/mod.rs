//! Noise schedules: where each grid index sits on the noise axis.
//!
//! Three families (DESIGN.md section 2), each writing the point at grid index `i` as
//! `x_i = alpha·x_data + sigma·ε` ([`Timestep`]):
//! * [`FlowSchedule`]: rectified flow, `x_σ = (1-σ)·x_data + σ·ε`, `σ_i = 1 - i/T` with an
//!   optional shift `σ ← s·σ / (1 + (s-1)·σ)` (SD3 / Flux), or any σ grid given point by
//!   point (diffusers' `FlowMatchEulerDiscreteScheduler`, built by [`crate::diffusers`]);
//! * [`VpSchedule`]: variance preserving, `x_t = √ᾱ_t·x_0 + √(1-ᾱ_t)·ε`, sampled at T of
//!   the training timesteps with diffusers' "leading", "trailing" or "linspace" spacing;
//! * [`SigmaSchedule`]: a VP model stepped in σ = √((1-ᾱ)/ᾱ) space, as diffusers'
//!   `EulerDiscreteScheduler` does.

mod flow;
pub(crate) mod numpy;
mod sigma;
mod vp;

pub use flow::FlowSchedule;
pub use sigma::SigmaSchedule;
pub use vp::{BetaSchedule, Spacing, VpSchedule, alphas_cumprod, rescale_zero_terminal_snr};

/// Where a grid index sits on the noise axis, as a model sees it.
///
/// Every schedule here writes the noisy latent as `x = alpha·x_data + sigma·ε`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Timestep {
    /// Grid index, `0..=T` (0 is pure noise).
    pub index: usize,
    /// The model's time input: diffusers' `timestep` (σ for chords's own flow grid, σ·1000
    /// on a diffusers flow-matching grid, the training timestep for VP models). -1 at the
    /// end of grids whose end is never evaluated.
    pub t: f64,
    /// Coefficient of the data in `x` (`1-σ` for flow, `√ᾱ` for VP).
    pub alpha: f64,
    /// Coefficient of the noise in `x` (`σ` for flow, `√(1-ᾱ)` for VP).
    pub sigma: f64,
}

impl Timestep {
    /// Grid index `index` with time input `t` at `x = alpha·x_data + sigma·ε` (for a
    /// [`Solver`](crate::Solver) of one's own).
    ///
    /// ```
    /// let t = chords::Timestep::new(0, 1.0, 0.0, 1.0);
    /// assert_eq!((t.index, t.sigma), (0, 1.0));
    /// ```
    pub fn new(index: usize, t: f64, alpha: f64, sigma: f64) -> Self {
        Self {
            index,
            t,
            alpha,
            sigma,
        }
    }
}

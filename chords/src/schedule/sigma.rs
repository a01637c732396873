//! A VP model stepped in σ space, as diffusers' `EulerDiscreteScheduler` steps it.

use super::Timestep;
use crate::error::{Error, Result};

/// A σ grid of a VP model in the "variance exploding" form `x̃ = x_data + σ·ε`, with
/// `σ = √((1-ᾱ)/ᾱ)`.
///
/// diffusers keeps `x̃` and hands the model `x̃/√(σ²+1)` (`scale_model_input`), which is the
/// VP point `√ᾱ·x_data + √(1-ᾱ)·ε`. chords keeps that scaled point instead, so the model
/// sees the latent as it is: at grid index `i < T` the point is `c_i·x̃_i` with
/// `c_i = 1/√(σ_i²+1)`. The end point, never evaluated, is `x̃_T` itself (`c_T = 1`), so the
/// last output is diffusers' last sample even when the grid ends above σ = 0.
///
/// ```
/// let s = chords::SigmaSchedule::new(vec![14.6, 1.0, 0.0], vec![999.0, 500.0], 14.6).unwrap();
/// let t = s.timestep(1);
/// assert!((t.alpha - 0.5f64.sqrt()).abs() < 1e-15 && (t.sigma - 0.5f64.sqrt()).abs() < 1e-15);
/// assert_eq!(s.timestep(2).alpha, 1.0);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SigmaSchedule {
    /// σ at grid indices `0..=T`.
    sigmas: Vec<f64>,
    /// The model's time input at grid indices `0..T`.
    times: Vec<f64>,
    /// The standard deviation of diffusers' initial `x̃` (`init_noise_sigma`).
    init_noise_sigma: f64,
}

impl SigmaSchedule {
    /// A grid of `sigmas` at indices `0..=T` (finite, positive before the end), the model's
    /// time input `times` at `0..T`, and diffusers' `init_noise_sigma`.
    pub fn new(sigmas: Vec<f64>, times: Vec<f64>, init_noise_sigma: f64) -> Result<Self> {
        if sigmas.len() < 2 || times.len() + 1 != sigmas.len() {
            return Err(Error::Config(format!(
                "a σ grid needs T + 1 ≥ 2 sigmas and T time inputs, got {} and {}",
                sigmas.len(),
                times.len()
            )));
        }
        let steps = times.len();
        if let Some(s) = sigmas[..steps]
            .iter()
            .find(|s| !(s.is_finite() && **s > 0.0))
        {
            return Err(Error::Config(format!(
                "the σ of an evaluated point must be finite and positive, got {s}"
            )));
        }
        if !(sigmas[steps].is_finite() && sigmas[steps] >= 0.0) {
            return Err(Error::Config(format!(
                "the last σ must be finite and ≥ 0, got {}",
                sigmas[steps]
            )));
        }
        if let Some(t) = times.iter().find(|t| !t.is_finite()) {
            return Err(Error::Config(format!(
                "time inputs must be finite, got {t}"
            )));
        }
        if !(init_noise_sigma.is_finite() && init_noise_sigma > 0.0) {
            return Err(Error::Config(format!(
                "init_noise_sigma must be finite and positive, got {init_noise_sigma}"
            )));
        }
        Ok(Self {
            sigmas,
            times,
            init_noise_sigma,
        })
    }

    /// Number of steps T.
    pub fn steps(&self) -> usize {
        self.times.len()
    }

    /// σ (of `x̃ = x_data + σ·ε`) at grid index `i`.
    pub fn sigma(&self, i: usize) -> f64 {
        self.sigmas[i]
    }

    /// `c_i`: the point at index `i` is `c_i·x̃_i` (`1/√(σ_i²+1)`, and 1 at the end).
    pub fn scale(&self, i: usize) -> f64 {
        if i == self.steps() {
            1.0
        } else {
            1.0 / (self.sigmas[i] * self.sigmas[i] + 1.0).sqrt()
        }
    }

    /// diffusers' `init_noise_sigma`: the initial `x̃` is this times unit noise.
    pub fn init_noise_sigma(&self) -> f64 {
        self.init_noise_sigma
    }

    /// The model input at grid index `i` (`t = -1` at the end, never evaluated).
    pub fn timestep(&self, i: usize) -> Timestep {
        let c = self.scale(i);
        Timestep {
            index: i,
            t: self.times.get(i).copied().unwrap_or(-1.0),
            alpha: c,
            sigma: c * self.sigmas[i],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_grids_are_errors() {
        assert!(SigmaSchedule::new(vec![1.0], vec![], 1.0).is_err());
        assert!(SigmaSchedule::new(vec![1.0, 0.0, 0.0], vec![1.0, 2.0], 1.0).is_err());
        assert!(SigmaSchedule::new(vec![1.0, -1.0], vec![1.0], 1.0).is_err());
        assert!(SigmaSchedule::new(vec![1.0, 0.0], vec![1.0], 0.0).is_err());
        assert!(SigmaSchedule::new(vec![1.0, 0.0], vec![1.0], 1.0).is_ok());
    }
}

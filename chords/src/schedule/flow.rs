//! Rectified-flow σ grids.

use super::Timestep;
use crate::error::{Error, Result};

/// Rectified-flow σ grid: `x_σ = (1-σ)·x_data + σ·ε`, by default `σ_i = 1 - i/T`, optionally
/// shifted.
///
/// ```
/// let s = chords::FlowSchedule::new(4, 1.0).unwrap();
/// assert_eq!(s.sigma(1), 0.75);
/// assert_eq!(s.sigma(4), 0.0);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSchedule {
    /// σ at grid indices `0..=T`.
    sigmas: Vec<f64>,
    /// The model's time input at grid indices `0..=T`.
    times: Vec<f64>,
}

impl FlowSchedule {
    /// A grid of `steps` steps (`steps + 1` points) with shift `shift` (1 = no shift); the
    /// model's time input is σ itself.
    pub fn new(steps: usize, shift: f64) -> Result<Self> {
        if steps == 0 {
            return Err(Error::Config("steps must be at least 1".into()));
        }
        if !(shift.is_finite() && shift > 0.0) {
            return Err(Error::Config(format!(
                "flow shift must be a positive number, got {shift}"
            )));
        }
        let sigmas: Vec<f64> = (0..=steps)
            .map(|i| {
                let s = 1.0 - i as f64 / steps as f64;
                shift * s / (1.0 + (shift - 1.0) * s)
            })
            .collect();
        Ok(Self {
            times: sigmas.clone(),
            sigmas,
        })
    }

    /// A grid given point by point: `sigmas` at grid indices `0..=T` (non-increasing, in
    /// `[0, 1]`) and the model's time input `times` at the T evaluated points `0..T`.
    ///
    /// ```
    /// // diffusers' grid at T = 2 for num_train_timesteps 1000, shift 1, times σ·1000.
    /// let s = chords::FlowSchedule::from_sigmas(vec![1.0, 0.5005, 0.0], vec![1000.0, 500.5]).unwrap();
    /// assert_eq!(s.timestep(1).t, 500.5);
    /// assert_eq!(s.timestep(2).t, -1.0);
    /// ```
    pub fn from_sigmas(sigmas: Vec<f64>, times: Vec<f64>) -> Result<Self> {
        if sigmas.len() < 2 || times.len() + 1 != sigmas.len() {
            return Err(Error::Config(format!(
                "a flow grid needs T + 1 ≥ 2 sigmas and T time inputs, got {} and {}",
                sigmas.len(),
                times.len()
            )));
        }
        if let Some(s) = sigmas.iter().find(|s| !(0.0..=1.0).contains(*s)) {
            return Err(Error::Config(format!(
                "flow sigmas must lie in [0, 1], got {s}"
            )));
        }
        if sigmas.windows(2).any(|w| w[1] > w[0]) {
            return Err(Error::Config(
                "flow sigmas must not increase along the grid".into(),
            ));
        }
        if let Some(t) = times.iter().find(|t| !t.is_finite()) {
            return Err(Error::Config(format!(
                "flow time inputs must be finite, got {t}"
            )));
        }
        let mut times = times;
        times.push(-1.0);
        Ok(Self { sigmas, times })
    }

    /// Number of steps T.
    pub fn steps(&self) -> usize {
        self.sigmas.len() - 1
    }

    /// σ at grid index `i`.
    pub fn sigma(&self, i: usize) -> f64 {
        self.sigmas[i]
    }

    /// The model input at grid index `i`.
    pub fn timestep(&self, i: usize) -> Timestep {
        let s = self.sigmas[i];
        Timestep {
            index: i,
            t: self.times[i],
            alpha: 1.0 - s,
            sigma: s,
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
        assert_eq!(t.t, t.sigma);
    }

    #[test]
    fn bad_grids_are_errors() {
        assert!(FlowSchedule::new(0, 1.0).is_err());
        assert!(FlowSchedule::new(10, 0.0).is_err());
        assert!(FlowSchedule::from_sigmas(vec![1.0], vec![]).is_err());
        assert!(FlowSchedule::from_sigmas(vec![1.0, 0.0], vec![1.0, 2.0]).is_err());
        assert!(FlowSchedule::from_sigmas(vec![0.5, 0.7, 0.0], vec![1.0, 2.0]).is_err());
        assert!(FlowSchedule::from_sigmas(vec![1.5, 0.0], vec![1.0]).is_err());
        assert!(FlowSchedule::from_sigmas(vec![1.0, 0.0], vec![f64::NAN]).is_err());
    }
}

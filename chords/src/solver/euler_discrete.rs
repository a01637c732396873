//! Euler in σ space for VP models: diffusers' `EulerDiscreteScheduler` (no churn).
//!
//! diffusers keeps `x̃ = x_data + σ·ε`, estimates `x̂_0` from the model output, and steps
//! `x̃_j = x̃_i + (σ_j - σ_i)·(x̃_i - x̂_0)/σ_i`. chords keeps the scaled point
//! `x_i = c_i·x̃_i` ([`SigmaSchedule`]), so with `r = (σ_j - σ_i)/σ_i`:
//! * ε: `x̂_0 = x̃ - σ_i·ε̂` → `a = c_j/c_i`, `b = c_j·(σ_j - σ_i)`;
//! * v: `x̂_0 = c_i²·x̃ - σ_i·c_i·v` → `a = (c_j/c_i)·(1 + (σ_j - σ_i)·σ_i·c_i²)`,
//!   `b = c_j·c_i·(σ_j - σ_i)`;
//! * x0: `x̂_0 = out` → `a = (c_j/c_i)·(1 + r)`, `b = -c_j·r`.

use super::{Jump, Prediction, Solver};
use crate::error::{Error, Result};
use crate::schedule::{SigmaSchedule, Timestep};

/// Deterministic Euler on a σ grid of a VP model.
///
/// ```
/// use chords::{EulerDiscrete, Prediction, SigmaSchedule, Solver};
/// let s = SigmaSchedule::new(vec![3.0, 1.0, 0.0], vec![999.0, 499.0], 3.0).unwrap();
/// let e = EulerDiscrete::new(s, Prediction::Epsilon).unwrap();
/// // The last jump lands on x̃ = x̃_1 - σ_1·ε̂ with x̃_1 = √2·x_1.
/// let j = e.jump(1, 2);
/// assert!((j.a - 2f64.sqrt()).abs() < 1e-12 && (j.b + 1.0).abs() < 1e-12);
/// // diffusers draws x̃_0 with std init_noise_sigma = 3; the scaled point has 3/√10.
/// assert!((e.initial_noise_scale() - 3.0 / 10f64.sqrt()).abs() < 1e-12);
/// ```
#[derive(Debug, Clone)]
pub struct EulerDiscrete {
    schedule: SigmaSchedule,
    prediction: Prediction,
}

impl EulerDiscrete {
    /// Euler for a VP model predicting `prediction` (ε, v or x0; not a flow velocity).
    pub fn new(schedule: SigmaSchedule, prediction: Prediction) -> Result<Self> {
        if prediction == Prediction::Velocity {
            return Err(Error::Config(
                "Euler in σ space needs an epsilon, v or sample prediction; use Euler for flow \
                 velocities"
                    .into(),
            ));
        }
        Ok(Self {
            schedule,
            prediction,
        })
    }

    /// The grid.
    pub fn schedule(&self) -> &SigmaSchedule {
        &self.schedule
    }
}

impl Solver for EulerDiscrete {
    fn steps(&self) -> usize {
        self.schedule.steps()
    }

    fn timestep(&self, i: usize) -> Timestep {
        self.schedule.timestep(i)
    }

    fn prediction(&self) -> Prediction {
        self.prediction
    }

    fn initial_noise_scale(&self) -> f64 {
        self.schedule.scale(0) * self.schedule.init_noise_sigma()
    }

    fn jump(&self, from: usize, to: usize) -> Jump {
        let (si, sj) = (self.schedule.sigma(from), self.schedule.sigma(to));
        let (ci, cj) = (self.schedule.scale(from), self.schedule.scale(to));
        let r = (sj - si) / si;
        match self.prediction {
            Prediction::Epsilon => Jump {
                a: cj / ci,
                b: cj * (sj - si),
            },
            Prediction::V => Jump {
                a: cj / ci * (1.0 + (sj - si) * si * ci * ci),
                b: cj * ci * (sj - si),
            },
            Prediction::Sample => Jump {
                a: cj / ci * (1.0 + r),
                b: -cj * r,
            },
            Prediction::Velocity => unreachable!("rejected by EulerDiscrete::new"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// diffusers' `EulerDiscreteScheduler.step` on numbers, in x̃ space.
    fn diffusers_step(p: Prediction, sample: f64, out: f64, s: f64, s_next: f64) -> f64 {
        let x0 = match p {
            Prediction::Epsilon => sample - s * out,
            Prediction::V => out * (-s / (s * s + 1.0).sqrt()) + sample / (s * s + 1.0),
            _ => out,
        };
        let derivative = (sample - x0) / s;
        sample + derivative * (s_next - s)
    }

    #[test]
    fn jumps_are_diffusers_steps_on_the_scaled_point() {
        let sigmas = vec![14.6, 5.0, 0.7, 0.03];
        let s = SigmaSchedule::new(sigmas.clone(), vec![999.0, 700.0, 300.0], 14.6).unwrap();
        for p in [Prediction::Epsilon, Prediction::V, Prediction::Sample] {
            let e = EulerDiscrete::new(s.clone(), p).unwrap();
            for (i, j) in [(0, 1), (1, 2), (2, 3), (0, 3)] {
                let (xt, out) = (2.3, -0.4);
                let want = diffusers_step(p, xt, out, sigmas[i], sigmas[j]);
                let jump = e.jump(i, j);
                let got = (jump.a * s.scale(i) * xt + jump.b * out) / s.scale(j);
                assert!(
                    (got - want).abs() < 1e-12,
                    "{p:?} {i}->{j}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn velocity_is_rejected() {
        let s = SigmaSchedule::new(vec![1.0, 0.0], vec![1.0], 1.0).unwrap();
        assert!(EulerDiscrete::new(s, Prediction::Velocity).is_err());
    }
}

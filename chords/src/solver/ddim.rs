//! DDIM (η = 0) on a VP schedule, for ε-, v- and x0-prediction.
//!
//! With `α = √ᾱ` and `s = √(1-ᾱ)` at the two endpoints, DDIM first recovers the clean
//! estimate `x̂_0` and the noise estimate `ε̂` from `(x_i, out_i)`, then re-noises:
//! `x_j = α_j·x̂_0 + s_j·ε̂`. Both estimates are linear in `(x_i, out_i)`, hence so is `x_j`:
//! * ε: `x̂_0 = (x - s_i·ε̂)/α_i` → `a = α_j/α_i`, `b = s_j - α_j·s_i/α_i`;
//! * x0: `ε̂ = (x - α_i·x̂_0)/s_i` → `a = s_j/s_i`, `b = α_j - s_j·α_i/s_i`;
//! * v: `x̂_0 = α_i·x - s_i·v`, `ε̂ = s_i·x + α_i·v` → `a = α_j·α_i + s_j·s_i`,
//!   `b = s_j·α_i - α_j·s_i`.
//!
//! `α_i, s_i` are those the step formula uses at `i` ([`VpSchedule::timestep`]); `α_j, s_j`
//! those of the point it lands on ([`VpSchedule::point`]), as in diffusers' `step`.

use super::{Jump, Prediction, Solver};
use crate::error::{Error, Result};
use crate::schedule::{Timestep, VpSchedule};

/// Deterministic DDIM on a VP schedule.
///
/// ```
/// use chords::{BetaSchedule, Ddim, Prediction, Solver, Spacing, VpSchedule};
/// let s = VpSchedule::new(50, BetaSchedule::LINEAR, Spacing::Trailing).unwrap();
/// let ddim = Ddim::new(s, Prediction::Epsilon).unwrap();
/// // The last jump lands on ᾱ = 1: x_T = x̂_0.
/// let j = ddim.jump(49, 50);
/// let t = ddim.timestep(49);
/// assert!((j.a - 1.0 / t.alpha).abs() < 1e-12);
/// ```
#[derive(Debug, Clone)]
pub struct Ddim {
    schedule: VpSchedule,
    prediction: Prediction,
}

impl Ddim {
    /// DDIM for a model that predicts `prediction` (ε, v or x0; not a flow velocity).
    pub fn new(schedule: VpSchedule, prediction: Prediction) -> Result<Self> {
        if prediction == Prediction::Velocity {
            return Err(Error::Config(
                "DDIM needs an epsilon, v or sample prediction; use Euler for flow velocities"
                    .into(),
            ));
        }
        Ok(Self {
            schedule,
            prediction,
        })
    }

    /// The schedule.
    pub fn schedule(&self) -> &VpSchedule {
        &self.schedule
    }
}

impl Solver for Ddim {
    fn steps(&self) -> usize {
        self.schedule.steps()
    }

    fn timestep(&self, i: usize) -> Timestep {
        self.schedule.timestep(i)
    }

    fn point(&self, i: usize) -> Timestep {
        self.schedule.point(i)
    }

    fn prediction(&self) -> Prediction {
        self.prediction
    }

    fn jump(&self, from: usize, to: usize) -> Jump {
        let (ai, si) = (
            self.schedule.timestep(from).alpha,
            self.schedule.timestep(from).sigma,
        );
        let (aj, sj) = (self.schedule.point(to).alpha, self.schedule.point(to).sigma);
        match self.prediction {
            Prediction::Epsilon => Jump {
                a: aj / ai,
                b: sj - aj * si / ai,
            },
            Prediction::Sample => Jump {
                a: sj / si,
                b: aj - sj * ai / si,
            },
            Prediction::V => Jump {
                a: aj * ai + sj * si,
                b: sj * ai - aj * si,
            },
            Prediction::Velocity => unreachable!("rejected by Ddim::new"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{BetaSchedule, Spacing};

    fn schedule() -> VpSchedule {
        VpSchedule::new(
            20,
            BetaSchedule::SCALED_LINEAR,
            Spacing::Leading { offset: 1 },
        )
        .unwrap()
    }

    /// The DDIM formula of DESIGN.md, evaluated directly on numbers.
    fn ddim_direct(ab_i: f64, ab_j: f64, x: f64, eps: f64) -> f64 {
        let x0 = (x - (1.0 - ab_i).sqrt() * eps) / ab_i.sqrt();
        ab_j.sqrt() * x0 + (1.0 - ab_j).sqrt() * eps
    }

    #[test]
    fn epsilon_coefficients_match_the_ddim_formula() {
        let s = schedule();
        let d = Ddim::new(s.clone(), Prediction::Epsilon).unwrap();
        for (i, j) in [(0, 1), (2, 9), (19, 20), (0, 20)] {
            let (x, eps) = (0.7, -1.3);
            let jump = d.jump(i, j);
            let want = ddim_direct(s.alpha_bar(i), s.alpha_bar(j), x, eps);
            assert!((jump.a * x + jump.b * eps - want).abs() < 1e-12, "{i}->{j}");
        }
    }

    #[test]
    fn v_and_sample_predictions_agree_with_epsilon_on_consistent_outputs() {
        // Build x from a known (x0, ε); each parameterisation's exact output must land on
        // the same x_j.
        let s = schedule();
        let (x0, eps) = (0.4, -0.9);
        for (i, j) in [(0, 5), (7, 8), (3, 20)] {
            let (ab_i, ab_j) = (s.alpha_bar(i), s.alpha_bar(j));
            let (ai, si) = (ab_i.sqrt(), (1.0 - ab_i).sqrt());
            let x = ai * x0 + si * eps;
            let want = ab_j.sqrt() * x0 + (1.0 - ab_j).sqrt() * eps;
            for (p, out) in [
                (Prediction::Epsilon, eps),
                (Prediction::Sample, x0),
                (Prediction::V, ai * eps - si * x0),
            ] {
                let jump = Ddim::new(s.clone(), p).unwrap().jump(i, j);
                assert!(
                    (jump.a * x + jump.b * out - want).abs() < 1e-12,
                    "{p:?} {i}->{j}"
                );
            }
        }
    }

    #[test]
    fn velocity_is_rejected() {
        assert!(Ddim::new(schedule(), Prediction::Velocity).is_err());
    }
}

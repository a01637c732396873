//! Euler for flow matching: `x_j = x_i + (σ_j - σ_i)·v(x_i, σ_i)`.

use super::{Jump, Prediction, Solver};
use crate::schedule::{FlowSchedule, Timestep};

/// The Euler solver on a rectified-flow grid; the model predicts the velocity.
///
/// ```
/// use chords::{Euler, FlowSchedule, Solver};
/// let euler = Euler::new(FlowSchedule::new(10, 1.0).unwrap());
/// let j = euler.jump(0, 5); // σ: 1 → 0.5
/// assert_eq!((j.a, j.b), (1.0, -0.5));
/// ```
#[derive(Debug, Clone)]
pub struct Euler {
    schedule: FlowSchedule,
}

impl Euler {
    /// Euler on the given grid.
    pub fn new(schedule: FlowSchedule) -> Self {
        Self { schedule }
    }

    /// The grid.
    pub fn schedule(&self) -> &FlowSchedule {
        &self.schedule
    }
}

impl Solver for Euler {
    fn steps(&self) -> usize {
        self.schedule.steps()
    }

    fn timestep(&self, i: usize) -> Timestep {
        self.schedule.timestep(i)
    }

    fn prediction(&self) -> Prediction {
        Prediction::Velocity
    }

    fn jump(&self, from: usize, to: usize) -> Jump {
        Jump {
            a: 1.0,
            b: self.schedule.sigma(to) - self.schedule.sigma(from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn euler_jump_is_the_sigma_difference() {
        let e = Euler::new(FlowSchedule::new(50, 3.0).unwrap());
        for (i, j) in [(0, 1), (3, 17), (40, 50), (7, 7)] {
            let s = |k: usize| {
                let u = 1.0 - k as f64 / 50.0;
                3.0 * u / (1.0 + 2.0 * u)
            };
            let jump = e.jump(i, j);
            assert_eq!(jump.a, 1.0);
            assert!((jump.b - (s(j) - s(i))).abs() < 1e-14, "{i}->{j}");
        }
    }
}

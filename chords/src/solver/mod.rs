//! One-step solvers as coefficient pairs.
//!
//! Every deterministic one-step map used by CHORDS is linear in the current point and the
//! model's output at it: jumping from grid index `i` to any index `j` is
//! `x_j = a·x_i + b·out_i` ([`Jump`]). The engine only ever asks a solver for these two
//! scalars; the arithmetic on latents is the backend's fused linear combination.

mod ddim;
mod euler;
mod euler_discrete;

pub use ddim::Ddim;
pub use euler::Euler;
pub use euler_discrete::EulerDiscrete;

use crate::schedule::Timestep;

/// What a model's output means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Prediction {
    /// Flow-matching velocity `v = ε - x_data`.
    Velocity,
    /// The noise ε (DDPM / Stable Diffusion 1.x).
    Epsilon,
    /// `v = alpha·ε - sigma·x_data` (Salimans & Ho; Stable Diffusion 2 768-v).
    V,
    /// The clean sample `x_data` itself.
    Sample,
}

/// The coefficients of one jump: `x_to = a·x_from + b·out_from`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jump {
    /// Coefficient of the current point.
    pub a: f64,
    /// Coefficient of the model output at the current point.
    pub b: f64,
}

/// A deterministic one-step solver on a fixed grid of T steps.
///
/// # Design
/// A solver takes *both* endpoints explicitly (`from`, `to`: any two grid indices with
/// `from ≤ to`) and is pure: no state, no randomness. That is what lets CHORDS make coarse
/// jumps (a new core's start, the preview) and rectifications with the same solver as the
/// ordinary steps.
///
/// # Panics
/// Grid indices are `0..=steps()`: the solvers here panic (an index out of bounds) when
/// [`timestep`](Self::timestep), [`point`](Self::point) or [`jump`](Self::jump) is given
/// one past the end. The samplers never do; a caller stepping a solver by hand keeps to
/// the grid.
pub trait Solver: Send + Sync + std::fmt::Debug {
    /// Number of steps T (the grid has indices `0..=T`).
    fn steps(&self) -> usize;
    /// The model input at grid index `i`.
    fn timestep(&self, i: usize) -> Timestep;
    /// The point at grid index `i` as `x_i = alpha·x_data + sigma·ε` (its `t` is the
    /// model input there). The same as [`timestep`](Self::timestep) except where a
    /// scheduler's step lands elsewhere than its next evaluation assumes (diffusers' DDIM
    /// when N_train/T is not whole).
    fn point(&self, i: usize) -> Timestep {
        self.timestep(i)
    }
    /// What the initial point is in units of unit Gaussian noise: `x_0 = scale·ε` (diffusers'
    /// `init_noise_sigma` in the units of the latent the model sees; 1 for most solvers).
    fn initial_noise_scale(&self) -> f64 {
        1.0
    }
    /// What the model must predict for this solver.
    fn prediction(&self) -> Prediction;
    /// Coefficients of the jump from index `from` to index `to`.
    fn jump(&self, from: usize, to: usize) -> Jump;
}

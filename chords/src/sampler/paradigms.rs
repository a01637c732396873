//! ParaDIGMS: sliding-window Picard iteration (Shih, Belkhale, Ermon, Sadigh, Anari,
//! "Parallel Sampling of Diffusion Models", NeurIPS 2023), as `BASELINES.md` specifies it.
//!
//! Every future grid point starts as a copy of the initial noise. Each round evaluates the
//! model at the `p` points of a window `[b, e)` at once and replaces the window by the
//! prefix sums of the drifts `d_j = Φ_j(X_j, out_j) − X_j` of its steps:
//! `X_{b+1+m} ← X_b + Σ_{j ≤ b+m} d_j`. The window then slides past every point that
//! changed by less than the tolerance, and at least by one point, because the first point
//! of a window is always exact; so a run takes at most T rounds, and with τ = 0 it returns
//! the sequential solve up to summation order.
//!
//! # Choices made here
//! * **Error scale.** The change of point k is its mean squared change divided by σ²(k),
//!   the variance of the posterior `q(x_{k+1} | x_k, x_data)` of the step that starts at k,
//!   computed from the solver's `x = alpha·x_data + sigma·ε` coefficients
//!   ([`Timestep`](crate::Timestep)):
//!   `σ²(k) = (s_k² − (α_k/α_{k+1})²·s_{k+1}²) · s_{k+1}²/s_k²`. For VP schedules
//!   (α² + s² = 1, ᾱ = α²) this *is* DDPM's posterior variance
//!   `(1−ᾱ_{k+1})/(1−ᾱ_k)·(1 − ᾱ_k/ᾱ_{k+1})` that ParaDIGMS uses. For flow grids
//!   (α = 1−σ, s = σ) it is the same formula for the flow's own forward process; it equals
//!   DDPM's variance at the VP-equivalent `ᾱ = (1−σ)²/((1−σ)²+σ²)`, scaled by the size
//!   `(1−σ_{k+1})² + σ_{k+1}²` of `x_{k+1}`, so errors and variances share the latent's units.
//!   The solver's [`Prediction`](crate::Prediction) does not enter. As in the reference
//!   implementation, variances are clamped to at least 1e-20 (a step into a noise-free
//!   point has σ² = 0), and the last point (k = T) never passes; the window rule accepts it.
//! * **Placement.** Point j lives on core `j mod p`; a window holds p consecutive points, so
//!   its calls go to distinct cores. The prefix sum is a chain of one 3-term
//!   [`Backend::lincomb`] per point (`Y_m = Y_{m−1} + (a−1)·X_j + b·out_j`), each computed
//!   on the core of its step and transferred to the next. The first point of a window is
//!   `Φ_b(X_b, out_b)` itself, the sequential solver's own operation, so p = 1 reproduces
//!   [`Sequential`](crate::Sequential) bit for bit.
//! * **Read-back.** The error test is a reduction: for each point that can still move the
//!   window, `Y − X` is one lincomb and is then downloaded, so a GPU backend pays one
//!   read-back per checked point per round. Checks stop at the first failing point.
//! * **Not supported:** stochastic (DDPM) sampling and batches of samples (a latent is one
//!   sample); the [`Solver`]s here are deterministic.
//! * Because [`Paradigms::new`] has no backend, round 1 hands every core the same `x0`
//!   handle, which lives on core 0 (a CPU backend shares memory between cores; on a
//!   multi-device backend round 1's calls run where `x0` lives). All later requests are on
//!   their own core, and every lincomb input is transferred to the computing core first.

use std::sync::Arc;

use super::{Event, Output, Request, Sampler, jump, reserved};
use crate::backend::{Backend, Term};
use crate::error::{Error, Result};
use crate::solver::Solver;

/// The smallest σ²(k) the error test divides by (the reference implementation's clamp).
pub const MIN_VARIANCE: f64 = 1e-20;

/// `latent` made available on `core` (free when it is already there).
pub(super) fn on_core<B: Backend>(
    backend: &B,
    latent: &B::Latent,
    core: usize,
) -> Result<B::Latent> {
    backend
        .transfer(latent, core)
        .map_err(|source| Error::Backend { core, source })
}

/// One fused linear combination on `core`, with the error attributed to it.
pub(super) fn combine<B: Backend>(
    backend: &B,
    core: usize,
    terms: &[Term<'_, B::Latent>],
) -> Result<B::Latent> {
    backend
        .lincomb(core, terms)
        .map_err(|source| Error::Backend { core, source })
}

/// The mean over elements of `f(a − b)`: `a − b` is one lincomb on `core` (where `a`
/// lives), then read back to the host, a reduction a GPU backend pays a download for.
pub(super) fn mean_diff<B: Backend>(
    backend: &B,
    core: usize,
    a: &B::Latent,
    b: &B::Latent,
    f: fn(f64) -> f64,
) -> Result<f64> {
    let b = on_core(backend, b, core)?;
    let diff = combine(backend, core, &[(1.0, a), (-1.0, &b)])?;
    let host = backend
        .download(&diff)
        .map_err(|source| Error::Backend { core, source })?;
    Ok(host.iter().map(|v| f(f64::from(*v))).sum::<f64>() / host.len().max(1) as f64)
}

/// Checks a sampler's core count and tolerance; returns the solver's steps T ≥ 1.
pub(super) fn validate(solver: &dyn Solver, cores: usize, tolerance: f64) -> Result<usize> {
    if cores == 0 {
        return Err(Error::Config("at least one core is needed".into()));
    }
    if tolerance.is_nan() || tolerance < 0.0 {
        return Err(Error::Config(format!(
            "tolerance must be a number ≥ 0, got {tolerance}"
        )));
    }
    match solver.steps() {
        0 => Err(Error::Config("the solver has no steps".into())),
        steps => Ok(steps),
    }
}

/// σ²(k), the scale of point k's error in ParaDIGMS: the variance of the posterior
/// `q(x_{k+1} | x_k, x_data)` of the step that starts at k, for the solver's own
/// `x = alpha·x_data + sigma·ε`: `(s_k² − (α_k/α_{k+1})²·s_{k+1}²)·s_{k+1}²/s_k²`.
/// On VP grids this is DDPM's `(1−ᾱ_{k+1})/(1−ᾱ_k)·(1 − ᾱ_k/ᾱ_{k+1})`; on flow grids
/// (α = 1−σ, s = σ) it is the flow's analogue in the latent's units. Clamped to
/// [`MIN_VARIANCE`]; 0 at k = T (the last point never passes the test).
pub fn step_variance(solver: &dyn Solver, k: usize) -> f64 {
    if k >= solver.steps() {
        return 0.0;
    }
    let (now, next) = (solver.timestep(k), solver.timestep(k + 1));
    let (s2, s2_next) = (now.sigma * now.sigma, next.sigma * next.sigma);
    let ratio = now.alpha / next.alpha;
    let variance = (s2 - ratio * ratio * s2_next) * s2_next / s2;
    // `f64::max` drops a NaN (0/0 at a degenerate grid point): the clamp applies.
    variance.max(MIN_VARIANCE)
}

/// The ParaDIGMS sampler: a window of `p` Picard iterates sliding along the grid.
///
/// `p` = the number of cores, clamped to T; a point fails when its mean squared change
/// exceeds `τ²·σ²(k)` ([`step_variance`]). The run returns one output (`Event::Hit` with
/// `position: 1`, on the core owning grid index T) after at most T rounds. Run it with
/// [`RunOptions::threads`](crate::RunOptions) = `p` to evaluate a window in parallel
/// ([`run`](crate::run) sizes its default worker pool by [`Sampler::max_hits`], which is 1).
///
/// ```
/// use std::sync::Arc;
/// use chords::{Backend, CpuBackend, Euler, FlowSchedule, GaussianMixture, Paradigms, Prediction,
///              RunOptions, StopRule, run};
/// let solver = Arc::new(Euler::new(FlowSchedule::new(10, 1.0).unwrap()));
/// let model = GaussianMixture::new(vec![0.5, -0.5], vec![2, 1], 0.1, Prediction::Velocity).unwrap();
/// let x0 = CpuBackend.upload(0, &[0.3]).unwrap();
/// let mut sampler = Paradigms::new(solver, 4, 0.1, x0).unwrap();
/// let options = RunOptions::default().with_threads(1).with_stop(StopRule::All);
/// let summary = run(&mut sampler, &CpuBackend, &model, &options, &mut |_| {}).unwrap();
/// assert!(summary.rounds <= 10);
/// ```
#[derive(Debug)]
pub struct Paradigms<B: Backend> {
    solver: Arc<dyn Solver>,
    window: usize,
    tolerance: f64,
    /// σ²(k) for k in 0..=T.
    variances: Vec<f64>,
    /// `X[0..=T]`; `X[j]` lives on core `j mod window` (except `x0` before round 1).
    points: Vec<B::Latent>,
    /// Window `[begin, end)`: `X[begin]` is exact.
    begin: usize,
    end: usize,
    round: usize,
}

impl<B: Backend> Paradigms<B> {
    /// A run with a window of `cores` points (clamped to T) and tolerance `tolerance`
    /// (ParaDIGMS' default is 0.1), from `x0` on core 0.
    ///
    /// # Errors
    /// [`Error::Config`] when `cores` is 0, `tolerance` is negative or NaN, the solver
    /// has no steps, or so many steps that [`latent_bound`](Self::latent_bound) overflows
    /// or the T + 1 points and variances cannot be allocated.
    pub fn new(
        solver: Arc<dyn Solver>,
        cores: usize,
        tolerance: f64,
        x0: B::Latent,
    ) -> Result<Self> {
        let steps = validate(solver.as_ref(), cores, tolerance)?;
        if Self::latent_bound(steps, cores) == usize::MAX {
            return Err(Error::Config(format!(
                "ParaDIGMS over {steps} steps: the bound T + 2·min(K, T) + 4 on live latents \
                 overflows"
            )));
        }
        let window = cores.min(steps);
        // T + 1 entries each (the bound counts the T + 1 points).
        let mut variances = reserved(steps + 1, "ParaDIGMS step variances")?;
        variances.extend((0..=steps).map(|k| step_variance(solver.as_ref(), k)));
        let mut points = reserved(steps + 1, "ParaDIGMS grid points")?;
        points.resize(steps + 1, x0);
        Ok(Self {
            solver,
            window,
            tolerance,
            variances,
            points,
            begin: 0,
            end: window,
            round: 0,
        })
    }

    /// [`Sampler::max_live_latents`] of a ParaDIGMS run over `steps` steps with `cores`
    /// cores: `T + 2·p + 4` with the window `p = min(K, T)` (`usize::MAX` if that
    /// overflows).
    ///
    /// The sampler keeps every grid point it has reached, `X[0..=e]` for the window's end
    /// e ≤ T (later points share `x0`). A round adds the window's p model outputs and its
    /// p new points, while the run's requests keep the old ones alive, plus 4 transients
    /// for the point being made (two transferred inputs, the sum and its transfer).
    ///
    /// ```
    /// # use chords::{CpuBackend, Paradigms};
    /// assert_eq!(Paradigms::<CpuBackend>::latent_bound(50, 8), 70);
    /// ```
    pub fn latent_bound(steps: usize, cores: usize) -> usize {
        cores
            .min(steps)
            .checked_mul(2)
            .and_then(|n| n.checked_add(steps))
            .and_then(|n| n.checked_add(4))
            .unwrap_or(usize::MAX)
    }

    /// The window size p.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The tolerance τ.
    pub fn tolerance(&self) -> f64 {
        self.tolerance
    }

    /// σ²(k) that scales point k's error, for k in 0..=T (0 at T).
    pub fn variances(&self) -> &[f64] {
        &self.variances
    }

    /// The start of the current window: every point up to it is final (T when done).
    pub fn exact_prefix(&self) -> usize {
        self.begin
    }

    fn owner(&self, j: usize) -> usize {
        j % self.window
    }

    /// Whether the window's new point `k`, `y`, fails the test against its old value.
    fn fails(&self, backend: &B, k: usize, y: &B::Latent) -> Result<bool> {
        if k >= self.solver.steps() {
            return Ok(true);
        }
        let mse = mean_diff(backend, self.owner(k), y, &self.points[k], |d| d * d)?;
        let ratio = mse / self.variances[k];
        Ok(ratio.is_nan() || ratio > self.tolerance * self.tolerance)
    }
}

impl<B: Backend> Sampler<B> for Paradigms<B> {
    fn name(&self) -> &'static str {
        "paradigms"
    }

    fn steps(&self) -> usize {
        self.solver.steps()
    }

    fn max_hits(&self) -> usize {
        1
    }

    fn cores(&self) -> usize {
        self.window
    }

    /// `T + 2·min(K, T) + 4` ([`Paradigms::latent_bound`]).
    fn max_live_latents(&self) -> usize {
        Self::latent_bound(self.solver.steps(), self.window)
    }

    fn rounds(&self) -> usize {
        self.round
    }

    fn requests(&self) -> Vec<Request<B::Latent>> {
        if self.begin >= self.solver.steps() {
            return Vec::new();
        }
        (self.begin..self.end)
            .map(|j| Request {
                core: self.owner(j),
                index: j,
                timestep: self.solver.timestep(j),
                latent: self.points[j].clone(),
            })
            .collect()
    }

    fn advance(
        &mut self,
        backend: &B,
        outputs: Vec<B::Latent>,
        events: &mut dyn FnMut(Event<B::Latent>),
    ) -> Result<()> {
        let (b, e, p, steps) = (self.begin, self.end, self.window, self.solver.steps());
        if b >= steps || outputs.len() != e - b {
            return Err(Error::Internal(format!(
                "paradigms round got {} outputs for window {b}..{e} of {steps}",
                outputs.len()
            )));
        }
        self.round += 1;
        let round = self.round;

        // The window's new points Y_m = X[b+1+m], each moved to the core that owns it.
        let mut new: Vec<B::Latent> = Vec::with_capacity(e - b);
        for (m, out) in outputs.iter().enumerate() {
            let (j, c) = (b + m, self.owner(b + m));
            let (x, out) = (
                on_core(backend, &self.points[j], c)?,
                on_core(backend, out, c)?,
            );
            let y = match new.last() {
                None => jump(backend, self.solver.as_ref(), c, &x, &out, j, j + 1)?,
                Some(prev) => {
                    let step = self.solver.jump(j, j + 1);
                    let drift_x = (step.a - 1.0) as f32;
                    if drift_x == 0.0 {
                        combine(backend, c, &[(1.0, prev), (step.b as f32, &out)])?
                    } else {
                        combine(
                            backend,
                            c,
                            &[(1.0, prev), (drift_x, &x), (step.b as f32, &out)],
                        )?
                    }
                }
            };
            new.push(on_core(backend, &y, self.owner(j + 1))?);
        }

        // The first failing point; only points that can still move the window are tested.
        let mut first = new.len();
        for (m, y) in new.iter().enumerate().take(p - 1) {
            if self.fails(backend, b + 1 + m, y)? {
                first = m;
                break;
            }
        }

        // Write the window back, slide it, and fill the new slots from the newest end point.
        for (m, y) in new.into_iter().enumerate() {
            self.points[b + 1 + m] = y;
        }
        let next_begin = (b + (first + 1).min(p)).min(e);
        let next_end = (next_begin + p).min(steps);
        for k in e + 1..=next_end {
            self.points[k] = on_core(backend, &self.points[e], self.owner(k))?;
        }
        (self.begin, self.end) = (next_begin, next_end);
        for k in b + 1..=next_end {
            events(Event::CoreUpdated {
                round,
                core: self.owner(k),
                index: k,
                latent: self.points[k].clone(),
            });
        }
        if next_begin >= steps {
            events(Event::Hit(Output {
                position: 1,
                core: self.owner(steps),
                round,
                speedup: steps as f64 / round as f64,
                latent: self.points[steps].clone(),
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BetaSchedule, Ddim, Euler, FlowSchedule, Prediction, Spacing, VpSchedule};

    #[test]
    fn vp_variance_is_the_ddpm_posterior_variance() {
        let vp = VpSchedule::new(
            20,
            BetaSchedule::SCALED_LINEAR,
            Spacing::Leading { offset: 1 },
        )
        .unwrap();
        let ddim = Ddim::new(vp.clone(), Prediction::Epsilon).unwrap();
        for k in 0..19 {
            let (a, a1) = (vp.alpha_bar(k), vp.alpha_bar(k + 1));
            let ddpm = (1.0 - a1) / (1.0 - a) * (1.0 - a / a1);
            let got = step_variance(&ddim, k);
            assert!(
                (got - ddpm).abs() <= 1e-12 * ddpm.max(1e-12),
                "{k}: {got} vs {ddpm}"
            );
        }
        // ᾱ(T) = 1: the last step goes to a noise-free point.
        assert_eq!(step_variance(&ddim, 19), MIN_VARIANCE);
        assert_eq!(step_variance(&ddim, 20), 0.0);
    }

    #[test]
    fn flow_variance_on_a_four_step_grid() {
        // σ = 1, 3/4, 1/2, 1/4, 0. k = 1: (9/16 − (1/2)²·1/4)·(1/4)/(9/16) = 2/9;
        // k = 2: (1/4 − (2/3)²·1/16)·(1/16)/(1/4) = 1/18; k = 3 steps to σ = 0.
        let euler = Euler::new(FlowSchedule::new(4, 1.0).unwrap());
        let v: Vec<f64> = (0..=4).map(|k| step_variance(&euler, k)).collect();
        assert!((v[0] - 0.5625).abs() < 1e-15);
        assert!((v[1] - 2.0 / 9.0).abs() < 1e-15);
        assert!((v[2] - 1.0 / 18.0).abs() < 1e-15);
        assert_eq!((v[3], v[4]), (MIN_VARIANCE, 0.0));
    }

    #[test]
    fn bad_parameters_are_config_errors() {
        let solver: Arc<dyn Solver> = Arc::new(Euler::new(FlowSchedule::new(4, 1.0).unwrap()));
        let x0 = crate::CpuLatent::from(vec![0.0]);
        for (cores, tol) in [(0, 0.1), (2, -1.0), (2, f64::NAN)] {
            let r = Paradigms::<crate::CpuBackend>::new(solver.clone(), cores, tol, x0.clone());
            assert!(matches!(r, Err(Error::Config(_))), "{cores} {tol}");
        }
    }
}

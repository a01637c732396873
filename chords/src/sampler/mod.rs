//! Samplers as pure state machines, and the events they stream.
//!
//! A [`Sampler`] knows nothing of threads, devices or files. Each round it hands out
//! [`Request`]s ("evaluate the model at this core's point"), an executor runs them (in
//! parallel: that is the point), and [`Sampler::advance`] takes the outputs back, does the
//! round's linear algebra on the [`Backend`], and reports what happened as [`Event`]s.
//! [`run`](crate::run) is the standard executor loop.

mod chords;
mod paradigms;
mod sequential;
mod srds;

pub use chords::Chords;
pub use paradigms::{MIN_VARIANCE, Paradigms, step_variance};
pub use sequential::Sequential;
pub use srds::Srds;

use crate::backend::Backend;
use crate::error::Result;
use crate::schedule::Timestep;
use crate::solver::Solver;

/// One model evaluation a sampler needs this round.
#[derive(Debug, Clone)]
pub struct Request<L> {
    /// The core making the call; `latent` lives there.
    pub core: usize,
    /// Grid index of the point.
    pub index: usize,
    /// The model's time input at that index.
    pub timestep: Timestep,
    /// The point to evaluate.
    pub latent: L,
}

/// A streamed output: the preview or a core's hit.
#[derive(Debug, Clone)]
pub struct Output<L> {
    /// Position in the stream: 0 is the preview, hits count from 1 in arrival order.
    pub position: usize,
    /// The core that produced it.
    pub core: usize,
    /// The round after which it exists.
    pub round: usize,
    /// `T / round`.
    pub speedup: f64,
    /// The output latent (lives on `core`).
    pub latent: L,
}

/// What happened during a run, in order. Latents are cheap handles.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event<L> {
    /// A round is about to evaluate these `(core, grid index)` points.
    RoundStarted {
        /// 1-based round number.
        round: usize,
        /// The points, slowest core first.
        evaluations: Vec<(usize, usize)>,
    },
    /// A new core starts at `index`; it evaluates from the next round on.
    Spawned {
        /// The round that spawned it.
        round: usize,
        /// The new core.
        core: usize,
        /// Its starting grid index.
        index: usize,
    },
    /// A slower core corrected this core's point at `index`.
    Rectified {
        /// The round.
        round: usize,
        /// The corrected core.
        core: usize,
        /// The grid index of the corrected point.
        index: usize,
    },
    /// A core's next point after this round (for live views).
    CoreUpdated {
        /// The round.
        round: usize,
        /// The core.
        core: usize,
        /// Grid index of its next point (T when it has just finished).
        index: usize,
        /// The point.
        latent: L,
    },
    /// A core's estimate of the final output after this round: the one jump to the end of
    /// the grid from the point it evaluated this round (for a flow model `x - σ·v`, for a
    /// VP model DDIM's `x̂₀`). Sent only when asked for
    /// ([`RunOptions::with_estimates`](crate::RunOptions::with_estimates)): one linear
    /// combination per evaluating core per round.
    Estimate {
        /// The round.
        round: usize,
        /// The core.
        core: usize,
        /// Grid index of the point it evaluated.
        index: usize,
        /// The estimate (lives on `core`).
        latent: L,
    },
    /// A one-jump guess of the final output, after the fastest core's first evaluation.
    Preview(Output<L>),
    /// A core reached the end of the grid: a finished output.
    Hit(Output<L>),
    /// A core's model call failed and the core left the run; the slower core next to it
    /// now rectifies the faster one. Costs speed, never the final output.
    CoreRetired {
        /// The round.
        round: usize,
        /// The retired core.
        core: usize,
        /// The grid index it was evaluating.
        index: usize,
        /// What went wrong.
        reason: String,
    },
    /// A core that cannot be retired (core 0, the exact solver) failed; the backend moved it
    /// to another device, its state followed, and its call was made again there.
    CoreMoved {
        /// The round.
        round: usize,
        /// The moved core.
        core: usize,
        /// What went wrong on the old device.
        reason: String,
    },
    /// A round is done.
    RoundFinished {
        /// The round.
        round: usize,
        /// Model calls made this round.
        model_calls: usize,
    },
}

/// A sampler that runs as a sequence of rounds of parallel model calls.
pub trait Sampler<B: Backend> {
    /// A short name for reports (`"chords"`, `"sequential"`).
    fn name(&self) -> &'static str;
    /// Steps T of the grid.
    fn steps(&self) -> usize;
    /// How many outputs the stream can hold, preview excluded.
    fn max_hits(&self) -> usize;
    /// The most model calls a round makes (the cores in use); [`run`](crate::run) starts one
    /// worker thread per core by default.
    fn cores(&self) -> usize {
        self.max_hits()
    }
    /// Rounds completed so far.
    fn rounds(&self) -> usize;
    /// The most latents (each of the latent's size) the sampler holds alive at once during a
    /// [`run`](crate::run), known before any work: its state, the transient results of a
    /// round's linear algebra, the model outputs of a round in flight (held by the run's
    /// workers until [`advance`](Self::advance) takes them) and the outputs it has streamed
    /// while their events are delivered. Latents the caller keeps (clones of event latents,
    /// a copy of `x0`) are not counted, nor are the extra copies made while a failed core is
    /// moved to another device ([`Event::CoreMoved`], which a one-device backend never does).
    ///
    /// A closed formula in the steps T and the cores K (or blocks B), stated on each
    /// sampler's implementation and computable without a sampler by its `latent_bound`
    /// associated function; a latent of `n` f32 values costs `4·n` bytes, so a caller can
    /// check a memory budget before allocating anything. Every transfer counts as a new
    /// latent (as on a backend with one device per core), so a backend whose transfers
    /// between cores of one device are free holds fewer.
    fn max_live_latents(&self) -> usize;
    /// The model calls of the next round; empty once the sampler has finished.
    fn requests(&self) -> Vec<Request<B::Latent>>;
    /// Takes the outputs of [`requests`](Self::requests) (same order) and completes the round.
    fn advance(
        &mut self,
        backend: &B,
        outputs: Vec<B::Latent>,
        events: &mut dyn FnMut(Event<B::Latent>),
    ) -> Result<()>;
    /// Takes `core` out of the run after its model call failed this round (its request is
    /// dropped from the round's outputs). Returns `false`, changing nothing, when the
    /// sampler cannot go on without it; the default never retires.
    fn retire(&mut self, core: usize) -> bool {
        let _ = core;
        false
    }
    /// Moves every latent `core` holds onto the core's device after the backend
    /// [relocated](Backend::relocate) it. Returns `false` when the sampler cannot (the
    /// default), which ends the run with the original failure.
    fn rehome(&mut self, backend: &B, core: usize) -> Result<bool> {
        let _ = (backend, core);
        Ok(false)
    }
    /// Replaces `core`'s state, lost with its device, by its current point `latent` (already
    /// on the core's new device), as uploaded from a host copy. Returns `false` when the
    /// sampler cannot go on from that alone (the default).
    fn restore(&mut self, core: usize, latent: B::Latent) -> bool {
        let _ = (core, latent);
        false
    }
    /// Asks for [`Event::Estimate`] after every round (`on`) or for none (the default).
    /// Returns whether the sampler gives them; one that does not (the default) ignores it.
    fn stream_estimates(&mut self, on: bool) -> bool {
        let _ = on;
        false
    }
    /// Whether every output has been produced.
    fn is_finished(&self) -> bool {
        self.requests().is_empty()
    }
}

/// An empty vector with room for `len` entries, or [`Error::Config`](crate::Error::Config)
/// naming `what` when that much cannot be allocated (instead of aborting the process).
pub(crate) fn reserved<T>(len: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|e| {
        crate::Error::Config(format!("cannot allocate {what} ({len} entries): {e}"))
    })?;
    Ok(v)
}

/// `jump(x, out, from → to)` on `core`: the one place solver coefficients meet latents.
pub(crate) fn jump<B: Backend>(
    backend: &B,
    solver: &dyn Solver,
    core: usize,
    x: &B::Latent,
    out: &B::Latent,
    from: usize,
    to: usize,
) -> Result<B::Latent> {
    let j = solver.jump(from, to);
    backend
        .lincomb(core, &[(j.a as f32, x), (j.b as f32, out)])
        .map_err(|source| crate::Error::Backend { core, source })
}

//! SRDS: Parareal over the sampling trajectory (Selvam, Merchant, Ermon, "Self-Refining
//! Diffusion Samplers", NeurIPS 2024), pipelined, as `BASELINES.md` specifies it.
//!
//! The T steps are split into B blocks. A coarse solver `G_i` jumps from block i's first
//! grid index straight to block i+1's (one model call), the fine solver `F_i` takes the
//! block's ordinary steps. After a coarse sweep `W⁰`, iteration q ≥ 1 refines every block
//! boundary: `W^q[i+1] = F_i(W^{q−1}[i]) + G_i(W^q[i]) − G_i(W^{q−1}[i])`. After q
//! iterations the first q boundaries are exact; after B the output is the sequential solve.
//! A run stops after the first iteration q with `mean |W^q[B] − W^{q−1}[B]| < τ`, or at B.
//!
//! # Choices made here
//! * **Blocks.** `B = min(blocks, T)` (by default the number of cores K), boundaries
//!   `s_i = ⌊i·T/B⌋`, so block sizes differ by at most one.
//! * **Shared calls.** `G_i(W^q[i])` and the first fine step of `F_i(W^q[i])` evaluate the
//!   model at the same point: one call serves both. The boundary `W^q[0] = x0` never
//!   changes, so block 0 is evaluated from it once.
//! * **Exact blocks.** Boundary q is final after iteration q (it is `F_{q−1}` of a final
//!   point), so `W^q[q] = F_{q−1}(W^{q−1}[q−1])` skips the correction (its two coarse
//!   terms are the same point) and no block is fine-solved again from a final boundary:
//!   block i is fine-solved from `W⁰[i], …, W^i[i]` only. The fine steps are the sequential
//!   solver's own operations, so the B-th iterate is [`Sequential`](crate::Sequential)'s
//!   output bit for bit on the CPU backend.
//! * **Pipeline.** A fine solve starts as soon as its boundary exists, not after the whole
//!   sweep. With unlimited calls per round, `W^q[i]` exists after round
//!   `R(q, i) = q·M + i − q` (i ≥ q, equal blocks of M steps), so iteration k's output is
//!   ready at round `k·M + B − k` ([`Srds::boundary_round`] reports the rounds).
//! * **Scheduler.** Each round runs at most K ready calls, greedily by
//!   (iteration, block, step): a shared coarse/first-fine call at `W^q[i]` counts as
//!   iteration q (it feeds `W^q[i+1]`), a later fine step of `F_i(W^q[i])` as iteration q+1.
//!   A call keeps the core its input lives on when that core is free this round, else it
//!   takes the lowest free core (one [`Backend::transfer`]); its outputs stay there.
//!   Corrections run on the core holding the fine result (`S + G_new − G_old`, one lincomb).
//! * **Read-back.** The convergence test downloads `W^q[B] − W^{q−1}[B]` once per iteration.
//! * Work already started for later iterations is dropped when an iteration converges.
//! * **Memory.** At most `2·B + min(K, B) + 4` latents are alive at once
//!   ([`Srds::latent_bound_with_blocks`]); the per-iteration tables get a row of B entries
//!   when an iteration starts (at most one per round), not B×B up front.

use std::sync::Arc;

use super::paradigms::{combine, mean_diff, on_core, validate};
use super::{Event, Output, Request, Sampler, jump, reserved};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::solver::Solver;

/// A latent and the core it lives on.
#[derive(Debug, Clone)]
struct Placed<L> {
    core: usize,
    x: L,
}

/// The fine solve of block i from the boundary value `W^q[i]`.
#[derive(Debug)]
enum Fine<L> {
    /// Not started (its boundary value does not exist yet), or its result has been used.
    Idle,
    /// Step j (grid index `s_i + j`) is ready for a call at this point.
    Ready(usize, Placed<L>),
    /// A call is in flight.
    Running,
    /// Finished, `F_i(W^q[i])`, until its correction uses it.
    Done(Placed<L>),
}

/// A model call of the current round: step `j` of fine solve (q, i) on `core`.
#[derive(Debug, Clone)]
struct Call<L> {
    q: usize,
    i: usize,
    j: usize,
    core: usize,
    x: L,
}

/// The pipelined SRDS sampler (Parareal with B blocks, at most K model calls per round).
///
/// Block i is fine-solved only from `W⁰[i], …, W^i[i]` (later boundaries are final), the
/// call at a boundary serves both `G_i` and the first fine step, and each round runs at
/// most K ready calls chosen greedily by (iteration, block, step). Returns one output
/// (`Event::Hit`, `position: 1`, on the core holding it). Run it with
/// [`RunOptions::threads`](crate::RunOptions) = K to evaluate a round in parallel.
///
/// ```
/// use std::sync::Arc;
/// use chords::{Backend, CpuBackend, Euler, FlowSchedule, GaussianMixture, Prediction,
///              RunOptions, Srds, StopRule, run};
/// let solver = Arc::new(Euler::new(FlowSchedule::new(16, 1.0).unwrap()));
/// let model = GaussianMixture::new(vec![0.5, -0.5], vec![2, 1], 0.1, Prediction::Velocity).unwrap();
/// let x0 = CpuBackend.upload(0, &[0.3]).unwrap();
/// // 4 blocks of 4 steps, enough cores for the unconstrained pipeline, τ = 0 (B iterations).
/// let mut sampler = Srds::with_blocks(solver, 4, 16, 0.0, x0).unwrap();
/// let options = RunOptions::default().with_threads(1).with_stop(StopRule::All);
/// let summary = run(&mut sampler, &CpuBackend, &model, &options, &mut |_| {}).unwrap();
/// assert_eq!(summary.rounds, 16); // k·M + B − k at k = B
/// assert_eq!(sampler.boundary_round(1, 4), Some(7)); // iteration 1's output: M + B − 1
/// ```
#[derive(Debug)]
pub struct Srds<B: Backend> {
    solver: Arc<dyn Solver>,
    cores: usize,
    tolerance: f64,
    /// Block boundaries `s_0 = 0 < … < s_B = T`.
    starts: Vec<usize>,
    /// `fine[q][i]`, for q ≤ i < B. Rows are added as iterations start (see `made`).
    fine: Vec<Vec<Fine<B::Latent>>>,
    /// `coarse[q][i] = G_i(W^q[i])`, for q ≤ i < B, while still needed; rows as `fine`.
    coarse: Vec<Vec<Option<Placed<B::Latent>>>>,
    /// `made[q][i]`: the round after which `W^q[i]` existed, for q ≤ i ≤ B. Row q exists
    /// once `W^q[q]` does (row 0 from the start); a missing row is all `None`/`Idle`, so
    /// the bookkeeping grows by one row of B entries per iteration reached instead of being
    /// allocated as B×B tables up front.
    made: Vec<Vec<Option<usize>>>,
    /// `W^q[B]`, the output candidate of iteration q, until compared.
    outputs: Vec<Option<Placed<B::Latent>>>,
    /// Iterations compared so far (iteration 0 is the coarse sweep).
    checked: usize,
    pending: Vec<Call<B::Latent>>,
    round: usize,
    done: bool,
}

impl<B: Backend> Srds<B> {
    /// SRDS with B = `cores` blocks (clamped to T) and at most `cores` calls per round.
    ///
    /// # Errors
    /// [`Error::Config`] when `cores` is 0, `tolerance` is negative or NaN, the solver
    /// has no steps, or the bound on live latents overflows (see
    /// [`with_blocks`](Self::with_blocks)).
    pub fn new(
        solver: Arc<dyn Solver>,
        cores: usize,
        tolerance: f64,
        x0: B::Latent,
    ) -> Result<Self> {
        Self::with_blocks(solver, cores, cores, tolerance, x0)
    }

    /// SRDS with `blocks` blocks (clamped to T; the paper uses √T) and at most `cores`
    /// model calls per round, stopping when `mean |W^q[B] − W^{q−1}[B]| < tolerance`.
    ///
    /// # Errors
    /// [`Error::Config`] when `blocks` or `cores` is 0, `tolerance` is negative or NaN, the
    /// solver has no steps, or B is so large that
    /// [`latent_bound_with_blocks`](Self::latent_bound_with_blocks) overflows or the O(B)
    /// bookkeeping cannot be allocated. Nothing proportional to B² or K is allocated.
    pub fn with_blocks(
        solver: Arc<dyn Solver>,
        blocks: usize,
        cores: usize,
        tolerance: f64,
        x0: B::Latent,
    ) -> Result<Self> {
        let steps = validate(solver.as_ref(), cores, tolerance)?;
        if blocks == 0 {
            return Err(Error::Config("at least one block is needed".into()));
        }
        if Self::latent_bound_with_blocks(steps, blocks, cores) == usize::MAX {
            return Err(Error::Config(format!(
                "SRDS with {blocks} blocks over {steps} steps: the bound 2·B + min(K, B) + 4 on \
                 live latents overflows"
            )));
        }
        let b = blocks.min(steps);
        let mut starts = reserved(b + 1, "SRDS block boundaries")?;
        // i·T/B in u128: i·T can overflow usize when T is huge.
        starts.extend((0..=b).map(|i| (i as u128 * steps as u128 / b as u128) as usize));
        let mut outputs = reserved(b + 1, "SRDS iteration outputs")?;
        outputs.resize(b + 1, None);
        let mut sampler = Self {
            solver,
            cores,
            tolerance,
            starts,
            fine: Vec::new(),
            coarse: Vec::new(),
            made: Vec::new(),
            outputs,
            checked: 0,
            pending: vec![Call {
                q: 0,
                i: 0,
                j: 0,
                core: 0,
                x: x0,
            }],
            round: 0,
            done: false,
        };
        sampler.ensure_row(0)?;
        sampler.fine[0][0] = Fine::Running;
        sampler.made[0][0] = Some(0);
        Ok(sampler)
    }

    /// [`Sampler::max_live_latents`] of [`Srds::new`] (B = K blocks):
    /// [`latent_bound_with_blocks`](Self::latent_bound_with_blocks)`(steps, cores, cores)`,
    /// `3·min(K, T) + 4`.
    ///
    /// ```
    /// # use chords::{CpuBackend, Srds};
    /// assert_eq!(Srds::<CpuBackend>::latent_bound(50, 8), 28);
    /// ```
    pub fn latent_bound(steps: usize, cores: usize) -> usize {
        Self::latent_bound_with_blocks(steps, cores, cores)
    }

    /// [`Sampler::max_live_latents`] of [`Srds::with_blocks`]: `2·B + min(K, B) + 4` with
    /// `B = min(blocks, T)` (`usize::MAX` if that overflows).
    ///
    /// Write `f_q` for the last boundary of iteration q made so far. The scheduler never
    /// lets iteration q+1 overtake iteration q (`f_{q+1} ≤ f_q`: of two fine solves of one
    /// block, the older iteration's is started no later and always scheduled first), so
    /// fine solve (q, i) is alive only for `f_{q+1} ≤ i ≤ f_q`, and so is its coarse jump
    /// `G_i(W^q[i])`; summed over q this telescopes to at most B + 1 fine solves and
    /// iteration outputs and B coarse jumps. A round adds one latent per call (its output,
    /// then its input, which the run's request keeps), at most `min(K, B)` calls, plus 3
    /// transients for the correction being made.
    ///
    /// ```
    /// # use chords::{CpuBackend, Srds};
    /// assert_eq!(Srds::<CpuBackend>::latent_bound_with_blocks(50, 7, 16), 25);
    /// ```
    pub fn latent_bound_with_blocks(steps: usize, blocks: usize, cores: usize) -> usize {
        let b = blocks.min(steps);
        b.checked_mul(2)
            .and_then(|n| n.checked_add(cores.min(b)))
            .and_then(|n| n.checked_add(4))
            .unwrap_or(usize::MAX)
    }

    /// The number of blocks B.
    pub fn blocks(&self) -> usize {
        self.starts.len() - 1
    }

    /// Adds the bookkeeping rows up to iteration `q` (B or B + 1 entries a table), all
    /// idle; [`Error::Config`] if they cannot be allocated.
    fn ensure_row(&mut self, q: usize) -> Result<()> {
        let nb = self.blocks();
        while self.made.len() <= q {
            if self.made.len() < nb {
                let mut fine = reserved(nb, "SRDS fine solves")?;
                fine.extend((0..nb).map(|_| Fine::Idle));
                let mut coarse = reserved(nb, "SRDS coarse jumps")?;
                coarse.resize(nb, None);
                self.fine.push(fine);
                self.coarse.push(coarse);
            }
            let mut made = reserved(nb + 1, "SRDS boundary rounds")?;
            made.resize(nb + 1, None);
            self.made.push(made);
        }
        Ok(())
    }

    /// The block boundaries `s_0 = 0 < s_1 < … < s_B = T`.
    pub fn block_starts(&self) -> &[usize] {
        &self.starts
    }

    /// Iterations whose output has been compared with the previous one (the returned
    /// output's iteration once finished).
    pub fn iterations(&self) -> usize {
        self.checked
    }

    /// The round after which `W^q[i]` existed (round 0 for `x0`), if it has been computed.
    /// A boundary is final from iteration i on, so `q > i` reports `W^i[i]`.
    pub fn boundary_round(&self, iteration: usize, block: usize) -> Option<usize> {
        let row = self.made.get(iteration.min(block))?;
        row.get(block).copied().flatten()
    }

    /// Computes every boundary value whose inputs arrived; returns the new ones.
    fn correct(&mut self, backend: &B) -> Result<Vec<(usize, Placed<B::Latent>)>> {
        let nb = self.blocks();
        let mut made = Vec::new();
        for q in 0..=nb {
            // Row q is missing until W^q[q] exists, and W^q[·] needs row q − 1.
            if q > self.made.len() {
                break;
            }
            for i in q.max(1)..=nb {
                if self.made.get(q).is_some_and(|row| row[i].is_some()) {
                    continue;
                }
                let w = if q == 0 {
                    // Coarse sweep: W⁰[i] = G_{i−1}(W⁰[i−1]).
                    match &self.coarse[0][i - 1] {
                        Some(g) => g.clone(),
                        None => continue,
                    }
                } else {
                    // Row q of `coarse` exists for q < B; W^B[B] is exact and needs none.
                    let new_g = self.coarse.get(q).and_then(|row| row[i - 1].as_ref());
                    let old_g = self.coarse[q - 1][i - 1].as_ref();
                    let ready = matches!(self.fine[q - 1][i - 1], Fine::Done(_))
                        && (i == q || (new_g.is_some() && old_g.is_some()));
                    if !ready {
                        continue;
                    }
                    let Fine::Done(s) = std::mem::replace(&mut self.fine[q - 1][i - 1], Fine::Idle)
                    else {
                        return Err(Error::Internal("srds fine solve vanished".into()));
                    };
                    match (i == q, new_g, old_g) {
                        // W^q[q] = F_{q−1}(W^{q−1}[q−1]): both coarse terms are one point.
                        (true, _, _) => s,
                        (false, Some(g), Some(old)) => {
                            let g = on_core(backend, &g.x, s.core)?;
                            let old = on_core(backend, &old.x, s.core)?;
                            let x =
                                combine(backend, s.core, &[(1.0, &s.x), (1.0, &g), (-1.0, &old)])?;
                            Placed { core: s.core, x }
                        }
                        _ => return Err(Error::Internal("srds correction inputs".into())),
                    }
                };
                // W^q[i] is known: start its fine solve, or keep it as iteration q's output.
                self.ensure_row(q)?;
                self.made[q][i] = Some(self.round);
                if i < nb {
                    self.fine[q][i] = Fine::Ready(0, w.clone());
                } else {
                    self.outputs[q] = Some(w.clone());
                }
                made.push((self.starts[i], w));
                self.release(q, i - 1);
                if q > 0 {
                    self.release(q - 1, i - 1);
                }
            }
        }
        Ok(made)
    }

    /// Drops `G_i(W^q[i])` once both boundaries that use it exist.
    fn release(&mut self, q: usize, i: usize) {
        if q >= self.blocks() {
            return;
        }
        let used_new = self.made[q][i + 1].is_some();
        let used_old = i == q || self.made.get(q + 1).is_some_and(|r| r[i + 1].is_some());
        if used_new && used_old {
            self.coarse[q][i] = None;
        }
    }

    /// Compares iteration outputs in order; returns the one to hit with, if any.
    fn converged(&mut self, backend: &B) -> Result<Option<Placed<B::Latent>>> {
        let nb = self.blocks();
        if let Some(exact) = self.outputs[nb].clone() {
            // W^B[B] is the sequential solve: nothing to compare.
            self.checked = nb;
            return Ok(Some(exact));
        }
        while self.checked + 1 < nb {
            let q = self.checked + 1;
            let (Some(prev), Some(cur)) = (&self.outputs[q - 1], &self.outputs[q]) else {
                return Ok(None);
            };
            let cur = cur.clone();
            let mean = mean_diff(backend, cur.core, &cur.x, &prev.x, f64::abs)?;
            self.outputs[q - 1] = None;
            self.checked = q;
            if mean < self.tolerance {
                return Ok(Some(cur));
            }
        }
        Ok(None)
    }

    /// Picks the next round's calls (greedy, at most K) and places their inputs.
    fn schedule(&mut self, backend: &B) -> Result<()> {
        // (iteration, block, step, q): a shared call at W^q[i] feeds iteration q, a later
        // fine step of F_i(W^q[i]) iteration q+1.
        let mut ready: Vec<(usize, usize, usize, usize)> = Vec::new();
        for (q, row) in self.fine.iter().enumerate() {
            for (i, state) in row.iter().enumerate() {
                if let Fine::Ready(j, _) = state {
                    ready.push((if *j == 0 { q } else { q + 1 }, i, *j, q));
                }
            }
        }
        ready.sort_unstable();
        ready.truncate(self.cores);
        let mut calls = Vec::with_capacity(ready.len());
        for &(_, i, j, q) in &ready {
            let Fine::Ready(_, p) = std::mem::replace(&mut self.fine[q][i], Fine::Running) else {
                return Err(Error::Internal(
                    "srds scheduled a call that is not ready".into(),
                ));
            };
            calls.push(Call {
                q,
                i,
                j,
                core: p.core,
                x: p.x,
            });
        }
        // A call keeps the core its input lives on when that core is still free. Only the
        // cores the calls name, and as many as there are calls, can be taken: `busy` is no
        // wider (not K wide, however many cores were asked for).
        let width = calls
            .iter()
            .map(|c| c.core.saturating_add(1))
            .chain([calls.len()])
            .max()
            .unwrap_or(0)
            .min(self.cores);
        let mut busy = vec![false; width];
        let homed: Vec<bool> = calls
            .iter()
            .map(|c| c.core < width && !std::mem::replace(&mut busy[c.core], true))
            .collect();
        for (call, homed) in calls.iter_mut().zip(homed) {
            if !homed {
                let free = busy.iter().position(|b| !b);
                let free = free.ok_or_else(|| Error::Internal("srds ran out of cores".into()))?;
                busy[free] = true;
                call.x = on_core(backend, &call.x, free)?;
                call.core = free;
            }
        }
        self.pending = calls;
        Ok(())
    }
}

impl<B: Backend> Sampler<B> for Srds<B> {
    fn name(&self) -> &'static str {
        "srds"
    }

    fn steps(&self) -> usize {
        self.solver.steps()
    }

    fn max_hits(&self) -> usize {
        1
    }

    fn cores(&self) -> usize {
        self.cores
    }

    /// `2·B + min(K, B) + 4` ([`Srds::latent_bound_with_blocks`]).
    fn max_live_latents(&self) -> usize {
        Self::latent_bound_with_blocks(self.solver.steps(), self.blocks(), self.cores)
    }

    fn rounds(&self) -> usize {
        self.round
    }

    fn requests(&self) -> Vec<Request<B::Latent>> {
        let request = |c: &Call<B::Latent>| {
            let index = self.starts[c.i] + c.j;
            let timestep = self.solver.timestep(index);
            Request {
                core: c.core,
                index,
                timestep,
                latent: c.x.clone(),
            }
        };
        self.pending.iter().map(request).collect()
    }

    fn advance(
        &mut self,
        backend: &B,
        outputs: Vec<B::Latent>,
        events: &mut dyn FnMut(Event<B::Latent>),
    ) -> Result<()> {
        if self.done || outputs.len() != self.pending.len() {
            return Err(Error::Internal(format!(
                "srds round got {} outputs for {} calls",
                outputs.len(),
                self.pending.len()
            )));
        }
        self.round += 1;
        let (round, steps, solver) = (self.round, self.solver.steps(), self.solver.clone());
        // New points (intermediate fine points, then boundary values) for live views.
        let mut updated = Vec::new();
        for (call, out) in std::mem::take(&mut self.pending).into_iter().zip(outputs) {
            let (q, i, j, c) = (call.q, call.i, call.j, call.core);
            let (start, end) = (self.starts[i], self.starts[i + 1]);
            let out = on_core(backend, &out, c)?;
            let step = |from, to| jump(backend, solver.as_ref(), c, &call.x, &out, from, to);
            let next = step(start + j, start + j + 1)?;
            if j == 0 {
                // The coarse jump G_i from the same call (the fine step itself when M_i = 1).
                let g = if end == start + 1 {
                    next.clone()
                } else {
                    step(start, end)?
                };
                self.coarse[q][i] = Some(Placed { core: c, x: g });
            }
            let next = Placed { core: c, x: next };
            self.fine[q][i] = if start + j + 1 == end {
                Fine::Done(next)
            } else {
                updated.push((start + j + 1, next.clone()));
                Fine::Ready(j + 1, next)
            };
        }
        updated.extend(self.correct(backend)?);
        for (index, w) in updated {
            events(Event::CoreUpdated {
                round,
                core: w.core,
                index,
                latent: w.x,
            });
        }
        if let Some(out) = self.converged(backend)? {
            self.done = true;
            events(Event::Hit(Output {
                position: 1,
                core: out.core,
                round,
                speedup: steps as f64 / round as f64,
                latent: out.x,
            }));
            return Ok(());
        }
        self.schedule(backend)?;
        if self.pending.is_empty() {
            return Err(Error::Internal("srds stalled before its output".into()));
        }
        Ok(())
    }
}

//! The CHORDS engine: a hierarchy of cores, slow and exact to fast and coarse, where each
//! slower core rectifies the next faster one (DESIGN.md section 3, the paper's Framework 2.2).

use std::sync::Arc;

use super::{Event, Output, Request, Sampler, jump};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::init::InitSequence;
use crate::solver::Solver;

/// A point on the grid with the model's output there, once evaluated.
#[derive(Debug, Clone)]
struct Evaluated<L> {
    index: usize,
    x: L,
    out: L,
}

/// The state of one active core.
#[derive(Debug)]
struct Core<L> {
    /// The core's id: its position in the initialisation sequence (0 = slowest).
    id: usize,
    /// The point waiting for a model call.
    cur: (usize, L),
    /// Its last evaluated point; `None` before its first evaluation.
    finish: Option<Evaluated<L>>,
    /// Where it was last started or rectified, with the model output once evaluated there.
    begin: (usize, L, Option<L>),
}

impl<L: Clone> Core<L> {
    fn new(id: usize, index: usize, x: L) -> Self {
        Self {
            id,
            cur: (index, x.clone()),
            finish: None,
            begin: (index, x, None),
        }
    }

    fn finish(&self) -> Result<&Evaluated<L>> {
        self.finish
            .as_ref()
            .ok_or_else(|| Error::Internal(format!("core {} has not evaluated yet", self.id)))
    }
}

/// The CHORDS sampler.
///
/// Core 0 starts at `x0`; core k is spawned at grid index `i_k` by a coarse jump of core
/// k-1 after that core's first evaluation. Every round each active core evaluates its
/// current point and steps forward by one grid index; whenever core c-1 reaches the index
/// where core c last (re)started, core c's next point is corrected with
/// `x_n = F - G + G*` (fine minus coarse from the faster core's own points, plus the coarse
/// jump from the slower, more accurate point). Hits stream out fastest core first; core 0's
/// hit is the sequential solve, bit for bit on a backend that honours
/// [`Backend`]'s summation-order contract.
///
/// ```
/// use std::sync::Arc;
/// use chords::{Backend, Chords, CpuBackend, Euler, FlowSchedule, GaussianMixture, InitSequence,
///              Prediction, RunOptions, StopRule, run};
/// let solver = Arc::new(Euler::new(FlowSchedule::new(10, 1.0).unwrap()));
/// let model = GaussianMixture::new(vec![0.5, -0.5], vec![2, 1], 0.1, Prediction::Velocity).unwrap();
/// let x0 = CpuBackend.upload(0, &[0.3]).unwrap();
/// let init = InitSequence::parse("0-2-5", 10).unwrap();
/// let mut sampler = Chords::new(solver, init, x0).unwrap();
/// let mut hits = Vec::new();
/// let options = RunOptions::default().with_threads(1).with_stop(StopRule::All);
/// run(&mut sampler, &CpuBackend, &model, &options, &mut |e| {
///     if let chords::Event::Hit(h) = e { hits.push((h.core, h.round)); }
/// }).unwrap();
/// assert_eq!(hits, vec![(2, 7), (1, 9), (0, 10)]);
/// ```
#[derive(Debug)]
pub struct Chords<B: Backend> {
    solver: Arc<dyn Solver>,
    init: InitSequence,
    /// Active cores, slowest first. A hit removes the fastest; a failure removes any but
    /// core 0.
    cores: Vec<Core<B::Latent>>,
    /// Position in the sequence of the next core to spawn.
    next_spawn: usize,
    /// Whether the fastest core, after its next evaluation, spawns the next core (or gives
    /// the preview once every core is spawned).
    successor_due: bool,
    round: usize,
    hits: usize,
    /// Whether each core's estimate of the final output is streamed after every round.
    estimates: bool,
}

impl<B: Backend> Chords<B> {
    /// A CHORDS run of `init.cores()` cores from `x0` (on core 0).
    pub fn new(solver: Arc<dyn Solver>, init: InitSequence, x0: B::Latent) -> Result<Self> {
        if init.steps() != solver.steps() {
            return Err(Error::Config(format!(
                "initialisation sequence is for {} steps but the solver has {}",
                init.steps(),
                solver.steps()
            )));
        }
        // Cannot overflow for a real sequence (K ≤ T entries in memory), but a budget check
        // must never wrap.
        if Self::latent_bound(init.steps(), init.cores()) == usize::MAX {
            return Err(Error::Config(format!(
                "{} CHORDS cores are too many: the bound 6·K on live latents overflows",
                init.cores()
            )));
        }
        Ok(Self {
            solver,
            init,
            cores: vec![Core::new(0, 0, x0)],
            next_spawn: 1,
            successor_due: true,
            round: 0,
            hits: 0,
            estimates: false,
        })
    }

    /// [`Sampler::max_live_latents`] of a CHORDS run with `cores` cores (the length K of the
    /// initialisation sequence), whatever the steps: `6·K` (`usize::MAX` if that overflows).
    ///
    /// Between rounds a core holds at most 5 latents: its current point, its last evaluated
    /// point and model output, and the point where it was last started or rectified with its
    /// output there (core 0 keeps `x0` and its output for the whole run). A round adds one
    /// model output per core (6·K at most). While the round's next points are made, each core
    /// holds at most 4 plus its new point, and rectifying the fastest core transfers 2 points
    /// to it: `5·K + 2 ≤ 6·K` for K ≥ 2 (K = 1 never rectifies). A spawn or a preview costs
    /// at most 2 more while fewer than K cores are active. A streamed estimate (one at a
    /// time, after the round's points are made) costs 1: `5·K + 1`.
    ///
    /// ```
    /// # use chords::{Chords, CpuBackend};
    /// assert_eq!(Chords::<CpuBackend>::latent_bound(50, 8), 48);
    /// ```
    pub fn latent_bound(steps: usize, cores: usize) -> usize {
        let _ = steps;
        cores.saturating_mul(6)
    }

    /// The initialisation sequence.
    pub fn init(&self) -> &InitSequence {
        &self.init
    }

    /// `jump(f.x, f.out, f.index → to)` on core `core`.
    fn advance_from(
        &self,
        backend: &B,
        core: usize,
        f: &Evaluated<B::Latent>,
        to: usize,
    ) -> Result<B::Latent> {
        jump(
            backend,
            self.solver.as_ref(),
            core,
            &f.x,
            &f.out,
            f.index,
            to,
        )
    }

    /// The new `cur` of core at `pos`: a rectified point if the slower core has just
    /// evaluated at its begin index, else one ordinary step. Returns whether it rectified.
    fn step_core(&self, backend: &B, pos: usize) -> Result<((usize, B::Latent), bool)> {
        let core = &self.cores[pos];
        let f = core.finish()?;
        let n = f.index + 1;
        let slower = match pos.checked_sub(1) {
            Some(p) => Some(self.cores[p].finish()?),
            None => None,
        };
        let Some(slow) = slower.filter(|s| s.index == core.begin.0) else {
            let x = self.advance_from(backend, core.id, f, n)?;
            return Ok(((n, x), false));
        };
        let (begin_index, begin_x, begin_out) = &core.begin;
        let begin_out = begin_out.as_ref().ok_or_else(|| {
            Error::Internal(format!(
                "core {} rectified before evaluating its begin point",
                core.id
            ))
        })?;
        let to_core = |l: &B::Latent| {
            backend
                .transfer(l, core.id)
                .map_err(|source| Error::Backend {
                    core: core.id,
                    source,
                })
        };
        let (slow_x, slow_out) = (to_core(&slow.x)?, to_core(&slow.out)?);
        let fine = self.solver.jump(f.index, n);
        let coarse = self.solver.jump(*begin_index, n);
        // x_n = F - G + G*, fused: F = fine(finish), G = coarse(begin), G* = coarse(slower finish).
        let x = backend
            .lincomb(
                core.id,
                &[
                    (fine.a as f32, &f.x),
                    (fine.b as f32, &f.out),
                    (-coarse.a as f32, begin_x),
                    (-coarse.b as f32, begin_out),
                    (coarse.a as f32, &slow_x),
                    (coarse.b as f32, &slow_out),
                ],
            )
            .map_err(|source| Error::Backend {
                core: core.id,
                source,
            })?;
        Ok(((n, x), true))
    }
}

impl<B: Backend> Sampler<B> for Chords<B> {
    fn name(&self) -> &'static str {
        "chords"
    }

    fn steps(&self) -> usize {
        self.solver.steps()
    }

    fn max_hits(&self) -> usize {
        self.init.cores()
    }

    fn rounds(&self) -> usize {
        self.round
    }

    /// `6·K` for K cores, independent of T ([`Chords::latent_bound`]).
    fn max_live_latents(&self) -> usize {
        Self::latent_bound(self.init.steps(), self.init.cores())
    }

    fn stream_estimates(&mut self, on: bool) -> bool {
        self.estimates = on;
        true
    }

    fn requests(&self) -> Vec<Request<B::Latent>> {
        self.cores
            .iter()
            .map(|c| Request {
                core: c.id,
                index: c.cur.0,
                timestep: self.solver.timestep(c.cur.0),
                latent: c.cur.1.clone(),
            })
            .collect()
    }

    fn retire(&mut self, core: usize) -> bool {
        // Core 0 is the exact solver: the run cannot go on without it.
        match self.cores.iter().position(|c| c.id == core) {
            Some(pos) if pos > 0 => {
                self.cores.remove(pos);
                true
            }
            _ => false,
        }
    }

    fn rehome(&mut self, backend: &B, core: usize) -> Result<bool> {
        let Some(c) = self.cores.iter_mut().find(|c| c.id == core) else {
            return Ok(false);
        };
        let move_here = |l: &B::Latent| {
            backend
                .transfer(l, core)
                .map_err(|source| Error::Backend { core, source })
        };
        c.cur.1 = move_here(&c.cur.1)?;
        c.begin.1 = move_here(&c.begin.1)?;
        if let Some(out) = &c.begin.2 {
            c.begin.2 = Some(move_here(out)?);
        }
        if let Some(f) = &c.finish {
            c.finish = Some(Evaluated {
                index: f.index,
                x: move_here(&f.x)?,
                out: move_here(&f.out)?,
            });
        }
        Ok(true)
    }

    fn restore(&mut self, core: usize, latent: B::Latent) -> bool {
        // Core 0 needs only its current point: this round's evaluation replaces its last
        // one, and no slower core ever rectifies it (its begin point is never read again
        // unless the run is still in round 1, where it is this very point).
        let Some(c) = self.cores.first_mut().filter(|c| c.id == core && core == 0) else {
            return false;
        };
        if c.begin.0 == c.cur.0 {
            c.begin = (c.cur.0, latent.clone(), None);
        }
        c.cur.1 = latent;
        c.finish = None;
        true
    }

    fn advance(
        &mut self,
        backend: &B,
        outputs: Vec<B::Latent>,
        events: &mut dyn FnMut(Event<B::Latent>),
    ) -> Result<()> {
        if outputs.len() != self.cores.len() || self.cores.is_empty() {
            return Err(Error::Internal(format!(
                "round got {} outputs for {} active cores",
                outputs.len(),
                self.cores.len()
            )));
        }
        self.round += 1;
        let (round, steps) = (self.round, self.solver.steps());

        // 2. Record each core's evaluation.
        for (core, out) in self.cores.iter_mut().zip(outputs) {
            let (index, x) = core.cur.clone();
            if index == core.begin.0 {
                core.begin.2 = Some(out.clone());
            }
            core.finish = Some(Evaluated { index, x, out });
        }

        // 3. Spawn or preview from the fastest core, then rectify or step every core.
        let fastest = self.cores.len() - 1;
        let mut spawned = None;
        if self.successor_due {
            let core = &self.cores[fastest];
            let f = core.finish()?;
            // Entries a retired core would have spawned but the fastest core has passed
            // are skipped.
            while self
                .init
                .starts()
                .get(self.next_spawn)
                .is_some_and(|&start| start <= f.index)
            {
                self.next_spawn += 1;
            }
            match self.init.starts().get(self.next_spawn) {
                Some(&start) => {
                    let id = self.next_spawn;
                    let x = self.advance_from(backend, core.id, f, start)?;
                    let x = backend
                        .transfer(&x, id)
                        .map_err(|source| Error::Backend { core: id, source })?;
                    spawned = Some(Core::new(id, start, x));
                    self.next_spawn += 1;
                    events(Event::Spawned {
                        round,
                        core: id,
                        index: start,
                    });
                }
                None => {
                    self.successor_due = false;
                    let latent = self.advance_from(backend, core.id, f, steps)?;
                    events(Event::Preview(Output {
                        position: 0,
                        core: core.id,
                        round,
                        speedup: steps as f64 / round as f64,
                        latent,
                    }));
                }
            }
        }
        let next: Vec<((usize, B::Latent), bool)> = (0..self.cores.len())
            .map(|pos| self.step_core(backend, pos))
            .collect::<Result<_>>()?;
        for (core, (cur, rectified)) in self.cores.iter_mut().zip(next) {
            if rectified {
                core.begin = (cur.0, cur.1.clone(), None);
                events(Event::Rectified {
                    round,
                    core: core.id,
                    index: cur.0,
                });
            }
            core.cur = cur;
        }
        self.cores.extend(spawned);
        for core in &self.cores {
            // One estimate alive at a time, next to at most 5 latents a core: 5·K + 1.
            if let Some(f) = core.finish.as_ref().filter(|_| self.estimates) {
                events(Event::Estimate {
                    round,
                    core: core.id,
                    index: f.index,
                    latent: self.advance_from(backend, core.id, f, steps)?,
                });
            }
            events(Event::CoreUpdated {
                round,
                core: core.id,
                index: core.cur.0,
                latent: core.cur.1.clone(),
            });
        }

        // 4. Cores that reached T have finished: hits, fastest first.
        while let Some(core) = self.cores.last().filter(|c| c.cur.0 == steps) {
            self.hits += 1;
            events(Event::Hit(Output {
                position: self.hits,
                core: core.id,
                round,
                speedup: steps as f64 / round as f64,
                latent: core.cur.1.clone(),
            }));
            self.cores.pop();
        }
        if let Some(stuck) = self.cores.iter().find(|c| c.cur.0 >= steps) {
            return Err(Error::Internal(format!(
                "core {} finished before a faster core",
                stuck.id
            )));
        }
        Ok(())
    }
}

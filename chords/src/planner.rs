//! The initialisation-sequence planner (the paper's section 2.3, DESIGN.md section 3).
//!
//! Given K cores, T steps and a wanted speed-up X of the fastest hit, the slowest core
//! starts at 0 and the fastest at `i_{K-1} = T + K - 1 - round(T / X)` (its hit arrives at
//! round `T - i_{K-1} + K - 1`). The cores in between are placed one at a time, fastest to
//! slowest, each where the score of the whole sequence is lowest (the cores not yet placed
//! spread evenly below the candidate). The score is the streamed
//! error: from the fastest hit to the end, the RMSE against the sequential solve of the
//! newest hit at each round, averaged over those rounds (the area under the paper's
//! Figure 5 curve). It rewards accurate hits that come early, and is computed on a cheap
//! test ODE ([`Surrogate`]) or on a run of the user's own model (calibration).

use std::sync::Arc;

use crate::backend::{CpuBackend, CpuLatent};
use crate::error::{Error, Result};
use crate::init::InitSequence;
use crate::mixture::GaussianMixture;
use crate::model::Model;
use crate::run::{RunOptions, run};
use crate::sampler::{Chords, Event, Sequential};
use crate::solver::{Euler, Prediction, Solver};
use crate::stop::StopRule;
use crate::{FlowSchedule, noise};

/// Most candidate positions tried per core (evenly spread over the free range).
pub const CANDIDATES: usize = 12;

/// Scores a candidate sequence; lower is better.
pub trait Scorer {
    /// The error of `sequence`'s fastest hit (any non-negative figure; lower is better).
    fn score(&mut self, sequence: &InitSequence) -> Result<f64>;
}

/// The grid index of the fastest core for a wanted speed-up of its hit.
pub fn fastest_start(steps: usize, cores: usize, speedup: f64) -> Result<usize> {
    if cores == 0 || steps == 0 || cores > steps {
        return Err(Error::Config(format!(
            "the planner needs 1 ≤ cores ≤ steps, got {cores} cores and {steps} steps"
        )));
    }
    let max = steps as f64 / cores as f64;
    if !(speedup.is_finite() && (1.0..=max + 1e-9).contains(&speedup)) {
        return Err(Error::Config(format!(
            "a speed-up of {speedup} is out of reach: with {cores} cores and {steps} steps the \
             fastest hit gives 1 to {max:.2}"
        )));
    }
    if cores == 1 {
        return Ok(0);
    }
    let round = ((steps as f64 / speedup).round() as usize).clamp(cores, steps);
    Ok(steps + cores - 1 - round)
}

/// The planned sequence: slowest at 0, fastest from the speed-up, the others placed fast
/// to slow by `scorer`. `on_candidate(placed, of)` reports progress.
pub fn plan(
    steps: usize,
    cores: usize,
    speedup: f64,
    scorer: &mut dyn Scorer,
    on_candidate: &mut dyn FnMut(usize, usize),
) -> Result<InitSequence> {
    let fastest = fastest_start(steps, cores, speedup)?;
    let mut placed = vec![fastest];
    if cores == 1 {
        return Ok(InitSequence::new(vec![0], steps)?);
    }
    let total = (1..cores - 1).count();
    // Core k (from K-2 down to 1) goes strictly between k - 1 free slots below and the
    // core above it.
    for (done, k) in (1..cores - 1).rev().enumerate() {
        let above = placed[0];
        let candidates = spread(k, above - 1, CANDIDATES);
        let mut best: Option<(f64, usize)> = None;
        for c in candidates {
            // The cores still to place wait evenly spread below the candidate, so every
            // candidate is scored as a whole K-core sequence.
            let starts: Vec<usize> = (0..k)
                .map(|j| j * c / k)
                .chain(std::iter::once(c))
                .chain(placed.iter().copied())
                .collect();
            let score = scorer.score(&InitSequence::new(starts, steps)?)?;
            if best.is_none_or(|(s, _)| score < s) {
                best = Some((score, c));
            }
        }
        let (_, c) = best.ok_or_else(|| Error::Internal("no candidate position".into()))?;
        placed.insert(0, c);
        on_candidate(done + 1, total);
    }
    placed.insert(0, 0);
    Ok(InitSequence::new(placed, steps)?)
}

/// At most `n` integers spread evenly over `lo..=hi` (all of them when there are few).
fn spread(lo: usize, hi: usize, n: usize) -> Vec<usize> {
    let count = hi + 1 - lo;
    if count <= n {
        return (lo..=hi).collect();
    }
    let mut v: Vec<usize> = (0..n)
        .map(|j| lo + (j * (count - 1) + (n - 1) / 2) / (n - 1))
        .collect();
    v.dedup();
    v
}

/// Scores on runs of `model` on the CPU from given starting points: the streamed error (see
/// the module docs), averaged over the starting points.
#[allow(missing_debug_implementations)]
pub struct ModelScorer<'a, M> {
    model: &'a M,
    solver: Arc<dyn Solver>,
    starts: Vec<Vec<f32>>,
    references: Vec<Vec<f32>>,
}

impl<'a, M: Model<CpuBackend>> ModelScorer<'a, M> {
    /// Solves each starting point sequentially once, as the reference.
    pub fn new(model: &'a M, solver: Arc<dyn Solver>, starts: Vec<Vec<f32>>) -> Result<Self> {
        let references = starts
            .iter()
            .map(|x0| {
                let mut seq = Sequential::<CpuBackend>::new(solver.clone(), x0.clone().into());
                last_hit(&mut seq, model)
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            model,
            solver,
            starts,
            references,
        })
    }
}

impl<M: Model<CpuBackend>> Scorer for ModelScorer<'_, M> {
    fn score(&mut self, sequence: &InitSequence) -> Result<f64> {
        let mut total = 0.0;
        for (x0, reference) in self.starts.iter().zip(&self.references) {
            let x0 = CpuLatent::from(x0.clone());
            let mut chords = Chords::<CpuBackend>::new(self.solver.clone(), sequence.clone(), x0)?;
            let hits = hits(&mut chords, self.model)?;
            total += streamed_error(&hits, reference, self.solver.steps());
        }
        Ok(total / self.starts.len().max(1) as f64)
    }
}

/// Every hit of a full run on the CPU: `(round, latent)` in arrival order.
fn hits<M: Model<CpuBackend> + ?Sized>(
    sampler: &mut dyn crate::Sampler<CpuBackend>,
    model: &M,
) -> Result<Vec<(usize, Vec<f32>)>> {
    let mut hits = Vec::new();
    let options = RunOptions::default()
        .with_threads(1)
        .with_stop(StopRule::All);
    run(sampler, &CpuBackend, model, &options, &mut |e| {
        if let Event::Hit(h) = e {
            hits.push((h.round, h.latent.as_slice().to_vec()));
        }
    })?;
    Ok(hits)
}

/// The last hit of a full run on the CPU.
fn last_hit<M: Model<CpuBackend> + ?Sized>(
    sampler: &mut dyn crate::Sampler<CpuBackend>,
    model: &M,
) -> Result<Vec<f32>> {
    hits(sampler, model)?
        .pop()
        .map(|(_, x)| x)
        .ok_or_else(|| Error::Internal("the run gave no hit".into()))
}

/// The mean, over rounds from the first hit to round `steps`, of the RMSE against
/// `reference` of the newest hit at that round.
pub fn streamed_error(hits: &[(usize, Vec<f32>)], reference: &[f32], steps: usize) -> f64 {
    let Some(first) = hits.first().map(|h| h.0) else {
        return f64::INFINITY;
    };
    let errors: Vec<(usize, f64)> = hits
        .iter()
        .map(|(round, x)| (*round, crate::run::rmse(x, reference)))
        .collect();
    let rounds = first..=steps.max(first);
    let total: f64 = rounds
        .clone()
        .map(|r| {
            errors
                .iter()
                .take_while(|(round, _)| *round <= r)
                .last()
                .map_or(0.0, |e| e.1)
        })
        .sum();
    total / rounds.count() as f64
}

/// The cheap test ODE: flow matching (Euler, shift 1) towards a mixture of 16 random
/// 48-element components, scored from 4 seeded starting points.
#[derive(Debug)]
pub struct Surrogate {
    mixture: GaussianMixture,
    steps: usize,
}

impl Surrogate {
    /// The test problem for a grid of `steps` steps.
    pub fn new(steps: usize) -> Result<Self> {
        let means: Vec<f32> = noise::gaussian(0x5EED, 16 * 48)
            .iter()
            .map(|v| 0.6 * v)
            .collect();
        let mixture = GaussianMixture::new(means, vec![16, 48], 0.25, Prediction::Velocity)?;
        Ok(Self { mixture, steps })
    }

    /// Its scorer.
    pub fn scorer(&self) -> Result<ModelScorer<'_, GaussianMixture>> {
        let solver: Arc<dyn Solver> = Arc::new(Euler::new(FlowSchedule::new(self.steps, 1.0)?));
        let starts = (0..4).map(|s| noise::gaussian(100 + s, 48)).collect();
        ModelScorer::new(&self.mixture, solver, starts)
    }

    /// Plans with this surrogate.
    pub fn plan(&self, cores: usize, speedup: f64) -> Result<InitSequence> {
        plan(
            self.steps,
            cores,
            speedup,
            &mut self.scorer()?,
            &mut |_, _| {},
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fastest_start_gives_the_wanted_hit_round() {
        // T = 50, K = 8, X = 50/17: the paper's i_7 = 40, hit at round 17.
        assert_eq!(fastest_start(50, 8, 50.0 / 17.0).unwrap(), 40);
        assert_eq!(fastest_start(50, 4, 2.0).unwrap(), 28); // round 25
        assert_eq!(fastest_start(50, 1, 1.0).unwrap(), 0);
        assert!(fastest_start(50, 8, 7.0).is_err()); // at most 50/8 = 6.25
        assert!(fastest_start(50, 8, 0.5).is_err());
        assert!(fastest_start(50, 8, f64::NAN).is_err());
    }

    #[test]
    fn streamed_error_is_the_mean_over_rounds_of_the_newest_hit() {
        // Hits at rounds 3 (error 4), 5 (error 2), 6 (exact); T = 6: rounds 3..=6 see
        // errors 4, 4, 2, 0 → mean 2.5.
        let reference = vec![0.0];
        let hits = vec![(3, vec![4.0]), (5, vec![2.0]), (6, vec![0.0])];
        assert_eq!(streamed_error(&hits, &reference, 6), 2.5);
        assert_eq!(streamed_error(&[], &reference, 6), f64::INFINITY);
    }

    #[test]
    fn spread_covers_the_range_evenly() {
        assert_eq!(spread(1, 4, 12), vec![1, 2, 3, 4]);
        let v = spread(1, 39, 12);
        assert_eq!((v.len(), v[0], v[11]), (12, 1, 39));
        assert!(v.windows(2).all(|w| w[0] < w[1]));
    }

    /// A scorer preferring starts close to given targets: the planner must find them.
    struct Targets(Vec<usize>);

    impl Scorer for Targets {
        fn score(&mut self, s: &InitSequence) -> Result<f64> {
            Ok(s.starts()
                .iter()
                .zip(&self.0)
                .map(|(a, b)| (*a as f64 - *b as f64).abs())
                .sum())
        }
    }

    #[test]
    fn the_planner_places_each_core_at_the_best_candidate() {
        // K = 4, T = 10: fastest at 10 + 3 - 5 = 8 for X = 2; core 2 then core 1.
        let mut scorer = Targets(vec![0, 3, 5, 8]);
        let mut progress = Vec::new();
        let seq = plan(10, 4, 2.0, &mut scorer, &mut |d, t| progress.push((d, t))).unwrap();
        assert_eq!(seq.starts(), &[0, 3, 5, 8]);
        assert_eq!(progress, vec![(1, 2), (2, 2)]);
        assert_eq!(seq.plan().hits[0].round, 5);
    }

    #[test]
    fn the_surrogate_plan_hits_at_the_wanted_round() {
        let seq = Surrogate::new(50).unwrap().plan(6, 50.0 / 20.0).unwrap();
        assert_eq!(seq.cores(), 6);
        assert_eq!(seq.plan().hits[0].round, 20);
    }
}

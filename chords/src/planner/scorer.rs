//! Scoring a sequence on runs of a model: [`ModelScorer`] (the user's model or the test
//! ODE of [`Surrogate`]) and the streamed error.

use std::sync::Arc;

use super::memo::Memo;
use super::{Objective, Scorer, plan};
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

/// Scores on runs of `model` on the CPU from given starting points: the [`Objective`]
/// (the first hit's RMSE unless [`ModelScorer::with_objective`] says otherwise), averaged
/// over the starting points.
#[allow(missing_debug_implementations)]
pub struct ModelScorer<'a, M> {
    model: Memo<'a, M>,
    solver: Arc<dyn Solver>,
    starts: Vec<Vec<f32>>,
    references: Vec<Vec<f32>>,
    objective: Objective,
}

impl<'a, M: Model<CpuBackend>> ModelScorer<'a, M> {
    /// Solves each starting point sequentially once, as the reference.
    pub fn new(model: &'a M, solver: Arc<dyn Solver>, starts: Vec<Vec<f32>>) -> Result<Self> {
        let model = Memo::new(model);
        let references = starts
            .iter()
            .map(|x0| {
                let mut seq = Sequential::<CpuBackend>::new(solver.clone(), x0.clone().into());
                last_hit(&mut seq, &model)
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            model,
            solver,
            starts,
            references,
            objective: Objective::default(),
        })
    }

    /// Scores `objective` instead of the default first hit.
    pub fn with_objective(mut self, objective: Objective) -> Self {
        self.objective = objective;
        self
    }
}

impl<M: Model<CpuBackend>> Scorer for ModelScorer<'_, M> {
    fn score(&mut self, sequence: &InitSequence) -> Result<f64> {
        let mut total = 0.0;
        for (x0, reference) in self.starts.iter().zip(&self.references) {
            let x0 = CpuLatent::from(x0.clone());
            let mut chords = Chords::<CpuBackend>::new(self.solver.clone(), sequence.clone(), x0)?;
            total += match self.objective {
                Objective::FirstHit => {
                    let hits = hits(&mut chords, &self.model, StopRule::CoreIndex(1))?;
                    hits.first()
                        .map_or(f64::INFINITY, |(_, x)| crate::run::rmse(x, reference))
                }
                Objective::Stream => {
                    let hits = hits(&mut chords, &self.model, StopRule::All)?;
                    streamed_error(&hits, reference, self.solver.steps())
                }
            };
        }
        Ok(total / self.starts.len().max(1) as f64)
    }
}

/// Every hit of a run on the CPU up to `stop`: `(round, latent)` in arrival order.
fn hits<M: Model<CpuBackend> + ?Sized>(
    sampler: &mut dyn crate::Sampler<CpuBackend>,
    model: &M,
    stop: StopRule,
) -> Result<Vec<(usize, Vec<f32>)>> {
    let mut hits = Vec::new();
    // One worker thread per core (a batching model gets each round as one call).
    let options = RunOptions::default().with_threads(0).with_stop(stop);
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
    hits(sampler, model, StopRule::All)?
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

    /// Its scorer (of the first hit; see [`ModelScorer::with_objective`]).
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
    use crate::Timestep;
    use crate::model::ModelError;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
    fn the_first_hit_objective_scores_the_first_hit_and_the_stream_objective_every_hit() {
        let surrogate = Surrogate::new(20).unwrap();
        let seq = InitSequence::new(vec![0, 4, 10], 20).unwrap();
        // Independently: a full run's hits and the sequential solve, from the same start.
        let solver: Arc<dyn Solver> = Arc::new(Euler::new(FlowSchedule::new(20, 1.0).unwrap()));
        let x0 = noise::gaussian(7, 48);
        let mut chords =
            Chords::<CpuBackend>::new(solver.clone(), seq.clone(), x0.clone().into()).unwrap();
        let all = hits(&mut chords, &surrogate.mixture, StopRule::All).unwrap();
        let reference = &all.last().unwrap().1;
        let mut seq_run = Sequential::<CpuBackend>::new(solver.clone(), x0.clone().into());
        assert_eq!(
            &last_hit(&mut seq_run, &surrogate.mixture).unwrap(),
            reference
        );
        assert_eq!(all[0].0, seq.plan().hits[0].round);
        let first = crate::run::rmse(&all[0].1, reference);
        let stream = streamed_error(&all, reference, 20);
        assert!(first > 0.0 && stream > 0.0 && first != stream);

        let scorer = |objective| {
            ModelScorer::new(&surrogate.mixture, solver.clone(), vec![x0.clone()])
                .unwrap()
                .with_objective(objective)
        };
        assert_eq!(scorer(Objective::FirstHit).score(&seq).unwrap(), first);
        assert_eq!(scorer(Objective::Stream).score(&seq).unwrap(), stream);
        // The default is the paper's reward.
        let mut default = ModelScorer::new(&surrogate.mixture, solver, vec![x0]).unwrap();
        assert_eq!(default.score(&seq).unwrap(), first);
    }

    #[test]
    fn the_surrogate_plan_hits_at_the_wanted_round() {
        let seq = Surrogate::new(50).unwrap().plan(6, 50.0 / 20.0).unwrap();
        assert_eq!(seq.cores(), 6);
        assert_eq!(seq.plan().hits[0].round, 20);
    }
    /// The surrogate's mixture, counting the calls that reach it.
    struct Counted<'a>(&'a GaussianMixture, AtomicUsize);

    impl Model<CpuBackend> for Counted<'_> {
        fn evaluate(
            &self,
            core: usize,
            x: &CpuLatent,
            t: &Timestep,
        ) -> Result<CpuLatent, ModelError> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.evaluate(core, x, t)
        }
    }

    #[test]
    fn repeated_calls_are_answered_from_the_table_with_the_same_result() {
        let surrogate = Surrogate::new(20).unwrap();
        let model = Counted(&surrogate.mixture, AtomicUsize::new(0));
        let solver: Arc<dyn Solver> = Arc::new(Euler::new(FlowSchedule::new(20, 1.0).unwrap()));
        let x0 = noise::gaussian(3, 48);
        let mut scorer = ModelScorer::new(&model, solver.clone(), vec![x0.clone()]).unwrap();
        // The reference is the sequential solve: 20 calls.
        assert_eq!(model.1.load(Ordering::Relaxed), 20);
        let seq = InitSequence::new(vec![0, 4, 10], 20).unwrap();
        let first = scorer.score(&seq).unwrap();
        let calls = model.1.load(Ordering::Relaxed);
        // Core 0 repeats the sequential solve, so the run made fewer new calls than it has
        // evaluations: (its hit at round 20 - 10 + 2 = 12) 12 + 11 + 10 = 33.
        assert!(calls - 20 < 33, "{} new calls", calls - 20);
        assert_eq!(scorer.score(&seq).unwrap(), first);
        assert_eq!(model.1.load(Ordering::Relaxed), calls);
        // Moving the fastest core reuses cores 0 and 1 only: core 2's calls, rounds 3 to
        // its hit at 20 - 11 + 2 = 11, are the only new ones.
        let moved = InitSequence::new(vec![0, 4, 11], 20).unwrap();
        let s = scorer.score(&moved).unwrap();
        assert_eq!(model.1.load(Ordering::Relaxed), calls + 9);
        // The table changes no figure: an uncached scorer agrees exactly.
        let mut plain = ModelScorer::new(&surrogate.mixture, solver, vec![x0]).unwrap();
        assert_eq!(
            (plain.score(&seq).unwrap(), plain.score(&moved).unwrap()),
            (first, s)
        );
        assert!(scorer.model.len() >= calls);
    }
}

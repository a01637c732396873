//! The standard executor: drives a [`Sampler`] round by round to the end, running each
//! round's model calls on worker threads (one per core by default) that live for the whole
//! run, checking outputs, applying the stop rule and forwarding events. The round itself is
//! [`Driver`]'s, which plays one round per call for a caller that owns the loop;
//! [`Background`](crate::Background) runs either on a thread of its own.
//!
//! A failed model call (an error, a panic, NaN/Inf, a wrong size) on a core the sampler can
//! do without retires that core ([`Event::CoreRetired`]); on one it cannot (CHORDS's core
//! 0) the backend is asked to [relocate](Backend::relocate) the core and the call is made
//! again there ([`Event::CoreMoved`]). Only when neither works does the run fail.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use crate::backend::Backend;
use crate::cancel::CancelToken;
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::model::{Model, ModelError};
use crate::sampler::{Event, Request, Sampler};
use crate::stop::StopRule;

/// The most worker threads `threads: 0` starts, however many cores a run has.
pub const MAX_DEFAULT_THREADS: usize = 64;

/// How to run a sampler.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunOptions {
    /// Worker threads for model calls; 0 means one per core ([`Sampler::cores`]), at most
    /// [`MAX_DEFAULT_THREADS`]. 1 runs calls inline. Ignored
    /// for a model that [batches](Model::batches): its calls run as one batch.
    pub threads: usize,
    /// When to stop.
    pub stop: StopRule,
    /// Stops the run when cancelled: before its next round, or, when cancelled while a
    /// round's model calls run, as soon as they return, with that round's outputs dropped
    /// (see [`CancelToken`]).
    pub cancel: CancelToken,
    /// Keeps a host copy of core 0's point each round (one download per round), so that
    /// core 0 survives the loss of its device's memory, not only a failed call.
    pub mirror: bool,
    /// Streams each core's [`Event::Estimate`] of the final output after every round, for
    /// samplers that give them (CHORDS and the sequential solve).
    pub estimates: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            threads: 0,
            stop: StopRule::CoreIndex(1),
            cancel: CancelToken::new(),
            mirror: false,
            estimates: false,
        }
    }
}

impl RunOptions {
    /// These options with `threads` worker threads for model calls.
    ///
    /// ```
    /// use chords::{RunOptions, StopRule};
    /// let options = RunOptions::default().with_threads(2).with_stop(StopRule::All);
    /// assert_eq!((options.threads, options.stop), (2, StopRule::All));
    /// ```
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// These options with the stop rule `stop`.
    #[must_use]
    pub fn with_stop(mut self, stop: StopRule) -> Self {
        self.stop = stop;
        self
    }

    /// These options, cancelled by `cancel`.
    #[must_use]
    pub fn with_cancel(mut self, cancel: CancelToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// These options with core 0's host mirror on or off.
    #[must_use]
    pub fn with_mirror(mut self, mirror: bool) -> Self {
        self.mirror = mirror;
        self
    }

    /// These options with each core's estimate of the final output streamed after every
    /// round ([`Event::Estimate`]), or not (the default).
    ///
    /// ```
    /// let options = chords::RunOptions::default().with_estimates(true);
    /// assert!(options.estimates);
    /// ```
    #[must_use]
    pub fn with_estimates(mut self, estimates: bool) -> Self {
        self.estimates = estimates;
        self
    }
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The stop rule was met.
    Rule,
    /// The sampler produced every output.
    Finished,
    /// The [`CancelToken`] was cancelled.
    Cancelled,
}

impl StopReason {
    /// A short lowercase name: `rule`, `finished` or `cancelled`.
    ///
    /// ```
    /// assert_eq!(chords::StopReason::Cancelled.name(), "cancelled");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Self::Rule => "rule",
            Self::Finished => "finished",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunSummary {
    /// Rounds of model calls.
    pub rounds: usize,
    /// Model calls in all (failed ones, and those of a round a cancel dropped, included).
    pub model_calls: usize,
    /// Cores retired after a failure.
    pub retired: Vec<usize>,
    /// Why it ended.
    pub reason: StopReason,
}

/// Runs `sampler` with `model` until the stop rule or the end, reporting every event.
///
/// The rounds are those of a [`Driver`] (one implementation of a round), with one set of
/// worker threads for the whole run: the calling thread is worker 0 and the others are
/// joined before this returns.
///
/// # Errors
/// [`Error::StopRule`] when the sampler cannot meet `options.stop`; otherwise the first
/// failure the run cannot get past (a model call on a core that can be neither retired nor
/// moved, a backend error, a sampler error).
pub fn run<B, M>(
    sampler: &mut dyn Sampler<B>,
    backend: &B,
    model: &M,
    options: &RunOptions,
    on_event: &mut dyn FnMut(&Event<B::Latent>),
) -> Result<RunSummary>
where
    B: Backend,
    M: Model<B> + ?Sized,
{
    Driver::new(sampler, backend, model, options.clone())?.finish(on_event, &mut || {})
}

/// Makes a round's model calls: the outputs of the requests, in order.
pub(crate) type Evaluator<'a, L> =
    dyn FnMut(&[Request<L>]) -> Result<Vec<Result<L, ModelError>>> + 'a;

/// Calls `body` with the evaluator of `model` on `workers` threads: one
/// [`evaluate_batch`](Model::evaluate_batch) per round for a model that batches, inline
/// calls for at most one worker, and otherwise a pool of scoped threads living as long as
/// `body` (the calling thread is worker 0), so a round wakes at most `workers - 1` threads
/// and nothing outlives the call.
pub(crate) fn with_evaluator<B, M, R>(
    model: &M,
    workers: usize,
    body: impl FnOnce(&mut Evaluator<'_, B::Latent>) -> Result<R>,
) -> Result<R>
where
    B: Backend,
    M: Model<B> + ?Sized,
{
    if model.batches() {
        return body(&mut |requests| {
            let outputs = catch_unwind(AssertUnwindSafe(|| model.evaluate_batch(requests)))
                .unwrap_or_else(|payload| {
                    requests
                        .iter()
                        .map(|_| Err(ModelError::from_panic(payload.as_ref())))
                        .collect()
                });
            if outputs.len() != requests.len() {
                return Err(Error::Internal(format!(
                    "evaluate_batch returned {} outputs for {} requests",
                    outputs.len(),
                    requests.len()
                )));
            }
            Ok(outputs)
        });
    }
    if workers <= 1 {
        return body(&mut |requests| Ok(requests.iter().map(|r| call(model, r)).collect()));
    }
    std::thread::scope(|scope| {
        let (result_tx, result_rx) = mpsc::channel::<(usize, Result<B::Latent, ModelError>)>();
        let (job_txs, handles): (Vec<_>, Vec<_>) = (1..workers)
            .map(|w| {
                let (tx, rx) = mpsc::channel::<(usize, Request<B::Latent>)>();
                let result_tx = result_tx.clone();
                std::thread::Builder::new()
                    .name(format!("chords-worker-{w}"))
                    .spawn_scoped(scope, move || {
                        for (slot, request) in rx {
                            if result_tx.send((slot, call(model, &request))).is_err() {
                                break;
                            }
                        }
                    })
                    .map(|handle| (tx, handle))
                    .map_err(|e| Error::Config(format!("cannot start worker thread: {e}")))
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        let result = body(&mut |requests| {
            let mut results: Vec<Option<Result<B::Latent, ModelError>>> =
                (0..requests.len()).map(|_| None).collect();
            // Request `slot` goes to worker `slot % workers`; hand out the others' first.
            for (slot, request) in requests
                .iter()
                .enumerate()
                .filter(|(slot, _)| slot % workers != 0)
            {
                job_txs[slot % workers - 1]
                    .send((slot, request.clone()))
                    .map_err(|_| Error::Internal("a worker thread exited".into()))?;
            }
            for (slot, request) in requests.iter().enumerate().step_by(workers) {
                results[slot] = Some(call(model, request));
            }
            for _ in requests
                .iter()
                .enumerate()
                .filter(|(slot, _)| slot % workers != 0)
            {
                let (slot, result) = result_rx
                    .recv()
                    .map_err(|_| Error::Internal("worker threads exited".into()))?;
                results[slot] = Some(result);
            }
            results
                .into_iter()
                .map(|r| r.ok_or_else(|| Error::Internal("missing model output".into())))
                .collect()
        });
        // Closing the job channels ends the workers; joining them waits until their OS
        // threads are gone, so nothing outlives the run.
        drop(job_txs);
        for handle in handles {
            let _ = handle.join();
        }
        result
    })
}

/// One model call, with a panic in the model turned into an error.
fn call<B: Backend, M: Model<B> + ?Sized>(
    model: &M,
    r: &Request<B::Latent>,
) -> Result<B::Latent, ModelError> {
    catch_unwind(AssertUnwindSafe(|| {
        model.evaluate(r.core, &r.latent, &r.timestep)
    }))
    .unwrap_or_else(|payload| Err(ModelError::from_panic(payload.as_ref())))
}

/// Root-mean-square difference `sqrt(Σ (a - b)² / numel)` of two latents.
pub fn rmse(a: &[f32], b: &[f32]) -> f64 {
    let sq: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    (sq / a.len().max(1) as f64).sqrt()
}

/// `‖a - b‖₂ / numel`, the residual between consecutive hits.
pub fn residual(a: &[f32], b: &[f32]) -> f64 {
    let sq: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    sq.sqrt() / a.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        Chords, CpuBackend, Euler, FlowSchedule, GaussianMixture, InitSequence, Prediction,
    };

    #[test]
    fn residual_is_the_l2_norm_over_numel() {
        // ‖(3, 4)‖₂ = 5, over 2 elements.
        assert_eq!(residual(&[3.0, 4.0], &[0.0, 0.0]), 2.5);
        assert_eq!(residual(&[1.0], &[1.0]), 0.0);
    }

    /// Two 2-element components, s = 0.2.
    fn small_mixture() -> GaussianMixture {
        GaussianMixture::new(
            vec![0.5, -0.5, 0.2, 0.1],
            vec![2, 2],
            0.2,
            Prediction::Velocity,
        )
        .unwrap()
    }

    /// Runs CHORDS 0-2-4-6 on T = 10 and returns (rounds, hit residuals in arrival order).
    fn chords_run(stop: StopRule) -> (usize, Vec<f64>) {
        let model = small_mixture();
        let solver = Arc::new(Euler::new(FlowSchedule::new(10, 1.0).unwrap()));
        let init = InitSequence::parse("0-2-4-6", 10).unwrap();
        let x0 = CpuBackend.upload(0, &[0.3, -1.2]).unwrap();
        let mut sampler = Chords::new(solver, init, x0).unwrap();
        let mut hits: Vec<Vec<f32>> = Vec::new();
        let options = RunOptions {
            threads: 1,
            stop,
            ..Default::default()
        };
        let summary = run(&mut sampler, &CpuBackend, &model, &options, &mut |e| {
            if let Event::Hit(h) = e {
                hits.push(h.latent.as_slice().to_vec());
            }
        })
        .unwrap();
        (
            summary.rounds,
            hits.windows(2).map(|w| residual(&w[1], &w[0])).collect(),
        )
    }

    #[test]
    fn residual_rule_stops_at_the_first_small_enough_change() {
        // Hits of 0-2-4-6 on T = 10 arrive at rounds 7, 8, 9, 10 (cores 3, 2, 1, 0); the
        // residual of hit n ≥ 2 is known after round 6 + n.
        let (rounds, residuals) = chords_run(StopRule::All);
        assert_eq!((rounds, residuals.len()), (10, 3));
        assert!(residuals.iter().all(|r| *r > 0.0));
        for tau in residuals.iter().map(|r| r * 1.0001).chain([0.0]) {
            let expected = residuals
                .iter()
                .position(|r| *r < tau)
                .map_or(10, |i| 8 + i);
            assert_eq!(chords_run(StopRule::Residual(tau)).0, expected, "tau {tau}");
        }
    }

    /// The mixture, asking to be called once per round with all of the round's points.
    struct Batched(GaussianMixture, std::sync::atomic::AtomicUsize);

    impl Model<CpuBackend> for Batched {
        fn evaluate(
            &self,
            core: usize,
            x: &crate::CpuLatent,
            t: &crate::Timestep,
        ) -> Result<crate::CpuLatent, ModelError> {
            self.0.evaluate(core, x, t)
        }

        fn evaluate_batch(
            &self,
            requests: &[Request<crate::CpuLatent>],
        ) -> Vec<Result<crate::CpuLatent, ModelError>> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            requests
                .iter()
                .map(|r| self.0.evaluate(r.core, &r.latent, &r.timestep))
                .collect()
        }

        fn batches(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_batching_model_gets_one_call_per_round_and_the_same_outputs() {
        let mixture = small_mixture();
        let solver = Arc::new(Euler::new(FlowSchedule::new(10, 1.0).unwrap()));
        let hits = |model: &dyn Model<CpuBackend>| {
            let x0 = CpuBackend.upload(0, &[0.3, -1.2]).unwrap();
            let mut sampler = Chords::new(
                solver.clone(),
                InitSequence::parse("0-2-4-6", 10).unwrap(),
                x0,
            )
            .unwrap();
            let mut hits = Vec::new();
            let options = RunOptions {
                threads: 0,
                stop: StopRule::All,
                ..Default::default()
            };
            let summary = run(&mut sampler, &CpuBackend, model, &options, &mut |e| {
                if let Event::Hit(h) = e {
                    hits.push(h.latent.clone());
                }
            })
            .unwrap();
            (summary, hits)
        };
        let batched = Batched(mixture.clone(), Default::default());
        let (summary, with_batches) = hits(&batched);
        assert_eq!(
            batched.1.load(std::sync::atomic::Ordering::Relaxed),
            summary.rounds
        );
        assert_eq!(hits(&mixture).1, with_batches);
    }
}

//! The round itself, one at a time: [`Driver`] plays one checked round per
//! [`step`](Driver::step) for a caller that owns the loop (a game's frame callback, a UI
//! timer), and [`run`](crate::run) is a loop over the same rounds.
//!
//! A round: the cancel check, the sampler's requests, [`Event::RoundStarted`], the model
//! calls, the cancel check again, the outputs' checks, retiring or moving a failed core,
//! [`Sampler::advance`] with the stop rule watching its events, the host mirror of core 0
//! and [`Event::RoundFinished`].

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::{Model, ModelError};
use crate::run::{
    Evaluator, MAX_DEFAULT_THREADS, RunOptions, RunSummary, StopReason, residual, with_evaluator,
};
use crate::sampler::{Event, Request, Sampler};
use crate::stop::StopRule;

/// What a [`Driver::step`] did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Step {
    /// It played round `round` and the run goes on.
    Round {
        /// The 1-based round just played.
        round: usize,
    },
    /// The run has ended: the step played its last round (the stop rule was met), or found
    /// the sampler finished or the run cancelled. Every later step returns this again.
    Done(RunSummary),
}

/// Where a driver stands.
#[derive(Debug)]
enum State {
    Running,
    Done(RunSummary),
    /// A step failed in this round.
    Failed(usize),
}

/// A run played one round per [`step`](Self::step), from the caller's own loop.
///
/// Each step is one checked round exactly as [`run`](crate::run) plays it (the same code):
/// the same events in the same order, the same retiring or moving of a failed core, the
/// same stop rule and the same [`RunSummary`]. A step makes its model calls itself: one
/// [`evaluate_batch`](Model::evaluate_batch) for a model that [batches](Model::batches),
/// inline with [`RunOptions::threads`] = 1, and otherwise on scoped worker threads that
/// start and end within the step ([`run`](crate::run) keeps its threads for the whole run).
///
/// After [`Step::Done`] every step returns the same `Done` and does nothing. A step that
/// fails ends the driver too: the sampler may be half way through a round, so every later
/// step returns [`Error::SteppedAfterError`] and does nothing.
///
/// ```
/// use std::sync::Arc;
/// use chords::*;
///
/// let solver = Arc::new(Euler::new(FlowSchedule::new(10, 1.0).unwrap()));
/// let model = GaussianMixture::new(vec![0.5, -0.5], vec![2, 1], 0.1, Prediction::Velocity).unwrap();
/// let x0 = CpuBackend.upload(0, &[0.3]).unwrap();
/// let mut sampler = Chords::new(solver, InitSequence::parse("0-2-5", 10).unwrap(), x0).unwrap();
/// let options = RunOptions::default().with_threads(1).with_stop(StopRule::All);
/// let mut driver = Driver::new(&mut sampler, &CpuBackend, &model, options).unwrap();
/// let mut hits = Vec::new();
/// // One round per frame, say.
/// let summary = loop {
///     match driver.step(&mut |e| if let Event::Hit(h) = e { hits.push(h.core) }).unwrap() {
///         Step::Round { round } => assert_eq!(driver.sampler().rounds(), round),
///         Step::Done(summary) => break summary,
///         _ => unreachable!("a new kind of step"),
///     }
/// };
/// assert_eq!((summary.rounds, summary.reason), (10, StopReason::Finished));
/// assert_eq!(hits, [2, 1, 0]);
/// assert!(driver.is_done());
/// ```
pub struct Driver<'r, B: Backend, M: Model<B> + ?Sized> {
    sampler: &'r mut dyn Sampler<B>,
    backend: &'r B,
    model: &'r M,
    options: RunOptions,
    /// Worker threads for the model calls.
    workers: usize,
    model_calls: usize,
    retired: Vec<usize>,
    /// With `options.mirror`: core 0's point for the coming round, on the host.
    mirror: Option<Vec<f32>>,
    stop: StopTracker,
    state: State,
}

impl<'r, B: Backend, M: Model<B> + ?Sized> Driver<'r, B, M> {
    /// A run of `sampler` with `model` on `backend`, before its first round.
    ///
    /// # Errors
    /// [`Error::StopRule`] when the sampler cannot meet `options.stop` (as [`run`](crate::run)).
    pub fn new(
        sampler: &'r mut dyn Sampler<B>,
        backend: &'r B,
        model: &'r M,
        options: RunOptions,
    ) -> Result<Self> {
        options.stop.validate(sampler.max_hits())?;
        if options.estimates && !sampler.stream_estimates(true) {
            tracing::warn!(
                "{} gives no estimates; none will be streamed",
                sampler.name()
            );
        }
        let workers = match options.threads {
            0 => sampler.cores().min(MAX_DEFAULT_THREADS),
            n => n,
        };
        let mirror = match options.mirror {
            true => core_0_point(backend, &sampler.requests()),
            false => None,
        };
        Ok(Self {
            stop: StopTracker::new(options.stop),
            sampler,
            backend,
            model,
            options,
            workers,
            model_calls: 0,
            retired: Vec::new(),
            mirror,
            state: State::Running,
        })
    }

    /// Plays one round, reporting its events, or ends the run (see [`Step`]).
    ///
    /// A cancel seen before the round starts ends the run at once; one seen when the
    /// round's model calls return discards their outputs (the sampler does not advance and
    /// the round sends no event after [`Event::RoundStarted`]) and ends the run, both with
    /// [`StopReason::Cancelled`].
    ///
    /// # Errors
    /// What [`run`](crate::run) fails with; then, and on every later step,
    /// [`Error::SteppedAfterError`].
    pub fn step(&mut self, on_event: &mut dyn FnMut(&Event<B::Latent>)) -> Result<Step> {
        if let Some(settled) = self.settled() {
            return settled;
        }
        let model = self.model;
        with_evaluator(model, self.workers, |evaluate| {
            self.step_with(evaluate, on_event)
        })
    }

    /// The summary, once the run has ended.
    pub fn summary(&self) -> Option<&RunSummary> {
        match &self.state {
            State::Done(summary) => Some(summary),
            State::Running | State::Failed(_) => None,
        }
    }

    /// Model calls so far (failed ones included).
    pub fn model_calls(&self) -> usize {
        self.model_calls
    }

    /// Cores retired so far after a failure.
    pub fn retired(&self) -> &[usize] {
        &self.retired
    }

    /// Whether the run has ended ([`Step::Done`]) or failed: steps do nothing any more.
    pub fn is_done(&self) -> bool {
        !matches!(self.state, State::Running)
    }

    /// The sampler, for reading its state between steps.
    pub fn sampler(&self) -> &dyn Sampler<B> {
        &*self.sampler
    }

    /// Plays every remaining round with one set of worker threads for all of them, calling
    /// `between_rounds` after each round that does not end the run.
    pub(crate) fn finish(
        mut self,
        on_event: &mut dyn FnMut(&Event<B::Latent>),
        between_rounds: &mut dyn FnMut(),
    ) -> Result<RunSummary> {
        let model = self.model;
        with_evaluator(model, self.workers, |evaluate| {
            loop {
                match self.step_with(evaluate, on_event)? {
                    Step::Done(summary) => return Ok(summary),
                    Step::Round { .. } => between_rounds(),
                }
            }
        })
    }

    /// What a step returns once the run has ended or failed; `None` while it runs.
    fn settled(&self) -> Option<Result<Step>> {
        match &self.state {
            State::Running => None,
            State::Done(summary) => Some(Ok(Step::Done(summary.clone()))),
            &State::Failed(round) => Some(Err(Error::SteppedAfterError { round })),
        }
    }

    /// One step, its model calls made by `evaluate`: the one implementation of a round.
    fn step_with(
        &mut self,
        evaluate: &mut Evaluator<'_, B::Latent>,
        on_event: &mut dyn FnMut(&Event<B::Latent>),
    ) -> Result<Step> {
        if let Some(settled) = self.settled() {
            return settled;
        }
        let round = self.sampler.rounds() + 1;
        match self.round(round, evaluate, on_event) {
            Ok(None) => Ok(Step::Round { round }),
            Ok(Some(reason)) => {
                let summary = RunSummary {
                    rounds: self.sampler.rounds(),
                    model_calls: self.model_calls,
                    retired: self.retired.clone(),
                    reason,
                };
                self.state = State::Done(summary.clone());
                Ok(Step::Done(summary))
            }
            Err(e) => {
                self.state = State::Failed(round);
                Err(e)
            }
        }
    }

    /// Plays round `round`; returns why the run ends, when it does.
    fn round(
        &mut self,
        round: usize,
        evaluate: &mut Evaluator<'_, B::Latent>,
        on_event: &mut dyn FnMut(&Event<B::Latent>),
    ) -> Result<Option<StopReason>> {
        if self.options.cancel.is_cancelled() {
            tracing::debug!(round, "run cancelled");
            return Ok(Some(StopReason::Cancelled));
        }
        let requests = self.sampler.requests();
        if requests.is_empty() {
            return Ok(Some(StopReason::Finished));
        }
        on_event(&Event::RoundStarted {
            round,
            evaluations: requests.iter().map(|r| (r.core, r.index)).collect(),
        });
        let results = evaluate(&requests)?;
        self.model_calls += requests.len();
        if self.options.cancel.is_cancelled() {
            tracing::debug!(
                round,
                "run cancelled during the round; its outputs are dropped"
            );
            return Ok(Some(StopReason::Cancelled));
        }
        let backend = self.backend;
        let results = screened(backend, round, &requests, results);
        let mut outputs = Vec::with_capacity(requests.len());
        for (result, r) in results.into_iter().zip(&requests) {
            let error = match result {
                Ok(out) => {
                    outputs.push(out);
                    continue;
                }
                Err(e) => e,
            };
            if self.sampler.retire(r.core) {
                tracing::warn!(round, core = r.core, "core retired: {error}");
                self.retired.push(r.core);
                on_event(&Event::CoreRetired {
                    round,
                    core: r.core,
                    index: r.index,
                    reason: error.to_string(),
                });
                continue;
            }
            let error_text = error.to_string();
            let host = self.mirror.as_deref().filter(|_| r.core == 0);
            outputs.push(move_and_retry(
                self.sampler,
                backend,
                evaluate,
                round,
                r,
                host,
                error,
            )?);
            on_event(&Event::CoreMoved {
                round,
                core: r.core,
                reason: error_text,
            });
            self.model_calls += 1;
        }
        let mut failure = None;
        let stop = &mut self.stop;
        self.sampler.advance(backend, outputs, &mut |event| {
            if failure.is_none()
                && let Err(e) = stop.observe(backend, &event)
            {
                failure = Some(e);
            }
            on_event(&event);
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if self.options.mirror {
            // Copied as soon as it exists, before anything else can happen to its device.
            self.mirror = core_0_point(backend, &self.sampler.requests());
        }
        on_event(&Event::RoundFinished {
            round,
            model_calls: requests.len(),
        });
        tracing::debug!(round, calls = requests.len(), "round finished");
        Ok(self.stop.met.then_some(StopReason::Rule))
    }
}

/// A model call's result, checked: its error, or an output of the wrong size or not finite,
/// becomes the run's [`Error`] naming the round, core and grid index.
fn checked<B: Backend>(
    backend: &B,
    round: usize,
    r: &Request<B::Latent>,
    result: Result<B::Latent, ModelError>,
) -> Result<B::Latent> {
    let out = sized(backend, round, r, result)?;
    check_finite(backend, round, r, &out)?;
    Ok(out)
}

/// A model call's result with its error, or an output of the wrong size, as the run's
/// [`Error`].
fn sized<B: Backend>(
    backend: &B,
    round: usize,
    r: &Request<B::Latent>,
    result: Result<B::Latent, ModelError>,
) -> Result<B::Latent> {
    let model_error = |source| Error::Model {
        round,
        core: r.core,
        index: r.index,
        source,
    };
    let out = result.map_err(model_error)?;
    let (want, got) = (backend.numel(&r.latent), backend.numel(&out));
    if want != got {
        return Err(model_error(ModelError::new(format!(
            "returned {got} elements for a latent of {want}"
        ))));
    }
    Ok(out)
}

/// A round's model results, checked as [`checked`] checks one, with the finiteness of all
/// outputs asked of the backend at once ([`Backend::all_finite_each`]). Should that joint
/// check fail, each output is checked on its own, so the error names the core it concerns.
fn screened<B: Backend>(
    backend: &B,
    round: usize,
    requests: &[Request<B::Latent>],
    results: Vec<Result<B::Latent, ModelError>>,
) -> Vec<Result<B::Latent>> {
    let mut screened: Vec<Result<B::Latent>> = results
        .into_iter()
        .zip(requests)
        .map(|(result, r)| sized(backend, round, r, result))
        .collect();
    let ok: Vec<usize> = (0..screened.len())
        .filter(|&i| screened[i].is_ok())
        .collect();
    let latents: Vec<&B::Latent> = ok
        .iter()
        .filter_map(|&i| screened[i].as_ref().ok())
        .collect();
    let finite = match backend.all_finite_each(&latents) {
        Ok(finite) if finite.len() == latents.len() => finite,
        joint => {
            tracing::debug!(
                round,
                "joint finiteness check failed ({joint:?}); checking each"
            );
            let each: Vec<Result<()>> = ok
                .iter()
                .map(|&i| match &screened[i] {
                    Ok(out) => check_finite(backend, round, &requests[i], out),
                    Err(_) => Ok(()),
                })
                .collect();
            for (&i, result) in ok.iter().zip(each) {
                if let Err(e) = result {
                    screened[i] = Err(e);
                }
            }
            return screened;
        }
    };
    for (&i, finite) in ok.iter().zip(finite) {
        if !finite {
            let r = &requests[i];
            screened[i] = Err(Error::NonFiniteOutput {
                round,
                core: r.core,
                index: r.index,
            });
        }
    }
    screened
}

/// After core `r.core`, which the sampler cannot retire, failed with `error`: moves it to
/// another device with its state (from the old device, or from the host copy `mirror` of
/// its point when the old device's memory is gone) and makes its call again there.
/// Returns the new output, or `error` when the backend has nowhere to move it.
fn move_and_retry<B: Backend>(
    sampler: &mut dyn Sampler<B>,
    backend: &B,
    evaluate: &mut Evaluator<'_, B::Latent>,
    round: usize,
    r: &Request<B::Latent>,
    mirror: Option<&[f32]>,
    error: Error,
) -> Result<B::Latent> {
    let core = r.core;
    let moved = backend
        .relocate(core)
        .map_err(|source| Error::Backend { core, source })?;
    if !moved {
        return Err(error);
    }
    let backend_error = |source| Error::Backend { core, source };
    let rehomed = sampler.rehome(backend, core).and_then(|ok| match ok {
        true => backend
            .transfer(&r.latent, core)
            .map_err(backend_error)
            .map(Some),
        false => Ok(None),
    });
    let latent = match (rehomed, mirror) {
        (Ok(Some(latent)), _) => latent,
        (Ok(None), _) => return Err(error),
        (Err(lost), Some(host)) => {
            tracing::warn!(round, core, "restoring from the host copy: {lost}");
            let latent = backend.upload(core, host).map_err(backend_error)?;
            if !sampler.restore(core, latent.clone()) {
                return Err(lost);
            }
            latent
        }
        (Err(lost), None) => return Err(lost),
    };
    tracing::warn!(round, core, "core moved to another device: {error}");
    let retry = Request {
        latent,
        ..r.clone()
    };
    let result = evaluate(std::slice::from_ref(&retry))?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Internal("no output for a retried call".into()))?;
    checked(backend, round, &retry, result)
}

/// Core 0's point among `requests`, copied to the host (`None` if it has none or the copy
/// fails: then a later loss of its device ends the run).
fn core_0_point<B: Backend>(backend: &B, requests: &[Request<B::Latent>]) -> Option<Vec<f32>> {
    let r = requests.iter().find(|r| r.core == 0)?;
    backend
        .download(&r.latent)
        .inspect_err(|e| tracing::warn!("no host copy of core 0's point: {e}"))
        .ok()
}

/// A model output must be finite.
fn check_finite<B: Backend>(
    backend: &B,
    round: usize,
    r: &Request<B::Latent>,
    out: &B::Latent,
) -> Result<()> {
    match backend.all_finite(out) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::NonFiniteOutput {
            round,
            core: r.core,
            index: r.index,
        }),
        Err(source) => Err(Error::Backend {
            core: r.core,
            source,
        }),
    }
}

/// Watches the output stream for the stop rule.
#[derive(Debug)]
struct StopTracker {
    rule: StopRule,
    previous_hit: Option<Vec<f32>>,
    met: bool,
}

impl StopTracker {
    fn new(rule: StopRule) -> Self {
        Self {
            rule,
            previous_hit: None,
            met: false,
        }
    }

    fn observe<B: Backend>(&mut self, backend: &B, event: &Event<B::Latent>) -> Result<()> {
        let (output, is_hit) = match event {
            Event::Preview(o) => (o, false),
            Event::Hit(o) => (o, true),
            _ => return Ok(()),
        };
        match self.rule {
            StopRule::CoreIndex(n) => self.met |= output.position == n,
            StopRule::Residual(tau) if is_hit => {
                let hit = backend
                    .download(&output.latent)
                    .map_err(|source| Error::Backend {
                        core: output.core,
                        source,
                    })?;
                if let Some(prev) = &self.previous_hit {
                    self.met |= residual(prev, &hit) < tau;
                }
                self.previous_hit = Some(hit);
            }
            StopRule::Residual(_) | StopRule::All => {}
        }
        Ok(())
    }
}

//! The standard executor: drives a [`Sampler`] round by round, running each round's model
//! calls on worker threads (one per core by default), checking outputs, applying the stop
//! rule and forwarding events.
//!
//! A failed model call (an error, a panic, NaN/Inf, a wrong size) on a core the sampler can
//! do without retires that core ([`Event::CoreRetired`]); on one it cannot (CHORDS's core
//! 0) the backend is asked to [relocate](Backend::relocate) the core and the call is made
//! again there ([`Event::CoreMoved`]). Only when neither works does the run fail.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use crate::backend::Backend;
use crate::cancel::CancelToken;
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
    /// Stops the run before its next round when cancelled.
    pub cancel: CancelToken,
    /// Keeps a host copy of core 0's point each round (one download per round), so that
    /// core 0 survives the loss of its device's memory, not only a failed call.
    pub mirror: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            threads: 0,
            stop: StopRule::CoreIndex(1),
            cancel: CancelToken::new(),
            mirror: false,
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
    /// Model calls in all (failed ones included).
    pub model_calls: usize,
    /// Cores retired after a failure.
    pub retired: Vec<usize>,
    /// Why it ended.
    pub reason: StopReason,
}

/// Runs `sampler` with `model` until the stop rule or the end, reporting every event.
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
    options.stop.validate(sampler.max_hits())?;
    let workers = match options.threads {
        0 => sampler.cores().min(MAX_DEFAULT_THREADS),
        n => n,
    };
    if model.batches() {
        return drive(sampler, backend, options, on_event, &mut |requests| {
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
        return drive(sampler, backend, options, on_event, &mut |requests| {
            Ok(requests.iter().map(|r| call(model, r)).collect())
        });
    }
    // The calling thread is worker 0; workers 1.. are scoped threads living for the run,
    // so a round wakes at most `workers - 1` threads and nothing outlives the call.
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
        let result = drive(sampler, backend, options, on_event, &mut |requests| {
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

type Evaluator<'a, L> = dyn FnMut(&[Request<L>]) -> Result<Vec<Result<L, ModelError>>> + 'a;

/// The round loop, independent of how model calls are executed.
fn drive<B: Backend>(
    sampler: &mut dyn Sampler<B>,
    backend: &B,
    options: &RunOptions,
    on_event: &mut dyn FnMut(&Event<B::Latent>),
    evaluate: &mut Evaluator<'_, B::Latent>,
) -> Result<RunSummary> {
    let mut model_calls = 0;
    let mut retired = Vec::new();
    // With `options.mirror`: core 0's point for the coming round, on the host.
    let mut mirror = match options.mirror {
        true => core_0_point(backend, &sampler.requests()),
        false => None,
    };
    let mut stop = StopTracker::new(options.stop);
    let summary = |rounds, model_calls, retired: &Vec<usize>, reason| RunSummary {
        rounds,
        model_calls,
        retired: retired.clone(),
        reason,
    };
    loop {
        if options.cancel.is_cancelled() {
            tracing::debug!(round = sampler.rounds(), "run cancelled");
            let reason = StopReason::Cancelled;
            return Ok(summary(sampler.rounds(), model_calls, &retired, reason));
        }
        let requests = sampler.requests();
        if requests.is_empty() {
            let reason = StopReason::Finished;
            return Ok(summary(sampler.rounds(), model_calls, &retired, reason));
        }
        let round = sampler.rounds() + 1;
        on_event(&Event::RoundStarted {
            round,
            evaluations: requests.iter().map(|r| (r.core, r.index)).collect(),
        });
        let results = screened(backend, round, &requests, evaluate(&requests)?);
        model_calls += requests.len();
        let mut outputs = Vec::with_capacity(requests.len());
        for (result, r) in results.into_iter().zip(&requests) {
            let error = match result {
                Ok(out) => {
                    outputs.push(out);
                    continue;
                }
                Err(e) => e,
            };
            if sampler.retire(r.core) {
                tracing::warn!(round, core = r.core, "core retired: {error}");
                retired.push(r.core);
                on_event(&Event::CoreRetired {
                    round,
                    core: r.core,
                    index: r.index,
                    reason: error.to_string(),
                });
                continue;
            }
            let error_text = error.to_string();
            let host = mirror.as_deref().filter(|_| r.core == 0);
            outputs.push(move_and_retry(
                sampler, backend, evaluate, round, r, host, error,
            )?);
            on_event(&Event::CoreMoved {
                round,
                core: r.core,
                reason: error_text,
            });
            model_calls += 1;
        }
        let mut failure = None;
        sampler.advance(backend, outputs, &mut |event| {
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
        if options.mirror {
            // Copied as soon as it exists, before anything else can happen to its device.
            mirror = core_0_point(backend, &sampler.requests());
        }
        on_event(&Event::RoundFinished {
            round,
            model_calls: requests.len(),
        });
        tracing::debug!(round, calls = requests.len(), "round finished");
        if stop.met {
            let reason = StopReason::Rule;
            return Ok(summary(sampler.rounds(), model_calls, &retired, reason));
        }
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

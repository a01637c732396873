//! The steppable [`Driver`] and the [`Background`] handle against [`run`]: a run stepped
//! from the test's own loop sends the same events (latents bit for bit) and ends with the
//! same summary, failures included; a cancel during a round drops that round; a background
//! run can be polled, paused, resumed, cancelled, joined and dropped. Final outputs are
//! checked against a sequential solve written out here.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chords::{
    Backend, Background, BackgroundBuilder, CancelToken, Chords, CpuBackend, CpuLatent, Driver,
    Error, Euler, Event, FlowSchedule, GaussianMixture, InitSequence, Model, ModelError, Paradigms,
    Prediction, Request, RunOptions, RunSummary, Sampler, Sequential, Solver, Srds, Step,
    StopReason, StopRule, Timestep, Worker, run,
};

const STEPS: usize = 16;
const X0: [f32; 3] = [0.3, -1.2, 0.4];
/// How long a test waits for a background thread before it fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(60);

fn mixture() -> GaussianMixture {
    GaussianMixture::new(
        vec![0.5, -0.5, 0.2, -0.1, 0.3, -0.7],
        vec![2, 1, 3],
        0.2,
        Prediction::Velocity,
    )
    .unwrap()
}

fn solver() -> Arc<dyn Solver> {
    Arc::new(Euler::new(FlowSchedule::new(STEPS, 1.0).unwrap()))
}

/// The sequential solve written out: `x ← a·x + b·model(x)` in f32, left to right.
fn sequential_solve() -> Vec<f32> {
    let (solver, model) = (solver(), mixture());
    let mut x = X0.to_vec();
    for i in 0..STEPS {
        let out = model.predict(&x, &solver.timestep(i)).unwrap();
        let jump = solver.jump(i, i + 1);
        let (a, b) = (jump.a as f32, jump.b as f32);
        x = x
            .iter()
            .zip(&out)
            .map(|(x, o)| {
                let mut y = a * x;
                y += b * o;
                y
            })
            .collect();
    }
    x
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Chords,
    Sequential,
    Paradigms,
    Srds,
}

const KINDS: [Kind; 4] = [Kind::Chords, Kind::Sequential, Kind::Paradigms, Kind::Srds];

fn sampler(kind: Kind) -> Box<dyn Sampler<CpuBackend> + Send> {
    let x0 = CpuBackend.upload(0, &X0).unwrap();
    match kind {
        Kind::Chords => {
            let init = InitSequence::parse("0-2-4-8", STEPS).unwrap();
            Box::new(Chords::new(solver(), init, x0).unwrap())
        }
        Kind::Sequential => Box::new(Sequential::new(solver(), x0)),
        Kind::Paradigms => Box::new(Paradigms::new(solver(), 4, 0.05, x0).unwrap()),
        Kind::Srds => Box::new(Srds::new(solver(), 4, 0.01, x0).unwrap()),
    }
}

fn options(threads: usize, stop: StopRule) -> RunOptions {
    RunOptions::default().with_threads(threads).with_stop(stop)
}

/// What a run showed: every event (Debug, so latents bit for bit), the outputs, the
/// result (errors as text) and the sampler's rounds at the end.
#[derive(Debug, PartialEq)]
struct Record {
    events: Vec<String>,
    outputs: Vec<Vec<f32>>,
    result: Result<RunSummary, String>,
    rounds: usize,
}

/// Notes `event`; the round in progress goes to `round` (read by the test models).
fn note(
    events: &mut Vec<String>,
    outputs: &mut Vec<Vec<f32>>,
    round: &AtomicUsize,
    event: &Event<CpuLatent>,
) {
    match event {
        Event::RoundStarted { round: r, .. } => round.store(*r, Ordering::SeqCst),
        Event::Preview(o) | Event::Hit(o) => outputs.push(o.latent.as_slice().to_vec()),
        _ => {}
    }
    events.push(format!("{event:?}"));
}

/// `kind` through [`run`].
fn by_run(
    kind: Kind,
    model: &dyn Model<CpuBackend>,
    options: &RunOptions,
    round: &AtomicUsize,
) -> Record {
    let mut sampler = sampler(kind);
    let (mut events, mut outputs) = (Vec::new(), Vec::new());
    let result = run(sampler.as_mut(), &CpuBackend, model, options, &mut |e| {
        note(&mut events, &mut outputs, round, e)
    });
    Record {
        events,
        outputs,
        result: result.map_err(|e| e.to_string()),
        rounds: sampler.rounds(),
    }
}

/// `kind` stepped by a [`Driver`] from this loop; checks on the way that each step plays
/// the next round, that steps after the end repeat it and send nothing, and that a step
/// after a failure refuses.
fn by_driver(
    kind: Kind,
    model: &dyn Model<CpuBackend>,
    options: &RunOptions,
    round: &AtomicUsize,
) -> Record {
    let mut sampler = sampler(kind);
    let (mut events, mut outputs) = (Vec::new(), Vec::new());
    let mut driver = Driver::new(sampler.as_mut(), &CpuBackend, model, options.clone()).unwrap();
    let mut played = 0;
    let result = loop {
        assert!(!driver.is_done());
        match driver.step(&mut |e| note(&mut events, &mut outputs, round, e)) {
            Ok(Step::Round { round }) => {
                played += 1;
                assert_eq!((round, driver.sampler().rounds()), (played, played));
                assert_eq!(driver.summary(), None);
            }
            Ok(Step::Done(summary)) => {
                let sent = events.len();
                for _ in 0..2 {
                    let again = driver.step(&mut |e| note(&mut events, &mut outputs, round, e));
                    assert_eq!(again.unwrap(), Step::Done(summary.clone()));
                }
                assert_eq!(events.len(), sent, "a step after the end sent events");
                assert_eq!(driver.summary(), Some(&summary));
                assert_eq!(driver.model_calls(), summary.model_calls);
                assert_eq!(driver.retired(), summary.retired);
                break Ok(summary);
            }
            Ok(step) => panic!("unknown step {step:?}"),
            Err(e) => {
                let sent = events.len();
                let again = driver.step(&mut |e| note(&mut events, &mut outputs, round, e));
                assert!(
                    matches!(again, Err(Error::SteppedAfterError { round }) if round == played + 1),
                    "{again:?}"
                );
                assert_eq!(events.len(), sent);
                break Err(e.to_string());
            }
        }
        assert!(played <= 10 * STEPS, "the driver does not end");
    };
    assert!(driver.is_done());
    drop(driver);
    Record {
        events,
        outputs,
        result,
        rounds: sampler.rounds(),
    }
}

/// Both ways, which must agree; returns the record.
fn both(kind: Kind, model: &dyn Model<CpuBackend>, options: &RunOptions) -> Record {
    let round = AtomicUsize::new(0);
    let by_run = by_run(kind, model, options, &round);
    let by_driver = by_driver(kind, model, options, &round);
    assert_eq!(by_driver, by_run, "{kind:?}, {} threads", options.threads);
    by_run
}

/// The mixture, evaluating a round's calls as one batch.
struct Batched(GaussianMixture);

impl Model<CpuBackend> for Batched {
    fn evaluate(&self, core: usize, x: &CpuLatent, t: &Timestep) -> Result<CpuLatent, ModelError> {
        self.0.evaluate(core, x, t)
    }

    fn evaluate_batch(
        &self,
        requests: &[Request<CpuLatent>],
    ) -> Vec<Result<CpuLatent, ModelError>> {
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
fn stepping_gives_the_events_and_summary_of_run() {
    let model = mixture();
    let sequential = sequential_solve();
    for kind in KINDS {
        for threads in [1, 3, 0] {
            let record = both(kind, &model, &options(threads, StopRule::All));
            let summary = record.result.unwrap();
            assert_eq!(summary.reason, StopReason::Finished, "{kind:?}");
            assert!(summary.rounds > 0 && summary.model_calls >= summary.rounds);
            if matches!(kind, Kind::Chords | Kind::Sequential) {
                assert_eq!(summary.rounds, STEPS);
                assert_eq!(record.outputs.last(), Some(&sequential), "{kind:?}");
            }
        }
    }
    // Stopping at the first hit, in the step that plays its round; a batching model.
    let first = both(Kind::Chords, &model, &options(3, StopRule::CoreIndex(1)));
    assert_eq!(first.result.as_ref().unwrap().reason, StopReason::Rule);
    assert!(first.rounds < STEPS);
    let batched = both(
        Kind::Chords,
        &Batched(mixture()),
        &options(0, StopRule::All),
    );
    assert_eq!(
        batched,
        both(Kind::Chords, &model, &options(0, StopRule::All))
    );
}

/// The mixture, failing on `core` in round `at` (the round as the test's events say).
struct FailAt {
    core: usize,
    at: usize,
    round: Arc<AtomicUsize>,
}

impl Model<CpuBackend> for FailAt {
    fn evaluate(&self, core: usize, x: &CpuLatent, t: &Timestep) -> Result<CpuLatent, ModelError> {
        if core == self.core && self.round.load(Ordering::SeqCst) == self.at {
            return Err(ModelError::new("injected failure"));
        }
        mixture().evaluate(core, x, t)
    }
}

/// Both ways with the round counter shared with the model.
fn both_with(
    kind: Kind,
    model: &dyn Model<CpuBackend>,
    options: &RunOptions,
    round: &AtomicUsize,
) -> Record {
    let by_run = by_run(kind, model, options, round);
    round.store(0, Ordering::SeqCst);
    let by_driver = by_driver(kind, model, options, round);
    assert_eq!(by_driver, by_run, "{kind:?}, {} threads", options.threads);
    by_run
}

#[test]
fn a_failing_core_is_retired_alike_and_a_failing_core_0_fails_alike() {
    let round = Arc::new(AtomicUsize::new(0));
    for threads in [1, 3] {
        let model = FailAt {
            core: 2,
            at: 5,
            round: round.clone(),
        };
        let record = both_with(
            Kind::Chords,
            &model,
            &options(threads, StopRule::All),
            &round,
        );
        let retired: Vec<&String> = record
            .events
            .iter()
            .filter(|e| e.starts_with("CoreRetired"))
            .collect();
        assert_eq!(retired.len(), 1, "{:?}", record.events);
        assert!(retired[0].contains("round: 5, core: 2"), "{}", retired[0]);
        assert!(retired[0].contains("injected failure"), "{}", retired[0]);
        assert_eq!(record.result.unwrap().retired, vec![2]);
        // Retiring costs speed, never the final output.
        assert_eq!(record.outputs.last(), Some(&sequential_solve()));

        // Core 0 cannot be retired, and the CPU backend cannot move it: the run fails.
        let model = FailAt {
            core: 0,
            at: 4,
            round: round.clone(),
        };
        let record = both_with(
            Kind::Chords,
            &model,
            &options(threads, StopRule::All),
            &round,
        );
        let error = record.result.unwrap_err();
        assert!(error.contains("round 4 on core 0"), "{error}");
        assert!(error.contains("injected failure"), "{error}");
        assert_eq!(record.rounds, 3);
    }
}

#[test]
fn cancelling_between_steps_ends_with_the_rounds_so_far() {
    let model = mixture();
    let cancel = CancelToken::new();
    let options = options(3, StopRule::All).with_cancel(cancel.clone());
    let mut sampler = sampler(Kind::Chords);
    let mut driver = Driver::new(sampler.as_mut(), &CpuBackend, &model, options).unwrap();
    let mut calls = 0;
    let mut count = |e: &Event<CpuLatent>| {
        if let Event::RoundFinished { model_calls, .. } = e {
            calls += model_calls;
        }
    };
    for round in 1..=3 {
        assert_eq!(driver.step(&mut count).unwrap(), Step::Round { round });
    }
    cancel.cancel();
    let mut sent = 0;
    let done = driver.step(&mut |_| sent += 1).unwrap();
    let Step::Done(summary) = done else {
        panic!("{done:?}")
    };
    assert_eq!(sent, 0);
    assert_eq!(
        (summary.reason, summary.rounds, summary.model_calls),
        (StopReason::Cancelled, 3, calls)
    );

    // run() cancelled from its RoundFinished callback stops at the same place.
    let cancel = CancelToken::new();
    let options = self::options(3, StopRule::All).with_cancel(cancel.clone());
    let mut sampler = self::sampler(Kind::Chords);
    let by_run = run(sampler.as_mut(), &CpuBackend, &model, &options, &mut |e| {
        if let Event::RoundFinished { round: 3, .. } = e {
            cancel.cancel();
        }
    })
    .unwrap();
    assert_eq!(by_run, summary);
}

/// The mixture, cancelling `cancel` during its calls of round `at`.
struct CancelAt {
    at: usize,
    round: Arc<AtomicUsize>,
    cancel: CancelToken,
}

impl Model<CpuBackend> for CancelAt {
    fn evaluate(&self, core: usize, x: &CpuLatent, t: &Timestep) -> Result<CpuLatent, ModelError> {
        if self.round.load(Ordering::SeqCst) == self.at {
            self.cancel.cancel();
        }
        mixture().evaluate(core, x, t)
    }
}

#[test]
fn a_cancel_during_a_round_drops_that_round() {
    let round = Arc::new(AtomicUsize::new(0));
    for kind in [Kind::Chords, Kind::Sequential] {
        for threads in [1, 3] {
            for at in [1, 4] {
                let cancel = CancelToken::new();
                let model = CancelAt {
                    at,
                    round: round.clone(),
                    cancel: cancel.clone(),
                };
                let options = options(threads, StopRule::All).with_cancel(cancel.clone());
                let by_run = by_run(kind, &model, &options, &round);
                // A fresh token for the driver's run, the same model otherwise.
                let cancel = CancelToken::new();
                let model = CancelAt {
                    cancel: cancel.clone(),
                    ..model
                };
                round.store(0, Ordering::SeqCst);
                let by_driver = by_driver(kind, &model, &options.with_cancel(cancel), &round);
                assert_eq!(by_driver, by_run);

                let summary = by_run.result.unwrap();
                assert_eq!(
                    (summary.reason, summary.rounds),
                    (StopReason::Cancelled, at - 1)
                );
                assert_eq!(by_run.rounds, at - 1, "the sampler advanced");
                // The round's start went out, and nothing after it.
                let last = by_run.events.last().unwrap();
                assert!(
                    last.starts_with(&format!("RoundStarted {{ round: {at},")),
                    "{last}"
                );
                assert!(
                    !by_run
                        .events
                        .iter()
                        .any(|e| e.contains(&format!("RoundFinished {{ round: {at},")))
                );
                // Its calls were made, and are counted.
                let started = by_run
                    .events
                    .iter()
                    .filter(|e| e.starts_with("RoundStarted"));
                let evaluations: usize = started.map(|e| e.matches("), (").count() + 1).sum();
                assert_eq!(summary.model_calls, evaluations, "{:?}", by_run.events);
            }
        }
    }
}

#[test]
fn samplers_events_and_summaries_are_send() {
    fn send<T: Send>() {}
    send::<Chords<CpuBackend>>();
    send::<Sequential<CpuBackend>>();
    send::<Paradigms<CpuBackend>>();
    send::<Srds<CpuBackend>>();
    send::<Event<CpuLatent>>();
    send::<RunSummary>();
    send::<Error>();
}

/// Takes every update of `handle` until its thread ends (failing after [`PATIENCE`]).
fn drain<U, T>(handle: &Background<U, T>) -> Vec<U> {
    let start = Instant::now();
    let mut updates = Vec::new();
    loop {
        let finished = handle.is_finished();
        updates.extend(handle.poll());
        if finished {
            return updates;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the background run does not end"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until `done` holds (failing after [`PATIENCE`]).
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_background_run_sends_the_events_of_run() {
    let options = options(0, StopRule::All);
    let expected = by_run(Kind::Chords, &mixture(), &options, &AtomicUsize::new(0));
    let handle = Background::run(sampler(Kind::Chords), CpuBackend, mixture(), options).unwrap();
    let events: Vec<String> = drain(&handle).iter().map(|e| format!("{e:?}")).collect();
    assert_eq!(events, expected.events);
    assert!(handle.poll().is_empty());
    assert_eq!(
        handle.recv_timeout(Duration::from_millis(1)).map(|_| ()),
        None
    );
    assert_eq!(Ok(handle.join().unwrap().unwrap()), expected.result);
}

/// The mixture, slowed down, counting its calls.
struct Slow {
    calls: Arc<AtomicUsize>,
}

impl Model<CpuBackend> for Slow {
    fn evaluate(&self, core: usize, x: &CpuLatent, t: &Timestep) -> Result<CpuLatent, ModelError> {
        std::thread::sleep(Duration::from_millis(3));
        self.calls.fetch_add(1, Ordering::SeqCst);
        mixture().evaluate(core, x, t)
    }
}

fn slow_run() -> (
    Background<Event<CpuLatent>, chords::Result<RunSummary>>,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let model = Slow {
        calls: calls.clone(),
    };
    let options = options(0, StopRule::All);
    let handle = Background::run(sampler(Kind::Chords), CpuBackend, model, options).unwrap();
    (handle, calls)
}

#[test]
fn a_paused_run_makes_no_calls_until_resumed() {
    let (handle, calls) = slow_run();
    wait_until("the first calls", || calls.load(Ordering::SeqCst) >= 4);
    handle.pause();
    assert!(handle.is_paused());
    // The round in progress finishes; then nothing.
    std::thread::sleep(Duration::from_millis(20));
    let mut polled = Vec::new();
    wait_until("the round in progress", || {
        polled.extend(handle.poll());
        matches!(polled.last(), Some(Event::RoundFinished { .. }))
    });
    let held = calls.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(calls.load(Ordering::SeqCst), held, "calls while paused");
    assert!(handle.poll().is_empty(), "events while paused");
    assert!(!handle.is_finished());
    handle.resume();
    assert!(!handle.is_paused());
    let events = [polled, drain(&handle)].concat();
    let summary = handle.join().unwrap().unwrap();
    assert_eq!(
        (summary.reason, summary.rounds),
        (StopReason::Finished, STEPS)
    );
    let last_hit = events.iter().rev().find_map(|e| match e {
        Event::Hit(h) => Some(h.latent.as_slice().to_vec()),
        _ => None,
    });
    assert_eq!(last_hit, Some(sequential_solve()));
}

#[test]
fn cancelling_a_paused_run_ends_it_at_once() {
    let (handle, calls) = slow_run();
    wait_until("the first calls", || calls.load(Ordering::SeqCst) >= 4);
    handle.pause();
    std::thread::sleep(Duration::from_millis(60));
    let start = Instant::now();
    handle.cancel();
    assert!(handle.cancel_token().is_cancelled());
    let events = drain(&handle);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let summary = handle.join().unwrap().unwrap();
    assert_eq!(summary.reason, StopReason::Cancelled);
    assert!(summary.rounds > 0 && summary.rounds < STEPS);
    let finished = events.iter().rev().find_map(|e| match e {
        Event::RoundFinished { round, .. } => Some(*round),
        _ => None,
    });
    assert_eq!(finished, Some(summary.rounds));
}

#[test]
fn a_panicking_work_is_an_error_naming_the_panic() {
    let handle = Background::<(), ()>::spawn("boom", |_| panic!("boom at {}", 42)).unwrap();
    match handle.join() {
        Err(Error::Panicked(message)) => assert_eq!(message, "boom at 42"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn dropping_a_handle_cancels_and_joins_its_thread() {
    let ended = Arc::new(AtomicBool::new(false));
    let flag = ended.clone();
    let handle = Background::<(), ()>::spawn("waiting", move |worker| {
        let start = Instant::now();
        while !worker.is_cancelled() && start.elapsed() < PATIENCE {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Still going after the cancel: the drop must wait for it.
        std::thread::sleep(Duration::from_millis(50));
        flag.store(true, Ordering::SeqCst);
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(10));
    let start = Instant::now();
    drop(handle);
    assert!(
        ended.load(Ordering::SeqCst),
        "the thread outlived its handle"
    );
    assert!(start.elapsed() < PATIENCE / 2, "the drop did not cancel");
}

/// A viewer's own updates.
#[derive(Debug, Clone, PartialEq)]
enum Update {
    Status(String),
    Hit { core: usize, round: usize },
    Finished(usize),
}

#[test]
fn a_worker_prepares_its_model_and_maps_events_to_its_updates() {
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = wakes.clone();
    let work = |worker: &Worker<Update>| -> chords::Result<RunSummary> {
        let name = std::thread::current().name().map(str::to_owned);
        worker.send(Update::Status(name.unwrap_or_default()));
        let model = mixture();
        let mut sampler = sampler(Kind::Chords);
        // The handle's token replaces this one (already cancelled).
        let cancelled = CancelToken::new();
        cancelled.cancel();
        let options = options(3, StopRule::All).with_cancel(cancelled);
        let summary = worker.run(sampler.as_mut(), &CpuBackend, &model, &options, &mut |e| {
            if let Event::Hit(h) = e {
                worker.send(Update::Hit {
                    core: h.core,
                    round: h.round,
                });
            }
        })?;
        worker.send(Update::Finished(summary.rounds));
        Ok(summary)
    };
    let handle = BackgroundBuilder::new()
        .name("viewer-run")
        .wake(Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }))
        .spawn(work)
        .unwrap();
    let updates = drain(&handle);
    let summary = handle.join().unwrap().unwrap();
    // The hits a plain run makes.
    let mut hits = Vec::new();
    let mut sampler = sampler(Kind::Chords);
    run(
        sampler.as_mut(),
        &CpuBackend,
        &mixture(),
        &options(1, StopRule::All),
        &mut |e| {
            if let Event::Hit(h) = e {
                hits.push(Update::Hit {
                    core: h.core,
                    round: h.round,
                });
            }
        },
    )
    .unwrap();
    assert_eq!(hits.len(), 4);
    let expected = [
        vec![Update::Status("viewer-run".into())],
        hits,
        vec![Update::Finished(STEPS)],
    ]
    .concat();
    assert_eq!(updates, expected);
    assert_eq!(summary.rounds, STEPS);
    // After each update, and once at the end.
    assert_eq!(wakes.load(Ordering::SeqCst), expected.len() + 1);
}

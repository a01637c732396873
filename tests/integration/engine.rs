//! The CHORDS engine end to end through `chords::run`: a rectification derived by hand on a
//! linear ODE, property tests of the output schedule and of exactness against the
//! sequential solve (DESIGN.md section 3), and model failures surfacing as errors.

use std::sync::Arc;

use chords::{
    Backend, BetaSchedule, Chords, CpuBackend, CpuLatent, Ddim, Error, Euler, Event, FlowSchedule,
    GaussianMixture, InitSequence, Model, ModelError, Prediction, RunOptions, RunSummary, Sampler,
    Sequential, Solver, Spacing, StopReason, StopRule, Timestep, VpSchedule, run,
};
use proptest::prelude::*;

/// `out = λ·x`, except that at (`fail_core`, `fail_index`) it returns NaN or panics.
struct Linear {
    lambda: f32,
    fail: Option<(usize, usize, bool)>,
}

impl Model<CpuBackend> for Linear {
    fn evaluate(&self, core: usize, x: &CpuLatent, t: &Timestep) -> Result<CpuLatent, ModelError> {
        let mut out: Vec<f32> = x.as_slice().iter().map(|v| self.lambda * v).collect();
        if let Some((c, i, panics)) = self.fail.filter(|&(c, i, _)| (c, i) == (core, t.index)) {
            assert!(!panics, "test model panics on core {c} at index {i}");
            if let Some(last) = out.last_mut() {
                *last = f32::NAN;
            }
        }
        Ok(out.into())
    }
}

/// A run's summary and every event it reported.
type Recorded = (RunSummary, Vec<Event<CpuLatent>>);
/// `(round, core, grid index)`.
type Triple = (usize, usize, usize);

/// Runs `sampler`, returning the summary and every event.
fn record<M: Model<CpuBackend>>(
    sampler: &mut dyn Sampler<CpuBackend>,
    model: &M,
    threads: usize,
    stop: StopRule,
) -> chords::Result<Recorded> {
    let mut events = Vec::new();
    let options = RunOptions::default().with_threads(threads).with_stop(stop);
    let summary = run(sampler, &CpuBackend, model, &options, &mut |e| {
        events.push(e.clone())
    })?;
    Ok((summary, events))
}

fn bits(latent: &CpuLatent) -> Vec<u32> {
    latent.as_slice().iter().map(|v| v.to_bits()).collect()
}

/// `(position, core, round, bits)` of the preview and hits, in stream order.
fn outputs(events: &[Event<CpuLatent>]) -> Vec<(usize, usize, usize, Vec<u32>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Preview(o) | Event::Hit(o) => {
                Some((o.position, o.core, o.round, bits(&o.latent)))
            }
            _ => None,
        })
        .collect()
}

fn assert_close(got: f32, want: f64, what: &str) {
    assert!(
        (f64::from(got) - want).abs() < 1e-6,
        "{what}: got {got}, want {want}"
    );
}

/// T = 4, I = 0-2, x0 = 1, v = λx with λ = 1/2, Euler on σ_i = 1 - i/4. Every jump is
/// `x_j = x_i + (σ_j - σ_i)·λ·x_i = x_i·(1 - (j-i)/8)`; one step multiplies by 7/8. All
/// values below are dyadic rationals, so f32 holds them exactly.
///
/// Round 1: core 0 evaluates (0, 1) → out 1/2. Spawn core 1 at 2: 1·(1 - 2/8) = 3/4.
///          Core 0 steps: cur0 = (1, 7/8).
/// Round 2: core 0 at (1, 7/8); core 1 at its begin (2, 3/4), out 3/8. Core 1 is the last
///          entry: preview = jump(2 → 4) = 3/4·6/8 = 9/16. cur0 = (2, 49/64);
///          core 1 is not rectified (core 0 finished at 1 ≠ begin 2): cur1 = (3, 21/32).
/// Round 3: core 0 at (2, 49/64) = its finish index equals core 1's begin, so core 1
///          (finish (3, 21/32)) is rectified with n = 4:
///          F  = 21/32·7/8 = 147/256 (fine step of core 1's own point),
///          G  = 3/4·6/8 = 9/16      (coarse jump from core 1's begin),
///          G* = 49/64·6/8 = 147/256 (coarse jump from core 0's point at index 2),
///          x_4 = F - G + G* = 294/256 - 144/256 = 150/256 = 0.5859375 → core 1 hits
///          (round 3 = T - i_1 + 1). cur0 = (3, 343/512).
/// Round 4: core 0 steps to (4, 2401/4096) = (1 - λ/4)^4, the sequential Euler solve.
#[test]
fn rectification_on_a_linear_ode_matches_hand_derivation() {
    let solver = Arc::new(Euler::new(FlowSchedule::new(4, 1.0).expect("schedule")));
    let init = InitSequence::parse("0-2", 4).expect("init");
    let mut sampler = Chords::new(solver, init, CpuLatent::from(vec![1.0])).expect("sampler");
    let model = Linear {
        lambda: 0.5,
        fail: None,
    };
    let (summary, events) = record(&mut sampler, &model, 1, StopRule::All).expect("run");
    assert_eq!(
        (summary.rounds, summary.model_calls, summary.reason),
        (4, 6, StopReason::Finished)
    );

    let rectified: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Rectified { round, core, index } => Some((*round, *core, *index)),
            _ => None,
        })
        .collect();
    assert_eq!(rectified, vec![(3, 1, 4)]);

    let updates: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::CoreUpdated {
                round,
                core,
                index,
                latent,
            } => Some((*round, *core, *index, latent.as_slice()[0])),
            _ => None,
        })
        .collect();
    let want = [
        (1, 0, 1, 0.875),
        (1, 1, 2, 0.75),
        (2, 0, 2, 49.0 / 64.0),
        (2, 1, 3, 21.0 / 32.0),
        (3, 0, 3, 343.0 / 512.0),
        (3, 1, 4, 150.0 / 256.0),
        (4, 0, 4, 2401.0 / 4096.0),
    ];
    assert_eq!(updates.len(), want.len(), "{updates:?}");
    for (&(round, core, index, got), &(wr, wc, wi, value)) in updates.iter().zip(&want) {
        assert_eq!((round, core, index), (wr, wc, wi));
        assert_close(got, value, &format!("core {core} after round {round}"));
    }

    let streamed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Preview(o) | Event::Hit(o) => {
                Some((o.position, o.core, o.round, o.latent.as_slice()[0]))
            }
            _ => None,
        })
        .collect();
    let closed_form = (1.0 + (-0.25) * 0.5f64).powi(4); // (1 + Δσ·λ)^T
    let want = [
        (0, 1, 2, 9.0 / 16.0),
        (1, 1, 3, 0.5859375),
        (2, 0, 4, closed_form),
    ];
    assert_eq!(streamed.len(), want.len(), "{streamed:?}");
    for (&(position, core, round, got), &(wp, wc, wr, value)) in streamed.iter().zip(&want) {
        assert_eq!((position, core, round), (wp, wc, wr));
        assert_close(got, value, &format!("output {position}"));
    }
}

/// One random engine configuration.
#[derive(Debug, Clone)]
struct Case {
    steps: usize,
    starts: Vec<usize>,
    x0: Vec<f32>,
    means: Vec<f32>,
    sigma_data: f64,
    ddim: bool,
    stop_at: usize,
}

const LATENT: [usize; 3] = [2, 3, 3];
const NUMEL: usize = 18;

fn case() -> impl Strategy<Value = Case> {
    (1usize..=60)
        .prop_flat_map(|steps| (Just(steps), 1..=steps.min(10)))
        .prop_flat_map(|(steps, cores)| {
            (
                Just(steps),
                proptest::sample::subsequence((1..steps).collect::<Vec<_>>(), cores - 1),
                0..=cores,
                proptest::collection::vec(-2.5f32..2.5, NUMEL),
                proptest::collection::vec(-1.0f32..1.0, 3 * NUMEL),
                0.1f64..0.5,
                any::<bool>(),
            )
        })
        .prop_map(|(steps, tail, stop_at, x0, means, sigma_data, ddim)| Case {
            steps,
            starts: std::iter::once(0).chain(tail).collect(),
            x0,
            means,
            sigma_data,
            ddim,
            stop_at,
        })
}

/// `(round, core, index)` of every event of one kind.
fn triples(
    events: &[Event<CpuLatent>],
    pick: fn(&Event<CpuLatent>) -> Option<Triple>,
) -> Vec<Triple> {
    events.iter().filter_map(pick).collect()
}

fn check_case(case: &Case) {
    let (steps, starts) = (case.steps, &case.starts);
    let solver: Arc<dyn Solver> = if case.ddim {
        let schedule =
            VpSchedule::new(steps, BetaSchedule::LINEAR, Spacing::Trailing).expect("vp schedule");
        Arc::new(Ddim::new(schedule, Prediction::Epsilon).expect("ddim"))
    } else {
        Arc::new(Euler::new(
            FlowSchedule::new(steps, 1.0).expect("flow schedule"),
        ))
    };
    let mut shape = vec![3];
    shape.extend(LATENT);
    let model = GaussianMixture::new(
        case.means.clone(),
        shape,
        case.sigma_data,
        solver.prediction(),
    )
    .expect("mixture");
    let init = InitSequence::new(starts.clone(), steps).expect("init");
    let (plan, k) = (init.plan(), init.cores());
    let x0 = CpuLatent::from(case.x0.clone());

    let mut sequential = Sequential::new(solver.clone(), x0.clone());
    let (seq_summary, seq_events) =
        record(&mut sequential, &model, 1, StopRule::All).expect("sequential run");
    assert_eq!(
        (seq_summary.rounds, seq_summary.model_calls),
        (steps, steps)
    );
    let reference = outputs(&seq_events).pop().expect("sequential hit").3;

    // Closed forms: core c evaluates index i_c + r - c - 1 in rounds c+1 ..= hit_round(c),
    // holds index i_c + r - c after rounds max(c, 1) ..= hit_round(c), and is rectified
    // every Δ_c = i_c - i_{c-1} rounds from round c + Δ_c on (when core c-1 reaches the
    // index where core c last restarted).
    let hit_rounds: Vec<usize> = (0..k).map(|c| init.hit_round(c)).collect();
    let hit = &hit_rounds;
    let alive = move |c: usize, r: usize| c.max(1) <= r && r <= hit[c];
    let want_started: Vec<(usize, Vec<(usize, usize)>)> = (1..=steps)
        .map(|r| {
            (
                r,
                (0..k)
                    .filter(|&c| c < r && r <= hit[c])
                    .map(|c| (c, starts[c] + r - c - 1))
                    .collect(),
            )
        })
        .collect();
    let want_updated: Vec<_> = (1..=steps)
        .flat_map(|r| {
            (0..k)
                .filter(move |&c| alive(c, r))
                .map(move |c| (r, c, starts[c] + r - c))
        })
        .collect();
    let want_rectified: Vec<_> = (1..=steps)
        .flat_map(|r| {
            (1..k)
                .filter(move |&c| {
                    r > c && (r - c) % (starts[c] - starts[c - 1]) == 0 && r <= hit[c]
                })
                .map(move |c| (r, c, starts[c] + r - c))
        })
        .collect();
    let want_spawned: Vec<_> = (1..k).map(|c| (c, c, starts[c])).collect();
    let mut want_outputs = vec![(0, k - 1, k)];
    want_outputs.extend(
        plan.hits
            .iter()
            .enumerate()
            .map(|(n, h)| (n + 1, h.core, h.round)),
    );
    assert!(
        plan.hits.iter().map(|h| h.core).eq((0..k).rev()),
        "hits must arrive fastest core first"
    );

    let mut streams = Vec::new();
    for threads in [1, 0] {
        let mut sampler = Chords::new(solver.clone(), init.clone(), x0.clone()).expect("sampler");
        let (summary, events) =
            record(&mut sampler, &model, threads, StopRule::All).expect("chords run");
        assert_eq!(
            (summary.rounds, summary.reason),
            (steps, StopReason::Finished)
        );

        let started: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::RoundStarted { round, evaluations } => Some((*round, evaluations.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(started, want_started);
        assert!(
            started.iter().all(|(_, ev)| (1..=k).contains(&ev.len())),
            "a round evaluates 1 to K points"
        );
        assert_eq!(
            summary.model_calls,
            started.iter().map(|(_, ev)| ev.len()).sum::<usize>()
        );
        let finished: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::RoundFinished { round, model_calls } => Some((*round, *model_calls)),
                _ => None,
            })
            .collect();
        assert_eq!(
            finished,
            started
                .iter()
                .map(|(r, ev)| (*r, ev.len()))
                .collect::<Vec<_>>()
        );

        let updated = triples(&events, |e| match e {
            Event::CoreUpdated {
                round, core, index, ..
            } => Some((*round, *core, *index)),
            _ => None,
        });
        assert_eq!(
            updated, want_updated,
            "core indices advance by one per round"
        );
        let mut rectified = triples(&events, |e| match e {
            Event::Rectified { round, core, index } => Some((*round, *core, *index)),
            _ => None,
        });
        rectified.sort_unstable();
        assert_eq!(rectified, want_rectified);
        let spawned = triples(&events, |e| match e {
            Event::Spawned { round, core, index } => Some((*round, *core, *index)),
            _ => None,
        });
        assert_eq!(spawned, want_spawned);

        let stream = outputs(&events);
        let meta: Vec<_> = stream.iter().map(|(p, c, r, _)| (*p, *c, *r)).collect();
        assert_eq!(meta, want_outputs);
        assert_eq!(
            stream.last().expect("core 0 hit").3,
            reference,
            "core 0 must equal the sequential solve"
        );
        assert!(
            stream
                .iter()
                .all(|o| o.3.iter().all(|b| f32::from_bits(*b).is_finite()))
        );
        streams.push(stream);
    }
    assert_eq!(streams[0], streams[1], "threads must not change any output");

    // core-index:N stops after the round in which output N arrived, with the same outputs.
    let stop_round = want_outputs[case.stop_at].2;
    let mut sampler = Chords::new(solver, init, x0).expect("sampler");
    let (summary, events) =
        record(&mut sampler, &model, 0, StopRule::CoreIndex(case.stop_at)).expect("stopped run");
    assert_eq!(
        (summary.rounds, summary.reason),
        (stop_round, StopReason::Rule)
    );
    let prefix: Vec<_> = streams[0]
        .iter()
        .filter(|o| o.2 <= stop_round)
        .cloned()
        .collect();
    assert_eq!(outputs(&events), prefix);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn engine_schedule_and_exactness(case in case()) {
        check_case(&case);
    }
}

/// T = 8, I = 0-3-5: core c evaluates index i_c + r - c - 1 in round r, so core 0 is at
/// index 3 in round 4 and index 2 in round 3. A failure on core 0 (the exact solver, which
/// the CPU backend cannot move) ends the run; failures on faster cores are in `faults.rs`.
/// Returns the run's result and the last round it started.
fn failing_run(fail: (usize, usize, bool), threads: usize) -> (chords::Result<RunSummary>, usize) {
    let solver = Arc::new(Euler::new(FlowSchedule::new(8, 1.0).expect("schedule")));
    let init = InitSequence::parse("0-3-5", 8).expect("init");
    let mut sampler =
        Chords::new(solver, init, CpuLatent::from(vec![0.5, -0.25])).expect("sampler");
    let model = Linear {
        lambda: 0.5,
        fail: Some(fail),
    };
    let mut last_round = 0;
    let options = RunOptions::default()
        .with_threads(threads)
        .with_stop(StopRule::All);
    let result = run(&mut sampler, &CpuBackend, &model, &options, &mut |e| {
        if let Event::RoundStarted { round, .. } = e {
            last_round = *round;
        }
    });
    (result, last_round)
}

#[test]
fn non_finite_output_names_round_and_core() {
    for threads in [1, 0] {
        let (result, last_round) = failing_run((0, 3, false), threads);
        match result {
            Err(Error::NonFiniteOutput { round, core, index }) => {
                assert_eq!((round, core, index), (4, 0, 3))
            }
            other => panic!("threads {threads}: expected NonFiniteOutput, got {other:?}"),
        }
        assert_eq!(last_round, 4, "the run must stop in the failing round");
    }
}

#[test]
fn panicking_model_is_a_model_error() {
    for threads in [1, 0] {
        let (result, last_round) = failing_run((0, 2, true), threads);
        match result {
            Err(Error::Model {
                round,
                core,
                index,
                source,
            }) => {
                assert_eq!((round, core, index), (3, 0, 2));
                assert!(source.to_string().contains("panicked"), "{source}");
            }
            other => panic!("threads {threads}: expected a model error, got {other:?}"),
        }
        assert_eq!(last_round, 3);
    }
}

/// A NaN on a faster core retires it; the run finishes with the sequential solve.
#[test]
fn non_finite_output_on_a_faster_core_retires_it() {
    let (result, last_round) = failing_run((2, 6, false), 0);
    let summary = result.expect("the run goes on without core 2");
    assert_eq!(
        (summary.retired, summary.rounds, last_round),
        (vec![2], 8, 8)
    );
}

/// The mixture on the counting backend.
struct CountedModel<'a>(&'a chords::backend::Counting<CpuBackend>, GaussianMixture);

type CountedLatent = Arc<chords::backend::Counted<CpuLatent>>;

impl Model<chords::backend::Counting<CpuBackend>> for CountedModel<'_> {
    fn evaluate(
        &self,
        core: usize,
        x: &CountedLatent,
        t: &Timestep,
    ) -> Result<CountedLatent, ModelError> {
        Ok(self.0.wrap(self.1.evaluate(core, x.inner(), t)?))
    }
}

/// Memory per core is bounded: with the same core spacing, a grid 10× longer (10× the
/// rounds) never holds more latents at once, and nothing is alive after the run.
#[test]
fn live_latents_do_not_grow_with_rounds() {
    let peak = |steps: usize| {
        let backend = chords::backend::Counting::new(CpuBackend);
        let mixture = GaussianMixture::new(
            vec![0.5, -0.5, 0.2, 0.1],
            vec![2, 2],
            0.2,
            Prediction::Velocity,
        )
        .unwrap();
        let solver = Arc::new(Euler::new(FlowSchedule::new(steps, 1.0).unwrap()));
        let init = InitSequence::parse("0-2-4-6-8-10-12-14", steps).unwrap();
        let x0 = backend.upload(0, &[0.3, -1.2]).unwrap();
        let mut sampler = Chords::new(solver, init, x0).unwrap();
        let options = RunOptions::default()
            .with_threads(0)
            .with_stop(StopRule::All);
        let model = CountedModel(&backend, mixture);
        let summary = run(&mut sampler, &backend, &model, &options, &mut |_| {}).unwrap();
        assert_eq!(summary.rounds, steps);
        drop(sampler);
        assert_eq!(backend.live(), 0, "latents outlive the run");
        backend.peak()
    };
    let short = peak(20);
    assert!(short <= 8 * 7, "{short} latents for 8 cores");
    assert_eq!(peak(200), short);
}

/// Found by the `engine` fuzz target (its assertion was wrong, the engine right): with
/// 0-1 on T = 64 both cores hit in round 64, so `core-index:1` stops after that round
/// with both hits delivered, the last being the sequential solve.
#[test]
fn hits_of_one_round_all_arrive_before_the_stop() {
    let solver = Arc::new(Euler::new(FlowSchedule::new(64, 1.0).unwrap()));
    let init = InitSequence::parse("0-1", 64).unwrap();
    let plan = init.plan();
    assert_eq!(
        plan.hits
            .iter()
            .map(|h| (h.core, h.round))
            .collect::<Vec<_>>(),
        vec![(1, 64), (0, 64)]
    );
    let x0 = CpuLatent::from(vec![-2.36, 0.0]);
    let model = Linear {
        lambda: 0.5,
        fail: None,
    };
    let mut sampler = Chords::new(solver.clone(), init, x0.clone()).unwrap();
    let (summary, events) = record(&mut sampler, &model, 1, StopRule::CoreIndex(1)).unwrap();
    assert_eq!((summary.rounds, summary.reason), (64, StopReason::Rule));
    let hits: Vec<_> = outputs(&events).into_iter().filter(|h| h.0 > 0).collect();
    assert_eq!(
        hits.iter().map(|h| (h.1, h.2)).collect::<Vec<_>>(),
        vec![(1, 64), (0, 64)]
    );
    let mut sequential = Sequential::new(solver, x0);
    let (_, seq_events) = record(&mut sequential, &model, 1, StopRule::All).unwrap();
    assert_eq!(
        hits.last().map(|h| &h.3),
        outputs(&seq_events).last().map(|h| &h.3)
    );
}

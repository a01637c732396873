//! Every sampler's stated bound on live latents ([`Sampler::max_live_latents`]) holds: runs
//! to the end on the [`Counting`] backend never hold more latents at once, whatever the
//! steps, cores, initialisation sequence, tolerance and worker threads; the bound a caller
//! computes before building anything (`latent_bound`) is the one the sampler states; and
//! settings whose bound does not fit a `usize` are refused before anything is allocated.
//! The same runs check a round's outputs for NaN/Inf with one backend call a round.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::sync::Arc;

use chords::backend::{Counted, Counting};
use chords::{
    Backend, Chords, CpuBackend, CpuLatent, Error, Euler, FlowSchedule, GaussianMixture,
    InitSequence, InitStrategy, Model, ModelError, Paradigms, Prediction, RunOptions, Sampler,
    Sequential, Solver, Srds, StopRule, Timestep, run,
};
use proptest::prelude::*;

type Counter = Counting<CpuBackend>;
type Latent = Arc<Counted<CpuLatent>>;

/// The mixture, its outputs counted as latents of the run.
struct CountedModel<'a>(&'a Counter, GaussianMixture);

impl Model<Counter> for CountedModel<'_> {
    fn evaluate(&self, core: usize, x: &Latent, t: &Timestep) -> Result<Latent, ModelError> {
        Ok(self.0.wrap(self.1.evaluate(core, x.inner(), t)?))
    }
}

/// Two means of shape [1, 3].
fn mixture() -> GaussianMixture {
    GaussianMixture::new(
        vec![0.5, -0.5, 0.2, -0.1, 0.3, -0.7],
        vec![2, 1, 3],
        0.2,
        Prediction::Velocity,
    )
    .unwrap()
}

fn solver(steps: usize) -> Arc<dyn Solver> {
    Arc::new(Euler::new(FlowSchedule::new(steps, 1.0).unwrap()))
}

/// Runs the sampler `make` builds from `x0` to the end (streaming estimates when
/// `estimates`), the event latents dropped at once; returns (peak live latents, the
/// sampler's bound). Checks that nothing outlives the run.
fn peak(
    threads: usize,
    estimates: bool,
    make: impl FnOnce(Latent) -> Box<dyn Sampler<Counter>>,
) -> (usize, usize) {
    let backend = Counting::new(CpuBackend);
    let x0 = backend.upload(0, &[0.3, -1.2, 0.4]).unwrap();
    let mut sampler = make(x0);
    let bound = sampler.max_live_latents();
    let model = CountedModel(&backend, mixture());
    let options = RunOptions::default()
        .with_threads(threads)
        .with_stop(StopRule::All)
        .with_estimates(estimates);
    let summary = run(sampler.as_mut(), &backend, &model, &options, &mut |_| {}).unwrap();
    assert!(sampler.is_finished(), "{} did not finish", sampler.name());
    // A round's outputs are checked for NaN/Inf together: one wait a round on a device.
    assert_eq!(
        backend.finiteness_checks(),
        summary.rounds,
        "{}: finiteness checks",
        sampler.name()
    );
    drop(sampler);
    assert_eq!(backend.live(), 0, "latents outlive the run");
    (backend.peak(), bound)
}

/// (T, K) with T in 1..=60 and K in 1..=min(T, 10).
fn steps_and_cores() -> impl Strategy<Value = (usize, usize)> {
    (1usize..=60).prop_flat_map(|t| (Just(t), 1..=t.min(10)))
}

/// 0 (one worker per core), inline, or a few workers.
fn threads() -> impl Strategy<Value = usize> {
    prop_oneof![Just(0usize), Just(1), Just(3)]
}

/// A tolerance, often exactly 0 (every iteration / the whole window runs).
fn tolerance() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), 0.0..0.5f64, Just(10.0)]
}

/// T, and a strictly increasing sequence of K ≤ min(T, 10) starts from 0: uniform, the
/// paper's, or random.
fn init_sequence() -> impl Strategy<Value = (usize, InitSequence)> {
    steps_and_cores().prop_flat_map(|(t, k)| {
        let uniform = InitSequence::from_strategy(InitStrategy::Uniform, t, k).unwrap();
        let random = proptest::sample::subsequence((1..t).collect::<Vec<_>>(), k - 1)
            .prop_map(move |rest| InitSequence::new([vec![0], rest].concat(), t).unwrap());
        let paper = InitSequence::from_strategy(InitStrategy::Paper, t, k).ok();
        let fixed = Just(paper.unwrap_or_else(|| uniform.clone()));
        (Just(t), prop_oneof![Just(uniform), fixed, random])
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn chords_stays_within_its_bound(
        (t, init) in init_sequence(),
        threads in threads(),
        estimates in any::<bool>(),
    ) {
        let k = init.cores();
        let (peak, bound) = peak(threads, estimates, |x0| Box::new(Chords::new(solver(t), init, x0).unwrap()));
        prop_assert_eq!(bound, Chords::<Counter>::latent_bound(t, k));
        prop_assert!(peak <= bound, "T {} K {}: peak {} > bound {}", t, k, peak, bound);
    }

    #[test]
    fn sequential_stays_within_its_bound(
        (t, k) in steps_and_cores(),
        threads in threads(),
        estimates in any::<bool>(),
    ) {
        let (peak, bound) = peak(threads, estimates, |x0| Box::new(Sequential::new(solver(t), x0)));
        prop_assert_eq!(bound, Sequential::<Counter>::latent_bound(t, k));
        prop_assert!(peak <= bound, "T {}: peak {} > bound {}", t, peak, bound);
    }

    #[test]
    fn paradigms_stays_within_its_bound(
        (t, k) in steps_and_cores(),
        tol in tolerance(),
        threads in threads(),
    ) {
        let (peak, bound) = peak(threads, false, |x0| {
            Box::new(Paradigms::new(solver(t), k, tol, x0).unwrap())
        });
        prop_assert_eq!(bound, Paradigms::<Counter>::latent_bound(t, k));
        prop_assert!(peak <= bound, "T {} K {} τ {}: peak {} > bound {}", t, k, tol, peak, bound);
    }

    #[test]
    fn srds_stays_within_its_bound(
        (t, k) in steps_and_cores(),
        tol in tolerance(),
        threads in threads(),
    ) {
        let (peak, bound) = peak(threads, false, |x0| Box::new(Srds::new(solver(t), k, tol, x0).unwrap()));
        prop_assert_eq!(bound, Srds::<Counter>::latent_bound(t, k));
        prop_assert!(peak <= bound, "T {} K {} τ {}: peak {} > bound {}", t, k, tol, peak, bound);
    }

    #[test]
    fn srds_with_blocks_stays_within_its_bound(
        (t, blocks, k) in (1usize..=60).prop_flat_map(|t| (Just(t), 1..=t + 2, 1usize..=12)),
        tol in tolerance(),
        threads in threads(),
    ) {
        let (peak, bound) = peak(threads, false, |x0| {
            Box::new(Srds::with_blocks(solver(t), blocks, k, tol, x0).unwrap())
        });
        prop_assert_eq!(bound, Srds::<Counter>::latent_bound_with_blocks(t, blocks, k));
        prop_assert!(
            peak <= bound,
            "T {} B {} K {} τ {}: peak {} > bound {}", t, blocks, k, tol, peak, bound
        );
    }
}

/// The bounds are reached, or nearly: they are not loose.
#[test]
fn bounds_are_tight() {
    // CHORDS, evenly spaced cores far apart: every core holds 5 latents plus its output.
    for k in 1..=4 {
        let init = InitSequence::from_strategy(InitStrategy::Uniform, 40, k).unwrap();
        let (peak, bound) = peak(0, false, |x0| {
            Box::new(Chords::new(solver(40), init, x0).unwrap())
        });
        assert_eq!(peak, bound, "chords K {k}");
    }
    assert_eq!(
        peak(1, false, |x0| Box::new(Sequential::new(solver(7), x0))),
        (3, 3)
    );
    let (peak_p, bound_p) = peak(1, false, |x0| {
        Box::new(Paradigms::new(solver(30), 1, 0.0, x0).unwrap())
    });
    assert_eq!(peak_p, bound_p, "paradigms, one core");
    for k in [2, 5, 9] {
        let (peak_s, bound_s) = peak(0, false, |x0| {
            Box::new(Srds::new(solver(40), k, 0.0, x0).unwrap())
        });
        assert!(peak_s + 2 >= bound_s, "srds K {k}: {peak_s} of {bound_s}");
    }
}

/// A solver claiming any number of steps, without allocating them.
#[derive(Debug)]
struct Huge(usize);

impl Solver for Huge {
    fn steps(&self) -> usize {
        self.0
    }
    fn timestep(&self, index: usize) -> Timestep {
        Timestep::new(index, 0.5, 0.5, 0.5)
    }
    fn jump(&self, _from: usize, _to: usize) -> chords::Jump {
        chords::Jump { a: 1.0, b: 0.0 }
    }
    fn prediction(&self) -> Prediction {
        Prediction::Velocity
    }
}

/// A bound that overflows `usize` is refused with `Error::Config`, before any allocation;
/// huge but representable settings allocate nothing in proportion to B² or K.
#[test]
fn settings_whose_bound_overflows_are_refused() {
    let x0 = || CpuLatent::from(vec![0.0]);
    let max = usize::MAX;
    assert_eq!(Paradigms::<CpuBackend>::latent_bound(max, 4), usize::MAX);
    assert_eq!(Srds::<CpuBackend>::latent_bound(max, max), usize::MAX);
    assert_eq!(
        Srds::<CpuBackend>::latent_bound_with_blocks(max, max / 2, 1),
        usize::MAX
    );
    assert_eq!(Chords::<CpuBackend>::latent_bound(10, max / 5), usize::MAX);
    let huge: Arc<dyn Solver> = Arc::new(Huge(max));
    let config = |r: chords::Result<()>, what: &str| match r {
        Err(Error::Config(m)) => assert!(m.contains("overflows"), "{what}: {m}"),
        other => panic!("{what}: expected a configuration error, got {other:?}"),
    };
    config(
        Paradigms::<CpuBackend>::new(huge.clone(), 8, 0.1, x0()).map(drop),
        "paradigms",
    );
    config(
        Srds::<CpuBackend>::new(huge.clone(), max, 0.1, x0()).map(drop),
        "srds",
    );
    config(
        Srds::<CpuBackend>::with_blocks(huge.clone(), max / 2, 2, 0.1, x0()).map(drop),
        "srds blocks",
    );
    // Representable but absurd: refused (the allocator cannot give T + 1 entries), not an
    // abort.
    assert!(matches!(
        Paradigms::<CpuBackend>::new(Arc::new(Huge(max / 4)), 8, 0.1, x0()),
        Err(Error::Config(_))
    ));
    // Many cores but few blocks: the bound and the bookkeeping follow B, not K.
    let few = solver(12);
    let srds = Srds::<CpuBackend>::with_blocks(few.clone(), 3, max / 2, 0.0, x0()).unwrap();
    assert_eq!(srds.max_live_latents(), 2 * 3 + 3 + 4);
    let (peak, bound) = self::peak(1, false, |x| {
        Box::new(Srds::with_blocks(solver(12), 3, max / 2, 0.0, x).unwrap())
    });
    assert!(peak <= bound, "{peak} > {bound}");
}

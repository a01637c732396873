//! The baseline samplers ParaDIGMS and SRDS (`BASELINES.md`) through `chords::run`: one
//! Picard sweep and one Parareal iteration derived by hand on a linear ODE, exactness
//! against the sequential solve, the pipelined schedule's closed form, the K-calls-per-round
//! limit, and the speed-ups on the demo mixture.

use std::sync::Arc;

use chords::{
    Backend, BetaSchedule, CpuBackend, CpuLatent, Ddim, Error, Euler, Event, FlowSchedule,
    GaussianMixture, Model, ModelError, Paradigms, Prediction, RunOptions, RunSummary, Sampler,
    Sequential, Solver, Spacing, Srds, StopRule, Timestep, VpSchedule, run,
};
use chords_wgpu::{DevicePool, DeviceSharing, GpuMixture, PoolOptions, WgpuBackend, WgpuError};
use proptest::prelude::*;

/// `out = λ·x`.
struct Linear(f32);

impl Model<CpuBackend> for Linear {
    fn evaluate(&self, _: usize, x: &CpuLatent, _: &Timestep) -> Result<CpuLatent, ModelError> {
        Ok(x.as_slice()
            .iter()
            .map(|v| self.0 * v)
            .collect::<Vec<_>>()
            .into())
    }
}

type Recorded = (RunSummary, Vec<Event<CpuLatent>>);

fn record<M: Model<CpuBackend>>(sampler: &mut dyn Sampler<CpuBackend>, model: &M) -> Recorded {
    let mut events = Vec::new();
    let options = RunOptions::default()
        .with_threads(1)
        .with_stop(StopRule::All);
    let summary = run(sampler, &CpuBackend, model, &options, &mut |e| {
        events.push(e.clone())
    })
    .unwrap();
    (summary, events)
}

/// `(round, core, index, first element)` of every `CoreUpdated`.
fn updates(events: &[Event<CpuLatent>]) -> Vec<(usize, usize, usize, f32)> {
    let pick = |e: &Event<CpuLatent>| match e {
        Event::CoreUpdated {
            round,
            core,
            index,
            latent,
        } => Some((*round, *core, *index, latent.as_slice()[0])),
        _ => None,
    };
    events.iter().filter_map(pick).collect()
}

/// The `(core, index)` lists of every round.
fn rounds(events: &[Event<CpuLatent>]) -> Vec<Vec<(usize, usize)>> {
    let pick = |e: &Event<CpuLatent>| match e {
        Event::RoundStarted { evaluations, .. } => Some(evaluations.clone()),
        _ => None,
    };
    events.iter().filter_map(pick).collect()
}

/// The single hit: `(position, core, round, latent)`.
fn hit(events: &[Event<CpuLatent>]) -> (usize, usize, usize, Vec<f32>) {
    let hits: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Hit(o) => Some((o.position, o.core, o.round, o.latent.as_slice().to_vec())),
            Event::Preview(_) => panic!("baselines stream no preview"),
            _ => None,
        })
        .collect();
    assert_eq!(hits.len(), 1, "exactly one output");
    hits.into_iter().next().unwrap()
}

fn flow(steps: usize) -> Arc<dyn Solver> {
    Arc::new(Euler::new(FlowSchedule::new(steps, 1.0).unwrap()))
}

/// T = 4, x0 = 1, v = λx with λ = 1/2, Euler on σ = 1, 3/4, 1/2, 1/4, 0: one step is
/// `Φ_j(x) = x − λx/4`, its drift `d_j = −x/8`. Window p = 4.
///
/// Sweep 1 evaluates X[0..4] = 1 (all the initial noise): every drift is −1/8, so
/// Y = X[0] + prefix sums = 7/8, 3/4, 5/8, 1/2 at indices 1..4.
/// * τ = ∞: every point but T passes, the window slides by 4: one round, output 1/2.
/// * τ = 1/2 (τ² = 1/4), σ²(1) = 2/9, σ²(2) = 1/18 (paradigms.rs unit test): point 1 moved
///   by (1/8)² = 1/64 → 9/128 ≤ 1/4 passes; point 2 by (1/4)² → 9/8 fails: b = 2.
///   Sweep 2 evaluates X[2] = 3/4, X[3] = 5/8: Y = 3/4·7/8 = 21/32 and 21/32 − 5/64 = 37/64;
///   point 3 (σ² clamped to 1e-20: its step ends at σ = 0) fails: b = 3.
///   Sweep 3 evaluates X[3] = 21/32: Y = 147/256 at T, output after 3 rounds.
#[test]
fn paradigms_sweeps_on_a_linear_ode_match_hand_derivation() {
    /// Runs τ and checks the updates, each round's `(core, index)` calls and the hit.
    fn check(
        tau: f64,
        updated: &[(usize, usize, usize, f32)],
        calls: &[&[(usize, usize)]],
        hit_at: (usize, f32),
    ) {
        let mut sampler = Paradigms::new(flow(4), 4, tau, CpuLatent::from(vec![1.0])).unwrap();
        let (summary, events) = record(&mut sampler, &Linear(0.5));
        assert_eq!(updates(&events), updated, "τ = {tau}");
        assert_eq!(rounds(&events), calls, "τ = {tau}");
        assert_eq!(summary.rounds, hit_at.0);
        assert_eq!(hit(&events), (1, 0, hit_at.0, vec![hit_at.1]));
        assert_eq!(sampler.exact_prefix(), 4);
    }
    let window: &[(usize, usize)] = &[(0, 0), (1, 1), (2, 2), (3, 3)];
    let sweep1 = [
        (1, 1, 1, 0.875),
        (1, 2, 2, 0.75),
        (1, 3, 3, 0.625),
        (1, 0, 4, 0.5),
    ];
    check(f64::INFINITY, &sweep1, &[window], (1, 0.5));
    let later = [
        (2, 3, 3, 21.0 / 32.0),
        (2, 0, 4, 37.0 / 64.0),
        (3, 0, 4, 147.0 / 256.0),
    ];
    let calls: &[&[(usize, usize)]] = &[window, &[(2, 2), (3, 3)], &[(3, 3)]];
    check(
        0.5,
        &[&sweep1[..], &later].concat(),
        calls,
        (3, 147.0 / 256.0),
    );
}

/// T = 4 in B = 2 blocks of M = 2 steps, K = 2, x0 = 1, λ = 1/2: a fine step multiplies by
/// 7/8, a coarse jump (2 steps) by 3/4.
/// * Coarse sweep: W⁰[1] = 3/4 (round 1), W⁰[2] = 9/16 (round 2).
/// * Iteration 1: W¹[1] = F_0(1) = 49/64 (exact, round 2); F_1(W⁰[1]) = 3/4·49/64 = 147/256,
///   G_1(W¹[1]) = 49/64·3/4 = 147/256, so W¹[2] = 147/256 + 147/256 − 9/16 = 75/128 (round 3,
///   = M + B − 1). |W¹[2] − W⁰[2]| = 6/256 < τ = 0.1: output after 3 rounds.
/// * With τ = 0, iteration 2: W²[2] = F_1(W¹[1]) = (7/8)⁴ = 2401/4096, the sequential solve.
///
/// Round 2 runs the coarse call at W⁰[1] (iteration 0) before the fine step of block 0
/// (iteration 1); round 3 the shared call at W¹[1] before the fine step from W⁰[1].
#[test]
fn srds_iteration_on_a_linear_ode_matches_hand_derivation() {
    let common = vec![
        (1, 0, 1, 0.875),
        (1, 0, 2, 0.75),
        (2, 0, 3, 21.0 / 32.0),
        (2, 0, 4, 9.0 / 16.0),
        (2, 1, 2, 49.0 / 64.0),
        (3, 1, 3, 343.0 / 512.0),
        (3, 0, 4, 75.0 / 128.0),
    ];
    let schedule = vec![vec![(0, 0)], vec![(0, 2), (1, 1)], vec![(1, 2), (0, 3)]];
    for (tau, out) in [(0.1, (0, 3, 75.0 / 128.0)), (0.0, (1, 4, 2401.0 / 4096.0))] {
        let mut sampler = Srds::new(flow(4), 2, tau, CpuLatent::from(vec![1.0])).unwrap();
        let (summary, events) = record(&mut sampler, &Linear(0.5));
        let (mut want_updates, mut want_rounds) = (common.clone(), schedule.clone());
        if tau == 0.0 {
            // Round 4: the fine step from W¹[1], on the core that holds it, gives W²[2].
            want_rounds.push(vec![(1, 3)]);
            want_updates.push((4, 1, 4, 2401.0 / 4096.0));
        }
        assert_eq!(updates(&events), want_updates, "τ = {tau}");
        assert_eq!(rounds(&events), want_rounds, "τ = {tau}");
        assert_eq!(hit(&events), (1, out.0, out.1, vec![out.2]));
        assert_eq!(summary.rounds, out.1);
        assert_eq!(sampler.iterations(), if tau > 0.0 { 1 } else { 2 });
        for (q, i, round) in [(0, 1, 1), (0, 2, 2), (1, 1, 2), (1, 2, 3)] {
            assert_eq!(sampler.boundary_round(q, i), Some(round), "W^{q}[{i}]");
        }
    }
}

/// The unconstrained pipeline (K = 16 ≥ any round's ready calls), T = 16, B = M = 4:
/// `W^p[i]` exists after round `p·M + i − p` (i ≥ p), iteration k's output after
/// `k·M + B − k`: 7 when τ = ∞ stops at k = 1, T = 16 when τ = 0 runs all B iterations.
#[test]
fn srds_pipeline_reproduces_the_closed_form() {
    let model = Linear(-0.3);
    for (tau, want_rounds) in [(f64::INFINITY, 7), (0.0, 16)] {
        let mut sampler =
            Srds::with_blocks(flow(16), 4, 16, tau, CpuLatent::from(vec![1.0, -2.0])).unwrap();
        let (summary, _) = record(&mut sampler, &model);
        assert_eq!(summary.rounds, want_rounds);
        assert_eq!(sampler.block_starts(), &[0, 4, 8, 12, 16]);
        // τ = ∞ stops after iteration 1; τ = 0 runs all B = 4.
        let last = if tau == 0.0 { 4 } else { 1 };
        for p in 0..=last {
            for i in p..=4 {
                assert_eq!(
                    sampler.boundary_round(p, i),
                    Some(p * 4 + i - p),
                    "R({p}, {i})"
                );
            }
        }
        if tau > 0.0 {
            // Iteration 2's output (due at round 10) was under way, not finished.
            assert_eq!(sampler.boundary_round(2, 4), None);
        }
    }
}

/// A random run configuration on a small mixture.
#[derive(Debug, Clone)]
struct Case {
    steps: usize,
    cores: usize,
    ddim: bool,
    x0: Vec<f32>,
    means: Vec<f32>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..=40,
        1usize..=10,
        any::<bool>(),
        proptest::collection::vec(-2.5f32..2.5, 6),
        proptest::collection::vec(-1.0f32..1.0, 18),
    )
        .prop_map(|(steps, cores, ddim, x0, means)| Case {
            steps,
            cores,
            ddim,
            x0,
            means,
        })
}

fn setup(case: &Case) -> (Arc<dyn Solver>, GaussianMixture) {
    let solver: Arc<dyn Solver> = if case.ddim {
        let vp = VpSchedule::new(case.steps, BetaSchedule::LINEAR, Spacing::Trailing).unwrap();
        Arc::new(Ddim::new(vp, Prediction::Epsilon).unwrap())
    } else {
        flow(case.steps)
    };
    let model =
        GaussianMixture::new(case.means.clone(), vec![3, 2, 3], 0.2, solver.prediction()).unwrap();
    (solver, model)
}

/// Checks the K-calls limit and the round/call counts; returns (rounds, output).
fn check_run(
    sampler: &mut dyn Sampler<CpuBackend>,
    model: &GaussianMixture,
    k: usize,
) -> (usize, Vec<f32>) {
    let (summary, events) = record(sampler, model);
    let rounds = rounds(&events);
    assert!(
        rounds.iter().all(|r| (1..=k).contains(&r.len())),
        "1 to K calls a round"
    );
    assert!(
        rounds.iter().all(|r| r.iter().all(|&(core, _)| core < k)),
        "core ids < K"
    );
    for r in &rounds {
        let mut cores: Vec<usize> = r.iter().map(|&(c, _)| c).collect();
        cores.sort_unstable();
        cores.dedup();
        assert_eq!(cores.len(), r.len(), "one call per core per round");
    }
    assert_eq!(
        summary.model_calls,
        rounds.iter().map(Vec::len).sum::<usize>()
    );
    let (position, _, round, latent) = hit(&events);
    assert_eq!((position, round), (1, summary.rounds));
    (summary.rounds, latent)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Both baselines converge to the sequential solve, within K calls a round.
    #[test]
    fn baselines_converge_to_the_sequential_solve(case in case()) {
        let (solver, model) = setup(&case);
        let (steps, k, x0) = (case.steps, case.cores, CpuLatent::from(case.x0.clone()));
        let mut sequential = Sequential::new(solver.clone(), x0.clone());
        let (_, reference) = check_run(&mut sequential, &model, 1);

        // ParaDIGMS, τ = 0: at most T rounds, the sequential output up to summation order
        // (its Picard sums add up to T f32 terms in another order: a few ulps a step, 1.5e-6
        // seen for DDIM at T = 32).
        let mut paradigms = Paradigms::new(solver.clone(), k, 0.0, x0.clone()).unwrap();
        let (r, out) = check_run(&mut paradigms, &model, k);
        prop_assert!(r <= steps);
        prop_assert!(max_abs_diff(&out, &reference) < 1e-5, "{out:?} vs {reference:?}");
        // p = 1: exactly T rounds and the sequential output bit for bit.
        let mut one = Paradigms::new(solver.clone(), 1, 0.1, x0.clone()).unwrap();
        prop_assert_eq!(check_run(&mut one, &model, 1), (steps, reference.clone()));
        // A loose tolerance still terminates within T rounds.
        let mut loose = Paradigms::new(solver.clone(), k, 10.0, x0.clone()).unwrap();
        prop_assert!(check_run(&mut loose, &model, k).0 <= steps);

        // SRDS, τ = 0 (B iterations): the fine steps are the sequential solver's own.
        let mut srds = Srds::new(solver.clone(), k, 0.0, x0.clone()).unwrap();
        let (r, out) = check_run(&mut srds, &model, k);
        let blocks = k.min(steps);
        prop_assert_eq!(srds.iterations(), blocks);
        prop_assert_eq!(out, reference);
        // Bounded: never more rounds than calls of all B iterations, Σ_i (i+1)·M_i.
        let starts = srds.block_starts().to_vec();
        let calls: usize = starts.windows(2).enumerate().map(|(i, w)| (i + 1) * (w[1] - w[0])).sum();
        prop_assert!(r <= calls && r >= steps.min(calls), "{r} rounds, {calls} calls");
        let mut loose = Srds::new(solver, k, 1e9, x0).unwrap();
        let (r, _) = check_run(&mut loose, &model, k);
        prop_assert!(r <= steps, "one iteration takes {r} rounds");
    }
}

#[test]
fn bad_parameters_are_config_errors() {
    let x0 = CpuLatent::from(vec![0.0]);
    for (cores, tau) in [(0, 0.1), (3, -0.5), (3, f64::NAN)] {
        let p = Paradigms::<CpuBackend>::new(flow(8), cores, tau, x0.clone());
        assert!(
            matches!(p, Err(Error::Config(_))),
            "paradigms {cores} {tau}"
        );
        let s = Srds::<CpuBackend>::new(flow(8), cores, tau, x0.clone());
        assert!(matches!(s, Err(Error::Config(_))), "srds {cores} {tau}");
    }
    let s = Srds::<CpuBackend>::with_blocks(flow(8), 0, 4, 0.1, x0);
    assert!(matches!(s, Err(Error::Config(_))));
}

/// The demo mixture, Euler T = 50, seed-0 noise: rounds and latent RMSE against the
/// sequential solve at K = 4, 6, 8 (printed with `--nocapture`).
#[test]
fn speedups_on_the_demo_mixture() {
    let (means, shape) = chords::mixture::demo_means();
    let model = GaussianMixture::new(means, shape, 0.05, Prediction::Velocity).unwrap();
    let solver = flow(50);
    let x0 = CpuLatent::from(chords::noise::gaussian(0, 3 * 32 * 32));
    let (_, reference) = check_run(&mut Sequential::new(solver.clone(), x0.clone()), &model, 1);
    let rmse = |out: &[f32]| {
        let sq: f64 = out
            .iter()
            .zip(&reference)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum();
        (sq / out.len() as f64).sqrt()
    };
    for k in [4, 6, 8] {
        let mut paradigms = Paradigms::new(solver.clone(), k, 0.1, x0.clone()).unwrap();
        let (pr, pout) = check_run(&mut paradigms, &model, k);
        let mut srds = Srds::new(solver.clone(), k, 1e-3, x0.clone()).unwrap();
        let (sr, sout) = check_run(&mut srds, &model, k);
        println!(
            "K = {k}: ParaDIGMS(τ=0.1) {pr} rounds ({:.2}x, RMSE {:.2e}); \
             SRDS(τ=1e-3) {sr} rounds ({:.2}x, {} iterations, RMSE {:.2e})",
            50.0 / pr as f64,
            rmse(&pout),
            50.0 / sr as f64,
            srds.iterations(),
            rmse(&sout),
        );
        assert!(pr < 50 && sr <= 50, "K = {k}: {pr}, {sr}");
        assert!(rmse(&pout) < 0.05 && rmse(&sout) < 0.05);
    }
}

/// `(rounds, output)` of ParaDIGMS (τ = 0.1) and SRDS (τ = 1e-3) at K = 4, T = 20.
fn both_baselines<B: Backend, M: Model<B>>(
    backend: &B,
    model: &M,
    x0: &[f32],
) -> Vec<(usize, Vec<f32>)> {
    let x0 = backend.upload(0, x0).unwrap();
    let samplers: [Box<dyn Sampler<B>>; 2] = [
        Box::new(Paradigms::new(flow(20), 4, 0.1, x0.clone()).unwrap()),
        Box::new(Srds::new(flow(20), 4, 1e-3, x0).unwrap()),
    ];
    let options = RunOptions::default()
        .with_threads(4)
        .with_stop(StopRule::All);
    samplers
        .into_iter()
        .map(|mut sampler| {
            let mut out = None;
            let summary = run(sampler.as_mut(), backend, model, &options, &mut |e| {
                if let Event::Hit(h) = e {
                    out = Some(backend.download(&h.latent).unwrap());
                }
            })
            .unwrap();
            (summary.rounds, out.unwrap())
        })
        .collect()
}

/// On four wgpu devices (one per core, so `lincomb` refuses any input left on another
/// core) both baselines give the CPU's rounds and outputs. Skips without an adapter
/// outside CI, like `wgpu.rs`.
#[test]
fn baselines_on_four_devices_match_the_cpu() {
    let options = PoolOptions::new(4).with_sharing(DeviceSharing::PerCore);
    let pool = match DevicePool::new(&options) {
        Ok(pool) => Arc::new(pool),
        Err(WgpuError::NoAdapter(why)) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping: no wgpu adapter ({why})");
            return;
        }
        Err(e) => panic!("no usable wgpu adapter: {e}"),
    };
    let gpu = WgpuBackend::new(pool);
    let (means, shape) = chords::mixture::demo_means();
    let cpu_model = GaussianMixture::new(means, shape, 0.05, Prediction::Velocity).unwrap();
    let gpu_model = GpuMixture::new(&gpu, &cpu_model).unwrap();
    let x0 = chords::noise::gaussian(3, 3 * 32 * 32);
    let on_cpu = both_baselines(&CpuBackend, &cpu_model, &x0);
    let on_gpu = both_baselines(&gpu, &gpu_model, &x0);
    for ((cpu_rounds, cpu), (gpu_rounds, gpu)) in on_cpu.iter().zip(&on_gpu) {
        assert_eq!(cpu_rounds, gpu_rounds);
        assert!(max_abs_diff(cpu, gpu) < 1e-4, "{}", max_abs_diff(cpu, gpu));
    }
    assert!(gpu.bytes_transferred() > 0);
}

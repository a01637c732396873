//! Streamed estimates of the final output (`RunOptions::with_estimates`): one per core
//! evaluated in a round, each the one jump to the end of the grid from the evaluated point,
//! and none unless asked for.

use std::sync::Arc;

use chords::{
    Backend, Chords, CpuBackend, CpuLatent, Euler, Event, FlowSchedule, GaussianMixture,
    InitSequence, Model, Prediction, RunOptions, Sampler, Sequential, Solver, StopRule, run,
};

const STEPS: usize = 10;

fn mixture() -> GaussianMixture {
    GaussianMixture::new(
        vec![0.5, -0.5, 0.2, 0.1],
        vec![2, 2],
        0.2,
        Prediction::Velocity,
    )
    .unwrap()
}

fn events_of(sampler: &mut dyn Sampler<CpuBackend>, estimates: bool) -> Vec<Event<CpuLatent>> {
    let options = RunOptions::default()
        .with_threads(1)
        .with_stop(StopRule::All)
        .with_estimates(estimates);
    let mut events = Vec::new();
    run(sampler, &CpuBackend, &mixture(), &options, &mut |e| {
        events.push(e.clone())
    })
    .unwrap();
    events
}

/// Checks every estimate against `x + (σ_T - σ_i)·v(x, σ_i)` (Euler, shift 1: σ_i = 1 - i/T,
/// σ_T = 0) at the point the core evaluated, which the previous round's `CoreUpdated` (or
/// `x0`) gives, and that each round has one estimate per evaluation.
fn check_estimates(events: &[Event<CpuLatent>], x0: &[f32]) -> usize {
    let model = mixture();
    let solver = Euler::new(FlowSchedule::new(STEPS, 1.0).unwrap());
    let mut points: Vec<(usize, usize, Vec<f32>)> = vec![(0, 0, x0.to_vec())];
    let mut next_points = Vec::new();
    let (mut evaluated, mut estimates, mut total) = (Vec::new(), Vec::new(), 0);
    for e in events {
        match e {
            Event::RoundStarted { evaluations, .. } => evaluated = evaluations.clone(),
            Event::Estimate {
                core,
                index,
                latent,
                ..
            } => {
                let x = &points
                    .iter()
                    .find(|p| p.0 == *core && p.1 == *index)
                    .unwrap_or_else(|| panic!("core {core} did not evaluate at {index}"))
                    .2;
                let v = model
                    .evaluate(*core, &CpuLatent::from(x.clone()), &solver.timestep(*index))
                    .unwrap();
                let sigma = 1.0 - *index as f32 / STEPS as f32;
                for ((got, x), v) in latent.as_slice().iter().zip(x).zip(v.as_slice()) {
                    let want = x - sigma * v;
                    assert!((got - want).abs() <= 1e-6, "{got} vs {want}");
                }
                estimates.push((*core, *index));
            }
            Event::CoreUpdated {
                core,
                index,
                latent,
                ..
            } => next_points.push((*core, *index, latent.as_slice().to_vec())),
            Event::RoundFinished { .. } => {
                assert_eq!(estimates, evaluated, "one estimate per evaluation");
                total += estimates.len();
                estimates.clear();
                points = std::mem::take(&mut next_points);
            }
            _ => {}
        }
    }
    total
}

#[test]
fn chords_streams_an_estimate_per_evaluation_when_asked_and_none_otherwise() {
    let solver: Arc<dyn Solver> = Arc::new(Euler::new(FlowSchedule::new(STEPS, 1.0).unwrap()));
    let init = InitSequence::parse("0-2-4-6", STEPS).unwrap();
    let x0 = [0.3f32, -1.2];
    let sampler = || {
        Chords::new(
            solver.clone(),
            init.clone(),
            CpuBackend.upload(0, &x0).unwrap(),
        )
    };
    let off = events_of(&mut sampler().unwrap(), false);
    assert!(!off.iter().any(|e| matches!(e, Event::Estimate { .. })));
    let on = events_of(&mut sampler().unwrap(), true);
    // Core k evaluates from round k + 1 until its hit at round T - i_k + k: T - i_k calls.
    let calls: usize = [(0, 0), (1, 2), (2, 4), (3, 6)]
        .iter()
        .map(|&(_, i)| STEPS - i)
        .sum();
    assert_eq!(check_estimates(&on, &x0), calls);
    // The rest of the stream is unchanged: the same hits, bit for bit.
    let hits = |events: &[Event<CpuLatent>]| -> Vec<Vec<f32>> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Hit(h) => Some(h.latent.as_slice().to_vec()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(hits(&on), hits(&off));
}

#[test]
fn the_sequential_solve_streams_estimates_whose_last_is_its_output() {
    let solver: Arc<dyn Solver> = Arc::new(Euler::new(FlowSchedule::new(STEPS, 1.0).unwrap()));
    let x0 = [0.3f32, -1.2];
    let mut sampler = Sequential::new(solver, CpuBackend.upload(0, &x0).unwrap());
    let events = events_of(&mut sampler, true);
    assert_eq!(check_estimates(&events, &x0), STEPS);
    let last_estimate = events.iter().rev().find_map(|e| match e {
        Event::Estimate { latent, .. } => Some(latent.as_slice().to_vec()),
        _ => None,
    });
    let hit = events.iter().find_map(|e| match e {
        Event::Hit(h) => Some(h.latent.as_slice().to_vec()),
        _ => None,
    });
    // From the last point, one step is the jump to the end.
    assert_eq!(last_estimate, hit);
}

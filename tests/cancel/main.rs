//! Cancellation (issue 7): a run cancelled at a random round stops there, leaves no thread
//! behind, and the same pool then gives the same results as a fresh one.
//!
//! A test binary of its own with one test, so the thread count of the process is this
//! test's alone.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::sync::Arc;

use chords::{
    Backend, CancelToken, Chords, CpuBackend, Euler, Event, FlowSchedule, GaussianMixture,
    InitSequence, Model, Prediction, RunOptions, StopReason, StopRule, mixture, noise, run,
};
use chords_wgpu::{DevicePool, DeviceSharing, GpuMixture, PoolOptions, WgpuBackend, WgpuError};

const STEPS: usize = 40;
const INIT: &str = "0-4-8-12-16-20-24-28";

/// Threads of this process, from `/proc/self/task` (Linux).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// The thread count once it settles at `expected` (up to 2 s): a joined thread's
/// `/proc` entry can outlive `join` by a moment, a leaked thread stays.
fn threads_settled(expected: usize) -> usize {
    for _ in 0..200 {
        if threads() == expected {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    threads()
}

/// CHORDS on 8 cores, cancelled after round `cancel_at` (if any); returns the summary and
/// every output as host data.
fn sample<B: Backend, M: Model<B>>(
    backend: &B,
    model: &M,
    cancel_at: Option<usize>,
) -> (chords::RunSummary, Vec<Vec<f32>>, Vec<usize>) {
    let solver = Arc::new(Euler::new(FlowSchedule::new(STEPS, 1.0).unwrap()));
    let x0 = backend.upload(0, &noise::gaussian(3, 3 * 32 * 32)).unwrap();
    let init = InitSequence::parse(INIT, STEPS).unwrap();
    let mut sampler = Chords::new(solver, init, x0).unwrap();
    let cancel = CancelToken::new();
    let options = RunOptions::default()
        .with_threads(0)
        .with_stop(StopRule::All)
        .with_cancel(cancel.clone());
    let (mut outputs, mut calls) = (Vec::new(), Vec::new());
    let summary = run(&mut sampler, backend, model, &options, &mut |e| match e {
        Event::Preview(o) | Event::Hit(o) => outputs.push(o.latent.clone()),
        Event::RoundFinished { round, model_calls } => {
            calls.push(*model_calls);
            if Some(*round) == cancel_at {
                cancel.cancel();
            }
        }
        _ => {}
    })
    .unwrap();
    let outputs = outputs
        .iter()
        .map(|l| backend.download(l).unwrap())
        .collect();
    (summary, outputs, calls)
}

fn mixture() -> GaussianMixture {
    let (means, shape) = mixture::demo_means();
    GaussianMixture::new(means, shape, 0.05, Prediction::Velocity).unwrap()
}

#[test]
fn a_cancelled_run_stops_at_once_and_leaves_nothing_behind() {
    let model = mixture();
    // A few pseudo-random rounds, from a fixed seed.
    let mut rng = noise::SplitMix64::new(7);
    let rounds: Vec<usize> = (0..4)
        .map(|_| 1 + (rng.uniform() * (STEPS - 2) as f64) as usize)
        .collect();

    // CPU backend, 8 worker threads.
    let baseline = threads();
    let (_, fresh, calls) = sample(&CpuBackend, &model, None);
    for &r in &rounds {
        let (summary, ..) = sample(&CpuBackend, &model, Some(r));
        assert_eq!((summary.reason, summary.rounds), (StopReason::Cancelled, r));
        assert_eq!(summary.model_calls, calls[..r].iter().sum::<usize>());
        assert_eq!(
            threads_settled(baseline),
            baseline,
            "threads left behind after round {r}"
        );
        assert_eq!(sample(&CpuBackend, &model, None).1, fresh);
    }

    // wgpu: cancel, then run again on the same pool; same as on a fresh pool.
    let pool = |sharing| match DevicePool::new(&PoolOptions::new(8).with_sharing(sharing)) {
        Ok(pool) => Some(Arc::new(pool)),
        Err(WgpuError::NoAdapter(why)) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping the wgpu part: no adapter ({why})");
            None
        }
        Err(e) => panic!("no usable wgpu adapter (CI=true requires one): {e}"),
    };
    let Some(fresh_pool) = pool(DeviceSharing::PerAdapter) else {
        return;
    };
    let gpu = WgpuBackend::new(fresh_pool);
    let (_, want, _) = sample(&gpu, &GpuMixture::new(&gpu, &model).unwrap(), None);
    drop(gpu);
    let reused = WgpuBackend::new(pool(DeviceSharing::PerAdapter).unwrap());
    let gpu_model = GpuMixture::new(&reused, &model).unwrap();
    let with_pool = threads();
    let buffers = || -> usize {
        reused
            .pool()
            .gpus()
            .iter()
            .map(|g| g.buffers_in_use())
            .sum()
    };
    let held_by_model = buffers();
    for &r in &rounds {
        let (summary, ..) = sample(&reused, &gpu_model, Some(r));
        assert_eq!((summary.reason, summary.rounds), (StopReason::Cancelled, r));
        assert_eq!(
            threads_settled(with_pool),
            with_pool,
            "threads left behind after round {r}"
        );
        assert_eq!(
            buffers(),
            held_by_model,
            "buffers left behind after round {r}"
        );
        assert_eq!(
            sample(&reused, &gpu_model, None).1,
            want,
            "after cancelling at {r}"
        );
    }
}

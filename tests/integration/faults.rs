//! Cores that fail: a fault-injecting model on a backend with several (virtual) devices.
//! Whatever fails and whenever, the final output equals the sequential solve bit for bit
//! (issue 7): a failing faster core is retired, a failing core 0 moves to another device.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chords::{
    Backend, BackendError, Chords, CpuBackend, CpuLatent, Error, Euler, Event, FlowSchedule,
    GaussianMixture, InitSequence, Model, ModelError, Prediction, RunOptions, Sequential,
    StopReason, StopRule, Timestep, backend::Term, run,
};
use proptest::prelude::*;

/// A latent tagged with the device it lives on.
#[derive(Debug, Clone)]
struct Tagged {
    device: usize,
    data: CpuLatent,
}

/// The CPU backend split into devices: core c starts on device c, and one spare device
/// (the last) takes relocated cores. `lincomb` refuses inputs from another device, so a
/// sampler that forgot to move a core's state fails loudly.
struct Devices {
    core_device: Vec<AtomicUsize>,
    spare: usize,
}

impl Devices {
    fn new(cores: usize) -> Self {
        Self {
            core_device: (0..cores).map(AtomicUsize::new).collect(),
            spare: cores,
        }
    }

    fn device(&self, core: usize) -> Result<usize, BackendError> {
        self.core_device
            .get(core)
            .map(|d| d.load(Ordering::SeqCst))
            .ok_or(BackendError::NoSuchCore {
                core,
                cores: self.core_device.len(),
            })
    }
}

impl Backend for Devices {
    type Latent = Tagged;

    fn name(&self) -> String {
        "tagged cpu".into()
    }

    fn upload(&self, core: usize, data: &[f32]) -> Result<Tagged, BackendError> {
        Ok(Tagged {
            device: self.device(core)?,
            data: CpuBackend.upload(core, data)?,
        })
    }

    fn download(&self, latent: &Tagged) -> Result<Vec<f32>, BackendError> {
        CpuBackend.download(&latent.data)
    }

    fn numel(&self, latent: &Tagged) -> usize {
        latent.data.as_slice().len()
    }

    fn lincomb(&self, core: usize, terms: &[Term<'_, Tagged>]) -> Result<Tagged, BackendError> {
        let device = self.device(core)?;
        if let Some((_, x)) = terms.iter().find(|(_, x)| x.device != device) {
            return Err(BackendError::Device(format!(
                "core {core} is on device {device} but got a latent from device {}",
                x.device
            )));
        }
        let inner: Vec<Term<'_, CpuLatent>> = terms.iter().map(|(c, x)| (*c, &x.data)).collect();
        Ok(Tagged {
            device,
            data: CpuBackend.lincomb(core, &inner)?,
        })
    }

    fn transfer(&self, latent: &Tagged, to: usize) -> Result<Tagged, BackendError> {
        Ok(Tagged {
            device: self.device(to)?,
            data: latent.data.clone(),
        })
    }

    fn relocate(&self, core: usize) -> Result<bool, BackendError> {
        let moved = self.device(core)? != self.spare;
        self.core_device[core].store(self.spare, Ordering::SeqCst);
        Ok(moved)
    }
}

/// The mixture, failing (alternately with an error and a panic) at chosen `(core, grid
/// index)` calls, and on device 0 from grid index `device_0_dies_at` on.
struct Faulty {
    mixture: GaussianMixture,
    fail: Vec<(usize, usize)>,
    device_0_dies_at: Option<usize>,
}

impl Model<Devices> for Faulty {
    fn evaluate(&self, core: usize, x: &Tagged, t: &Timestep) -> Result<Tagged, ModelError> {
        if let Some(k) = self.fail.iter().position(|&f| f == (core, t.index)) {
            assert!(k % 2 == 0, "injected panic on core {core}");
            return Err(ModelError::new(format!("injected failure on core {core}")));
        }
        if x.device == 0 && self.device_0_dies_at.is_some_and(|i| t.index >= i) {
            return Err(ModelError::new("device 0 is gone"));
        }
        Ok(Tagged {
            device: x.device,
            data: self.mixture.evaluate(core, &x.data, t)?,
        })
    }
}

#[derive(Debug, Clone)]
struct Case {
    steps: usize,
    starts: Vec<usize>,
    fail: Vec<(usize, usize)>,
    device_0_dies_at: Option<usize>,
    threads: usize,
}

fn case() -> impl Strategy<Value = Case> {
    (2usize..=40)
        .prop_flat_map(|steps| (Just(steps), 1..=steps.min(8)))
        .prop_flat_map(|(steps, cores)| {
            (
                Just(steps),
                proptest::sample::subsequence((1..steps).collect::<Vec<_>>(), cores - 1),
                proptest::collection::vec((1..cores.max(2), 0..steps), 0..6),
                proptest::option::of(0..steps),
                prop_oneof![Just(1), Just(0)],
            )
        })
        .prop_map(|(steps, tail, fail, device_0_dies_at, threads)| Case {
            steps,
            starts: std::iter::once(0).chain(tail).collect(),
            fail,
            device_0_dies_at,
            threads,
        })
}

fn mixture() -> GaussianMixture {
    let means = vec![0.6, -0.4, 0.2, 0.9, -0.7, 0.1, 0.3, 0.5, -0.2];
    GaussianMixture::new(means, vec![3, 3], 0.2, Prediction::Velocity).unwrap()
}

const X0: [f32; 3] = [0.4, -1.1, 0.7];

fn sequential(steps: usize) -> Vec<u32> {
    let solver = Arc::new(Euler::new(FlowSchedule::new(steps, 1.0).unwrap()));
    let mut sampler = Sequential::new(solver, CpuLatent::from(X0.to_vec()));
    let mut last = None;
    let options = RunOptions::default()
        .with_threads(1)
        .with_stop(StopRule::All);
    run(&mut sampler, &CpuBackend, &mixture(), &options, &mut |e| {
        if let Event::Hit(h) = e {
            last = Some(h.latent.as_slice().iter().map(|v| v.to_bits()).collect());
        }
    })
    .unwrap();
    last.unwrap()
}

fn check(case: &Case) {
    let cores = case.starts.len();
    let backend = Devices::new(cores);
    let solver = Arc::new(Euler::new(FlowSchedule::new(case.steps, 1.0).unwrap()));
    let init = InitSequence::new(case.starts.clone(), case.steps).unwrap();
    let x0 = backend.upload(0, &X0).unwrap();
    let mut sampler = Chords::new(solver, init, x0).unwrap();
    let model = Faulty {
        mixture: mixture(),
        fail: case.fail.clone(),
        device_0_dies_at: case.device_0_dies_at,
    };
    let (mut hits, mut retired, mut moved) = (Vec::new(), Vec::new(), Vec::new());
    let options = RunOptions::default()
        .with_threads(case.threads)
        .with_stop(StopRule::All);
    let summary = run(&mut sampler, &backend, &model, &options, &mut |e| match e {
        Event::Hit(h) => hits.push((h.core, h.latent.clone())),
        Event::CoreRetired { core, .. } => retired.push(*core),
        Event::CoreMoved { core, .. } => moved.push(*core),
        _ => {}
    })
    .unwrap();
    assert_eq!(summary.reason, StopReason::Finished);
    assert_eq!(summary.rounds, case.steps, "core 0 never waits");
    assert_eq!(summary.retired, retired);
    // Core 0 moves at most once (to the spare device), exactly when device 0 died while
    // core 0 still had calls to make there.
    assert_eq!(moved, vec![0; case.device_0_dies_at.map_or(0, |_| 1)]);
    assert!(retired.iter().all(|&c| c > 0), "core 0 is never retired");
    // Every core either hits or is retired, never both; hits stay fastest first.
    let mut seen: Vec<usize> = hits
        .iter()
        .map(|(c, _)| *c)
        .chain(retired.clone())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..cores).collect::<Vec<_>>());
    assert!(hits.windows(2).all(|w| w[0].0 > w[1].0));
    let (last_core, last) = hits.last().unwrap();
    assert_eq!(*last_core, 0);
    let bits: Vec<u32> = last.data.as_slice().iter().map(|v| v.to_bits()).collect();
    assert_eq!(
        bits,
        sequential(case.steps),
        "final output differs: {case:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn failing_cores_never_change_the_final_output(case in case()) {
        check(&case);
    }
}

/// A hand-picked case: T = 12, 0-3-6-9; core 2 fails on its first call (index 6, round
/// 4), so core 1 must spawn core 3 at index 9 itself; device 0 dies at index 5.
#[test]
fn a_core_failing_on_its_first_call_hands_over_the_spawn() {
    check(&Case {
        steps: 12,
        starts: vec![0, 3, 6, 9],
        fail: vec![(2, 6)],
        device_0_dies_at: Some(5),
        threads: 0,
    });
}

/// On a backend with one device (the plain CPU) core 0 cannot move: the run fails and
/// says where.
#[test]
fn core_0_failing_with_nowhere_to_go_is_an_error() {
    struct FailsAt4(GaussianMixture);
    impl Model<CpuBackend> for FailsAt4 {
        fn evaluate(&self, c: usize, x: &CpuLatent, t: &Timestep) -> Result<CpuLatent, ModelError> {
            match (c, t.index) {
                (0, 4) => Err(ModelError::new("out of memory")),
                _ => self.0.evaluate(c, x, t),
            }
        }
    }
    let solver = Arc::new(Euler::new(FlowSchedule::new(10, 1.0).unwrap()));
    let init = InitSequence::parse("0-5", 10).unwrap();
    let mut sampler = Chords::new(solver, init, CpuLatent::from(X0.to_vec())).unwrap();
    let options = RunOptions::default()
        .with_threads(1)
        .with_stop(StopRule::All);
    let err = run(
        &mut sampler,
        &CpuBackend,
        &FailsAt4(mixture()),
        &options,
        &mut |_| {},
    )
    .unwrap_err();
    match err {
        Error::Model {
            round, core, index, ..
        } => assert_eq!((round, core, index), (5, 0, 4)),
        other => panic!("expected a model error, got {other:?}"),
    }
}

//! The CHORDS engine on random grids, sequences, stop rules and failing cores: it never
//! panics or hangs, stops where the rule says, and whenever it reaches core 0's hit that
//! hit equals the sequential solve bit for bit.
#![no_main]

use std::sync::Arc;

use arbitrary::Arbitrary;
use chords::{
    Chords, CpuBackend, CpuLatent, Euler, Event, FlowSchedule, GaussianMixture, InitSequence,
    Model, ModelError, Prediction, RunOptions, Sequential, StopReason, StopRule, Timestep, run,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Case {
    steps: u8,
    /// Gaps between consecutive starts (0 gaps are invalid sequences: must be refused).
    gaps: Vec<u8>,
    stop: u8,
    stop_n: u8,
    /// `(core, grid index)` calls that fail.
    failures: Vec<(u8, u8)>,
    x0: [i8; 3],
    threads: bool,
}

/// A mixture failing at chosen calls.
struct Failing {
    mixture: GaussianMixture,
    failures: Vec<(usize, usize)>,
}

impl Model<CpuBackend> for Failing {
    fn evaluate(&self, core: usize, x: &CpuLatent, t: &Timestep) -> Result<CpuLatent, ModelError> {
        if self.failures.contains(&(core, t.index)) {
            return Err(ModelError::new("injected"));
        }
        self.mixture.evaluate(core, x, t)
    }
}

fn final_of(
    sampler: &mut dyn chords::Sampler<CpuBackend>,
    model: &dyn Model<CpuBackend>,
    options: &RunOptions,
) -> (chords::Result<chords::RunSummary>, Option<(usize, Vec<u32>)>, Vec<usize>) {
    let (mut last, mut hits) = (None, Vec::new());
    let result = run(sampler, &CpuBackend, model, options, &mut |e| {
        if let Event::Hit(h) = e {
            hits.push(h.round);
            last = Some((h.core, h.latent.as_slice().iter().map(|v| v.to_bits()).collect()));
        }
    });
    (result, last, hits)
}

fuzz_target!(|case: Case| {
    let steps = 1 + case.steps as usize % 64;
    let mut starts = vec![0usize];
    for g in case.gaps.iter().take(9) {
        starts.push(starts[starts.len() - 1] + *g as usize % 8);
    }
    let Ok(init) = InitSequence::new(starts.clone(), steps) else {
        return;
    };
    let cores = init.cores();
    let stop = match case.stop % 3 {
        0 => StopRule::CoreIndex(case.stop_n as usize % (cores + 2)),
        1 => StopRule::Residual(case.stop_n as f64 * 1e-4),
        _ => StopRule::All,
    };
    let mixture = GaussianMixture::new(
        vec![0.6, -0.4, 0.2, 0.9, -0.7, 0.1],
        vec![2, 3],
        0.25,
        Prediction::Velocity,
    )
    .expect("valid mixture");
    let failures: Vec<(usize, usize)> = case
        .failures
        .iter()
        .take(8)
        .map(|&(c, i)| (c as usize % cores, i as usize % steps))
        .collect();
    let core0_fails = failures.iter().any(|f| f.0 == 0);
    let model = Failing { mixture, failures };
    let x0: Vec<f32> = case.x0.iter().map(|v| *v as f32 / 50.0).collect();
    let solver = Arc::new(Euler::new(FlowSchedule::new(steps, 1.0).expect("steps ≥ 1")));
    let options = RunOptions::default()
        .with_threads(if case.threads { 0 } else { 1 })
        .with_stop(stop);
    let mut sampler = Chords::new(solver.clone(), init, CpuLatent::from(x0.clone())).expect("init fits");
    let (result, last, hits) = final_of(&mut sampler, &model, &options);
    let summary = match (result, stop) {
        (Err(chords::Error::StopRule { .. }), StopRule::CoreIndex(n)) => {
            assert!(n > cores);
            return;
        }
        // Core 0 cannot move on the CPU backend: its failure ends the run.
        (Err(chords::Error::Model { core: 0, .. }), _) => {
            assert!(core0_fails);
            return;
        }
        (Err(e), _) => panic!("unexpected error {e}"),
        (Ok(s), _) => s,
    };
    assert!(summary.rounds <= steps);
    // The rule is checked after each round; hits of the same round all arrive.
    if let StopRule::CoreIndex(n) = stop {
        if n >= 1 && summary.reason == StopReason::Rule {
            assert_eq!(hits.get(n - 1), Some(&summary.rounds));
        }
    }
    if summary.reason == StopReason::Finished {
        assert_eq!(summary.rounds, steps);
        let (core, bits) = last.expect("a finished run has hits");
        assert_eq!(core, 0);
        let mut sequential = Sequential::new(solver, CpuLatent::from(x0));
        let all = RunOptions::default().with_threads(1).with_stop(StopRule::All);
        let (_, want, _) = final_of(&mut sequential, &model.mixture, &all);
        assert_eq!(Some(bits), want.map(|w| w.1));
    }
});

//! diffusers scheduler configs from arbitrary text, step counts and options: a typed error
//! or a solver whose every grid point, jump and initial scale is finite, never a panic.
#![no_main]

use chords::diffusers::{DiffusersOptions, SchedulerConfig, SchedulerKind, solver_from_config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, u16, u8, Option<f32>, Option<u16>)| {
    let (text, steps, kind, mu, seq_len) = input;
    let Ok(config) = SchedulerConfig::parse(text) else {
        return;
    };
    let mut options = DiffusersOptions::default();
    options.solver = match kind % 4 {
        0 => None,
        1 => Some(SchedulerKind::Ddim),
        2 => Some(SchedulerKind::EulerDiscrete),
        _ => Some(SchedulerKind::FlowMatchEuler),
    };
    options.mu = mu.map(f64::from);
    options.image_seq_len = seq_len.map(u64::from);
    let steps = usize::from(steps % 1200);
    let Ok(built) = solver_from_config(&config, steps, &options) else {
        return;
    };
    let s = built.solver;
    assert_eq!(s.steps(), steps);
    for i in 0..=steps {
        let p = s.point(i);
        assert!(p.alpha.is_finite() && p.sigma.is_finite());
        assert!(s.timestep(i).t.is_finite());
    }
    for i in 0..steps {
        let j = s.jump(i, i + 1);
        assert!(j.a.is_finite() && j.b.is_finite(), "{:?} at {i}: {j:?}", built.kind);
    }
    assert!(s.initial_noise_scale().is_finite());
});

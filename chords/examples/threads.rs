//! Benchmark: does the CPU executor run a round's model calls on several threads at once?
//!
//! Runs CHORDS on a Gaussian mixture large enough that model calls dominate (64 components
//! of 3×128×128 by default), with one worker thread and with one per core, and prints the
//! median wall time of each and their ratio.
//!
//! ```sh
//! cargo run --release -p chords --example threads -- [cores] [components] [side] [repeats]
//! ```

use std::sync::Arc;
use std::time::Instant;

use chords::{
    Backend, Chords, CpuBackend, Euler, FlowSchedule, GaussianMixture, InitSequence, InitStrategy,
    Prediction, RunOptions, StopRule, noise, run,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(std::env::args()
            .nth(i)
            .map(|a| a.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let (cores, components, side, repeats) = (arg(1, 2)?, arg(2, 64)?, arg(3, 128)?, arg(4, 5)?);
    let steps = 50;
    let shape = vec![components, 3, side, side];
    let numel = 3 * side * side;
    let means = noise::gaussian(1, components * numel)
        .iter()
        .map(|v| v * 0.5)
        .collect();
    let model = GaussianMixture::new(means, shape, 0.1, Prediction::Velocity)?;
    let solver = Arc::new(Euler::new(FlowSchedule::new(steps, 1.0)?));
    let init = InitSequence::from_strategy(InitStrategy::Uniform, steps, cores)?;
    let x0 = noise::gaussian(0, numel);
    println!(
        "CHORDS, {steps} steps, init {init}, mixture of {components} × 3×{side}×{side}, stop at the fastest hit"
    );

    let mut medians = Vec::new();
    for threads in [1, cores] {
        let mut times = Vec::new();
        let mut summary = None;
        // One untimed warm-up run, then `repeats` timed ones.
        for repeat in 0..=repeats {
            let mut sampler =
                Chords::new(solver.clone(), init.clone(), CpuBackend.upload(0, &x0)?)?;
            let options = RunOptions::default()
                .with_threads(threads)
                .with_stop(StopRule::CoreIndex(1));
            let started = Instant::now();
            summary = Some(run(
                &mut sampler,
                &CpuBackend,
                &model,
                &options,
                &mut |_| {},
            )?);
            if repeat > 0 {
                times.push(started.elapsed().as_secs_f64() * 1e3);
            }
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let s = summary.ok_or("no repeats")?;
        println!(
            "threads {threads}: median {median:8.1} ms over {repeats} runs ({} rounds, {} model calls, {:.2} ms per call-round)",
            s.rounds,
            s.model_calls,
            median / s.rounds as f64
        );
        medians.push(median);
    }
    println!(
        "speed-up of {cores} threads over 1: {:.2}x",
        medians[0] / medians[1]
    );
    Ok(())
}

//! Measurement: how much memory CHORDS needs, and that it does not grow with rounds.
//!
//! Runs CHORDS (paper sequence) with 8 cores on a 4 M-element latent with a cheap
//! element-wise model (`v = x - 0.5`, so time goes to the engine, not the model), for a
//! short and a long grid, counting live latents ([`Counting`]) and reading the
//! process's peak resident memory (`VmHWM`, Linux).
//!
//! ```sh
//! cargo run --release -p chords --example memory -- [elements] [steps...]
//! ```

use std::sync::Arc;

use chords::backend::{Counted, Counting};
use chords::{
    Backend, Chords, CpuBackend, CpuLatent, Euler, FlowSchedule, InitSequence, InitStrategy, Model,
    ModelError, RunOptions, StopRule, Timestep, run,
};

/// `v = x - 0.5`: the flow towards the constant picture 0.5.
struct Drift<'a>(&'a Counting<CpuBackend>);

type Latent = Arc<Counted<CpuLatent>>;

impl Model<Counting<CpuBackend>> for Drift<'_> {
    fn evaluate(&self, _core: usize, x: &Latent, _t: &Timestep) -> Result<Latent, ModelError> {
        let v: Vec<f32> = x.inner().as_slice().iter().map(|v| v - 0.5).collect();
        Ok(self.0.wrap(v.into()))
    }
}

/// Peak resident memory of this process in MiB, from `/proc/self/status`.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let numel: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1 << 22);
    let mut grids: Vec<usize> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    if grids.is_empty() {
        grids = vec![50, 200];
    }
    let cores = 8;
    let mib = numel as f64 * 4.0 / (1 << 20) as f64;
    println!("CHORDS, {cores} cores, latent of {numel} f32 ({mib:.1} MiB), model v = x - 0.5");
    println!("steps  rounds  peak live latents  per core  peak RSS (MiB)  RSS / latent");
    for steps in grids {
        let backend = Counting::new(CpuBackend);
        let solver = Arc::new(Euler::new(FlowSchedule::new(steps, 1.0)?));
        let init = InitSequence::from_strategy(InitStrategy::Paper, steps, cores)?;
        let x0 = backend.upload(0, &vec![0.1; numel])?;
        let mut sampler = Chords::new(solver, init, x0)?;
        let options = RunOptions::default()
            .with_threads(2)
            .with_stop(StopRule::All);
        let summary = run(
            &mut sampler,
            &backend,
            &Drift(&backend),
            &options,
            &mut |_| {},
        )?;
        drop(sampler);
        let peak = backend.peak();
        let rss = peak_rss_mib().unwrap_or(f64::NAN);
        println!(
            "{steps:>5}  {:>6}  {peak:>17}  {:>8.1}  {rss:>14.0}  {:>12.1}",
            summary.rounds,
            peak as f64 / cores as f64,
            rss / mib
        );
        assert_eq!(backend.live(), 0, "latents leaked");
    }
    Ok(())
}

//! Measurement: one device, many cores. Wall time per CHORDS round with K = 8 cores when a
//! round's 8 calls of the emoji model run as one stacked forward pass, against one call
//! per core (on 8 worker threads), on burn-ndarray and on burn-wgpu.
//!
//! Rounds 9 to 12 are timed (all 8 cores active); the run is then cancelled.
//!
//! ```sh
//! cargo run --release -p chords-viewer --example emoji_batching -- [ndarray|wgpu|both]
//! ```

use std::sync::Arc;
use std::time::Instant;

use burn::tensor::{Device, DeviceKind};
use chords::{
    CancelToken, Chords, CpuLatent, Euler, Event, FlowSchedule, InitSequence, RunOptions, StopRule,
    noise, run,
};
use chords_emoji::{EmojiModel, NUMEL, cpu_device};

const TIMED: std::ops::RangeInclusive<usize> = 9..=12;

fn per_round_ms(model: &EmojiModel) -> Result<f64, Box<dyn std::error::Error>> {
    let solver = Arc::new(Euler::new(FlowSchedule::new(50, 1.0)?));
    let init = InitSequence::parse("0-2-4-8-16-24-32-40", 50)?;
    let x0 = CpuLatent::from(noise::gaussian(0, NUMEL));
    let mut sampler = Chords::new(solver, init, x0)?;
    let cancel = CancelToken::new();
    let options = RunOptions::default()
        .with_threads(0)
        .with_stop(StopRule::All)
        .with_cancel(cancel.clone());
    let mut started = None;
    let mut elapsed = 0.0;
    run(
        &mut sampler,
        &chords::CpuBackend,
        model,
        &options,
        &mut |e| match e {
            Event::RoundStarted { round, .. } if round == TIMED.start() => {
                started = Some(Instant::now());
            }
            Event::RoundFinished { round, .. } if round == TIMED.end() => {
                elapsed = started.map_or(0.0, |s| s.elapsed().as_secs_f64() * 1e3);
                cancel.cancel();
            }
            _ => {}
        },
    )?;
    Ok(elapsed / TIMED.count() as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "both".into());
    let mut devices: Vec<(&str, Device)> = Vec::new();
    if which != "wgpu" {
        devices.push(("burn-ndarray", cpu_device()));
    }
    if which != "ndarray" {
        devices.push(("burn-wgpu", Device::wgpu(DeviceKind::default())));
    }
    println!(
        "CHORDS K = 8, T = 50, emoji model (guidance {}), ms per round over rounds 9-12",
        chords_emoji::DEFAULT_GUIDANCE
    );
    println!(
        "{:<14} {:>12} {:>14} {:>8}",
        "device", "batched", "one per core", "ratio"
    );
    for (name, device) in devices {
        let batched = per_round_ms(&EmojiModel::shipped(&device)?.with_batching(true))?;
        let single = per_round_ms(&EmojiModel::shipped(&device)?.with_batching(false))?;
        println!(
            "{name:<14} {batched:>9.1} ms {single:>11.1} ms {:>7.2}x",
            single / batched
        );
    }
    Ok(())
}

//! Benchmark of the wgpu backend's kernels and engine overhead.
//!
//! 1. The fused `lincomb` kernel's effective bandwidth (bytes read + written per second) on
//!    16 M-element latents, with 2 inputs (a solver step) and 6 (a rectification), against a
//!    plain buffer-to-buffer copy on the same device.
//! 2. Engine overhead: the time per CHORDS round spent outside model calls, for K = 8 cores
//!    and a 1 M-element latent, with a model that costs nothing (it returns its input).
//!
//! ```sh
//! cargo run --release -p chords-wgpu --example kernels -- [elements] [repeats]
//! ```

use std::sync::Arc;
use std::time::Instant;

use chords::backend::Term;
use chords::{
    Backend, Chords, Euler, FlowSchedule, InitSequence, Model, ModelError, RunOptions, StopRule,
    Timestep, noise, run,
};
use chords_wgpu::{DevicePool, GpuLatent, PoolOptions, WgpuBackend};

/// A model whose output is its input: every second of a round is engine overhead.
struct Identity;

impl<B: Backend> Model<B> for Identity {
    fn evaluate(
        &self,
        _core: usize,
        x: &B::Latent,
        _t: &Timestep,
    ) -> Result<B::Latent, ModelError> {
        Ok(x.clone())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(std::env::args()
            .nth(i)
            .map(|a| a.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let (n, repeats) = (arg(1, 16 << 20)?, arg(2, 10)?);
    let pool = Arc::new(DevicePool::new(&PoolOptions::new(8))?);
    let gpu = pool.gpus()[0].clone();
    println!("device: {}", gpu.describe());
    let backend = WgpuBackend::new(pool.clone());

    // 1. Bandwidth.
    let data = noise::gaussian(0, n);
    let inputs: Vec<GpuLatent> = (0..6)
        .map(|_| backend.upload(0, &data))
        .collect::<Result<_, _>>()?;
    let bytes = (n * 4) as f64;
    let time = |f: &mut dyn FnMut()| -> f64 {
        f(); // warm-up: pipelines, first touch of memory, the buffer free list
        gpu.wait().ok();
        let started = Instant::now();
        for _ in 0..repeats {
            f();
        }
        gpu.wait().ok();
        started.elapsed().as_secs_f64() / repeats as f64
    };
    let copy_dst = gpu
        .device()
        .create_buffer(&chords_wgpu::wgpu::BufferDescriptor {
            label: Some("copy"),
            size: (n * 4) as u64,
            usage: chords_wgpu::wgpu::BufferUsages::COPY_DST
                | chords_wgpu::wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
    let copy = time(&mut || {
        let mut encoder = gpu.device().create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(inputs[0].buffer(), 0, &copy_dst, 0, (n * 4) as u64);
        gpu.queue().submit([encoder.finish()]);
    });
    let copy_bw = 2.0 * bytes / copy;
    println!(
        "copy      {n} elements: {:8.2} ms, {:7.2} GB/s",
        copy * 1e3,
        copy_bw / 1e9
    );
    for terms in [2usize, 6, 2] {
        let t: Vec<Term<'_, GpuLatent>> = inputs[..terms].iter().map(|x| (0.5f32, x)).collect();
        let secs = time(&mut || {
            backend.lincomb(0, &t).ok();
        });
        let bw = (terms as f64 + 1.0) * bytes / secs;
        println!(
            "lincomb/{terms} {n} elements: {:8.2} ms, {:7.2} GB/s = {:.2} of copy bandwidth",
            secs * 1e3,
            bw / 1e9,
            bw / copy_bw
        );
    }
    drop(inputs);

    // 2. Engine overhead per round, K = 8, 1 M elements.
    let m = 1 << 20;
    let solver = Arc::new(Euler::new(FlowSchedule::new(50, 1.0)?));
    let init = InitSequence::parse("0-2-4-8-16-24-32-40", 50)?;
    let x0 = noise::gaussian(1, m);
    for (name, threads) in [("one worker thread", 1), ("one thread per core", 0)] {
        let mut sampler = Chords::new(solver.clone(), init.clone(), backend.upload(0, &x0)?)?;
        let options = RunOptions::default()
            .with_threads(threads)
            .with_stop(StopRule::All);
        let started = Instant::now();
        let summary = run(&mut sampler, &backend, &Identity, &options, &mut |_| {})?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "engine overhead, K = 8, {m} elements, {name}: {:.2} ms per round ({} rounds, {:.0} ms in all)",
            secs * 1e3 / summary.rounds as f64,
            summary.rounds,
            secs * 1e3
        );
    }
    let mut sampler = Chords::new(solver, init, chords::CpuBackend.upload(0, &x0)?)?;
    let started = Instant::now();
    let summary = run(
        &mut sampler,
        &chords::CpuBackend,
        &Identity,
        &RunOptions::default()
            .with_threads(1)
            .with_stop(StopRule::All),
        &mut |_| {},
    )?;
    println!(
        "engine overhead, K = 8, {m} elements, CPU backend: {:.2} ms per round",
        started.elapsed().as_secs_f64() * 1e3 / summary.rounds as f64
    );
    Ok(())
}

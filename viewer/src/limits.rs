//! Limits checked before any work: generous for real use, small enough that no command
//! line can make `chords` allocate without bound or run for ever.

use anyhow::{Result, bail};
use chords::{Chords, CpuBackend, Paradigms, Sequential, Srds};

use crate::cli::SamplerKind;

/// Most sampling steps T (real pipelines use 1 to 1000).
pub const MAX_STEPS: usize = 100_000;
/// Most cores K (a core is a worker thread or a device lane).
pub const MAX_CORES: usize = 1024;
/// Most elements of one latent (64 Mi f32 values, 256 MiB: far above a 1024×1024 image's
/// 4×128×128 diffusion latent).
pub const MAX_LATENT_ELEMENTS: usize = 1 << 26;

/// Most bytes of latents one run may hold at once (8 GiB): the sampler's bound on live
/// latents × elements per latent × 4 bytes.
pub const MAX_LATENT_BYTES: u64 = 8 << 30;

/// The most latents `sampler` holds at once over `steps` steps on `cores` cores (the
/// library's `latent_bound` of each sampler): sequential 3, CHORDS 6·K, ParaDIGMS
/// T + 2·min(K, T) + 4, SRDS (K blocks) 3·K + 4.
pub fn live_latents(sampler: SamplerKind, steps: usize, cores: usize) -> usize {
    match sampler {
        SamplerKind::Sequential => Sequential::<CpuBackend>::latent_bound(steps, cores),
        SamplerKind::Chords => Chords::<CpuBackend>::latent_bound(steps, cores),
        SamplerKind::Paradigms => Paradigms::<CpuBackend>::latent_bound(steps, cores),
        SamplerKind::Srds => Srds::<CpuBackend>::latent_bound(steps, cores),
    }
}

/// Refuses a run whose latents would need more than [`MAX_LATENT_BYTES`], or more than the
/// memory available, naming the formula's terms.
pub fn check_memory(
    sampler: SamplerKind,
    steps: usize,
    cores: usize,
    elements: usize,
) -> Result<()> {
    let live = live_latents(sampler, steps, cores);
    let bytes = (live as u64)
        .checked_mul(elements as u64)
        .and_then(|b| b.checked_mul(4))
        .unwrap_or(u64::MAX);
    let name = format!("{sampler:?}").to_lowercase();
    if let Some(available) = available_memory().filter(|&a| bytes <= MAX_LATENT_BYTES && bytes > a)
    {
        bail!(
            "{name} with {steps} steps on {cores} cores holds up to {live} latents of {elements} \
             elements: {:.1} GiB, more than the {:.1} GiB of memory this machine has available",
            gib(bytes),
            gib(available)
        );
    }
    if bytes > MAX_LATENT_BYTES {
        bail!(
            "{name} with {steps} steps on {cores} cores holds up to {live} latents of {elements} \
             elements: {:.1} GiB, above the limit of {} GiB (fewer steps, cores or a smaller \
             latent)",
            gib(bytes),
            MAX_LATENT_BYTES >> 30
        );
    }
    Ok(())
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

/// The memory the kernel says is available (`MemAvailable` of `/proc/meminfo`), where
/// there is one.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Refuses step and core counts above the limits, saying why.
pub fn check_counts(steps: usize, cores: usize) -> Result<()> {
    if steps > MAX_STEPS {
        bail!(
            "--steps {steps} is above the limit of {MAX_STEPS} (each step is a model call on \
             core 0; real pipelines use at most 1000)"
        );
    }
    if cores > MAX_CORES {
        bail!(
            "--cores {cores} is above the limit of {MAX_CORES} (each core runs a thread or a \
             device lane of its own)"
        );
    }
    Ok(())
}

/// Refuses a latent shape with more than [`MAX_LATENT_ELEMENTS`] elements.
pub fn check_latent(shape: &[usize]) -> Result<()> {
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .unwrap_or(usize::MAX);
    if n > MAX_LATENT_ELEMENTS {
        bail!(
            "a latent of shape {shape:?} has {n} elements, above the limit of \
             {MAX_LATENT_ELEMENTS} (256 MiB a latent; a run holds several per core)"
        );
    }
    Ok(())
}

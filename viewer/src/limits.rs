//! Limits checked before any work: generous for real use, small enough that no command
//! line can make `chords` allocate without bound or run for ever.

use anyhow::{Result, bail};

/// Most sampling steps T (real pipelines use 1 to 1000).
pub const MAX_STEPS: usize = 100_000;
/// Most cores K (a core is a worker thread or a device lane).
pub const MAX_CORES: usize = 1024;
/// Most elements of one latent (64 Mi f32 values, 256 MiB: far above a 1024×1024 image's
/// 4×128×128 diffusion latent).
pub const MAX_LATENT_ELEMENTS: usize = 1 << 26;

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

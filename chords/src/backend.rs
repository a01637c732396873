//! The backend trait: where latents live and the one numeric primitive CHORDS needs.
//!
//! Every non-model operation of the engine (a solver step, a coarse jump, a rectification)
//! is a linear combination of latents with scalar coefficients (DESIGN.md section 2), so a
//! backend implements exactly one fused kernel, [`Backend::lincomb`], plus moving latents
//! between cores and to and from the host.

mod counting;
mod cpu;

pub use counting::{Counted, Counting};
pub use cpu::{CpuBackend, CpuLatent};

/// Most inputs one [`Backend::lincomb`] call takes (a rectification needs six).
pub const MAX_TERMS: usize = 6;

/// One term `coefficient · latent` of a linear combination.
pub type Term<'a, L> = (f32, &'a L);

/// Storage and arithmetic for latents on a set of cores.
///
/// # Design
/// A latent is an immutable value handle (`Clone` is cheap: a reference count); every
/// operation returns a new latent. Each latent lives on one core; `lincomb` takes inputs
/// that live on `core` and produces its output there, and `transfer` is the only way data
/// crosses between cores, so a backend can count exactly what the algorithm moves.
///
/// Implementations must compute `lincomb` element-wise as the left-to-right sum
/// `c_0·x_0 + c_1·x_1 + …` in f32, so that the CHORDS engine's slowest core reproduces the
/// sequential solve exactly.
pub trait Backend: Send + Sync {
    /// A latent living on one of this backend's cores.
    type Latent: Clone + Send + Sync + std::fmt::Debug;

    /// A short description for reports and logs (e.g. `"cpu"`).
    fn name(&self) -> String;

    /// Copies host data to a new latent on `core`.
    fn upload(&self, core: usize, data: &[f32]) -> Result<Self::Latent, BackendError>;

    /// Copies a latent back to the host.
    fn download(&self, latent: &Self::Latent) -> Result<Vec<f32>, BackendError>;

    /// Number of elements of a latent.
    fn numel(&self, latent: &Self::Latent) -> usize;

    /// `Σ c_k · x_k` on `core`, with 1 to [`MAX_TERMS`] terms of equal length.
    fn lincomb(
        &self,
        core: usize,
        terms: &[Term<'_, Self::Latent>],
    ) -> Result<Self::Latent, BackendError>;

    /// The same latent, made available on core `to`.
    fn transfer(&self, latent: &Self::Latent, to: usize) -> Result<Self::Latent, BackendError>;

    /// Moves `core` to another healthy device after a failure on its own, so that later
    /// operations on `core` run there; latents already made stay where they are (move them
    /// with [`transfer`](Self::transfer)). Returns whether it moved; the default, for a
    /// backend with one device, never does.
    fn relocate(&self, core: usize) -> Result<bool, BackendError> {
        let _ = core;
        Ok(false)
    }

    /// Whether every element is finite. The default downloads the latent.
    fn all_finite(&self, latent: &Self::Latent) -> Result<bool, BackendError> {
        Ok(self.download(latent)?.iter().all(|v| v.is_finite()))
    }

    /// [`all_finite`](Self::all_finite) of each latent, answered together: the engine asks
    /// this once per round for all of the round's model outputs, so a device backend can
    /// check them in one pass and one small read-back per device instead of a wait per
    /// output. The default asks [`all_finite`](Self::all_finite) of each in turn.
    fn all_finite_each(&self, latents: &[&Self::Latent]) -> Result<Vec<bool>, BackendError> {
        latents.iter().map(|l| self.all_finite(l)).collect()
    }
}

/// A backend operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// `lincomb` was given no terms or more than [`MAX_TERMS`].
    #[error("a linear combination takes 1 to {MAX_TERMS} terms, got {0}")]
    TermCount(usize),
    /// Inputs of one operation have different lengths.
    #[error("latent lengths differ: {expected} and {found}")]
    LengthMismatch {
        /// Length of the first input.
        expected: usize,
        /// Length of the offending input.
        found: usize,
    },
    /// A core index outside the backend's cores.
    #[error("core {core} does not exist (this backend has {cores})")]
    NoSuchCore {
        /// The requested core.
        core: usize,
        /// How many cores exist.
        cores: usize,
    },
    /// Anything else the device reports.
    #[error("{0}")]
    Device(String),
}

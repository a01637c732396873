//! A backend wrapper that counts the latents alive at once (how much memory a sampler
//! holds) and the finiteness checks asked of the backend (each a wait on a device).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Backend, BackendError, Term};

/// Any backend, counting the latents it has made that are still alive, and the peak.
///
/// ```
/// use chords::backend::{Backend, Counting, CpuBackend};
/// let counting = Counting::new(CpuBackend);
/// let x = counting.upload(0, &[1.0, 2.0]).unwrap();
/// let y = counting.lincomb(0, &[(2.0, &x)]).unwrap();
/// assert_eq!((counting.live(), counting.peak()), (2, 2));
/// drop((x, y));
/// assert_eq!((counting.live(), counting.peak()), (0, 2));
/// ```
#[derive(Debug)]
pub struct Counting<B> {
    inner: B,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    live: AtomicUsize,
    peak: AtomicUsize,
    finiteness_checks: AtomicUsize,
}

/// A latent of [`Counting`]: the inner latent, uncounted when its last handle drops.
#[derive(Debug)]
pub struct Counted<L> {
    latent: L,
    counts: Arc<Counts>,
}

impl<L> Counted<L> {
    /// The wrapped backend's latent.
    pub fn inner(&self) -> &L {
        &self.latent
    }
}

impl<L> Drop for Counted<L> {
    fn drop(&mut self) {
        self.counts.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<B: Backend> Counting<B> {
    /// Wraps `inner`, with both counts at zero.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            counts: Arc::default(),
        }
    }

    /// Latents alive now.
    pub fn live(&self) -> usize {
        self.counts.live.load(Ordering::SeqCst)
    }

    /// The most latents alive at once so far.
    pub fn peak(&self) -> usize {
        self.counts.peak.load(Ordering::SeqCst)
    }

    /// Calls of [`Backend::all_finite`] and [`Backend::all_finite_each`] so far: on a
    /// device backend each is one wait for the device.
    pub fn finiteness_checks(&self) -> usize {
        self.counts.finiteness_checks.load(Ordering::SeqCst)
    }

    /// Counts `latent` (made by the inner backend, e.g. a model output) as one of ours.
    pub fn wrap(&self, latent: B::Latent) -> Arc<Counted<B::Latent>> {
        let live = self.counts.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.counts.peak.fetch_max(live, Ordering::SeqCst);
        Arc::new(Counted {
            latent,
            counts: self.counts.clone(),
        })
    }
}

impl<B: Backend> Backend for Counting<B> {
    type Latent = Arc<Counted<B::Latent>>;

    fn name(&self) -> String {
        format!("{} (counting)", self.inner.name())
    }

    fn upload(&self, core: usize, data: &[f32]) -> Result<Self::Latent, BackendError> {
        Ok(self.wrap(self.inner.upload(core, data)?))
    }

    fn download(&self, latent: &Self::Latent) -> Result<Vec<f32>, BackendError> {
        self.inner.download(&latent.latent)
    }

    fn numel(&self, latent: &Self::Latent) -> usize {
        self.inner.numel(&latent.latent)
    }

    fn lincomb(
        &self,
        core: usize,
        terms: &[Term<'_, Self::Latent>],
    ) -> Result<Self::Latent, BackendError> {
        let inner: Vec<Term<'_, B::Latent>> = terms.iter().map(|(c, x)| (*c, &x.latent)).collect();
        Ok(self.wrap(self.inner.lincomb(core, &inner)?))
    }

    fn transfer(&self, latent: &Self::Latent, to: usize) -> Result<Self::Latent, BackendError> {
        Ok(self.wrap(self.inner.transfer(&latent.latent, to)?))
    }

    fn relocate(&self, core: usize) -> Result<bool, BackendError> {
        self.inner.relocate(core)
    }

    fn all_finite(&self, latent: &Self::Latent) -> Result<bool, BackendError> {
        self.counts.finiteness_checks.fetch_add(1, Ordering::SeqCst);
        self.inner.all_finite(&latent.latent)
    }

    fn all_finite_each(&self, latents: &[&Self::Latent]) -> Result<Vec<bool>, BackendError> {
        self.counts.finiteness_checks.fetch_add(1, Ordering::SeqCst);
        let inner: Vec<&B::Latent> = latents.iter().map(|l| &l.latent).collect();
        self.inner.all_finite_each(&inner)
    }
}

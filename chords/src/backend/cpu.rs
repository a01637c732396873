//! The CPU backend: latents are reference-counted `f32` slices in host memory.

use std::sync::Arc;

use super::{Backend, BackendError, MAX_TERMS, Term};

/// A latent in host memory. Cloning shares the data.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuLatent(Arc<[f32]>);

impl CpuLatent {
    /// The elements.
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }
}

impl From<Vec<f32>> for CpuLatent {
    fn from(data: Vec<f32>) -> Self {
        Self(data.into())
    }
}

/// Runs every core's arithmetic on the host; all cores share memory, so transfers are free.
///
/// ```
/// use chords::{Backend, CpuBackend};
/// let cpu = CpuBackend;
/// let x = cpu.upload(0, &[1.0, 2.0]).unwrap();
/// let y = cpu.upload(0, &[10.0, 20.0]).unwrap();
/// let z = cpu.lincomb(0, &[(2.0, &x), (0.5, &y)]).unwrap();
/// assert_eq!(z.as_slice(), &[7.0, 14.0]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    type Latent = CpuLatent;

    fn name(&self) -> String {
        "cpu".into()
    }

    fn upload(&self, _core: usize, data: &[f32]) -> Result<CpuLatent, BackendError> {
        Ok(CpuLatent(data.into()))
    }

    fn download(&self, latent: &CpuLatent) -> Result<Vec<f32>, BackendError> {
        Ok(latent.0.to_vec())
    }

    fn numel(&self, latent: &CpuLatent) -> usize {
        latent.0.len()
    }

    fn lincomb(
        &self,
        _core: usize,
        terms: &[Term<'_, CpuLatent>],
    ) -> Result<CpuLatent, BackendError> {
        let Some(((c0, x0), rest)) = terms.split_first().filter(|_| terms.len() <= MAX_TERMS)
        else {
            return Err(BackendError::TermCount(terms.len()));
        };
        let n = x0.0.len();
        if let Some((_, x)) = rest.iter().find(|(_, x)| x.0.len() != n) {
            return Err(BackendError::LengthMismatch {
                expected: n,
                found: x.0.len(),
            });
        }
        // Left-to-right accumulation, one term at a time: the same f32 operations in the
        // same order for every element, whatever the number of terms.
        let mut out: Vec<f32> = x0.0.iter().map(|v| c0 * v).collect();
        for (c, x) in rest {
            for (o, v) in out.iter_mut().zip(x.0.iter()) {
                *o += c * v;
            }
        }
        Ok(CpuLatent(out.into()))
    }

    fn transfer(&self, latent: &CpuLatent, _to: usize) -> Result<CpuLatent, BackendError> {
        Ok(latent.clone())
    }

    fn all_finite(&self, latent: &CpuLatent) -> Result<bool, BackendError> {
        Ok(latent.0.iter().all(|v| v.is_finite()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lincomb_sums_left_to_right() {
        let cpu = CpuBackend;
        let xs: Vec<CpuLatent> = (1..=6)
            .map(|k| CpuLatent::from(vec![k as f32, -(k as f32)]))
            .collect();
        let terms: Vec<Term<'_, CpuLatent>> = xs
            .iter()
            .enumerate()
            .map(|(k, x)| (k as f32 + 0.5, x))
            .collect();
        // Σ (k + 0.5)·(k + 1) for k = 0..6 = 0.5 + 3 + 7.5 + 14 + 22.5 + 33 = 80.5
        assert_eq!(cpu.lincomb(0, &terms).unwrap().as_slice(), &[80.5, -80.5]);
    }

    #[test]
    fn lincomb_rejects_bad_inputs() {
        let cpu = CpuBackend;
        let a = CpuLatent::from(vec![1.0; 3]);
        let b = CpuLatent::from(vec![1.0; 4]);
        assert!(matches!(
            cpu.lincomb(0, &[]),
            Err(BackendError::TermCount(0))
        ));
        assert!(matches!(
            cpu.lincomb(0, &[(1.0, &a); 7]),
            Err(BackendError::TermCount(7))
        ));
        assert!(matches!(
            cpu.lincomb(0, &[(1.0, &a), (1.0, &b)]),
            Err(BackendError::LengthMismatch {
                expected: 3,
                found: 4
            })
        ));
    }
}

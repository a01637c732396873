//! The exact denoiser of a Gaussian mixture: the analytic test oracle (DESIGN.md section 6).
//!
//! Data `x_data ~ (1/M)·Σ_m N(μ_m, s²·I)`, noised as `x = α·x_data + σ·ε` (flow matching:
//! `α = 1-σ`; VP: `α = √ᾱ`). With `V = α²s² + σ²`, `d_m = x - α·μ_m` and posterior weights
//! `w_m ∝ exp(-‖d_m‖² / (2V))`:
//! `E[x_data|x] = Σ w_m (μ_m + (α·s²/V)·d_m)` and `E[ε|x] = Σ w_m (σ/V)·d_m`.
//! With the weighted mean `μ̄ = Σ w_m μ_m` these are
//! `E[x_data|x] = μ̄ + (α·s²/V)(x - α·μ̄)` and `E[ε|x] = (σ/V)(x - α·μ̄)`, which is how the
//! model computes them (two passes over the means).

use crate::backend::{CpuBackend, CpuLatent};
use crate::error::{Error, Result};
use crate::model::{Model, ModelError};
use crate::schedule::Timestep;
use crate::solver::Prediction;

/// A mixture of M isotropic Gaussians with equal weights, as an exact denoiser.
///
/// ```
/// use chords::{CpuLatent, GaussianMixture, Model, Prediction, FlowSchedule};
/// // Two 1-element means at ±1, data spread 0.1.
/// let m = GaussianMixture::new(vec![1.0, -1.0], vec![2, 1], 0.1, Prediction::Velocity).unwrap();
/// // At pure noise (σ = 1) the posterior is uniform: v = x - mean of the means = x.
/// let t = FlowSchedule::new(10, 1.0).unwrap().timestep(0);
/// let v = m.evaluate(0, &CpuLatent::from(vec![0.3]), &t).unwrap();
/// assert!((v.as_slice()[0] - 0.3).abs() < 1e-6);
/// ```
#[derive(Debug, Clone)]
pub struct GaussianMixture {
    means: Vec<f32>,
    /// Shape of one mean (the latent's shape).
    shape: Vec<usize>,
    count: usize,
    sigma_data: f64,
    prediction: Prediction,
}

impl GaussianMixture {
    /// A mixture from `means`, a C-order array of shape `[M, …latent shape]`.
    ///
    /// `prediction` picks the output form: the flow velocity, or ε / v / x0 for VP solvers.
    pub fn new(
        means: Vec<f32>,
        shape: Vec<usize>,
        sigma_data: f64,
        prediction: Prediction,
    ) -> Result<Self> {
        let (&count, latent_shape) = shape.split_first().ok_or_else(|| {
            Error::Config("mixture means need a shape (M, …), got a scalar".into())
        })?;
        let numel: usize = latent_shape.iter().product();
        if count == 0 || numel == 0 || latent_shape.is_empty() {
            return Err(Error::Config(format!(
                "mixture means must be a non-empty (M, …) array, got shape {shape:?}"
            )));
        }
        if means.len() != count * numel {
            return Err(Error::Config(format!(
                "mixture means hold {} values but shape {shape:?} needs {}",
                means.len(),
                count * numel
            )));
        }
        if !(sigma_data.is_finite() && sigma_data >= 0.0) {
            return Err(Error::Config(format!(
                "sigma-data must be a finite number ≥ 0, got {sigma_data}"
            )));
        }
        if means.iter().any(|v| !v.is_finite()) {
            return Err(Error::Config("mixture means contain NaN or Inf".into()));
        }
        Ok(Self {
            means,
            shape: latent_shape.to_vec(),
            count,
            sigma_data,
            prediction,
        })
    }

    /// Shape of one latent (one mean).
    pub fn latent_shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of components M.
    pub fn components(&self) -> usize {
        self.count
    }

    /// What the model predicts.
    pub fn prediction(&self) -> Prediction {
        self.prediction
    }

    /// The means, C-order `[M, …latent shape]`.
    pub fn means(&self) -> &[f32] {
        &self.means
    }

    /// The spread s of each component.
    pub fn sigma_data(&self) -> f64 {
        self.sigma_data
    }

    fn mean(&self, m: usize) -> &[f32] {
        let n = self.means.len() / self.count;
        &self.means[m * n..(m + 1) * n]
    }

    /// The model output for a host slice.
    pub fn predict(&self, x: &[f32], t: &Timestep) -> Result<Vec<f32>, ModelError> {
        let n = self.means.len() / self.count;
        if x.len() != n {
            return Err(ModelError::new(format!(
                "mixture latent has {} elements, the means have {n}",
                x.len()
            )));
        }
        let (a, sigma, s2) = (t.alpha, t.sigma, self.sigma_data * self.sigma_data);
        let var = a * a * s2 + sigma * sigma;
        if var.is_nan() || var <= 0.0 {
            return Err(ModelError::new(format!(
                "mixture posterior undefined at grid index {} (zero noise and zero data spread)",
                t.index
            )));
        }
        // Log-weights -‖x - α·μ_m‖² / 2V, then a stable softmax.
        let logw: Vec<f64> = (0..self.count)
            .map(|m| {
                let d2: f64 = x
                    .iter()
                    .zip(self.mean(m))
                    .map(|(&xv, &mu)| {
                        let d = xv as f64 - a * mu as f64;
                        d * d
                    })
                    .sum();
                -d2 / (2.0 * var)
            })
            .collect();
        let max = logw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = logw.iter().map(|l| (l - max).exp()).collect();
        let total: f64 = w.iter().sum();
        let mut mu_bar = vec![0.0f64; n];
        for (m, wm) in w.iter().enumerate() {
            let wm = wm / total;
            for (acc, &mu) in mu_bar.iter_mut().zip(self.mean(m)) {
                *acc += wm * mu as f64;
            }
        }
        let (k_data, k_eps) = (a * s2 / var, sigma / var);
        let out = x
            .iter()
            .zip(&mu_bar)
            .map(|(&xv, &mb)| {
                let d = xv as f64 - a * mb;
                let x_data = mb + k_data * d;
                let eps = k_eps * d;
                let out = match self.prediction {
                    Prediction::Velocity => eps - x_data,
                    Prediction::Epsilon => eps,
                    Prediction::Sample => x_data,
                    Prediction::V => a * eps - sigma * x_data,
                };
                out as f32
            })
            .collect();
        Ok(out)
    }
}

impl Model<CpuBackend> for GaussianMixture {
    fn evaluate(&self, _core: usize, x: &CpuLatent, t: &Timestep) -> Result<CpuLatent, ModelError> {
        self.predict(x.as_slice(), t).map(CpuLatent::from)
    }
}

/// Eight 3×32×32 pictures (discs, squares, stripes, rings in several colours), values in
/// [-1, 1]: the means of the built-in demo mixture. Returns the data and its shape.
pub fn demo_means() -> (Vec<f32>, Vec<usize>) {
    const SIZE: usize = 32;
    // (shape id, foreground RGB, background RGB)
    const PICTURES: [(u8, [f32; 3], [f32; 3]); 8] = [
        (0, [0.9, 0.2, 0.2], [0.95, 0.95, 0.9]),
        (1, [0.2, 0.4, 0.9], [0.95, 0.9, 0.8]),
        (2, [0.1, 0.7, 0.3], [0.1, 0.1, 0.15]),
        (3, [1.0, 0.8, 0.1], [0.2, 0.2, 0.5]),
        (0, [0.6, 0.2, 0.8], [0.8, 1.0, 0.8]),
        (1, [1.0, 0.5, 0.0], [0.15, 0.15, 0.15]),
        (2, [0.9, 0.9, 0.9], [0.8, 0.1, 0.3]),
        (3, [0.1, 0.8, 0.9], [0.95, 0.95, 0.95]),
    ];
    let mut data = Vec::with_capacity(PICTURES.len() * 3 * SIZE * SIZE);
    for (kind, fg, bg) in PICTURES {
        for c in 0..3 {
            for y in 0..SIZE {
                for x in 0..SIZE {
                    let (u, v) = (x as f32 - 15.5, y as f32 - 15.5);
                    let r = (u * u + v * v).sqrt();
                    let inside = match kind {
                        0 => r < 11.0,
                        1 => u.abs() < 9.0 && v.abs() < 9.0,
                        2 => (x / 4) % 2 == 0,
                        _ => (6.0..12.0).contains(&r),
                    };
                    let value = if inside { fg[c] } else { bg[c] };
                    data.push(2.0 * value - 1.0);
                }
            }
        }
    }
    (data, vec![PICTURES.len(), 3, SIZE, SIZE])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{BetaSchedule, FlowSchedule, Spacing, VpSchedule};

    /// DESIGN.md's formula term by term, in f64, with no algebraic shortcut.
    fn direct(means: &[Vec<f64>], s: f64, x: &[f64], a: f64, sigma: f64) -> (Vec<f64>, Vec<f64>) {
        let var = a * a * s * s + sigma * sigma;
        let d: Vec<Vec<f64>> = means
            .iter()
            .map(|mu| x.iter().zip(mu).map(|(x, m)| x - a * m).collect())
            .collect();
        let raw: Vec<f64> = d
            .iter()
            .map(|dm| (-dm.iter().map(|v| v * v).sum::<f64>() / (2.0 * var)).exp())
            .collect();
        let z: f64 = raw.iter().sum();
        let mut x_data = vec![0.0; x.len()];
        let mut eps = vec![0.0; x.len()];
        for (m, mu) in means.iter().enumerate() {
            let w = raw[m] / z;
            for e in 0..x.len() {
                x_data[e] += w * (mu[e] + a * s * s / var * d[m][e]);
                eps[e] += w * sigma / var * d[m][e];
            }
        }
        (x_data, eps)
    }

    #[test]
    fn matches_the_formula_in_every_parameterisation() {
        let means = vec![
            vec![0.5, -0.2, 0.1],
            vec![-0.4, 0.3, 0.0],
            vec![0.1, 0.1, -0.6],
        ];
        let flat: Vec<f32> = means.iter().flatten().map(|&v| v as f32).collect();
        let x = [0.2f32, -0.1, 0.35];
        let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let s = 0.3;
        let flow = FlowSchedule::new(10, 1.0).unwrap();
        let vp = VpSchedule::new(10, BetaSchedule::LINEAR, Spacing::Trailing).unwrap();
        for t in [
            flow.timestep(3),
            flow.timestep(9),
            vp.timestep(0),
            vp.timestep(8),
        ] {
            let (x_data, eps) = direct(&means, s, &xf, t.alpha, t.sigma);
            for p in [
                Prediction::Velocity,
                Prediction::Epsilon,
                Prediction::Sample,
                Prediction::V,
            ] {
                let model = GaussianMixture::new(flat.clone(), vec![3, 3], s, p).unwrap();
                let got = model.predict(&x, &t).unwrap();
                for e in 0..3 {
                    let want = match p {
                        Prediction::Velocity => eps[e] - x_data[e],
                        Prediction::Epsilon => eps[e],
                        Prediction::Sample => x_data[e],
                        Prediction::V => t.alpha * eps[e] - t.sigma * x_data[e],
                    };
                    assert!(
                        (got[e] as f64 - want).abs() < 1e-6,
                        "{p:?} t={t:?} e={e}: {} vs {want}",
                        got[e]
                    );
                }
            }
        }
    }

    #[test]
    fn a_single_point_mass_flows_straight_to_it() {
        // M = 1, s = 0: E[x_data|x] = μ exactly, so v = (x - μ)/σ - ... = ε - μ and one
        // Euler jump from σ = 1 to 0 lands on μ: x + (0 - 1)·(x - μ) = μ.
        let model =
            GaussianMixture::new(vec![0.25, -0.5], vec![1, 2], 0.0, Prediction::Velocity).unwrap();
        let t = FlowSchedule::new(4, 1.0).unwrap().timestep(0);
        let v = model.predict(&[1.0, 2.0], &t).unwrap();
        assert_eq!(v, vec![0.75, 2.5]);
    }

    #[test]
    fn bad_means_are_errors() {
        assert!(GaussianMixture::new(vec![1.0; 5], vec![2, 3], 0.1, Prediction::Velocity).is_err());
        assert!(GaussianMixture::new(vec![], vec![0, 3], 0.1, Prediction::Velocity).is_err());
        assert!(
            GaussianMixture::new(vec![f32::NAN; 3], vec![1, 3], 0.1, Prediction::Velocity).is_err()
        );
        assert!(
            GaussianMixture::new(vec![1.0; 3], vec![1, 3], -1.0, Prediction::Velocity).is_err()
        );
        let m = GaussianMixture::new(vec![1.0; 3], vec![1, 3], 0.1, Prediction::Velocity).unwrap();
        let t = FlowSchedule::new(4, 1.0).unwrap().timestep(1);
        assert!(m.predict(&[0.0; 2], &t).is_err());
    }

    #[test]
    fn demo_means_have_the_documented_shape_and_range() {
        let (data, shape) = demo_means();
        assert_eq!(shape, vec![8, 3, 32, 32]);
        assert_eq!(data.len(), 8 * 3 * 32 * 32);
        assert!(data.iter().all(|v| (-1.0..=1.0).contains(v)));
    }
}

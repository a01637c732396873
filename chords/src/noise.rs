//! Seeded Gaussian noise for initial latents, identical on every platform.
//!
//! SplitMix64 (Steele, Lea & Flood 2014) for uniform bits and the Box–Muller transform for
//! normals. Noise is always an input to a sampler, never drawn inside a step.

/// `n` standard-normal f32 values from `seed`; the same seed gives the same values everywhere.
///
/// ```
/// let a = chords::noise::gaussian(7, 1000);
/// assert_eq!(a, chords::noise::gaussian(7, 1000));
/// let mean = a.iter().sum::<f32>() / 1000.0;
/// assert!(mean.abs() < 0.1);
/// ```
pub fn gaussian(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let (u1, u2) = (rng.uniform(), rng.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        out.push((r * theta.cos()) as f32);
        out.push((r * theta.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// Turns unit Gaussian noise into a solver's initial point in place: times
/// [`Solver::initial_noise_scale`](crate::Solver::initial_noise_scale) (diffusers'
/// `init_noise_sigma`), which is 1, and leaves the noise bit for bit, for most solvers.
///
/// ```
/// use chords::{Euler, FlowSchedule};
/// let mut x = chords::noise::gaussian(1, 4);
/// let before = x.clone();
/// chords::noise::scale_to_initial(&Euler::new(FlowSchedule::new(10, 1.0).unwrap()), &mut x);
/// assert_eq!(x, before);
/// ```
pub fn scale_to_initial(solver: &dyn crate::Solver, noise: &mut [f32]) {
    let scale = solver.initial_noise_scale();
    if scale != 1.0 {
        let scale = scale as f32;
        noise.iter_mut().for_each(|v| *v *= scale);
    }
}

/// SplitMix64: a small seeded generator whose whole state is one number (so a training
/// checkpoint can store it).
///
/// ```
/// let mut a = chords::noise::SplitMix64::new(3);
/// let mut b = chords::noise::SplitMix64::new(a.state());
/// assert_eq!(a.next_u64(), b.next_u64());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `state`.
    pub fn new(state: u64) -> Self {
        Self(state)
    }

    /// The current state (`new(state())` continues the same sequence).
    pub fn state(&self) -> u64 {
        self.0
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: 53 random bits, never 0 (so its logarithm is finite).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn moments_are_standard_normal() {
        let x = super::gaussian(42, 200_000);
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "variance {var}");
        assert_ne!(super::gaussian(1, 4), super::gaussian(2, 4));
    }
}

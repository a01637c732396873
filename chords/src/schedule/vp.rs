//! Variance-preserving schedules: betas, their cumulative products, and the T training
//! timesteps a sampler visits.

use super::Timestep;
use super::numpy::{arange_down, linspace};
use crate::error::{Error, Result};

/// How the betas of a VP model grow over its training steps (diffusers' `beta_schedule`).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum BetaSchedule {
    /// `β` linear from `start` to `end` (DDPM: 1e-4 to 0.02).
    Linear {
        /// First beta.
        start: f64,
        /// Last beta.
        end: f64,
    },
    /// `√β` linear from `√start` to `√end` (Stable Diffusion: 0.00085 to 0.012).
    ScaledLinear {
        /// First beta.
        start: f64,
        /// Last beta.
        end: f64,
    },
    /// The cosine schedule of Nichol & Dhariwal: `ᾱ(t) = cos²((t + 0.008)/1.008 · π/2)`,
    /// `β_k = min(1 - ᾱ((k+1)/N)/ᾱ(k/N), 0.999)` (diffusers' `squaredcos_cap_v2`).
    SquaredCosCapV2,
}

impl BetaSchedule {
    /// DDPM's linear betas, 1e-4 to 0.02.
    pub const LINEAR: Self = Self::Linear {
        start: 1e-4,
        end: 0.02,
    };
    /// Stable Diffusion's scaled-linear betas, 0.00085 to 0.012.
    pub const SCALED_LINEAR: Self = Self::ScaledLinear {
        start: 0.00085,
        end: 0.012,
    };

    /// The betas over `train_steps` training steps.
    ///
    /// ```
    /// let b = chords::BetaSchedule::SquaredCosCapV2.betas(1000);
    /// assert!(b[0] > 0.0 && b[999] == 0.999);
    /// ```
    pub fn betas(&self, train_steps: usize) -> Vec<f64> {
        let lerp = |a: f64, b: f64, k: usize| {
            if train_steps == 1 {
                a
            } else {
                a + (b - a) * k as f64 / (train_steps - 1) as f64
            }
        };
        let cosine = |t: f64| {
            ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                .cos()
                .powi(2)
        };
        let n = train_steps as f64;
        (0..train_steps)
            .map(|k| match *self {
                Self::Linear { start, end } => lerp(start, end, k),
                Self::ScaledLinear { start, end } => lerp(start.sqrt(), end.sqrt(), k).powi(2),
                Self::SquaredCosCapV2 => {
                    let (t1, t2) = (k as f64 / n, (k + 1) as f64 / n);
                    (1.0 - cosine(t2) / cosine(t1)).min(0.999)
                }
            })
            .collect()
    }
}

/// `ᾱ_k = Π_{j ≤ k} (1 - β_j)`, the cumulative products of `1 - β`.
///
/// ```
/// let ab = chords::schedule::alphas_cumprod(&[0.5, 0.5]);
/// assert_eq!(ab, vec![0.5, 0.25]);
/// ```
pub fn alphas_cumprod(betas: &[f64]) -> Vec<f64> {
    let mut prod = 1.0;
    betas
        .iter()
        .map(|b| {
            prod *= 1.0 - b;
            prod
        })
        .collect()
}

/// Rescales betas so that the last training step has zero signal (Lin et al. 2023,
/// "Common Diffusion Noise Schedules and Sample Steps are Flawed", algorithm 1; diffusers'
/// `rescale_betas_zero_snr`): `√ᾱ` is shifted to end at 0 and scaled to keep its start.
///
/// ```
/// let betas = chords::BetaSchedule::SCALED_LINEAR.betas(1000);
/// let rescaled = chords::schedule::rescale_zero_terminal_snr(&betas);
/// let ab = chords::schedule::alphas_cumprod(&rescaled);
/// assert!(ab[999].abs() < 1e-12);
/// assert!((ab[0] - chords::schedule::alphas_cumprod(&betas)[0]).abs() < 1e-12);
/// ```
pub fn rescale_zero_terminal_snr(betas: &[f64]) -> Vec<f64> {
    let sqrt: Vec<f64> = alphas_cumprod(betas).iter().map(|a| a.sqrt()).collect();
    let (Some(&first), Some(&last)) = (sqrt.first(), sqrt.last()) else {
        return Vec::new();
    };
    let bars: Vec<f64> = sqrt
        .iter()
        .map(|s| ((s - last) * (first / (first - last))).powi(2))
        .collect();
    let mut out = Vec::with_capacity(bars.len());
    out.push(1.0 - bars[0]);
    out.extend(bars.windows(2).map(|w| 1.0 - w[1] / w[0]));
    out
}

/// How the T inference timesteps are picked among the N training steps (diffusers'
/// `timestep_spacing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Spacing {
    /// `(0..T)·⌊N/T⌋`, reversed, plus `steps_offset`: starts at or below `N - N/T`.
    Leading {
        /// diffusers' `steps_offset` (0 for DDIM's default config, 1 for Stable Diffusion).
        offset: usize,
    },
    /// `round(N - i·N/T) - 1`: starts at the last training step `N - 1`.
    Trailing,
    /// `round(linspace(0, N - 1, T))`, reversed: both ends of the training range.
    Linspace,
}

impl Spacing {
    /// The T training timesteps, first (noisiest) first, exactly as diffusers' DDIM
    /// `set_timesteps` computes them with numpy.
    ///
    /// ```
    /// use chords::Spacing;
    /// assert_eq!(Spacing::Leading { offset: 1 }.timesteps(4, 1000).unwrap(), vec![751, 501, 251, 1]);
    /// assert_eq!(Spacing::Linspace.timesteps(4, 1000).unwrap(), vec![999, 666, 333, 0]);
    /// ```
    pub fn timesteps(&self, steps: usize, train_steps: usize) -> Result<Vec<usize>> {
        if steps == 0 || steps > train_steps {
            return Err(Error::Config(format!(
                "a VP schedule needs 1 to {train_steps} steps (num_train_timesteps), got {steps}"
            )));
        }
        let times: Vec<usize> = match *self {
            Self::Leading { offset } => {
                let ratio = train_steps / steps;
                let times: Vec<usize> = (0..steps).rev().map(|i| i * ratio + offset).collect();
                if times[0] >= train_steps {
                    return Err(Error::Config(format!(
                        "leading spacing with steps_offset {offset} puts the first of {steps} steps \
                         at training step {}, past the last one ({})",
                        times[0],
                        train_steps - 1
                    )));
                }
                times
            }
            Self::Trailing => {
                let values = arange_down(train_steps as f64, train_steps as f64 / steps as f64);
                if values.len() != steps {
                    return Err(Error::Config(format!(
                        "diffusers' trailing spacing gives {} timesteps for {steps} steps over \
                         {train_steps} training steps (numpy's arange rounds its length up); \
                         choose another step count",
                        values.len()
                    )));
                }
                values
                    .iter()
                    .map(|v| (v.round_ties_even() as usize).saturating_sub(1))
                    .collect()
            }
            Self::Linspace => linspace(0.0, (train_steps - 1) as f64, steps)
                .iter()
                .rev()
                .map(|v| v.round_ties_even() as usize)
                .collect(),
        };
        Ok(times)
    }
}

/// A variance-preserving schedule sampled at T inference timesteps, stepped as diffusers'
/// `DDIMScheduler` steps it.
///
/// Grid index `i < T` is evaluated at training timestep `t_i`, where the step formula uses
/// `ᾱ[t_i]`. The step from `t_i` lands on `ᾱ[t_i - ⌊N/T⌋]` (diffusers' `prev_timestep`),
/// or on the final `ᾱ` (1, or `ᾱ[0]` when diffusers' `set_alpha_to_one` is false) when that
/// is below 0. When N/T is not whole, `t_i - ⌊N/T⌋` can differ from the next evaluated
/// timestep `t_{i+1}`; like diffusers, the point is then noised with one ᾱ
/// ([`point_alpha_bar`](Self::point_alpha_bar)) and evaluated with the other
/// ([`alpha_bar`](Self::alpha_bar)).
#[derive(Debug, Clone, PartialEq)]
pub struct VpSchedule {
    timesteps: Vec<usize>,
    /// `ᾱ[t_i]` at grid indices `0..T`, then the ᾱ of the end point.
    alpha_bars: Vec<f64>,
    /// The ᾱ each grid index's point is noised with (`0..=T`).
    point_alpha_bars: Vec<f64>,
}

impl VpSchedule {
    /// Number of training steps of the models this project targets.
    pub const TRAIN_STEPS: usize = 1000;

    /// T inference steps over 1000 training steps, ending on `ᾱ = 1`.
    pub fn new(steps: usize, betas: BetaSchedule, spacing: Spacing) -> Result<Self> {
        Self::with_train_steps(steps, betas, spacing, Self::TRAIN_STEPS)
    }

    /// T inference steps over `train_steps` training steps, ending on `ᾱ = 1`.
    pub fn with_train_steps(
        steps: usize,
        betas: BetaSchedule,
        spacing: Spacing,
        train_steps: usize,
    ) -> Result<Self> {
        if train_steps == 0 {
            return Err(Error::Config(
                "num_train_timesteps must be at least 1".into(),
            ));
        }
        let betas = betas.betas(train_steps);
        if betas.iter().any(|b| !(*b > 0.0 && *b < 1.0)) {
            return Err(Error::Config(
                "betas must lie strictly between 0 and 1".into(),
            ));
        }
        Self::from_alphas_cumprod(steps, &alphas_cumprod(&betas), spacing, 1.0)
    }

    /// T inference steps over the training schedule `alphas_cumprod` (`ᾱ` of each training
    /// step, in `[0, 1]`, non-increasing), ending on `final_alpha_bar`.
    ///
    /// ```
    /// use chords::{Spacing, VpSchedule};
    /// let ab: Vec<f64> = (0..10).map(|k| 1.0 - 0.09 * k as f64).collect();
    /// // 3 of 10 steps, trailing: timesteps 9, 6, 2; ⌊10/3⌋ = 3, so the step from 6 lands on 3.
    /// let s = VpSchedule::from_alphas_cumprod(3, &ab, Spacing::Trailing, ab[0]).unwrap();
    /// assert_eq!(s.training_timestep(1), 6);
    /// assert_eq!(s.training_timestep(2), 2);
    /// assert_eq!(s.point_alpha_bar(2), ab[3]);
    /// assert_eq!(s.alpha_bar(2), ab[2]);
    /// assert_eq!(s.point_alpha_bar(3), ab[0]);
    /// ```
    pub fn from_alphas_cumprod(
        steps: usize,
        alphas_cumprod: &[f64],
        spacing: Spacing,
        final_alpha_bar: f64,
    ) -> Result<Self> {
        let train_steps = alphas_cumprod.len();
        if let Some(a) = alphas_cumprod
            .iter()
            .chain([&final_alpha_bar])
            .find(|a| !(0.0..=1.0).contains(*a))
        {
            return Err(Error::Config(format!(
                "cumulative alphas must lie in [0, 1], got {a}"
            )));
        }
        let timesteps = spacing.timesteps(steps, train_steps)?;
        let ratio = train_steps / steps;
        let mut alpha_bars: Vec<f64> = timesteps.iter().map(|&t| alphas_cumprod[t]).collect();
        let mut point_alpha_bars = Vec::with_capacity(steps + 1);
        point_alpha_bars.push(alpha_bars[0]);
        point_alpha_bars.extend(timesteps.iter().map(|&t| match t.checked_sub(ratio) {
            Some(prev) => alphas_cumprod[prev],
            None => final_alpha_bar,
        }));
        alpha_bars.push(point_alpha_bars[steps]);
        Ok(Self {
            timesteps,
            alpha_bars,
            point_alpha_bars,
        })
    }

    /// Number of steps T.
    pub fn steps(&self) -> usize {
        self.timesteps.len()
    }

    /// The training timestep at grid index `i < T`.
    pub fn training_timestep(&self, i: usize) -> usize {
        self.timesteps[i]
    }

    /// `ᾱ` the step formula uses at grid index `i` (`ᾱ[t_i]`; at `i = T`, the end point's).
    pub fn alpha_bar(&self, i: usize) -> f64 {
        self.alpha_bars[i]
    }

    /// `ᾱ` of the point at grid index `i`: where the step into it lands.
    pub fn point_alpha_bar(&self, i: usize) -> f64 {
        self.point_alpha_bars[i]
    }

    /// The model input at grid index `i`; at `i = T` the timestep `t` is -1 (never evaluated).
    pub fn timestep(&self, i: usize) -> Timestep {
        Self::noised(i, self.timesteps.get(i), self.alpha_bars[i])
    }

    /// The point at grid index `i`: `x_i = √ᾱ·x_data + √(1-ᾱ)·ε` with its
    /// [`point_alpha_bar`](Self::point_alpha_bar).
    pub fn point(&self, i: usize) -> Timestep {
        Self::noised(i, self.timesteps.get(i), self.point_alpha_bars[i])
    }

    fn noised(index: usize, t: Option<&usize>, alpha_bar: f64) -> Timestep {
        Timestep {
            index,
            t: t.map_or(-1.0, |&t| t as f64),
            alpha: alpha_bar.sqrt(),
            sigma: (1.0 - alpha_bar).sqrt(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_trailing_and_linspace_spacing_match_diffusers() {
        // diffusers DDIMScheduler(num_train_timesteps=1000).set_timesteps(10)
        let lead =
            VpSchedule::new(10, BetaSchedule::LINEAR, Spacing::Leading { offset: 0 }).unwrap();
        assert_eq!(
            lead.timesteps,
            vec![900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
        );
        let sd = VpSchedule::new(
            10,
            BetaSchedule::SCALED_LINEAR,
            Spacing::Leading { offset: 1 },
        )
        .unwrap();
        assert_eq!(
            sd.timesteps,
            vec![901, 801, 701, 601, 501, 401, 301, 201, 101, 1]
        );
        let trail = VpSchedule::new(10, BetaSchedule::LINEAR, Spacing::Trailing).unwrap();
        assert_eq!(
            trail.timesteps,
            vec![999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
        );
        // 1000 / 3 = 333.3…: np.round([1000, 666.67, 333.33]) - 1
        let t3 = VpSchedule::new(3, BetaSchedule::LINEAR, Spacing::Trailing).unwrap();
        assert_eq!(t3.timesteps, vec![999, 666, 332]);
        // np.linspace(0, 999, 7).round()[::-1]: 999, 832.5 → 832 (half to even), 666, …
        assert_eq!(
            Spacing::Linspace.timesteps(7, 1000).unwrap(),
            vec![999, 832, 666, 500, 333, 166, 0]
        );
    }

    #[test]
    fn trailing_step_counts_numpy_lengthens_are_refused() {
        // len(np.arange(1000, 0, -1000/61)) == 62 in numpy.
        assert_eq!(arange_down(1000.0, 1000.0 / 61.0).len(), 62);
        assert!(Spacing::Trailing.timesteps(61, 1000).is_err());
        assert_eq!(Spacing::Trailing.timesteps(60, 1000).unwrap().len(), 60);
    }

    #[test]
    fn the_step_lands_on_prev_timestep_as_diffusers_ddim_does() {
        // T = 3 over 1000: timesteps 999, 666, 332 and ⌊1000/3⌋ = 333.
        let s = VpSchedule::new(3, BetaSchedule::LINEAR, Spacing::Trailing).unwrap();
        let ab = alphas_cumprod(&BetaSchedule::LINEAR.betas(1000));
        assert_eq!(s.point_alpha_bar(0), ab[999]);
        assert_eq!(s.point_alpha_bar(1), ab[666]);
        assert_eq!(s.point_alpha_bar(2), ab[333]);
        assert_eq!(s.alpha_bar(2), ab[332]);
        assert_eq!(s.point_alpha_bar(3), 1.0);
        assert_eq!(s.point(3), s.timestep(3));
    }

    #[test]
    fn alpha_bar_is_the_product_of_one_minus_beta() {
        let s =
            VpSchedule::new(1000, BetaSchedule::LINEAR, Spacing::Leading { offset: 0 }).unwrap();
        // index T-1 is training step 0: ᾱ = 1 - β_0.
        assert!((s.alpha_bar(999) - (1.0 - 1e-4)).abs() < 1e-15);
        // training step 1: (1 - β_0)(1 - β_1), β_1 = 1e-4 + (0.02 - 1e-4)/999.
        let b1 = 1e-4 + (0.02 - 1e-4) / 999.0;
        assert!((s.alpha_bar(998) - (1.0 - 1e-4) * (1.0 - b1)).abs() < 1e-15);
        assert_eq!(s.alpha_bar(1000), 1.0);
        // Scaled linear: β_999 = 0.012 exactly.
        let b = BetaSchedule::SCALED_LINEAR.betas(1000);
        assert!((b[999] - 0.012).abs() < 1e-15 && (b[0] - 0.00085).abs() < 1e-15);
    }

    #[test]
    fn cosine_betas_follow_the_closed_form() {
        let b = BetaSchedule::SquaredCosCapV2.betas(4);
        let f = |t: f64| {
            ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                .cos()
                .powi(2)
        };
        assert!((b[1] - (1.0 - f(0.5) / f(0.25))).abs() < 1e-15);
        // ᾱ(1) = cos²(π/2) ≈ 0: the last beta is capped.
        assert_eq!(b[3], 0.999);
    }

    #[test]
    fn zero_snr_rescale_keeps_the_first_and_zeroes_the_last_alpha_bar() {
        let betas = BetaSchedule::LINEAR.betas(1000);
        let before = alphas_cumprod(&betas);
        let after = alphas_cumprod(&rescale_zero_terminal_snr(&betas));
        assert!((after[0] - before[0]).abs() < 1e-15);
        assert!(after[999].abs() < 1e-15);
        // √ᾱ is affine in the original √ᾱ: check a middle point.
        let (s0, s_n) = (before[0].sqrt(), before[999].sqrt());
        let want = ((before[500].sqrt() - s_n) * s0 / (s0 - s_n)).powi(2);
        assert!((after[500] - want).abs() < 1e-12);
    }

    #[test]
    fn bad_schedules_are_errors() {
        assert!(VpSchedule::new(1001, BetaSchedule::LINEAR, Spacing::Trailing).is_err());
        assert!(VpSchedule::new(0, BetaSchedule::LINEAR, Spacing::Trailing).is_err());
        // 1000 steps with offset 1 would start at training step 1000.
        assert!(
            VpSchedule::new(1000, BetaSchedule::LINEAR, Spacing::Leading { offset: 1 }).is_err()
        );
        assert!(VpSchedule::from_alphas_cumprod(2, &[0.9, 1.2], Spacing::Trailing, 1.0).is_err());
    }
}

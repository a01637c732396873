//! diffusers' float32 tensor arithmetic, value for value: the betas and `ᾱ` tables its
//! schedulers build with torch, so chords's grids hold diffusers' own numbers.
//!
//! Checked against torch 2.15 on the CPU (`tests/data/diffusers/reference.py`):
//! `torch.linspace` in float32 computes a float32 step and each value as one rounding of
//! `start + step·i` (first half) or `end - step·(n-1-i)` (second half); `torch.cumprod`
//! accumulates in f64 and rounds each output to float32.

/// `torch.linspace(start, end, n, dtype=torch.float32)`.
pub(super) fn linspace(start: f64, end: f64, n: usize) -> Vec<f32> {
    let (s, e) = (start as f32, end as f32);
    if n == 1 {
        return vec![s];
    }
    let step = (e - s) / (n - 1) as f32;
    let half = n / 2;
    (0..n)
        .map(|i| {
            if i < half {
                (f64::from(s) + f64::from(step) * i as f64) as f32
            } else {
                (f64::from(e) - f64::from(step) * (n - 1 - i) as f64) as f32
            }
        })
        .collect()
}

/// `torch.cumprod(1.0 - betas, dim=0)` in float32.
pub(super) fn alphas_cumprod(betas: &[f32]) -> Vec<f32> {
    let mut acc = 1.0f64;
    betas
        .iter()
        .map(|b| {
            acc *= f64::from(1.0 - b);
            acc as f32
        })
        .collect()
}

/// diffusers' `rescale_zero_terminal_snr(betas)` in float32.
pub(super) fn rescale_zero_terminal_snr(betas: &[f32]) -> Vec<f32> {
    let mut sqrt: Vec<f32> = alphas_cumprod(betas).iter().map(|a| a.sqrt()).collect();
    let (Some(&first), Some(&last)) = (sqrt.first(), sqrt.last()) else {
        return Vec::new();
    };
    let scale = first / (first - last);
    for s in &mut sqrt {
        *s = (*s - last) * scale;
    }
    let bars: Vec<f32> = sqrt.iter().map(|s| s * s).collect();
    let mut out = Vec::with_capacity(bars.len());
    out.push(1.0 - bars[0]);
    out.extend(bars.windows(2).map(|w| 1.0 - w[1] / w[0]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_hits_both_ends() {
        let v = linspace(0.0001, 0.02, 1000);
        assert_eq!(v[0], 0.0001f32);
        assert_eq!(v[999], 0.02f32);
        assert_eq!(linspace(0.5, 2.0, 1), vec![0.5f32]);
    }

    #[test]
    fn cumprod_multiplies_one_minus_beta() {
        assert_eq!(alphas_cumprod(&[0.5, 0.5, 0.5]), vec![0.5, 0.25, 0.125]);
    }

    #[test]
    fn zero_snr_ends_at_zero() {
        let betas = linspace(0.0001, 0.02, 1000);
        let ab = alphas_cumprod(&rescale_zero_terminal_snr(&betas));
        assert_eq!(ab[999], 0.0);
    }
}

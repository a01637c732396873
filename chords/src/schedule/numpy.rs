//! numpy's `linspace`, `arange` and `interp`, value for value: diffusers builds its grids
//! with them, and rounding decides some timesteps.

/// numpy's `linspace(start, stop, num)` (endpoint included), value for value.
pub(crate) fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut out: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(last) = out.last_mut() {
        *last = stop;
    }
    out
}

/// numpy's `arange(start, 0, -step)` for `start, step > 0`, value for value: the length is
/// `ceil(start / step)`; elements past the second are `start + i·d` with `d` the difference
/// of the first two, as numpy fills them.
pub(crate) fn arange_down(start: f64, step: f64) -> Vec<f64> {
    let len = ((0.0 - start) / -step).ceil().max(0.0) as usize;
    let second = start + -step;
    let d = second - start;
    (0..len)
        .map(|i| match i {
            0 => start,
            1 => second,
            _ => start + i as f64 * d,
        })
        .collect()
}

/// numpy's `interp(x, arange(len(fp)), fp)` for `x` within `[0, len - 1]`.
pub(crate) fn interp_index(x: f64, fp: &[f64]) -> f64 {
    let last = fp.len().saturating_sub(1);
    if x <= 0.0 || last == 0 {
        return fp.first().copied().unwrap_or(f64::NAN);
    }
    if x >= last as f64 {
        return fp[last];
    }
    let j = x.floor() as usize;
    let slope = fp[j + 1] - fp[j];
    slope * (x - j as f64) + fp[j]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_ends_on_stop_and_steps_evenly() {
        assert_eq!(linspace(0.0, 999.0, 4), vec![0.0, 333.0, 666.0, 999.0]);
        assert_eq!(linspace(5.0, 1.0, 1), vec![5.0]);
    }

    #[test]
    fn interp_is_piecewise_linear() {
        let fp = [1.0, 3.0, 4.0];
        assert_eq!(interp_index(0.5, &fp), 2.0);
        assert_eq!(interp_index(1.25, &fp), 3.25);
        assert_eq!(interp_index(2.0, &fp), 4.0);
        assert_eq!(interp_index(-1.0, &fp), 1.0);
    }
}

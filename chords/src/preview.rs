//! Turning a latent into pixels: the reference mapping every preview path must reproduce.
//!
//! A latent of shape (C, H, W) with values in [-1, 1] becomes an RGBA8 image: 3 channels are
//! read as RGB; any other channel count is shown as C grayscale tiles side by side
//! (W·C wide). Each value maps to `round(clamp((v + 1) / 2, 0, 1) · 255)`.

/// An RGBA8 picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgba8 {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major RGBA bytes, `width · height · 4` of them.
    pub pixels: Vec<u8>,
}

/// The byte for one latent value.
pub fn to_byte(v: f32) -> u8 {
    // NaN maps to 0 (clamp keeps NaN; the cast saturates it to 0).
    (((v + 1.0) * 0.5).clamp(0.0, 1.0) * 255.0).round() as u8
}

/// The picture of a (C, H, W) latent, or `None` if `shape` is not 3-D or does not match.
///
/// ```
/// let img = chords::preview::rgba8(&[1, 1, 2], &[-1.0, 1.0]).unwrap();
/// assert_eq!(img.pixels, vec![0, 0, 0, 255, 255, 255, 255, 255]);
/// ```
pub fn rgba8(shape: &[usize], data: &[f32]) -> Option<Rgba8> {
    let &[c, h, w] = shape else { return None };
    if c == 0 || c * h * w != data.len() {
        return None;
    }
    let plane = h * w;
    let (width, height) = if c == 3 { (w, h) } else { (w * c, h) };
    let mut pixels = Vec::with_capacity(width * height * 4);
    for y in 0..h {
        if c == 3 {
            for x in 0..w {
                let at = y * w + x;
                pixels.extend([
                    to_byte(data[at]),
                    to_byte(data[plane + at]),
                    to_byte(data[2 * plane + at]),
                    255,
                ]);
            }
        } else {
            for ch in 0..c {
                for x in 0..w {
                    let v = to_byte(data[ch * plane + y * w + x]);
                    pixels.extend([v, v, v, 255]);
                }
            }
        }
    }
    Some(Rgba8 {
        width,
        height,
        pixels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_mapping() {
        assert_eq!(to_byte(-1.0), 0);
        assert_eq!(to_byte(1.0), 255);
        assert_eq!(to_byte(0.0), 128); // 127.5 rounds away from zero
        assert_eq!(to_byte(5.0), 255);
        assert_eq!(to_byte(-5.0), 0);
        assert_eq!(to_byte(f32::NAN), 0);
    }

    #[test]
    fn rgb_and_tiled_layouts() {
        // 3 channels, 1×2: pixel 0 = (R0, G0, B0).
        let img = rgba8(&[3, 1, 2], &[1.0, -1.0, -1.0, 1.0, 0.0, 0.0]).unwrap();
        assert_eq!(img.pixels, vec![255, 0, 128, 255, 0, 255, 128, 255]);
        // 2 channels, 1×1: two grey tiles side by side.
        let img = rgba8(&[2, 1, 1], &[1.0, -1.0]).unwrap();
        assert_eq!((img.width, img.height), (2, 1));
        assert_eq!(img.pixels, vec![255, 255, 255, 255, 0, 0, 0, 255]);
        assert!(rgba8(&[3, 2], &[0.0; 6]).is_none());
        assert!(rgba8(&[3, 2, 2], &[0.0; 6]).is_none());
    }
}

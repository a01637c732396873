//! The picture atlas: every training picture of the emoji model in one PNG, 64 to a row,
//! in condition order (all Noto pictures, then all Twemoji ones). `chords data` writes it;
//! the repository keeps it as `assets/emoji/pictures.png`, built into the binary, for
//! `chords retrieval` (the nearest training picture to a sample) and the tests.

use anyhow::{Context, Result, bail};

use crate::files::write_atomic;

/// Pictures per row of the atlas.
pub const COLUMNS: usize = 64;
/// Side of one picture, in pixels.
const SIDE: usize = 32;
/// Values of one picture (3×32×32).
const NUMEL: usize = chords_emoji::NUMEL;

/// The atlas shipped in the repository (3812 pictures).
pub const SHIPPED: &[u8] = include_bytes!("../../assets/emoji/pictures.png");

/// Encodes `pictures` (each 3×32×32, values in [-1, 1]) as an RGB PNG.
pub fn encode(pictures: &[f32]) -> Result<Vec<u8>> {
    let n = pictures.len() / NUMEL;
    let rows = n.div_ceil(COLUMNS).max(1);
    let (width, height) = (COLUMNS * SIDE, rows * SIDE);
    let mut rgb = vec![255u8; width * height * 3];
    for (i, picture) in pictures.chunks_exact(NUMEL).enumerate() {
        let (x0, y0) = ((i % COLUMNS) * SIDE, (i / COLUMNS) * SIDE);
        for y in 0..SIDE {
            for x in 0..SIDE {
                for c in 0..3 {
                    rgb[((y0 + y) * width + x0 + x) * 3 + c] =
                        chords::preview::to_byte(picture[c * SIDE * SIDE + y * SIDE + x]);
                }
            }
        }
    }
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, u32::try_from(width)?, u32::try_from(height)?);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&rgb)?;
    writer.finish()?;
    Ok(bytes)
}

/// Writes the atlas of `pictures` to `path`.
pub fn write(path: &std::path::Path, pictures: &[f32]) -> Result<()> {
    write_atomic(path, &encode(pictures)?)
}

/// The first `count` pictures of an atlas PNG, each 3×32×32 in [-1, 1].
pub fn decode(png_bytes: &[u8], count: usize) -> Result<Vec<f32>> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .context("the picture atlas is not a PNG")?;
    let mut buf = vec![0; reader.output_buffer_size().context("atlas too large")?];
    let info = reader.next_frame(&mut buf)?;
    let (width, height) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    if width != COLUMNS * SIDE || channels < 3 || height < count.div_ceil(COLUMNS) * SIDE {
        bail!(
            "the picture atlas is {width}×{height} with {channels} channels; expected {} wide, RGB, with room for {count} pictures",
            COLUMNS * SIDE
        );
    }
    let mut out = vec![0.0; count * NUMEL];
    for (i, picture) in out.chunks_exact_mut(NUMEL).enumerate() {
        let (x0, y0) = ((i % COLUMNS) * SIDE, (i / COLUMNS) * SIDE);
        for y in 0..SIDE {
            for x in 0..SIDE {
                for c in 0..3 {
                    let byte = buf[((y0 + y) * width + x0 + x) * channels + c];
                    picture[c * SIDE * SIDE + y * SIDE + x] = f32::from(byte) / 255.0 * 2.0 - 1.0;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_survive_the_atlas_to_within_one_byte() {
        let pictures: Vec<f32> = (0..70 * NUMEL)
            .map(|i| ((i * 37) % 255) as f32 / 127.0 - 1.0)
            .collect();
        let decoded = decode(&encode(&pictures).unwrap(), 70).unwrap();
        assert_eq!(decoded.len(), pictures.len());
        for (a, b) in pictures.iter().zip(&decoded) {
            assert!((a - b).abs() <= 1.0 / 255.0 + 1e-6, "{a} vs {b}");
        }
        // The atlas has room for 128 pictures, not more.
        assert!(decode(&encode(&pictures).unwrap(), 129).is_err());
        assert!(decode(b"not a png", 1).is_err());
    }
}

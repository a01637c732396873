//! Sample grid of the emoji model: one row per class, `n` samples per row (seeds 0..n),
//! 50-step Euler (the sequential solve, which CHORDS's last output equals), guidance
//! `DEFAULT_GUIDANCE` (4) unless given.
//!
//! ```sh
//! cargo run --release -p chords-viewer --example emoji_grid -- [weights.bpk] [out.png] [n] [guidance]
//! ```

use std::path::PathBuf;

use chords::{FlowSchedule, noise};
use chords_emoji::{CLASSES, EmojiModel, NUMEL};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let weights = PathBuf::from(
        args.get(1)
            .map_or("chords-emoji/weights/emoji.bpk", String::as_str),
    );
    let out = PathBuf::from(args.get(2).map_or("docs/emoji-samples.png", String::as_str));
    let n: usize = args.get(3).map_or(Ok(8), |a| a.parse())?;
    let guidance: f32 = args
        .get(4)
        .map_or(Ok(chords_emoji::DEFAULT_GUIDANCE), |a| a.parse())?;
    let steps = 50;
    let schedule = FlowSchedule::new(steps, 1.0)?;
    let device = chords_emoji::cpu_device();
    let scale = 2;
    let (cell, pad) = (32 * scale, 4);
    let (width, height) = (n * (cell + pad) + pad, CLASSES.len() * (cell + pad) + pad);
    let mut pixels = vec![255u8; width * height * 4];
    for (class, (name, _)) in CLASSES.iter().enumerate() {
        let model = EmojiModel::load(&weights, &device)?
            .with_class(class)?
            .with_guidance(guidance)?;
        let mut xs: Vec<Vec<f32>> = (0..n as u64)
            .map(|seed| noise::gaussian(seed, NUMEL))
            .collect();
        for i in 0..steps {
            let refs: Vec<&[f32]> = xs.iter().map(Vec::as_slice).collect();
            let sigma = schedule.sigma(i);
            let v = model.velocities(&refs, &vec![sigma; n])?;
            let dt = (schedule.sigma(i + 1) - sigma) as f32;
            for (x, v) in xs.iter_mut().zip(&v) {
                for (xe, ve) in x.iter_mut().zip(v) {
                    *xe += dt * ve;
                }
            }
        }
        for (k, x) in xs.iter().enumerate() {
            let img = chords::preview::rgba8(&[3, 32, 32], x).ok_or("bad latent")?;
            for y in 0..cell {
                for xx in 0..cell {
                    let src = ((y / scale) * 32 + xx / scale) * 4;
                    let (px, py) = (pad + k * (cell + pad) + xx, pad + class * (cell + pad) + y);
                    let dst = (py * width + px) * 4;
                    pixels[dst..dst + 4].copy_from_slice(&img.pixels[src..src + 4]);
                }
            }
        }
        eprintln!("{name}: done");
    }
    let file = std::io::BufWriter::new(std::fs::File::create(&out)?);
    let mut encoder = png::Encoder::new(file, width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&pixels)?;
    eprintln!(
        "wrote {} (rows: {})",
        out.display(),
        CLASSES.iter().map(|c| c.0).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

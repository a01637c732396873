//! Every core's picture of every round: what the live window shows, kept for
//! `chords render --frames` and the window's "Save frames" (one PNG per frame plus a contact
//! sheet with a row per round and a column per core).

use anyhow::{Context, Result};
use chords::preview::Rgba8;
use chords::{Backend, CpuBackend};
use chords_wgpu::{PreviewTexture, WgpuBackend};

use crate::files::OutDir;

/// Folder inside the output directory that holds the frames.
pub const FRAMES_DIR: &str = "frames";
/// Pixels between contact-sheet cells.
const GAP: usize = 2;
/// Contact-sheet background (cells of cores not started yet stay this colour).
const BACKGROUND: [u8; 4] = [24, 24, 28, 255];

/// A backend that can picture its latents (the [`chords::preview`] mapping).
pub trait Pictures: Backend {
    /// The picture of a (C, H, W) latent, on the host.
    fn picture(&self, latent: &Self::Latent, shape: &[usize]) -> Result<Rgba8>;

    /// Draws the picture into `frame` on the device, with no read-back, when the latent
    /// lives on `frame`'s device; `Ok(false)` when it cannot (then use
    /// [`picture`](Self::picture)).
    fn draw(&self, latent: &Self::Latent, shape: &[usize], frame: &PreviewTexture) -> Result<bool> {
        let _ = (latent, shape, frame);
        Ok(false)
    }
}

impl Pictures for CpuBackend {
    fn picture(&self, latent: &Self::Latent, shape: &[usize]) -> Result<Rgba8> {
        chords::preview::rgba8(shape, latent.as_slice())
            .with_context(|| format!("cannot picture a latent of shape {shape:?}"))
    }
}

impl Pictures for WgpuBackend {
    fn picture(&self, latent: &Self::Latent, shape: &[usize]) -> Result<Rgba8> {
        Ok(self.preview(latent, shape)?)
    }

    fn draw(&self, latent: &Self::Latent, shape: &[usize], frame: &PreviewTexture) -> Result<bool> {
        let gpu = &self.pool().gpus()[latent.gpu_index()];
        if gpu.device() != frame.device() {
            return Ok(false);
        }
        self.preview_to_texture(latent, shape, frame)?;
        Ok(true)
    }
}

/// One core's picture after one round.
#[derive(Debug, Clone)]
pub struct Frame {
    /// 1-based round.
    pub round: usize,
    /// The core.
    pub core: usize,
    /// Grid index of the pictured point.
    pub index: usize,
    /// Its picture (the preview mapping of its latent).
    pub image: Rgba8,
}

/// The frames of one run, in arrival order.
#[derive(Debug, Default, Clone)]
pub struct FrameLog {
    frames: Vec<Frame>,
}

impl FrameLog {
    /// Adds a frame.
    pub fn push(&mut self, frame: Frame) {
        self.frames.push(frame);
    }

    /// The frames so far.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// The file name of a frame: `round007-core2-i019.png` is core 2 at grid index 19
    /// after round 7.
    pub fn file_name(frame: &Frame) -> String {
        format!(
            "round{:03}-core{}-i{:03}.png",
            frame.round, frame.core, frame.index
        )
    }

    /// Rows = rounds, columns = cores. A core that has finished keeps showing its last
    /// frame; one that has not started yet leaves its cell dark. `None` with no frames.
    pub fn contact_sheet(&self) -> Option<Rgba8> {
        let first = self.frames.first()?;
        let (w, h) = (first.image.width, first.image.height);
        let rounds = self.frames.iter().map(|f| f.round).max()?;
        let cores = self.frames.iter().map(|f| f.core).max()? + 1;
        let width = cores * (w + GAP) + GAP;
        let height = rounds * (h + GAP) + GAP;
        let mut pixels: Vec<u8> = BACKGROUND.repeat(width * height);
        let mut latest: Vec<Option<&Frame>> = vec![None; cores];
        let mut next = 0;
        for round in 1..=rounds {
            while let Some(f) = self.frames.get(next).filter(|f| f.round <= round) {
                latest[f.core] = Some(f);
                next += 1;
            }
            for (core, frame) in latest.iter().enumerate() {
                let Some(frame) = frame.filter(|f| f.image.width == w && f.image.height == h)
                else {
                    continue;
                };
                let (x0, y0) = (GAP + core * (w + GAP), GAP + (round - 1) * (h + GAP));
                for y in 0..h {
                    let from = &frame.image.pixels[y * w * 4..(y + 1) * w * 4];
                    let at = ((y0 + y) * width + x0) * 4;
                    pixels[at..at + w * 4].copy_from_slice(from);
                }
            }
        }
        Some(Rgba8 {
            width,
            height,
            pixels,
        })
    }

    /// Writes every frame and `contact-sheet.png` into `frames/` of `out`; returns the
    /// number of frames and the contact sheet's path relative to `out`.
    pub fn write(&self, out: &OutDir) -> Result<(usize, String)> {
        for frame in &self.frames {
            out.write_png(
                &format!("{FRAMES_DIR}/{}", Self::file_name(frame)),
                &frame.image,
            )?;
        }
        let sheet = self.contact_sheet().context("the run produced no frames")?;
        let name = format!("{FRAMES_DIR}/contact-sheet.png");
        out.write_png(&name, &sheet)?;
        Ok((self.frames.len(), name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(round: usize, core: usize, value: u8) -> Frame {
        Frame {
            round,
            core,
            index: 0,
            image: Rgba8 {
                width: 1,
                height: 1,
                pixels: vec![value, value, value, 255],
            },
        }
    }

    #[test]
    fn contact_sheet_places_rounds_in_rows_and_cores_in_columns() {
        let mut log = FrameLog::default();
        log.push(frame(1, 0, 10));
        log.push(frame(2, 0, 20));
        log.push(frame(2, 1, 30));
        // Core 0 has finished in round 3; core 1 goes on.
        log.push(frame(3, 1, 40));
        let sheet = log.contact_sheet().unwrap();
        assert_eq!((sheet.width, sheet.height), (2 * 3 + 2, 3 * 3 + 2));
        let at = |x: usize, y: usize| sheet.pixels[(y * sheet.width + x) * 4];
        let cell = |core: usize, round: usize| at(2 + core * 3, 2 + (round - 1) * 3);
        assert_eq!(cell(0, 1), 10);
        assert_eq!(cell(1, 1), BACKGROUND[0]); // not started
        assert_eq!((cell(0, 2), cell(1, 2)), (20, 30));
        assert_eq!((cell(0, 3), cell(1, 3)), (20, 40)); // core 0 keeps its last frame
        assert_eq!(at(0, 0), BACKGROUND[0]); // the gap
        assert!(FrameLog::default().contact_sheet().is_none());
    }
}

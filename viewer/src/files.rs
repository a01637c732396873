//! The output directory of `chords render`: never clobbers what the user did not ask to.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Name of the run report inside the output directory.
pub const REPORT: &str = "report.json";

/// An output directory checked for conflicts before any work starts.
#[derive(Debug)]
pub struct OutDir {
    root: PathBuf,
    /// Canonical paths of the run's inputs: never written, even with --overwrite.
    inputs: Vec<PathBuf>,
}

/// Whether a file name is one `chords render` writes.
fn is_ours(name: &str) -> bool {
    name == REPORT
        || name == crate::frames::FRAMES_DIR
        || name.starts_with("preview.")
        || name.starts_with("sequential.")
        || (name.starts_with("hit") && (name.ends_with(".npy") || name.ends_with(".png")))
}

impl OutDir {
    /// Prepares `root`: refuses a directory holding an earlier run's outputs unless
    /// `overwrite`, and remembers `inputs` so they are never overwritten.
    pub fn prepare(root: &Path, overwrite: bool, inputs: &[&Path]) -> Result<Self> {
        if root.exists() && !root.is_dir() {
            bail!("--out {} exists and is not a directory", root.display());
        }
        if root.is_dir() && !overwrite {
            if root.join(REPORT).exists() {
                bail!(
                    "{} already holds a report ({REPORT}); pass --overwrite to replace it",
                    root.display()
                );
            }
            let entries =
                fs::read_dir(root).with_context(|| format!("cannot list {}", root.display()))?;
            for entry in entries.flatten() {
                let name = entry.file_name();
                if is_ours(&name.to_string_lossy()) {
                    bail!(
                        "{} already holds {}; pass --overwrite to replace it or choose another --out",
                        root.display(),
                        name.to_string_lossy()
                    );
                }
            }
        }
        fs::create_dir_all(root)
            .with_context(|| format!("cannot create output directory {}", root.display()))?;
        let inputs = inputs
            .iter()
            .filter_map(|p| fs::canonicalize(p).ok())
            .collect();
        Ok(Self {
            root: root.to_path_buf(),
            inputs,
        })
    }

    /// The path of `name` in the directory, refusing to hand out an input file's path.
    fn path(&self, name: &str) -> Result<PathBuf> {
        let path = self.root.join(name);
        if let Ok(canonical) = fs::canonicalize(&path)
            && self.inputs.contains(&canonical)
        {
            bail!(
                "refusing to overwrite input file {} with an output",
                path.display()
            );
        }
        Ok(path)
    }

    /// Writes a (C, H, W) latent as `<stem>.npy` and `<stem>.png`; returns both file names.
    pub fn write_latent(
        &self,
        stem: &str,
        shape: &[usize],
        data: &[f32],
    ) -> Result<(String, String)> {
        let (npy, png) = (format!("{stem}.npy"), format!("{stem}.png"));
        chords::npy::write(&self.path(&npy)?, shape, data)?;
        let image = chords::preview::rgba8(shape, data)
            .with_context(|| format!("cannot picture a latent of shape {shape:?}"))?;
        write_png(&self.path(&png)?, &image)?;
        Ok((npy, png))
    }

    /// Writes a picture as `name` (a path relative to the directory; folders are created).
    pub fn write_png(&self, name: &str, image: &chords::preview::Rgba8) -> Result<()> {
        let path = self.path(name)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        write_png(&path, image)
    }

    /// Writes the report last, atomically (a temporary file renamed into place).
    pub fn write_report(&self, report: &serde_json::Value) -> Result<PathBuf> {
        let path = self.path(REPORT)?;
        let tmp = self.root.join(format!(".{REPORT}.tmp"));
        let text = serde_json::to_string_pretty(report)?;
        fs::write(&tmp, text + "\n").with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

/// Encodes an RGBA8 picture as PNG.
pub fn write_png(path: &Path, image: &chords::preview::Rgba8) -> Result<()> {
    let file =
        fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let (w, h) = (u32::try_from(image.width)?, u32::try_from(image.height)?);
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .with_context(|| format!("cannot write {}", path.display()))?;
    writer
        .write_image_data(&image.pixels)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writer
        .finish()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

//! Output directories: claimed by one run at a time, never clobbered beyond what the user
//! asked for, and written file by file through a temporary name and a rename, so a killed
//! run never leaves a half-written file under a final name.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Name of the run report inside the output directory.
pub const REPORT: &str = "report.json";

/// The lock file a run holds in its output directory while it writes there.
pub const LOCK: &str = ".chords-run.lock";

/// An output directory checked for conflicts before any work starts, and claimed.
#[derive(Debug)]
pub struct OutDir {
    root: PathBuf,
    /// Canonical paths of the run's inputs: never written, even with --overwrite.
    inputs: Vec<PathBuf>,
    _claim: Claim,
}

/// A directory claimed by this process: [`LOCK`] created atomically inside it, removed on
/// drop. A second run on the same directory is refused while the first holds it; a lock
/// left by a run that was killed (its process is gone) is taken over.
#[derive(Debug)]
pub struct Claim {
    lock: PathBuf,
}

impl Claim {
    /// Creates `root` if needed and claims it.
    pub fn new(root: &Path) -> Result<Self> {
        fs::create_dir_all(root)
            .with_context(|| format!("cannot create output directory {}", root.display()))?;
        let lock = root.join(LOCK);
        for _ in 0..3 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock)
            {
                Ok(mut file) => {
                    writeln!(file, "{}", std::process::id())
                        .with_context(|| format!("cannot write {}", lock.display()))?;
                    return Ok(Self { lock });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = chords::read::read_text(&lock, 64)
                        .ok()
                        .and_then(|t| t.trim().parse::<u32>().ok());
                    match holder {
                        Some(pid) if process_is_gone(pid) => {
                            // Move the stale lock aside atomically: of several runs taking
                            // it over at once, one rename succeeds and the others retry.
                            let aside = root.join(format!("{LOCK}.stale-{}", std::process::id()));
                            if fs::rename(&lock, &aside).is_ok() {
                                let _ = fs::remove_file(&aside);
                            }
                        }
                        Some(pid) => bail!(
                            "{} is in use by another chords run (process {pid}, lock {LOCK}); \
                             wait for it or choose another --out",
                            root.display()
                        ),
                        None => bail!(
                            "{} is being claimed by another chords run (lock {LOCK}); \
                             wait for it or choose another --out",
                            root.display()
                        ),
                    }
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", lock.display()));
                }
            }
        }
        bail!(
            "{} is contended by other chords runs (lock {LOCK}); choose another --out",
            root.display()
        )
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.lock);
    }
}

/// Whether process `pid` no longer exists (Linux: no `/proc/PID`); elsewhere a lock is
/// never assumed stale.
fn process_is_gone(pid: u32) -> bool {
    cfg!(target_os = "linux")
        && Path::new("/proc/self").exists()
        && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename:
/// readers, and a run killed half-way, see the old file or the whole new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write {}", path.display())
    })
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
        // Claim first, then look: a run that finished between a look and a claim would
        // otherwise have its outputs mixed with ours. (A folder this created is empty, so
        // only a folder that existed can fail the look.)
        let claim = Claim::new(root)?;
        Self::check(root, overwrite)?;
        let inputs = inputs
            .iter()
            .filter_map(|p| fs::canonicalize(p).ok())
            .collect();
        Ok(Self {
            root: root.to_path_buf(),
            inputs,
            _claim: claim,
        })
    }

    /// Refuses a directory holding an earlier run's outputs unless `overwrite`.
    fn check(root: &Path, overwrite: bool) -> Result<()> {
        if !overwrite {
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
        Ok(())
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

    /// Writes the report last.
    pub fn write_report(&self, report: &serde_json::Value) -> Result<PathBuf> {
        let path = self.path(REPORT)?;
        let text = serde_json::to_string_pretty(report)?;
        write_atomic(&path, (text + "\n").as_bytes())?;
        Ok(path)
    }
}

/// Writes an RGBA8 picture as a PNG file (atomically).
pub fn write_png(path: &Path, image: &chords::preview::Rgba8) -> Result<()> {
    let mut bytes = Vec::new();
    encode_png(image, &mut bytes).with_context(|| format!("cannot write {}", path.display()))?;
    write_atomic(path, &bytes)
}

/// Encodes an RGBA8 picture as PNG into `out`.
fn encode_png(image: &chords::preview::Rgba8, out: &mut Vec<u8>) -> Result<()> {
    let (w, h) = (u32::try_from(image.width)?, u32::try_from(image.height)?);
    let mut encoder = png::Encoder::new(out, w, h);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&image.pixels)?;
    writer.finish()?;
    Ok(())
}

//! `chords data`: fetch and prepare the emoji training set.
//!
//! Source: the npm package `emoji-datasource-google` (Noto emoji PNGs at 64×64 under
//! `img/google/64/`, images under the Apache License 2.0, metadata MIT). Each base emoji
//! (no skin-tone variants, no "Component" swatches) is composited over a white background,
//! box-filtered to 32×32 RGB, mapped to [-1, 1], and labelled with its category.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use chords_emoji::category_index;
use indicatif::ProgressBar;

/// The package version the shipped model was trained on.
pub const PACKAGE: &str = "emoji-datasource-google-16.0.0";
/// Where npm serves it.
pub const URL: &str =
    "https://registry.npmjs.org/emoji-datasource-google/-/emoji-datasource-google-16.0.0.tgz";

/// Arguments of `chords data`.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// Output directory for images.npy, labels.npy and SOURCE.md.
    #[arg(long, default_value = "data/emoji")]
    pub out: PathBuf,
    /// Use this downloaded package tarball instead of fetching it (with curl).
    #[arg(long, value_name = "TGZ")]
    pub tarball: Option<PathBuf>,
}

/// Runs `chords data`.
pub fn run(args: &DataArgs) -> Result<()> {
    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let tarball = match &args.tarball {
        Some(path) => path.clone(),
        None => {
            let path = args.out.join(format!("{PACKAGE}.tgz"));
            if !path.exists() {
                eprintln!("downloading {URL}");
                let status = Command::new("curl")
                    .args(["-fsSL", "-o"])
                    .arg(&path)
                    .arg(URL)
                    .status()
                    .context("cannot run curl; download the package yourself and pass --tarball")?;
                if !status.success() {
                    let _ = fs::remove_file(&path);
                    bail!("downloading {URL} failed; download it yourself and pass --tarball");
                }
            }
            path
        }
    };
    let (metadata, pngs) = read_package(&tarball)?;
    let entries: Vec<serde_json::Value> =
        serde_json::from_slice(&metadata).context("package/emoji.json is not valid JSON")?;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    let mut skipped = 0;
    let bar = ProgressBar::new(entries.len() as u64);
    for entry in &entries {
        bar.inc(1);
        let (Some(image), Some(category)) = (entry["image"].as_str(), entry["category"].as_str())
        else {
            continue;
        };
        let Some(class) = category_index(category) else {
            continue;
        };
        if entry["has_img_google"] != serde_json::Value::Bool(true) {
            continue;
        }
        let Some(png) = pngs.get(image) else {
            skipped += 1;
            continue;
        };
        match picture(png) {
            Ok(pixels) => {
                images.extend(pixels);
                labels.push(class as f32);
            }
            Err(e) => {
                tracing::warn!("skipping {image}: {e:#}");
                skipped += 1;
            }
        }
    }
    bar.finish_and_clear();
    let n = labels.len();
    if n == 0 {
        bail!("{}: no usable emoji images found", tarball.display());
    }
    chords::npy::write(&args.out.join("images.npy"), &[n, 3, 32, 32], &images)?;
    chords::npy::write(&args.out.join("labels.npy"), &[n], &labels)?;
    let counts: Vec<String> = chords_emoji::CLASSES
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            format!(
                "{name} {}",
                labels.iter().filter(|l| **l as usize == i).count()
            )
        })
        .collect();
    crate::files::write_atomic(
        &args.out.join("SOURCE.md"),
        format!(
            "# Emoji training data\n\nFrom the npm package `{PACKAGE}` ({URL}): Noto emoji images, \
             Apache License 2.0 (Google); metadata MIT (iamcal/emoji-data).\n\
             {n} base emoji, 32×32 RGB over white, values in [-1, 1]; labels are category indices.\n\n\
             Per class: {}\n",
            counts.join(", ")
        )
        .as_bytes(),
    )?;
    eprintln!(
        "wrote {n} images ({skipped} skipped) to {}: {}",
        args.out.display(),
        counts.join(", ")
    );
    Ok(())
}

/// The package's `emoji.json` and its 64×64 Google PNGs by file name.
type Package = (Vec<u8>, HashMap<String, Vec<u8>>);

/// `package/emoji.json` and the 64×64 Google PNGs by file name.
fn read_package(tarball: &Path) -> Result<Package> {
    let file =
        fs::File::open(tarball).with_context(|| format!("cannot open {}", tarball.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut metadata = None;
    let mut pngs = HashMap::new();
    for entry in archive
        .entries()
        .with_context(|| format!("{} is not a .tgz archive", tarball.display()))?
    {
        let mut entry = entry.with_context(|| format!("{} is corrupt", tarball.display()))?;
        let path = entry.path()?.to_string_lossy().into_owned();
        if path == "package/emoji.json" {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            metadata = Some(bytes);
        } else if let Some(name) = path.strip_prefix("package/img/google/64/") {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            pngs.insert(name.to_string(), bytes);
        }
    }
    let metadata =
        metadata.with_context(|| format!("{} holds no package/emoji.json", tarball.display()))?;
    Ok((metadata, pngs))
}

/// A 64×64 RGBA PNG as a 3×32×32 latent in [-1, 1], composited over white.
fn picture(png_bytes: &[u8]) -> Result<Vec<f32>> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(
        png::Transformations::EXPAND | png::Transformations::STRIP_16 | png::Transformations::ALPHA,
    );
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().context("image too large")?];
    let info = reader.next_frame(&mut buf)?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    if w != 64 || h != 64 || !(channels == 4 || channels == 2) {
        bail!("expected a 64×64 image with alpha, got {w}×{h} with {channels} channels");
    }
    let rgba = |x: usize, y: usize| -> [f32; 4] {
        let p = &buf[(y * w + x) * channels..];
        let v = |i: usize| p[i] as f32 / 255.0;
        if channels == 4 {
            [v(0), v(1), v(2), v(3)]
        } else {
            [v(0), v(0), v(0), v(1)]
        }
    };
    let mut out = vec![0.0; 3 * 32 * 32];
    for y in 0..32 {
        for x in 0..32 {
            let mut acc = [0.0f32; 3];
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let [r, g, b, a] = rgba(2 * x + dx, 2 * y + dy);
                for (c, v) in [r, g, b].into_iter().enumerate() {
                    acc[c] += v * a + (1.0 - a);
                }
            }
            for c in 0..3 {
                out[c * 1024 + y * 32 + x] = acc[c] / 4.0 * 2.0 - 1.0;
            }
        }
    }
    Ok(out)
}

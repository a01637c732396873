//! `chords data`: fetch and prepare the emoji training set.
//!
//! Sources, both from npm, version 16.0.0:
//! * `emoji-datasource-google`: Noto emoji PNGs at 64×64 under `img/google/64/` (images
//!   under the Apache License 2.0, metadata MIT);
//! * `emoji-datasource-twitter`: Twemoji PNGs at 64×64 under `img/twitter/64/` (images
//!   under CC-BY 4.0, metadata MIT).
//!
//! Each base emoji (no skin-tone variants, no "Component" swatches) with a picture in both
//! styles, in the data set's sort order, is composited over a white background,
//! box-filtered to 32×32 RGB and mapped to [-1, 1]. Picture `c` is condition `c` of the
//! model (`chords_emoji::condition`): every Noto picture, then every Twemoji one.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use chords_emoji::Style;
use indicatif::ProgressBar;

/// The package version the shipped model was trained on.
const VERSION: &str = "16.0.0";

/// The npm package of a style.
fn package(style: Style) -> &'static str {
    match style {
        Style::Noto => "emoji-datasource-google",
        Style::Twemoji => "emoji-datasource-twitter",
    }
}

/// The folder of a style's 64×64 pictures inside its package.
fn image_folder(style: Style) -> &'static str {
    match style {
        Style::Noto => "package/img/google/64/",
        Style::Twemoji => "package/img/twitter/64/",
    }
}

/// Where npm serves a style's package.
fn url(style: Style) -> String {
    let name = package(style);
    format!("https://registry.npmjs.org/{name}/-/{name}-{VERSION}.tgz")
}

/// Arguments of `chords data`.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// Output directory for images.npy, labels.npy, catalog.tsv, pictures.png and SOURCE.md.
    #[arg(long, default_value = "data/emoji")]
    pub out: PathBuf,
    /// Use these downloaded package tarballs (the Noto and the Twemoji one, in either order)
    /// instead of fetching them (with curl).
    #[arg(long, value_name = "TGZ", num_args = 1..=2)]
    pub tarball: Vec<PathBuf>,
}

/// A style's package: its `emoji.json` and its 64×64 PNGs by file name.
struct Package {
    metadata: Vec<u8>,
    pngs: HashMap<String, Vec<u8>>,
}

/// Runs `chords data`.
pub fn run(args: &DataArgs) -> Result<()> {
    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut packages: HashMap<Style, Package> = HashMap::new();
    for path in &args.tarball {
        let (style, package) = read_package(path)?;
        if packages.insert(style, package).is_some() {
            bail!("two --tarball packages hold {style} pictures");
        }
    }
    for style in Style::ALL {
        if !packages.contains_key(&style) {
            let path = download(style, &args.out)?;
            let (found, package) = read_package(&path)?;
            if found != style {
                bail!("{} holds {found} pictures, not {style}", path.display());
            }
            packages.insert(style, package);
        }
    }
    let (noto, twemoji) = (&packages[&Style::Noto], &packages[&Style::Twemoji]);
    let entries: Vec<serde_json::Value> =
        serde_json::from_slice(&noto.metadata).context("package/emoji.json is not valid JSON")?;
    let mut entries: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| {
            e["category"].as_str().is_some_and(|c| c != "Component")
                && e["image"]
                    .as_str()
                    .is_some_and(|i| noto.pngs.contains_key(i) && twemoji.pngs.contains_key(i))
        })
        .collect();
    entries.sort_by_key(|e| e["sort_order"].as_u64().unwrap_or(u64::MAX));
    let mut catalog = String::new();
    let mut images = Vec::with_capacity(2 * entries.len() * chords_emoji::NUMEL);
    let bar = ProgressBar::new(2 * entries.len() as u64);
    for style in Style::ALL {
        let pngs = &packages[&style].pngs;
        for entry in &entries {
            bar.inc(1);
            let image = entry["image"].as_str().unwrap_or_default();
            let pixels = picture(&pngs[image]).with_context(|| format!("{style} {image}"))?;
            images.extend(pixels);
            if style == Style::Noto {
                catalog.push_str(&catalog_line(entry)?);
            }
        }
    }
    bar.finish_and_clear();
    let n = images.len() / chords_emoji::NUMEL;
    if n == 0 {
        bail!("the packages hold no usable emoji pictures");
    }
    let labels: Vec<f32> = (0..n).map(|c| c as f32).collect();
    chords::npy::write(&args.out.join("images.npy"), &[n, 3, 32, 32], &images)?;
    chords::npy::write(&args.out.join("labels.npy"), &[n], &labels)?;
    crate::files::write_atomic(&args.out.join("catalog.tsv"), catalog.as_bytes())?;
    crate::atlas::write(&args.out.join("pictures.png"), &images)?;
    crate::files::write_atomic(
        &args.out.join("SOURCE.md"),
        format!(
            "# Emoji training data\n\nFrom the npm packages `{noto}-{VERSION}` ({noto_url}): Noto emoji \
             images, Apache License 2.0 (Google); and `{tw}-{VERSION}` ({tw_url}): Twemoji images, \
             CC-BY 4.0 (Twitter, Inc. and other contributors); metadata MIT (iamcal/emoji-data).\n\
             {emoji} base emoji in both styles, {n} pictures, 32×32 RGB over white, values in [-1, 1]; \
             picture c is condition c (labels.npy): the Noto pictures, then the Twemoji ones, \
             in the order of catalog.tsv.\n",
            noto = package(Style::Noto),
            noto_url = url(Style::Noto),
            tw = package(Style::Twemoji),
            tw_url = url(Style::Twemoji),
            emoji = entries.len(),
        )
        .as_bytes(),
    )?;
    eprintln!(
        "wrote {n} pictures of {} emoji in 2 styles to {} (catalog.tsv, pictures.png beside them)",
        entries.len(),
        args.out.display()
    );
    Ok(())
}

/// The package of `style` in `dir`, downloaded unless it is there.
fn download(style: Style, dir: &Path) -> Result<PathBuf> {
    let path = dir.join(format!("{}-{VERSION}.tgz", package(style)));
    if path.exists() {
        return Ok(path);
    }
    let url = url(style);
    eprintln!("downloading {url}");
    let partial = path.with_extension("tgz.partial");
    let status = Command::new("curl")
        .args(["-fsSL", "-o"])
        .arg(&partial)
        .arg(&url)
        .status()
        .context("cannot run curl; download the packages yourself and pass --tarball")?;
    if !status.success() {
        let _ = fs::remove_file(&partial);
        bail!("downloading {url} failed; download it yourself and pass --tarball");
    }
    fs::rename(&partial, &path)?;
    Ok(path)
}

/// The catalogue line of an emoji: name, other names, code points, category.
fn catalog_line(entry: &serde_json::Value) -> Result<String> {
    let field = |key: &str| {
        entry[key]
            .as_str()
            .filter(|s| !s.contains(['\t', '\n']))
            .with_context(|| format!("an emoji without a usable `{key}`"))
    };
    let name = field("short_name")?;
    let aliases: Vec<&str> = entry["short_names"]
        .as_array()
        .map(|names| names.iter().filter_map(|n| n.as_str()).collect())
        .unwrap_or_default();
    let aliases: Vec<&str> = aliases
        .into_iter()
        .filter(|a| *a != name && !a.contains([',', '\t', '\n']))
        .collect();
    Ok(format!(
        "{name}\t{}\t{}\t{}\n",
        aliases.join(","),
        field("unified")?,
        field("category")?
    ))
}

/// A package tarball's style, `emoji.json` and 64×64 PNGs.
fn read_package(tarball: &Path) -> Result<(Style, Package)> {
    let file =
        fs::File::open(tarball).with_context(|| format!("cannot open {}", tarball.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut metadata = None;
    let mut pngs = HashMap::new();
    let mut style = None;
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
            continue;
        }
        for s in Style::ALL {
            if let Some(name) = path.strip_prefix(image_folder(s)) {
                if style.is_some_and(|found| found != s) {
                    bail!("{} holds pictures of both styles", tarball.display());
                }
                style = Some(s);
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes)?;
                pngs.insert(name.to_string(), bytes);
            }
        }
    }
    let metadata =
        metadata.with_context(|| format!("{} holds no package/emoji.json", tarball.display()))?;
    let style = style.with_context(|| {
        format!(
            "{} holds no 64×64 Noto or Twemoji pictures (img/google/64/ or img/twitter/64/)",
            tarball.display()
        )
    })?;
    Ok((style, Package { metadata, pngs }))
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

//! `chords view` (and `chords` with no subcommand): the live window, every core's frame
//! refining round by round. Without a display, the default configuration renders
//! headless instead.

mod app;
mod picker;
mod session;
mod settings;
mod timeline;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use clap::Args;

use app::{Outcome, Startup, ViewerApp};
use settings::{BackendChoice, ModelChoice, Settings};

/// `chords view`.
#[derive(Debug, Args)]
pub struct ViewArgs {
    /// Run the default configuration to the end, save a PNG screenshot of the window here
    /// and exit.
    #[arg(long, value_name = "PNG")]
    pub screenshot: Option<PathBuf>,
    /// Window size in logical pixels, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x800")]
    pub size: String,
    /// Print the UI thread's frame times while sampling (median and worst) on exit.
    #[arg(long)]
    pub frame_times: bool,
    /// Where "Save frames" (and the headless fallback) write: a new numbered folder inside.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Initial model (the controls can change it).
    #[arg(long, value_enum)]
    pub model: Option<ModelChoice>,
    /// Initial emoji (a short name or the emoji itself; see `chords emojis`).
    #[arg(long, value_name = "NAME")]
    pub emoji: Option<String>,
    /// Initial emoji style.
    #[arg(long, value_name = "noto|twemoji")]
    pub style: Option<String>,
    /// Initial backend: cpu, or wgpu (on the window's own GPU, pictures drawn straight
    /// into textures).
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
    /// Initial number of cores.
    #[arg(long)]
    pub cores: Option<usize>,
    /// Initial number of steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Initial stop rule (see `chords render --stop`; default `all`), e.g. `core-index:0`
    /// to end at the preview: `--screenshot` then shows an early round's estimates.
    #[arg(long, value_name = "RULE")]
    pub stop: Option<String>,
    /// Initial seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Initial diffusers scheduler_config.json (see `chords render --scheduler-config`).
    #[arg(long, value_name = "FILE")]
    pub scheduler_config: Option<PathBuf>,
    /// Initial μ of a `use_dynamic_shifting` config.
    #[arg(long, allow_negative_numbers = true)]
    pub mu: Option<f64>,
}

impl ViewArgs {
    /// The defaults, as `chords view` with no options gives them.
    pub fn default_args() -> Self {
        Self {
            screenshot: None,
            size: "1280x800".into(),
            frame_times: false,
            out: PathBuf::from("out"),
            model: None,
            emoji: None,
            style: None,
            backend: None,
            cores: None,
            steps: None,
            stop: None,
            seed: None,
            scheduler_config: None,
            mu: None,
        }
    }

    /// The window's first settings: the defaults with these options applied, checked.
    fn settings(&self) -> Result<Settings> {
        let d = Settings::default();
        let settings = Settings {
            model: self.model.unwrap_or(d.model),
            emoji: self.emoji.clone().unwrap_or(d.emoji.clone()),
            style: match &self.style {
                Some(style) => style.parse().map_err(anyhow::Error::msg)?,
                None => d.style,
            },
            backend: self.backend.unwrap_or(d.backend),
            cores: self.cores.unwrap_or(d.cores),
            steps: self.steps.unwrap_or(d.steps),
            stop: self.stop.clone().unwrap_or(d.stop.clone()),
            seed: self.seed.unwrap_or(d.seed),
            scheduler_config: self
                .scheduler_config
                .as_ref()
                .map_or(d.scheduler_config.clone(), |p| p.display().to_string()),
            mu: self.mu.map_or(d.mu.clone(), |m| m.to_string()),
            ..d
        };
        settings.render_args()?;
        Ok(settings)
    }
}

/// Runs the window, or the headless render when there is no display or no window opens.
pub fn run(args: &ViewArgs) -> Result<()> {
    let size = parse_size(&args.size)?;
    let settings = args.settings()?;
    if let Some(path) = &args.screenshot {
        check_writable(path)?;
    }
    if let Some(why) = no_display() {
        return headless(args, &settings, &why);
    }
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let settings_for_fallback = settings.clone();
    let startup = Startup {
        settings,
        screenshot: args.screenshot.clone(),
        out: args.out.clone(),
    };
    // The window's device gets everything its adapter offers, so that burn-wgpu can adopt
    // it for the emoji model (its kernels use 64-bit integers where the adapter has them).
    let mut wgpu_options = eframe::egui_wgpu::WgpuConfiguration::default();
    if let eframe::egui_wgpu::WgpuSetup::CreateNew(create) = &mut wgpu_options.wgpu_setup {
        create.device_descriptor = Arc::new(|adapter| eframe::wgpu::DeviceDescriptor {
            label: Some("chords window"),
            required_features: adapter
                .features()
                .difference(eframe::wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
            required_limits: adapter.limits(),
            ..Default::default()
        });
    }
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("chords — parallel diffusion sampling")
            .with_inner_size(size)
            .with_min_inner_size([640.0, 400.0]),
        wgpu_options,
        ..Default::default()
    };
    let app_outcome = outcome.clone();
    let opened = eframe::run_native(
        "chords",
        options,
        Box::new(move |cc| Ok(Box::new(ViewerApp::new(cc, startup, app_outcome)))),
    );
    if let Err(e) = opened {
        let why = format!(
            "cannot open a window ({})",
            e.to_string().replace('\n', " ")
        );
        return headless(args, &settings_for_fallback, &why);
    }
    let outcome = outcome
        .lock()
        .map_err(|_| anyhow::anyhow!("the window crashed"))?;
    if args.frame_times || args.screenshot.is_some() {
        match outcome.stats.summary() {
            Some(line) => eprintln!("{line}"),
            None => eprintln!("no frames were drawn while sampling"),
        }
    }
    match (&args.screenshot, &outcome.screenshot) {
        (None, _) => Ok(()),
        (Some(_), Some(Ok(path))) => {
            eprintln!("saved the window to {}", path.display());
            Ok(())
        }
        (Some(_), Some(Err(e))) => bail!("no screenshot: {e}"),
        (Some(_), None) => bail!("the window closed before the run ended; no screenshot"),
    }
}

/// Why no window can open here, or `None` when a display seems available.
fn no_display() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let set = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty());
    if set("DISPLAY") || set("WAYLAND_DISPLAY") {
        None
    } else {
        Some("no display (DISPLAY and WAYLAND_DISPLAY are unset)".into())
    }
}

/// The window's first configuration rendered headless, every frame kept, into a new folder.
fn headless(args: &ViewArgs, settings: &Settings, why: &str) -> Result<()> {
    if args.screenshot.is_some() {
        bail!("{why}: a screenshot needs a display (try `xvfb-run chords view --screenshot …`)");
    }
    let dir = fresh_dir(&args.out, "view")?;
    eprintln!(
        "{why}: rendering the configuration headless into {}",
        dir.display()
    );
    let mut line = vec!["chords".to_string()];
    line.extend(settings.command_line());
    line.extend(["--frames".into(), "--out".into(), dir.display().to_string()]);
    let cli = <crate::cli::Cli as clap::Parser>::try_parse_from(line)?;
    let Some(crate::cli::Command::Render(render)) = cli.command else {
        bail!("internal: the default configuration is not a render command");
    };
    crate::render::run(&render)?;
    println!(
        "pictures: {} (every core's frame of every round in {}, contact sheet {})",
        dir.display(),
        dir.join(crate::frames::FRAMES_DIR).display(),
        dir.join(crate::frames::FRAMES_DIR)
            .join("contact-sheet.png")
            .display()
    );
    Ok(())
}

/// `root/stem`, or `root/stem-2`, `-3`, … : the first that does not exist yet, so nothing
/// earlier is overwritten.
pub(crate) fn fresh_dir(root: &Path, stem: &str) -> Result<PathBuf> {
    (1..10_000)
        .map(|n| match n {
            1 => root.join(stem),
            n => root.join(format!("{stem}-{n}")),
        })
        .find(|p| !p.exists())
        .with_context(|| format!("no free folder name {stem}-N left in {}", root.display()))
}

/// `WIDTHxHEIGHT` in logical pixels.
fn parse_size(text: &str) -> Result<[f32; 2]> {
    let parsed = text
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?)));
    match parsed {
        Some((w, h)) if (320..=16_384).contains(&w) && (240..=16_384).contains(&h) => {
            Ok([w as f32, h as f32])
        }
        _ => bail!("--size {text:?}: expected WIDTHxHEIGHT between 320x240 and 16384x16384"),
    }
}

/// Refuses a screenshot path whose folder does not exist or that names a folder, before
/// any work starts.
fn check_writable(path: &Path) -> Result<()> {
    if path.is_dir() {
        bail!("--screenshot {} is a directory", path.display());
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent
        && !parent.is_dir()
    {
        bail!(
            "--screenshot {}: folder {} does not exist",
            path.display(),
            parent.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1280x800").unwrap(), [1280.0, 800.0]);
        assert!(parse_size("12x8").is_err());
        assert!(parse_size("wide").is_err());
    }

    #[test]
    fn fresh_dirs_never_reuse_a_folder() {
        let root = std::env::temp_dir().join(format!("chords-fresh-{}", std::process::id()));
        std::fs::create_dir_all(root.join("view")).unwrap();
        assert_eq!(fresh_dir(&root, "view").unwrap(), root.join("view-2"));
        assert_eq!(fresh_dir(&root, "frames").unwrap(), root.join("frames"));
        std::fs::remove_dir_all(root).unwrap();
    }
}

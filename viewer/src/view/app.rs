//! The window: controls on the left, one panel per core in the middle, the timeline and the
//! streamed outputs at the bottom.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chords::StopReason;
use chords::preview::Rgba8;
use eframe::egui::{self, Color32, ColorImage, RichText, TextureHandle, TextureId, TextureOptions};
use eframe::egui_wgpu::RenderState;

use super::session::{Session, Update};
use super::settings::{BackendChoice, InitChoice, ModelChoice, SamplerChoice, Settings};
use super::timeline::{Mark, Timeline, core_colour};
use crate::frames::{Frame, FrameLog};
use crate::job::OwnDevice;

/// UI-thread frame times, kept while a run is in progress.
#[derive(Debug, Default, Clone)]
pub struct FrameStats {
    /// Time spent in one `ui` call.
    pub work: Vec<Duration>,
    /// Time between the starts of consecutive frames.
    pub interval: Vec<Duration>,
}

impl FrameStats {
    /// "N frames: UI work median … worst …; interval median … worst …", or `None` with no frames.
    pub fn summary(&self) -> Option<String> {
        fn median_worst(v: &[Duration]) -> Option<(f64, f64)> {
            let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e3).collect();
            ms.sort_by(f64::total_cmp);
            Some((*ms.get(ms.len() / 2)?, *ms.last()?))
        }
        let (wm, ww) = median_worst(&self.work)?;
        let (im, iw) = median_worst(&self.interval).unwrap_or((0.0, 0.0));
        Some(format!(
            "{} frames while sampling: UI work per frame median {wm:.2} ms, worst {ww:.2} ms; \
             time between frames median {im:.1} ms, worst {iw:.1} ms",
            self.work.len()
        ))
    }
}

/// What the window was started to do besides showing itself.
#[derive(Debug, Default, Clone)]
pub struct Startup {
    /// The controls' first settings.
    pub settings: Settings,
    /// Run the default configuration, save a screenshot here when it ends, then close.
    pub screenshot: Option<PathBuf>,
    /// Where "Save frames" writes (a new numbered folder inside).
    pub out: PathBuf,
}

/// What the app hands back when the window closes.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Frame times while sampling.
    pub stats: FrameStats,
    /// The screenshot's result, in screenshot mode.
    pub screenshot: Option<Result<PathBuf, String>>,
}

/// One core's panel.
#[derive(Default)]
struct Panel {
    /// The picture on the host (CPU backend, or another device than the window's).
    host: Option<TextureHandle>,
    /// The texture the preview kernel draws into on the window's device.
    native: Option<TextureId>,
    index: usize,
    round: usize,
}

/// A streamed output.
struct OutputRow {
    position: usize,
    core: usize,
    round: usize,
    speedup: f64,
    rmse: Option<f64>,
    picture: TextureHandle,
}

/// Where a run stands.
#[derive(Debug, Clone, PartialEq)]
enum State {
    Idle,
    Running,
    Done(String),
    Failed(String),
}

/// Everything shown about the current run.
struct RunView {
    sampler: &'static str,
    backend: String,
    steps: usize,
    init: Option<Vec<usize>>,
    panels: Vec<Panel>,
    timeline: Timeline,
    outputs: Vec<OutputRow>,
    faults: Vec<String>,
    log: FrameLog,
    /// The command line that made the run (for "Save frames" on the GPU path).
    command: Vec<String>,
}

/// The viewer application.
pub struct ViewerApp {
    settings: Settings,
    /// The emoji picker's search text.
    emoji_filter: String,
    /// An inline message: bad settings (nothing was started) or a failed run.
    error: Option<String>,
    status: String,
    state: State,
    session: Option<Session>,
    render_state: Option<RenderState>,
    run: Option<RunView>,
    /// The command line of the session being started (kept with its view).
    command: Vec<String>,
    saved: Option<String>,
    saving: Option<std::thread::JoinHandle<anyhow::Result<String>>>,
    startup: Startup,
    outcome: Arc<Mutex<Outcome>>,
    shot: Arc<Mutex<Option<Arc<ColorImage>>>>,
    shot_requested: bool,
    frames_after_end: usize,
    last_frame: Option<Instant>,
}

impl ViewerApp {
    /// The app; `outcome` receives the frame times and the screenshot's result.
    pub fn new(
        cc: &eframe::CreationContext<'_>,
        startup: Startup,
        outcome: Arc<Mutex<Outcome>>,
    ) -> Self {
        let mut app = Self {
            settings: startup.settings.clone(),
            emoji_filter: String::new(),
            error: None,
            status: "press Start (or change the settings first)".into(),
            state: State::Idle,
            session: None,
            render_state: cc.wgpu_render_state.clone(),
            run: None,
            command: Vec::new(),
            saved: None,
            saving: None,
            startup,
            outcome,
            shot: Arc::default(),
            shot_requested: false,
            frames_after_end: 0,
            last_frame: None,
        };
        if app.startup.screenshot.is_some() {
            app.start(&cc.egui_ctx);
        }
        app
    }

    /// Starts the settings' run, or shows why not (and starts nothing).
    fn start(&mut self, ctx: &egui::Context) {
        let args = match self.settings.render_args() {
            Ok(args) => args,
            Err(e) => {
                self.error = Some(format!("{e:#}"));
                return;
            }
        };
        self.stop_session();
        let own = self.render_state.as_ref().map(|rs| OwnDevice {
            instance: rs.instance.clone(),
            adapter: rs.adapter.clone(),
            device: rs.device.clone(),
            queue: rs.queue.clone(),
        });
        let wake_ctx = ctx.clone();
        let wake = Arc::new(move || wake_ctx.request_repaint());
        match Session::start(args, own, wake) {
            Ok(session) => {
                self.session = Some(session);
                self.error = None;
                self.saved = None;
                self.state = State::Running;
                self.status = "starting…".into();
                self.free_textures();
                self.run = None;
                self.command = self.settings.command_line();
                self.frames_after_end = 0;
            }
            Err(e) => self.error = Some(format!("{e:#}")),
        }
    }

    /// Cancels the current session; its thread is joined off the UI thread.
    fn stop_session(&mut self) {
        if let Some(session) = self.session.take() {
            session.cancel();
            std::thread::spawn(move || drop(session));
        }
    }

    /// Frees the native textures of the last run from egui's renderer.
    fn free_textures(&mut self) {
        let (Some(rs), Some(run)) = (&self.render_state, &self.run) else {
            return;
        };
        let mut renderer = rs.renderer.write();
        for id in run.panels.iter().filter_map(|p| p.native) {
            renderer.free_texture(&id);
        }
    }

    /// Applies the session's updates.
    fn poll(&mut self, ctx: &egui::Context) {
        let Some(session) = &self.session else {
            return;
        };
        for update in session.poll() {
            self.apply(ctx, update);
        }
        if self.state == State::Running && !self.session.as_ref().is_some_and(Session::is_running) {
            // The thread ended without a last word (it always sends one; be safe).
            self.state = State::Done("stopped".into());
        }
    }

    fn apply(&mut self, ctx: &egui::Context, update: Update) {
        match update {
            Update::Status(s) => self.status = s,
            Update::Started {
                sampler,
                cores,
                steps,
                init,
                backend,
                textures,
            } => {
                let mut panels: Vec<Panel> = (0..cores).map(|_| Panel::default()).collect();
                if let (Some(textures), Some(rs)) = (textures, &self.render_state) {
                    let mut renderer = rs.renderer.write();
                    for (panel, texture) in panels.iter_mut().zip(textures) {
                        panel.native = Some(renderer.register_native_texture(
                            &rs.device,
                            texture.view(),
                            eframe::wgpu::FilterMode::Nearest,
                        ));
                    }
                }
                self.run = Some(RunView {
                    sampler,
                    backend,
                    steps,
                    init,
                    panels,
                    timeline: Timeline::new(steps, cores),
                    outputs: Vec::new(),
                    faults: Vec::new(),
                    log: FrameLog::default(),
                    command: std::mem::take(&mut self.command),
                });
                self.status = "running".into();
            }
            Update::Round { round, evaluations } => {
                self.status = format!("round {round}: {} model call(s)", evaluations.len());
            }
            Update::Spawned { round, core, index } => self.mark(Mark::Spawn, round, core, index),
            Update::Rectified { round, core, index } => {
                self.mark(Mark::Rectified, round, core, index)
            }
            Update::Frame {
                round,
                core,
                index,
                image,
            } => {
                let Some(run) = &mut self.run else { return };
                run.timeline.point(round, core, index);
                let Some(panel) = run.panels.get_mut(core) else {
                    return;
                };
                panel.index = index;
                panel.round = round;
                if let Some(image) = image {
                    let colour = colour_image(&image);
                    match &mut panel.host {
                        Some(handle) => handle.set(colour, TextureOptions::NEAREST),
                        None => {
                            panel.host = Some(ctx.load_texture(
                                format!("core{core}"),
                                colour,
                                TextureOptions::NEAREST,
                            ))
                        }
                    }
                    run.log.push(Frame {
                        round,
                        core,
                        index,
                        image,
                    });
                }
            }
            Update::Output {
                position,
                core,
                round,
                speedup,
                rmse,
                image,
            } => {
                let Some(run) = &mut self.run else { return };
                let mark = if position == 0 {
                    Mark::Preview
                } else {
                    Mark::Hit
                };
                run.timeline.mark(mark, round, core, run.steps);
                let picture = ctx.load_texture(
                    format!("output{position}"),
                    colour_image(&image),
                    TextureOptions::NEAREST,
                );
                run.outputs.push(OutputRow {
                    position,
                    core,
                    round,
                    speedup,
                    rmse,
                    picture,
                });
            }
            Update::Fault(text) => {
                if let Some(run) = &mut self.run {
                    run.faults.push(text);
                }
            }
            Update::Finished {
                reason,
                rounds,
                model_calls,
                wall,
            } => {
                let how = match reason {
                    StopReason::Rule => "stop rule met",
                    other => other.name(),
                };
                self.state = State::Done(format!(
                    "{how} after {rounds} rounds, {model_calls} model calls, {:.2} s",
                    wall.as_secs_f64()
                ));
                self.status.clear();
            }
            Update::Failed(message) => {
                self.state = State::Failed(message.clone());
                self.error = Some(message);
            }
        }
    }

    fn mark(&mut self, mark: Mark, round: usize, core: usize, index: usize) {
        if let Some(run) = &mut self.run {
            run.timeline.mark(mark, round, core, index);
        }
    }

    /// Writes the frames into a new folder under `startup.out`, off the UI thread.
    fn save_frames(&mut self) {
        let Some(run) = &self.run else { return };
        let root = self.startup.out.clone();
        let log = run.log.clone();
        let texture_path = run.panels.iter().any(|p| p.native.is_some());
        let command = run.command.clone();
        self.saved = Some("saving frames…".into());
        self.saving = Some(std::thread::spawn(move || {
            let dir = super::fresh_dir(&root, "view-frames")?;
            if texture_path {
                // The pictures live in GPU textures only: render the same command line
                // headless (same seed, same pictures) with --frames.
                let mut line = vec!["chords".to_string()];
                line.extend(command);
                line.extend(["--frames".into(), "--out".into(), dir.display().to_string()]);
                let cli = <crate::cli::Cli as clap::Parser>::try_parse_from(line)?;
                let Some(crate::cli::Command::Render(args)) = cli.command else {
                    anyhow::bail!("internal: not a render command");
                };
                crate::render::run(&args)?;
            } else {
                let out = crate::files::OutDir::prepare(&dir, false, &[])?;
                log.write(&out)?;
            }
            Ok(format!("saved frames to {}", dir.display()))
        }));
    }

    fn controls(&mut self, ui: &mut egui::Ui) {
        ui.heading("CHORDS");
        ui.label("parallel sampling over several cores");
        ui.separator();
        let s = &mut self.settings;
        egui::Grid::new("settings")
            .num_columns(2)
            .spacing([8.0, 6.0])
            .show(ui, |ui| {
                ui.label("model");
                egui::ComboBox::from_id_salt("model")
                    .selected_text(match s.model {
                        ModelChoice::Emoji => "emoji (neural)",
                        ModelChoice::Mixture => "mixture (exact)",
                    })
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut s.model, ModelChoice::Emoji, "emoji (neural)");
                        ui.selectable_value(&mut s.model, ModelChoice::Mixture, "mixture (exact)");
                    });
                ui.end_row();
                if s.model == ModelChoice::Emoji {
                    ui.label("emoji");
                    super::picker::emoji_picker(ui, &mut s.emoji, &mut self.emoji_filter);
                    ui.end_row();
                    ui.label("style");
                    super::picker::style_picker(ui, &mut s.style);
                    ui.end_row();
                    ui.label("guidance");
                    ui.add(egui::Slider::new(&mut s.guidance, 0.0..=6.0).step_by(0.25));
                    ui.end_row();
                }
                ui.label("seed");
                ui.add(egui::DragValue::new(&mut s.seed));
                ui.end_row();
                ui.label("steps");
                ui.add(egui::DragValue::new(&mut s.steps).range(0..=10_000));
                ui.end_row();
                ui.label("sampler");
                egui::ComboBox::from_id_salt("sampler")
                    .selected_text(format!("{:?}", s.sampler).to_lowercase())
                    .show_ui(ui, |ui| {
                        for (v, name) in [
                            (SamplerChoice::Chords, "chords"),
                            (SamplerChoice::Sequential, "sequential"),
                            (SamplerChoice::Paradigms, "paradigms"),
                            (SamplerChoice::Srds, "srds"),
                        ] {
                            ui.selectable_value(&mut s.sampler, v, name);
                        }
                    });
                ui.end_row();
                if s.sampler != SamplerChoice::Sequential {
                    ui.label("cores");
                    ui.add(egui::DragValue::new(&mut s.cores).range(0..=1000));
                    ui.end_row();
                }
                if s.sampler == SamplerChoice::Chords {
                    ui.label("init");
                    egui::ComboBox::from_id_salt("init")
                        .selected_text(format!("{:?}", s.init).to_lowercase())
                        .show_ui(ui, |ui| {
                            for (v, name) in [
                                (InitChoice::Paper, "paper"),
                                (InitChoice::Uniform, "uniform"),
                                (InitChoice::Optimal, "optimal (planner)"),
                                (InitChoice::Typed, "typed"),
                            ] {
                                ui.selectable_value(&mut s.init, v, name);
                            }
                        });
                    ui.end_row();
                    if s.init == InitChoice::Typed {
                        ui.label("sequence");
                        ui.add(egui::TextEdit::singleline(&mut s.typed).hint_text("0-2-4-8"));
                        ui.end_row();
                    }
                }
                ui.label("stop");
                ui.add(
                    egui::TextEdit::singleline(&mut s.stop)
                        .hint_text("all, core-index:N, residual:τ"),
                );
                ui.end_row();
                ui.label("backend");
                egui::ComboBox::from_id_salt("backend")
                    .selected_text(match s.backend {
                        BackendChoice::Cpu => "CPU",
                        BackendChoice::Wgpu => "wgpu",
                    })
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut s.backend, BackendChoice::Cpu, "CPU");
                        ui.selectable_value(&mut s.backend, BackendChoice::Wgpu, "wgpu");
                    });
                ui.end_row();
                if s.backend == BackendChoice::Wgpu {
                    ui.label("adapters");
                    ui.add(
                        egui::TextEdit::singleline(&mut s.adapters)
                            .hint_text("empty: this window's GPU"),
                    );
                    ui.end_row();
                }
                ui.label("reference");
                ui.checkbox(&mut s.reference, "RMSE vs sequential");
                ui.end_row();
                ui.label("frames");
                ui.checkbox(&mut s.estimates, "estimate of the final picture")
                    .on_hover_text("off: each core's noisy point");
                ui.end_row();
                ui.label("scheduler");
                ui.add(
                    egui::TextEdit::singleline(&mut s.scheduler_config)
                        .hint_text("scheduler_config.json; empty: chords's grid"),
                );
                ui.end_row();
                if !s.scheduler_config.trim().is_empty() {
                    ui.label("mu");
                    ui.add(egui::TextEdit::singleline(&mut s.mu).hint_text("dynamic shift (Flux)"));
                    ui.end_row();
                }
            });
        ui.separator();
        let running = self.session.as_ref().is_some_and(Session::is_running);
        let paused = self.session.as_ref().is_some_and(Session::is_paused);
        ui.horizontal_wrapped(|ui| {
            if ui
                .add_enabled(!running, egui::Button::new("Start"))
                .clicked()
            {
                self.start(ui.ctx());
            }
            let pause = if paused { "Resume" } else { "Pause" };
            if ui.add_enabled(running, egui::Button::new(pause)).clicked()
                && let Some(session) = &self.session
            {
                session.set_paused(!paused);
            }
            if ui
                .add_enabled(running, egui::Button::new("Cancel"))
                .clicked()
                && let Some(session) = &self.session
            {
                session.cancel();
            }
            if ui.button("Restart").clicked() {
                self.start(ui.ctx());
            }
        });
        let can_save = self.run.is_some() && !running && self.saving.is_none();
        if ui
            .add_enabled(can_save, egui::Button::new("Save frames"))
            .clicked()
        {
            self.save_frames();
        }
        if let Some(error) = &self.error {
            ui.add_space(4.0);
            ui.label(RichText::new(error).color(ui.visuals().error_fg_color));
        }
        if let Some(saved) = &self.saved {
            ui.label(saved);
        }
        ui.separator();
        let state = match &self.state {
            State::Idle => "idle".to_string(),
            State::Running if paused => format!("paused ({})", self.status),
            State::Running => self.status.clone(),
            State::Done(text) => text.clone(),
            State::Failed(_) => "failed".into(),
        };
        ui.label(RichText::new(state).strong());
        ui.add_space(4.0);
        ui.label(RichText::new("same run from a terminal:").small());
        let line = format!("chords {}", self.settings.command_line().join(" "));
        ui.add(egui::Label::new(RichText::new(line).monospace().small()).selectable(true));
    }

    fn bottom(&mut self, ui: &mut egui::Ui) {
        let Some(run) = &self.run else {
            ui.centered_and_justified(|ui| ui.label("the timeline appears when a run starts"));
            return;
        };
        ui.columns(2, |cols| {
            let ui = &mut cols[0];
            let init = run
                .init
                .as_ref()
                .map(|i| {
                    format!(
                        ", init {}",
                        i.iter()
                            .map(|v| v.to_string())
                            .collect::<Vec<_>>()
                            .join("-")
                    )
                })
                .unwrap_or_default();
            ui.label(format!(
                "{} · {} cores · T = {}{init} · {}",
                run.sampler,
                run.panels.len(),
                run.steps,
                run.backend
            ));
            run.timeline.show(ui);
            let ui = &mut cols[1];
            ui.label(RichText::new("streamed outputs").strong());
            egui::ScrollArea::vertical().show(ui, |ui| {
                egui::Grid::new("outputs").striped(true).show(ui, |ui| {
                    for h in ["", "output", "core", "round", "speed-up", "RMSE vs seq."] {
                        ui.label(RichText::new(h).small().strong());
                    }
                    ui.end_row();
                    for o in &run.outputs {
                        ui.image((o.picture.id(), egui::vec2(32.0, 32.0)));
                        ui.label(if o.position == 0 {
                            "preview".to_string()
                        } else {
                            format!("hit {}", o.position)
                        });
                        ui.label(o.core.to_string());
                        ui.label(o.round.to_string());
                        ui.label(format!("{:.2}×", o.speedup));
                        ui.label(o.rmse.map_or("–".into(), |r| format!("{r:.2e}")));
                        ui.end_row();
                    }
                });
                for fault in &run.faults {
                    ui.label(RichText::new(fault).color(ui.visuals().warn_fg_color));
                }
            });
        });
    }

    fn grid(&self, ui: &mut egui::Ui) {
        let Some(run) = &self.run else {
            ui.centered_and_justified(|ui| {
                ui.label(match &self.state {
                    State::Running => "preparing the run…",
                    _ => "one panel per core appears here: press Start",
                })
            });
            return;
        };
        let cores = run.panels.len().max(1);
        let available = ui.available_size();
        // Columns that make the panels as large as possible (ties: fewest empty cells).
        let (cols, side) = (1..=cores)
            .map(|cols| {
                let rows = cores.div_ceil(cols);
                let side = (available.x / cols as f32 - 12.0)
                    .min(available.y / rows as f32 - 34.0)
                    .max(24.0);
                (cols, side, cols * rows - cores)
            })
            .max_by(|a, b| a.1.floor().total_cmp(&b.1.floor()).then(b.2.cmp(&a.2)))
            .map_or((1, 24.0), |(cols, side, _)| (cols, side));
        egui::Grid::new("cores").spacing([8.0, 4.0]).show(ui, |ui| {
            for (core, panel) in run.panels.iter().enumerate() {
                ui.vertical(|ui| {
                    let id = panel.native.or(panel.host.as_ref().map(|h| h.id()));
                    match id {
                        Some(id) => {
                            ui.image((id, egui::vec2(side, side)));
                        }
                        None => {
                            let (rect, _) = ui
                                .allocate_exact_size(egui::vec2(side, side), egui::Sense::hover());
                            ui.painter().rect_filled(rect, 2.0, Color32::from_gray(24));
                        }
                    }
                    let finished = panel.index == run.steps && panel.round > 0;
                    let text = if panel.round == 0 {
                        format!("core {core} · waiting")
                    } else if finished {
                        format!("core {core} · done (round {})", panel.round)
                    } else {
                        format!(
                            "core {core} · i = {}/{} · round {}",
                            panel.index, run.steps, panel.round
                        )
                    };
                    ui.label(RichText::new(text).color(core_colour(core)).small());
                });
                if (core + 1) % cols == 0 {
                    ui.end_row();
                }
            }
        });
    }

    /// Screenshot mode: once the run has ended and been painted, take the picture, save
    /// it, close.
    fn screenshot_step(&mut self, ctx: &egui::Context) {
        let Some(path) = self.startup.screenshot.clone() else {
            return;
        };
        let ended = matches!(self.state, State::Done(_) | State::Failed(_));
        if !ended {
            return;
        }
        if let State::Failed(message) = &self.state {
            self.finish_screenshot(ctx, Err(message.clone()));
            return;
        }
        // Let a few frames paint the final pictures first.
        self.frames_after_end += 1;
        if self.frames_after_end < 3 {
            ctx.request_repaint();
            return;
        }
        if !self.shot_requested {
            self.shot_requested = true;
            let slot = self.shot.clone();
            let wake = ctx.clone();
            ctx.request_screenshot(move |image| {
                if let Ok(mut s) = slot.lock() {
                    *s = Some(image);
                }
                wake.request_repaint();
            });
            ctx.request_repaint();
            return;
        }
        let image = self.shot.lock().ok().and_then(|mut s| s.take());
        match image {
            Some(image) => {
                let result = save_screenshot(&path, &image)
                    .map(|()| path.clone())
                    .map_err(|e| format!("{e:#}"));
                self.finish_screenshot(ctx, result);
            }
            None => ctx.request_repaint_after(Duration::from_millis(20)),
        }
    }

    fn finish_screenshot(&mut self, ctx: &egui::Context, result: Result<PathBuf, String>) {
        if let Ok(mut outcome) = self.outcome.lock() {
            outcome.screenshot = Some(result);
        }
        self.startup.screenshot = None;
        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
    }
}

impl eframe::App for ViewerApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let started = Instant::now();
        let sampling = self.session.as_ref().is_some_and(Session::is_running);
        if let (true, Some(last)) = (sampling, self.last_frame)
            && let Ok(mut outcome) = self.outcome.lock()
        {
            outcome.stats.interval.push(started - last);
        }
        self.last_frame = Some(started);
        let ctx = ui.ctx().clone();
        self.poll(&ctx);
        if let Some(saving) = self.saving.take_if(|h| h.is_finished()) {
            self.saved = Some(match saving.join() {
                Ok(Ok(text)) => text,
                Ok(Err(e)) => format!("could not save the frames: {e:#}"),
                Err(_) => "could not save the frames".into(),
            });
        }
        egui::Panel::left("controls")
            .resizable(true)
            .default_size(300.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.controls(ui));
            });
        egui::Panel::bottom("timeline")
            .resizable(true)
            .default_size(250.0)
            .show(ui, |ui| self.bottom(ui));
        egui::CentralPanel::default().show(ui, |ui| self.grid(ui));
        self.screenshot_step(&ctx);
        if sampling {
            // Keep painting while the run goes, so progress (and frame times) are smooth.
            ctx.request_repaint_after(Duration::from_millis(16));
            if let Ok(mut outcome) = self.outcome.lock() {
                outcome.stats.work.push(started.elapsed());
            }
        }
        if self.saving.is_some() {
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }

    fn on_exit(&mut self) {
        self.stop_session();
    }
}

/// An egui image of an RGBA8 picture.
fn colour_image(image: &Rgba8) -> ColorImage {
    ColorImage::from_rgba_unmultiplied([image.width, image.height], &image.pixels)
}

/// Saves a screenshot as PNG.
fn save_screenshot(path: &std::path::Path, image: &ColorImage) -> anyhow::Result<()> {
    let pixels: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    let picture = Rgba8 {
        width: image.size[0],
        height: image.size[1],
        pixels,
    };
    crate::files::write_png(path, &picture)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every piece of text the frame painted.
    fn painted_text(output: &egui::FullOutput) -> String {
        let mut text = String::new();
        for clipped in &output.shapes {
            collect_text(&clipped.shape, &mut text);
        }
        text
    }

    fn collect_text(shape: &egui::Shape, text: &mut String) {
        match shape {
            egui::Shape::Text(t) => {
                text.push_str(t.galley.text());
                text.push('\n');
            }
            egui::Shape::Vec(shapes) => shapes.iter().for_each(|s| collect_text(s, text)),
            _ => {}
        }
    }

    /// An app on a headless egui context (no window, no GPU), and one frame of it.
    fn app() -> (ViewerApp, egui::Context) {
        let ctx = egui::Context::default();
        let cc = eframe::CreationContext::_new_kittest(ctx.clone());
        let startup = Startup {
            settings: Settings::default(),
            screenshot: None,
            out: std::env::temp_dir(),
        };
        (ViewerApp::new(&cc, startup, Arc::default()), ctx)
    }

    fn frame(app: &mut ViewerApp, ctx: &egui::Context) -> String {
        let mut frame = eframe::Frame::_new_kittest();
        let output = ctx.run_ui(egui::RawInput::default(), |ui| {
            eframe::App::ui(app, ui, &mut frame)
        });
        painted_text(&output)
    }

    #[test]
    fn bad_settings_show_an_inline_message_and_start_nothing() {
        let (mut app, ctx) = app();
        app.settings.init = InitChoice::Typed;
        app.settings.typed = "0-2-x".into();
        app.start(&ctx);
        assert!(app.session.is_none(), "a bad sequence started a run");
        let text = frame(&mut app, &ctx);
        assert!(text.contains("0-2-x"), "no inline message in:\n{text}");
        app.settings.init = InitChoice::Paper;
        app.settings.cores = 99;
        app.start(&ctx);
        assert!(app.session.is_none(), "99 cores started a run");
        let text = frame(&mut app, &ctx);
        assert!(
            text.contains("between 1 and 16"),
            "no inline message in:\n{text}"
        );
    }

    #[test]
    fn a_run_fills_one_panel_per_core_and_the_outputs() {
        let (mut app, ctx) = app();
        app.settings.model = ModelChoice::Mixture;
        app.settings.steps = 12;
        app.settings.cores = 4;
        app.start(&ctx);
        assert!(app.session.is_some());
        let start = Instant::now();
        while !matches!(app.state, State::Done(_) | State::Failed(_)) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the run did not end"
            );
            frame(&mut app, &ctx);
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(matches!(app.state, State::Done(_)), "{:?}", app.state);
        let text = frame(&mut app, &ctx);
        let run = app.run.as_ref().expect("a run view");
        assert_eq!(run.panels.len(), 4);
        // Each panel ends on the core's estimate from its last evaluated point, T - 1.
        assert!(run.panels.iter().all(|p| p.host.is_some() && p.index == 11));
        // Preview and four hits, the last one the sequential solve itself.
        assert_eq!(run.outputs.len(), 5);
        assert_eq!(run.outputs.last().and_then(|o| o.rmse), Some(0.0));
        assert!(text.contains("hit 4") && text.contains("core 3"), "{text}");
        assert!(!run.log.frames().is_empty());
        // Save frames: a new folder with every frame and the contact sheet, off the UI thread.
        let root = std::env::temp_dir().join(format!("chords-app-save-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        app.startup.out = root.clone();
        let frames = run.log.frames().len();
        app.save_frames();
        while app.saving.is_some() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "saving did not end"
            );
            frame(&mut app, &ctx);
            std::thread::sleep(Duration::from_millis(2));
        }
        let saved = app.saved.clone().unwrap_or_default();
        assert!(saved.starts_with("saved frames to"), "{saved}");
        let pngs = std::fs::read_dir(root.join("view-frames/frames"))
            .expect("the frames folder")
            .count();
        assert_eq!(pngs, frames + 1, "every frame and the contact sheet");
        std::fs::remove_dir_all(root).expect("clean up");
    }
}

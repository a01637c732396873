//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// CHORDS: parallel diffusion and flow-matching sampling over several cores.
///
/// With no subcommand, opens the live viewer (`chords view`).
#[derive(Debug, Parser)]
#[command(name = "chords", version, about)]
pub struct Cli {
    /// What to do (default: `view`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the live window: every core's frame refining round by round (the default).
    View(crate::view::ViewArgs),
    /// Print when each core's output arrives for an initialisation sequence.
    Plan(PlanArgs),
    /// Sample with a model and write every streamed output as .npy and PNG, plus report.json.
    Render(RenderArgs),
    /// List the wgpu adapters this machine offers.
    Adapters,
    /// Fetch and prepare the emoji training data.
    Data(crate::data::DataArgs),
    /// Train the emoji model.
    Train(crate::train::TrainArgs),
    /// List the emoji the built-in model draws (names for --emoji).
    Emojis(crate::emojis::EmojisArgs),
    /// Measure how recognisable the emoji model's pictures are: the share of samples whose
    /// nearest training picture is the emoji asked for.
    Retrieval(crate::retrieval::RetrievalArgs),
    /// Every sampler at 4, 6 and 8 cores on the built-in models: the paper's tables.
    Bench(crate::bench::BenchArgs),
}

/// Steps, cores and the initialisation sequence (shared by `plan` and `render`).
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Number of sampling steps T.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Number of cores K.
    #[arg(long, default_value_t = 8)]
    pub cores: usize,
    /// Explicit initialisation sequence, one start index per core, e.g. 0-2-4-8-16-24-32-40.
    #[arg(long, value_name = "SEQ", conflicts_with = "strategy")]
    pub init: Option<String>,
    /// How to choose the sequence when --init is not given.
    #[arg(long, value_enum, default_value_t = Strategy::Paper)]
    pub strategy: Strategy,
    /// With --strategy optimal: the wanted speed-up of the fastest hit, T / its round
    /// (default: the paper's sequence's for 4, 6 or 8 cores, else the uniform one's).
    #[arg(long, value_name = "X")]
    pub speedup: Option<f64>,
    /// With --strategy optimal: score candidate sequences on short runs of the model
    /// itself (the render's model; for `plan`, the built-in mixture on the solver's grid)
    /// instead of a cheap test ODE.
    #[arg(long)]
    pub calibrate: bool,
    /// With --strategy optimal: what the planner minimises: `first-hit` (default), the
    /// fastest hit's RMSE against the sequential solve (the paper's reward), or `stream`,
    /// the mean RMSE of the newest hit over every round from the first hit to the last.
    #[arg(long, value_name = "OBJ")]
    pub objective: Option<chords::planner::Objective>,
}

/// Sequence strategies.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Strategy {
    /// The paper's sequences (4, 6 or 8 cores), scaled to T.
    Paper,
    /// Evenly spaced starts.
    Uniform,
    /// The planner (paper section 2.3): fastest core from --speedup, the others placed to
    /// minimise the fastest hit's error.
    Optimal,
}

/// `chords plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Steps, cores, sequence.
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// The solver whose grid `--json` lists (and `--calibrate` runs on).
    #[command(flatten)]
    pub solver: crate::solver::SolverArgs,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Samplers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SamplerKind {
    /// CHORDS over --cores cores.
    Chords,
    /// The plain sequential solve (one core).
    Sequential,
    /// ParaDIGMS: sliding-window Picard iteration over --cores points (--tolerance, default 0.1).
    Paradigms,
    /// SRDS: pipelined Parareal with --cores blocks (--tolerance, default 1e-3).
    Srds,
}

/// Models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelKind {
    /// The exact denoiser of a Gaussian mixture (--means, --sigma-data).
    Mixture,
    /// The emoji flow-matching network (--emoji, --style, --weights, --guidance).
    Emoji,
}

/// Backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// wgpu when an adapter exists, else the CPU (with a warning).
    Auto,
    /// Host memory, one worker thread per core.
    Cpu,
    /// wgpu adapters (Vulkan, Metal, DX12, GL; lavapipe without a GPU): latents stay on the devices.
    Wgpu,
    /// The emoji model on an NVIDIA GPU with burn-cuda (builds with `--features cuda`),
    /// latents on the host.
    Cuda,
}

/// How cores share wgpu devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DevicesKind {
    /// One device per adapter, shared by the cores on it.
    PerAdapter,
    /// One device per core, even on one adapter.
    PerCore,
}

/// Spread of each mixture component when `--sigma-data` is not given.
pub const DEFAULT_SIGMA_DATA: f64 = 0.05;

/// `chords render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Steps, cores, sequence.
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// The model (default: emoji; mixture when --means or --sigma-data is given or the
    /// solver is a VP one).
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    /// The emoji to draw: its short name (`dog`, `:dog:`, `thumbsup`) or the emoji itself
    /// (default: grinning; `chords emojis` lists them).
    #[arg(long, value_name = "NAME")]
    pub emoji: Option<String>,
    /// The emoji's drawing style (default: noto).
    #[arg(long, value_name = "noto|twemoji")]
    pub style: Option<String>,
    /// Classifier-free guidance scale of the emoji model (1: none; default 2).
    #[arg(long, allow_negative_numbers = true)]
    pub guidance: Option<f32>,
    /// Emoji weights file (burnpack, written by `chords train`; default: the shipped weights).
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,
    /// Mixture means, a float32 .npy of shape (M, C, H, W). Default: 8 built-in 3×32×32 pictures.
    #[arg(long, value_name = "M.npy")]
    pub means: Option<PathBuf>,
    /// Spread s of each mixture component around its mean (default 0.05).
    #[arg(long, allow_negative_numbers = true)]
    pub sigma_data: Option<f64>,
    /// The sampler.
    #[arg(long, value_enum, default_value_t = SamplerKind::Chords)]
    pub sampler: SamplerKind,
    /// Convergence tolerance of the paradigms and srds samplers.
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// The solver and its grid.
    #[command(flatten)]
    pub solver: crate::solver::SolverArgs,
    /// Initial noise, a float32 .npy of shape (C, H, W): unit Gaussian noise, scaled by the
    /// solver as its scheduler does (diffusers' init_noise_sigma).
    #[arg(long, value_name = "X.npy", conflicts_with = "seed")]
    pub x0: Option<PathBuf>,
    /// Seed of the initial noise (when --x0 is not given).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// When to stop: core-index:N (N-th output, preview = 0), residual:τ, or all.
    #[arg(long, default_value = "core-index:1")]
    pub stop: String,
    /// Where the model and the engine's arithmetic run.
    #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
    pub backend: BackendKind,
    /// wgpu adapters to use: comma-separated name substrings or indices (see `chords adapters`).
    #[arg(long, value_delimiter = ',')]
    pub adapters: Vec<String>,
    /// How cores map onto wgpu devices (default: per-adapter).
    #[arg(long, value_enum)]
    pub devices: Option<DevicesKind>,
    /// Worker threads for model calls (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Also run the sequential solve and report each output's RMSE against it.
    #[arg(long)]
    pub reference: bool,
    /// Output directory (created if needed).
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Replace the outputs of an earlier run in --out.
    #[arg(long)]
    pub overwrite: bool,
    /// Also write every core's frame of every round (what the live viewer shows) as PNGs
    /// in --out/frames, plus a contact sheet (rows = rounds, columns = cores).
    #[arg(long)]
    pub frames: bool,
    /// With --frames (and in the window): what a frame shows: `estimate` (default for
    /// CHORDS and the sequential solve), each core's estimate of the final picture from the
    /// point it evaluated that round, or `point` (default for ParaDIGMS and SRDS, which give
    /// no estimates), the core's next noisy point.
    #[arg(long, value_enum, value_name = "KIND")]
    pub frame_kind: Option<FrameKind>,
}

/// What `render --frames` pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FrameKind {
    /// The one-jump estimate of the final output from the point evaluated that round.
    Estimate,
    /// The core's next point (noisy until late in the run).
    Point,
}

impl RenderArgs {
    /// The frame kind in effect: the one asked for, else estimates where the sampler
    /// gives them.
    pub fn frame_kind(&self) -> FrameKind {
        self.frame_kind.unwrap_or(match self.sampler {
            SamplerKind::Chords | SamplerKind::Sequential => FrameKind::Estimate,
            SamplerKind::Paradigms | SamplerKind::Srds => FrameKind::Point,
        })
    }
}

impl RenderArgs {
    /// The emoji asked for (default: grinning).
    pub fn emoji(&self) -> &str {
        self.emoji.as_deref().unwrap_or(chords_emoji::DEFAULT_EMOJI)
    }

    /// The style asked for (default: noto).
    pub fn style(&self) -> &str {
        self.style.as_deref().unwrap_or("noto")
    }

    /// The emoji model's guidance scale.
    pub fn guidance(&self) -> f32 {
        self.guidance.unwrap_or(chords_emoji::DEFAULT_GUIDANCE)
    }

    /// Refuses options that change nothing for the chosen `model`, sampler and backend,
    /// naming the choice each belongs to.
    pub fn check_applicable(&self, model: ModelKind) -> anyhow::Result<()> {
        let fail = |name: &str, owner: &str| Err(anyhow::anyhow!("{name} belongs to {owner}"));
        if model == ModelKind::Mixture {
            for (given, name) in [
                (self.emoji.is_some(), "--emoji"),
                (self.style.is_some(), "--style"),
                (self.guidance.is_some(), "--guidance"),
                (self.weights.is_some(), "--weights"),
            ] {
                if given {
                    return fail(
                        name,
                        "--model emoji; the mixture has no emoji, styles, guidance or weights",
                    );
                }
            }
        } else {
            for (given, name) in [
                (self.means.is_some(), "--means"),
                (self.sigma_data.is_some(), "--sigma-data"),
            ] {
                if given {
                    return fail(name, "--model mixture");
                }
            }
        }
        if self.frame_kind == Some(FrameKind::Estimate)
            && matches!(self.sampler, SamplerKind::Paradigms | SamplerKind::Srds)
        {
            return fail(
                "--frame-kind estimate",
                "--sampler chords or sequential (ParaDIGMS and SRDS give no estimates)",
            );
        }
        if self.tolerance.is_some()
            && !matches!(self.sampler, SamplerKind::Paradigms | SamplerKind::Srds)
        {
            return fail("--tolerance", "--sampler paradigms or srds");
        }
        if self.sampler != SamplerKind::Chords {
            for (given, name) in [
                (self.schedule.init.is_some(), "--init"),
                (self.schedule.speedup.is_some(), "--speedup"),
                (self.schedule.calibrate, "--calibrate"),
                (self.schedule.objective.is_some(), "--objective"),
            ] {
                if given {
                    return fail(name, "--sampler chords");
                }
            }
        }
        if matches!(self.backend, BackendKind::Cpu | BackendKind::Cuda) {
            if !self.adapters.is_empty() {
                return fail("--adapters", "--backend wgpu or auto");
            }
            if self.devices.is_some() {
                return fail("--devices", "--backend wgpu or auto");
            }
        }
        Ok(())
    }

    /// The model: `--model`, or the mixture when a mixture-only option (`--means`,
    /// `--sigma-data`) is given or the solver's model `prediction` is not a flow velocity,
    /// else the emoji model.
    pub fn model(&self, prediction: chords::Prediction) -> ModelKind {
        match self.model {
            Some(model) => model,
            None if self.means.is_some()
                || self.sigma_data.is_some()
                || prediction != chords::Prediction::Velocity =>
            {
                ModelKind::Mixture
            }
            None => ModelKind::Emoji,
        }
    }
}

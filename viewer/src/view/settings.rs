//! The window's controls as a `chords render` command line: one parser and one set of
//! checks for the window and the terminal, and a line the user can copy to reproduce a
//! run headless.

use anyhow::{Result, bail};
use clap::Parser;

use crate::cli::{Cli, Command, RenderArgs, Strategy};
use crate::job::Method;

/// Most cores the window offers (the grid and the timeline stay readable).
pub const MAX_CORES: usize = 16;
/// Most steps the window offers.
pub const MAX_STEPS: usize = 1000;

/// The built-in models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelChoice {
    Emoji,
    Mixture,
}

/// The samplers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerChoice {
    Chords,
    Sequential,
    Paradigms,
    Srds,
}

/// How the CHORDS initialisation sequence is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitChoice {
    Paper,
    Uniform,
    Optimal,
    Typed,
}

/// Where the run happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    Cpu,
    Wgpu,
}

/// Everything the controls set.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub model: ModelChoice,
    /// The emoji's name (or the emoji itself), as `--emoji` takes it.
    pub emoji: String,
    pub style: chords_emoji::Style,
    pub guidance: f32,
    pub seed: u64,
    pub steps: usize,
    pub cores: usize,
    pub sampler: SamplerChoice,
    pub init: InitChoice,
    /// The sequence typed by the user (with [`InitChoice::Typed`]).
    pub typed: String,
    pub stop: String,
    pub backend: BackendChoice,
    /// Comma-separated adapters; empty: the window's own device.
    pub adapters: String,
    pub reference: bool,
    /// Picture each core's estimate of the final output (else its noisy point).
    pub estimates: bool,
    /// A diffusers scheduler_config.json; empty: chords's own flow grid.
    pub scheduler_config: String,
    /// μ of a `use_dynamic_shifting` config; empty: none.
    pub mu: String,
}

impl Default for Settings {
    /// The default configuration: the emoji model, CHORDS on 8 cores with the paper's
    /// sequence, every output, on the CPU (burn-ndarray).
    fn default() -> Self {
        Self {
            model: ModelChoice::Emoji,
            emoji: chords_emoji::DEFAULT_EMOJI.into(),
            style: chords_emoji::Style::Noto,
            guidance: chords_emoji::DEFAULT_GUIDANCE,
            seed: 0,
            steps: 50,
            cores: 8,
            sampler: SamplerChoice::Chords,
            init: InitChoice::Paper,
            typed: "0-2-4-8-16-24-32-40".into(),
            stop: "all".into(),
            backend: BackendChoice::Cpu,
            adapters: String::new(),
            reference: true,
            estimates: true,
            scheduler_config: String::new(),
            mu: String::new(),
        }
    }
}

impl Settings {
    /// The equivalent `chords render` arguments (without the program name).
    pub fn command_line(&self) -> Vec<String> {
        let mut args: Vec<String> = vec!["render".into()];
        let mut push = |k: &str, v: String| {
            args.push(k.into());
            args.push(v);
        };
        match self.model {
            ModelChoice::Emoji => {
                push("--model", "emoji".into());
                push("--emoji", self.emoji.clone());
                push("--style", self.style.name().into());
                push("--guidance", self.guidance.to_string());
            }
            ModelChoice::Mixture => push("--model", "mixture".into()),
        }
        push("--seed", self.seed.to_string());
        push("--steps", self.steps.to_string());
        if !self.scheduler_config.trim().is_empty() {
            push("--scheduler-config", self.scheduler_config.trim().into());
        }
        if !self.mu.trim().is_empty() {
            push("--mu", self.mu.trim().into());
        }
        push(
            "--sampler",
            match self.sampler {
                SamplerChoice::Chords => "chords",
                SamplerChoice::Sequential => "sequential",
                SamplerChoice::Paradigms => "paradigms",
                SamplerChoice::Srds => "srds",
            }
            .into(),
        );
        if self.sampler != SamplerChoice::Sequential {
            push("--cores", self.cores.to_string());
        }
        if self.sampler == SamplerChoice::Chords {
            match self.init {
                InitChoice::Paper => push("--strategy", "paper".into()),
                InitChoice::Uniform => push("--strategy", "uniform".into()),
                InitChoice::Optimal => push("--strategy", "optimal".into()),
                InitChoice::Typed => push("--init", self.typed.trim().into()),
            }
        }
        push("--stop", self.stop.trim().into());
        match self.backend {
            BackendChoice::Cpu => push("--backend", "cpu".into()),
            BackendChoice::Wgpu => {
                push("--backend", "wgpu".into());
                if !self.adapters.trim().is_empty() {
                    push("--adapters", self.adapters.trim().into());
                }
            }
        }
        if self.reference {
            args.push("--reference".into());
        }
        if !self.estimates {
            args.extend(["--frame-kind".into(), "point".into()]);
        }
        args
    }

    /// The arguments, checked the way `chords render` checks them (the planner's
    /// `optimal` search is left to the run). An error names the problem, for an inline
    /// message; nothing starts.
    pub fn render_args(&self) -> Result<RenderArgs> {
        if !(1..=MAX_CORES).contains(&self.cores) {
            bail!(
                "cores must be between 1 and {MAX_CORES}, got {}",
                self.cores
            );
        }
        if !(1..=MAX_STEPS).contains(&self.steps) {
            bail!(
                "steps must be between 1 and {MAX_STEPS}, got {}",
                self.steps
            );
        }
        let line = std::iter::once("chords".to_string()).chain(self.command_line());
        let cli = Cli::try_parse_from(line).map_err(|e| {
            let text = e.to_string();
            anyhow::anyhow!(
                "{}",
                text.lines()
                    .next()
                    .unwrap_or("invalid settings")
                    .trim_start_matches("error: ")
            )
        })?;
        let Some(Command::Render(args)) = cli.command else {
            bail!("internal: the settings did not make a render command");
        };
        let stop: chords::StopRule = args.stop.parse()?;
        if args.model == Some(crate::cli::ModelKind::Emoji) {
            crate::job::emoji_and_style(args.emoji(), args.style())?;
        }
        if !matches!(args.schedule.strategy, Strategy::Optimal) || args.schedule.init.is_some() {
            let method = Method::from_args(&args, None)?;
            stop.validate(method.cores())?;
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_settings_make_a_valid_emoji_render() {
        let args = Settings::default().render_args().unwrap();
        assert_eq!(args.model, Some(crate::cli::ModelKind::Emoji));
        assert_eq!((args.schedule.steps, args.schedule.cores), (50, 8));
        assert_eq!(args.stop, "all");
        assert!(args.reference);
    }

    #[test]
    fn bad_settings_name_the_problem() {
        let bad = |edit: &dyn Fn(&mut Settings)| {
            let mut s = Settings::default();
            edit(&mut s);
            s.render_args().unwrap_err().to_string()
        };
        let typed = |seq: &str| {
            let seq = seq.to_string();
            move |s: &mut Settings| {
                s.init = InitChoice::Typed;
                s.typed = seq.clone();
            }
        };
        assert!(
            bad(&typed("0-2-x")).contains("0-2-x"),
            "{}",
            bad(&typed("0-2-x"))
        );
        let e = bad(&typed("0-60"));
        assert!(e.contains("60"), "{e}");
        let e = bad(&|s| s.cores = 0);
        assert!(e.contains("cores must be between 1 and 16"), "{e}");
        let e = bad(&|s| s.cores = 99);
        assert!(e.contains("got 99"), "{e}");
        let e = bad(&|s| s.stop = "core-index:9".into());
        assert!(e.contains('9'), "{e}");
        let e = bad(&|s| s.emoji = "dgo".into());
        assert!(
            e.contains("unknown emoji `dgo`") && e.contains("dog"),
            "{e}"
        );
        let e = bad(&|s| s.stop = "sometimes".into());
        assert!(e.contains("sometimes"), "{e}");
    }

    #[test]
    fn the_frames_choice_is_a_frame_kind() {
        let points = Settings {
            estimates: false,
            ..Settings::default()
        };
        assert!(
            points
                .command_line()
                .join(" ")
                .ends_with("--frame-kind point")
        );
        let args = points.render_args().unwrap();
        assert_eq!(args.frame_kind(), crate::cli::FrameKind::Point);
        let args = Settings::default().render_args().unwrap();
        assert_eq!(args.frame_kind(), crate::cli::FrameKind::Estimate);
    }

    #[test]
    fn the_command_line_round_trips_every_choice() {
        let s = Settings {
            model: ModelChoice::Mixture,
            sampler: SamplerChoice::Paradigms,
            backend: BackendChoice::Wgpu,
            adapters: "lavapipe".into(),
            reference: false,
            ..Settings::default()
        };
        assert_eq!(
            s.command_line().join(" "),
            "render --model mixture --seed 0 --steps 50 --sampler paradigms --cores 8 \
             --stop all --backend wgpu --adapters lavapipe"
        );
        let args = s.render_args().unwrap();
        assert_eq!(args.adapters, vec!["lavapipe".to_string()]);
    }

    #[test]
    fn a_scheduler_config_reaches_the_render_arguments() {
        let s = Settings {
            model: ModelChoice::Mixture,
            scheduler_config: " assets/schedulers/flux-dev.json ".into(),
            mu: "0.5".into(),
            ..Settings::default()
        };
        let line = s.command_line().join(" ");
        assert!(
            line.contains("--scheduler-config assets/schedulers/flux-dev.json --mu 0.5"),
            "{line}"
        );
        let args = s.render_args().unwrap();
        assert_eq!(
            args.solver.scheduler_config.as_deref(),
            Some(std::path::Path::new("assets/schedulers/flux-dev.json"))
        );
        assert_eq!(args.solver.mu, Some(0.5));
        let bad = Settings {
            mu: "half".into(),
            ..s
        };
        assert!(bad.render_args().unwrap_err().to_string().contains("half"));
    }
}

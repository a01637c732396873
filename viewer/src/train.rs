//! `chords train`: train the emoji model on the data `chords data` prepared.
//!
//! Checkpoints (`model.bpk`, `optim.bpk`, `state.txt`) go to `--checkpoint` every
//! `--save-every` steps and at the end; `--resume` continues a run exactly; `--init` starts
//! a new run from given weights. A new run starts each emoji's code at the thumbnail of its
//! picture. `loss.csv` and `loss.png` record the training loss (mean over each interval) and
//! the evaluation loss (every tenth picture, fixed noise: comparable between steps) of the
//! last step's weights and of their moving average, which is what gets exported. Every
//! picture is trained on: each is the only picture of its condition, so none can be held
//! out.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chords_emoji::train::{Dataset, LrDecay, TrainConfig, Trainer};
use indicatif::{ProgressBar, ProgressStyle};

use crate::plot;

/// Arguments of `chords train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Directory with images.npy and labels.npy (from `chords data`).
    #[arg(long, default_value = "data/emoji")]
    pub data: PathBuf,
    /// Checkpoint directory.
    #[arg(long, default_value = "out/train")]
    pub checkpoint: PathBuf,
    /// Continue the run in --checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Start a new run from these weights (e.g. chords-emoji/weights/emoji.bpk) instead of random
    /// ones: fine-tuning, with a fresh optimiser and step count.
    #[arg(long, value_name = "WEIGHTS", conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// Train until this many steps in all.
    #[arg(long, default_value_t = 2000)]
    pub steps: usize,
    /// Pictures per step.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Keep --lr until this step, then lower it along a half cosine to --lr-min at --steps
    /// (default: constant).
    #[arg(long, value_name = "STEP")]
    pub lr_decay_from: Option<usize>,
    /// The learning rate the decay ends at.
    #[arg(long, default_value_t = 0.0)]
    pub lr_min: f64,
    /// Moving average of the weights: weight of the old average per step (0 = export the last
    /// step's weights).
    #[arg(long, default_value_t = 0.999)]
    pub ema: f64,
    /// Measure the held-out loss every N steps.
    #[arg(long, default_value_t = 100)]
    pub eval_every: usize,
    /// Save a checkpoint every N steps.
    #[arg(long, default_value_t = 200)]
    pub save_every: usize,
    /// Also write the final weights here (e.g. chords-emoji/weights/emoji.bpk).
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Threads a step runs on, each computing the gradient of its part of the batch
    /// (default: one per CPU core, at most --batch, on `--backend cpu`; one on a GPU). A run
    /// resumed with another count continues the same way up to rounding.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where the steps run.
    #[arg(long, value_enum, default_value_t = TrainBackend::Cpu)]
    pub backend: TrainBackend,
}

/// Where `chords train` runs its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TrainBackend {
    /// burn-ndarray on the CPU cores.
    Cpu,
    /// burn-wgpu on the first wgpu adapter (a GPU through Vulkan, Metal or DX12; lavapipe,
    /// a software adapter, is far slower than `cpu`).
    Wgpu,
    /// burn-cuda on the first NVIDIA GPU (a build with `--features cuda`).
    Cuda,
}

impl TrainBackend {
    /// The burn device (refused when no adapter, or no CUDA support, is there) and its name.
    fn device(self) -> Result<(burn::tensor::Device, &'static str)> {
        Ok(match self {
            Self::Cpu => (chords_emoji::cpu_device(), "burn-ndarray"),
            Self::Wgpu => {
                let adapters =
                    chords_wgpu::list_adapters(chords_wgpu::wgpu::Backends::all().with_env());
                if adapters.is_empty() {
                    bail!("--backend wgpu: no wgpu adapter found (see `chords adapters`)");
                }
                let device = burn::tensor::Device::wgpu(burn::tensor::DeviceKind::default());
                (device, "burn-wgpu")
            }
            Self::Cuda => (chords_emoji::cuda_device(0)?, "burn-cuda"),
        })
    }
}

/// Runs `chords train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    if args.batch == 0 || args.eval_every == 0 || args.save_every == 0 || args.threads == Some(0) {
        bail!("--batch, --eval-every, --save-every and --threads must be at least 1");
    }
    // On a GPU one thread keeps the device busy; forked graphs would only queue behind it.
    let threads = args
        .threads
        .unwrap_or_else(|| match args.backend {
            TrainBackend::Cpu => std::thread::available_parallelism().map_or(1, usize::from),
            TrainBackend::Wgpu | TrainBackend::Cuda => 1,
        })
        .min(args.batch);
    if !(args.lr.is_finite() && args.lr > 0.0) {
        bail!("--lr must be a positive number, got {}", args.lr);
    }
    if !(args.lr_min.is_finite() && (0.0..=args.lr).contains(&args.lr_min)) {
        bail!(
            "--lr-min must be between 0 and --lr ({}), got {}",
            args.lr,
            args.lr_min
        );
    }
    if !(0.0..1.0).contains(&args.ema) {
        bail!("--ema must be at least 0 and below 1, got {}", args.ema);
    }
    if let Some(from) = args.lr_decay_from
        && from >= args.steps
    {
        bail!(
            "--lr-decay-from ({from}) must come before --steps ({})",
            args.steps
        );
    }
    // Read first: a wrong path is refused before the data set is loaded.
    let init = match &args.init {
        Some(path) => Some((
            path,
            chords::read::read_file(path, chords_emoji::MAX_WEIGHTS_BYTES)
                .with_context(|| "--init")?,
        )),
        None => None,
    };
    let mut config = TrainConfig::default();
    config.batch = args.batch;
    config.learning_rate = args.lr;
    config.decay = args.lr_decay_from.map(|from| LrDecay {
        from,
        to: args.steps,
        min: args.lr_min,
    });
    config.ema = args.ema;
    config.threads = threads;
    let (device, device_name) = args.backend.device()?;
    let has_checkpoint = args.checkpoint.join("state.txt").exists();
    // Before the trainer: a missing data set is refused without building a network.
    let data = Dataset::load(&args.data)
        .with_context(|| format!("run `chords data --out {}` first", args.data.display()))?;
    let mut trainer = match (args.resume, has_checkpoint) {
        (true, true) => Trainer::resume(config, &device, &args.checkpoint)?,
        (true, false) => bail!(
            "--resume: {} holds no checkpoint",
            args.checkpoint.display()
        ),
        (false, true) => bail!(
            "{} already holds a checkpoint; pass --resume to continue it or choose another --checkpoint",
            args.checkpoint.display()
        ),
        (false, false) => {
            let mut trainer = match init {
                Some((path, bytes)) => {
                    Trainer::from_weights(config, &device, bytes, &path.display().to_string())?
                }
                None => Trainer::new(config, &device),
            };
            trainer.start_codes(&data)?;
            trainer
        }
    };
    if trainer.steps() > args.steps {
        bail!(
            "--steps ({}) is below the checkpoint's step ({}); pass --steps {} to export its weights",
            args.steps,
            trainer.steps(),
            trainer.steps()
        );
    }
    let (train, evaluation) = (&data, data.every(10));
    fs::create_dir_all(&args.checkpoint)?;
    let log_path = args.checkpoint.join("loss.csv");
    let mut log = open_log(&log_path, trainer.steps())?;
    eprintln!(
        "training on {} pictures ({} of them for the evaluation loss), from step {} to {}, on {device_name}, {threads} thread{}",
        train.len(),
        evaluation.len(),
        trainer.steps(),
        args.steps,
        if threads == 1 { "" } else { "s" }
    );
    let bar = ProgressBar::new(args.steps as u64).with_position(trainer.steps() as u64);
    bar.set_style(
        ProgressStyle::with_template("train [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let (mut sum, mut count) = (0.0f64, 0usize);
    while trainer.steps() < args.steps {
        let loss = trainer.step(train)?;
        if !loss.is_finite() {
            bail!(
                "training diverged at step {} (loss {loss})",
                trainer.steps()
            );
        }
        sum += loss as f64;
        count += 1;
        bar.set_position(trainer.steps() as u64);
        bar.set_message(format!("loss {:.4}", sum / count as f64));
        let step = trainer.steps();
        if step % args.eval_every == 0 || step == args.steps {
            let held = trainer.evaluation_loss(&evaluation)?;
            let averaged = trainer.averaged_evaluation_loss(&evaluation)?;
            writeln!(
                log,
                "{step},{:.6},{held:.6},{averaged:.6}",
                sum / count as f64
            )?;
            log.flush()?;
            plot::loss_curves(&log_path, &args.checkpoint.join("loss.png"))?;
            // Printed even when stderr is not a terminal (the bar is then hidden): a log of
            // a long run in the background keeps its evaluations.
            bar.suspend(|| {
                eprintln!(
                    "step {step}: lr {:.2e}, train loss {:.4}, evaluation loss {held:.4} (average {averaged:.4})",
                    trainer.learning_rate(),
                    sum / count as f64
                )
            });
            (sum, count) = (0.0, 0);
        }
        if step % args.save_every == 0 || step == args.steps {
            trainer.save(&args.checkpoint)?;
        }
    }
    bar.finish_and_clear();
    trainer.save(&args.checkpoint)?;
    let weights = chords_emoji::to_bytes(trainer.averaged_net())?;
    let export = args
        .export
        .clone()
        .unwrap_or_else(|| args.checkpoint.join("emoji.bpk"));
    if let Some(dir) = export.parent() {
        fs::create_dir_all(dir)?;
    }
    crate::files::write_atomic(&export, &weights)?;
    eprintln!(
        "trained to step {} in {:.0} s; weights ({} bytes) in {}",
        trainer.steps(),
        started.elapsed().as_secs_f64(),
        weights.len(),
        export.display()
    );
    Ok(())
}

/// Header of `loss.csv`.
/// Largest loss log read back (a million steps of four columns is about 40 MB).
pub(crate) const MAX_LOG_BYTES: u64 = 256 << 20;

const LOG_HEADER: &str = "step,train_loss,evaluation_loss,averaged_evaluation_loss";

/// Opens `loss.csv` for appending; a log written before the averaged column existed gets
/// the current header (its old rows keep three columns).
fn open_log(path: &std::path::Path, step: usize) -> Result<fs::File> {
    match chords::read::read_text(path, MAX_LOG_BYTES) {
        Ok(text) if step > 0 && text.lines().next() != Some(LOG_HEADER) => {
            let rows: Vec<&str> = text.lines().skip(1).collect();
            fs::write(path, format!("{LOG_HEADER}\n{}\n", rows.join("\n")))?;
        }
        Ok(_) if step > 0 => {}
        _ => fs::write(path, format!("{LOG_HEADER}\n"))?,
    }
    Ok(fs::OpenOptions::new().append(true).open(path)?)
}

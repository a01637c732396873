//! One sampling run on its own thread ([`chords::Background`]), feeding the window its
//! updates: the UI thread never waits on sampling. Pausing holds the run between rounds;
//! cancelling stops it within the round in progress.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chords::preview::Rgba8;
use chords::{
    Background, BackgroundBuilder, Event, Model, RunOptions, Sequential, StopReason, StopRule,
    Worker,
};
use chords_wgpu::PreviewTexture;

use crate::cli::RenderArgs;
use crate::frames::Pictures;
use crate::job::{self, Job, OnBackend, OwnDevice};

/// What the run tells the window, in order.
#[derive(Debug)]
pub enum Update {
    /// A line of status text (e.g. while the reference runs).
    Status(String),
    /// The run is about to start its first round.
    Started {
        sampler: &'static str,
        cores: usize,
        steps: usize,
        init: Option<Vec<usize>>,
        backend: String,
        /// One texture per core on the window's device, drawn by the preview kernel; `None`
        /// when pictures come to the host instead.
        textures: Option<Vec<Arc<PreviewTexture>>>,
    },
    /// A round is about to evaluate these `(core, index)` points.
    Round {
        round: usize,
        evaluations: Vec<(usize, usize)>,
    },
    /// A core started at `index`.
    Spawned {
        round: usize,
        core: usize,
        index: usize,
    },
    /// A slower core corrected this core's point.
    Rectified {
        round: usize,
        core: usize,
        index: usize,
    },
    /// A core's picture after a round: on the host, or `None` when drawn into its texture.
    Frame {
        round: usize,
        core: usize,
        index: usize,
        image: Option<Rgba8>,
    },
    /// A streamed output (position 0 = preview).
    Output {
        position: usize,
        core: usize,
        round: usize,
        speedup: f64,
        rmse: Option<f64>,
        image: Rgba8,
    },
    /// A core left the run after a failure, or moved to another device.
    Fault(String),
    /// The run ended.
    Finished {
        reason: StopReason,
        rounds: usize,
        model_calls: usize,
        wall: Duration,
    },
    /// The run could not start or failed.
    Failed(String),
}

/// A run in progress (or finished) on its own thread: a [`Background`] handle whose
/// updates are the window's.
pub struct Session {
    run: Background<Update, ()>,
}

impl Session {
    /// Starts `args` on a new thread. `own` is the window's wgpu device (used by
    /// `--backend wgpu` without `--adapters`, with pictures drawn straight into textures);
    /// `wake` asks the window to repaint (after every update, and when the run ends).
    pub fn start(
        args: RenderArgs,
        own: Option<OwnDevice>,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<Self> {
        let run = BackgroundBuilder::new()
            .name("chords-session")
            .wake(wake)
            .spawn(move |worker: &Worker<Update>| {
                let work = Work {
                    worker,
                    window_device: own.as_ref().map(|o| o.device.clone()),
                };
                if let Err(e) = work.run(&args, own) {
                    worker.send(Update::Failed(format!("{e:#}").replace('\n', " ")));
                }
            })
            .context("cannot start the sampling thread")?;
        Ok(Self { run })
    }

    /// Updates that arrived since the last call.
    pub fn poll(&self) -> Vec<Update> {
        self.run.poll()
    }

    /// Whether the run's thread is still going.
    pub fn is_running(&self) -> bool {
        !self.run.is_finished()
    }

    /// Pauses or resumes the run between rounds.
    pub fn set_paused(&self, paused: bool) {
        match paused {
            true => self.run.pause(),
            false => self.run.resume(),
        }
    }

    /// Whether the run is paused.
    pub fn is_paused(&self) -> bool {
        self.run.is_paused()
    }

    /// Stops the run within the round in progress (a paused run at once).
    pub fn cancel(&self) {
        self.run.cancel();
    }
}

/// The run's side of a session.
struct Work<'w> {
    worker: &'w Worker<Update>,
    window_device: Option<chords_wgpu::wgpu::Device>,
}

impl Work<'_> {
    fn run(self, args: &RenderArgs, own: Option<OwnDevice>) -> Result<()> {
        self.send(Update::Status("preparing…".into()));
        let mut job = job::prepare(args, own)?;
        // The window always pictures the cores: their estimates unless told otherwise.
        job.options = job
            .options
            .with_estimates(args.frame_kind() == crate::cli::FrameKind::Estimate);
        job::dispatch(&job, self)?;
        Ok(())
    }

    fn send(&self, update: Update) {
        // The window may have gone; the run then stops via the handle's cancel.
        self.worker.send(update);
    }

    /// The sequential solve's final output, for the RMSE of each streamed output.
    fn reference<B: Pictures, M: Model<B>>(
        &self,
        backend: &B,
        model: &M,
        job: &Job,
    ) -> Result<Vec<f32>> {
        self.send(Update::Status("computing the sequential reference…".into()));
        let x0 = backend.upload(0, &job.x0)?;
        let mut sequential = Sequential::new(job.solver.clone(), x0);
        let options = RunOptions::default()
            .with_threads(1)
            .with_stop(StopRule::All)
            .with_mirror(false);
        let mut last = None;
        self.worker
            .run(&mut sequential, backend, model, &options, &mut |e| {
                if let Event::Hit(o) = e {
                    last = Some(o.latent.clone());
                }
            })?;
        let last = last.context("the reference run was cancelled")?;
        Ok(backend.download(&last)?)
    }
}

impl OnBackend for Work<'_> {
    type Output = ();

    fn run<B: Pictures, M: Model<B>>(self, backend: &B, model: &M, job: &Job) -> Result<()> {
        let reference = if job.reference {
            Some(self.reference(backend, model, job)?)
        } else {
            None
        };
        let shape = &job.latent_shape;
        let textures = match (&self.window_device, &job.pool) {
            (Some(device), Some(pool))
                if pool.gpus().len() == 1 && pool.gpus()[0].device() == device =>
            {
                Some(
                    (0..job.cores)
                        .map(|_| PreviewTexture::new(device, shape).map(Arc::new))
                        .collect::<Result<Vec<_>, _>>()?,
                )
            }
            _ => None,
        };
        let x0 = backend.upload(0, &job.x0)?;
        let mut sampler = job.method.build::<B>(job.solver.clone(), x0)?;
        self.send(Update::Started {
            sampler: sampler.name(),
            cores: job.cores,
            steps: job.solver.steps(),
            init: job.method.init().map(|i| i.starts().to_vec()),
            backend: match &job.pool {
                None => "CPU".into(),
                Some(pool) => pool.describe().join("; "),
            },
            textures: textures.clone(),
        });
        let mut failure: Option<anyhow::Error> = None;
        let started = Instant::now();
        let summary = self.worker.run(
            sampler.as_mut(),
            backend,
            model,
            &job.options,
            &mut |event| {
                if failure.is_some() {
                    return;
                }
                let frames = Frames {
                    estimates: job.options.estimates,
                    shape,
                    textures: textures.as_deref(),
                };
                if let Err(e) = self.forward(backend, event, &frames, &reference) {
                    failure = Some(e);
                    self.worker.cancel_token().cancel();
                }
            },
        )?;
        if let Some(e) = failure {
            return Err(e.context("cannot show the run"));
        }
        self.send(Update::Finished {
            reason: summary.reason,
            rounds: summary.rounds,
            model_calls: summary.model_calls,
            wall: started.elapsed(),
        });
        Ok(())
    }
}

/// How the window pictures the cores.
struct Frames<'a> {
    /// Each core's estimate of the final picture ([`Event::Estimate`]), else its next point
    /// ([`Event::CoreUpdated`]).
    estimates: bool,
    shape: &'a [usize],
    /// The cores' textures, drawn by the preview kernel on the window's own device.
    textures: Option<&'a [Arc<PreviewTexture>]>,
}

impl Work<'_> {
    /// A core's frame: drawn into its texture on the device where there is one, else
    /// pictured on the host.
    fn frame<B: Pictures>(
        &self,
        backend: &B,
        frames: &Frames<'_>,
        round: usize,
        core: usize,
        index: usize,
        latent: &B::Latent,
    ) -> Result<()> {
        let drawn = match frames.textures.and_then(|t| t.get(core)) {
            Some(texture) => backend.draw(latent, frames.shape, texture)?,
            None => false,
        };
        let image = if drawn {
            None
        } else {
            Some(backend.picture(latent, frames.shape)?)
        };
        self.send(Update::Frame {
            round,
            core,
            index,
            image,
        });
        Ok(())
    }

    /// Turns one engine event into updates for the window.
    fn forward<B: Pictures>(
        &self,
        backend: &B,
        event: &Event<B::Latent>,
        frames: &Frames<'_>,
        reference: &Option<Vec<f32>>,
    ) -> Result<()> {
        let shape = frames.shape;
        match event {
            Event::RoundStarted { round, evaluations } => self.send(Update::Round {
                round: *round,
                evaluations: evaluations.clone(),
            }),
            Event::Spawned { round, core, index } => self.send(Update::Spawned {
                round: *round,
                core: *core,
                index: *index,
            }),
            Event::Rectified { round, core, index } => self.send(Update::Rectified {
                round: *round,
                core: *core,
                index: *index,
            }),
            Event::CoreUpdated {
                round,
                core,
                index,
                latent,
            } if !frames.estimates => self.frame(backend, frames, *round, *core, *index, latent)?,
            Event::Estimate {
                round,
                core,
                index,
                latent,
            } if frames.estimates => self.frame(backend, frames, *round, *core, *index, latent)?,
            Event::Preview(o) | Event::Hit(o) => {
                let rmse = match reference {
                    Some(r) => Some(chords::rmse(&backend.download(&o.latent)?, r)),
                    None => None,
                };
                self.send(Update::Output {
                    position: o.position,
                    core: o.core,
                    round: o.round,
                    speedup: o.speedup,
                    rmse,
                    image: backend.picture(&o.latent, shape)?,
                });
            }
            Event::CoreRetired {
                round,
                core,
                reason,
                ..
            } => self.send(Update::Fault(format!(
                "round {round}: core {core} retired ({reason})"
            ))),
            Event::CoreMoved {
                round,
                core,
                reason,
            } => self.send(Update::Fault(format!(
                "round {round}: core {core} moved to another device ({reason})"
            ))),
            // Round ends, and events added to the library later, draw nothing.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(line: &str) -> RenderArgs {
        let cli = crate::cli::Cli::try_parse_from(format!("chords render {line}").split(' '))
            .expect("valid arguments");
        match cli.command {
            Some(crate::cli::Command::Render(args)) => args,
            _ => panic!("not a render command"),
        }
    }

    /// Reads updates until `done` says so (at most 20 s), keeping the last round seen in
    /// `last_round`; every update that arrived is looked at.
    fn wait(session: &Session, last_round: &mut usize, done: &mut dyn FnMut(&Update) -> bool) {
        let start = Instant::now();
        let mut met = false;
        while !met && start.elapsed() < Duration::from_secs(20) {
            for update in session.poll() {
                if let Update::Round { round, .. } = update {
                    *last_round = round;
                }
                if let Update::Failed(e) = &update {
                    panic!("the run failed: {e}");
                }
                met |= done(&update);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(met, "timed out");
    }

    #[test]
    fn pause_holds_the_run_between_rounds_and_cancel_stops_it_within_one() {
        let line = "--model mixture --steps 5000 --cores 4 --stop all";
        let session = Session::start(args(line), None, Arc::new(|| {})).expect("starts");
        let mut round = 0;
        wait(
            &session,
            &mut round,
            &mut |u| matches!(u, Update::Round { round, .. } if *round >= 3),
        );
        session.set_paused(true);
        assert!(session.is_paused());
        // Let the round in progress finish, then nothing more may start.
        std::thread::sleep(Duration::from_millis(200));
        for update in session.poll() {
            if let Update::Round { round: r, .. } = update {
                round = r;
            }
        }
        let paused_at = round;
        std::thread::sleep(Duration::from_millis(300));
        let started: Vec<usize> = session
            .poll()
            .into_iter()
            .filter_map(|u| match u {
                Update::Round { round, .. } => Some(round),
                _ => None,
            })
            .collect();
        assert!(
            started.is_empty(),
            "rounds {started:?} started while paused at {paused_at}"
        );
        session.set_paused(false);
        wait(
            &session,
            &mut round,
            &mut |u| matches!(u, Update::Round { round, .. } if *round > paused_at + 2),
        );
        // Cancel while running: what the run had announced by then, plus at most the one
        // round that may have passed its cancel check just before, is all it does.
        session.cancel();
        let mut finished = None;
        for update in session.poll() {
            match update {
                Update::Round { round: r, .. } => round = r,
                Update::Finished { reason, rounds, .. } => finished = Some((reason, rounds)),
                _ => {}
            }
        }
        let cancelled_at = round;
        if finished.is_none() {
            wait(&session, &mut round, &mut |u| {
                if let Update::Finished { reason, rounds, .. } = u {
                    finished = Some((*reason, *rounds));
                    true
                } else {
                    false
                }
            });
        }
        let (reason, rounds) = finished.expect("a last word");
        assert_eq!(reason, StopReason::Cancelled);
        assert!(
            rounds <= cancelled_at + 1,
            "cancelled after round {cancelled_at}, stopped after {rounds}"
        );
        assert!(rounds < 5000);
    }

    #[test]
    fn a_run_that_cannot_start_says_why() {
        let session = Session::start(
            args("--model mixture --init 0-99 --cores 2"),
            None,
            Arc::new(|| {}),
        )
        .expect("starts");
        let mut round = 0;
        let mut message = String::new();
        let start = Instant::now();
        while message.is_empty() && start.elapsed() < Duration::from_secs(20) {
            for update in session.poll() {
                match update {
                    Update::Failed(e) => message = e,
                    Update::Round { round: r, .. } => round = r,
                    _ => {}
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(message.contains("99"), "{message}");
        assert_eq!(round, 0, "no round may start");
    }
}

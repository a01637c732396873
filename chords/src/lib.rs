//! # chords
//!
//! The portable core of **chords-rs**: parallel diffusion and flow-matching sampling with
//! the CHORDS algorithm (Han et al., ICCV 2025). A run spreads the T steps of a sampler over
//! K *cores*: core 0 is the exact sequential solver, faster cores start further along the
//! grid and are rectified by slower ones, and outputs stream out fastest core first. The
//! last one is the sequential solve, bit for bit.
//!
//! The crate has no GPU dependency and does no I/O beyond `.npy` files:
//! * [`schedule`]: flow-matching σ grids, VP schedules and σ grids of VP models;
//! * [`solver`]: one-step jumps as coefficient pairs ([`Euler`], [`Ddim`], [`EulerDiscrete`]);
//! * [`diffusers`]: the solver of a diffusers `scheduler_config.json`, exactly;
//! * [`init`]: initialisation sequences and their output schedule;
//! * [`sampler`]: [`Chords`] and [`Sequential`] as pure state machines;
//! * the baselines [`Paradigms`] (sliding-window Picard iteration) and [`Srds`] (pipelined
//!   Parareal), behind the same [`Sampler`] API (`BASELINES.md`);
//! * [`run()`]: the executor loop with one worker thread per core; [`Driver`]: the same
//!   rounds one [`step`](Driver::step) at a time, from the caller's own loop;
//!   [`Background`]: a run on its own thread, polled, paused, resumed and cancelled from
//!   another ([`CancelToken`] cancels any of them);
//! * [`backend`]: the [`Backend`] trait (one fused linear-combination primitive) and
//!   [`CpuBackend`];
//! * [`model`] and [`mixture`]: the [`Model`] trait and the exact Gaussian-mixture oracle;
//! * [`noise`]: seeded Gaussian noise; [`preview`]: latent → RGBA8 pixels;
//! * [`npy`]: f32 `.npy` I/O; [`read`]: bounded reading of every input file.
//!
//! ```
//! use std::sync::Arc;
//! use chords::*;
//!
//! let (means, shape) = mixture::demo_means();
//! let model = GaussianMixture::new(means, shape, 0.05, Prediction::Velocity).unwrap();
//! let solver = Arc::new(Euler::new(FlowSchedule::new(50, 1.0).unwrap()));
//! let x0 = CpuBackend.upload(0, &vec![0.1; 3 * 32 * 32]).unwrap();
//! let init = InitSequence::parse("0-2-4-8-16-24-32-40", 50).unwrap();
//! let mut sampler = Chords::new(solver, init, x0).unwrap();
//! let options = RunOptions::default().with_threads(0).with_stop(StopRule::CoreIndex(1));
//! let summary = run(&mut sampler, &CpuBackend, &model, &options, &mut |event| {
//!     if let Event::Hit(hit) = event {
//!         println!("core {} after round {}: {:.2}x", hit.core, hit.round, hit.speedup);
//!     }
//! }).unwrap();
//! assert_eq!(summary.rounds, 17);
//! ```

pub mod backend;
mod background;
mod cancel;
pub mod diffusers;
mod driver;
mod error;
pub mod init;
pub mod mixture;
pub mod model;
pub mod noise;
pub mod npy;
pub mod planner;
pub mod preview;
pub mod read;
mod run;
pub mod sampler;
pub mod schedule;
pub mod solver;
mod stop;

pub use backend::{Backend, BackendError, CpuBackend, CpuLatent};
pub use background::{Background, BackgroundBuilder, WakeFn, Worker};
pub use cancel::CancelToken;
pub use driver::{Driver, Step};
pub use error::{Error, Result};
pub use init::{InitError, InitSequence, InitStrategy, Plan, PlannedHit};
pub use mixture::GaussianMixture;
pub use model::{Model, ModelError, panic_message};
pub use run::{MAX_DEFAULT_THREADS, RunOptions, RunSummary, StopReason, residual, rmse, run};
pub use sampler::{Chords, Event, Output, Paradigms, Request, Sampler, Sequential, Srds};
pub use schedule::{BetaSchedule, FlowSchedule, SigmaSchedule, Spacing, Timestep, VpSchedule};
pub use solver::{Ddim, Euler, EulerDiscrete, Jump, Prediction, Solver};
pub use stop::StopRule;

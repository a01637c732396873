//! A run on a thread of its own: [`Background`] is the handle (poll its updates without
//! blocking, pause and resume between rounds, cancel, join), [`Worker`] the thread's side.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::backend::Backend;
use crate::cancel::CancelToken;
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::model::{Model, panic_message};
use crate::run::{RunOptions, RunSummary};
use crate::sampler::{Event, Sampler};

/// Called after each update is sent and when the thread ends (e.g. a window's repaint).
pub type WakeFn = Arc<dyn Fn() + Send + Sync>;

/// The state a handle shares with its thread.
#[derive(Debug, Default)]
struct Control {
    paused: Mutex<bool>,
    changed: Condvar,
    cancel: CancelToken,
    /// Set once the thread's work has returned (or panicked).
    done: AtomicBool,
}

impl Control {
    fn paused(&self) -> MutexGuard<'_, bool> {
        self.paused.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the pause switch and wakes a waiting thread.
    fn set_paused(&self, paused: bool) {
        *self.paused() = paused;
        self.changed.notify_all();
    }

    fn cancel(&self) {
        self.cancel.cancel();
        // Under the lock, so that a thread between its check and its wait cannot miss it.
        let _paused = self.paused();
        self.changed.notify_all();
    }
}

/// Sets `done` and wakes the handle's owner when the thread's work ends, even by a panic.
struct Ending {
    control: Arc<Control>,
    wake: Option<WakeFn>,
}

impl Drop for Ending {
    fn drop(&mut self) {
        self.control.done.store(true, Ordering::SeqCst);
        if let Some(wake) = &self.wake {
            wake();
        }
    }
}

/// A run (or any work) on its own thread, sending updates of type `U` and ending with `T`.
///
/// [`poll`](Self::poll) takes the updates sent so far without blocking. [`pause`](Self::pause)
/// holds a [`Worker::run`] between rounds (the round in progress finishes);
/// [`cancel`](Self::cancel) ends it within the round in progress (its outputs dropped, see
/// [`CancelToken`]) and at once when paused. [`join`](Self::join) waits for the result.
/// Dropping the handle cancels and joins, so its thread never outlives it.
///
/// The simple form, [`Background::run`], sends the events themselves and ends with the
/// run's result; the general one, [`Background::spawn`], runs any closure that gets a
/// [`Worker`] to send its own updates and run samplers with pause and cancel honoured (a
/// viewer preparing its model on the thread and mapping events to its own type).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use chords::*;
///
/// let solver = Arc::new(Euler::new(FlowSchedule::new(10, 1.0).unwrap()));
/// let model = GaussianMixture::new(vec![0.5, -0.5], vec![2, 1], 0.1, Prediction::Velocity).unwrap();
/// let x0 = CpuBackend.upload(0, &[0.3]).unwrap();
/// let sampler = Chords::new(solver, InitSequence::parse("0-2-5", 10).unwrap(), x0).unwrap();
/// let options = RunOptions::default().with_stop(StopRule::All);
/// let run = Background::run(Box::new(sampler), CpuBackend, model, options).unwrap();
/// let mut hits = Vec::new();
/// // A UI would poll once a frame; this waits a little between polls.
/// loop {
///     // Every update is sent before the work ends: a poll after that gets the last ones.
///     let finished = run.is_finished();
///     for event in run.poll() {
///         if let Event::Hit(h) = event { hits.push(h.core) }
///     }
///     if finished { break }
///     std::thread::sleep(Duration::from_millis(1));
/// }
/// let summary = run.join().unwrap().unwrap();
/// assert_eq!((summary.rounds, hits), (10, vec![2, 1, 0]));
/// ```
#[derive(Debug)]
pub struct Background<U, T = RunSummary> {
    updates: Receiver<U>,
    control: Arc<Control>,
    thread: Option<JoinHandle<T>>,
}

/// Options for starting a [`Background`]: its thread's name and a wake callback.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// let wakes = Arc::new(AtomicUsize::new(0));
/// let counter = wakes.clone();
/// let handle = chords::BackgroundBuilder::new()
///     .name("greeter")
///     .wake(Arc::new(move || { counter.fetch_add(1, Ordering::SeqCst); }))
///     .spawn(|worker| worker.send("hello"))
///     .unwrap();
/// handle.join().unwrap();
/// // Once for the update, once for the end.
/// assert_eq!(wakes.load(Ordering::SeqCst), 2);
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct BackgroundBuilder {
    name: Option<String>,
    wake: Option<WakeFn>,
}

impl std::fmt::Debug for BackgroundBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundBuilder")
            .field("name", &self.name)
            .field("wake", &self.wake.is_some())
            .finish()
    }
}

impl BackgroundBuilder {
    /// A thread named `chords-background`, without a wake callback.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the thread.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Calls `wake` after each update [`Worker::send`] sends and when the thread ends.
    pub fn wake(mut self, wake: WakeFn) -> Self {
        self.wake = Some(wake);
        self
    }

    /// Starts `work` on the new thread; see [`Background::spawn`].
    ///
    /// # Errors
    /// [`Error::Config`] when the thread cannot be started.
    pub fn spawn<U, T>(
        self,
        work: impl FnOnce(&Worker<U>) -> T + Send + 'static,
    ) -> Result<Background<U, T>>
    where
        U: Send + 'static,
        T: Send + 'static,
    {
        let (updates_tx, updates) = mpsc::channel();
        let control = Arc::new(Control::default());
        let worker = Worker {
            updates: updates_tx,
            control: control.clone(),
            wake: self.wake.clone(),
        };
        let ending = Ending {
            control: control.clone(),
            wake: self.wake,
        };
        let name = self.name.unwrap_or_else(|| "chords-background".into());
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let _ending = ending;
                work(&worker)
            })
            .map_err(|e| Error::Config(format!("cannot start thread `{name}`: {e}")))?;
        Ok(Background {
            updates,
            control,
            thread: Some(thread),
        })
    }

    /// Starts a run of `sampler` on the new thread; see [`Background::run`].
    ///
    /// # Errors
    /// [`Error::Config`] when the thread cannot be started.
    pub fn run<B, M>(
        self,
        sampler: Box<dyn Sampler<B> + Send>,
        backend: B,
        model: M,
        options: RunOptions,
    ) -> Result<Background<Event<B::Latent>, Result<RunSummary>>>
    where
        B: Backend + 'static,
        M: Model<B> + 'static,
    {
        self.spawn(move |worker| {
            let mut sampler = sampler;
            worker.run(sampler.as_mut(), &backend, &model, &options, &mut |event| {
                worker.send(event.clone());
            })
        })
    }
}

impl<U: Send + 'static, T: Send + 'static> Background<U, T> {
    /// Starts `work` on a new thread named `name`. It gets a [`Worker`] to send updates
    /// and to run samplers with pause and cancel honoured; its return value is what
    /// [`join`](Self::join) gives. [`BackgroundBuilder`] adds a wake callback.
    ///
    /// # Errors
    /// [`Error::Config`] when the thread cannot be started.
    pub fn spawn(name: &str, work: impl FnOnce(&Worker<U>) -> T + Send + 'static) -> Result<Self> {
        BackgroundBuilder::new().name(name).spawn(work)
    }
}

impl<L: Send + 'static> Background<Event<L>, Result<RunSummary>> {
    /// Runs `sampler` with `model` on a new thread as [`run`](crate::run) would, with
    /// `options.cancel` replaced by the handle's token; the updates are the run's events,
    /// and [`join`](Self::join) gives its result.
    ///
    /// # Errors
    /// [`Error::Config`] when the thread cannot be started.
    pub fn run<B, M>(
        sampler: Box<dyn Sampler<B> + Send>,
        backend: B,
        model: M,
        options: RunOptions,
    ) -> Result<Self>
    where
        B: Backend<Latent = L> + 'static,
        M: Model<B> + 'static,
    {
        BackgroundBuilder::new().run(sampler, backend, model, options)
    }
}

impl<U, T> Background<U, T> {
    /// The updates sent since the last call, without blocking (possibly none).
    pub fn poll(&self) -> Vec<U> {
        self.updates.try_iter().collect()
    }

    /// The next update, waiting up to `timeout` for it; `None` when none came in time or
    /// the thread has ended and every update has been taken.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<U> {
        self.updates.recv_timeout(timeout).ok()
    }

    /// Holds the run before its next round (the round in progress finishes).
    pub fn pause(&self) {
        self.control.set_paused(true);
    }

    /// Lets a paused run go on.
    pub fn resume(&self) {
        self.control.set_paused(false);
    }

    /// Whether [`pause`](Self::pause) was called and not [`resume`](Self::resume).
    pub fn is_paused(&self) -> bool {
        *self.control.paused()
    }

    /// Ends the run: within the round in progress (its outputs dropped), at once when
    /// paused. The run returns normally with [`StopReason::Cancelled`](crate::StopReason).
    pub fn cancel(&self) {
        self.control.cancel();
    }

    /// The token [`cancel`](Self::cancel) cancels.
    pub fn cancel_token(&self) -> CancelToken {
        self.control.cancel.clone()
    }

    /// Whether the thread's work has ended (its updates may still wait to be polled).
    pub fn is_finished(&self) -> bool {
        self.control.done.load(Ordering::SeqCst)
            || self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the thread and returns what its work returned.
    ///
    /// # Errors
    /// [`Error::Panicked`] with the panic's message when the work panicked.
    pub fn join(mut self) -> Result<T> {
        let thread = self
            .thread
            .take()
            .ok_or_else(|| Error::Internal("a background handle without its thread".into()))?;
        thread
            .join()
            .map_err(|payload| Error::Panicked(panic_message(payload.as_ref()).to_owned()))
    }
}

impl<U, T> Drop for Background<U, T> {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.control.cancel();
            if let Err(payload) = thread.join() {
                tracing::warn!(
                    "a dropped background thread panicked: {}",
                    panic_message(payload.as_ref())
                );
            }
        }
    }
}

/// The thread's side of a [`Background`]: sends updates and runs samplers with the
/// handle's pause and cancel honoured.
pub struct Worker<U> {
    updates: Sender<U>,
    control: Arc<Control>,
    wake: Option<WakeFn>,
}

impl<U> std::fmt::Debug for Worker<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("control", &self.control)
            .field("wake", &self.wake.is_some())
            .finish()
    }
}

impl<U> Worker<U> {
    /// Sends `update` to the handle and calls the wake callback; an update for a handle
    /// that is gone is dropped (its run is being cancelled).
    pub fn send(&self, update: U) {
        // The handle cancels before it goes, so the work stops soon after.
        let _ = self.updates.send(update);
        self.wake();
    }

    /// A sender of updates for other threads; it does not call the wake callback (see
    /// [`wake`](Self::wake)).
    pub fn sender(&self) -> Sender<U> {
        self.updates.clone()
    }

    /// Calls the wake callback, if there is one.
    pub fn wake(&self) {
        if let Some(wake) = &self.wake {
            wake();
        }
    }

    /// The handle's cancel token (for runs made some other way).
    pub fn cancel_token(&self) -> CancelToken {
        self.control.cancel.clone()
    }

    /// Whether the handle cancelled (or was dropped).
    pub fn is_cancelled(&self) -> bool {
        self.control.cancel.is_cancelled()
    }

    /// Blocks while the handle is paused; returns at once when cancelled.
    pub fn wait_while_paused(&self) {
        let mut paused = self.control.paused();
        while *paused && !self.is_cancelled() {
            paused = self
                .control
                .changed
                .wait(paused)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Runs `sampler` as [`run`](crate::run) does (the same rounds, one set of worker
    /// threads for the whole run), with `options.cancel` replaced by the handle's token
    /// and waiting while the handle is paused before each round. `on_event` gets every
    /// event, on this thread.
    ///
    /// # Errors
    /// What [`run`](crate::run) fails with.
    pub fn run<B, M>(
        &self,
        sampler: &mut dyn Sampler<B>,
        backend: &B,
        model: &M,
        options: &RunOptions,
        on_event: &mut dyn FnMut(&Event<B::Latent>),
    ) -> Result<RunSummary>
    where
        B: Backend,
        M: Model<B> + ?Sized,
    {
        let options = options.clone().with_cancel(self.cancel_token());
        self.wait_while_paused();
        Driver::new(sampler, backend, model, options)?
            .finish(on_event, &mut || self.wait_while_paused())
    }
}

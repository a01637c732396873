//! Cancelling a run from another thread (a UI button, a Ctrl-C handler).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A shared flag that stops a [`run`](crate::run), a [`Driver`](crate::Driver) or a
/// [`Background`](crate::Background) run.
///
/// Clones share the flag. A cancelled run returns normally with
/// [`StopReason::Cancelled`](crate::StopReason::Cancelled) and no later round starts. Which
/// rounds count depends on when the flag is seen: checked before each round, a cancel
/// between rounds ends the run there; checked again when a round's model calls return, a
/// cancel during the calls drops their outputs: the sampler does not advance, that round
/// sends no event after its [`RoundStarted`](crate::Event::RoundStarted) (no
/// [`RoundFinished`](crate::Event::RoundFinished)), and the summary counts the rounds
/// before it (its model calls are counted, as they were made). A model call in progress is
/// not interrupted. Cancelling from an event callback after the model calls (on a hit, on
/// `RoundFinished`) lets that round finish.
///
/// ```
/// let token = chords::CancelToken::new();
/// let for_the_handler = token.clone();
/// for_the_handler.cancel();
/// assert!(token.is_cancelled());
/// ```
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every run holding a clone of this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl PartialEq for CancelToken {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

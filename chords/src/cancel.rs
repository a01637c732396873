//! Cancelling a run from another thread (a UI button, a Ctrl-C handler).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A shared flag that stops a [`run`](crate::run) before its next round.
///
/// Clones share the flag. A cancelled run returns normally with
/// [`StopReason::Cancelled`](crate::StopReason::Cancelled): the round in progress finishes,
/// its events are delivered, and nothing after it starts.
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

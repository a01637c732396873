//! The crate's error type: every fallible public function returns [`Error`].

use crate::backend::BackendError;
use crate::init::InitError;
use crate::model::ModelError;

/// Everything that can go wrong while configuring or running a sampler.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The initialisation sequence is invalid for the requested steps and cores.
    #[error(transparent)]
    Init(#[from] InitError),
    /// A stop rule could not be parsed or does not fit the run.
    #[error("invalid stop rule `{rule}`: {reason}")]
    StopRule {
        /// The rule as the user wrote it.
        rule: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A run was configured inconsistently (schedule, shapes, counts).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The backend failed (allocation, transfer, a kernel).
    #[error("backend error on core {core}: {source}")]
    Backend {
        /// The core whose operation failed.
        core: usize,
        /// The backend's own error.
        #[source]
        source: BackendError,
    },
    /// A model call failed.
    #[error("model call failed in round {round} on core {core} (grid index {index}): {source}")]
    Model {
        /// 1-based round number.
        round: usize,
        /// The core that made the call.
        core: usize,
        /// The grid index it evaluated.
        index: usize,
        /// The model's own error.
        #[source]
        source: ModelError,
    },
    /// A model call returned NaN or infinite values.
    #[error(
        "model output contains NaN or Inf in round {round} on core {core} (grid index {index})"
    )]
    NonFiniteOutput {
        /// 1-based round number.
        round: usize,
        /// The core that made the call.
        core: usize,
        /// The grid index it evaluated.
        index: usize,
    },
    /// A [`Driver`](crate::Driver) was stepped again after a step failed: the sampler may
    /// be half way through that round, so the run cannot go on.
    #[error("the run failed in round {round} and cannot go on")]
    SteppedAfterError {
        /// The 1-based round whose step failed.
        round: usize,
    },
    /// The thread of a [`Background`](crate::Background) run panicked.
    #[error("the background thread panicked: {0}")]
    Panicked(String),
    /// The sampler's bookkeeping broke an invariant; this is a bug in `chords`.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

/// Shorthand for `Result<T, chords::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

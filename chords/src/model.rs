//! The denoiser abstraction: one required method, called once per core per round.

use crate::backend::Backend;
use crate::sampler::Request;
use crate::schedule::Timestep;

/// A denoiser (diffusion or flow-matching network, or an analytic model) on backend `B`.
///
/// # Design
/// The K calls of a round are independent, so a `Model` is `Sync` and is called from several
/// threads at once (one worker per core on the CPU; one per device on GPUs). `core` says
/// which core makes the call, so a model that holds one copy of its weights per device can
/// pick the right one; the input latent already lives on that core. What the output means
/// (velocity, ε, v, x0) must match the solver's [`Prediction`](crate::Prediction).
///
/// A model that runs best on stacked inputs (a neural network on one device) returns `true`
/// from [`batches`](Model::batches) and implements [`evaluate_batch`](Model::evaluate_batch):
/// [`run`](crate::run) then hands it a round's calls in one go instead of spreading them
/// over threads.
pub trait Model<B: Backend>: Send + Sync {
    /// The model output at `x`, a point at timestep `t`, on core `core`.
    fn evaluate(&self, core: usize, x: &B::Latent, t: &Timestep) -> Result<B::Latent, ModelError>;

    /// The outputs for several requests at once, in order. The default evaluates them one by one.
    fn evaluate_batch(
        &self,
        requests: &[Request<B::Latent>],
    ) -> Vec<Result<B::Latent, ModelError>> {
        requests
            .iter()
            .map(|r| self.evaluate(r.core, &r.latent, &r.timestep))
            .collect()
    }

    /// Whether a round's calls should go to [`evaluate_batch`](Model::evaluate_batch) together.
    fn batches(&self) -> bool {
        false
    }
}

impl<B: Backend, M: Model<B> + ?Sized> Model<B> for &M {
    fn evaluate(&self, core: usize, x: &B::Latent, t: &Timestep) -> Result<B::Latent, ModelError> {
        (**self).evaluate(core, x, t)
    }

    fn evaluate_batch(
        &self,
        requests: &[Request<B::Latent>],
    ) -> Vec<Result<B::Latent, ModelError>> {
        (**self).evaluate_batch(requests)
    }

    fn batches(&self) -> bool {
        (**self).batches()
    }
}

/// A model call that failed, with the model's explanation.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ModelError {
    message: String,
}

impl ModelError {
    /// An error with this explanation.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The error of a model call that panicked, with the panic's message.
    ///
    /// ```
    /// let payload = std::panic::catch_unwind(|| panic!("index out of bounds")).unwrap_err();
    /// let e = chords::ModelError::from_panic(payload.as_ref());
    /// assert_eq!(e.to_string(), "the model panicked: index out of bounds");
    /// ```
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        Self::new(format!("the model panicked: {}", panic_message(payload)))
    }
}

/// The message of a caught panic (`panic!`'s text), or `"unknown cause"` for a payload
/// that is not text.
///
/// ```
/// let payload = std::panic::catch_unwind(|| panic!("at {}", 3)).unwrap_err();
/// assert_eq!(chords::panic_message(payload.as_ref()), "at 3");
/// ```
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "unknown cause"
    }
}

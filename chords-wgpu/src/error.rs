//! Errors of the wgpu backend.

/// What can go wrong setting up or using wgpu devices.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WgpuError {
    /// No adapter was found, or none matched the requested names.
    #[error("no usable wgpu adapter: {0}")]
    NoAdapter(String),
    /// The adapter refused to create a device.
    #[error("cannot create a device on {adapter}: {reason}")]
    RequestDevice {
        /// The adapter's description.
        adapter: String,
        /// wgpu's explanation.
        reason: String,
    },
    /// A buffer would exceed what the device can bind.
    #[error("{what} needs {bytes} bytes but {adapter} binds at most {limit} bytes per buffer")]
    TooLarge {
        /// What was being allocated.
        what: String,
        /// Bytes needed.
        bytes: u64,
        /// The device's limit.
        limit: u64,
        /// The adapter's description.
        adapter: String,
    },
    /// The device was lost or reported an error.
    #[error("device on {adapter} failed: {reason}")]
    Device {
        /// The adapter's description.
        adapter: String,
        /// What happened.
        reason: String,
    },
    /// A buffer handed to chords does not fit a latent.
    #[error("buffer on {adapter} cannot hold a latent: {reason}")]
    Buffer {
        /// The adapter's description.
        adapter: String,
        /// What does not fit.
        reason: String,
    },
    /// Invalid configuration (zero cores, bad sizes).
    #[error("{0}")]
    Config(String),
}

impl From<WgpuError> for chords::BackendError {
    fn from(e: WgpuError) -> Self {
        chords::BackendError::Device(e.to_string())
    }
}

impl From<WgpuError> for chords::ModelError {
    fn from(e: WgpuError) -> Self {
        chords::ModelError::new(e.to_string())
    }
}

//! # chords-burn
//!
//! Any burn network as a chords-rs [`Model`]: implement [`Network`] (a batch of latents and
//! their time inputs, optionally class labels → the model output), wrap it in a
//! [`BurnModel`] with the latent's shape, and sample it with CHORDS.
//!
//! * On the CPU backend ([`chords::CpuBackend`]): latents live on the host, each round's
//!   calls go to the network's burn device — burn-ndarray ([`cpu_device`], the `ndarray`
//!   feature, default) or burn-cuda ([`cuda_device`], the `cuda` feature).
//! * On the wgpu backend (the `wgpu` feature): [`WgpuBurnModel`] runs the network with
//!   burn-wgpu on every device of a `chords_wgpu::DevicePool` itself, latents copied between
//!   chords's buffers and burn's on the device, never through the host.
//!
//! Options of the adapter: a round's calls as one forward pass ([`BurnModel::with_batching`],
//! on by default), classifier-free guidance ([`BurnModel::with_guidance`]), and which time
//! input the network sees ([`TimeInput`]).
//!
//! ```
//! use burn::tensor::{Int, Tensor};
//! use chords::{Backend, CpuBackend, Model, Timestep};
//! use chords_burn::{BurnModel, Network};
//!
//! /// A network of no parameters: the output is `-x · t`.
//! #[derive(burn::module::Module, Debug)]
//! struct Shrink;
//!
//! impl Network<2> for Shrink {
//!     fn forward(&self, x: Tensor<2>, time: Tensor<1>, _: Option<Tensor<1, Int>>) -> Tensor<2> {
//!         let [b, _] = x.dims();
//!         x.neg() * time.reshape([b, 1])
//!     }
//! }
//!
//! let model = BurnModel::new(Shrink, &[3], &chords_burn::cpu_device()).unwrap();
//! let x = CpuBackend.upload(0, &[1.0, 2.0, -4.0]).unwrap();
//! let v = model.evaluate(0, &x, &Timestep::new(0, 0.5, 0.5, 0.5)).unwrap();
//! assert_eq!(v.as_slice(), &[-0.5, -1.0, 2.0]);
//! ```

mod cpu;
mod network;
#[cfg(feature = "wgpu")]
mod on_wgpu;

pub use network::{BurnModel, Guidance, Network, TimeInput};
#[cfg(feature = "wgpu")]
pub use on_wgpu::WgpuBurnModel;

/// What can go wrong wrapping or running a burn network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BurnError {
    /// Shapes or values that do not fit the network.
    #[error("{0}")]
    Input(String),
    /// The device cannot host the network.
    #[error("{0}")]
    Device(String),
}

impl From<BurnError> for chords::ModelError {
    fn from(e: BurnError) -> Self {
        chords::ModelError::new(e.to_string())
    }
}

/// The CPU as a burn device: burn-ndarray (the `ndarray` feature).
#[cfg(feature = "ndarray")]
#[allow(
    deprecated,
    reason = "burn 0.22 deprecates ndarray in favour of flex; ndarray is what we measured and ship"
)]
pub fn cpu_device() -> burn::tensor::Device {
    burn::tensor::Device::ndarray()
}

/// The NVIDIA GPU `index` as a burn-cuda device (the `cuda` feature; the CUDA driver is
/// needed at run time). A [`BurnModel`] on it is a model of the CPU backend: each round's
/// batch goes up and its outputs come back.
///
/// Without the feature this is an error saying how to build with it.
pub fn cuda_device(index: usize) -> Result<burn::tensor::Device, BurnError> {
    #[cfg(feature = "cuda")]
    return Ok(burn::tensor::Device::cuda(index));
    #[cfg(not(feature = "cuda"))]
    Err(BurnError::Device(format!(
        "CUDA device {index}: this build has no CUDA support; build with `--features cuda` (needs an NVIDIA driver)"
    )))
}

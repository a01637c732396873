//! # chords-wgpu
//!
//! The wgpu backend of chords-rs: every CHORDS core is a `wgpu::Device` (any adapter:
//! Vulkan, Metal, DX12, GL, or lavapipe's software Vulkan), every latent stays in a GPU
//! buffer, and all of the engine's arithmetic runs in one fused WGSL kernel
//! (`shaders/wgsl/lincomb.wgsl`).
//!
//! * [`DevicePool`]: enumerate adapters, map cores onto devices, or wrap the host
//!   application's own device ([`DevicePool::from_device`]);
//! * [`WgpuBackend`]: the [`chords::Backend`] on a pool, counting the bytes it moves;
//! * [`GpuMixture`]: the Gaussian-mixture model as WGSL kernels;
//! * [`WgpuBackend::preview`]: a latent to RGBA8 pixels on the device, read back, or
//!   [`WgpuBackend::preview_to_texture`]: straight into a [`PreviewTexture`] a renderer draws;
//! * your own model as a compute shader: [`WgpuBackend::output_latent`] allocates the latent
//!   it writes on a core's device, [`WgpuBackend::wrap_buffer`] adopts a buffer of yours.
//!
//! No burn here: burn networks run on this backend through the `chords-burn` crate (its
//! `wgpu` feature), and the built-in emoji model lives in `chords-emoji`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use chords::*;
//! use chords_wgpu::{DevicePool, GpuMixture, PoolOptions, WgpuBackend};
//!
//! let pool = Arc::new(DevicePool::new(&PoolOptions::new(8)).unwrap());
//! let gpu = WgpuBackend::new(pool);
//! let (means, shape) = mixture::demo_means();
//! let cpu_model = GaussianMixture::new(means, shape, 0.05, Prediction::Velocity).unwrap();
//! let model = GpuMixture::new(&gpu, &cpu_model).unwrap();
//! let solver = Arc::new(Euler::new(FlowSchedule::new(50, 1.0).unwrap()));
//! let x0 = gpu.upload(0, &noise::gaussian(0, 3 * 32 * 32)).unwrap();
//! let init = InitSequence::parse("0-2-4-8-16-24-32-40", 50).unwrap();
//! let mut sampler = Chords::new(solver, init, x0).unwrap();
//! run(&mut sampler, &gpu, &model, &RunOptions::default(), &mut |_| {}).unwrap();
//! ```

mod backend;
mod buffers;
mod error;
mod kernels;
mod mixture;
mod pool;

pub use backend::{GpuLatent, PreviewTexture, WgpuBackend};
pub use buffers::GpuBuffer;
pub use error::WgpuError;
pub use kernels::latent_bytes;
pub use mixture::GpuMixture;
pub use pool::{DevicePool, DeviceSharing, Gpu, PoolOptions, list_adapters};
/// The wgpu version this crate's handles belong to.
pub use wgpu;

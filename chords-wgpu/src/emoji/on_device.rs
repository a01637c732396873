//! The emoji network on a device pool's own wgpu device: burn-wgpu adopts the pool's
//! device and queue, and latents move between our buffers and burn's by copies on that
//! shared queue — nothing goes through the host but the noise levels and class labels.

use std::sync::{Arc, Mutex};

use burn::tensor::wgpu::WgpuSetup;
use burn::tensor::{Device, Tensor};
use burn_cubecl::Cube;
use burn_cubecl::cubecl::wgpu::{AutoCompiler, WgpuServer};
use burn_cubecl::tensor::CubeTensor;
use chords::{Model, ModelError, Request, Timestep};

use super::{EmojiError, EmojiModel, NUMEL};
use crate::backend::{GpuLatent, WgpuBackend};
use crate::pool::Gpu;

/// [`EmojiModel`] as a [`Model`] of the [`WgpuBackend`]: every core's latent stays on the
/// GPU. Needs a pool whose cores share one device that the pool created, or one made with
/// [`DevicePool::from_setup`](crate::DevicePool::from_setup) (burn needs the instance and
/// adapter too). A round's calls run as one stacked forward pass.
#[derive(Debug)]
pub struct GpuEmojiModel {
    model: EmojiModel,
    backend: WgpuBackend,
    gpu: usize,
}

impl GpuEmojiModel {
    /// Whether `backend`'s pool can host the model: one device, with its instance and
    /// adapter known. Adopts nothing.
    pub fn check(backend: &WgpuBackend) -> Result<(), EmojiError> {
        Self::setup(backend).map(|_| ())
    }

    fn setup(backend: &WgpuBackend) -> Result<(&Gpu, WgpuSetup), EmojiError> {
        let pool = backend.pool();
        if pool.gpus().len() != 1 {
            return Err(unsupported(&format!(
                "needs all cores on one device (this pool has {}); use --devices per-adapter with one adapter",
                pool.gpus().len()
            )));
        }
        let gpu: &Gpu = &pool.gpus()[0];
        let Some((instance, adapter)) = gpu.setup() else {
            return Err(unsupported(
                "needs the device's instance and adapter (DevicePool::from_setup)",
            ));
        };
        let setup = WgpuSetup {
            instance: instance.clone(),
            adapter: adapter.clone(),
            device: gpu.device().clone(),
            queue: gpu.queue().clone(),
            backend: adapter.get_info().backend,
        };
        Ok((gpu, setup))
    }

    /// `model` (weights, class, guidance) on the device of `backend`'s pool. A wgpu device
    /// is adopted by burn once per process; later models on it (a restarted run in the
    /// viewer, a new pool on the same device) reuse that runtime.
    pub fn new(model: &EmojiModel, backend: &WgpuBackend) -> Result<Self, EmojiError> {
        let (gpu, setup) = Self::setup(backend)?;
        let device = adopt(gpu, setup)?;
        Ok(Self {
            model: model.clone().to_device(&device),
            backend: WgpuBackend::new(Arc::clone(backend.pool())),
            gpu: 0,
        })
    }

    /// The model, on the adopted device.
    pub fn model(&self) -> &EmojiModel {
        &self.model
    }

    /// Guided velocities of `latents` (on the pool's device) at noise levels `sigmas`.
    fn velocities(
        &self,
        latents: &[&GpuLatent],
        sigmas: &[f64],
    ) -> Result<Vec<GpuLatent>, EmojiError> {
        let b = latents.len();
        if b == 0 {
            return Ok(Vec::new());
        }
        let gpu = &self.backend.pool().gpus()[self.gpu];
        if latents
            .iter()
            .any(|l| l.len() != NUMEL || l.gpu_index() != self.gpu)
        {
            return Err(EmojiError::Input(format!(
                "the emoji model takes latents of {NUMEL} elements on its own device"
            )));
        }
        let m = &self.model;
        let copies = m.copies();
        let n = copies * b;
        // The stacked input: our buffers copied into a fresh burn tensor on the shared queue.
        let x = cube(Tensor::<4>::empty([n, 3, 32, 32], &m.device))?;
        let bytes = (NUMEL * 4) as u64;
        with_buffer(&x, |target, offset| {
            let mut encoder = gpu.device().create_command_encoder(&Default::default());
            for copy in 0..copies {
                for (i, latent) in latents.iter().enumerate() {
                    let at = offset + ((copy * b + i) as u64) * bytes;
                    encoder.copy_buffer_to_buffer(latent.buffer(), 0, target, at, bytes);
                }
            }
            gpu.queue().submit([encoder.finish()]);
        })?;
        let v = m.guided(Tensor::<4>::from_primitive::<Cube>(x), sigmas);
        // The output: burn's buffer copied into one of ours per core, on the same queue.
        // Reshaping to rows of NUMEL makes burn lay it out row-major (its convolutions
        // leave channels last).
        let v = cube(v.reshape([b, NUMEL]))?;
        let outputs = (0..b)
            .map(|_| {
                gpu.storage("emoji velocity", NUMEL)
                    .map_err(|e| EmojiError::Input(e.to_string()))
            })
            .collect::<Result<Vec<_>, EmojiError>>()?;
        with_buffer(&v, |source, offset| {
            let mut encoder = gpu.device().create_command_encoder(&Default::default());
            for (i, out) in outputs.iter().enumerate() {
                let at = offset + i as u64 * bytes;
                encoder.copy_buffer_to_buffer(source, at, out, 0, bytes);
            }
            gpu.queue().submit([encoder.finish()]);
        })?;
        Ok(outputs
            .into_iter()
            .map(|out| self.backend.wrap(out, NUMEL, self.gpu))
            .collect())
    }
}

/// The burn device on `gpu`'s wgpu device, registering it with burn the first time.
fn adopt(gpu: &Gpu, setup: WgpuSetup) -> Result<Device, EmojiError> {
    static ADOPTED: Mutex<Vec<(wgpu::Device, Device)>> = Mutex::new(Vec::new());
    let mut adopted = ADOPTED
        .lock()
        .map_err(|_| unsupported("lost its registry of adopted devices"))?;
    if let Some((_, device)) = adopted.iter().find(|(d, _)| d == gpu.device()) {
        return Ok(device.clone());
    }
    let device = Device::wgpu_options()
        .setup(setup)
        .init()
        .map_err(|e| unsupported(&format!("could not adopt {}: {e}", gpu.describe())))?;
    adopted.push((gpu.device().clone(), device.clone()));
    Ok(device)
}

fn unsupported(why: &str) -> EmojiError {
    EmojiError::Input(format!("the emoji model on wgpu {why}"))
}

/// The cube tensor behind a float tensor (burn-wgpu without fusion), laid out row-major
/// (the byte copies rely on it).
fn cube<const D: usize>(tensor: Tensor<D>) -> Result<CubeTensor, EmojiError> {
    let cube = tensor
        .try_into_primitive::<Cube>()
        .map_err(|e| EmojiError::Input(format!("not a wgpu tensor: {e:?}")))?;
    if !cube.is_contiguous() {
        return Err(EmojiError::Input(
            "burn handed over a tensor that is not row-major".into(),
        ));
    }
    Ok(cube)
}

/// Runs `f` on the wgpu buffer and byte offset of a cube tensor. Burn's pending work is
/// submitted first and the allocation stays put while `f` runs, so copies `f` submits on
/// the shared queue see (or fill) the tensor's contents in order.
fn with_buffer<R>(
    tensor: &CubeTensor,
    f: impl FnOnce(&wgpu::Buffer, u64) -> R,
) -> Result<R, EmojiError> {
    let failed = |e| EmojiError::Input(format!("cannot reach burn's buffer: {e:?}"));
    let held = tensor
        .client
        .get_resource::<WgpuServer<AutoCompiler>>(tensor.handle.clone())
        .map_err(failed)?;
    // Submit burn's recorded work to the shared queue before ours.
    tensor.client.flush().map_err(failed)?;
    let resource = held.resource();
    Ok(f(&resource.buffer, resource.offset))
}

impl Model<WgpuBackend> for GpuEmojiModel {
    fn evaluate(&self, _core: usize, x: &GpuLatent, t: &Timestep) -> Result<GpuLatent, ModelError> {
        self.velocities(&[x], &[t.t])
            .map_err(|e| ModelError::new(e.to_string()))?
            .pop()
            .ok_or_else(|| ModelError::new("the emoji model returned nothing"))
    }

    fn evaluate_batch(
        &self,
        requests: &[Request<GpuLatent>],
    ) -> Vec<Result<GpuLatent, ModelError>> {
        let latents: Vec<&GpuLatent> = requests.iter().map(|r| &r.latent).collect();
        let sigmas: Vec<f64> = requests.iter().map(|r| r.timestep.sigma).collect();
        match self.velocities(&latents, &sigmas) {
            Ok(v) => v.into_iter().map(Ok).collect(),
            Err(e) => requests
                .iter()
                .map(|_| Err(ModelError::new(e.to_string())))
                .collect(),
        }
    }

    fn batches(&self) -> bool {
        self.model.batched
    }
}

//! [`BurnModel`] on a chords-wgpu device pool: burn-wgpu adopts each of the pool's devices
//! (with its queue), and latents move between chords's buffers and burn's by copies on that
//! shared queue — nothing goes through the host but the time inputs and labels.

use std::sync::Mutex;

use burn::tensor::wgpu::WgpuSetup;
use burn::tensor::{Device, Tensor};
use burn_cubecl::Cube;
use burn_cubecl::cubecl::wgpu::{AutoCompiler, WgpuServer};
use burn_cubecl::tensor::CubeTensor;
use chords::{Model, ModelError, Request, Timestep};
use chords_wgpu::{Gpu, GpuLatent, WgpuBackend};

use crate::{BurnError, BurnModel, Network};

/// A [`BurnModel`] as a [`Model`] of the [`WgpuBackend`]: every latent stays on its
/// core's device, and the network runs there with burn-wgpu — one copy of it per device of
/// the pool. A round's calls run as one forward pass per device (when batching).
///
/// Every device needs its instance and adapter known: pools made by
/// [`DevicePool::new`](chords_wgpu::DevicePool::new) or
/// [`DevicePool::from_setup`](chords_wgpu::DevicePool::from_setup) have them.
///
/// ```no_run
/// # use chords_burn::{BurnModel, Network, WgpuBurnModel};
/// # fn demo<N: Network<4>>(model: BurnModel<N, 4>) -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use chords_wgpu::{DevicePool, PoolOptions, WgpuBackend};
/// let backend = WgpuBackend::new(Arc::new(DevicePool::new(&PoolOptions::new(4))?));
/// let on_gpu = WgpuBurnModel::new(&model, &backend)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct WgpuBurnModel<N, const D: usize> {
    /// The model (options and network) on each device of the pool, in the pool's order.
    models: Vec<BurnModel<N, D>>,
    backend: WgpuBackend,
}

impl<N: Network<D>, const D: usize> WgpuBurnModel<N, D> {
    /// `model` (network, shape, options) on every device of `backend`'s pool. burn adopts
    /// each of the pool's devices once; later models on the same pool reuse that runtime.
    pub fn new(model: &BurnModel<N, D>, backend: &WgpuBackend) -> Result<Self, BurnError> {
        let pool = backend.pool();
        let models = pool
            .gpus()
            .iter()
            .map(|gpu| Ok(model.clone().to_device(&adopt(gpu)?)))
            .collect::<Result<Vec<_>, BurnError>>()?;
        if models.is_empty() {
            return Err(BurnError::Device("the pool has no device".into()));
        }
        Ok(Self {
            models,
            backend: WgpuBackend::new(pool.clone()),
        })
    }

    /// Whether every device of `backend`'s pool can host a network (its instance and
    /// adapter are known). Adopts nothing.
    pub fn check(backend: &WgpuBackend) -> Result<(), BurnError> {
        backend
            .pool()
            .gpus()
            .iter()
            .try_for_each(|gpu| setup(gpu).map(|_| ()))
    }

    /// The options and the network (on the pool's first device).
    pub fn model(&self) -> &BurnModel<N, D> {
        &self.models[0]
    }

    /// The model outputs for `latents`, all on device `gpu`, at `times`: one forward pass.
    fn outputs_on(
        &self,
        gpu: usize,
        latents: &[&GpuLatent],
        times: &[Timestep],
    ) -> Result<Vec<GpuLatent>, BurnError> {
        let model = &self.models[gpu];
        let (b, numel) = (latents.len(), model.numel());
        if b == 0 {
            return Ok(Vec::new());
        }
        let wgpu_gpu = &self.backend.pool().gpus()[gpu];
        if let Some(bad) = latents.iter().find(|l| l.len() != numel) {
            return Err(BurnError::Input(format!(
                "the network takes latents of {numel} elements {:?}, got {}",
                model.shape,
                bad.len()
            )));
        }
        let copies = model.copies();
        let bytes = (numel * 4) as u64;
        // The stacked input: our buffers copied into a fresh burn tensor on the shared queue.
        let x = cube(Tensor::<D>::empty(model.dims(copies * b), &model.device))?;
        with_buffer(&x, |target, offset| {
            let mut encoder = wgpu_gpu
                .device()
                .create_command_encoder(&Default::default());
            for copy in 0..copies {
                for (i, latent) in latents.iter().enumerate() {
                    let at = offset + ((copy * b + i) as u64) * bytes;
                    encoder.copy_buffer_to_buffer(latent.buffer(), 0, target, at, bytes);
                }
            }
            wgpu_gpu.queue().submit([encoder.finish()]);
        })?;
        let v = model.guided(Tensor::<D>::from_primitive::<Cube>(x), times);
        // The output: burn's buffer copied into one of ours per latent, on the same queue.
        // Reshaping to rows of `numel` makes burn lay it out row-major (convolutions may
        // leave channels last).
        let v = cube(v.reshape([b, numel]))?;
        let outputs = (0..b)
            .map(|_| self.backend.output_latent(gpu, numel))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BurnError::Device(e.to_string()))?;
        with_buffer(&v, |source, offset| {
            let mut encoder = wgpu_gpu
                .device()
                .create_command_encoder(&Default::default());
            for (i, out) in outputs.iter().enumerate() {
                let at = offset + i as u64 * bytes;
                encoder.copy_buffer_to_buffer(source, at, out.buffer(), 0, bytes);
            }
            wgpu_gpu.queue().submit([encoder.finish()]);
        })?;
        Ok(outputs)
    }
}

/// The device's burn setup: its instance, adapter, device and queue.
fn setup(gpu: &Gpu) -> Result<WgpuSetup, BurnError> {
    let Some((instance, adapter)) = gpu.setup() else {
        return Err(BurnError::Device(format!(
            "a burn network on {} needs the device's instance and adapter (DevicePool::new or DevicePool::from_setup)",
            gpu.describe()
        )));
    };
    Ok(WgpuSetup {
        instance: instance.clone(),
        adapter: adapter.clone(),
        device: gpu.device().clone(),
        queue: gpu.queue().clone(),
        backend: adapter.get_info().backend,
    })
}

/// The burn device on `gpu`'s wgpu device, registering it with burn the first time (keyed
/// by [`Gpu::id`]: `wgpu::Device`'s equality can match a device of another instance).
fn adopt(gpu: &Gpu) -> Result<Device, BurnError> {
    static ADOPTED: Mutex<Vec<(u64, Device)>> = Mutex::new(Vec::new());
    let mut adopted = ADOPTED
        .lock()
        .map_err(|_| BurnError::Device("lost the registry of adopted devices".into()))?;
    if let Some((_, device)) = adopted.iter().find(|(id, _)| *id == gpu.id()) {
        return Ok(device.clone());
    }
    let device = Device::wgpu_options()
        .setup(setup(gpu)?)
        .init()
        .map_err(|e| BurnError::Device(format!("burn could not adopt {}: {e}", gpu.describe())))?;
    adopted.push((gpu.id(), device.clone()));
    Ok(device)
}

/// The cube tensor behind a float tensor (burn-wgpu without fusion), laid out row-major
/// (the byte copies rely on it).
fn cube<const R: usize>(tensor: Tensor<R>) -> Result<CubeTensor, BurnError> {
    let cube = tensor
        .try_into_primitive::<Cube>()
        .map_err(|e| BurnError::Device(format!("not a wgpu tensor: {e:?}")))?;
    if !cube.is_contiguous() {
        return Err(BurnError::Device(
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
) -> Result<R, BurnError> {
    let failed = |e| BurnError::Device(format!("cannot reach burn's buffer: {e:?}"));
    let held = tensor
        .client
        .get_resource::<WgpuServer<AutoCompiler>>(tensor.handle.clone())
        .map_err(failed)?;
    // Submit burn's recorded work to the shared queue before ours.
    tensor.client.flush().map_err(failed)?;
    let resource = held.resource();
    Ok(f(&resource.buffer, resource.offset))
}

impl<N: Network<D>, const D: usize> Model<WgpuBackend> for WgpuBurnModel<N, D> {
    fn evaluate(&self, _core: usize, x: &GpuLatent, t: &Timestep) -> Result<GpuLatent, ModelError> {
        self.outputs_on(x.gpu_index(), &[x], std::slice::from_ref(t))?
            .pop()
            .ok_or_else(|| ModelError::new("the network returned nothing"))
    }

    /// One forward pass per device, for the calls whose latents live there.
    fn evaluate_batch(
        &self,
        requests: &[Request<GpuLatent>],
    ) -> Vec<Result<GpuLatent, ModelError>> {
        let mut results: Vec<Option<Result<GpuLatent, ModelError>>> =
            requests.iter().map(|_| None).collect();
        for gpu in 0..self.models.len() {
            let slots: Vec<usize> = (0..requests.len())
                .filter(|&i| requests[i].latent.gpu_index() == gpu)
                .collect();
            let latents: Vec<&GpuLatent> = slots.iter().map(|&i| &requests[i].latent).collect();
            let times: Vec<Timestep> = slots.iter().map(|&i| requests[i].timestep).collect();
            match self.outputs_on(gpu, &latents, &times) {
                Ok(outputs) => {
                    for (&i, out) in slots.iter().zip(outputs) {
                        results[i] = Some(Ok(out));
                    }
                }
                Err(e) => {
                    for &i in &slots {
                        results[i] = Some(Err(ModelError::new(e.to_string())));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ModelError::new("a latent on no device of the pool"))))
            .collect()
    }

    fn batches(&self) -> bool {
        self.models[0].batched
    }
}

//! [`WgpuBackend`]: latents in GPU buffers, arithmetic in the fused `lincomb` kernel.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chords::backend::{MAX_TERMS, Term};
use chords::{Backend, BackendError};

use crate::buffers::GpuBuffer;
use crate::error::WgpuError;
use crate::kernels::{grid, word};
use crate::pool::{DevicePool, Gpu};

/// A latent in a storage buffer on one device of the pool. Cloning shares the buffer.
#[derive(Debug, Clone)]
pub struct GpuLatent {
    buffer: Arc<GpuBuffer>,
    len: usize,
    gpu: usize,
}

impl GpuLatent {
    /// The storage buffer: `len` f32 elements, padded to whole `vec4`s (at least one).
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the latent has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Index of its device in [`DevicePool::gpus`].
    pub fn gpu_index(&self) -> usize {
        self.gpu
    }
}

/// The CHORDS backend on a [`DevicePool`]: every core's latents stay on its device, and data
/// crosses devices only when the algorithm needs another core's data (a spawn, a
/// rectification, a hit), through staging buffers. Bytes crossing a device boundary
/// (device to device, host to device, device to host) are counted.
///
/// ```no_run
/// use std::sync::Arc;
/// use chords::Backend;
/// use chords_wgpu::{DevicePool, PoolOptions, WgpuBackend};
/// let pool = Arc::new(DevicePool::new(&PoolOptions::new(2)).unwrap());
/// let gpu = WgpuBackend::new(pool);
/// let x = gpu.upload(0, &[1.0, 2.0]).unwrap();
/// let y = gpu.lincomb(0, &[(2.0, &x), (1.0, &x)]).unwrap();
/// assert_eq!(gpu.download(&y).unwrap(), vec![3.0, 6.0]);
/// ```
#[derive(Debug)]
pub struct WgpuBackend {
    pool: Arc<DevicePool>,
    bytes: AtomicU64,
}

impl WgpuBackend {
    /// A backend on `pool`'s devices.
    pub fn new(pool: Arc<DevicePool>) -> Self {
        Self {
            pool,
            bytes: AtomicU64::new(0),
        }
    }

    /// The device pool.
    pub fn pool(&self) -> &Arc<DevicePool> {
        &self.pool
    }

    /// Bytes that have crossed a device boundary so far.
    pub fn bytes_transferred(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The device of core `core`.
    pub fn gpu_of(&self, core: usize) -> Result<(usize, &Gpu), BackendError> {
        let g = self.pool.gpu_index(core)?;
        Ok((g, &self.pool.gpus()[g]))
    }

    pub(crate) fn gpu(&self, index: usize) -> &Gpu {
        &self.pool.gpus()[index]
    }

    /// A fresh latent of `len` elements on device `gpu` (an index into
    /// [`DevicePool::gpus`]) for a model to write its output into: a storage buffer of
    /// [`latent_bytes(len)`](crate::latent_bytes) bytes with the usages
    /// `STORAGE | COPY_SRC | COPY_DST`, from the device's recycled buffers. Its contents are
    /// unspecified (a recycled buffer holds old data): write all `len` elements, on the
    /// device's queue, before handing the latent back to chords.
    ///
    /// A model written as a compute shader binds [`GpuLatent::buffer`] of its input as
    /// read-only storage and this latent's buffer as its output; wgpu orders the work of
    /// one queue, so chords's next kernel sees what the shader wrote.
    pub fn output_latent(&self, gpu: usize, len: usize) -> Result<GpuLatent, BackendError> {
        let device = self.device(gpu)?;
        let buffer = device.guarded(|| device.storage("model output", len))?;
        Ok(self.wrap(buffer, len, gpu))
    }

    /// An application's own buffer on device `gpu` as a latent of `len` elements, e.g. the
    /// output a model's compute shader wrote. The buffer must have been created on that
    /// device, with the usages `STORAGE | COPY_SRC | COPY_DST` and at least
    /// [`latent_bytes(len)`](crate::latent_bytes) bytes (checked); chords reads it and never
    /// writes it, and releases it when the last handle drops (it is not recycled).
    pub fn wrap_buffer(
        &self,
        gpu: usize,
        buffer: wgpu::Buffer,
        len: usize,
    ) -> Result<GpuLatent, BackendError> {
        let device = self.device(gpu)?;
        let buffer = device.guarded(|| device.adopt(buffer, len))?;
        Ok(self.wrap(buffer, len, gpu))
    }

    /// Device `gpu` of the pool, or an error naming how many there are.
    fn device(&self, gpu: usize) -> Result<&Gpu, BackendError> {
        self.pool.gpus().get(gpu).map(|g| &**g).ok_or_else(|| {
            BackendError::Device(format!(
                "no device {gpu}: the pool has {}",
                self.pool.gpus().len()
            ))
        })
    }

    pub(crate) fn wrap(&self, buffer: GpuBuffer, len: usize, gpu: usize) -> GpuLatent {
        GpuLatent {
            buffer: Arc::new(buffer),
            len,
            gpu,
        }
    }

    fn count(&self, elements: usize) {
        self.bytes.fetch_add(elements as u64 * 4, Ordering::Relaxed);
    }

    /// The RGBA8 picture of a (C, H, W) latent, drawn by the preview kernel on its device;
    /// the same pixels as [`chords::preview::rgba8`].
    pub fn preview(
        &self,
        latent: &GpuLatent,
        shape: &[usize],
    ) -> Result<chords::preview::Rgba8, BackendError> {
        let (width, height) = preview_size(latent, shape)?;
        let gpu = self.gpu(latent.gpu);
        gpu.guarded(|| {
            let pixels = gpu.storage("preview", width * height)?;
            let params = preview_params(gpu, shape);
            let pipeline = gpu.preview_pipeline(false);
            let bind = gpu.bind(
                &pipeline.get_bind_group_layout(0),
                &[&params, &latent.buffer, &pixels],
            );
            let groups = ((width * height) as u32).div_ceil(chords_shaders::WORKGROUP_SIZE);
            gpu.run(&[(pipeline, &bind, (groups, 1))]);
            let bytes = gpu.read(&pixels, (width * height * 4) as u64)?;
            self.count(width * height);
            Ok(chords::preview::Rgba8 {
                width,
                height,
                pixels: bytes,
            })
        })
    }

    /// Draws the picture of a (C, H, W) latent into `frame` with the preview kernel, on the
    /// device, with nothing read back: a renderer on the same device (egui's, a game's)
    /// shows `frame` directly. Same pixels as [`preview`](Self::preview).
    pub fn preview_to_texture(
        &self,
        latent: &GpuLatent,
        shape: &[usize],
        frame: &PreviewTexture,
    ) -> Result<(), BackendError> {
        let size = preview_size(latent, shape)?;
        if size != frame.size() {
            return Err(BackendError::Device(format!(
                "a {}×{} preview does not fit a {}×{} texture",
                size.0,
                size.1,
                frame.size().0,
                frame.size().1
            )));
        }
        let gpu = self.gpu(latent.gpu);
        if gpu.device() != frame.device() {
            return Err(BackendError::Device(format!(
                "the preview texture belongs to another device than the latent's ({})",
                gpu.describe()
            )));
        }
        gpu.guarded(|| {
            let params = preview_params(gpu, shape);
            let pipeline = gpu.preview_pipeline(true);
            let bind = gpu.device().create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("preview_texture"),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: params.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: latent.buffer.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: wgpu::BindingResource::TextureView(&frame.view),
                    },
                ],
            });
            let groups = ((size.0 * size.1) as u32).div_ceil(chords_shaders::WORKGROUP_SIZE);
            gpu.run(&[(pipeline, &bind, (groups, 1))]);
            Ok(())
        })
    }
}

/// The picture size of a (C, H, W) latent: C tiles side by side unless C = 3.
fn preview_size(latent: &GpuLatent, shape: &[usize]) -> Result<(usize, usize), BackendError> {
    let &[c, h, w] = shape else {
        return Err(BackendError::Device(format!(
            "a preview needs a (C, H, W) shape, got {shape:?}"
        )));
    };
    if c == 0 || c * h * w != latent.len {
        return Err(BackendError::Device(format!(
            "shape {shape:?} does not match a latent of {}",
            latent.len
        )));
    }
    Ok(if c == 3 { (w, h) } else { (w * c, h) })
}

fn preview_params(gpu: &Gpu, shape: &[usize]) -> wgpu::Buffer {
    let words: Vec<u32> = shape.iter().map(|&d| d as u32).chain([0]).collect();
    gpu.uniform(&words)
}

/// An RGBA8 texture the preview kernel draws into ([`WgpuBackend::preview_to_texture`]) and a
/// renderer samples from (usages: storage binding, texture binding, copy source).
#[derive(Debug)]
pub struct PreviewTexture {
    device: wgpu::Device,
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    size: (usize, usize),
}

impl PreviewTexture {
    /// A `width × height` texture on `device` for latents of `shape` (C, H, W): `shape`'s
    /// picture size, see [`chords::preview`].
    pub fn new(device: &wgpu::Device, shape: &[usize]) -> Result<Self, BackendError> {
        let &[c, h, w] = shape else {
            return Err(BackendError::Device(format!(
                "a preview needs a (C, H, W) shape, got {shape:?}"
            )));
        };
        let size = if c == 3 { (w, h) } else { (w * c, h) };
        if size.0 == 0 || size.1 == 0 || c == 0 {
            return Err(BackendError::Device(format!(
                "cannot preview an empty shape {shape:?}"
            )));
        }
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("chords preview"),
            size: wgpu::Extent3d {
                width: size.0 as u32,
                height: size.1 as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8Unorm,
            usage: wgpu::TextureUsages::STORAGE_BINDING
                | wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        Ok(Self {
            device: device.clone(),
            texture,
            view,
            size,
        })
    }

    /// The device it lives on.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The texture.
    pub fn texture(&self) -> &wgpu::Texture {
        &self.texture
    }

    /// Its default view (what a renderer binds).
    pub fn view(&self) -> &wgpu::TextureView {
        &self.view
    }

    /// `(width, height)` in pixels.
    pub fn size(&self) -> (usize, usize) {
        self.size
    }
}

impl Backend for WgpuBackend {
    type Latent = GpuLatent;

    fn name(&self) -> String {
        "wgpu".into()
    }

    fn upload(&self, core: usize, data: &[f32]) -> Result<GpuLatent, BackendError> {
        let (g, gpu) = self.gpu_of(core)?;
        let buffer = gpu.guarded(|| gpu.storage_from("latent", data))?;
        self.count(data.len());
        Ok(self.wrap(buffer, data.len(), g))
    }

    fn download(&self, latent: &GpuLatent) -> Result<Vec<f32>, BackendError> {
        let gpu = self.gpu(latent.gpu);
        let bytes = gpu.guarded(|| gpu.read(&latent.buffer, latent.len as u64 * 4))?;
        self.count(latent.len);
        Ok(bytes
            .chunks_exact(4)
            .take(latent.len)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    fn numel(&self, latent: &GpuLatent) -> usize {
        latent.len
    }

    fn lincomb(
        &self,
        core: usize,
        terms: &[Term<'_, GpuLatent>],
    ) -> Result<GpuLatent, BackendError> {
        if terms.is_empty() || terms.len() > MAX_TERMS {
            return Err(BackendError::TermCount(terms.len()));
        }
        let (g, gpu) = self.gpu_of(core)?;
        let len = terms[0].1.len;
        for (_, x) in terms {
            if x.len != len {
                return Err(BackendError::LengthMismatch {
                    expected: len,
                    found: x.len,
                });
            }
            if x.gpu != g {
                return Err(BackendError::Device(format!(
                    "lincomb on core {core} got a latent from device {} (transfer it first)",
                    x.gpu
                )));
            }
        }
        gpu.guarded(|| {
            let out = gpu.storage("latent", len)?;
            // The kernel works on whole vec4s; buffers are padded to match.
            let (gx, gy, row) = grid(len.div_ceil(4));
            let mut words = [0u32; 12];
            for (k, (c, _)) in terms.iter().enumerate() {
                words[k] = word(*c);
            }
            words[8] = len.div_ceil(4) as u32;
            words[9] = terms.len() as u32;
            words[10] = row;
            let params = gpu.uniform(&words);
            let inputs: Vec<&wgpu::Buffer> = (0..MAX_TERMS)
                .map(|k| &terms.get(k).unwrap_or(&terms[0]).1.buffer)
                .map(|b| &***b)
                .collect();
            let mut buffers = vec![&params];
            buffers.extend(inputs);
            buffers.push(&out);
            let pipeline = gpu.lincomb_pipeline();
            let bind = gpu.bind(&pipeline.get_bind_group_layout(0), &buffers);
            gpu.run(&[(pipeline, &bind, (gx, gy))]);
            Ok(self.wrap(out, len, g))
        })
    }

    fn transfer(&self, latent: &GpuLatent, to: usize) -> Result<GpuLatent, BackendError> {
        let (g, gpu) = self.gpu_of(to)?;
        if g == latent.gpu {
            return Ok(latent.clone());
        }
        let from = self.gpu(latent.gpu);
        let bytes = from.guarded(|| from.read(&latent.buffer, latent.len as u64 * 4))?;
        let buffer = gpu.guarded(|| {
            let buffer = gpu.storage("latent", latent.len)?;
            gpu.queue.write_buffer(&buffer, 0, &bytes);
            Ok::<_, WgpuError>(buffer)
        })?;
        self.count(latent.len);
        Ok(self.wrap(buffer, latent.len, g))
    }

    fn relocate(&self, core: usize) -> Result<bool, BackendError> {
        self.pool.relocate(core)
    }

    fn all_finite(&self, latent: &GpuLatent) -> Result<bool, BackendError> {
        Ok(self.all_finite_each(&[latent])?[0])
    }

    /// One pass per device over all of `latents` on it (a dispatch each, one submission),
    /// then one read-back of a flag word per latent: one wait per device, however many
    /// latents.
    fn all_finite_each(&self, latents: &[&GpuLatent]) -> Result<Vec<bool>, BackendError> {
        let mut finite = vec![true; latents.len()];
        let mut devices: Vec<usize> = latents.iter().map(|l| l.gpu).collect();
        devices.sort_unstable();
        devices.dedup();
        for g in devices {
            let slots: Vec<usize> = (0..latents.len())
                .filter(|&i| latents[i].gpu == g)
                .collect();
            let gpu = self.gpu(g);
            let bytes = gpu.guarded(|| {
                let flags = gpu.storage("finite flags", slots.len())?;
                gpu.queue.write_buffer(&flags, 0, &vec![0; slots.len() * 4]);
                let pipeline = gpu.finite_pipeline();
                let layout = pipeline.get_bind_group_layout(0);
                let binds: Vec<(wgpu::BindGroup, (u32, u32))> = slots
                    .iter()
                    .enumerate()
                    .map(|(slot, &i)| {
                        let latent = latents[i];
                        let (gx, gy, row) = grid(latent.len);
                        let params = gpu.uniform(&[latent.len as u32, row, slot as u32, 0]);
                        let bind = gpu.bind(&layout, &[&params, &latent.buffer, &flags]);
                        (bind, (gx, gy))
                    })
                    .collect();
                let dispatches: Vec<_> = binds.iter().map(|(b, n)| (pipeline, b, *n)).collect();
                gpu.run(&dispatches);
                gpu.read(&flags, slots.len() as u64 * 4)
            })?;
            for (slot, &i) in slots.iter().enumerate() {
                finite[i] = bytes[slot * 4..slot * 4 + 4] == [0, 0, 0, 0];
            }
        }
        Ok(finite)
    }
}

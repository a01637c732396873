//! Compiled kernels, cached per device, and the small helpers every dispatch shares.

use std::sync::OnceLock;

use crate::buffers::GpuBuffer;
use crate::error::WgpuError;
use crate::pool::Gpu;

const WORKGROUP: u32 = chords_shaders::WORKGROUP_SIZE;

/// Pipelines compiled on first use, once per device.
#[derive(Default)]
pub(crate) struct Kernels {
    lincomb: OnceLock<wgpu::ComputePipeline>,
    finite: OnceLock<wgpu::ComputePipeline>,
    preview: OnceLock<wgpu::ComputePipeline>,
    preview_texture: OnceLock<wgpu::ComputePipeline>,
    mixture: OnceLock<MixturePipelines>,
}

/// The three passes of the mixture model, sharing one bind group layout.
pub(crate) struct MixturePipelines {
    pub layout: wgpu::BindGroupLayout,
    pub distances: wgpu::ComputePipeline,
    pub weights: wgpu::ComputePipeline,
    pub combine: wgpu::ComputePipeline,
}

fn module(device: &wgpu::Device, label: &str, source: &'static str) -> wgpu::ShaderModule {
    device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    })
}

fn pipeline(
    device: &wgpu::Device,
    layout: Option<&wgpu::PipelineLayout>,
    module: &wgpu::ShaderModule,
    entry: &str,
) -> wgpu::ComputePipeline {
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout,
        module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    })
}

impl Gpu {
    pub(crate) fn lincomb_pipeline(&self) -> &wgpu::ComputePipeline {
        self.kernels.lincomb.get_or_init(|| {
            pipeline(
                &self.device,
                None,
                &module(&self.device, "lincomb", chords_shaders::LINCOMB),
                "lincomb",
            )
        })
    }

    pub(crate) fn finite_pipeline(&self) -> &wgpu::ComputePipeline {
        self.kernels.finite.get_or_init(|| {
            pipeline(
                &self.device,
                None,
                &module(&self.device, "finite", chords_shaders::FINITE),
                "check_finite",
            )
        })
    }

    /// The preview kernel writing packed pixels to a buffer (`to_texture: false`) or to
    /// an rgba8unorm storage texture (`to_texture: true`).
    pub(crate) fn preview_pipeline(&self, to_texture: bool) -> &wgpu::ComputePipeline {
        let (cell, entry) = if to_texture {
            (&self.kernels.preview_texture, "preview_texture")
        } else {
            (&self.kernels.preview, "preview")
        };
        cell.get_or_init(|| {
            pipeline(
                &self.device,
                None,
                &module(&self.device, "preview", chords_shaders::PREVIEW),
                entry,
            )
        })
    }

    pub(crate) fn mixture_pipelines(&self) -> &MixturePipelines {
        self.kernels.mixture.get_or_init(|| {
            let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            };
            let uniform = wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            };
            let layout = self
                .device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some("mixture"),
                    entries: &[
                        uniform,
                        storage(1, true),
                        storage(2, true),
                        storage(3, false),
                        storage(4, false),
                        storage(5, false),
                    ],
                });
            let pipeline_layout =
                self.device
                    .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some("mixture"),
                        bind_group_layouts: &[Some(&layout)],
                        immediate_size: 0,
                    });
            let m = module(&self.device, "mixture", chords_shaders::MIXTURE);
            MixturePipelines {
                distances: pipeline(&self.device, Some(&pipeline_layout), &m, "distances"),
                weights: pipeline(&self.device, Some(&pipeline_layout), &m, "weights"),
                combine: pipeline(&self.device, Some(&pipeline_layout), &m, "combine"),
                layout,
            }
        })
    }

    /// An application's buffer holding `len` f32 elements, checked for size and usage.
    pub(crate) fn adopt(&self, buffer: wgpu::Buffer, len: usize) -> Result<GpuBuffer, WgpuError> {
        let need = latent_bytes(len);
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let bad = |why: String| WgpuError::Buffer {
            adapter: self.describe(),
            reason: why,
        };
        if buffer.size() < need {
            return Err(bad(format!(
                "a latent of {len} elements needs a buffer of at least {need} bytes (whole vec4s), got {}",
                buffer.size()
            )));
        }
        if !buffer.usage().contains(usage) {
            return Err(bad(format!(
                "a latent's buffer needs the usages STORAGE | COPY_SRC | COPY_DST, got {:?}",
                buffer.usage()
            )));
        }
        self.check_size("latent", need)?;
        Ok(GpuBuffer::adopted(buffer, self.free.clone()))
    }

    /// A storage buffer for `len` f32 elements, rounded up to whole `vec4`s (at least one).
    /// Its contents are unspecified: a recycled buffer holds old data.
    pub(crate) fn storage(&self, label: &str, len: usize) -> Result<GpuBuffer, WgpuError> {
        let bytes = latent_bytes(len);
        self.check_size(label, bytes)?;
        let buffer = self.free.take(bytes).unwrap_or_else(|| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        Ok(GpuBuffer::new(buffer, self.free.clone()))
    }

    /// A storage buffer holding `data`.
    pub(crate) fn storage_from(&self, label: &str, data: &[f32]) -> Result<GpuBuffer, WgpuError> {
        let buffer = self.storage(label, data.len())?;
        if !data.is_empty() {
            let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.queue.write_buffer(&buffer, 0, &bytes);
        }
        Ok(buffer)
    }

    /// A uniform buffer from 32-bit words. (Written through the queue rather than mapped at
    /// creation: mapping panics inside wgpu when the device has been lost.)
    pub(crate) fn uniform(&self, words: &[u32]) -> wgpu::Buffer {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: bytes.len() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue.write_buffer(&buffer, 0, &bytes);
        buffer
    }

    /// Bind group 0 of `pipeline` with `buffers` at bindings 0, 1, ….
    pub(crate) fn bind(
        &self,
        layout: &wgpu::BindGroupLayout,
        buffers: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout,
            entries: &entries,
        })
    }

    /// Records one compute pass of `dispatches` and submits it.
    pub(crate) fn run(
        &self,
        dispatches: &[(&wgpu::ComputePipeline, &wgpu::BindGroup, (u32, u32))],
    ) {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
            for (pipeline, bind_group, (x, y)) in dispatches {
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, *bind_group, &[]);
                pass.dispatch_workgroups(*x, *y, 1);
            }
        }
        self.queue.submit([encoder.finish()]);
    }

    /// Copies `bytes` bytes of `buffer` to the host (blocks until the device is done).
    pub(crate) fn read(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>, WgpuError> {
        self.check()?;
        let bytes = bytes.max(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes);
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        match rx.recv_timeout(crate::pool::WAIT_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.fail(format!("reading a buffer failed: {e}"))),
            Err(_) => return Err(self.fail("reading a buffer timed out")),
        }
        let data = staging
            .get_mapped_range(..)
            .map_err(|e| self.fail(format!("reading a buffer failed: {e}")))?
            .to_vec();
        staging.unmap();
        Ok(data)
    }
}

/// Workgroups covering `threads` threads as a 2-D grid: `(x, y, threads per grid row)`.
pub(crate) fn grid(threads: usize) -> (u32, u32, u32) {
    let groups = (threads as u64).div_ceil(WORKGROUP as u64).max(1);
    let x = groups.min(65_535);
    let y = groups.div_ceil(x);
    (x as u32, y as u32, x as u32 * WORKGROUP)
}

/// Little-endian words of an f32.
pub(crate) fn word(v: f32) -> u32 {
    v.to_bits()
}

/// Bytes of the storage buffer behind a latent of `len` f32 elements: rounded up to whole
/// `vec4`s (at least one), as the kernels read them.
///
/// ```
/// assert_eq!(chords_wgpu::latent_bytes(5), 32);
/// assert_eq!(chords_wgpu::latent_bytes(0), 16);
/// ```
pub fn latent_bytes(len: usize) -> u64 {
    (len as u64).div_ceil(4).max(1) * 16
}
